"""`streamclip inspect`: the table, the JSON report and the plot reflect the manifest."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from streamclip import open_manifest
from streamclip.summary import describe, gini

from conftest import convert_docs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs):
    return convert_docs(tmp_path_factory.mktemp("inspect"), sample_docs, clusters=7)


def test_gini_bounds():
    assert gini(np.array([5, 5, 5, 5])) == 0.0
    n = 100
    assert gini(np.array([0] * (n - 1) + [1])) == pytest.approx((n - 1) / n)
    assert gini(np.array([1, 2, 3, 4])) < gini(np.array([1, 1, 1, 20]))


def test_json_report_agrees_with_manifest(dataset):
    result = subprocess.run([sys.executable, "-m", "streamclip.cli", "inspect", str(dataset), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    manifest = open_manifest(str(dataset))
    assert report == json.loads(json.dumps(describe(manifest)))
    assert [c["documents"] for c in report["clusters"]] == manifest.cluster_sizes.tolist()
    assert sum(c["share"] for c in report["clusters"]) == pytest.approx(1.0)
    sizes = manifest.cluster_sizes
    assert report["long_tail"]["ratio"] == pytest.approx(sizes.max() / sizes.min())
    assert all(c["top_terms"] and c["example"] for c in report["clusters"])


def test_table_and_plot(dataset, tmp_path):
    png = tmp_path / "sizes.png"
    result = subprocess.run([sys.executable, "-m", "streamclip.cli", "inspect", str(dataset), "--limit", "3", "--plot", str(png)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    manifest = open_manifest(str(dataset))
    largest = max(manifest.clusters, key=lambda c: c.documents)
    first_row = result.stdout.splitlines()[1].split()
    assert first_row[:2] == [str(largest.id), str(largest.documents)]
    assert f"… {manifest.num_clusters - 3} more clusters" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_of_a_non_dataset_is_one_clear_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "streamclip.cli", "inspect", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path}/streamclip.json: missing (is this a streamclip dataset? run `streamclip convert` first)"
