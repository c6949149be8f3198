"""Read many samples of MDS shards at once from memory-mapped raw shard files.

Stock ``MDSReader.get_sample_data`` opens, seeks, reads and closes the shard file for every
sample, which costs far more than the sample itself. Here each decompressed raw shard
(``shard.NNNNN.mds``, put in place by stock ``prepare_shard``) is mapped once, and its offsets
table and every sample's column headers are parsed once, vectorised, into per-column arrays
(where each value starts and ends, or the value itself for ``int32``). Reading a batch of
samples spread over many shards is then a few numpy gathers per shard plus one slice and decode
per value. streamclip's columns (``str``, ``int32``, ``json``) take this path; any other encoding
falls back to the shard's own ``decode_sample`` on the sliced bytes. Either way the values (and
their types: ``np.int32``, ``str``, parsed JSON) are exactly what stock returns.

Eviction: streaming publishes shard files by rename and evicts them by unlinking, never by
rewriting in place, so a mapping always shows a complete, correct shard (a deleted file stays
readable while mapped). But a deleted file keeps its blocks on disk while it is mapped, so under
a cache limit the reader drops the mappings of evicted or replaced files after every chunk
(:meth:`ShardSpanReader.forget_stale`); :meth:`ShardSpanReader.current` also notices a file that
is gone or was replaced (another inode) when the shard is read again.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ShardError

if TYPE_CHECKING:
    from streamclip.readers.compat import Reader

__all__ = ["ShardSpanReader"]

# Encodings decoded here from the parsed tables; same values as stock ``mds_decode``.
FAST_ENCODINGS = frozenset({"str", "int32", "json"})


def _is_fast(encodings: Sequence[str], sizes: Sequence[int | None]) -> bool:
    return all(e in FAST_ENCODINGS and ((s == 4) if e == "int32" else not s) for e, s in zip(encodings, sizes))


class _Mapped:
    """One mapped raw shard: the mapping, its offsets and, for fast columns, per-column tables.

    ``tables[c]`` is an int32 array of values for an ``int32`` column, else ``(starts, ends)``
    int64 byte ranges in the mapping. A sample is ``uint32 size`` for each variable column, then
    each column's bytes in column order (``MDSReader.decode_sample``).
    """

    __slots__ = ("mm", "offsets", "identity", "tables", "last_used")

    def __init__(self, buffer: mmap.mmap | bytes, identity: tuple[int, int, int], shard: Reader, path: str) -> None:
        self.mm, self.identity = buffer, identity
        n = shard.samples
        u8 = np.frombuffer(self.mm, np.uint8)
        if len(u8) < 4 * (n + 2) or int(u8[:4].view(np.uint32)[0]) != n:
            raise ShardError(f"{path}: not an MDS shard of {n} samples (truncated or another file)")
        self.offsets = u8[4 : 4 * (n + 2)].view(np.uint32).astype(np.int64)
        if self.offsets[-1] > len(u8):
            raise ShardError(f"{path}: offsets point past the end of the file ({self.offsets[-1]} > {len(u8)} bytes)")
        self.tables = _parse_columns(u8, self.offsets, shard, path) if _is_fast(shard.column_encodings, shard.column_sizes) else None
        self.last_used = 0

    @classmethod
    def open(cls, path: str, shard: Reader) -> _Mapped:
        with open(path, "rb") as f:
            identity = _identity(os.fstat(f.fileno()))
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return cls(buffer, identity, shard, path)


def _parse_columns(u8: NDArray[np.uint8], offsets: NDArray[np.int64], shard: Reader, path: str) -> list[Any]:
    starts, ends = offsets[:-1], offsets[1:]
    nvar = sum(1 for s in shard.column_sizes if not s)
    head = u8[starts[:, None] + np.arange(4 * nvar)].view(np.uint32).astype(np.int64) if nvar else None
    pos, var, tables = starts + 4 * nvar, 0, []
    for fixed in shard.column_sizes:
        if fixed:
            tables.append(u8[pos[:, None] + np.arange(4)].view(np.int32)[:, 0].copy())
            pos = pos + fixed
        else:
            end = pos + head[:, var]  # type: ignore[index]
            tables.append((pos, end))
            pos, var = end, var + 1
    if not np.array_equal(pos, ends):
        bad = int(np.flatnonzero(pos != ends)[0])
        raise ShardError(f"{path}: corrupt sample {bad}: its columns end at byte {int(pos[bad])}, the offsets table says {int(ends[bad])}")
    return tables


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_dev, st.st_ino, st.st_size


class ShardSpanReader:
    """Decodes batches of samples from the raw files of ``shards`` (stock MDS shard readers).

    Not thread-safe: one reader per iterating thread. Mappings live until :meth:`release`,
    :meth:`forget_unused`, :meth:`forget_stale`, or :meth:`current` finds their file gone or replaced.
    """

    def __init__(self, shards: Sequence[Reader]) -> None:
        self.shards = shards
        self._mapped: dict[int, _Mapped] = {}
        self._tick = 0
        layouts = {(tuple(s.column_names), tuple(s.column_encodings), tuple(s.column_sizes)) for s in shards}
        names, encodings, sizes = next(iter(layouts))
        # One vectorised assembly for a whole batch needs every shard to share one fast layout.
        self._layout = (names, encodings) if len(layouts) == 1 and _is_fast(encodings, sizes) else None

    def path(self, shard_id: int) -> str:
        shard = self.shards[shard_id]
        return os.path.join(shard.dirname, shard.split, shard.raw_data.basename)

    def current(self, shard_id: int, *, check: bool = True) -> bool:
        """Map the shard's raw file if needed; False if it is missing (the caller prepares it again).

        With ``check``, a mapping whose file was unlinked (evicted) or replaced (re-downloaded:
        another inode) is dropped and, when a file is there again, the new one is mapped. Without
        it (nothing evicts: no ``cache_limit``), an existing mapping is trusted without a ``stat``.
        """
        self._tick += 1
        mapped = self._mapped.get(shard_id)
        if mapped is not None and not check:
            mapped.last_used = self._tick
            return True
        path = self.path(shard_id)
        try:
            identity = _identity(os.stat(path))
        except FileNotFoundError:
            self._mapped.pop(shard_id, None)
            return False
        if mapped is None or mapped.identity != identity:
            try:
                mapped = _Mapped.open(path, self.shards[shard_id])
            except FileNotFoundError:  # evicted between stat and open
                self._mapped.pop(shard_id, None)
                return False
            self._mapped[shard_id] = mapped
        mapped.last_used = self._tick
        return True

    def forget_unused(self, keep_last: int) -> None:
        """Drop mappings not used by the last ``keep_last`` calls of :meth:`current`, so that files
        evicted meanwhile do not stay on disk and the number of mappings stays bounded."""
        for sid in [sid for sid, m in self._mapped.items() if self._tick - m.last_used >= keep_last]:
            del self._mapped[sid]

    def forget_stale(self, evicted: NDArray[np.bool_], keep: NDArray[np.int64] | None = None) -> None:
        """Drop the mappings of shards marked ``evicted``, of those whose file is gone or replaced, and (given
        ``keep``) of every shard not in it: an unlinked file's blocks are freed only once nothing maps it."""
        kept = None if keep is None else set(keep.tolist())
        for sid in list(self._mapped):
            if evicted[sid] or (kept is not None and sid not in kept) or not self._maps_file(sid):
                del self._mapped[sid]

    def _maps_file(self, shard_id: int) -> bool:
        try:
            return _identity(os.stat(self.path(shard_id))) == self._mapped[shard_id].identity
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Drop every mapping (the OS unmaps when the last reference goes)."""
        self._mapped.clear()

    @property
    def num_mapped(self) -> int:
        return len(self._mapped)

    def read(self, shard_ids: NDArray[np.int64], indices: NDArray[np.int64]) -> list[dict[str, Any]]:
        """Sample ``indices[i]`` of shard ``shard_ids[i]`` for every i, in order; each shard made :meth:`current` before."""
        if not len(shard_ids):
            return []
        try:
            return self._read(shard_ids, indices)
        except ValueError as e:  # bytes that are not UTF-8 or not JSON (UnicodeDecodeError, JSONDecodeError)
            raise ShardError(self._damaged(shard_ids, indices, e)) from None

    def _damaged(self, shard_ids: NDArray[np.int64], indices: NDArray[np.int64], error: ValueError) -> str:
        """Which sample would not decode, found by decoding one by one (only after a batch failed)."""
        for shard_id, index in zip(shard_ids.tolist(), indices.tolist()):
            m = self._mapped[shard_id]
            try:
                self.shards[shard_id].decode_sample(m.mm[int(m.offsets[index]) : int(m.offsets[index + 1])])
            except ValueError as e:
                return (f"{self.path(shard_id)}: sample {index} does not decode ({type(e).__name__}: {e}); the shard is damaged: "
                        "delete it to have it fetched (or decompressed) again, or convert the dataset again")
        return f"{self.path(int(shard_ids[0]))}: a sample does not decode ({type(error).__name__}: {error}); the shard is damaged"

    def _read(self, shard_ids: NDArray[np.int64], indices: NDArray[np.int64]) -> list[dict[str, Any]]:
        n = len(shard_ids)
        order = np.argsort(shard_ids, kind="stable")
        cuts = np.flatnonzero(shard_ids[order[1:]] != shard_ids[order[:-1]]) + 1
        mapped = [self._mapped[s] for s in shard_ids[order[np.concatenate(([0], cuts))]].tolist()]
        groups: list[tuple[_Mapped, Any]] = [(mapped[0], slice(None))] if len(mapped) == 1 else list(zip(mapped, np.split(order, cuts)))
        if self._layout is None:
            return self._read_each(shard_ids, indices, groups)
        names, encodings = self._layout
        if len(mapped) == 1:
            buffers = [mapped[0].mm] * n
        else:  # each sample's buffer: group number per sample, back in batch order
            group_of = np.empty(n, np.intp)
            group_of[order] = np.repeat(np.arange(len(mapped)), np.diff(np.concatenate(([0], cuts, [n]))))
            mms = [m.mm for m in mapped]
            buffers = [mms[g] for g in group_of.tolist()]
        columns: list[list[Any]] = []
        for c, encoding in enumerate(encodings):
            if encoding == "int32":
                values = np.empty(n, np.int32)
                for m, where in groups:
                    values[where] = m.tables[c][indices[where]]
                columns.append(list(values))
                continue
            begin, end = np.empty(n, np.int64), np.empty(n, np.int64)
            for m, where in groups:
                starts, ends = m.tables[c]
                begin[where], end[where] = starts[indices[where]], ends[indices[where]]
            texts = [buf[b:e].decode("utf-8") for buf, b, e in zip(buffers, begin.tolist(), end.tolist())]
            columns.append(texts if encoding == "str" else [json.loads(t) for t in texts])
        if len(names) == 2:
            a, b = names
            return [{a: x, b: y} for x, y in zip(*columns)]
        return [dict(zip(names, row)) for row in zip(*columns)]

    def _read_each(self, shard_ids: NDArray[np.int64], indices: NDArray[np.int64], groups: list[tuple[_Mapped, Any]]) -> list[dict[str, Any]]:
        """Any encoding: the shard's own ``decode_sample`` on each sample's bytes."""
        out: list[Any] = [None] * len(shard_ids)
        positions = np.arange(len(shard_ids))
        for m, where in groups:
            local = indices[where]
            decode_sample = self.shards[int(shard_ids[positions[where][0]])].decode_sample
            starts, ends = m.offsets[local].tolist(), m.offsets[local + 1].tolist()
            for i, b, e in zip(positions[where].tolist(), starts, ends):
                out[i] = decode_sample(m.mm[b:e])
        return out
