"""`streamclip plan`: simulates a run from the manifest alone, agreeing with the plan engine."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from streamclip import open_manifest
from streamclip.plan import ClusterClip, RunSchedule, counts_at

from conftest import convert_docs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs):
    return convert_docs(tmp_path_factory.mktemp("plancli"), sample_docs, clusters=9)


def run_plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamclip.cli", "plan", *args], capture_output=True, text=True)


def test_json_plan_matches_the_engine(dataset):
    result = run_plan(str(dataset), "--compare", "random,uniform,clusterclip", "--clip", "2", "--total-samples", "1200", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    manifest = open_manifest(str(dataset))
    sizes = manifest.cluster_sizes
    clip = report["strategies"]["clusterclip"]
    draws = np.array([c["draws"] for c in clip["per_cluster"]])
    assert draws.tolist() == counts_at(RunSchedule(sizes, ClusterClip(clip=2), 1200), 1200).tolist()
    assert draws.sum() == 1200 and np.all(draws <= 2 * sizes) and clip["max_repeats"] <= 2
    knocked = [c for c in clip["per_cluster"] if c["knockout_fraction"] is not None]
    assert len(knocked) == clip["clusters_knocked_out"] and all(c["draws"] == 2 * c["size"] for c in knocked)
    random_draws = np.array([c["draws"] for c in report["strategies"]["random"]["per_cluster"]])
    # The engine's integer counts stay within 1 + K*n_k/N of the continuous schedule under mixed rates.
    assert np.all(np.abs(random_draws - 1200 * sizes / sizes.sum()) <= 1 + len(sizes) * sizes / sizes.sum())
    uniform_draws = np.array([c["draws"] for c in report["strategies"]["uniform"]["per_cluster"]])
    assert uniform_draws.max() - uniform_draws.min() <= 1


def test_table_and_plot(dataset, tmp_path):
    png = tmp_path / "plan.png"
    result = run_plan(str(dataset), "--compare", "clusterclip,random", "--clip", "3", "--epochs", "2", "--plot", str(png))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"budget {2 * open_manifest(str(dataset)).num_documents} samples = 2 epoch(s)")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_infeasible_budget_is_one_clear_line(dataset):
    n = open_manifest(str(dataset)).num_documents
    result = run_plan(str(dataset), "--strategy", "clusterclip", "--clip", "2", "--epochs", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("error: total_samples=") and f"at most {2 * n} draws" in result.stderr
    assert "Traceback" not in result.stderr


def test_epoch_size_takes_stocks_abbreviations(dataset):
    """`--epoch-size 1.2k` is stock streaming's 1,200 samples: the same plan as `--epoch-size 1200`."""
    base = ["--strategy", "uniform", "--total-samples", "2400", "--json"]
    short = run_plan(str(dataset), "--epoch-size", "1.2k", *base)
    spelled = run_plan(str(dataset), "--epoch-size", "1200", *base)
    assert short.returncode == 0 and spelled.returncode == 0, short.stderr + spelled.stderr
    assert json.loads(short.stdout) == json.loads(spelled.stdout)
    assert json.loads(short.stdout)["epoch_size"] == 1200
