"""The continuous draw schedule of a whole run: how many draws each cluster has had by time t.

After t draws, cluster k has had ``D_k(t) = min(cap_k, w_k * L(t))`` where the level ``L(t)`` solves
``sum_k min(cap_k, w_k * L) = t``. That is ClusterClip's knock-out: a capped cluster stays at its
cap and the others share the rest by weight. Phases chain the rule: phase p starts at
``t_p = until_{p-1} * T`` from the draws ``D(t_p)`` so far, with its own weights and the caps that
remain. Everything is precomputed once (O(phases * K log K)); a query is O(log K + K).

Float arithmetic is arranged so that ``D_k`` is exactly non-decreasing in t (the level is clamped
to its segment), which the integer counts in ``counts.py`` rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError, PlanInfeasible
from streamclip.plan.strategies import Schedule, SimpleStrategy, Strategy, check_strategy

__all__ = ["RunSchedule", "check_sizes"]


def check_sizes(sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return ``sizes`` as a read-only int64[K] copy, or raise naming the problem."""
    arr = np.asarray(sizes)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"cluster sizes must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"cluster sizes must be integers, got dtype {arr.dtype}")
    if (arr < 1).any():
        bad = int(np.flatnonzero(arr < 1)[0])
        raise ConfigError(f"every cluster needs at least one sample, got size {int(arr[bad])} for cluster {bad}")
    out = arr.astype(np.int64, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True)
class _Level:
    """Inverse of the piecewise-linear ``f(L) = sum_k min(R_k, w_k L)`` for one phase.

    Breakpoints ``b = R / w`` are sorted; segment j covers ``L`` in ``[b_{j-1}, b_j]`` where
    ``f(L) = A_j + B_j L`` (A: remaining caps of clusters already full, B: weights still rising).
    """

    breaks: NDArray[np.float64]  # b sorted ascending, inf for uncapped
    cluster_breaks: NDArray[np.float64]  # b in cluster-id order
    f_at_breaks: NDArray[np.float64]  # f(b_j), non-decreasing
    full_before: NDArray[np.float64]  # A_j
    rising_weight: NDArray[np.float64]  # B_j
    order: NDArray[np.int64]  # cluster ids by breakpoint

    @classmethod
    def build(cls, weights: NDArray[np.float64], remaining: NDArray[np.float64]) -> _Level:
        with np.errstate(invalid="ignore"):
            breaks = remaining / weights
        order = np.argsort(breaks, kind="stable")
        b, r, w = breaks[order], remaining[order], weights[order]
        full_before = np.concatenate(([0.0], np.cumsum(r)[:-1]))
        rising = np.cumsum(w[::-1])[::-1]
        with np.errstate(invalid="ignore"):
            f = np.where(np.isinf(b), np.inf, full_before + b * rising)
        return cls(b, breaks, np.maximum.accumulate(f), full_before, rising, order)

    def level(self, u: float) -> float:
        """The level after ``u`` draws in this phase; monotone in ``u`` even in float arithmetic."""
        j = int(np.searchsorted(self.f_at_breaks, u, side="left"))
        if j == len(self.breaks):  # every cluster is at its cap (only past the end of the run)
            return float(self.breaks[-1])
        low = float(self.breaks[j - 1]) if j > 0 else 0.0
        raw = (u - float(self.full_before[j])) / float(self.rising_weight[j])
        return min(max(raw, low), float(self.breaks[j]))


class RunSchedule:
    """The water-level schedule ``D_k(t)`` of a run of ``total_samples`` draws over clusters of ``sizes``.

    Caps are ``floor(clip * n_k)`` draws over the whole run, so integer counts never pass them;
    a document is then repeated at most ``ceil(clip)`` times (exactly ``clip`` times for whole ``clip``).
    Raises ``PlanInfeasible`` (with ``max_total_samples``) when the caps sum below the budget.
    """

    __slots__ = ("sizes", "strategy", "total_samples", "caps", "phase_starts", "_weights", "_start_draws",
                 "_remaining", "_levels")

    def __init__(self, sizes: NDArray[np.int64], strategy: Strategy, total_samples: int) -> None:
        self.sizes = check_sizes(sizes)
        if not isinstance(total_samples, Integral) or isinstance(total_samples, bool) or total_samples < 1:
            raise ConfigError(f"total_samples must be an integer >= 1, got {total_samples=}")
        self.total_samples = int(total_samples)
        self.strategy = strategy = check_strategy(strategy)
        # A simple strategy is one phase; its own cap is the run's cap (Phase() would refuse a capped one).
        phases = [(p.until, p.strategy) for p in strategy.phases] if isinstance(strategy, Schedule) else [(1.0, strategy)]
        caps = np.floor(np.asarray(strategy.caps(self.sizes), dtype=np.float64))
        caps.flags.writeable = False
        self.caps = caps
        self._check_budget()

        total = float(self.total_samples)
        self.phase_starts = np.array([0.0] + [until * total for until, _ in phases[:-1]])
        draws = np.zeros(len(self.sizes))
        self._weights, self._start_draws, self._remaining, self._levels = [], [], [], []
        for index, (_, phase_strategy) in enumerate(phases):
            weights = self._phase_weights(phase_strategy)
            remaining = np.maximum(caps - draws, 0.0)
            self._weights.append(weights)
            self._start_draws.append(draws)
            self._remaining.append(remaining)
            self._levels.append(_Level.build(weights, remaining))
            end = self.phase_starts[index + 1] if index + 1 < len(phases) else total
            draws = self._phase_draws(index, end - self.phase_starts[index])

    def _check_budget(self) -> None:
        max_total = float(self.caps.sum())
        if max_total >= self.total_samples:
            return
        mean_repeats = self.total_samples / float(self.sizes.sum())
        raise PlanInfeasible(
            f"total_samples={self.total_samples} cannot be drawn with {self.strategy!r}: the caps allow at most "
            f"{int(max_total)} draws (sum over clusters of floor(clip * size)). Lower total_samples to <= "
            f"{int(max_total)}, or raise clip (the budget repeats the corpus {mean_repeats:.4g} times on average, "
            "so clip must be at least that).",
            max_total_samples=int(max_total),
        )

    def _phase_weights(self, strategy: SimpleStrategy) -> NDArray[np.float64]:
        weights = np.asarray(strategy.weights(self.sizes), dtype=np.float64)
        if weights.shape != self.sizes.shape or not np.isfinite(weights).all() or (weights <= 0).any():
            raise ConfigError(
                f"{strategy!r} gives weights that are not all finite and > 0 for these {len(self.sizes)} "
                "clusters (e.g. a temperature so extreme that small weights underflow); use a milder setting"
            )
        return weights / weights.sum()

    def _phase_draws(self, index: int, u: float) -> NDArray[np.float64]:
        # A cluster whose breakpoint the level has reached is at its cap exactly: w * (R / w) and
        # start + (cap - start) can land an ulp below the cap in float, and floor() of that is one
        # draw short for ever, so the run's last draw would never become due.
        phase = self._levels[index]
        level = phase.level(u)
        rising = np.minimum(self._remaining[index], self._weights[index] * level)
        draws = np.minimum(self._start_draws[index] + rising, self.caps)
        return np.where(phase.cluster_breaks <= level, self.caps, draws)

    @property
    def num_clusters(self) -> int:
        return len(self.sizes)

    def draws(self, t: float) -> NDArray[np.float64]:
        """float64[K]: the continuous draws of each cluster after ``t`` draws of the run, 0 <= t <= total."""
        if not isinstance(t, Real) or not 0 <= t <= self.total_samples:
            raise ConfigError(f"t must be a number in [0, total_samples={self.total_samples}], got {t=}")
        return self.draws_unchecked(float(t))

    def draws_unchecked(self, x: float) -> NDArray[np.float64]:
        """``draws`` for any ``x >= 0``; past the end the last phase goes on (counts look slightly ahead)."""
        index = int(np.searchsorted(self.phase_starts, x, side="right")) - 1
        return self._phase_draws(index, x - self.phase_starts[index])

    def knockout_times(self) -> NDArray[np.float64]:
        """float64[K]: the run time (in draws) at which each cluster reached its cap; inf if it never did."""
        times = np.full(self.num_clusters, np.inf)
        ends = [*self.phase_starts[1:], float(self.total_samples)]
        for index, level in enumerate(self._levels):
            end_draws = self._phase_draws(index, ends[index] - self.phase_starts[index])
            hit = np.isinf(times) & (end_draws >= self.caps)
            at = np.empty(self.num_clusters)
            at[level.order] = level.f_at_breaks  # f(b_k): draws into the phase when k fills up
            times[hit] = np.minimum(at[hit] + self.phase_starts[index], ends[index])
        return times

    def __repr__(self) -> str:
        return (f"RunSchedule(K={self.num_clusters}, strategy={self.strategy!r}, "
                f"total_samples={self.total_samples})")
