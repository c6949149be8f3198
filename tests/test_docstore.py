"""The staging record files: records survive encoding, frames and read boundaries byte for byte."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
import zstandard

from streamclip.errors import WorkDirError
from streamclip.writers.docstore import RecordWriter, append_frame, decode_record, encode_record, iter_raw, read_records, record_text

DOCS = [
    ("plain ascii text", {}),
    ("ünïcödé and emoji 🎉 and CJK 漢字", {"source": "web", "n": 3}),
    ("nested fields", {"meta": {"tags": ["a", "b"], "score": 0.5, "none": None}}),
    ("x" * (3 << 20), {"big": True}),  # larger than iter_raw's 1 MiB reads: a record spans several
]


def test_a_record_is_two_little_endian_sizes_then_the_text_then_compact_json():
    text, fields = DOCS[1]
    raw = encode_record(text, fields)
    body, extra = text.encode("utf-8"), json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert raw == struct.pack("<II", len(body), len(extra)) + body + extra
    assert record_text(raw) == (struct.pack("<I", len(body)), body)
    assert decode_record(raw) == (text, fields, len(body))


def test_a_record_without_fields_carries_no_json():
    raw = encode_record("only text", {})
    assert raw == struct.pack("<II", 9, 0) + b"only text"
    assert decode_record(raw) == ("only text", {}, 9)


def test_record_writer_round_trips_every_record_in_order(tmp_path):
    path = tmp_path / "docs.zst"
    records = [encode_record(t, f) for t, f in DOCS] * 3 + [encode_record(f"doc {i}", {"i": i}) for i in range(5000)]
    writer = RecordWriter(str(path))
    for r in records:
        writer.write(r)
    writer.close()
    assert list(iter_raw(str(path))) == records
    assert [(t, f) for t, f, _ in read_records(str(path))] == [decode_record(r)[:2] for r in records]


def test_appended_frames_read_back_as_one_sequence(tmp_path):
    path = tmp_path / "spill.zst"
    batches = [[encode_record(t, f) for t, f in DOCS], [], [encode_record("after an empty frame", {"k": 1})], [encode_record("last", {})]]
    for batch in batches:
        append_frame(str(path), batch)
    with open(path, "rb") as f:
        frames = f.read()
    assert frames.count(zstandard.FRAME_HEADER) == len(batches)
    assert list(iter_raw(str(path))) == [r for batch in batches for r in batch]


def test_a_missing_file_holds_no_records(tmp_path):
    assert list(iter_raw(str(tmp_path / "never-written.zst"))) == []


def test_a_file_ending_inside_a_record_is_an_error_after_the_complete_records(tmp_path):
    path = tmp_path / "cut.zst"
    records = [encode_record(f"record {i}", {"i": i}) for i in range(100)]
    path.write_bytes(zstandard.ZstdCompressor().compress(b"".join(records)[:-3]))
    got = []
    with pytest.raises(WorkDirError, match="ends inside a record; the staging file is truncated"):
        for raw in iter_raw(str(path)):
            got.append(raw)
    assert got == records[:-1]


def test_a_file_cut_where_a_block_ends_on_a_record_boundary_is_an_error_not_fewer_records(tmp_path):
    """zstd blocks hold 128 KiB; 1 KiB records end exactly where a block does, so a decoder that takes a
    cut frame for a clean end would return whole records and lose the rest without a word."""
    texts = [hashlib.sha256(str(i).encode()).hexdigest() * 15 + "x" * 56 for i in range(1024)]  # 1016 bytes
    records = [encode_record(t, {}) for t in texts]
    assert {len(r) for r in records} == {1024}
    path = tmp_path / "docs.zst"
    writer = RecordWriter(str(path))
    for r in records:
        writer.write(r)
    writer.close()
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(WorkDirError, match="ends inside a frame.*the staging file is truncated"):
        list(iter_raw(str(path)))


def test_a_staging_file_that_is_not_zstd_is_a_work_dir_error(tmp_path):
    path = tmp_path / "docs.zst"
    path.write_bytes(b"this is not a zstd frame at all" * 4)
    with pytest.raises(WorkDirError, match="docs.zst: not a zstd frame at byte 0.*rerun without --resume"):
        list(iter_raw(str(path)))
