"""Append-only zstd record files: the converter's on-disk staging for documents.

Documents are staged twice: once in read order (so embedding can be resumed and repeated
without re-parsing inputs) and once per cluster (so packing writes one cluster at a time in
memory that does not grow with the corpus). Both use this one format: a sequence of zstd
frames, each holding newline-separated JSON records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import zstandard


def encode_record(text: str, fields: dict[str, Any]) -> bytes:
    """One staged document as a JSON line; ``fields`` are the kept input fields."""
    return json.dumps([text, fields or None], ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode_record(line: bytes) -> tuple[str, dict[str, Any]]:
    text, fields = json.loads(line)
    return text, fields or {}


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


def append_frame(path: str, records: list[bytes], *, level: int = 1) -> None:
    """Append one zstd frame holding ``records`` to ``path`` (opened and closed each time, so any number of files can grow at once)."""
    with open(path, "ab") as f:
        f.write(zstandard.ZstdCompressor(level=level).compress(b"".join(records)))


def read_records(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record of a file written by ``RecordWriter`` or ``append_frame``, in order."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
        buffer = b""
        while chunk := reader.read(1 << 20):
            buffer += chunk
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            for line in lines:
                yield decode_record(line)
        if buffer:
            yield decode_record(buffer)
