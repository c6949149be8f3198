"""The continuous schedule D_k(t) against exact water-filling, plus strategy validation and round trips."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamclip.errors import ConfigError, PlanInfeasible
from streamclip.plan import (
    STRATEGIES,
    ClusterClip,
    Phase,
    Random,
    RunSchedule,
    Schedule,
    Temperature,
    Uniform,
    Weighted,
    general_to_specific,
    specific_to_general,
    strategy_from_dict,
    strategy_from_spec,
)

# --- exact reference: water-filling in rational arithmetic -------------------------------------


def _fill(weights: list[Fraction], room: list[Fraction | None], amount: Fraction) -> list[Fraction]:
    """Increments with sum ``amount``: ``min(room_k, w_k L)``, filling and knocking out clusters."""
    active, inc, left = set(range(len(weights))), [Fraction(0)] * len(weights), amount
    while active:
        level = left / sum(weights[k] for k in active)
        full = [k for k in active if room[k] is not None and room[k] <= weights[k] * level]
        if not full:
            for k in active:
                inc[k] = weights[k] * level
            break
        for k in full:
            inc[k] = room[k]
            left -= room[k]
            active.remove(k)
    return inc


def exact_draws(sizes: list[int], strategy, total: int, t: Fraction) -> list[Fraction]:
    """D_k(t) by the definition: phases chained, caps floor(clip * n_k) over the whole run."""
    arr = np.array(sizes, dtype=np.int64)
    caps = [None if math.isinf(c) else Fraction(math.floor(c)) for c in strategy.caps(arr)]
    phases = [(p.until, p.strategy) for p in strategy.phases] if isinstance(strategy, Schedule) else [(1.0, strategy)]
    draws, start = [Fraction(0)] * len(sizes), Fraction(0)
    for until, phase in phases:
        end = min(Fraction(until) * total, t) if until < 1 else t
        if end <= start:
            break
        weights = [Fraction(float(w)) for w in phase.weights(arr)]
        room = [None if c is None else max(c - d, Fraction(0)) for c, d in zip(caps, draws)]
        draws = [d + i for d, i in zip(draws, _fill(weights, room, end - start))]
        start = end
    return draws


sizes_st = st.lists(st.integers(1, 30), min_size=1, max_size=6)
clip_st = st.sampled_from([1.0, 1.5, 2.0, 3.0])


@st.composite
def strategy_st(draw, num_clusters: int):
    kind = draw(st.sampled_from(["random", "uniform", "clusterclip", "temperature", "weighted", "g2s", "s2g", "phases"]))
    clip = draw(st.none() | clip_st)
    if kind == "random":
        return Random()
    if kind == "uniform":
        return Uniform()
    if kind == "clusterclip":
        return ClusterClip(draw(clip_st))
    if kind == "temperature":
        return Temperature(draw(st.sampled_from([0.0, 0.3, 0.5, 1.0, 2.0])), clip=clip)
    if kind == "weighted":
        return Weighted(draw(st.lists(st.integers(1, 9), min_size=num_clusters, max_size=num_clusters)), clip=clip)
    if kind == "g2s":
        return general_to_specific(draw(st.sampled_from([0.1, 0.5, 0.9])), clip=clip)
    if kind == "s2g":
        return specific_to_general(draw(st.sampled_from([0.25, 0.5])), clip=clip)
    return Schedule((Phase(0.3, Uniform()), Phase(0.6, Temperature(0.5)), Phase(1.0, Random())), clip=clip)


@st.composite
def run_st(draw):
    sizes = draw(sizes_st)
    strategy = draw(strategy_st(len(sizes)))
    max_total = float(np.floor(strategy.caps(np.array(sizes))).sum())
    total = draw(st.integers(1, int(min(max_total, 400))))
    return sizes, strategy, total


@settings(max_examples=60, deadline=None)
@given(run_st(), st.lists(st.fractions(0, 1), min_size=1, max_size=5))
def test_draws_match_exact_water_filling(run, fractions):
    sizes, strategy, total = run
    schedule = RunSchedule(np.array(sizes), strategy, total)
    for frac in [Fraction(0), Fraction(1), *fractions]:
        t = frac * total
        expected = np.array([float(d) for d in exact_draws(sizes, strategy, total, t)])
        np.testing.assert_allclose(schedule.draws(float(t)), expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(run_st(), st.lists(st.floats(0, 1), min_size=2, max_size=20))
def test_draws_are_monotone_capped_and_sum_to_t(run, fractions):
    sizes, strategy, total = run
    schedule = RunSchedule(np.array(sizes), strategy, total)
    times = np.sort(np.array(fractions) * total)
    draws = np.stack([schedule.draws(t) for t in times])
    assert (np.diff(draws, axis=0) >= 0).all()
    assert (draws <= schedule.caps).all()
    np.testing.assert_allclose(draws.sum(axis=1), times, rtol=1e-12, atol=1e-9)


def test_uniform_shares_until_the_first_knockout():
    sizes = np.array([3, 7, 20, 50, 400])
    schedule = RunSchedule(sizes, ClusterClip(2.0), 900)
    first_knockout = 2 * sizes.min() * len(sizes)  # the smallest cap, reached with a 1/K share
    for t in np.linspace(0, first_knockout, 7):
        np.testing.assert_allclose(schedule.draws(t), np.full(len(sizes), t / len(sizes)))


def test_knockouts_on_long_tailed_sizes_go_smallest_first_and_share_goes_to_the_rest():
    sizes = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], dtype=np.int64)
    clip = 2.0
    total = int(1.5 * sizes.sum())
    schedule = RunSchedule(sizes, ClusterClip(clip), total)
    times = schedule.knockout_times()
    caps = np.floor(clip * sizes)
    knocked = np.isfinite(times)
    assert knocked[:-1].all() and not knocked[-1]  # only the largest cluster survives this budget
    assert (np.diff(times[knocked]) > 0).all()  # smaller clusters are knocked out first
    for k in np.flatnonzero(knocked):
        np.testing.assert_allclose(schedule.draws(times[k])[k], caps[k])
        assert schedule.draws(times[k] * (1 - 1e-9))[k] < caps[k]
    # Between two knock-outs every surviving cluster gains the same, the knocked-out ones nothing.
    edges = np.concatenate(([0.0], times[knocked], [float(total)]))
    for start, end in zip(edges[:-1], edges[1:]):
        gained = schedule.draws(end) - schedule.draws(start)
        alive = ~(times <= start)
        np.testing.assert_allclose(gained[alive], (end - start) / alive.sum())
        np.testing.assert_allclose(gained[~alive], 0, atol=1e-9)


def test_knockout_times_are_inf_without_caps():
    assert np.isinf(RunSchedule(np.array([1, 2, 3]), Uniform(), 1000).knockout_times()).all()


@pytest.mark.parametrize("maker, first, second", [
    (general_to_specific, "size", "uniform"),
    (specific_to_general, "uniform", "size"),
])
def test_schedules_switch_shares_at_the_switch_point(maker, first, second):
    sizes = np.array([10, 30, 60, 100])
    total, switch = 400, 0.25
    schedule = RunSchedule(sizes, maker(switch), total)
    expected = {"size": sizes / sizes.sum(), "uniform": np.full(len(sizes), 1 / len(sizes))}
    at_switch = schedule.draws(switch * total)
    np.testing.assert_allclose(at_switch, switch * total * expected[first])
    np.testing.assert_allclose(schedule.draws(total) - at_switch, (1 - switch) * total * expected[second])


def test_schedule_clip_counts_draws_over_the_whole_run():
    sizes = np.array([2, 5, 40, 100])
    total = 250
    schedule = RunSchedule(sizes, specific_to_general(0.5, clip=2.0), total)
    caps = 2 * sizes
    end = schedule.draws(total)
    assert (end <= caps).all()
    # Cluster 0 fills up in the uniform phase and stays knocked out in the size-proportional one.
    half = schedule.draws(total / 2)
    assert half[0] == caps[0] and end[0] == caps[0]
    assert schedule.knockout_times()[0] < total / 2


def test_infeasible_budget_names_the_largest_feasible_one():
    sizes = np.array([3, 10, 27])
    expected = int(sum(math.floor(2.5 * n) for n in sizes))
    RunSchedule(sizes, ClusterClip(2.5), expected)  # exactly the maximum is fine
    with pytest.raises(PlanInfeasible, match=rf"at most {expected} draws.*<= {expected}") as info:
        RunSchedule(sizes, ClusterClip(2.5), expected + 1)
    assert info.value.max_total_samples == expected
    with pytest.raises(PlanInfeasible, match=rf"at most {2 * sizes.sum()}"):
        RunSchedule(sizes, general_to_specific(clip=2.0), 2 * int(sizes.sum()) + 1)


@pytest.mark.parametrize("sizes, total, match", [
    (np.array([], dtype=np.int64), 1, "non-empty 1-D"),
    (np.array([[1, 2]]), 1, "non-empty 1-D"),
    (np.array([1.0, 2.0]), 1, "must be integers"),
    (np.array([3, 0]), 1, "at least one sample, got size 0 for cluster 1"),
    (np.array([3, 4]), 0, "total_samples must be an integer >= 1"),
    (np.array([3, 4]), 2.0, "total_samples must be an integer >= 1"),
])
def test_run_schedule_rejects_bad_input(sizes, total, match):
    with pytest.raises(ConfigError, match=match):
        RunSchedule(sizes, Uniform(), total)


@pytest.mark.parametrize("strategy", [None, "clusterclip", ClusterClip, {"name": "uniform"}, Phase(1.0, Uniform())])
def test_run_schedule_refuses_what_is_not_a_strategy(strategy):
    with pytest.raises(ConfigError, match=r"strategy must be a strategy object \(Random, Uniform, ClusterClip, "
                                          r"Temperature, Weighted, Schedule\).*one of: random, uniform, clusterclip"):
        RunSchedule(np.array([1, 2, 3]), strategy, 5)


def test_run_schedule_rejects_weights_that_do_not_fit():
    with pytest.raises(ConfigError, match="has 2 weights but the dataset has 3 clusters"):
        RunSchedule(np.array([1, 2, 3]), Weighted((1, 2)), 5)
    with pytest.raises(ConfigError, match="not all finite and > 0"):
        RunSchedule(np.array([1, 10**6]), Temperature(2000.0), 5)


def test_draws_rejects_times_outside_the_run():
    schedule = RunSchedule(np.array([1, 2]), Uniform(), 10)
    with pytest.raises(ConfigError, match=r"t must be a number in \[0, total_samples=10\]"):
        schedule.draws(10.5)
    with pytest.raises(ConfigError, match=r"t must be a number in"):
        schedule.draws(-1)


# --- strategies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("build, match", [
    (lambda: ClusterClip(0.5), r"clip must be a finite number >= 1.*got clip=0.5"),
    (lambda: ClusterClip(float("nan")), "clip must be"),
    (lambda: ClusterClip(None), "got clip=None"),
    (lambda: Temperature(1.0, clip=math.inf), r"clip must be.*use clip=None"),
    (lambda: Temperature(math.inf), "t must be a finite number"),
    (lambda: Weighted(()), "got an empty sequence"),
    (lambda: Weighted((1.0, -1.0)), r"finite numbers > 0.*weight 1 is -1.0"),
    (lambda: Weighted(("a", 1)), "weight 0 is 'a'"),
    (lambda: Weighted("1234"), "sequence of finite numbers > 0.*got str '1234'"),
    (lambda: Weighted(b"12"), "got bytes"),
    (lambda: Weighted({"0": 1.0, "1": 2.0}), "got dict"),
    (lambda: Weighted({1.0, 2.0}), "got set"),
    (lambda: Weighted(3.0), "got float 3.0"),
    (lambda: Weighted((1.0, True)), "weight 1 is True"),
    (lambda: Weighted((1.0, float("nan"))), "weight 1 is nan"),
    (lambda: Weighted(np.ones((2, 2))), "weight 0 is array"),
    (lambda: Phase(0.0, Uniform()), r"Phase.until must be a fraction of the run in \(0, 1\]"),
    (lambda: Phase(0.5, general_to_specific()), "schedules do not nest"),
    (lambda: Phase(0.5, ClusterClip(2.0)), r"must not cap.*Schedule\(phases, clip=2.0\)"),
    (lambda: Schedule(()), "non-empty sequence of Phase"),
    (lambda: Schedule((Phase(0.6, Uniform()), Phase(0.5, Random()), Phase(1.0, Uniform()))), "increase strictly"),
    (lambda: Schedule((Phase(0.5, Uniform()),)), "last must be 1.0"),
    (lambda: Schedule((Phase(1.0, Uniform()),), clip=0), "clip must be"),
    (lambda: general_to_specific(1.0), r"switch must be a fraction of the run in \(0, 1\)"),
    (lambda: specific_to_general(0), "switch must be"),
])
def test_strategy_validation(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


@pytest.mark.parametrize("name, params, match", [
    ("nope", {}, "unknown strategy 'nope'; choose one of: random, uniform, clusterclip"),
    ("uniform", {"clip": 2}, "strategy 'uniform' takes no parameter 'clip'; it accepts: no parameters"),
    ("clusterclip", {"clp": 2}, "takes no parameter 'clp'; it accepts: clip"),
    ("temperature", {}, r"strategy temperature needs t=\.\.\. \(e\.g\. --t 0\.5"),
    ("weighted", {}, r"weighted needs weights=\.\.\. \(e\.g\. --weights FILE\.json"),
    ("weighted", {"clip": 2.0}, r"weighted needs weights="),
    (None, {}, "unknown strategy None; choose one of: random, uniform, clusterclip, temperature, weighted"),
    (["clusterclip"], {}, r"unknown strategy \['clusterclip'\]; choose one of"),
    ("clusterclip", {"clip": "2"}, "clip must be a finite number >= 1.*got clip='2'"),
    ("general-to-specific", {"switch": "half"}, "switch must be a fraction"),
])
def test_strategy_from_spec_names_the_mistake(name, params, match):
    with pytest.raises(ConfigError, match=match):
        strategy_from_spec(name, **params)


@pytest.mark.parametrize("data, match", [
    ({}, "needs a 'name' key"),
    ({"name": "bogus"}, "unknown strategy 'bogus' in dict"),
    ({"name": "clusterclip", "cap": 2}, r"strategy 'clusterclip' takes no parameter 'cap'; it accepts: clip"),
    ({"name": "temperature"}, r"temperature needs t="),
    ({"name": ["uniform"]}, r"unknown strategy \['uniform'\] in dict"),
    ({"name": "schedule", "clip": None}, "a schedule dict has keys 'phases'"),
    ({"name": "schedule", "phases": "uniform"}, r"a schedule dict has keys 'phases' \(a list\)"),
    ({"name": "schedule", "phases": [1.0]}, "each phase of a schedule dict has exactly the keys 'until' and 'strategy', got 1.0"),
    ({"name": "schedule", "phases": [{"until": 1.0}]}, "exactly the keys 'until' and 'strategy'"),
    ({"name": "weighted", "weights": {"a": 1}}, "weights must be a sequence.*got dict"),
])
def test_strategy_from_dict_rejects_bad_dicts(data, match):
    with pytest.raises(ConfigError, match=match):
        strategy_from_dict(data)


def test_every_registered_strategy_builds_from_its_spec():
    params = {"temperature": {"t": 0.5, "clip": 3.0}, "weighted": {"weights": [1, 2, 3]},
              "clusterclip": {"clip": 4}, "general-to-specific": {"switch": 0.3, "clip": 2}}
    for name, factory in STRATEGIES.items():
        built = strategy_from_spec(name, **params.get(name, {}))
        assert built == factory(**params.get(name, {}))
        RunSchedule(np.array([5, 6, 7]), built, 10)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5).flatmap(strategy_st))
def test_to_dict_round_trips_through_json(strategy):
    data = json.loads(json.dumps(strategy.to_dict()))
    assert strategy_from_dict(data) == strategy
    assert data["name"] == strategy.name


def test_strategies_are_frozen_and_hashable():
    strategy = Weighted([1, 2], clip=2)
    assert strategy.values == (1.0, 2.0) and hash(strategy) == hash(Weighted((1.0, 2.0), clip=2.0))
    with pytest.raises(AttributeError):
        strategy.clip = 3.0  # type: ignore[misc]
