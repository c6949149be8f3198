"""Hostile or broken dataset files: whatever is in streamclip.json, index.json or the folder, loading fails only with ManifestError."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from streamclip import ManifestError, open_manifest
from streamclip.errors import ConfigError
from streamclip.manifest import load_centroids

from conftest import convert_docs

WRONG_VALUES = [None, True, -1, 1.5, "x", [], {}, [1, "x"], 10**30]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    return convert_docs(tmp_path_factory.mktemp("hostile"), sample_docs[:90], clusters=3, shard_size=4 << 10)


def paths(node, prefix=()):
    """Every key or item path in a JSON document (the first two items of each list stand for the rest)."""
    children = node.items() if isinstance(node, dict) else enumerate(node[:2]) if isinstance(node, list) else ()
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def mutations(doc):
    """``doc`` with one field deleted or replaced by a value of another type, for every field."""
    for path in paths(doc):
        for value in [KeyError, *WRONG_VALUES]:
            changed = copy.deepcopy(doc)
            parent = changed
            for key in path[:-1]:
                parent = parent[key]
            if value is KeyError:
                parent.pop(path[-1])
            else:
                parent[path[-1]] = value
            yield path, value, changed


def write_pair(root: Path, manifest: dict, index: object) -> None:
    raw_index = json.dumps(index).encode()
    manifest = {**manifest, "index_sha256": hashlib.sha256(raw_index).hexdigest()}  # reach the checks behind the hash
    (root / "index.json").write_bytes(raw_index)
    (root / "streamclip.json").write_text(json.dumps(manifest))


def escapes(root: Path) -> str | None:
    """None if open_manifest succeeds or raises ManifestError; else the escaping exception, described."""
    try:
        open_manifest(str(root))
    except ManifestError:
        return None
    except Exception as e:  # noqa: BLE001 - the test collects whatever escapes
        return f"{type(e).__name__}: {e}"[:200]
    return None


def test_every_field_of_a_wrong_type_or_missing_is_a_manifest_error(dataset, tmp_path):
    manifest = json.loads((dataset / "streamclip.json").read_text())
    index = json.loads((dataset / "index.json").read_text())
    escaped = []
    for path, value, changed in mutations(manifest):
        write_pair(tmp_path, changed, index)
        if (what := escapes(tmp_path)) is not None:
            escaped.append(f"streamclip.json {path} = {value!r:.20}: {what}")
    for path, value, changed in mutations(index):
        write_pair(tmp_path, manifest, changed)
        if (what := escapes(tmp_path)) is not None:
            escaped.append(f"index.json {path} = {value!r:.20}: {what}")
    assert not escaped, "\n".join(escaped)


@pytest.mark.parametrize("name", ["streamclip.json", "index.json"])
@pytest.mark.parametrize("document", [[], "text", 3, None])
def test_a_file_that_is_not_an_object(dataset, tmp_path, name, document):
    manifest = json.loads((dataset / "streamclip.json").read_text())
    index = json.loads((dataset / "index.json").read_text())
    if name == "index.json":
        write_pair(tmp_path, manifest, document)
    else:
        (tmp_path / "index.json").write_bytes((dataset / "index.json").read_bytes())
        (tmp_path / "streamclip.json").write_text(json.dumps(document))
    with pytest.raises(ManifestError, match="must be a JSON object" if name == "streamclip.json" else "must be an MDS index"):
        open_manifest(str(tmp_path))
    assert index  # the valid index was read from the dataset, not invented


@pytest.mark.parametrize("name", ["streamclip.json", "index.json"])
@pytest.mark.parametrize("body,reason", [(b"[" * 100_000 + b"]" * 100_000, "nested too deeply"), (b'{"n": 1' + b"0" * 5000 + b"}", "not valid JSON")])
def test_deep_nesting_and_giant_integers(dataset, tmp_path, name, body, reason):
    shutil.copytree(dataset, tmp_path / "ds")
    (tmp_path / "ds" / name).write_bytes(body)
    with pytest.raises(ManifestError, match=rf"{name}: not valid JSON.*{reason}|{name}: {reason}"):
        open_manifest(str(tmp_path / "ds"))


def test_a_forged_sample_count_is_refused_before_any_reader_sizes_arrays_by_it(dataset, tmp_path):
    manifest = json.loads((dataset / "streamclip.json").read_text())
    index = json.loads((dataset / "index.json").read_text())
    claimed = 10**12
    grown = claimed - index["shards"][1]["samples"]
    index["shards"][1]["samples"] = claimed
    # Keep the manifest consistent with the forged index (sample ranges after shard 1 move), so only the size check can object.
    manifest["totals"]["documents"] += grown
    manifest["inputs"][0]["written"] += grown
    manifest["inputs"][0]["documents"] += grown
    for c in manifest["clusters"]:
        start, end = c["shards"]
        c["samples"] = [c["samples"][0] + grown * (start >= 2), c["samples"][1] + grown * (end >= 2)]
        c["documents"] += grown * (start <= 1 < end)
    write_pair(tmp_path, manifest, index)
    raw = index["shards"][1]["raw_data"]["bytes"]
    with pytest.raises(ManifestError, match=rf"index.json shard 1: claims {claimed} samples but its raw_data is {raw} bytes"):
        open_manifest(str(tmp_path))


def test_a_file_given_as_the_dataset(dataset):
    with pytest.raises(ManifestError, match=r"streamclip.json: is a file, not a dataset directory"):
        open_manifest(str(dataset / "streamclip.json"))


def test_a_directory_where_the_manifest_should_be(dataset, tmp_path):
    shutil.copytree(dataset, tmp_path / "ds")
    (tmp_path / "ds" / "streamclip.json").unlink()
    (tmp_path / "ds" / "streamclip.json").mkdir()
    with pytest.raises(ManifestError, match=r"ds/streamclip.json: is a directory, not a file"):
        open_manifest(str(tmp_path / "ds"))


def test_a_dataset_that_does_not_exist(tmp_path):
    with pytest.raises(ManifestError, match=r"nope: no such dataset directory"):
        open_manifest(str(tmp_path / "nope"))


@pytest.mark.parametrize("location", ["gs://bucket/ds", "hdfs://host/ds"])
def test_an_unsupported_scheme_names_what_is_supported(location):
    with pytest.raises(ConfigError, match="only local directories and s3://bucket/prefix are supported"):
        open_manifest(location)


@pytest.mark.parametrize("body", [b"not an array", b"PK\x03\x04" + b"\0" * 30, b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"])
def test_damaged_centroids(dataset, tmp_path, body):
    shutil.copytree(dataset, tmp_path / "ds")
    manifest = open_manifest(str(tmp_path / "ds"))
    (tmp_path / "ds" / "centroids.npy").write_bytes(body)
    with pytest.raises(ManifestError, match="centroids.npy"):
        load_centroids(str(tmp_path / "ds"), manifest)
