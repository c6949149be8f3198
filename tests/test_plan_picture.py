"""The plan picture: the data drawn (shares per cluster over training, knock-out points) and the PNG."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from streamclip.errors import ConfigError
from streamclip.plan import ClusterClip, Random, RunSchedule, general_to_specific, plan_picture, plot_plan, summarize


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_every_cluster_is_a_row_largest_on_top_with_its_knockout():
    sizes = np.array([5, 500, 1, 50, 50, 2])
    schedule = RunSchedule(sizes, ClusterClip(2.0), 700)
    picture = plan_picture(schedule, columns=50)
    np.testing.assert_array_equal(picture.order, [1, 3, 4, 0, 5, 2])  # by size, ties by id
    assert picture.shares.shape == (6, 50)
    np.testing.assert_allclose(picture.shares.sum(axis=0), 1.0)  # every draw goes to some cluster
    times = schedule.knockout_times()
    knocked = np.flatnonzero(np.isfinite(times))
    assert len(knocked) > 0
    np.testing.assert_array_equal(picture.knockout_cluster, knocked)
    np.testing.assert_allclose(picture.knockout_at, times[knocked] / schedule.total_samples)
    row_of = {int(c): r for r, c in enumerate(picture.order)}
    np.testing.assert_array_equal(picture.knockout_row, [row_of[int(c)] for c in knocked])
    # After its knock-out a cluster gets no more draws; before it, its share is positive.
    centres = (picture.edges[:-1] + picture.edges[1:]) / 2
    for c, at, row in zip(picture.knockout_cluster, picture.knockout_at, picture.knockout_row):
        assert (picture.shares[row, centres > at + 1 / 50] == 0).all()
        assert (picture.shares[row, centres < at - 1 / 50] > 0).all()


def test_many_clusters_are_binned_into_rows_that_keep_every_share():
    rng = np.random.default_rng(1)
    sizes = np.maximum(1, rng.lognormal(4, 2, 10_000).astype(np.int64))
    schedule = RunSchedule(sizes, general_to_specific(0.5, clip=3.0), 2 * int(sizes.sum()))
    picture = plan_picture(schedule, columns=40, max_rows=400)
    assert picture.shares.shape == (400, 40) and picture.clusters_per_row == 25
    assert picture.row_bounds[0] == 0 and picture.row_bounds[-1] == 10_000
    np.testing.assert_allclose(picture.shares.sum(axis=0), 1.0)
    rows_sizes = np.add.reduceat(sizes[picture.order], picture.row_bounds[:-1])
    assert (np.diff(rows_sizes) <= 0).all()  # largest clusters in the top rows
    knocked = np.isfinite(schedule.knockout_times())
    assert picture.knockout_cluster.size == knocked.sum() > 0
    lo, hi = picture.row_bounds[picture.knockout_row], picture.row_bounds[picture.knockout_row + 1]
    position = np.argsort(picture.order)[picture.knockout_cluster]  # each knocked cluster's place in the order
    assert ((lo <= position) & (position < hi)).all()


def test_plot_writes_a_png_of_the_asked_size(tmp_path):
    sizes = np.array([300, 40, 7, 1, 1])
    summaries = {"clusterclip": summarize(sizes, RunSchedule(sizes, ClusterClip(2.0), 600)),
                 "random": summarize(sizes, RunSchedule(sizes, Random(), 600))}
    out = plot_plan(summaries, tmp_path / "plan.png", size_px=(1300, 700))
    assert png_size(out) == (1300, 700)
    default = plot_plan(summaries, tmp_path / "default.png")
    assert png_size(default)[0] > png_size(default)[1]


def test_picture_refuses_empty_grids():
    schedule = RunSchedule(np.array([3, 4]), Random(), 5)
    with pytest.raises(ConfigError, match="columns and max_rows must be >= 1"):
        plan_picture(schedule, columns=0)
