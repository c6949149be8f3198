"""The converter end to end: stock readers read it, one cluster per shard, determinism, atomicity, resume."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import streamclip.writers.conversion as convert_module
from streamclip import InputError, open_manifest
from streamclip.writers import ConvertConfig, FieldRules, HashingEmbedder, convert

FAST = dict(embedder="hashing", progress=False)


def tree_digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def read_all_stock(path: Path) -> list[dict]:
    """Every sample, read by MosaicML Streaming's own StreamingDataset (no streamclip code)."""
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(path), shuffle=False, batch_size=1)
    return [ds[i] for i in range(ds.num_samples)]


def test_round_trip_through_stock_streaming_dataset(tmp_path, sample_jsonl, sample_docs):
    out = tmp_path / "ds"
    report = convert([str(sample_jsonl)], str(out), ConvertConfig(clusters=8, rules=FieldRules(keep=("source", "domain")), **FAST))
    samples = read_all_stock(out)
    assert report.read == report.written == len(sample_docs) == len(samples)
    assert Counter(s["text"] for s in samples) == Counter(d["text"] for d in sample_docs)
    by_text = {d["text"]: d for d in sample_docs}
    assert all(s["source"] == by_text[s["text"]]["source"] and s["domain"] == by_text[s["text"]]["domain"] for s in samples)
    manifest = open_manifest(str(out))
    for cluster in manifest.clusters:
        ids = [samples[i]["cluster"] for i in range(*cluster.samples)]
        assert ids == [cluster.id] * cluster.documents
        assert cluster.bytes == sum(len(samples[i]["text"].encode()) for i in range(*cluster.samples))


def test_every_shard_holds_exactly_one_cluster(tmp_path, sample_jsonl):
    out = tmp_path / "ds"
    convert([str(sample_jsonl)], str(out), ConvertConfig(clusters=6, shard_size=32 << 10, **FAST))
    samples = read_all_stock(out)
    manifest = open_manifest(str(out))
    offsets = np.concatenate([[0], np.cumsum(manifest.samples_per_shard)])
    assert manifest.num_shards > manifest.num_clusters  # the small size limit forced several shards per cluster
    for s in range(manifest.num_shards):
        assert len({samples[i]["cluster"] for i in range(offsets[s], offsets[s + 1])}) == 1
    index = json.loads((out / "index.json").read_text())
    assert all(sh["compression"].startswith("zstd") and sh["hashes"] == ["xxh64"] for sh in index["shards"])


def test_same_inputs_and_seed_give_identical_bytes(tmp_path, sample_jsonl):
    for name in ("a", "b"):
        convert([str(sample_jsonl)], str(tmp_path / name), ConvertConfig(clusters=8, seed=3, **FAST))
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    convert([str(sample_jsonl)], str(tmp_path / "c"), ConvertConfig(clusters=8, seed=4, **FAST))
    assert tree_digest(tmp_path / "c")["centroids.npy"] != tree_digest(tmp_path / "a")["centroids.npy"]


def test_grouping_through_disk_gives_the_same_bytes_as_in_memory(tmp_path, sample_jsonl):
    convert([str(sample_jsonl)], str(tmp_path / "memory"), ConvertConfig(clusters=7, rules=FieldRules(keep=("source",)), **FAST))
    tiny = ConvertConfig(clusters=7, rules=FieldRules(keep=("source",)), memory_budget=16 << 10, keep_work=True, **FAST)
    convert([str(sample_jsonl)], str(tmp_path / "disk"), tiny)
    assert len(list((tmp_path / "disk.streamclip-work" / "spill").iterdir())) == 7  # every cluster went through a file
    assert tree_digest(tmp_path / "disk") == tree_digest(tmp_path / "memory")


def test_all_input_formats_and_globs(tmp_path, sample_docs):
    docs = sample_docs[:120]
    raw = "".join(json.dumps(d) + "\n" for d in docs[:30]).encode()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(raw)
    (tmp_path / "in" / "b.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in docs[30:60]).encode()))
    (tmp_path / "in" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress("".join(json.dumps(d) + "\n" for d in docs[60:90]).encode()))
    pq.write_table(pa.table({"text": [d["text"] for d in docs[90:110]], "source": [d["source"] for d in docs[90:110]]}), tmp_path / "in" / "d.parquet")
    (tmp_path / "txt").mkdir()
    for i, d in enumerate(docs[110:120]):
        (tmp_path / "txt" / f"{i:02d}.{'md' if i % 2 else 'txt'}").write_text(d["text"], encoding="utf-8")
    out = tmp_path / "ds"
    report = convert([str(tmp_path / "in" / "*.jsonl*"), str(tmp_path / "in" / "d.parquet"), str(tmp_path / "txt")], str(out), ConvertConfig(clusters=4, **FAST))
    assert report.written == 120 and report.rejected == 0
    manifest = open_manifest(str(out))
    assert [i.documents for i in manifest.inputs] == [30, 30, 30, 20] + [1] * 10
    assert Counter(s["text"] for s in read_all_stock(out)) == Counter(d["text"] for d in docs)


def test_refuses_to_overwrite_without_flag_and_replaces_with_it(tmp_path, sample_jsonl):
    out = tmp_path / "ds"
    convert([str(sample_jsonl)], str(out), ConvertConfig(clusters=4, **FAST))
    before = tree_digest(out)
    with pytest.raises(InputError, match="exists and is not empty; pass --overwrite"):
        convert([str(sample_jsonl)], str(out), ConvertConfig(clusters=5, **FAST))
    assert tree_digest(out) == before
    convert([str(sample_jsonl)], str(out), ConvertConfig(clusters=5, overwrite=True, **FAST))
    assert open_manifest(str(out)).num_clusters == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "ds"]  # no temp or work directories left


class _FailAfter(HashingEmbedder):
    """The real hashing embedder, made to crash on its n-th call (a power cut during embedding)."""

    def __init__(self, calls: int) -> None:
        super().__init__(max_tokens=256)  # as ConvertConfig's default builds it
        self.calls = calls

    def encode(self, texts):
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt("simulated interruption")
        return super().encode(texts)


def test_interrupted_run_resumes_without_re_embedding(tmp_path, sample_jsonl, monkeypatch):
    monkeypatch.setattr(convert_module, "EMBED_CHUNK", 100)
    config = ConvertConfig(clusters=6, **FAST)
    convert([str(sample_jsonl)], str(tmp_path / "whole"), config)
    with pytest.raises(KeyboardInterrupt):
        convert([str(sample_jsonl)], str(tmp_path / "ds"), config, embedder=_FailAfter(3))
    assert not (tmp_path / "ds").exists()  # nothing that looks like a dataset
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    resumed = ConvertConfig(clusters=6, resume=True, **FAST)
    report = convert([str(sample_jsonl)], str(tmp_path / "ds"), resumed, embedder=_FailAfter(10**6))
    assert report.resumed_embeddings == 300
    assert tree_digest(tmp_path / "ds") == tree_digest(tmp_path / "whole")


def test_resume_refuses_work_from_other_inputs(tmp_path, sample_jsonl, sample_docs, monkeypatch):
    monkeypatch.setattr(convert_module, "EMBED_CHUNK", 100)
    with pytest.raises(KeyboardInterrupt):
        convert([str(sample_jsonl)], str(tmp_path / "ds"), ConvertConfig(clusters=4, **FAST), embedder=_FailAfter(1))
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:50]))
    with pytest.raises(InputError, match="staged from other inputs or settings"):
        convert([str(other)], str(tmp_path / "ds"), ConvertConfig(clusters=4, resume=True, **FAST))


def test_bring_your_own_cluster_field(tmp_path, sample_docs):
    ids = {"jargon": 7, "devil": 3, "kjv": 11, "sonnets": 2, "elements": 5}
    rows = [{**d, "group": ids[d["source"]]} for d in sample_docs]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ds"
    report = convert([str(path)], str(out), ConvertConfig(rules=FieldRules(cluster_field="group"), progress=False))
    manifest = open_manifest(str(out))
    assert report.clusters == len(set(ids.values())) and not manifest.has_centroids and manifest.embedding is None
    assert manifest.clustering["source_ids"] == sorted(ids.values())
    counts = Counter(r["group"] for r in rows)
    assert [c.documents for c in manifest.clusters] == [counts[g] for g in sorted(ids.values())]
    assert not (out / "centroids.npy").exists()


@pytest.mark.parametrize("keep", [(), ("source", "domain")])
def test_shards_are_byte_identical_to_stock_mdswriter(tmp_path, sample_docs, keep, monkeypatch):
    """The packer hands MDSWriter pre-encoded samples; the files must be exactly what ``MDSWriter.write``
    makes of the same documents: each cluster's documents in input order, a shard closed at every cluster.
    Batches of 7 documents make every cluster span many packing batches."""
    from streaming import MDSWriter

    from streamclip.writers import packing

    monkeypatch.setattr(packing, "PACK_BATCH", 7)

    ids = {"jargon": 7, "devil": 3, "kjv": 11, "sonnets": 2, "elements": 5}
    rows = [{**d, "group": ids[d["source"]]} for d in sample_docs]
    rows[5] = {k: v for k, v in rows[5].items() if k != "domain"}  # a kept field missing from one document
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ours = tmp_path / "ds"
    convert([str(path)], str(ours), ConvertConfig(rules=FieldRules(cluster_field="group", keep=keep), shard_size=20 << 10, progress=False))
    stock = tmp_path / "stock"
    columns = {"text": "str", "cluster": "int32", **{name: "json" for name in keep}}
    with MDSWriter(out=str(stock), columns=columns, compression="zstd:3", hashes=["xxh64"], size_limit=20 << 10) as writer:
        for k, group in enumerate(sorted(ids.values())):
            for row in (r for r in rows if r["group"] == group):
                writer.write({"text": row["text"], "cluster": k, **{name: row.get(name) for name in keep}})
            writer.flush_shard()
            writer._reset_cache()
    stock_files = tree_digest(stock)
    assert len(stock_files) > 10
    assert {name: digest for name, digest in tree_digest(ours).items() if name in stock_files} == stock_files


def test_more_clusters_than_documents_is_a_clear_error(tmp_path, sample_docs):
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:5]))
    with pytest.raises(InputError, match="--clusters 8 is more than the 5 documents written; use at most 5"):
        convert([str(path)], str(tmp_path / "ds"), ConvertConfig(clusters=8, **FAST))


def test_missing_and_unsupported_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl: no such file or folder"):
        convert([str(tmp_path / "nope.jsonl")], str(tmp_path / "ds"), ConvertConfig(**FAST))
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="data.csv: unsupported input type"):
        convert([str(tmp_path / "data.csv")], str(tmp_path / "ds"), ConvertConfig(**FAST))


@pytest.mark.slow
def test_minilm_embedder_is_offline_normalised_and_semantic():
    from streamclip.writers import MiniLMEmbedder

    embedder = MiniLMEmbedder(max_tokens=64)
    vectors = embedder.encode(["A cat sat on the mat.", "A kitten was sitting on the rug.", "Quarterly tax filings are due in April."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embedder.describe()["model"].endswith("all-MiniLM-L6-v2")


@pytest.mark.slow
def test_minilm_conversion_is_deterministic(tmp_path, sample_docs):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:150]))
    for name in ("a", "b"):
        convert([str(path)], str(tmp_path / name), ConvertConfig(clusters=5, max_tokens=64, progress=False))
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    manifest = open_manifest(str(tmp_path / "a"))
    assert manifest.embedding["dim"] == 384 and manifest.embedding["max_tokens"] == 64
    assert os.path.getsize(tmp_path / "a" / "centroids.npy") > 5 * 384 * 4
