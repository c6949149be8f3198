"""Read many samples of MDS shards at once from memory-mapped raw shard files.

Stock ``MDSReader.get_sample_data`` opens, seeks, reads and closes the shard file for every
sample, which costs far more than the sample itself. Here each decompressed raw shard
(``shard.NNNNN.mds``, put in place by stock ``prepare_shard``) is mapped once, its offsets
table is parsed once with numpy, and a batch of samples of one shard is decoded with vectorised
header parsing: one slice of the mapping per column value. streamclip's columns (``str``,
``int32``, ``json``) have a specialised decoder; any other encoding falls back to the shard's
own ``decode_sample`` on the sliced bytes, so the values are exactly what stock returns.

Eviction: streaming publishes shard files by rename and evicts them by unlinking, never by
rewriting in place, so a mapping always shows a complete, correct shard (a deleted file stays
readable while mapped). :meth:`ShardSpanReader.current` notices a file that is gone or was
replaced (another inode) and drops the old mapping, so deleted files are not kept alive.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from streaming.base.format.base.reader import Reader

__all__ = ["ShardSpanReader"]

# Encodings decoded here without stock's per-value ``mds_decode`` dispatch; same results.
FAST_ENCODINGS = frozenset({"str", "int32", "json"})
_BYTE_RANGE = np.arange(4, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _Columns:
    """One shard's column layout: names in stored (sorted) order, encodings, fixed sizes (None = variable)."""

    names: tuple[str, ...]
    encodings: tuple[str, ...]
    sizes: tuple[int | None, ...]

    @property
    def fast(self) -> bool:
        return all(e in FAST_ENCODINGS for e in self.encodings) and all(
            (s == 4) if e == "int32" else (s is None) for e, s in zip(self.encodings, self.sizes)
        )

    @property
    def num_variable(self) -> int:
        return sum(1 for s in self.sizes if not s)


class _Mapped:
    """One mapped raw shard: the mapping, a uint8 view of it, its int64 offsets, and the file's identity."""

    __slots__ = ("mm", "u8", "offsets", "identity", "last_used")

    def __init__(self, path: str, num_samples: int) -> None:
        with open(path, "rb") as f:
            identity = _identity(os.fstat(f.fileno()))
            self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.u8 = np.frombuffer(self.mm, np.uint8)
        if len(self.u8) < 4 * (num_samples + 2) or int(self.u8[:4].view(np.uint32)[0]) != num_samples:
            raise ValueError(f"{path}: not an MDS shard of {num_samples} samples (truncated or another file)")
        self.offsets = self.u8[4 : 4 * (num_samples + 2)].view(np.uint32).astype(np.int64)
        if self.offsets[-1] > len(self.u8):
            raise ValueError(f"{path}: offsets point past the end of the file ({self.offsets[-1]} > {len(self.u8)} bytes)")
        self.identity = identity
        self.last_used = 0


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_dev, st.st_ino, st.st_size


class ShardSpanReader:
    """Decodes batches of samples from the raw files of ``shards`` (stock MDS shard readers).

    Not thread-safe: one reader per iterating thread. Mappings live until :meth:`release`,
    :meth:`forget_unused` or :meth:`current` finds their file gone or replaced.
    """

    def __init__(self, shards: Sequence[Reader]) -> None:
        self.shards = shards
        self._mapped: dict[int, _Mapped] = {}
        self._columns: dict[int, _Columns] = {}
        self._tick = 0

    def path(self, shard_id: int) -> str:
        shard = self.shards[shard_id]
        return os.path.join(shard.dirname, shard.split, shard.raw_data.basename)

    def current(self, shard_id: int) -> bool:
        """Map the shard's raw file if needed; False if it is missing (the caller prepares it again).

        A mapping whose file was unlinked (evicted) or replaced (re-downloaded: another inode) is
        dropped and, when a file is there again, the new one is mapped.
        """
        self._tick += 1
        path = self.path(shard_id)
        try:
            identity = _identity(os.stat(path))
        except FileNotFoundError:
            self._mapped.pop(shard_id, None)
            return False
        mapped = self._mapped.get(shard_id)
        if mapped is None or mapped.identity != identity:
            try:
                mapped = _Mapped(path, self.shards[shard_id].samples)
            except FileNotFoundError:  # evicted between stat and open
                self._mapped.pop(shard_id, None)
                return False
            self._mapped[shard_id] = mapped
        mapped.last_used = self._tick
        return True

    def forget_unused(self, keep_last: int) -> None:
        """Drop mappings not used by the last ``keep_last`` calls of :meth:`current`, so that files
        evicted meanwhile do not stay on disk and the number of mappings stays bounded."""
        stale = [sid for sid, m in self._mapped.items() if self._tick - m.last_used >= keep_last]
        for sid in stale:
            del self._mapped[sid]

    def release(self) -> None:
        """Drop every mapping (the OS unmaps when the last reference goes)."""
        self._mapped.clear()

    @property
    def num_mapped(self) -> int:
        return len(self._mapped)

    def decode(self, shard_id: int, indices: NDArray[np.int64]) -> list[dict[str, Any]]:
        """The samples at ``indices`` (shard-relative) of a shard made :meth:`current` just before, in that order."""
        mapped = self._mapped[shard_id]
        columns = self._columns.get(shard_id)
        if columns is None:
            shard = self.shards[shard_id]
            columns = _Columns(tuple(shard.column_names), tuple(shard.column_encodings), tuple(shard.column_sizes))
            self._columns[shard_id] = columns
        starts = mapped.offsets[indices]
        if not columns.fast:
            decode_sample: Callable[[bytes], dict[str, Any]] = self.shards[shard_id].decode_sample
            ends = mapped.offsets[indices + 1]
            mm = mapped.mm
            return [decode_sample(mm[b:e]) for b, e in zip(starts.tolist(), ends.tolist())]
        return _decode_fast(mapped, columns, starts, mapped.offsets[indices + 1])


def _decode_fast(mapped: _Mapped, columns: _Columns, starts: NDArray[np.int64], ends: NDArray[np.int64]) -> list[dict[str, Any]]:
    """``decode_sample`` for str / int32 / json columns, vectorised over samples.

    A sample is ``uint32 size`` for each variable column, then each column's bytes in column order.
    """
    u8, mm = mapped.u8, mapped.mm
    nvar = columns.num_variable
    if nvar:
        head = u8[starts[:, None] + np.arange(4 * nvar, dtype=np.int64)].view(np.uint32).astype(np.int64)
    pos = starts + 4 * nvar
    values: list[list[Any]] = []
    var = 0
    for encoding, fixed in zip(columns.encodings, columns.sizes):
        if fixed:
            size: NDArray[np.int64] | int = fixed
        else:
            size = head[:, var]
            var += 1
        end = pos + size
        if encoding == "int32":
            values.append(list(u8[pos[:, None] + _BYTE_RANGE].view(np.int32)[:, 0]))
        else:
            texts = [mm[b:e].decode("utf-8") for b, e in zip(pos.tolist(), end.tolist())]
            values.append(texts if encoding == "str" else [json.loads(t) for t in texts])
        pos = end
    if not np.array_equal(pos, ends):
        bad = int(np.flatnonzero(pos != ends)[0])
        raise ValueError(f"corrupt MDS sample at byte {int(starts[bad])}: its columns end at {int(pos[bad])}, the offsets table says {int(ends[bad])}")
    names = columns.names
    if len(names) == 2:
        a, b = names
        return [{a: x, b: y} for x, y in zip(*values)]
    return [dict(zip(names, row)) for row in zip(*values)]
