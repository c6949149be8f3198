"""`streamclip inspect`: the table, the JSON report and the plot reflect the manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from streamclip import open_manifest
from streamclip.summary import describe, gini, printable

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


HOSTILE = "\x1b]0;pwned\x07 alpha \x9b31m beta \u202e gamma \U000e0001 delta\u2028"


def unsafe(text: str) -> list[str]:
    """Characters a terminal could act on (controls, format characters, separators), newlines aside."""
    return [ch for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    docs = [{"text": f"{HOSTILE} document {i}"} for i in range(8)]
    return convert_docs(tmp_path_factory.mktemp("hostile"), docs, clusters=1)


def test_corpus_text_cannot_drive_the_terminal(hostile):
    """An OSC sequence in a document (it sets the terminal title) is shown escaped in the table, never sent raw."""
    example = open_manifest(str(hostile)).clusters[0].example
    assert "\x1b]0;pwned\x07" in example  # the manifest keeps the document's text as it was
    result = subprocess.run([sys.executable, "-m", "streamclip.cli", "inspect", str(hostile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert unsafe(result.stdout) == []
    assert "“\\u001b]0;pwned\\u0007 alpha \\u009b31m beta" in result.stdout


def test_json_report_escapes_controls_and_decodes_to_the_manifest(hostile):
    result = subprocess.run([sys.executable, "-m", "streamclip.cli", "inspect", str(hostile), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert unsafe(result.stdout) == []
    assert json.loads(result.stdout) == json.loads(json.dumps(describe(open_manifest(str(hostile)))))


def test_printable_escapes_are_json_escapes():
    assert printable("é ok") == "é ok"
    assert json.loads(f'"{printable(HOSTILE)}"') == HOSTILE
