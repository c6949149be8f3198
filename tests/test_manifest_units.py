"""Manifest units the converted-dataset tests leave out: write -> read round trips of hand-built datasets,
fingerprints, centroids, index shard sizes and the checks test_manifest.py's CORRUPTIONS do not reach.

``synthetic`` and ``write_dataset`` build a dataset's index.json and streamclip.json directly (no convert,
no shards), so each case takes milliseconds; test_summary, test_planning and test_targets use them too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streamclip.errors import ManifestError, StreamclipError
from streamclip.manifest import (
    MAX_SHARD_BYTES,
    ClusterInfo,
    InputInfo,
    Manifest,
    clustering_fingerprint,
    dumps_manifest,
    load_centroids,
    open_manifest,
)


def synthetic(sizes, *, shards_per_cluster=1, location="", embedding=None, has_centroids=False, extra=None,
              top_terms=None, examples=None, zipped=True, rejected=3) -> tuple[Manifest, bytes]:
    """A consistent manifest for clusters of ``sizes`` and its index.json bytes (``shards_per_cluster`` shards each)."""
    shards, clusters, next_shard, next_sample = [], [], 0, 0
    for k, size in enumerate(sizes):
        parts = [len(p) for p in np.array_split(np.arange(size), min(shards_per_cluster, size))]
        for n in parts:
            i = len(shards)
            shards.append({
                "column_encodings": ["int", "str"], "column_names": ["cluster", "text"], "column_sizes": [4, None],
                "compression": "zstd" if zipped else None, "format": "mds", "hashes": [], "size_limit": 1 << 20,
                "raw_data": {"basename": f"shard.{i:05d}.mds", "bytes": 4 * n + 100 + i, "hashes": {}},
                "samples": n,
                "zip_data": {"basename": f"shard.{i:05d}.mds.zstd", "bytes": 60 + i, "hashes": {}} if zipped else None,
            })
        clusters.append(ClusterInfo(
            id=k, documents=size, bytes=size * 10 + k, shards=(next_shard, next_shard + len(parts)),
            samples=(next_sample, next_sample + size),
            top_terms=tuple(top_terms[k]) if top_terms else ("alpha", f"term{k}"),
            example=examples[k] if examples else f"exämple {k}",
        ))
        next_shard += len(parts)
        next_sample += size
    raw_index = json.dumps({"version": 2, "shards": shards}, sort_keys=True).encode()
    written = int(sum(sizes))
    manifest = Manifest(
        clusters=tuple(clusters), columns={"cluster": "int", "text": "str"}, embedding=embedding,
        clustering={"method": "faiss-kmeans" if has_centroids else "input-field", "seed": 0},
        inputs=(InputInfo(path="in.jsonl", documents=written + rejected, written=written, rejected=rejected, blank_lines=1),),
        rejected=rejected, index_sha256=hashlib.sha256(raw_index).hexdigest(),
        samples_per_shard=np.array([s["samples"] for s in shards], dtype=np.int64),
        shard_basenames=tuple(s["raw_data"]["basename"] for s in shards),
        shard_bytes=np.array([(s["zip_data"] or s["raw_data"])["bytes"] for s in shards], dtype=np.int64),
        has_centroids=has_centroids, location=location, extra=extra or {},
    )
    return manifest, raw_index


def write_dataset(root: Path, sizes, *, centroids: np.ndarray | None = None, **kwargs) -> Manifest:
    """Write index.json, streamclip.json (and centroids.npy when given) under ``root``; returns the manifest written."""
    root.mkdir(parents=True, exist_ok=True)
    manifest, raw_index = synthetic(sizes, location=str(root), has_centroids=centroids is not None, **kwargs)
    (root / "index.json").write_bytes(raw_index)
    (root / "streamclip.json").write_bytes(dumps_manifest(manifest))
    if centroids is not None:
        np.save(root / "centroids.npy", centroids)
    return manifest


def edit(root: Path, name: str, change) -> None:
    """Change a JSON file of the dataset; a changed index.json is re-pinned in the manifest, to reach the checks behind the hash."""
    doc = json.loads((root / name).read_text())
    change(doc)
    raw = json.dumps(doc, sort_keys=True).encode()
    (root / name).write_bytes(raw)
    if name == "index.json":
        edit(root, "streamclip.json", lambda m: m.__setitem__("index_sha256", hashlib.sha256(raw).hexdigest()))


def unit_centroids(k: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((k, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- write -> read -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes, per_cluster", [([7], 1), ([5, 1, 9], 2), ([3, 4, 2, 6], 3)])
def test_a_written_manifest_reads_back_unchanged(tmp_path, sizes, per_cluster):
    written = write_dataset(tmp_path, sizes, shards_per_cluster=per_cluster, extra={"split": {"eval_per_cluster": 2}})
    loaded = open_manifest(str(tmp_path))
    assert dumps_manifest(loaded) == (tmp_path / "streamclip.json").read_bytes()
    assert loaded.clusters == written.clusters and loaded.inputs == written.inputs
    assert loaded.extra == written.extra and loaded.columns == written.columns and loaded.location == str(tmp_path)
    assert loaded.shard_basenames == written.shard_basenames and loaded.has_centroids is False
    np.testing.assert_array_equal(loaded.samples_per_shard, written.samples_per_shard)
    np.testing.assert_array_equal(loaded.shard_bytes, written.shard_bytes)
    assert loaded.fingerprint() == written.fingerprint()
    assert loaded == written


def test_manifests_compare_field_by_field_arrays_included(tmp_path):
    import dataclasses

    written = write_dataset(tmp_path, [5, 1, 9], shards_per_cluster=2)
    loaded = open_manifest(str(tmp_path))
    assert loaded == written and not (loaded != written)
    sizes = loaded.samples_per_shard.copy()
    sizes[-1] += 1
    assert loaded != dataclasses.replace(loaded, samples_per_shard=sizes)
    assert loaded != dataclasses.replace(loaded, samples_per_shard=sizes[:-1])
    assert loaded != dataclasses.replace(loaded, location="elsewhere")
    assert loaded != "a manifest"


def test_properties_follow_the_clusters():
    manifest, _ = synthetic([5, 1, 9], shards_per_cluster=2)
    assert (manifest.num_clusters, manifest.num_documents, manifest.num_shards) == (3, 15, 5)
    assert manifest.cluster_sizes.tolist() == [5, 1, 9] and manifest.cluster_sizes.dtype == np.int64
    assert manifest.cluster_bytes.tolist() == [50, 11, 92]
    assert manifest.shard_ranges.tolist() == [[0, 2], [2, 3], [3, 5]] and manifest.shard_ranges.dtype == np.int64


def test_dumps_is_canonical_json_that_keeps_unicode_raw():
    manifest, _ = synthetic([2, 3], examples=["naïve “quote”", "plain"])
    raw = dumps_manifest(manifest)
    assert raw.endswith(b"}\n") and "naïve “quote”".encode() in raw
    doc = json.loads(raw)
    assert raw == (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    assert doc["totals"] == {"documents": 5, "bytes": 20 + 31, "shards": 2, "clusters": 2}
    assert doc["centroids"] is None and "extra" not in doc  # an empty extra is left out, not written as {}


def test_an_older_manifest_without_blank_lines_reads_as_zero(tmp_path):
    write_dataset(tmp_path, [4, 4])
    edit(tmp_path, "streamclip.json", lambda d: d["inputs"][0].pop("blank_lines"))
    assert open_manifest(str(tmp_path)).inputs[0].blank_lines == 0


def test_a_manifest_without_inputs_is_accepted(tmp_path):
    """Nothing to cross-check written counts against: the shards alone define the documents."""
    write_dataset(tmp_path, [4, 4])
    edit(tmp_path, "streamclip.json", lambda d: d.__setitem__("inputs", []))
    assert open_manifest(str(tmp_path)).inputs == ()


# --- index.json shard sizes ----------------------------------------------------------------------------


def test_shard_bytes_are_the_zipped_size_or_the_raw_size_without_zip(tmp_path):
    write_dataset(tmp_path / "zipped", [3, 2])
    write_dataset(tmp_path / "raw", [3, 2], zipped=False)
    index = json.loads((tmp_path / "raw" / "index.json").read_text())
    assert open_manifest(str(tmp_path / "zipped")).shard_bytes.tolist() == [60, 61]
    assert open_manifest(str(tmp_path / "raw")).shard_bytes.tolist() == [s["raw_data"]["bytes"] for s in index["shards"]]


@pytest.mark.parametrize("change, message", [
    (lambda ix: ix.__setitem__("version", 1), "index.json: index.json must be an MDS index of version 2"),
    (lambda ix: ix["shards"][0]["raw_data"].__setitem__("bytes", MAX_SHARD_BYTES + 1), rf"shard 0: field 'bytes' must be in \[0, {MAX_SHARD_BYTES}\]"),
    (lambda ix: ix["shards"][1].__setitem__("samples", 0), r"shard 1: field 'samples' must be in \[1,"),
    (lambda ix: ix["shards"][1]["zip_data"].__setitem__("basename", "../x.zstd"), "shard 1: shard file name '../x.zstd' is not a plain file name"),
    (lambda ix: ix["shards"][0].__setitem__("zip_data", "shard.zstd"), "shard 0: zip_data must be an object or null"),
    (lambda ix: ix["shards"][0]["raw_data"].__setitem__("basename", "a\\b.mds"), "is not a plain file name"),
])
def test_bad_index_shards_are_refused_naming_the_shard(tmp_path, change, message):
    write_dataset(tmp_path, [3, 2])
    edit(tmp_path, "index.json", change)
    with pytest.raises(ManifestError, match=message):
        open_manifest(str(tmp_path))


# --- manifest fields CORRUPTIONS in test_manifest.py does not reach -----------------------------------


@pytest.mark.parametrize("change, message", [
    (lambda d: d.__setitem__("format", "mds"), "field 'format' must be 'streamclip', got 'mds'"),
    (lambda d: d.__setitem__("clusters", []), "streamclip.json: has no clusters"),
    (lambda d: d["clusters"][0].__setitem__("shards", [0, 0]), r"cluster 0: shard range \[0, 0\] is empty"),
    (lambda d: d["clusters"][0].__setitem__("samples", [2, 1]), r"field 'samples' must be \[start, end\) with 0 <= start <= end"),
    (lambda d: d["clusters"][1].__setitem__("example", None), "cluster 1: field 'example' must be str"),
    (lambda d: d["totals"].__setitem__("bytes", 0), r"totals.bytes is 0, but the clusters add up to \d+"),
    (lambda d: d["totals"].__setitem__("shards", 9), "totals.shards is 9"),
    (lambda d: d["inputs"][0].update(written=1, documents=4), "inputs' written counts do not add up to the documents in the shards"),
    (lambda d: d.__setitem__("rejected", 2), "inputs' rejected counts exceed the total rejected"),
    (lambda d: d.__setitem__("columns", {"text": "str"}), "columns must include 'text' and 'cluster'"),
    (lambda d: d.__setitem__("centroids", "other.npy"), "centroids must be null or 'centroids.npy'"),
    (lambda d: d.__setitem__("embedding", ["model"]), "embedding must be an object or null"),
    (lambda d: d.__setitem__("extra", [1]), "extra must be an object"),
    (lambda d: d.__setitem__("format_version", -1), r"field 'format_version' must be in \[0,"),
    (lambda d: d["clusters"][0].__setitem__("id", True), "field 'id' must be int, got bool"),
])
def test_inconsistent_fields_are_refused_naming_the_field(tmp_path, change, message):
    write_dataset(tmp_path, [3, 2])
    edit(tmp_path, "streamclip.json", change)
    with pytest.raises(ManifestError, match=message) as info:
        open_manifest(str(tmp_path))
    assert str(info.value).startswith(str(tmp_path / "streamclip.json"))


def test_a_symlink_loop_is_a_manifest_error_not_an_oserror(tmp_path):
    write_dataset(tmp_path, [2])
    (tmp_path / "streamclip.json").unlink()
    os.symlink(tmp_path / "streamclip.json", tmp_path / "streamclip.json")
    with pytest.raises(ManifestError, match=r"streamclip.json: cannot read it \(.+\); check the dataset's files"):
        open_manifest(str(tmp_path))


def test_a_missing_index_is_named(tmp_path):
    write_dataset(tmp_path, [2])
    (tmp_path / "index.json").unlink()
    with pytest.raises(ManifestError, match=r"index.json: missing$"):
        open_manifest(str(tmp_path))


# --- fingerprints --------------------------------------------------------------------------------------


def test_fingerprint_changes_with_the_index_or_the_cluster_layout():
    base, _ = synthetic([4, 4, 4])
    assert base.fingerprint() == synthetic([4, 4, 4])[0].fingerprint()
    other_index, _ = synthetic([4, 4, 4], zipped=False)
    assert other_index.fingerprint() != base.fingerprint()
    # The same index, cut into clusters differently (the shard ranges alone differ).
    merged = replace(base, clusters=(
        ClusterInfo(0, 8, 1, (0, 2), (0, 8)), ClusterInfo(1, 4, 1, (2, 3), (8, 12)),
    ))
    assert merged.index_sha256 == base.index_sha256 and merged.fingerprint() != base.fingerprint()


def test_clustering_fingerprint_follows_the_centroids_not_the_dataset(tmp_path):
    centroids = unit_centroids(3)
    a = write_dataset(tmp_path / "a", [3, 2, 4], centroids=centroids)
    b = write_dataset(tmp_path / "b", [5, 5, 1], centroids=centroids)
    assert a.fingerprint() != b.fingerprint()
    assert clustering_fingerprint(str(tmp_path / "a"), a) == clustering_fingerprint(str(tmp_path / "b"), b)
    changed = centroids.copy()
    changed[2, 7] = np.nextafter(changed[2, 7], np.float32(2))  # one float, one ulp
    np.save(tmp_path / "b" / "centroids.npy", changed)
    assert clustering_fingerprint(str(tmp_path / "a"), a) != clustering_fingerprint(str(tmp_path / "b"), b)


def test_clustering_fingerprint_depends_on_the_shape_not_only_the_bytes(tmp_path):
    """Memory order does not matter (Fortran-ordered centroids are the same clustering); the same floats in another shape do."""
    flat = unit_centroids(3, dim=4)
    a = write_dataset(tmp_path / "a", [1, 1, 1], centroids=flat)
    b = write_dataset(tmp_path / "b", [1, 1, 1], centroids=np.asfortranarray(flat))
    assert clustering_fingerprint(str(tmp_path / "a"), a) == clustering_fingerprint(str(tmp_path / "b"), b)
    wide = write_dataset(tmp_path / "c", [1, 1, 1, 1], centroids=flat.reshape(4, 3))  # same 12 floats, other shape
    assert clustering_fingerprint(str(tmp_path / "c"), wide) != clustering_fingerprint(str(tmp_path / "a"), a)


def test_without_centroids_no_file_is_read(tmp_path):
    manifest, _ = synthetic([2, 2])
    missing = str(tmp_path / "nowhere")
    assert clustering_fingerprint(missing, manifest) is None
    with pytest.raises(ManifestError, match="nowhere: this dataset was clustered from an input field and has no centroids"):
        load_centroids(missing, manifest)


# --- centroids.npy -------------------------------------------------------------------------------------


def test_centroids_read_back_exactly(tmp_path):
    centroids = unit_centroids(3)
    manifest = write_dataset(tmp_path, [2, 2, 2], centroids=centroids)
    loaded = load_centroids(str(tmp_path), open_manifest(str(tmp_path)))
    assert loaded.dtype == np.float32 and open_manifest(str(tmp_path)).has_centroids and manifest.has_centroids
    np.testing.assert_array_equal(loaded, centroids)


@pytest.mark.parametrize("array, got", [
    (unit_centroids(3).astype(np.float64), r"got float64 \(3, 8\)"),
    (unit_centroids(2), r"got float32 \(2, 8\)"),
    (unit_centroids(3)[:, 0].copy(), r"got float32 \(3,\)"),
    (unit_centroids(3)[None], r"got float32 \(1, 3, 8\)"),
])
def test_centroids_of_the_wrong_dtype_or_shape_are_refused(tmp_path, array, got):
    write_dataset(tmp_path, [2, 2, 2], centroids=unit_centroids(3))
    np.save(tmp_path / "centroids.npy", array)
    with pytest.raises(ManifestError, match=rf"centroids.npy: expected float32 \(3, dim\), {got}"):
        load_centroids(str(tmp_path), open_manifest(str(tmp_path)))


def test_pickled_centroids_are_never_unpickled(tmp_path):
    write_dataset(tmp_path, [2, 2], centroids=unit_centroids(2))
    np.save(tmp_path / "centroids.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ManifestError, match=r"centroids.npy: expected float32 \(2, dim\), got object"):
        load_centroids(str(tmp_path), open_manifest(str(tmp_path)))


def test_missing_centroids_are_named(tmp_path):
    write_dataset(tmp_path, [2, 2], centroids=unit_centroids(2))
    manifest = open_manifest(str(tmp_path))
    (tmp_path / "centroids.npy").unlink()
    with pytest.raises(ManifestError, match=r"centroids.npy: missing$") as info:
        clustering_fingerprint(str(tmp_path), manifest)
    assert isinstance(info.value, StreamclipError)


@pytest.mark.parametrize("shape", [(3, 10**12), (3, 9)])
def test_a_header_that_does_not_fit_the_file_is_refused_before_reading(tmp_path, shape):
    """A forged shape used to size read_array's buffer: a MemoryError (TiB) instead of a damaged-file error."""
    write_dataset(tmp_path, [2, 2, 2], centroids=unit_centroids(3))
    body = (tmp_path / "centroids.npy").read_bytes()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    (tmp_path / "centroids.npy").write_bytes(header.getvalue() + body[len(header.getvalue()):])
    with pytest.raises(ManifestError, match=rf"centroids.npy: its header says float32 \({shape[0]}, {shape[1]}\), but the file is"):
        load_centroids(str(tmp_path), open_manifest(str(tmp_path)))
