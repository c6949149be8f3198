"""``writers/docstore.py`` units test_docstore.py leaves out: records with empty, unicode, control-character and
large fields, records whose header straddles a read, and every way a damaged file can end (``ZstdReader``)."""

from __future__ import annotations

import io
import json
import os
import struct

import pytest
import zstandard

from streamclip.errors import WorkDirError
from streamclip.writers.docstore import RecordWriter, ZstdReader, append_frame, decode_record, encode_record, iter_raw, read_records, record_text

RECORDS = [
    ("", {}),
    ("", {"source": "empty text, kept fields"}),
    ("text with NUL \x00, CR LF \r\n, tab \t and DEL \x7f", {"ctl": "\x00\x01\x1f"}),
    ("non-BMP 𝄞🎉 and combining e\u0301", {"ключ": "значение", "键": ["值", None, 1.5, True], "": ""}),
    ("quotes \" and backslashes \\ in text", {"json-ish": '{"not": "parsed"}', "escape": "\\u0000"}),
    ("large fields", {"blob": "é" * (1 << 20), "list": list(range(50_000))}),  # JSON > 2 MiB: spans iter_raw's reads
    ("ñ" * (600_000), {}),
]


def write(path, records, *, frames: bool = False) -> None:
    if frames:
        for r in records:
            append_frame(str(path), [r])
        return
    writer = RecordWriter(str(path))
    for r in records:
        writer.write(r)
    writer.close()


@pytest.mark.parametrize("text, fields", RECORDS, ids=range(len(RECORDS)))
def test_a_record_decodes_to_its_text_fields_and_utf8_length(text, fields):
    raw = encode_record(text, fields)
    body = text.encode("utf-8")
    assert decode_record(raw) == (text, fields, len(body))
    assert record_text(raw) == (struct.pack("<I", len(body)), body)


@pytest.mark.parametrize("frames", [False, True], ids=["one-stream", "frame-per-record"])
def test_odd_records_round_trip_through_a_file_in_order(tmp_path, frames):
    path = tmp_path / "docs.zst"
    records = [encode_record(t, f) for t, f in RECORDS]
    write(path, records, frames=frames)
    assert list(iter_raw(str(path))) == records
    assert [(t, f) for t, f, _ in read_records(str(path))] == RECORDS


def test_many_empty_records_are_all_kept(tmp_path):
    path = tmp_path / "empty.zst"
    write(path, [encode_record("", {})] * 10_000)
    assert list(read_records(str(path))) == [("", {}, 0)] * 10_000


@pytest.mark.parametrize("shift", [-9, -8, -5, -1, 0, 1])
def test_a_header_straddling_a_read_boundary_is_joined(tmp_path, shift):
    """iter_raw reads 1 MiB at a time: the second record's 8-byte header starts ``shift`` bytes from that boundary."""
    first = encode_record("a" * ((1 << 20) + shift - 8), {})
    rest = [encode_record("after the boundary", {"k": 1}), encode_record("", {}), encode_record("end", {})]
    path = tmp_path / "docs.zst"
    write(path, [first, *rest])
    assert list(iter_raw(str(path))) == [first, *rest]


def test_an_existing_empty_file_holds_no_records(tmp_path):
    (tmp_path / "zero.zst").write_bytes(b"")
    assert list(iter_raw(str(tmp_path / "zero.zst"))) == []


@pytest.mark.parametrize("keep", [1, 4, 7, 8, 9])
def test_a_stream_ending_inside_the_last_records_header_or_body_is_an_error(tmp_path, keep):
    """The zstd frames are whole; only the records inside them stop short (``keep`` bytes of the last one)."""
    records = [encode_record(f"record {i}", {"i": i}) for i in range(10)]
    last = encode_record("the last record", {"cut": True})
    path = tmp_path / "short.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"".join(records) + last[:keep]))
    got = []
    with pytest.raises(WorkDirError, match=rf"{path}: ends inside a record; the staging file is truncated \(rerun without --resume\)"):
        got.extend(iter_raw(str(path)))
    assert got == records


def test_bytes_after_the_last_frame_are_an_error_naming_the_file(tmp_path):
    path = tmp_path / "tail.zst"
    write(path, [encode_record("fine", {})] * 3)
    with open(path, "ab") as f:
        f.write(b"junk after the frames")
    with pytest.raises(WorkDirError, match=rf"{path}: not a zstd frame at byte \d+; the staging file is truncated or damaged"):
        list(iter_raw(str(path)))


def test_the_byte_named_for_bytes_after_the_frames_is_where_they_start(tmp_path):
    path = tmp_path / "tail.zst"
    write(path, [encode_record(f"record {i} " * 10, {}) for i in range(200)])
    good = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"junk after the frames")
    with pytest.raises(WorkDirError) as raised:
        list(iter_raw(str(path)))
    assert f"at byte {good};" in str(raised.value)


def test_a_corrupted_block_is_a_work_dir_error_naming_the_file(tmp_path):
    path = tmp_path / "flipped.zst"
    write(path, [encode_record(f"record number {i} " * 20, {"i": i}) for i in range(2000)])
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the first block's compressed sequences
    path.write_bytes(bytes(data))
    with pytest.raises(WorkDirError, match=str(path)):
        list(iter_raw(str(path)))


@pytest.mark.parametrize("frames", [False, True], ids=["one stream", "appended frames"])
def test_no_flipped_byte_reads_as_other_records(tmp_path, frames):
    """Every byte of a small staging file flipped in turn: each read either fails naming the file or gives
    the records written (a flip in the window size changes nothing), never other records."""
    records = [encode_record(f"document {i}: " + "word " * (i % 7), {"i": i}) for i in range(12)]
    path = tmp_path / "flip.zst"
    write(path, records, frames=frames)
    data = path.read_bytes()
    silent = []
    for at in range(len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0x10
        path.write_bytes(bytes(damaged))
        try:
            got = list(iter_raw(str(path)))
        except WorkDirError as e:
            assert str(path) in str(e)
            continue
        if got != records:
            silent.append(at)
    assert silent == []


def frames_of_every_kind() -> tuple[list[bytes], list[bytes]]:
    """Frames (and the content of each) covering the header and block forms ``_FrameWalker`` follows:
    with and without content size and checksum, compressed, raw (random bytes), RLE and empty, and a skippable frame."""
    random = bytes((i * 2654435761 >> 7) & 0xFF for i in range(300))
    parts = [
        (b"compressible text " * 40, dict(level=3)),
        (random, dict(write_checksum=True)),
        (b"z" * 500, dict(write_content_size=False)),  # a compressed block, as it happens
        (b"", dict()),
        (b"with a checksum and no size " * 5, dict(write_checksum=True, write_content_size=False)),
    ]
    frames = [zstandard.ZstdCompressor(**options).compress(content) for content, options in parts]
    contents = [content for content, _ in parts]
    skippable = struct.pack("<II", 0x184D2A53, 6) + b"ignore"
    # the compressor writes no RLE block for these sizes: one by hand (single segment, 1-byte content size, last block)
    rle = struct.pack("<I", 0xFD2FB528) + bytes([0x20, 200]) + (1 | 1 << 1 | 200 << 3).to_bytes(3, "little") + b"r"
    return frames[:2] + [skippable, rle] + frames[2:], contents[:2] + [b"", b"r" * 200] + contents[2:]


def test_zstd_reader_reads_every_frame_kind_back():
    frames, contents = frames_of_every_kind()
    assert ZstdReader(io.BytesIO(b"".join(frames))).read() == b"".join(contents)


def test_zstd_reader_never_returns_a_cut_stream_as_a_shorter_one():
    """Cut anywhere, a stream reads as its complete frames when the cut falls between frames, and raises otherwise."""
    frames, contents = frames_of_every_kind()
    stream = b"".join(frames)
    ends = {sum(len(f) for f in frames[:i]): b"".join(contents[:i]) for i in range(len(frames) + 1)}
    for cut in range(len(stream)):
        reader = ZstdReader(io.BytesIO(stream[:cut]))
        if cut in ends:
            assert reader.read() == ends[cut], cut
        else:
            with pytest.raises(EOFError, match=f"ends inside a frame, at byte {cut}: the file is truncated"):
                reader.read()
