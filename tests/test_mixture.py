"""The CLIMB search on objectives with a known optimum, its state file across a kill, merging, weights.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixture_objectives import bumpy, hidden_optimum, noisy_distance
from streamclip.errors import ConfigError, ResumeMismatch
from streamclip.mixture import read_weights_file, search
from streamclip.mixture.candidates import Generator

K = 8
SMALL = dict(iterations=3, runs=(16, 8, 8), pool=4000)


def _random_best(f, k: int, draws: int, seed: int) -> np.ndarray:
    """Random search: as many draws from round 1's generator as the search evaluates, the best by ``f``."""
    rows = Generator().draw(np.full(k, 1 / k), draws, np.random.default_rng((seed, 99)))
    return rows[int(np.argmin([f(w) for w in rows]))]


@pytest.mark.parametrize("make", [lambda t, s: noisy_distance(t, s), lambda t, s: bumpy(t)], ids=["noisy-distance", "non-convex"])
def test_search_ends_closer_to_the_optimum_than_as_many_random_draws_in_most_seeds(make) -> None:
    """Paired over 20 hidden optima: the search against random search with the same 64 evaluations.

    With 16 first-round runs the predictor (at least 5 rows a leaf, a tenth held out) has too little to
    learn from and the search wins about 6 seeds in 10; from 32 on it wins most (measured 17-18 of 20).
    Against Dirichlet(1) draws, the very distribution the hidden optima come from, it wins 4 of 10 at
    16/8/8 and 10-13 of 20 at 32/16/16 and 64/32/16: the predictor's gain is over its own generator."""
    runs = (32, 16, 16)
    found, random = [], []
    for seed in range(20):
        target = hidden_optimum(K, seed)
        f = make(target, seed)
        found.append(np.abs(search(f, K, seed=seed, iterations=3, runs=runs, pool=4000).weights - target).sum())
        random.append(np.abs(_random_best(f, K, sum(runs), seed) - target).sum())
    wins = int(np.sum(np.array(found) < np.array(random)))
    assert wins >= 14, f"search was closer than the best of {sum(runs)} random draws in only {wins} of 20 seeds"
    assert np.mean(found) < np.mean(random)


def test_a_search_is_deterministic_for_a_fixed_seed() -> None:
    f = bumpy(hidden_optimum(K, 3))
    a, b = search(f, K, seed=5, **SMALL), search(f, K, seed=5, **SMALL)
    assert a.history == b.history and a.predicted_best == b.predicted_best
    assert search(f, K, seed=6, **SMALL).history != a.history


def test_every_candidate_sums_to_one_and_respects_the_usage_cap() -> None:
    prior = np.arange(1, K + 1, dtype=float)
    prior /= prior.sum()
    result = search(lambda w: float(w[0]), K, prior=prior, seed=1, **SMALL)
    first = np.array([h["weights"] for h in result.history if h["round"] == 0])
    assert np.allclose(np.array([h["weights"] for h in result.history]).sum(axis=1), 1)
    assert (first <= 15 * prior + 1e-9).all()
    assert ((first == 0) | (first >= 2e-4 - 1e-12)).all()
    assert len(result.predictor_quality) == 3  # rounds 2, 3 and the final fit
    assert all(q["backend"] in ("lightgbm", "sklearn") for q in result.predictor_quality)


def test_maximize_looks_for_the_highest_score() -> None:
    target = hidden_optimum(K, 1)
    result = search(lambda w: -float(np.abs(w - target).sum()), K, maximize=True, seed=2, **SMALL)
    assert result.score == max(h["score"] for h in result.history)


_KILLED = """
import os, signal, sys, json
import numpy as np
sys.path.insert(0, {tests!r})
from mixture_objectives import bumpy, hidden_optimum
from streamclip.mixture import search
f = bumpy(hidden_optimum(8, 3))
count = 0
def evaluate(w):
    global count
    count += 1
    if count > {kill_after}:
        os.kill(os.getpid(), signal.SIGKILL)
    with open({log!r}, "a") as h:
        h.write(json.dumps(w.tolist()) + "\\n")
    return f(w)
search(evaluate, 8, iterations=3, runs=(16, 8, 8), pool=4000, seed=4, state={state!r})
"""


def test_a_killed_search_restarts_without_repeating_an_evaluation_and_ends_the_same(tmp_path: Path) -> None:
    state, log = tmp_path / "state.jsonl", tmp_path / "first.log"
    script = _KILLED.format(tests=str(Path(__file__).parent), kill_after=20, log=str(log), state=str(state))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    first = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(first) == 20  # killed inside round 2
    f = bumpy(hidden_optimum(8, 3))
    second: list[list[float]] = []
    resumed = search(lambda w: second.append(w.tolist()) or f(w), 8, seed=4, state=state, **SMALL)
    assert len(second) == 32 - 20 and not {json.dumps(w) for w in second} & {json.dumps(w) for w in first}
    whole = search(f, 8, seed=4, **SMALL)
    assert resumed.history == whole.history and np.array_equal(resumed.weights, whole.weights)


def test_a_state_file_of_another_search_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    f = bumpy(hidden_optimum(K, 0))
    search(f, K, seed=0, state=state, iterations=1, runs=(8,), pool=100)
    with pytest.raises(ResumeMismatch, match="seed"):
        search(f, K, seed=1, state=state, iterations=1, runs=(8,), pool=100)


def test_a_merged_search_gives_every_cluster_a_weight_in_proportion_to_its_prior() -> None:
    centroids = np.random.default_rng(0).normal(size=(K, 4))
    prior = np.random.default_rng(1).dirichlet(np.ones(K) * 5)
    seen: list[np.ndarray] = []
    result = search(lambda w: seen.append(w) or float(w[0]), K, prior=prior, merge=3, centroids=centroids, seed=0,
                    iterations=2, runs=(8, 4), pool=500)
    groups = result.groups
    assert groups is not None and sorted(set(groups.tolist())) == [0, 1, 2]
    for w in seen:
        assert w.shape == (K,) and np.isclose(w.sum(), 1)
        for g in range(3):
            members = groups == g
            assert np.allclose(w[members] / prior[members], (w[members] / prior[members])[0])


def test_weights_json_holds_the_fingerprint_the_cluster_count_and_the_history(tmp_path: Path) -> None:
    result = search(bumpy(hidden_optimum(K, 0)), K, seed=0, dataset="abc123", iterations=2, runs=(8, 4), pool=500)
    result.save(tmp_path / "weights.json")
    doc = read_weights_file(tmp_path / "weights.json")
    assert doc["dataset"] == "abc123" and doc["clusters"] == K and doc["weights"] == result.weights.tolist()
    assert len(doc["history"]) == 12 and doc["format"] == "streamclip-mixture"


def test_bad_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="runs"):
        search(lambda w: 0.0, K, iterations=3, runs=(8, 4))
    with pytest.raises(ConfigError, match="centroids"):
        search(lambda w: 0.0, K, merge=2)
    with pytest.raises(ConfigError, match="finite"):
        search(lambda w: float("nan"), K, iterations=1, runs=(4,), pool=10)
    with pytest.raises(ConfigError, match="usage cap"):
        Generator(max_usage=1.01).draw(np.full(K, 1 / K), 50, np.random.default_rng(0))
