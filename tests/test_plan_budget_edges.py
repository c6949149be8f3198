"""Budgets at, just below and around the sum of the caps: the largest one PlanInfeasible recommends
must plan like any other (it once made ``counts_at`` spin for ever)."""

from __future__ import annotations

import contextlib
import signal

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamclip.errors import PlanInfeasible, StreamclipError
from streamclip.plan import (
    ClusterClip,
    ClusterLayout,
    Phase,
    Random,
    RunSchedule,
    Schedule,
    Temperature,
    Uniform,
    Weighted,
    counts_at,
    general_to_specific,
    num_segments,
    plan_segment,
    specific_to_general,
)
from streamclip.plan.counts import _bisect_bits, _upper_bound

HANG_SECONDS = 20  # a hang guard, not a speed check: a correct call takes milliseconds


class Hung(Exception):
    pass


@contextlib.contextmanager
def no_hang(what: str):
    """Fail (instead of hanging the suite) if the block runs for more than HANG_SECONDS."""
    def expire(signum, frame):
        raise Hung(f"{what} ran for more than {HANG_SECONDS} s: a search loop does not end")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def make_strategy(kind: str, k: int, weights: list[float], clip: float):
    """Every kind of strategy; ``weights`` gives Weighted its values (one per cluster)."""
    values = tuple(weights[:k])
    return {
        "random": Random(),
        "uniform": Uniform(),
        "clusterclip": ClusterClip(clip),
        "temperature": Temperature(0.4),
        "temperature-clip": Temperature(0.4, clip=clip),
        "weighted": Weighted(values),
        "weighted-clip": Weighted(values, clip=clip),
        "general-to-specific": general_to_specific(0.5),
        "general-to-specific-clip": general_to_specific(0.3, clip=clip),
        "specific-to-general-clip": specific_to_general(0.6, clip=clip),
        "schedule-clip": Schedule((Phase(0.25, Weighted(values)), Phase(0.7, Temperature(-0.5)),
                                   Phase(1.0, Uniform())), clip=clip),
    }[kind]


KINDS = ["random", "uniform", "clusterclip", "temperature", "temperature-clip", "weighted", "weighted-clip",
         "general-to-specific", "general-to-specific-clip", "specific-to-general-clip", "schedule-clip"]


def largest_feasible(sizes: np.ndarray, strategy) -> int | None:
    """The budget PlanInfeasible recommends for an impossible one, or None for an uncapped strategy."""
    caps = np.floor(strategy.caps(sizes))
    if not np.isfinite(caps).all():
        return None
    with pytest.raises(PlanInfeasible) as info:
        RunSchedule(sizes, strategy, int(caps.sum()) + 1)
    return info.value.max_total_samples


def layout_for(sizes: np.ndarray) -> ClusterLayout:
    """Each cluster split into up to three shards."""
    shards = []
    for n in sizes.tolist():
        parts = [n // 3, n // 3, n - 2 * (n // 3)] if n >= 3 else [n]
        shards.append([p for p in parts if p])
    counts = [len(s) for s in shards]
    bounds = np.cumsum([0, *counts])
    return ClusterLayout.from_shards([p for s in shards for p in s], np.stack([bounds[:-1], bounds[1:]], axis=1))


def check_run(sizes: np.ndarray, strategy, total: int, probes: list[float]) -> None:
    schedule = RunSchedule(sizes, strategy, total)
    times = sorted({0, 1, total - 1, total, *(int(f * total) for f in probes)} - {-1})
    previous = np.zeros(len(sizes), dtype=np.int64)
    for t in times:
        with no_hang(f"counts_at({schedule!r}, {t})"):
            counts = counts_at(schedule, t)
        assert counts.sum() == t
        assert (counts <= schedule.caps).all()
        assert (counts >= previous).all()
        previous = counts

    epoch_size = max(1, min(total, 4096))
    last = num_segments(total, epoch_size) - 1
    layout = layout_for(sizes)
    with no_hang(f"plan_segment(last epoch {last} of {schedule!r})"):
        units, ids = plan_segment(layout, schedule, seed=3, epoch_size=epoch_size, epoch=last)
    assert units.sum() == len(ids) == total - last * epoch_size
    shard = np.searchsorted(layout.shard_offsets, ids, side="right") - 1
    cluster = np.searchsorted(layout.shard_cluster_ranges[:, 1], shard, side="right")
    drawn = np.bincount(cluster, minlength=len(sizes))
    np.testing.assert_array_equal(drawn, counts_at(schedule, total) - counts_at(schedule, last * epoch_size))


run_inputs = st.tuples(
    st.lists(st.integers(1, 10**6), min_size=1, max_size=8).map(np.array),
    st.sampled_from(KINDS),
    st.lists(st.floats(0.01, 100.0), min_size=8, max_size=8),
    st.sampled_from([1.0, 1.5, 2.0, 2.5, 3.0, 7.3]),
    st.integers(0, 5),  # how far below the largest budget
    st.lists(st.floats(0, 1), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(run_inputs)
@example((np.array([770164, 945021, 222528]), "weighted-clip", [3.0, 7.0, 7.0] + [1.0] * 5, 2.0, 0, []))
def test_budgets_at_and_below_the_sum_of_caps_plan_exactly(inputs):
    sizes, kind, weights, clip, below, probes = inputs
    strategy = make_strategy(kind, len(sizes), weights, clip)
    largest = largest_feasible(sizes, strategy)
    if largest is None:  # uncapped: any budget is feasible; probe around the corpus size instead
        largest = int(sizes.sum()) * 2
    total = largest - below
    if total < 1:
        return
    check_run(sizes, strategy, total, probes)


@pytest.mark.parametrize("kind", KINDS)
def test_the_recommended_budget_of_every_strategy_plans(kind):
    sizes = np.array([770164, 945021, 222528, 17, 1, 40000])
    strategy = make_strategy(kind, len(sizes), [3.0, 7.0, 7.0, 0.5, 2.0, 1.0], 2.0)
    largest = largest_feasible(sizes, strategy)
    total = largest if largest is not None else int(sizes.sum()) * 3
    check_run(sizes, strategy, total, [0.25, 0.5, 0.999])


def test_the_search_bounds_fail_loudly_instead_of_spinning():
    with pytest.raises(StreamclipError, match="internal error"):
        _upper_bound(lambda x: 0, 10, 11.0)  # never enough draws due
    lo, hi = _bisect_bits(lambda x: int(x >= 5.0), 1, 0.0, 1e300)
    assert hi - lo == 1 and float(np.int64(hi).view(np.float64)) == 5.0
