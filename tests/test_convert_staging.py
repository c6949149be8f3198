"""The staging directory beside OUT: stale ones of dead runs are removed (and only those), and replacing OUT keeps a dataset there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from streamclip import open_manifest
from streamclip.writers import ConvertConfig, convert
from streamclip.writers import staging as staging_module
from streamclip.writers.staging import Staging, remove_stale, replace_dir

from conftest import write_jsonl

FAST = dict(clusters=2, embedder="hashing", progress=False)

KILLED = """
import os, sys
from streamclip.writers.staging import Staging
s = Staging(sys.argv[1])
os.makedirs(s.dataset)
for i in range(8):
    open(os.path.join(s.dataset, f"shard.{i:05d}.mds.zstd"), "wb").write(b"partial" * 100)
print(s.root, flush=True)
os.kill(os.getpid(), 9)
"""


def killed_run(out) -> str:
    """The staging directory a run killed with SIGKILL mid-pack leaves beside ``out``."""
    proc = subprocess.run([sys.executable, "-c", KILLED, str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    root = proc.stdout.strip()
    assert os.path.isdir(root)
    return root


def test_a_successful_run_removes_what_killed_runs_left_and_nothing_else(tmp_path, sample_docs):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:40])
    out = tmp_path / "ds"
    dead = [killed_run(out), killed_run(out)]
    other_out = killed_run(tmp_path / "other")  # another OUT's leftovers are that run's business
    unmarked = tmp_path / ".ds.tmp-0123abcd"  # streamclip's naming, but no marker: not ours
    unmarked.mkdir()
    (unmarked / "file").write_text("keep")
    alive = Staging(str(out))  # a run in progress holds its marker's lock
    try:
        convert([str(src)], str(out), ConvertConfig(**FAST))
        assert not any(os.path.exists(d) for d in dead)
        assert os.path.isdir(other_out) and (unmarked / "file").read_text() == "keep" and os.path.isdir(alive.root)
    finally:
        alive.remove()
    assert open_manifest(str(out)).num_documents == 40


def test_remove_stale_skips_a_symlinked_marker(tmp_path):
    root = tmp_path / ".ds.tmp-feedbeef"
    root.mkdir()
    (tmp_path / "target").write_text("x")
    os.symlink(tmp_path / "target", root / staging_module.MARKER)
    assert remove_stale(str(tmp_path / "ds")) == []
    assert root.is_dir()


def make_dataset(path, text: str) -> None:
    path.mkdir()
    (path / "streamclip.json").write_text(text)


@pytest.mark.parametrize("exchange", [True, False])
def test_replacing_out_keeps_a_dataset_there(tmp_path, monkeypatch, exchange):
    """Every rename leaves a dataset at OUT where the system can swap directories atomically; the fallback
    (rename aside, rename in) replaces it too."""
    out, new = tmp_path / "ds", tmp_path / "new"
    make_dataset(out, "old")
    make_dataset(new, "new")
    if not exchange:
        monkeypatch.setattr(staging_module, "_exchange", lambda a, b: False)
    real_rename, seen = os.rename, []

    def watched(a, b):
        real_rename(a, b)
        seen.append((out / "streamclip.json").is_file())

    monkeypatch.setattr(os, "rename", watched)
    replace_dir(str(new), str(out), aside=str(tmp_path / "aside"))
    assert (out / "streamclip.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    if exchange:
        assert all(seen)
    else:
        assert seen == [False, True]


def test_overwrite_swaps_the_dataset_in_place(tmp_path, sample_docs, monkeypatch):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:40])
    out = tmp_path / "ds"
    convert([str(src)], str(out), ConvertConfig(**FAST))
    real_rename, seen = os.rename, []

    def watched(a, b):
        real_rename(a, b)
        seen.append(open_manifest(str(out)).num_clusters)

    monkeypatch.setattr(os, "rename", watched)
    convert([str(src)], str(out), ConvertConfig(**{**FAST, "clusters": 3}, overwrite=True))
    assert seen and all(k in (2, 3) for k in seen)  # OUT held a readable dataset after every rename
    assert open_manifest(str(out)).num_clusters == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "ds"]


def test_out_and_work_dir_may_name_folders_that_do_not_exist_yet(tmp_path, sample_docs):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:30])
    out = tmp_path / "runs" / "deep" / "ds"
    work = tmp_path / "elsewhere" / "work"
    convert([str(src)], str(out), ConvertConfig(**FAST, work_dir=str(work), keep_work=True))
    assert open_manifest(str(out)).num_documents == 30
    assert os.path.isdir(work)
