"""The work directory is streamclip's own: never a user's folder, OUT or an input; locked for its run; resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamclip import open_manifest
from streamclip.errors import WorkDirError
from streamclip.writers import ConvertConfig, convert
from streamclip.writers.workdir import MARKER

from conftest import write_jsonl

FAST = dict(clusters=2, embedder="hashing", progress=False)


@pytest.fixture
def corpus(tmp_path, sample_docs) -> Path:
    return write_jsonl(tmp_path / "a.jsonl", sample_docs[:40])


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_user_folder_with_files_is_refused_and_kept(tmp_path, corpus):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "thesis.tex").write_text("data")
    with pytest.raises(WorkDirError, match=rf"work directory {folder}: exists, is not empty and is not a streamclip work directory"):
        convert([str(corpus)], str(tmp_path / "ds"), ConvertConfig(work_dir=str(folder), **FAST))
    assert snapshot(folder) == {"thesis.tex": b"data"}
    assert not (tmp_path / "ds").exists()


def test_the_input_folder_is_refused(tmp_path, corpus):
    folder = tmp_path / "c"
    folder.mkdir()
    os.replace(corpus, folder / "a.jsonl")
    before = snapshot(folder)
    with pytest.raises(WorkDirError, match=rf"work directory {folder} is the input {folder}; a work directory is cleared and deleted, so pass --work-dir with a directory apart"):
        convert([str(folder)], str(tmp_path / "ds"), ConvertConfig(work_dir=str(folder), **FAST))
    assert snapshot(folder) == before


def test_a_work_dir_inside_an_input_folder_is_never_read_as_input(tmp_path, corpus):
    folder = tmp_path / "c"
    folder.mkdir()
    os.replace(corpus, folder / "a.jsonl")
    before = snapshot(folder)
    work = folder / "w"
    first = convert([str(folder)], str(tmp_path / "ds"), ConvertConfig(work_dir=str(work), keep_work=True, **FAST))
    again = convert([str(folder)], str(tmp_path / "ds"), ConvertConfig(work_dir=str(work), overwrite=True, **FAST))
    assert first.read == again.read == 40  # the staged docs and rejects in c/w are skipped by the folder walk
    assert snapshot(folder) == before  # the second run removed its (marked) work dir, and nothing else


def test_out_itself_and_a_folder_inside_out_are_refused(tmp_path, corpus, sample_docs):
    out = tmp_path / "ds2"
    with pytest.raises(WorkDirError, match=rf"work directory {out} is OUT {out}"):
        convert([str(corpus)], str(out), ConvertConfig(work_dir=str(out), **FAST))
    convert([str(corpus)], str(out), ConvertConfig(**FAST))
    before = snapshot(out)
    with pytest.raises(WorkDirError, match="lies inside OUT"):
        convert([str(corpus)], str(out), ConvertConfig(work_dir=str(out / "w"), overwrite=True, **FAST))
    assert snapshot(out) == before


def test_the_current_directory_is_refused(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(WorkDirError, match=r"work directory \. holds"):
        convert(["a.jsonl"], "ds", ConvertConfig(work_dir=".", **FAST))
    assert snapshot(tmp_path) == before


def test_an_unmarked_default_work_dir_is_refused_not_wiped(tmp_path, corpus):
    work = tmp_path / "ds.streamclip-work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    with pytest.raises(WorkDirError, match="no .streamclip-work in it"):
        convert([str(corpus)], str(tmp_path / "ds"), ConvertConfig(**FAST))
    assert snapshot(work) == {"notes.txt": b"mine"}


def test_an_empty_folder_is_used_and_left_as_found(tmp_path, corpus):
    work = tmp_path / "empty"
    work.mkdir()
    convert([str(corpus)], str(tmp_path / "ds"), ConvertConfig(work_dir=str(work), **FAST))
    assert work.is_dir() and list(work.iterdir()) == []
    assert open_manifest(str(tmp_path / "ds")).num_documents == 40


def test_a_kept_work_dir_is_marked_and_reused(tmp_path, corpus):
    convert([str(corpus)], str(tmp_path / "ds"), ConvertConfig(keep_work=True, **FAST))
    work = tmp_path / "ds.streamclip-work"
    assert (work / MARKER).is_file() and (work / "state.json").is_file()
    convert([str(corpus)], str(tmp_path / "ds"), ConvertConfig(overwrite=True, **FAST))
    assert not work.exists()  # made by streamclip, so removed after success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "ds"]


def test_a_corrupt_state_under_resume_says_to_start_again(tmp_path, corpus):
    convert([str(corpus)], str(tmp_path / "ds"), ConvertConfig(keep_work=True, **FAST))
    (tmp_path / "ds.streamclip-work" / "state.json").write_text('{"key": "abc", "read_')
    with pytest.raises(WorkDirError, match="state.json is unreadable .*rerun without --resume"):
        convert([str(corpus)], str(tmp_path / "ds2"), ConvertConfig(work_dir=str(tmp_path / "ds.streamclip-work"), resume=True, **FAST))


HOLD = """
import sys
from streamclip.writers.workdir import WorkDir
work = WorkDir(sys.argv[1], out=sys.argv[2], inputs=[])
print("locked", flush=True)
sys.stdin.read()
work.close()
"""


def test_a_second_run_on_a_locked_work_dir_fails_at_once_naming_the_first(tmp_path, corpus):
    out = tmp_path / "ds"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, f"{out}.streamclip-work", str(out)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(WorkDirError, match=rf"in use by another streamclip run \(pid {holder.pid} on .*\); wait for it"):
            convert([str(corpus)], str(out), ConvertConfig(**FAST))
        assert sorted(p.name for p in Path(f"{out}.streamclip-work").iterdir()) == [MARKER, "lock"]  # nothing of the holder's touched
    finally:
        holder.communicate("", timeout=30)
    convert([str(corpus)], str(out), ConvertConfig(**FAST))  # the lock died with its run
    assert open_manifest(str(out)).num_documents == 40
    assert json.loads((out / "streamclip.json").read_text())


def test_cluster_ids_are_staged_compactly(tmp_path):
    """The read stage holds a fixed buffer of ids, not a Python int per document (~36 bytes each): 60,000
    distinct ids cost well under the 2 MB such a list would."""
    import tracemalloc

    import numpy as np

    from streamclip.writers import FieldRules
    from streamclip.writers.conversion import CLUSTER_IDS, _read_stage
    from streamclip.writers.workdir import WorkDir

    n = 60_000
    src = tmp_path / "c.jsonl"
    src.write_text("".join(f'{{"text": "d", "g": {2**40 + i}}}\n' for i in range(n)))
    peaks = {}
    for field in (None, "g"):
        work = WorkDir(str(tmp_path / f"w-{field}"), out=str(tmp_path / "ds"), inputs=[str(src)])
        config = ConvertConfig(rules=FieldRules(cluster_field=field), **FAST)
        tracemalloc.start()
        _read_stage([str(src)], work, "key", config)
        peaks[field] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        work.close()
    assert peaks["g"] - peaks[None] < n * 36 // 2
    ids = np.fromfile(tmp_path / "w-g" / CLUSTER_IDS, dtype="<i8")
    np.testing.assert_array_equal(ids, 2**40 + np.arange(n))


def test_a_symlink_or_a_file_as_work_dir_is_refused(tmp_path, corpus):
    target = tmp_path / "data"
    target.mkdir()
    (target / MARKER).write_text("{}")  # even a marked folder behind a link: the link is not a directory streamclip made
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "file").write_text("x")
    for work in ("link", "file"):
        with pytest.raises(WorkDirError, match=rf"work directory {tmp_path / work}: exists and is not a directory"):
            convert([str(corpus)], str(tmp_path / "ds"), ConvertConfig(work_dir=str(tmp_path / work), **FAST))
    assert sorted(p.name for p in target.iterdir()) == [MARKER] and (tmp_path / "file").read_text() == "x"
