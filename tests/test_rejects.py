"""Bad input never crashes a run and nothing is lost: read = written + rejected, each reject named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamclip import InputError, open_manifest
from streamclip.writers import ConvertConfig, FieldRules, convert

from conftest import write_jsonl

FAST = dict(embedder="hashing", progress=False)

BAD_LINES = {
    "malformed_json": b'{"text": "unterminated',
    "not_an_object": b'["a", "list"]',
    "missing_text": b'{"body": "no text field here"}',
    "text_not_string": b'{"text": 42}',
    "empty_text": b'{"text": "   \\n  "}',
    "invalid_utf8": b'{"text": "caf\xe9 latin-1 bytes"}',
    "too_large": json.dumps({"text": "x" * 70000}).encode(),
}


@pytest.fixture
def dirty_jsonl(tmp_path: Path, sample_docs: list[dict]) -> Path:
    good = sample_docs[:200]
    return write_jsonl(tmp_path / "dirty.jsonl", good, raw_lines=list(BAD_LINES.values()) + [b"", b"   "])


def test_each_bad_kind_is_rejected_with_file_line_and_reason(tmp_path, dirty_jsonl):
    out = tmp_path / "ds"
    report = convert([str(dirty_jsonl)], str(out), ConvertConfig(clusters=4, rules=FieldRules(max_doc_bytes=1 << 16), **FAST))
    assert report.written == 200
    assert report.rejected == len(BAD_LINES)
    assert report.read == report.written + report.rejected
    assert report.rejected_by_reason == {reason: 1 for reason in BAD_LINES}
    rows = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert {r["reason"]: r["line"] for r in rows} == {reason: 201 + i for i, reason in enumerate(BAD_LINES)}
    assert all(r["file"] == str(dirty_jsonl) for r in rows)
    assert {r["reason"]: r["field"] for r in rows}["text_not_string"] == "text"
    manifest = open_manifest(str(out))
    assert manifest.rejected == len(BAD_LINES) and manifest.inputs[0].documents == 200 + len(BAD_LINES)


def test_unreadable_file_is_counted_not_fatal(tmp_path, sample_docs):
    good = write_jsonl(tmp_path / "good.jsonl", sample_docs[:40])
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data")
    report = convert([str(good), str(broken)], str(tmp_path / "ds"), ConvertConfig(clusters=2, **FAST))
    assert report.written == 40 and report.rejected_by_reason == {"unreadable": 1}
    row = json.loads((tmp_path / "ds" / "rejected.jsonl").read_text())
    assert row["file"] == str(broken) and row["reason"] == "unreadable" and row["line"] is None


def test_bad_cluster_field_values_are_rejected(tmp_path, sample_docs):
    rows = [{**d, "g": i % 3} for i, d in enumerate(sample_docs[:30])] + [{"text": "one more document", "g": "x"}, {"text": "another one", "g": -1}]
    path = write_jsonl(tmp_path / "g.jsonl", rows)
    report = convert([str(path)], str(tmp_path / "ds"), ConvertConfig(rules=FieldRules(cluster_field="g"), progress=False))
    assert report.written == 30 and report.rejected_by_reason == {"bad_cluster": 2}


def test_strict_writes_nothing_and_names_the_lines(tmp_path, dirty_jsonl):
    out = tmp_path / "ds"
    with pytest.raises(InputError, match=r"--strict: 7 document\(s\) rejected") as info:
        convert([str(dirty_jsonl)], str(out), ConvertConfig(clusters=4, strict=True, rules=FieldRules(max_doc_bytes=1 << 16), **FAST))
    assert f"{dirty_jsonl}:201: malformed_json" in str(info.value)
    assert f"{dirty_jsonl}:204: field 'text' text_not_string" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dirty.jsonl"]


def test_cli_strict_exits_2_with_a_message_not_a_traceback(tmp_path, dirty_jsonl):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "streamclip.cli", "convert", str(dirty_jsonl), str(out), "--embedder", "hashing", "-k", "3", "--strict", "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: --strict:") and "Traceback" not in result.stderr
    assert not out.exists()


def test_cli_reports_the_invariant(tmp_path, dirty_jsonl):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "streamclip.cli", "convert", str(dirty_jsonl), str(out), "--embedder", "hashing", "-k", "3", "--no-progress", "--max-doc-bytes", "64kb"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "read 207 = written 200 + rejected 7" in result.stdout
    assert "rejected malformed_json" in result.stdout
