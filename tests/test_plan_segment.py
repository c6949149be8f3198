"""Segments: walked documents against explicit pass sequences, whole-run invariants, and the report."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamclip.errors import ConfigError
from streamclip.plan import (
    ClusterClip,
    ClusterLayout,
    Random,
    RunSchedule,
    Temperature,
    Uniform,
    counts_at,
    general_to_specific,
    num_segments,
    pass_order,
    plan_segment,
    plot_plan,
    summarize,
    walk_cluster,
)


def make_layout(shards_per_cluster: list[list[int]]) -> ClusterLayout:
    sizes = [n for shards in shards_per_cluster for n in shards]
    bounds = np.cumsum([0] + [len(shards) for shards in shards_per_cluster])
    return ClusterLayout.from_shards(sizes, np.stack([bounds[:-1], bounds[1:]], axis=1))


def walk_reference(layout: ClusterLayout, cluster: int, seed: int, positions: np.ndarray) -> np.ndarray:
    """Global sample ids at walk positions, from the definition: pass p visits the cluster's shards in
    the order default_rng((seed, cluster, p)).permutation, each shard's samples in stored order."""
    first, last = layout.shard_cluster_ranges[cluster]
    shard_sizes = layout.samples_per_shard[first:last]
    size = int(shard_sizes.sum())
    ids = []
    for q in positions.tolist():
        p, r = divmod(q, size)
        order = np.random.default_rng((seed, cluster, p)).permutation(len(shard_sizes))
        sequence = np.concatenate([layout.shard_offsets[first + s] + np.arange(shard_sizes[s]) for s in order])
        ids.append(sequence[r])
    return np.array(ids, dtype=np.int64)


def cluster_of(layout: ClusterLayout, ids: np.ndarray) -> np.ndarray:
    shard = np.searchsorted(layout.shard_offsets, ids, side="right") - 1
    return np.searchsorted(layout.shard_cluster_ranges[:, 1], shard, side="right")


def check_units(layout: ClusterLayout, units: np.ndarray, ids: np.ndarray) -> None:
    assert units.dtype == np.int64 and ids.dtype == np.int64
    assert (units > 0).all() and units.sum() == len(ids)
    shard = np.searchsorted(layout.shard_offsets, ids, side="right") - 1
    starts = np.cumsum(units) - units
    for start, length in zip(starts.tolist(), units.tolist()):
        run = ids[start:start + length]
        assert (np.diff(run) == 1).all()  # consecutive samples in stored order
        assert shard[start] == shard[start + length - 1]  # inside one shard


layout_st = st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=4), min_size=1, max_size=5).map(make_layout)


@settings(max_examples=40, deadline=None)
@given(layout_st, st.sampled_from([Random(), Uniform(), ClusterClip(2.0), ClusterClip(1.0), Temperature(0.5, clip=3.0),
                                   general_to_specific(0.5, clip=2.0)]),
       st.integers(0, 2**32), st.integers(1, 60), st.floats(0.1, 1.0))
def test_segments_concatenate_to_the_whole_run(layout, strategy, seed, epoch_size, fraction):
    max_total = float(np.floor(strategy.caps(layout.cluster_sizes)).sum())
    total = max(1, int(fraction * min(max_total, 300)))
    schedule = RunSchedule(layout.cluster_sizes, strategy, total)
    per_cluster = {k: [] for k in range(layout.num_clusters)}
    everything = []
    for epoch in range(num_segments(total, epoch_size)):
        units, ids = plan_segment(layout, schedule, seed=seed, epoch_size=epoch_size, epoch=epoch)
        check_units(layout, units, ids)
        assert len(ids) == min(epoch_size, total - epoch * epoch_size)
        owner = cluster_of(layout, ids)
        assert (np.diff(owner) >= 0).all()  # cluster by cluster
        expected = counts_at(schedule, min((epoch + 1) * epoch_size, total)) - counts_at(schedule, epoch * epoch_size)
        np.testing.assert_array_equal(np.bincount(owner, minlength=layout.num_clusters), expected)
        for k in range(layout.num_clusters):
            per_cluster[k].extend(ids[owner == k].tolist())
        everything.extend(ids.tolist())
    final = counts_at(schedule, total)
    for k, ids in per_cluster.items():
        assert len(ids) == final[k]
        np.testing.assert_array_equal(ids, walk_reference(layout, k, seed, np.arange(final[k])))
    if isinstance(strategy, ClusterClip):  # no document more than clip times over the run
        assert max(Counter(everything).values()) <= strategy.clip


def test_clusterclip_caps_every_document_and_spends_the_budget():
    layout = make_layout([[1], [2, 3], [4, 4, 2], [50, 50], [300, 200, 100]])
    clip = 3
    total = int(0.9 * clip * layout.num_samples)
    schedule = RunSchedule(layout.cluster_sizes, ClusterClip(clip), total)
    seen = Counter()
    for epoch in range(num_segments(total, 256)):
        seen.update(plan_segment(layout, schedule, seed=7, epoch_size=256, epoch=epoch)[1].tolist())
    assert sum(seen.values()) == total and max(seen.values()) <= clip
    small = layout.shard_offsets[layout.shard_cluster_ranges[2, 1]]  # every doc of clusters 0-2 ...
    assert all(seen[i] == clip for i in range(small))  # ... is knocked out at exactly clip repeats


def test_a_segment_far_into_a_huge_run_is_exact():
    layout = make_layout([[3, 4], [10], [2, 2, 2, 7]])
    total, epoch_size, epoch = 10**12, 1000, 10**6
    schedule = RunSchedule(layout.cluster_sizes, Uniform(), total)
    units, ids = plan_segment(layout, schedule, seed=11, epoch_size=epoch_size, epoch=epoch)
    check_units(layout, units, ids)
    assert len(ids) == epoch_size
    before = counts_at(schedule, epoch * epoch_size)
    after = counts_at(schedule, (epoch + 1) * epoch_size)
    owner = cluster_of(layout, ids)
    for k in range(layout.num_clusters):
        expected = walk_reference(layout, k, 11, np.arange(before[k], after[k]))
        np.testing.assert_array_equal(ids[owner == k], expected)


def test_same_inputs_same_segment_and_seed_matters():
    layout = make_layout([[5, 5, 5, 5], [8, 8, 8]])
    schedule = RunSchedule(layout.cluster_sizes, Uniform(), 1000)
    a = plan_segment(layout, schedule, seed=3, epoch_size=100, epoch=4)
    b = plan_segment(layout, schedule, seed=3, epoch_size=100, epoch=4)
    c = plan_segment(layout, schedule, seed=4, epoch_size=100, epoch=4)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_pass_order_seeds_with_a_tuple():
    for seed, cluster, p in [(0, 0, 1), (1, 0, 0), (5, 3, 2)]:
        expected = np.random.default_rng((seed, cluster, p)).permutation(6)
        np.testing.assert_array_equal(pass_order(6, seed=seed, cluster_id=cluster, pass_index=p), expected)
    # seed + pass would make these two equal; tuples keep them apart.
    orders = {tuple(pass_order(8, seed=s, cluster_id=0, pass_index=p)) for s, p in [(0, 1), (1, 0)]}
    assert len(orders) == 2


def test_walk_cluster_runs_follow_the_pass_sequence():
    layout = make_layout([[4, 1, 3]])
    starts, lengths = walk_cluster(layout.samples_per_shard, layout.shard_offsets, seed=2, cluster_id=0,
                                   start=5, stop=29)
    ids = np.concatenate([s + np.arange(n) for s, n in zip(starts, lengths)])
    np.testing.assert_array_equal(ids, walk_reference(layout, 0, 2, np.arange(5, 29)))
    assert walk_cluster(layout.samples_per_shard, layout.shard_offsets, seed=2, cluster_id=0,
                        start=3, stop=3)[0].size == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"start": 4, "stop": 2}, "0 <= start <= stop"),
    ({"start": 0, "stop": 2, "seed": -1}, r"seed must be an integer >= 0, got seed=-1"),
])
def test_walk_cluster_rejects_bad_ranges(kwargs, match):
    args = {"seed": 0, "cluster_id": 0, **kwargs}
    with pytest.raises(ConfigError, match=match):
        walk_cluster(np.array([3, 4]), np.array([0, 3]), **args)
    with pytest.raises(ConfigError, match="one or more non-empty shards"):
        walk_cluster(np.array([3, 0]), np.array([0, 3]), seed=0, cluster_id=0, start=0, stop=1)


def test_layout_derives_offsets_and_sizes():
    layout = ClusterLayout.from_shards([3, 1, 4, 1, 5], [(0, 2), (2, 3), (3, 5)])
    np.testing.assert_array_equal(layout.shard_offsets, [0, 3, 4, 8, 9])
    np.testing.assert_array_equal(layout.cluster_sizes, [4, 4, 6])
    assert layout.num_samples == 14 and layout.num_clusters == 3
    with pytest.raises(ValueError):
        layout.samples_per_shard[0] = 9  # read-only


@pytest.mark.parametrize("shards, ranges, match", [
    ([3, 0, 2], [(0, 2), (2, 3)], "no empty shards"),
    ([], [(0, 1)], "non-empty 1-D"),
    ([3.0, 2.0], [(0, 1), (1, 2)], "samples_per_shard must be integers"),
    ([3, 2], [(0, 1, 2)], r"shape \(K, 2\)"),
    ([3, 2], [(0, 1), (1, 1), (1, 2)], r"cluster 1 owns no shard: range \[1, 1\]"),
    ([3, 2, 4], [(0, 1), (2, 3)], "cluster 0 ends at shard 1 but cluster 1 starts at 2"),
    ([3, 2, 4], [(0, 1), (1, 2)], r"tile shards 0..3 contiguously in cluster order; they cover shards 0..2"),
])
def test_layout_rejects_bad_ranges(shards, ranges, match):
    with pytest.raises(ConfigError, match=match):
        ClusterLayout.from_shards(np.array(shards, dtype=np.float64 if match.endswith("integers") else np.int64),
                                  ranges)


@pytest.mark.parametrize("kwargs, match", [
    ({"epoch": 3}, r"epoch=3 is beyond the run: total_samples=25 at epoch_size=10 makes 3 segments \(epochs 0..2\)"),
    ({"epoch": -1}, "epoch must be an integer >= 0"),
    ({"seed": -2}, "seed must be an integer >= 0"),
    ({"epoch_size": 0}, "epoch_size must be an integer >= 1"),
])
def test_plan_segment_rejects_bad_arguments(kwargs, match):
    layout = make_layout([[5], [6, 4]])
    schedule = RunSchedule(layout.cluster_sizes, Uniform(), 25)
    args = {"seed": 0, "epoch_size": 10, "epoch": 0, **kwargs}
    with pytest.raises(ConfigError, match=match):
        plan_segment(layout, schedule, **args)


def test_plan_segment_rejects_a_schedule_for_other_clusters():
    layout = make_layout([[5], [6, 4]])
    with pytest.raises(ConfigError, match="other cluster sizes than this layout's"):
        plan_segment(layout, RunSchedule(np.array([5, 11]), Uniform(), 20), seed=0, epoch_size=10, epoch=0)


def test_summary_follows_the_definitions(tmp_path):
    layout = make_layout([[1], [2, 3], [10, 10], [100, 60]])
    total = 350
    schedule = RunSchedule(layout.cluster_sizes, ClusterClip(2.0), total)
    summary = summarize(layout, schedule)
    sizes = layout.cluster_sizes
    np.testing.assert_array_equal(summary.draws, counts_at(schedule, total))
    np.testing.assert_array_equal(summary.passes, np.ceil(summary.draws / sizes).astype(np.int64))
    np.testing.assert_array_equal(summary.unique_seen, np.minimum(summary.draws, sizes))
    np.testing.assert_allclose(summary.share, summary.draws / total)
    np.testing.assert_allclose(summary.knockout_fraction, schedule.knockout_times() / total)
    hist = summary.repeat_histogram()
    assert hist.sum() == layout.num_samples and (np.arange(len(hist)) * hist).sum() == total
    assert len(hist) - 1 == summary.passes.max() <= 2
    other = summarize(sizes, RunSchedule(sizes, Random(), total))
    out = plot_plan({"clusterclip": summary, "random": other}, tmp_path / "plan.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_and_plot_reject_mismatches(tmp_path):
    schedule = RunSchedule(np.array([3, 4]), Uniform(), 10)
    with pytest.raises(ConfigError, match="other cluster sizes than the ones given to summarize"):
        summarize(np.array([3, 5]), schedule)
    with pytest.raises(ConfigError, match="at least one named PlanSummary"):
        plot_plan({}, tmp_path / "x.png")
