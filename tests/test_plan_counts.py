"""Integer counts: a draw-by-draw simulation of the due-time rule equals the closed form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamclip.errors import ConfigError
from streamclip.plan import (
    ClusterClip,
    Random,
    RunSchedule,
    Temperature,
    Uniform,
    Weighted,
    counts_at,
    due_offsets,
    general_to_specific,
    specific_to_general,
)


def _smallest_float_where(predicate, hi: float) -> float:
    """The smallest float x in [0, hi] with predicate(x), for a monotone predicate true at hi."""
    if predicate(0.0):
        return 0.0
    lo_bits, hi_bits = int(np.float64(0.0).view(np.int64)), int(np.float64(hi).view(np.int64))
    while hi_bits - lo_bits > 1:
        mid = (lo_bits + hi_bits) // 2
        if predicate(float(np.int64(mid).view(np.float64))):
            hi_bits = mid
        else:
            lo_bits = mid
    return float(np.int64(hi_bits).view(np.float64))


def simulate(schedule: RunSchedule) -> list[int]:
    """The run's cluster sequence, one draw at a time: cluster k's j-th draw is due at the first time
    floor(D_k(x) + o_k) exceeds j; draws are taken by (due time, cluster id)."""
    k_count, total = schedule.num_clusters, schedule.total_samples
    offsets = due_offsets(k_count)
    horizon = float(total + k_count + 1)  # past the end the last phase goes on
    due = []
    for k in range(k_count):
        drawn = int(np.floor(schedule.draws_unchecked(horizon)[k] + offsets[k]))
        for j in range(drawn):
            when = _smallest_float_where(
                lambda x, k=k, j=j: np.floor(schedule.draws_unchecked(x)[k] + offsets[k]) >= j + 1, horizon)
            due.append((when, k))
    due.sort()
    assert len(due) >= total
    return [k for _, k in due[:total]]


@st.composite
def small_run(draw):
    sizes = draw(st.lists(st.integers(1, 12), min_size=1, max_size=5))
    k = len(sizes)
    clip = draw(st.none() | st.sampled_from([1.0, 2.0, 2.5]))
    strategy = draw(st.sampled_from([
        Random(), Uniform(), ClusterClip(clip or 2.0), Temperature(0.5, clip=clip),
        Weighted(tuple(range(1, k + 1)), clip=clip), general_to_specific(0.4, clip=clip),
        specific_to_general(0.5, clip=clip),
    ]))
    max_total = float(np.floor(strategy.caps(np.array(sizes))).sum())
    total = draw(st.integers(1, int(min(max_total, 40))))
    return RunSchedule(np.array(sizes), strategy, total)


@settings(max_examples=30, deadline=None)
@given(small_run())
def test_closed_form_equals_draw_by_draw_simulation(schedule):
    sequence = simulate(schedule)
    counts = np.zeros(schedule.num_clusters, dtype=np.int64)
    np.testing.assert_array_equal(counts_at(schedule, 0), counts)
    for t, k in enumerate(sequence, start=1):
        counts[k] += 1
        np.testing.assert_array_equal(counts_at(schedule, t), counts, err_msg=f"at t={t}")


@st.composite
def any_run(draw):
    k = draw(st.integers(1, 40))
    sizes = np.array(draw(st.lists(st.integers(1, 10**6), min_size=k, max_size=k)))
    clip = draw(st.none() | st.sampled_from([1.0, 2.0, 3.5]))
    strategy = draw(st.sampled_from([
        Random(), Uniform(), ClusterClip(clip or 2.0), Temperature(0.3, clip=clip),
        Weighted(tuple(range(k, 0, -1)), clip=clip), general_to_specific(0.5, clip=clip),
    ]))
    max_total = float(np.floor(strategy.caps(sizes)).sum())
    total = draw(st.integers(1, int(min(max_total, 10**12))))
    return RunSchedule(sizes, strategy, total)


@settings(max_examples=60, deadline=None)
@given(any_run(), st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_counts_are_exact_monotone_capped_and_close(schedule, fractions):
    total = schedule.total_samples
    times = sorted({0, total, *(int(f * total) for f in fractions)})
    previous = None
    for t in times:
        counts = counts_at(schedule, t)
        assert counts.dtype == np.int64 and counts.sum() == t
        assert (counts >= 0).all() and (counts <= schedule.caps).all()
        # Within 1 of D_k at the virtual time x, which lies within K of t (rates are <= 1).
        assert (np.abs(counts - schedule.draws(t)) < 1 + schedule.num_clusters).all()
        if previous is not None:
            assert (counts >= previous).all()
        if t < total:  # one more draw adds exactly one to exactly one cluster
            step = counts_at(schedule, t + 1) - counts
            assert sorted(step.tolist()) == [0] * (len(step) - 1) + [1]
        previous = counts


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 10**5), min_size=1, max_size=50), st.sampled_from([None, 1.0, 2.0]),
       st.floats(0, 1))
def test_within_one_of_the_schedule_when_clusters_rise_together(sizes, clip, fraction):
    sizes = np.array(sizes)
    strategy = Uniform() if clip is None else ClusterClip(clip)
    total = int(min(np.floor(strategy.caps(sizes)).sum(), 10**9))
    schedule = RunSchedule(sizes, strategy, total)
    t = int(fraction * total)
    assert (np.abs(counts_at(schedule, t) - schedule.draws(t)) <= 1 + 1e-9).all()


def test_uniform_counts_differ_by_at_most_one():
    schedule = RunSchedule(np.array([5, 1, 9, 3, 7, 2]), Uniform(), 10**6)
    for t in [1, 5, 6, 7, 1000, 999_999]:
        counts = counts_at(schedule, t)
        assert set(counts.tolist()) <= {t // 6, t // 6 + 1}


def test_random_reproduces_size_proportional_counts():
    sizes = np.array([1, 2, 3, 50, 944])
    schedule = RunSchedule(sizes, Random(), 7 * int(sizes.sum()))
    for passes in range(1, 8):  # whole passes over the corpus: every cluster exactly that many times
        np.testing.assert_array_equal(counts_at(schedule, passes * int(sizes.sum())), passes * sizes)
    for t in [1, 17, 500, 4321]:
        share = sizes / sizes.sum()
        assert (np.abs(counts_at(schedule, t) - t * share) < 1 + len(sizes) * share).all()


def test_huge_budget_counts_stay_exact():
    sizes = np.array([3 * 10**11, 4 * 10**11, 5 * 10**11, 7])
    total = 10**12
    schedule = RunSchedule(sizes, ClusterClip(1.0), total)
    for t in [total - 1, total, 10**12 // 3, 123_456_789_012]:
        counts = counts_at(schedule, t)
        assert counts.sum() == t and (counts <= sizes).all()
    step = counts_at(schedule, 777_777_777_778) - counts_at(schedule, 777_777_777_777)
    assert step.sum() == 1 and step.min() == 0


def test_counts_never_pass_a_fractional_cap():
    sizes = np.array([3, 5, 7])  # caps floor(2.5 * n) = 7, 12, 17
    schedule = RunSchedule(sizes, ClusterClip(2.5), 36)
    np.testing.assert_array_equal(counts_at(schedule, 36), [7, 12, 17])


@pytest.mark.parametrize("t", [-1, 11, 2.0, True])
def test_counts_reject_times_outside_the_run(t):
    schedule = RunSchedule(np.array([4, 6]), Uniform(), 10)
    with pytest.raises(ConfigError, match=r"t must be an integer in \[0, total_samples=10\]"):
        counts_at(schedule, t)


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_draws_due_at_the_same_time_go_to_lower_cluster_ids_first(monkeypatch, offset):
    """Golden-ratio offsets make exact ties rare; equal offsets force them, so the tie rule shows."""
    import streamclip.plan.counts as counts_module

    monkeypatch.setattr(counts_module, "due_offsets", lambda k: np.full(k, offset))
    k = 5
    schedule = RunSchedule(np.array([4, 9, 2, 7, 3]), Uniform(), 40)
    for t in range(41):
        expected = t // k + (np.arange(k) < t % k)
        np.testing.assert_array_equal(counts_at(schedule, t), expected, err_msg=f"at t={t}")
