"""Manifest loading refuses anything inconsistent, corrupt or unsafe, with a message naming the problem."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from streamclip import ManifestError, open_manifest
from streamclip.manifest import dumps_manifest, load_centroids

from conftest import convert_docs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    return convert_docs(tmp_path_factory.mktemp("manifest"), sample_docs, clusters=6, shard_size=64 << 10)


@pytest.fixture
def copy(dataset, tmp_path) -> Path:
    target = tmp_path / "ds"
    shutil.copytree(dataset, target)
    return target


def edit_manifest(path: Path, change) -> None:
    doc = json.loads((path / "streamclip.json").read_text())
    change(doc)
    (path / "streamclip.json").write_text(json.dumps(doc))


def edit_index(path: Path, change) -> None:
    """Change index.json and re-pin its hash in the manifest, to reach the checks behind the hash check."""
    index = json.loads((path / "index.json").read_text())
    change(index)
    raw = json.dumps(index, sort_keys=True).encode()
    (path / "index.json").write_bytes(raw)
    edit_manifest(path, lambda d: d.__setitem__("index_sha256", hashlib.sha256(raw).hexdigest()))


def test_loaded_manifest_matches_the_written_one_byte_for_byte(dataset):
    manifest = open_manifest(str(dataset))
    assert dumps_manifest(manifest) == (dataset / "streamclip.json").read_bytes()
    assert manifest.num_documents == sum(c.documents for c in manifest.clusters)
    assert manifest.shard_ranges[0, 0] == 0 and manifest.shard_ranges[-1, 1] == manifest.num_shards
    centroids = load_centroids(str(dataset), manifest)
    assert centroids.shape == (manifest.num_clusters, manifest.embedding["dim"])
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-4)


def test_a_modified_index_is_detected(copy):
    index = json.loads((copy / "index.json").read_text())
    index["shards"][0]["samples"] += 1
    (copy / "index.json").write_text(json.dumps(index, sort_keys=True))
    with pytest.raises(ManifestError, match="index.json does not belong to this manifest"):
        open_manifest(str(copy))


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/shard.mds", "sub/shard.mds", ".."])
def test_unsafe_shard_names_are_refused(copy, name):
    edit_index(copy, lambda ix: ix["shards"][1]["raw_data"].__setitem__("basename", name))
    with pytest.raises(ManifestError, match="is not a plain file name inside the dataset"):
        open_manifest(str(copy))


def test_missing_manifest_says_what_to_do(tmp_path):
    with pytest.raises(ManifestError, match=r"streamclip.json: missing \(is this a streamclip dataset\?"):
        open_manifest(str(tmp_path))


def test_truncated_manifest(copy):
    raw = (copy / "streamclip.json").read_bytes()
    (copy / "streamclip.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ManifestError, match="not valid JSON"):
        open_manifest(str(copy))


CORRUPTIONS = [
    (lambda d: d["clusters"][1].__setitem__("id", 5), "cluster ids must be 0..K-1 in order"),
    (lambda d: d["clusters"][1].__setitem__("documents", d["clusters"][1]["documents"] + 1), r"documents \d+ != samples in its shards"),
    (lambda d: d["clusters"][0].__setitem__("shards", [0, 10**6]), "outside the"),
    (lambda d: d["clusters"][2].__setitem__("shards", [d["clusters"][2]["shards"][0] + 1, d["clusters"][2]["shards"][1]]), "must follow the previous cluster's"),
    (lambda d: d["clusters"][0].__setitem__("samples", [0, 1]), "does not match its shards"),
    (lambda d: d["clusters"].pop(), "clusters cover"),
    (lambda d: d["totals"].__setitem__("documents", 1), "totals.documents is 1"),
    (lambda d: d["clusters"][0].__setitem__("documents", "many"), "field 'documents' must be int, got str"),
    (lambda d: d["clusters"][0].__setitem__("top_terms", [1, 2]), "top_terms must be strings"),
    (lambda d: d.__setitem__("format_version", 99), "newer than this streamclip reads"),
    (lambda d: d.pop("clustering"), "field 'clustering' is missing"),
    (lambda d: d["inputs"][0].__setitem__("written", 0), r"documents \d+ != written 0 \+ rejected"),
]


@pytest.mark.parametrize("change,message", CORRUPTIONS)
def test_inconsistent_manifests_are_refused(copy, change, message):
    edit_manifest(copy, change)
    with pytest.raises(ManifestError, match=message):
        open_manifest(str(copy))
