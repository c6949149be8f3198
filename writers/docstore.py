"""Append-only zstd record files: the converter's on-disk staging for documents.

Documents are staged twice: once in read order (so embedding can be resumed and repeated
without re-parsing inputs) and once per cluster when the corpus outgrows the memory budget (so
packing writes one cluster at a time). Both use this one format: zstd frames holding
length-prefixed records (``uint32 text bytes, uint32 field bytes, text, JSON fields``). Records
pass from one staging file to the other as raw bytes, without being decoded and re-encoded.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import zstandard

_HEADER = struct.Struct("<II")


def encode_record(text: str, fields: dict[str, Any]) -> bytes:
    """One staged document; ``fields`` are the kept input fields."""
    body = text.encode("utf-8")
    extra = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode() if fields else b""
    return _HEADER.pack(len(body), len(extra)) + body + extra


def record_text(raw: bytes) -> tuple[bytes, bytes]:
    """``(size, text)`` of a record without decoding: its text's byte length as a little-endian uint32
    (the header's first field) and the UTF-8 text itself."""
    end = _HEADER.size + _HEADER.unpack_from(raw)[0]
    return raw[:4], raw[_HEADER.size : end]


def decode_record(raw: bytes) -> tuple[str, dict[str, Any], int]:
    """``(text, fields, text_bytes)`` of one raw record."""
    size, extra = _HEADER.unpack_from(raw)
    end = _HEADER.size + size
    return raw[_HEADER.size : end].decode("utf-8"), (json.loads(raw[end : end + extra]) if extra else {}), size


class RecordWriter:
    """Writes records to one file as a single zstd stream; ``close`` makes it complete."""

    def __init__(self, path: str, *, level: int = 3) -> None:
        self._file = open(path, "wb")
        self._stream = zstandard.ZstdCompressor(level=level).stream_writer(self._file, closefd=False)

    def write(self, record: bytes) -> None:
        self._stream.write(record)

    def close(self) -> None:
        self._stream.close()
        self._file.close()


def append_frame(path: str, records: Iterable[bytes], *, level: int = 1) -> None:
    """Append one zstd frame holding ``records`` to ``path`` (opened and closed each time, so any number of files can grow at once)."""
    with open(path, "ab") as f:
        f.write(zstandard.ZstdCompressor(level=level).compress(b"".join(records)))


def iter_raw(path: str) -> Iterator[bytes]:
    """Every raw record of a file written by ``RecordWriter`` or ``append_frame``, in order."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
        buffer = b""
        while chunk := reader.read(1 << 20):
            buffer = buffer + chunk if buffer else chunk
            pos, end = 0, len(buffer)
            while pos + _HEADER.size <= end:
                size, extra = _HEADER.unpack_from(buffer, pos)
                stop = pos + _HEADER.size + size + extra
                if stop > end:
                    break
                yield buffer[pos:stop]
                pos = stop
            buffer = buffer[pos:]
        if buffer:
            raise ValueError(f"{path}: ends inside a record; the staging file is truncated (rerun without --resume)")


def read_records(path: str) -> Iterator[tuple[str, dict[str, Any], int]]:
    """Every record of a staging file, decoded: ``(text, fields, text_bytes)``."""
    return map(decode_record, iter_raw(path))
