"""CLIMB's bootstrapped mixture search: proxy runs, a predictor, and rounds that train only the predicted best.

Round 1 evaluates ``runs[0]`` candidates from RegMix's generator (``candidates.Generator``). Each later
round fits the predictor on every pair measured so far, ranks ``pool`` fresh Dirichlet(prior) mixtures
and evaluates ``runs[i]`` drawn at random from the predicted top ``max(runs[i]**2, top_min)``
(NeMo Curator ``8_predict.py``: 64 -> 32 -> 16 over three rounds, 128 as the smallest top). The result is
the best mixture measured; the argmax of a predictor fitted on everything is reported beside it.

Every random choice is drawn from ``default_rng((seed, round))``, so a search is a pure function of its
settings and its scores; ``state`` keeps the scores, and a restarted search recomputes the same
candidates and evaluates only those it has no score for.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError, ResumeMismatch
from streamclip.mixture.candidates import Generator, dirichlet_pool
from streamclip.mixture.merge import expand, ward_groups
from streamclip.mixture.predictor import PredictorSettings, fit_predictor
from streamclip.mixture.weights_file import write_weights_file

__all__ = ["MixtureResult", "search"]

STATE_VERSION = 1


@dataclass(slots=True)
class MixtureResult:
    """What a search found and everything it measured on the way."""

    weights: NDArray[np.float64]  # float64[K]: the best mixture measured
    score: float  # its score
    history: list[dict[str, Any]]  # every evaluation: round, index, weights, score, predicted (None in round 1)
    predictor_quality: list[dict[str, Any]]  # per fit: round, backend, spearman on held-out pairs, rows
    predicted_best: dict[str, Any]  # the final predictor's argmax over a fresh pool: weights, predicted
    prior: NDArray[np.float64]
    maximize: bool
    groups: NDArray[np.int64] | None = None  # cluster -> super-cluster when the search ran merged
    settings: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None  # the manifest fingerprint of the dataset searched, when known
    clustering: str | None = None  # its clustering fingerprint (centroids): the weights also fit datasets split from it
    target: dict[str, Any] | None = None  # where the target documents fall: documents, per-cluster counts (set by the caller)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "clustering": self.clustering, "clusters": len(self.weights), "weights": [float(w) for w in self.weights],
            "score": self.score, "maximize": self.maximize, "prior": [float(p) for p in self.prior],
            "super_clusters": None if self.groups is None else [int(g) for g in self.groups],
            "predicted_best": self.predicted_best, "predictor_quality": self.predictor_quality,
            "history": self.history, "settings": self.settings, "target": self.target,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``weights.json`` (see ``weights_file``); ``Weighted.load`` reads it back."""
        write_weights_file(path, self.to_json())


def _check_runs(iterations: int, runs: Sequence[int]) -> tuple[int, ...]:
    runs = tuple(runs)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations must be an integer >= 1, got {iterations!r}")
    if len(runs) != iterations or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in runs):
        raise ConfigError(f"runs must give one integer >= 1 per iteration ({iterations}), got {runs!r}")
    return runs


def _check_prior(prior: Sequence[float] | None, n_clusters: int) -> NDArray[np.float64]:
    if prior is None:
        return np.full(n_clusters, 1.0 / n_clusters)
    values = np.asarray(prior, dtype=np.float64)
    if values.shape != (n_clusters,) or not np.isfinite(values).all() or (values <= 0).any():
        raise ConfigError(f"prior must hold {n_clusters} finite numbers > 0 (one per cluster), got shape {values.shape}")
    return values / values.sum()


def _resolve_groups(merge: int | Sequence[int] | None, centroids: NDArray[np.floating] | None, n_clusters: int) -> NDArray[np.int64] | None:
    if merge is None:
        return None
    if isinstance(merge, int) and not isinstance(merge, bool):
        if centroids is None:
            raise ConfigError("merge=N merges clusters by Ward linkage on their centroids: pass centroids= (K x d) too")
        if len(centroids) != n_clusters:
            raise ConfigError(f"centroids has {len(centroids)} rows but the search has {n_clusters} clusters")
        return ward_groups(centroids, merge)
    groups = np.asarray(merge)
    if groups.shape != (n_clusters,) or not np.issubdtype(groups.dtype, np.integer) or groups.min() < 0 \
            or len(np.unique(groups)) != groups.max() + 1:
        raise ConfigError(f"merge must be a group count or {n_clusters} super-cluster ids numbered 0..G-1 with none empty, got {merge!r}")
    return groups.astype(np.int64)


class _State:
    """The JSONL of finished evaluations: a header naming the search, then one line per score, fsynced."""

    def __init__(self, path: str | os.PathLike[str] | None, header: dict[str, Any]) -> None:
        self.path, self.header, self.scores = (os.fspath(path) if path is not None else None), header, {}
        if self.path is None:
            return
        if os.path.exists(self.path):
            self._read()
        else:
            self._append({"kind": "search", **header})

    def _read(self) -> None:
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        complete = lines[:-1]  # a line without its newline was cut by a kill: it never counted
        if not complete:
            self._append({"kind": "search", **self.header})
            return
        try:
            records = [json.loads(line) for line in complete]
        except json.JSONDecodeError as e:
            raise ResumeMismatch(f"{self.path}: not a streamclip search state ({e}); remove it or pass another state file") from None
        first = records[0]
        saved = {k: v for k, v in first.items() if k != "kind"} if isinstance(first, dict) and first.get("kind") == "search" else None
        if saved != self.header:
            diffs = [f"{k}: state {None if saved is None else saved.get(k)!r:.80}, this search {v!r:.80}" for k, v in self.header.items()
                     if saved is None or saved.get(k) != v]
            raise ResumeMismatch(f"{self.path} belongs to another search ({'; '.join(diffs)[:800]}); use another state file or the same settings")
        for line, record in enumerate(records[1:], start=2):
            try:
                self.scores[(record["round"], record["index"])] = (np.asarray(record["weights"], dtype=np.float64), float(record["score"]))
            except (KeyError, TypeError, ValueError):
                raise ResumeMismatch(f"{self.path}:{line}: not an evaluation record") from None

    def _append(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def lookup(self, round_: int, index: int, weights: NDArray[np.float64]) -> float | None:
        found = self.scores.get((round_, index))
        if found is None:
            return None
        if found[0].shape != weights.shape or not np.allclose(found[0], weights, rtol=0, atol=1e-12):
            raise ResumeMismatch(f"{self.path}: round {round_} candidate {index} differs from this search's; the state belongs to another search")
        return found[1]

    def record(self, round_: int, index: int, weights: NDArray[np.float64], score: float) -> None:
        self._append({"kind": "evaluation", "round": round_, "index": index, "weights": weights.tolist(), "score": score})


def _score(evaluate: Callable[[NDArray[np.float64]], float], weights: NDArray[np.float64], where: str) -> float:
    value = evaluate(weights.copy())
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"evaluate returned {value!r} for {where}; it must return a number") from None
    if not math.isfinite(score):
        raise ConfigError(f"evaluate returned {score} for {where}; it must return a finite number")
    return score


def search(
    evaluate: Callable[[NDArray[np.float64]], float], n_clusters: int, *, iterations: int = 3, runs: Sequence[int] = (64, 32, 16),
    pool: int = 100_000, prior: Sequence[float] | None = None, seed: int = 0, maximize: bool = False,
    state: str | os.PathLike[str] | None = None, merge: int | Sequence[int] | None = None, centroids: NDArray[np.floating] | None = None,
    top_min: int = 128, pool_sampler: str = "generator", generator: Generator | None = None, predictor: PredictorSettings | None = None, dataset: str | None = None,
    clustering: str | None = None, progress: bool = False,
) -> MixtureResult:
    """Search cluster weights (float64[K], summing to 1) that minimise ``evaluate`` (maximise with ``maximize=True``).

    ``prior`` defaults to uniform; pass the size-proportional mixture (as the recipe and ``streamclip climb``
    do) so that candidates centre on the corpus and the usage cap bounds cluster epochs. ``merge`` is a
    super-cluster count (Ward linkage on ``centroids``) or a cluster -> group map: the search then runs over
    the groups and ``evaluate`` still gets one weight per cluster. ``state`` is a JSONL path: finished
    evaluations are kept there and a restarted search with the same settings skips them. ``dataset``
    and ``clustering`` (manifest and clustering fingerprints) go into ``weights.json`` so the file is refused
    for a dataset of other clusters.
    """
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1:
        raise ConfigError(f"n_clusters must be an integer >= 1, got {n_clusters!r}")
    runs = _check_runs(iterations, runs)
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < max(runs):
        raise ConfigError(f"pool must be an integer >= the largest runs ({max(runs)}), got {pool!r}")
    prior_k = _check_prior(prior, n_clusters)
    groups = _resolve_groups(merge, centroids, n_clusters)
    space_prior = prior_k if groups is None else np.bincount(groups, weights=prior_k)
    generator = generator or Generator()
    if pool_sampler not in ("generator", "dirichlet"):
        raise ConfigError(f"pool_sampler must be 'generator' (round 1's generator) or 'dirichlet' (the recipe's Dirichlet(prior x 1)), got {pool_sampler!r}")
    draw_pool = generator.pool if pool_sampler == "generator" else dirichlet_pool
    predictor = predictor or PredictorSettings()
    settings = {
        "iterations": iterations, "runs": list(runs), "pool": pool, "seed": seed, "maximize": bool(maximize), "top_min": top_min, "pool_sampler": pool_sampler,
        "generator": asdict(generator), "predictor": asdict(predictor),
    }
    header = {"version": STATE_VERSION, "clusters": n_clusters, "prior": prior_k.tolist(),
              "super_clusters": None if groups is None else groups.tolist(), **settings}
    store = _State(state, header)
    sign = -1.0 if maximize else 1.0
    to_clusters = (lambda w: w) if groups is None else (lambda w: expand(w, groups, prior_k))
    xs: list[NDArray[np.float64]] = []
    ys: list[float] = []
    history: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    from tqdm.auto import tqdm

    with tqdm(total=sum(runs), desc="proxy runs", unit="run", disable=not progress) as bar:
        for round_, count in enumerate(runs):
            rng = np.random.default_rng((seed, round_))
            if round_ == 0:
                candidates, predicted = generator.draw(space_prior, count, rng), [None] * count
            else:
                fit = fit_predictor(np.array(xs), sign * np.array(ys), seed=int(rng.integers(2**31)), settings=predictor)
                quality.append({"round": round_, **fit.record()})
                fresh = draw_pool(space_prior, pool, rng)
                guesses = fit.predict(fresh)
                top = np.argsort(guesses, kind="stable")[: min(len(fresh), max(count * count, top_min))]
                picked = rng.choice(top, size=min(count, len(top)), replace=False)
                candidates, predicted = fresh[picked], [float(sign * g) for g in guesses[picked]]
            for index, (candidate, guess) in enumerate(zip(candidates, predicted)):
                weights = to_clusters(candidate)
                score = store.lookup(round_, index, weights)
                if score is None:
                    score = _score(evaluate, weights, f"round {round_ + 1} candidate {index}")
                    store.record(round_, index, weights, score)
                xs.append(candidate)
                ys.append(score)
                history.append({"round": round_, "index": index, "weights": weights.tolist(), "score": score, "predicted": guess})
                bar.update(1)
    rng = np.random.default_rng((seed, len(runs)))
    fit = fit_predictor(np.array(xs), sign * np.array(ys), seed=int(rng.integers(2**31)), settings=predictor)
    quality.append({"round": len(runs), **fit.record()})
    fresh = draw_pool(space_prior, pool, rng)
    guesses = fit.predict(fresh)
    best_guess = int(np.argmin(guesses))
    best = int(np.argmin(sign * np.array(ys)))
    return MixtureResult(
        weights=np.asarray(history[best]["weights"]), score=ys[best], history=history, predictor_quality=quality,
        predicted_best={"weights": to_clusters(fresh[best_guess]).tolist(), "predicted": float(sign * guesses[best_guess])},
        prior=prior_k, maximize=bool(maximize), groups=groups, settings=settings, dataset=dataset, clustering=clustering,
    )
