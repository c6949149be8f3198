"""Append-only zstd record files: the converter's on-disk staging for documents.

Documents are staged twice: once in read order (so embedding can be resumed and repeated
without re-parsing inputs) and once per cluster when the corpus outgrows the memory budget (so
packing writes one cluster at a time). Both use this one format: zstd frames holding
length-prefixed records (``uint32 text bytes, uint32 field bytes, text, JSON fields``). Records
pass from one staging file to the other as raw bytes, without being decoded and re-encoded.
Reading checks that the last zstd frame is complete (``ZstdReader``), so a cut file is an error,
never fewer records; frames carry a content checksum, so a damaged byte is an error, never other text.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import zstandard

from streamclip.errors import WorkDirError

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
        self._stream = zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(self._file, closefd=False)

    def write(self, record: bytes) -> None:
        self._stream.write(record)

    def close(self) -> None:
        self._stream.close()
        self._file.close()


def append_frame(path: str, records: Iterable[bytes], *, level: int = 1) -> None:
    """Append one zstd frame holding ``records`` to ``path`` (opened and closed each time, so any number of files can grow at once)."""
    with open(path, "ab") as f:
        f.write(zstandard.ZstdCompressor(level=level, write_checksum=True).compress(b"".join(records)))


class ZstdReader(io.RawIOBase):
    """zstd-decompressed bytes, raising ``EOFError`` where the compressed stream stops inside a frame.

    python-zstandard's ``stream_reader`` reports a cut frame as a clean end, so a cut file (an
    interrupted download, the staging file of a killed run) would lose its tail silently; a
    ``_FrameWalker`` follows the frame boundaries of the bytes it reads. Used for staging files and for
    ``.zst`` inputs alike.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._frames = _FrameWalker()
        self._stream = zstandard.ZstdDecompressor().stream_reader(_Tee(raw, self._frames), read_across_frames=True)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._stream.readinto(buffer)
        if n == 0 and self._frames.inside:
            raise EOFError(f"the zstd stream ends inside a frame, at byte {self._frames.offset}: the file is truncated")
        return n

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class _Tee:
    """A reader passing every byte it reads through a ``_FrameWalker``."""

    def __init__(self, raw: BinaryIO, frames: _FrameWalker) -> None:
        self._raw = raw
        self._frames = frames

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._frames.feed(data)
        return data


class _FrameWalker:
    """Follows zstd frames (RFC 8878) through their headers only, to tell where a frame ends.

    A frame is a magic number, a header whose length its first byte gives, blocks (a 3-byte header:
    last-block bit, type, size; an RLE block carries one byte) and an optional 4-byte checksum;
    skippable frames carry their own length.
    """

    _FRAME, _SKIPPABLE = 0xFD2FB528, range(0x184D2A50, 0x184D2A60)

    def __init__(self) -> None:
        self.offset = 0  # compressed bytes seen
        self._at = 0  # where the header being advanced over starts, for errors
        self._head = b""  # bytes of the header being read
        self._need = 4  # length of that header
        self._state = "magic"
        self._skip = 0  # payload bytes to pass over
        self._checksum = False

    @property
    def inside(self) -> bool:
        return self._state != "magic" or bool(self._head) or self._skip > 0

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._need - len(self._head), end - pos)
            self._head += data[pos : pos + take]
            pos += take
            if len(self._head) == self._need:
                head, self._head = self._head, b""
                self._at = self.offset + pos - len(head)
                self._advance(head)
        self.offset += end

    def _advance(self, head: bytes) -> None:
        value = int.from_bytes(head, "little")
        if self._state == "magic":
            if value == self._FRAME:
                self._state, self._need = "descriptor", 1
            elif value in self._SKIPPABLE:
                self._state, self._need = "skippable", 4
            else:
                raise ValueError(f"not a zstd frame at byte {self._at}")
        elif self._state == "descriptor":
            single = value >> 5 & 1
            self._checksum = bool(value >> 2 & 1)
            rest = (1 - single) + (0, 1, 2, 4)[value & 3] + (single, 2, 4, 8)[value >> 6]
            self._state, self._need = ("header", rest) if rest else ("block", 3)
        elif self._state == "header":
            self._state, self._need = "block", 3
        elif self._state == "block":
            kind, size = value >> 1 & 3, value >> 3
            if kind == 3:
                raise ValueError(f"a reserved zstd block type at byte {self._at}")
            self._skip = 1 if kind == 1 else size
            if value & 1:
                self._state, self._need = ("checksum", 4) if self._checksum else ("magic", 4)
        elif self._state == "checksum":
            self._state, self._need = "magic", 4
        else:  # skippable: the frame's length
            self._skip = value
            self._state, self._need = "magic", 4


def iter_raw(path: str) -> Iterator[bytes]:
    """Every raw record of a file written by ``RecordWriter`` or ``append_frame``, in order."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f, ZstdReader(f) as reader:
        buffer = b""
        while chunk := _read_staged(reader, path):
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
            raise WorkDirError(f"{path}: ends inside a record; the staging file is truncated (rerun without --resume)")


def _read_staged(reader: ZstdReader, path: str) -> bytes:
    try:
        return reader.read(1 << 20)
    except (EOFError, ValueError, zstandard.ZstdError) as e:  # cut short, not zstd frames at all, or a damaged block
        raise WorkDirError(f"{path}: {e}; the staging file is truncated or damaged (rerun without --resume)") from None


def read_records(path: str) -> Iterator[tuple[str, dict[str, Any], int]]:
    """Every record of a staging file, decoded: ``(text, fields, text_bytes)``."""
    return map(decode_record, iter_raw(path))
