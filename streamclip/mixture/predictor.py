"""The mixture -> score predictor: LightGBM with CLIMB's settings, scikit-learn's HistGradientBoosting without it.

CLIMB's ``8_predict.py`` fits LightGBM with 1000 rounds, learning rate 0.01, L1 = L2 = 1, depth 4,
at least 5 rows per leaf, on a 90/10 split with early stopping (at most 20 rounds); RegMix reports the
fit as a Spearman correlation on held-out runs. The same split gives that figure here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Fit", "PredictorSettings", "fit_predictor", "spearman"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictorSettings:
    rounds: int = 1000
    learning_rate: float = 0.01
    l1: float = 1.0
    l2: float = 1.0
    max_depth: int = 4
    min_child: int = 5
    held_out: float = 0.1  # share of pairs kept out for early stopping and the Spearman figure
    min_held_out: int = 3  # a Spearman figure needs at least three pairs
    max_stopping_rounds: int = 20
    backend: str = "auto"  # "lightgbm", "sklearn" or "auto" (LightGBM when installed)


@dataclass(slots=True)
class Fit:
    model: Any
    backend: str
    spearman: float | None
    train_rows: int
    held_out_rows: int

    def predict(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(self.model.predict(rows), dtype=np.float64)

    def record(self) -> dict[str, Any]:
        return {"backend": self.backend, "spearman": self.spearman, "train_rows": self.train_rows, "held_out_rows": self.held_out_rows}


def spearman(a: NDArray[np.float64], b: NDArray[np.float64]) -> float | None:
    """Rank correlation (average ranks for ties); ``None`` when either side is constant or too short."""
    if len(a) < 3:
        return None
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / np.bincount(inverse))[inverse]


def _backend(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return "sklearn"
    return "lightgbm"


def fit_predictor(x: NDArray[np.float64], y: NDArray[np.float64], *, seed: int, settings: PredictorSettings | None = None) -> Fit:
    """Fit on every pair but a held-out tenth (early stopping and the Spearman figure use it)."""
    s = settings or PredictorSettings()
    rng = np.random.default_rng((seed, 0x9E3779B9))
    n = len(y)
    held = max(s.min_held_out, int(round(n * s.held_out))) if n >= 2 * s.min_held_out + 2 else 0
    order = rng.permutation(n)
    test, train = order[:held], order[held:]
    backend = _backend(s.backend)
    stopping = max(1, min(s.max_stopping_rounds, len(train) // 10 + 1))
    if backend == "lightgbm":
        import lightgbm

        model = lightgbm.LGBMRegressor(
            n_estimators=s.rounds, learning_rate=s.learning_rate, reg_alpha=s.l1, reg_lambda=s.l2, max_depth=s.max_depth,
            num_leaves=2 ** s.max_depth, min_child_samples=min(s.min_child, max(1, len(train) // 2)), min_data_in_bin=1,
            random_state=seed, n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1,
        )
        if held:
            model.fit(x[train], y[train], eval_X=(x[test],), eval_y=(y[test],), callbacks=[lightgbm.early_stopping(stopping, verbose=False)])
        else:
            model.fit(x[train], y[train])
    else:
        from sklearn.ensemble import HistGradientBoostingRegressor

        model = HistGradientBoostingRegressor(
            max_iter=s.rounds, learning_rate=s.learning_rate, l2_regularization=s.l2, max_depth=s.max_depth,
            min_samples_leaf=min(s.min_child, max(1, len(train) // 2)), early_stopping=False, random_state=seed,
        )
        model.fit(x[train], y[train])
    quality = spearman(np.asarray(model.predict(x[test])), y[test]) if held else None
    return Fit(model=model, backend=backend, spearman=quality, train_rows=len(train), held_out_rows=held)
