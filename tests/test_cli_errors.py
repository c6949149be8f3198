"""One error contract for the command line: every subcommand, given bad arguments, prints one line and exits 2.

Each case runs the real command as a subprocess and checks: exit code 2, no traceback, a single
``error: ...`` line that names the option (or the file) and says how to fix it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import convert_docs, write_jsonl

FAST = ["--embedder", "hashing", "--no-progress", "-k", "1"]


@pytest.fixture(scope="module")
def root(tmp_path_factory, sample_docs) -> Path:
    """A small dataset, a tiny corpus and the broken files the cases point at."""
    root = tmp_path_factory.mktemp("clierrors")
    convert_docs(root, sample_docs[:60], clusters=3)  # root/ds
    write_jsonl(root / "tiny.jsonl", [{"text": "alpha beta gamma"}, {"text": "delta epsilon zeta"}])
    files = {
        "w_text.json": "[1, \"x\", 3]", "w_dict.json": '{"a": 1}', "w_number.json": "3", "w_bad.json": "[1,",
        "w_four.json": "[1, 2, 3, 4]", "w_format.json": '{"format": "other"}', "w_zero.json": "[1, 0, 2]", "w_huge.json": "[1, 1" + "0" * 400 + ", 2]", "w_deep.json": "[" * 100_000 + "]" * 100_000,
    }
    for name, body in files.items():
        (root / name).write_text(body)
    (root / "dir_manifest").mkdir()
    (root / "dir_manifest" / "streamclip.json").mkdir()
    (root / "deep").mkdir()
    (root / "deep" / "streamclip.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "deep" / "index.json").write_text("{}")
    return root


def streamclip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamclip.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


# (id, arguments ({r} is the fixture folder), what the one line must say: the option or file, and the fix)
CASES = [
    ("no-command", ["bogus"], ["No such command 'bogus'", "streamclip -h"]),
    # convert
    ("convert-k-not-int", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "-k", "abc"], ["--clusters", "'abc'"]),
    ("convert-clusters-0", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--clusters", "0"], ["--clusters", "x>=1"]),
    ("convert-iterations-0", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--iterations", "0"], ["--iterations", "x>=1"]),
    ("convert-max-tokens-0", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--max-tokens", "0"], ["--max-tokens", "x>=1"]),
    ("convert-size-not-size", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--max-doc-bytes", "lots"], ["--max-doc-bytes", "like 512kb, 32mb or 1gb"]),
    ("convert-shard-size-0", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--shard-size", "0"], ["--shard-size", "at least 4 KiB"]),
    ("convert-embedder", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--embedder", "word2vec"], ["--embedder", "'minilm', 'minilm-onnx', 'minilm-onnx-int8', 'static', 'hashing'"]),
    ("convert-missing-input", ["convert", "{r}/nope.jsonl", "{r}/o", *FAST], ["nope.jsonl", "no such file"]),
    ("convert-out-is-a-file", ["convert", "{r}/tiny.jsonl", "{r}/tiny.jsonl", *FAST], ["tiny.jsonl", "choose a directory path"]),
    ("convert-work-dir-under-a-file", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--work-dir", "{r}/tiny.jsonl/work"], ["--work-dir", "tiny.jsonl/work"]),
    # These four need ConvertConfig to check compression and seed before reading (the convert helper's validation).
    ("convert-compression-level", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--compression", "zstd:99"], ["compression", "zstd:99"]),
    ("convert-compression-name", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--compression", "zstdx"], ["compression", "zstdx"]),
    ("convert-seed-negative", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--seed", "-1"], ["seed", "-1"]),
    ("convert-seed-huge", ["convert", "{r}/tiny.jsonl", "{r}/o", *FAST, "--seed", str(2**70)], ["seed", str(2**70)]),
    # inspect
    ("inspect-missing", ["inspect", "{r}/nope"], ["nope", "no such dataset directory"]),
    ("inspect-a-file", ["inspect", "{r}/tiny.jsonl"], ["tiny.jsonl", "is a file, not a dataset directory"]),
    ("inspect-manifest-is-a-dir", ["inspect", "{r}/dir_manifest"], ["dir_manifest/streamclip.json", "is a directory", "convert it again"]),
    ("inspect-deep-manifest", ["inspect", "{r}/deep"], ["deep/streamclip.json", "nested too deeply", "convert it again"]),
    ("inspect-gs", ["inspect", "gs://bucket/ds"], ["gs://bucket/ds", "only local directories and s3://"]),
    ("inspect-plot-no-folder", ["inspect", "{r}/ds", "--plot", "{r}/no/such/x.png"], ["--plot", "does not exist", "create it"]),
    ("inspect-plot-is-a-dir", ["inspect", "{r}/ds", "--plot", "{r}"], ["--plot", "is a directory", "give a file name"]),
    ("inspect-limit", ["inspect", "{r}/ds", "--limit", "-1"], ["--limit", "x>=0"]),
    ("inspect-unknown-option", ["inspect", "{r}/ds", "--bogus"], ["--bogus", "streamclip inspect -h"]),
    # plan
    ("plan-weights-missing", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/nope.json"], ["--weights", "nope.json", "one weight per cluster"]),
    ("plan-weights-text", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_text.json"], ["--weights", 'weight 1 is "x"', "finite number > 0"]),
    ("plan-weights-zero", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_zero.json"], ["--weights", "weight 1 is 0", "finite number > 0"]),
    ("plan-weights-huge", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_huge.json"], ["--weights", "weight 1 is 1000", "finite number > 0"]),
    ("plan-weights-dict", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_dict.json"], ["--weights", "holds a dict", "one weight per cluster"]),
    ("plan-weights-number", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_number.json"], ["--weights", "holds a int", "one weight per cluster"]),
    ("plan-weights-bad-json", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_bad.json"], ["--weights", "not valid JSON", "one weight per cluster"]),
    ("plan-weights-deep", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_deep.json"], ["--weights", "nested too deeply"]),
    ("plan-weights-format", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_format.json"], ["--weights", "not a streamclip weights file", "streamclip climb"]),
    # climb
    ("climb-runs", ["climb", "{r}/ds", "--target", "0", "--eval", "{r}/ds", "--out", "{r}/w.json", "--runs", "a,b"], ["--runs 'a,b'", "64,32,16"]),
    ("climb-runs-count", ["climb", "{r}/ds", "--target", "0", "--eval", "{r}/ds", "--out", "{r}/w.json", "--runs", "4,2,1", "--iterations", "2"], ["runs must give one integer", "per iteration (2)"]),
    ("climb-target-no-eval", ["climb", "{r}/ds", "--target", "0", "--out", "{r}/w.json"], ["--target", "--eval"]),
    ("climb-target-bad", ["climb", "{r}/ds", "--target", "x,y", "--eval", "{r}/ds", "--out", "{r}/w.json"], ["--target 'x,y'", "cluster ids"]),
    ("climb-model-json", ["climb", "{r}/ds", "--target", "0", "--eval", "{r}/ds", "--out", "{r}/w.json", "--model", "{"], ["--model is not JSON", "ProxyConfig"]),
    ("climb-model-field", ["climb", "{r}/ds", "--target", "0", "--eval", "{r}/ds", "--out", "{r}/w.json", "--model", '{"layerz": 1}'], ["--model", "layerz"]),
    ("climb-maximize-builtin", ["climb", "{r}/ds", "--target", "0", "--eval", "{r}/ds", "--out", "{r}/w.json", "--maximize"], ["--maximize", "--command"]),
    ("plan-weights-count", ["plan", "{r}/ds", "--strategy", "weighted", "--weights", "{r}/w_four.json"], ["--weights holds 4 weights", "3 clusters", "one weight per cluster"]),
    ("plan-weighted-without-weights", ["plan", "{r}/ds", "--strategy", "weighted"], ["needs --weights FILE", "one weight per cluster"]),
    ("plan-unknown-strategy", ["plan", "{r}/ds", "--strategy", "bogus"], ["--strategy", "'bogus'", "choose from random"]),
    ("plan-empty-compare", ["plan", "{r}/ds", "--compare", ","], ["--compare", "comma-separated list"]),
    ("plan-plot-no-folder", ["plan", "{r}/ds", "--plot", "/nonexistent-streamclip/x.png"], ["--plot", "does not exist", "create it"]),
    ("plan-total-samples-0", ["plan", "{r}/ds", "--total-samples", "0"], ["--total-samples", "x>=1"]),
    ("plan-epochs-0", ["plan", "{r}/ds", "--epochs", "0"], ["--epochs", "x>=1"]),
    ("plan-clip", ["plan", "{r}/ds", "--clip", "0.5"], ["clip", ">= 1"]),
    ("plan-not-a-multiple", ["plan", "{r}/ds", "--total-samples", "7", "--epoch-size", "3"], ["epoch_size=3", "Use total_samples=6 or 9"]),
    ("plan-gs", ["plan", "gs://bucket/ds"], ["gs://bucket/ds", "only local directories and s3://"]),
]


def assert_one_clear_line(result: subprocess.CompletedProcess, expected: list[str]) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    for part in expected:
        assert part in lines[0], (part, lines[0])


@pytest.mark.parametrize("args,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_arguments_give_one_line_naming_the_option_and_the_fix(root, args, expected):
    result = streamclip(*(a.replace("{r}", str(root)) for a in args))
    assert_one_clear_line(result, expected)
    assert not (root / "o").exists()  # nothing was written


def test_convert_refuses_the_current_directory_as_out_up_front(root, tmp_path):
    """``convert … . --overwrite`` would replace the folder the shell stands in: refused before any work.

    Needs the convert helper's destination check (writers/conversion.py ``_check_destination``).
    """
    here = tmp_path / "here"
    here.mkdir()
    (here / "keep.txt").write_text("mine")
    result = streamclip("convert", str(root / "tiny.jsonl"), ".", *FAST, "--overwrite", cwd=here)
    assert_one_clear_line(result, ["."])
    assert sorted(os.listdir(here)) == ["keep.txt"] and sorted(os.listdir(tmp_path)) == ["here"]

