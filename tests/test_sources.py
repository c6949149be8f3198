"""Hostile inputs to the corpus readers: every line its own document, no silent loss, bounded memory,
no link cycles, no reading of convert's own output."""

from __future__ import annotations

import base64
import datetime
import decimal
import gzip
import io
import json
import logging
import os
import tracemalloc
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from streamclip import InputError, StreamclipError, open_manifest
from streamclip.writers import ConvertConfig, FieldRules, convert
from streamclip.writers.sources import CLUSTER_ID_MAX, BlankLines, Document, Rejection, expand_inputs, line_limit, read_source

from conftest import write_jsonl

FAST = dict(embedder="hashing", progress=False)


def jsonl_bytes(texts: list[str]) -> bytes:
    return b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts)


def read(path: Path, rules: FieldRules = FieldRules()) -> list[Document | Rejection]:
    """The documents and rejections of one file (its ``BlankLines`` count is checked where it matters)."""
    return [i for i in read_source(str(path), 0, rules) if not isinstance(i, BlankLines)]


def reasons(items: list[Document | Rejection]) -> list[tuple[int, str]]:
    """``(line, "doc" or the rejection reason)`` of each item, in order."""
    return [(i.line, "doc" if isinstance(i, Document) else i.reason) for i in items]


def converted(inputs: list[str], out: Path, **config) -> tuple:
    """Convert with the hashing embedder and check the report's invariant; the report and rejects."""
    config.setdefault("clusters", 2)
    report = convert(inputs, str(out), ConvertConfig(**FAST, **config))
    assert report.read == report.written + report.rejected
    assert sum(report.rejected_by_reason.values()) == report.rejected
    rows = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(rows) == report.rejected
    return report, rows


# --- every line is its own document -----------------------------------------------------------------


HOSTILE = {
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "5000-digit integer": b'{"text": "x", "n": ' + b"9" * 5000 + b"}",
    "bad json": b'{"text": "unterminated',
    "a number": b"17",
}


def test_a_hostile_line_is_rejected_alone_and_the_rest_of_the_file_is_read(tmp_path, sample_docs):
    """The issue's reproduction: 1,004 lines gave read 4 = written 3 + rejected 1."""
    good = [d["text"] for d in sample_docs[:250]]
    lines = []
    for i, bad in enumerate(HOSTILE.values()):
        lines += [json.dumps({"text": t}).encode() for t in good[i * 50 : (i + 1) * 50]] + [bad]
    lines += [json.dumps({"text": t}).encode() for t in good[200:]]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = read(path)
    bad_lines = [51 * (i + 1) for i in range(len(HOSTILE))]
    assert [(n, r) for n, r in reasons(items) if r != "doc"] == [(n, "malformed_json") for n in bad_lines[:3]] + [(bad_lines[3], "not_an_object")]
    assert [i.text for i in items if isinstance(i, Document)] == good
    assert "4300 digits" in items[bad_lines[1] - 1].detail and "nested too deeply" in items[bad_lines[0] - 1].detail
    report, rows = converted([str(path)], tmp_path / "ds")
    assert (report.read, report.written, report.rejected) == (254, 250, 4)
    assert [r["line"] for r in rows] == bad_lines


def test_blank_lines_are_not_documents_and_are_counted(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_bytes(b'{"text": "one"}\n\n   \n{"text": "two"}\n\t\n')
    items = list(read_source(str(path), 0, FieldRules()))
    assert reasons(items[:-1]) == [(1, "doc"), (4, "doc")] and items[-1] == BlankLines(0, 3)
    report, _ = converted([str(path)], tmp_path / "ds", clusters=1)
    assert (report.read, report.blank_lines) == (2, 3)
    assert [(i.documents, i.blank_lines) for i in open_manifest(str(tmp_path / "ds")).inputs] == [(2, 3)]
    assert list(read_source(str(write_jsonl(tmp_path / "none.jsonl", [{"text": "x"}])), 0, FieldRules()))[-1].text == "x"


def test_a_byte_order_mark_does_not_cost_the_first_document(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl_bytes(["first", "second"]))
    assert [i.text for i in read(path)] == ["first", "second"]


@pytest.mark.parametrize("content", [b'[{"text": "a"}, {"text": "b"}]\n', b'[\n  {"text": "a"},\n  {"text": "b"}\n]\n'])
def test_a_json_array_file_gets_a_hint(tmp_path, content):
    path = tmp_path / "array.jsonl"
    path.write_bytes(content)
    first = read(path)[0]
    assert isinstance(first, Rejection) and first.line == 1
    assert "this looks like a JSON array; convert expects one JSON object per line (JSONL)" in first.detail


# --- truncated compressed files -----------------------------------------------------------------------


def streamed_zstd(data: bytes, **kwargs) -> bytes:
    out = io.BytesIO()
    with zstandard.ZstdCompressor(**kwargs).stream_writer(out, closefd=False) as w:
        for start in range(0, len(data), 1 << 16):
            w.write(data[start : start + (1 << 16)])
    return out.getvalue()


def lines_zlib_recovers(data: bytes, cut_stream: bytes) -> int:
    """The complete lines in what zlib decodes of a cut gzip stream (everything before the cut)."""
    recovered = zlib.decompressobj(31).decompress(cut_stream)
    assert data.startswith(recovered)
    return recovered.count(b"\n")


@pytest.mark.parametrize("codec", ["zst", "gz"])
def test_a_truncated_compressed_file_keeps_its_complete_lines_and_says_where_it_stopped(tmp_path, codec):
    data = jsonl_bytes([f"document number {i} of a long file" for i in range(60_000)])
    whole = gzip.compress(data) if codec == "gz" else streamed_zstd(data)
    cut = whole[: len(whole) * 2 // 3]
    path = tmp_path / f"cut.jsonl.{codec}"
    path.write_bytes(cut)
    items = read(path)
    kept = [i for i in items if isinstance(i, Document)]
    assert 0 < len(kept) == len(items) - 1
    last = items[-1]
    assert isinstance(last, Rejection) and last.reason == "unreadable" and last.line == len(kept) + 1
    assert f"reading stopped at line {len(kept) + 1}" in last.detail
    assert [i.line for i in kept] == list(range(1, len(kept) + 1))
    if codec == "gz":  # zlib gives back every complete line before the cut: so must we
        assert len(kept) == lines_zlib_recovers(data, cut)


def test_a_one_shot_zstd_frame_cut_by_one_byte_is_an_unreadable_rejection(tmp_path, sample_docs):
    """The probe's reproduction: printed read 2 = written 2 + rejected 0 and `documents 0`."""
    data = jsonl_bytes([f"doc {i}" for i in range(2000)])
    cut = tmp_path / "t.jsonl.zst"
    cut.write_bytes(zstandard.ZstdCompressor().compress(data)[:-1])
    good = write_jsonl(tmp_path / "a.jsonl", sample_docs[:20])
    report, rows = converted([str(cut), str(good)], tmp_path / "o")
    assert report.written == 20 and report.rejected_by_reason == {"unreadable": 1}
    assert rows[0]["file"] == str(cut) and "ends inside a frame" in rows[0]["detail"]
    assert [i.documents for i in open_manifest(str(tmp_path / "o")).inputs] == [1, 20]


def test_complete_zstd_streams_of_every_frame_shape_read_whole(tmp_path):
    """No false alarm: many frames, checksums, content sizes absent or present, and skippable frames."""
    texts = [f"text {i}" for i in range(3000)]
    data = jsonl_bytes(texts)
    skippable = (0x184D2A53).to_bytes(4, "little") + (7).to_bytes(4, "little") + b"comment"
    framed = b"".join(zstandard.ZstdCompressor(write_checksum=True).compress(data[i : i + 999]) for i in range(0, len(data), 999))
    shapes = {
        "one-shot": zstandard.ZstdCompressor(level=19).compress(data),
        "streamed": streamed_zstd(data, write_checksum=True),
        "framed": skippable + framed + skippable,
        "empty frames": zstandard.ZstdCompressor().compress(b"") + zstandard.ZstdCompressor().compress(data),
    }
    for name, blob in shapes.items():
        path = tmp_path / f"{name.replace(' ', '-')}.jsonl.zst"
        path.write_bytes(blob)
        assert [i.text for i in read(path)] == texts, name


# --- bounded memory for giant lines --------------------------------------------------------------------


def test_a_decompression_bomb_line_is_rejected_in_bounded_memory_and_the_next_line_read(tmp_path):
    line_bytes = 200 << 20
    path = tmp_path / "bomb.jsonl.zst"
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=1).stream_writer(f) as w:
        w.write(b'{"text": "')
        zeros = b"0" * (1 << 20)
        for _ in range(line_bytes >> 20):
            w.write(zeros)
        w.write(b'"}\n{"text": "after the bomb"}\n')
    assert path.stat().st_size < line_bytes // 1000
    rules = FieldRules(max_doc_bytes=1 << 16)
    tracemalloc.start()
    try:
        items = read(path, rules)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reasons(items) == [(1, "too_large"), (2, "doc")] and items[1].text == "after the bomb"
    assert f"a line of {line_bytes + 13} bytes" in items[0].detail
    assert peak < 4 * line_limit(rules) < line_bytes // 10


def test_a_line_over_the_limit_is_too_large_and_a_text_under_it_is_kept_whatever_its_escaping(tmp_path):
    rules = FieldRules(max_doc_bytes=1 << 12)
    limit = line_limit(rules)
    escaped = "\u0001" * rules.max_doc_bytes  # 6 JSON bytes per character
    path = tmp_path / "long.jsonl"
    path.write_bytes(jsonl_bytes([escaped]) + b'{"text": "' + b"y" * limit + b'"}\n' + jsonl_bytes(["short"]))
    assert [r for _, r in reasons(read(path, rules))] == ["doc", "too_large", "doc"]


# --- symlinks, FIFOs and duplicates in input folders ------------------------------------------------------


def test_looping_and_dangling_links_in_a_folder_are_rejections_not_a_stopped_run(tmp_path, sample_docs):
    d = tmp_path / "d"
    d.mkdir()
    write_jsonl(d / "a.jsonl", sample_docs[:30])
    os.symlink("b.jsonl", d / "c.jsonl")
    os.symlink("c.jsonl", d / "b.jsonl")
    os.symlink("missing.jsonl", d / "dangling.jsonl")
    report, rows = converted([str(d)], tmp_path / "ds")
    assert report.written == 30 and report.rejected_by_reason == {"unreadable": 3}
    assert sorted(Path(r["file"]).name for r in rows) == ["b.jsonl", "c.jsonl", "dangling.jsonl"]


def test_a_fifo_in_a_folder_is_rejected_without_blocking(tmp_path, sample_docs):
    d = tmp_path / "d"
    d.mkdir()
    write_jsonl(d / "a.jsonl", sample_docs[:30])
    os.mkfifo(d / "pipe.jsonl")
    report, rows = converted([str(d)], tmp_path / "ds")
    assert report.written == 30 and report.rejected_by_reason == {"not_a_regular_file": 1}
    assert rows[0]["file"] == str(d / "pipe.jsonl") and "FIFO" in rows[0]["detail"]


def test_recursive_globs_do_not_follow_folder_links_round_a_cycle(tmp_path):
    """The probe: `e/sub/up -> ..` made `e/**/*.txt` read each file 41 times."""
    (tmp_path / "e" / "sub").mkdir(parents=True)
    (tmp_path / "e" / "a.txt").write_text("alpha")
    (tmp_path / "e" / "sub" / "b.txt").write_text("beta")
    (tmp_path / "e" / ".hidden.txt").write_text("hidden, as glob.glob leaves it")
    os.symlink("..", tmp_path / "e" / "sub" / "up")
    os.symlink("../..", tmp_path / "e" / "sub" / "up2")
    pattern = str(tmp_path / "e" / "**" / "*.txt")
    assert expand_inputs([pattern]) == [str(tmp_path / "e" / "a.txt"), str(tmp_path / "e" / "sub" / "b.txt")]
    assert expand_inputs([str(tmp_path / "e")]) == [str(tmp_path / "e" / name) for name in (".hidden.txt", "a.txt", "sub/b.txt")]


def test_relative_globs_give_the_paths_glob_gives(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    for name in ("x.jsonl", "y.jsonl", "z.txt"):
        (tmp_path / "in" / name).write_text('{"text": "t"}\n')
    monkeypatch.chdir(tmp_path / "in")
    assert expand_inputs(["*.jsonl"]) == ["x.jsonl", "y.jsonl"]
    monkeypatch.chdir(tmp_path)
    assert expand_inputs(["in/[xz].*"]) == ["in/x.jsonl", "in/z.txt"]


def test_an_input_reached_twice_is_read_once_with_a_warning(tmp_path, sample_docs, caplog):
    path = write_jsonl(tmp_path / "a.jsonl", sample_docs[:20])
    os.symlink("a.jsonl", tmp_path / "alias.jsonl")
    with caplog.at_level(logging.WARNING, logger="streamclip.writers.sources"):
        report, _ = converted([str(path), str(tmp_path / "alias.jsonl"), str(path)], tmp_path / "ds")
    assert report.read == report.written == 20
    assert caplog.text.count(f"the same file as {path}, which is read once") == 2


# --- convert never reads its own output -------------------------------------------------------------------


def test_an_output_inside_the_input_folder_is_not_read_back(tmp_path, sample_docs):
    """The probe: `convert c c/ds` then `convert c c/ds --overwrite` read 15, then 25, then 35."""
    c = tmp_path / "c"
    c.mkdir()
    rows = sample_docs[:40] + [{"body": "no text"}] * 3
    write_jsonl(c / "types.jsonl", rows)
    first, _ = converted([str(c)], c / "ds", keep_work=True)
    assert (c / "ds.streamclip-work" / "rejected.jsonl").exists()
    leftover = c / ".ds.tmp-0badc0de"  # a crashed run's temporary dataset
    leftover.mkdir()
    (leftover / "rejected.jsonl").write_text('{"text": "from a crashed run"}\n')
    second, _ = converted([str(c)], c / "ds", overwrite=True)
    third, _ = converted([str(c) + "/**/*.jsonl"], c / "ds", overwrite=True)
    assert first.read == second.read == third.read == len(rows)
    assert first.rejected == second.rejected == third.rejected == 3


def test_naming_a_file_inside_the_output_is_refused(tmp_path, sample_docs):
    converted([str(write_jsonl(tmp_path / "a.jsonl", sample_docs[:20]))], tmp_path / "ds")
    with pytest.raises(StreamclipError, match=r"rejected.jsonl:? lies inside (OUT )?.*ds"):
        convert([str(tmp_path / "ds" / "rejected.jsonl")], str(tmp_path / "ds"), ConvertConfig(overwrite=True, **FAST))


def test_exclude_skips_subtrees_and_prefixed_siblings(tmp_path):
    for rel in ("in/a.jsonl", "in/out/b.jsonl", "in/.out.tmp-1/c.jsonl", "in/.out.tmpfile.jsonl", "in/outer/d.jsonl"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    found = expand_inputs([str(tmp_path / "in")], exclude=[str(tmp_path / "in" / "out"), str(tmp_path / "in" / ".out.tmp-*")])
    assert [os.path.relpath(p, tmp_path) for p in found] == ["in/.out.tmpfile.jsonl", "in/a.jsonl", "in/outer/d.jsonl"]


# --- kept and cluster fields that cannot be stored --------------------------------------------------------


def test_a_lone_surrogate_in_a_kept_field_rejects_that_document_only(tmp_path, sample_docs):
    path = write_jsonl(tmp_path / "s.jsonl", [{**d, "note": "fine"} for d in sample_docs[:20]], raw_lines=[b'{"text": "t", "note": "\\ud800"}'])
    report, rows = converted([str(path)], tmp_path / "ds", rules=FieldRules(keep=("note",)))
    assert report.written == 20 and report.rejected_by_reason == {"invalid_utf8": 1}
    assert rows[0]["field"] == "note" and rows[0]["line"] == 21


def test_parquet_binary_timestamp_and_decimal_columns_are_kept_as_json(tmp_path, sample_docs):
    from streaming import StreamingDataset

    texts = [d["text"] for d in sample_docs[:12]]
    blobs = [bytes([i, 255, 0]) for i in range(12)]
    stamps = [datetime.datetime(2024, 1, 1 + i, 12, 30, tzinfo=datetime.timezone.utc) for i in range(12)]
    prices = [decimal.Decimal(f"{i}.25") for i in range(12)]
    table = pa.table({"text": texts, "blob": pa.array(blobs, pa.binary()), "at": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                      "price": pa.array(prices, pa.decimal128(10, 2)), "day": pa.array([s.date() for s in stamps], pa.date32())})
    pq.write_table(table, tmp_path / "t.parquet")
    out = tmp_path / "ds"
    report, _ = converted([str(tmp_path / "t.parquet")], out, rules=FieldRules(keep=("blob", "at", "price", "day")))
    assert report.written == 12 and report.rejected == 0
    ds = StreamingDataset(local=str(out), shuffle=False, batch_size=1)
    got = {s["text"]: (s["blob"], s["at"], s["price"], s["day"]) for s in (ds[i] for i in range(ds.num_samples))}
    assert got == {t: (base64.b64encode(b).decode(), s.isoformat(), str(p), s.date().isoformat()) for t, b, s, p in zip(texts, blobs, stamps, prices)}


def test_a_kept_value_with_no_json_form_is_a_bad_field(tmp_path):
    table = pa.table({"text": ["a document", "another"], "span": pa.array([datetime.timedelta(seconds=3), None], pa.duration("s"))})
    pq.write_table(table, tmp_path / "d.parquet")
    items = read(tmp_path / "d.parquet", FieldRules(keep=("span",)))
    assert reasons(items) == [(1, "bad_field"), (2, "doc")] and items[0].field == "span"


def test_cluster_ids_beyond_int64_are_rejected_not_an_overflow_after_reading(tmp_path, sample_docs):
    rows = [{**d, "g": i % 3} for i, d in enumerate(sample_docs[:30])]
    path = write_jsonl(tmp_path / "g.jsonl", rows + [{"text": "too big", "g": 10**30}, {"text": "the largest", "g": CLUSTER_ID_MAX}])
    pq.write_table(pa.table({"text": ["unsigned max", "small"], "g": pa.array([2**64 - 1, 1], pa.uint64())}), tmp_path / "g.parquet")
    report, rows_out = converted([str(path), str(tmp_path / "g.parquet")], tmp_path / "ds", rules=FieldRules(cluster_field="g"))
    assert report.written == 32 and report.rejected_by_reason == {"bad_cluster": 2}
    assert [(Path(r["file"]).name, r["line"]) for r in rows_out] == [("g.jsonl", 31), ("g.parquet", 1)]
    assert open_manifest(str(tmp_path / "ds")).clustering["source_ids"] == [0, 1, 2, CLUSTER_ID_MAX]
    assert [c.documents for c in open_manifest(str(tmp_path / "ds")).clusters] == [10, 11, 10, 1]
