"""How many shards a reader needs at once: the most distinct shards in any window of its sequence.

A reader that prepares ``window`` samples ahead must hold every shard of those samples at the
same time, or it evicts a shard it has yet to read and downloads it again (thrashing). So the
largest number of distinct shards over all windows of the sequence, plus the shard being
downloaded next, is the least cache that reads each shard once per visit. Computed exactly in
O(n log n) for any n (no per-window loop), so it can be checked for a whole epoch of 10^8 ids.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from streamclip.errors import ConfigError

__all__ = ["max_distinct_in_windows"]


def max_distinct_in_windows(keys: ArrayLike, window: int) -> int:
    """The most distinct values among any ``window`` consecutive entries of ``keys`` (all of them if shorter).

    Entry i adds one to the windows that start after the previous occurrence of its value and
    no later than i: a range of window starts, summed with one difference array. The sum does not
    care about order, so entries are taken grouped by value (a stable sort), where each one's
    previous occurrence is simply the entry before it in its group.
    """
    keys = np.asarray(keys)
    if keys.ndim != 1:
        raise ConfigError(f"keys must be 1-D, got shape {keys.shape}")
    if window < 1:
        raise ConfigError(f"window must be >= 1, got {window}")
    n = len(keys)
    if n == 0:
        return 0
    window = min(int(window), n)
    compact = _compact(keys)
    position = np.argsort(compact, kind="stable")  # grouped by value, ascending positions within a group
    previous = np.empty(n, dtype=np.int64)
    previous[0] = -1
    previous[1:] = position[:-1]
    if compact.dtype == np.uint16:
        group_starts = np.cumsum(np.bincount(compact))[:-1]
    else:
        grouped = keys[position]
        group_starts = np.flatnonzero(grouped[1:] != grouped[:-1]) + 1
    previous[group_starts] = -1
    starts = n - window + 1  # windows begin at 0 .. n - window
    first = np.maximum(previous + 1, position - window + 1)
    last = np.minimum(position, starts - 1)
    counted = first <= last
    change = np.bincount(first[counted], minlength=starts + 1) - np.bincount(last[counted] + 1, minlength=starts + 1)
    return int(np.cumsum(change[:starts]).max())


def _compact(keys: np.ndarray) -> np.ndarray:
    """Integer keys spanning fewer than 2^16 values as uint16 from 0, where numpy's stable sort is a radix
    sort (10x faster than on int64 at 10^7 keys): shard ids are such keys."""
    if keys.dtype.kind not in "iu":
        return keys
    low, high = int(keys.min()), int(keys.max())
    if high - low >= 1 << 16:
        return keys
    return (keys - low).astype(np.uint16)
