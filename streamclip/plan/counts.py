"""Integer draws per cluster after t draws of the run: exact, monotone, never above a cap.

Rounding each ``D_k(t)`` on its own neither sums to t nor stays monotone in t (the Alabama paradox).
Instead every draw of the run gets a due time and the first t draws are the t earliest:

    the j-th draw of cluster k (j = 0, 1, ...) is due when D_k reaches j + 1 - o_k,
    with o_k = frac(k * 0.618...), ties by cluster id.

So the count of cluster k among the first t draws is ``floor(D_k(x) + o_k)`` for the time x where
the counts add up to t, found by bisection over the bits of x (at most 64 steps of O(K), whatever
the size of t). Counts are then exact, non-decreasing in t, never above ``floor(cap_k)``, and
computable for any t without looking at earlier segments.

Why golden-ratio offsets and not ``round(D_k)`` (o_k = 1/2 for all)? With equal offsets, clusters
that rise in lock-step (same or similar rates) become due at the same instant, so x runs ahead of t
and the other clusters are over-served meanwhile: one large and 1000 small clusters under
``random`` gave a 250-draw gap with 1/2, 1 with these offsets. Spread offsets spread those due
times; the price is a persistent bias of ``o_k - 1/2`` per cluster, so for a few clusters with
unrelated rates the gap is a little wider (max 1.7 vs 0.96 for K=3 lognormal sizes; about equal,
2.4-5.5, for K=9..100).

Within 1 of ``D_k(t)`` holds whenever all clusters with room rise at the same rate (uniform,
clusterclip). For mixed rates it is not guaranteed: the apportionment methods known to keep both
quota and house-monotonicity are sequential (Balinski & Young), which a segment computed without
its history cannot use. The bound that always holds is within 1 of ``D_k(x)`` with ``|x - t| < K``.
"""

from __future__ import annotations

from numbers import Integral
from typing import Callable

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError, StreamclipError
from streamclip.plan.schedule import RunSchedule

__all__ = ["counts_at", "due_offsets"]

_GOLDEN = 0.6180339887498949


def due_offsets(num_clusters: int) -> NDArray[np.float64]:
    """float64[K] in [0, 1): cluster k's draws are due when D_k reaches an integer minus o_k, plus 1."""
    return np.modf(np.arange(num_clusters, dtype=np.float64) * _GOLDEN)[0]


def _due(schedule: RunSchedule, x: float, offsets: NDArray[np.float64]) -> NDArray[np.int64]:
    return np.floor(schedule.draws_unchecked(x) + offsets).astype(np.int64)


def _as_bits(x: float) -> int:
    return int(np.float64(x).view(np.int64))


def _from_bits(bits: int) -> float:
    return float(np.int64(bits).view(np.float64))


# Both searches are bounded, so a float surprise fails loudly instead of spinning: doubling from
# t + K + 1 passes every float64 in 1024 steps, and bisecting a float64 bit range takes at most 64.
_MAX_DOUBLINGS = 1100
_MAX_BISECTIONS = 64


def _upper_bound(due_total: Callable[[float], int], t: int, hi: float) -> float:
    """A time by which at least ``t`` draws are due (``hi`` unless float error ate the margin)."""
    for _ in range(_MAX_DOUBLINGS):
        if due_total(hi) >= t:
            return hi
        hi *= 2.0
    raise StreamclipError(
        f"internal error: no time has {t} draws due (searched up to {hi:g}); the caps cannot be reached "
        "exactly. Please report this with the cluster sizes, strategy and total_samples."
    )


def _bisect_bits(due_total: Callable[[float], int], t: int, lo: float, hi: float) -> tuple[int, int]:
    """Adjacent float64 bit patterns (lo, hi) with fewer than ``t`` draws due at lo and ``t`` or more at hi.

    Non-negative float64 values order like their bit patterns, so bisecting those ends at the adjacent pair.
    """
    lo_bits, hi_bits = _as_bits(lo), _as_bits(hi)
    for _ in range(_MAX_BISECTIONS):
        if hi_bits - lo_bits <= 1:
            return lo_bits, hi_bits
        mid = (lo_bits + hi_bits) // 2
        if due_total(_from_bits(mid)) >= t:
            hi_bits = mid
        else:
            lo_bits = mid
    raise StreamclipError(f"internal error: bisection for draw {t} did not converge between {lo!r} and {hi!r}")


def counts_at(schedule: RunSchedule, t: int) -> NDArray[np.int64]:
    """int64[K]: draws of each cluster among the first ``t`` draws of the run (``sum == t``)."""
    total = schedule.total_samples
    if not isinstance(t, Integral) or isinstance(t, bool) or not 0 <= t <= total:
        raise ConfigError(f"t must be an integer in [0, total_samples={total}], got {t=}")
    t = int(t)
    k = schedule.num_clusters
    if t == 0:
        return np.zeros(k, dtype=np.int64)
    offsets = due_offsets(k)

    def due_total(x: float) -> int:
        return int(_due(schedule, x, offsets).sum())

    # |sum_k floor(D_k(x) + o_k) - x| < K while any cluster has room, so x lies within K of t.
    lo = max(0.0, t - k - 1.0)
    if due_total(lo) >= t:
        lo = 0.0  # due_total(0) == 0 < t
    hi = _upper_bound(due_total, t, t + k + 1.0)
    lo_bits, hi_bits = _bisect_bits(due_total, t, lo, hi)
    before = _due(schedule, _from_bits(lo_bits), offsets)
    tied = _due(schedule, _from_bits(hi_bits), offsets) - before
    # Draws due at exactly x: lower cluster ids first.
    need = t - int(before.sum())
    taken_before = np.cumsum(tied) - tied
    return before + np.clip(need - taken_before, 0, tied)
