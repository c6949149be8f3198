"""Candidate mixtures: RegMix's Dirichlet generator for the first round, plain Dirichlet pools after it.

The constants are those of RegMix's ``synthesize_mixture.py`` (TEMP 0.5, strengths 0.1..5, 100 draws
per wanted sample, usage cap 15, minimum 2e-4), which NeMo Curator's Nemotron-CLIMB tutorial reuses in
``5_mixture.py``; later rounds draw Dirichlet(prior x 1) without temperature or bounds (``8_predict.py``).
Later rounds rank a pool from the same generator by default: the recipe's Dirichlet(prior x 1) pool
(``dirichlet_pool``, ``search(pool_sampler="dirichlet")``) is so sparse (total concentration 1) that on the
synthetic objectives of tests/test_mixture.py it lost to plain random search in most seeds.
Dirichlet rows are drawn as normalised gammas so a whole batch with per-row strengths is one numpy call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError

__all__ = ["Generator", "dirichlet_pool", "dirichlet_rows"]


def dirichlet_rows(alpha: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """float64[M, K]: one Dirichlet draw per row of ``alpha``; rows whose gammas all underflow are NaN."""
    gammas = rng.standard_gamma(alpha)
    totals = gammas.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, gammas / totals, np.nan)


@dataclass(frozen=True, slots=True, kw_only=True)
class Generator:
    """The first round's candidates around ``prior`` (float64[K], sums to 1)."""

    temperature: float = 0.5  # RegMix TEMP: the Dirichlet centre is prior ** 0.5, flatter than the prior
    min_strength: float = 0.1  # RegMix MIN_STRENGH
    max_strength: float = 5.0  # RegMix MAX_STRENGH
    strengths: int = 15  # log-spaced strengths between them (RegMix / CLIMB 5_mixture.py)
    max_usage: float = 15.0  # a weight may be at most this times its (pre-temperature) prior: a cap on cluster epochs
    minimum: float = 2e-4  # weights below this are zeroed (and weights are rounded to multiples of it)
    multiplier: int = 100  # draws made per candidate wanted (RegMix SAMPLE_MULTIPLIER)

    def __post_init__(self) -> None:
        if not 0 < self.min_strength <= self.max_strength:
            raise ConfigError(f"need 0 < min_strength <= max_strength, got {self.min_strength}, {self.max_strength}")
        if self.strengths < 1 or self.multiplier < 1 or self.max_usage <= 0 or not 0 <= self.minimum < 1:
            raise ConfigError(f"invalid candidate generator settings: {self!r}")

    def _batch(self, prior: NDArray[np.float64], draws: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """Up to ``draws`` rows: Dirichlet(centre x s) with a random rung s of the ladder, within the cap, tidied."""
        centre = prior ** self.temperature
        centre = centre / centre.sum()
        ladder = np.logspace(np.log10(self.min_strength), np.log10(self.max_strength), self.strengths)
        strength = ladder[rng.integers(0, len(ladder), size=draws)]
        rows = dirichlet_rows(centre[None, :] * strength[:, None], rng)
        bound = np.minimum(prior * self.max_usage, 1.0)
        rows = self.tidy(rows[np.isfinite(rows).all(axis=1) & (rows <= bound).all(axis=1)])
        return rows[np.isfinite(rows).all(axis=1)]

    def draw(self, prior: NDArray[np.float64], count: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """float64[count, K]: distinct candidates within the usage cap, each summing to 1."""
        draws = count * self.multiplier
        rows = _distinct(self._batch(prior, draws, rng))
        if len(rows) < count:
            raise ConfigError(
                f"only {len(rows)} of {count} candidate mixtures passed the usage cap (weight <= {self.max_usage} x prior) "
                f"in {draws} draws of {len(prior)} weights; with many clusters the recipe's sparse Dirichlet draws put too much on a "
                f"few: search over super-clusters (merge=N / --merge-to N; CLIMB merges to about 20), or raise max_usage or lower the runs"
            )
        return rows[np.sort(rng.choice(len(rows), size=count, replace=False))]

    def tidy(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        """Zero weights below ``minimum``, then round to multiples of it, as the recipe does; rows sum to 1."""
        rows = np.where(rows < self.minimum, 0.0, rows)
        if self.minimum > 0:
            rows = np.round(rows / self.minimum) * self.minimum
        with np.errstate(invalid="ignore", divide="ignore"):
            return rows / rows.sum(axis=1, keepdims=True)


    def pool(self, prior: NDArray[np.float64], count: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """float64[n, K], n <= count: a ranking pool from the same generator (batches of ``count`` until full,
        at most ``multiplier`` of them; no deduplication, which a pool ranked by a predictor does not need)."""
        parts, have = [], 0
        for _ in range(self.multiplier):
            parts.append(self._batch(prior, count, rng))
            have += len(parts[-1])
            if have >= count:
                break
        return np.concatenate(parts)[:count]


def _distinct(rows: NDArray[np.float64], tolerance: float = 1e-5) -> NDArray[np.float64]:
    """Rows at L1 distance above ``tolerance`` from every earlier kept row (the recipe's deduplication)."""
    if len(rows) == 0:
        return rows
    order = np.lexsort(rows.T[::-1])
    rows = rows[order]
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = np.abs(np.diff(rows, axis=0)).sum(axis=1) > tolerance
    return rows[keep]


def dirichlet_pool(prior: NDArray[np.float64], count: int, rng: np.random.Generator, *, concentration: float = 1.0) -> NDArray[np.float64]:
    """float64[count, K]: Dirichlet(prior x concentration) draws for the predictor to rank (``8_predict.py``)."""
    rows = dirichlet_rows(np.broadcast_to(prior * concentration, (count, len(prior))), rng)
    return rows[np.isfinite(rows).all(axis=1)]
