"""``streamclip.planning``: budgets, epoch sizes, the plan report and the weights-fit check.

test_plan_errors.py covers the budget error messages; here are the budget invariants, the report's
figures (derived again from the summaries it is given) and ``check_weights_fit``.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamclip.errors import ConfigError
from streamclip.manifest import clustering_fingerprint
from streamclip.plan import ClusterClip, Phase, Random, RunSchedule, Schedule, Uniform, Weighted, summarize
from streamclip.planning import BYTES_PER_TOKEN, check_weights_fit, parse_epoch_size, plan_report, resolve_budget

from test_manifest_units import synthetic, unit_centroids, write_dataset

# --- parse_epoch_size ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, samples", [
    (None, None), (7, 7), (np.int64(12), 12), (3.0, 3), (np.float64(5.0), 5),
    ("007", 7), (" 2K\n", 2000), ("1.5m", 1_500_000), ("0.5k", 500), ("1e1k", 10_000), ("3T", 3 * 10**12),
])
def test_epoch_size_forms(value, samples):
    parsed = parse_epoch_size(value)
    assert parsed == samples
    assert parsed is None or type(parsed) is int  # plain ints: the budget goes into JSON and state dicts


@pytest.mark.parametrize("value", [True, False, 0, -3, float("inf"), float("nan"), 2.5, "", " ", "k1", "1.5", "12kb", [10], "1,000"])
def test_epoch_size_refuses_anything_but_a_whole_count(value):
    with pytest.raises(ConfigError, match="epoch_size") as info:
        parse_epoch_size(value)
    assert repr(value) in str(info.value)


# --- resolve_budget ------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**6), st.one_of(st.none(), st.integers(1, 50)), st.one_of(st.none(), st.integers(1, 10**6)))
def test_an_epochs_budget_is_that_many_epochs(documents, epochs, epoch_size):
    total, size = resolve_budget(documents, total_samples=None, epochs=epochs, epoch_size=epoch_size)
    assert size == (documents if epoch_size is None else epoch_size)
    assert total == (epochs or 1) * size


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**4), st.integers(1, 10**6), st.one_of(st.none(), st.integers(1, 10**4)))
def test_a_samples_budget_is_kept_or_refused_with_budgets_that_fit(documents, total_samples, epoch_size):
    size = documents if epoch_size is None else epoch_size
    try:
        total, got_size = resolve_budget(documents, total_samples=total_samples, epochs=None, epoch_size=epoch_size)
    except ConfigError as e:
        # Refused only when the budget is not whole epochs; without an epoch size, a budget below one pass is one short epoch.
        assert total_samples % size and (epoch_size is not None or total_samples > documents)
        if total_samples > size:
            lower, upper = map(int, re.search(r"Use total_samples=(\d+) or (\d+),", str(e)).groups())
            assert lower % size == 0 and lower < total_samples < upper == lower + size  # the whole epochs on either side
        else:  # below one epoch: one epoch is the smallest budget that fits, named once
            assert re.search(r"Use total_samples=(\d+),", str(e))[1] == str(size)
        return
    assert total == total_samples and total % got_size == 0
    assert got_size == (epoch_size if epoch_size is not None else min(documents, total_samples))


def test_numpy_counts_are_accepted_and_returned_as_ints():
    total, size = resolve_budget(np.int64(100), total_samples=np.int64(300), epochs=None, epoch_size=np.int32(100))
    assert (total, size) == (300, 100) and type(total) is int and type(size) is int
    total, size = resolve_budget(10, total_samples=None, epochs=np.int64(3), epoch_size=None)
    assert (total, size) == (30, 10) and type(total) is int


# --- plan_report ---------------------------------------------------------------------------------------

SIZES = [50, 30, 12, 5, 3]


def summaries_for(strategies: dict, total: int):
    sizes = np.array(SIZES, dtype=np.int64)
    return {name: summarize(sizes, RunSchedule(sizes, s, total)) for name, s in strategies.items()}


def test_report_figures_agree_with_the_summaries():
    manifest, _ = synthetic(SIZES)
    summaries = summaries_for({"random": Random(), "clip": ClusterClip(clip=2)}, total=150)
    report = plan_report(manifest, summaries, epoch_size=100)
    assert {k: report[k] for k in ("documents", "clusters", "total_samples", "epoch_size", "epochs")} == {
        "documents": 100, "clusters": 5, "total_samples": 150, "epoch_size": 100, "epochs": 2}
    for name, s in summaries.items():
        got = report["strategies"][name]
        draws = [int(d) for d in s.draws]
        assert sum(draws) == 150
        assert got["strategy"] == s.schedule.strategy.to_dict()
        assert got["unique_documents_seen"] == sum(min(d, n) for d, n in zip(draws, SIZES))
        assert got["unique_fraction"] == pytest.approx(got["unique_documents_seen"] / 100)
        assert got["max_repeats"] == max(math.ceil(d / n) for d, n in zip(draws, SIZES))
        text_bytes = sum(Fraction(d * c.bytes, c.documents) for d, c in zip(draws, manifest.clusters))
        assert got["estimated_tokens"] == math.floor(text_bytes / Fraction(BYTES_PER_TOKEN))
        assert [c["id"] for c in got["per_cluster"]] == list(range(5))
        assert [c["size"] for c in got["per_cluster"]] == SIZES
        assert [c["draws"] for c in got["per_cluster"]] == draws
        assert sum(c["share"] for c in got["per_cluster"]) == pytest.approx(1.0)


def test_knocked_out_clusters_are_the_ones_at_their_cap():
    manifest, _ = synthetic(SIZES)
    report = plan_report(manifest, summaries_for({"random": Random(), "clip": ClusterClip(clip=2)}, total=150), epoch_size=150)
    assert report["epochs"] == 1
    assert report["strategies"]["random"]["clusters_knocked_out"] == 0
    assert all(c["knockout_fraction"] is None for c in report["strategies"]["random"]["per_cluster"])
    clip = report["strategies"]["clip"]
    knocked = [c for c in clip["per_cluster"] if c["knockout_fraction"] is not None]
    assert clip["clusters_knocked_out"] == len(knocked) > 0
    assert all(c["draws"] == 2 * c["size"] and 0 < c["knockout_fraction"] <= 1 for c in knocked)
    assert clip["max_repeats"] == 2
    json.dumps(report, allow_nan=False)  # no inf or numpy scalars leak into the JSON


# --- check_weights_fit ---------------------------------------------------------------------------------


@pytest.fixture
def clustered(tmp_path):
    location = tmp_path / "ds"
    manifest = write_dataset(location, [4, 3, 2], centroids=unit_centroids(3))
    return str(location), manifest


@pytest.mark.parametrize("strategy", [Uniform(), ClusterClip(clip=3), Weighted((1, 2, 3)), Schedule((Phase(1.0, Weighted((1, 1, 1))),))])
def test_weights_not_made_for_a_dataset_read_nothing(tmp_path, strategy):
    manifest, _ = synthetic([4, 3, 2], has_centroids=True)
    check_weights_fit(strategy, str(tmp_path / "no-such-dataset"), manifest)  # the centroids would be missing


def test_weights_made_for_this_dataset_or_its_clustering_fit(clustered):
    location, manifest = clustered
    clustering = clustering_fingerprint(location, manifest)
    check_weights_fit(Weighted((1, 2, 3), made_for=(manifest.fingerprint(), None)), location, manifest)
    check_weights_fit(Weighted((1, 2, 3), made_for=("0" * 16, clustering)), location, manifest)  # e.g. searched on a split of it


def test_weights_made_for_another_dataset_are_refused_naming_both(clustered):
    location, manifest = clustered
    foreign = Weighted((1, 2, 3), made_for=("0" * 16, "1" * 16))
    with pytest.raises(ConfigError, match=rf"made for dataset 0{{16}} \(clustering 1{{16}}\), not for {re.escape(location)} "
                                          rf"\(dataset {manifest.fingerprint()}, clustering {clustering_fingerprint(location, manifest)}\)"):
        check_weights_fit(foreign, location, manifest)


def test_a_schedule_phase_made_for_another_dataset_is_refused(clustered):
    location, manifest = clustered
    mine = Weighted((1, 1, 1), made_for=(manifest.fingerprint(), None))
    foreign = Weighted((3, 2, 1), made_for=("0" * 16, None))
    check_weights_fit(Schedule((Phase(0.5, mine), Phase(1.0, Uniform()))), location, manifest)
    with pytest.raises(ConfigError, match="made for dataset 0{16}"):
        check_weights_fit(Schedule((Phase(0.5, mine), Phase(1.0, foreign))), location, manifest)


def test_no_clustering_on_either_side_is_no_match(tmp_path):
    """Two datasets clustered from an input field both have clustering None; that must not count as the same clustering."""
    manifest = write_dataset(tmp_path / "ds", [4, 3, 2])
    with pytest.raises(ConfigError, match=r"made for dataset 0{16} \(clustering None\).*clustering None\)"):
        check_weights_fit(Weighted((1, 2, 3), made_for=("0" * 16, None)), str(tmp_path / "ds"), manifest)
