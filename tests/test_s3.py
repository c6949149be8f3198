"""Object storage end to end, on a real S3 server (SeaweedFS on loopback, ``tests/s3server.py``).

Convert straight to ``s3://``, read back through stock ``StreamingDataset`` and ``ClusterClipDataset``,
``inspect``/``plan`` on ``s3://``, wrong credentials, an interrupted upload, a corrupted object, the
store stopped mid-epoch, and ``cache_limit`` over a whole epoch with many clusters.

What happens when the store goes away mid-epoch (``test_store_stopped_mid_epoch...``): shard downloads
are retried (``download_retry`` attempts with 1, 2, 4 ... s backoff, each a few botocore attempts). An
outage shorter than that window is absorbed and the epoch completes exactly as planned; a longer one
raises ``ShardError`` naming the shard (stock streaming would log it and end the epoch early), and
resuming from the last ``StreamingDataLoader`` checkpoint on a fresh dataset yields exactly the rest.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import zstandard
from streaming import StreamingDataLoader, StreamingDataset
from torch.utils.data import DataLoader

from streamclip import ManifestError, open_manifest
from streamclip.errors import InputError
from streamclip.plan import ClusterLayout, RunSchedule, counts_at, plan_segment
from streamclip.readers import ClusterClipDataset
from streamclip import ShardError
from streamclip.writers import ConvertConfig, FieldRules, convert
from streamclip.writers import upload as upload_module
from streamclip.writers.sources import expand_inputs, read_source
from streamclip.writers.upload import S3Uploader, UploadError, upload_dataset

from conftest import convert_docs, write_jsonl
from reader_helpers import as_sets, columns, identity

pytestmark = pytest.mark.s3

CONFIG = dict(clusters=12, embedder="hashing", shard_size=16 << 10, progress=False)
READ = dict(strategy="clusterclip", strategy_params={"clip": 2}, epochs=1, epoch_size=640, batch_size=16, num_canonical_nodes=2)


@pytest.fixture(scope="module")
def published(s3_server, tmp_path_factory, sample_docs) -> SimpleNamespace:
    """The sample subset converted straight to S3 (12 clusters, 16 KiB shards), with its local copy."""
    root = tmp_path_factory.mktemp("s3")
    src = write_jsonl(root / "corpus.jsonl", sample_docs)
    url = f"s3://{s3_server.bucket}/datasets/sample"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3_server.env().items():
            mp.setenv(name, value)
        report = convert([str(src)], url, ConvertConfig(out_local=str(root / "local"), **CONFIG))
    return SimpleNamespace(url=url, local=root / "local", src=src, report=report, prefix="datasets/sample")


def objects(server, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix/``, by name relative to it."""
    client = server.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix.rstrip("/") + "/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {k[len(prefix) + 1 :]: client.get_object(Bucket=server.bucket, Key=k)["Body"].read() for k in keys}


def names(server, prefix: str) -> set[str]:
    client = server.client()
    found = client.list_objects_v2(Bucket=server.bucket, Prefix=prefix.rstrip("/") + "/").get("Contents", [])
    return {item["Key"][len(prefix) + 1 :] for item in found}


def local_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir()}


def largest_shard(local: Path) -> int:
    """Streaming's ``get_max_size``: raw + compressed bytes of the largest shard."""
    index = json.loads((local / "index.json").read_text())
    return max(s["raw_data"]["bytes"] + s["zip_data"]["bytes"] for s in index["shards"])


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamclip.cli", *args], capture_output=True, text=True, env=dict(os.environ), timeout=120)


def test_convert_to_s3_uploads_the_dataset_and_keeps_the_local_copy(s3, published):
    remote = objects(s3, published.prefix)
    assert remote == local_files(published.local)  # same names, same bytes: shards, index, manifest, centroids, rejects
    manifest = open_manifest(published.url)
    assert manifest.num_clusters == 12 and manifest.num_shards == published.report.shards > 24
    assert manifest.fingerprint() == open_manifest(str(published.local)).fingerprint()
    assert published.report.out == published.url


def test_stock_streaming_dataset_reads_back_every_document(s3, published, sample_docs, tmp_path):
    ds = StreamingDataset(remote=published.url, local=str(tmp_path / "cache"), shuffle=False, batch_size=1)
    rows = list(ds)
    assert Counter(r["text"] for r in rows) == Counter(d["text"] for d in sample_docs)
    manifest = open_manifest(published.url)
    for c in manifest.clusters:
        assert {int(r["cluster"]) for r in rows[c.samples[0] : c.samples[1]]} == {c.id}


def test_clusterclip_dataset_over_s3_draws_exactly_the_plan(s3, published, tmp_path, monkeypatch):
    """Two epochs through forked DataLoader workers; the endpoint comes from the explicit argument only."""
    monkeypatch.delenv("S3_ENDPOINT_URL")
    ds = ClusterClipDataset(remote=published.url, local=str(tmp_path / "cache"), **{**READ, "epochs": 2}, seed=5, s3_endpoint_url=s3.endpoint)
    loader = DataLoader(ds, batch_size=16, num_workers=2, collate_fn=identity)
    seen = [s["text"] for _ in range(2) for batch in loader for s in batch]
    assert len(seen) == 2 * 640
    reference = StreamingDataset(local=str(published.local), batch_size=1)
    texts_by_id = [reference[i]["text"] for i in range(reference.num_samples)]
    layout = ClusterLayout.from_shards(ds.manifest.samples_per_shard, ds.manifest.shard_ranges)
    schedule = RunSchedule(layout.cluster_sizes, ds.strategy, ds.total_samples)
    for epoch in range(2):
        _, ids = plan_segment(layout, schedule, seed=5, epoch_size=640, epoch=epoch)
        got = seen[epoch * 640 : (epoch + 1) * 640]
        assert Counter(got) == Counter(texts_by_id[i] for i in ids)
        planned = counts_at(schedule, (epoch + 1) * 640) - counts_at(schedule, epoch * 640)
        clusters = np.searchsorted(layout.shard_offsets[layout.shard_cluster_ranges[:, 0]], ids, side="right") - 1
        assert np.bincount(clusters, minlength=layout.num_clusters).tolist() == planned.tolist()


def test_cli_convert_to_s3_then_inspect_and_plan_the_remote_manifest(s3, published, tmp_path):
    url = f"s3://{s3.bucket}/datasets/cli"
    made = cli("convert", str(published.src), url, "--clusters", "4", "--embedder", "hashing", "--no-progress",
               "--out-local", str(tmp_path / "copy"), "--work-dir", str(tmp_path / "work"))
    assert made.returncode == 0, made.stderr
    assert f"wrote {url}: {published.report.written} documents in 4 clusters" in made.stdout
    assert objects(s3, "datasets/cli") == local_files(tmp_path / "copy")
    again = cli("convert", str(published.src), url, "--clusters", "4", "--embedder", "hashing", "--no-progress")
    assert again.returncode == 2 and "a streamclip dataset exists there; pass --overwrite" in again.stderr

    shown = cli("inspect", published.url, "--limit", "0")
    assert shown.returncode == 0, shown.stderr
    assert "clusters 12" in shown.stdout and f"shards {published.report.shards}" in shown.stdout
    planned = cli("plan", published.url, "--compare", "random,clusterclip", "--epochs", "2")
    assert planned.returncode == 0, planned.stderr
    assert "budget 1282 samples = 2 epoch(s) of 641" in planned.stdout


def test_wrong_credentials_or_bucket_give_a_clear_error(s3, published, tmp_path, monkeypatch):
    where = re.escape(f"{published.url}/streamclip.json")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(ManifestError, match=f"{where}: S3 error SignatureDoesNotMatch .*AWS_SECRET_ACCESS_KEY"):
        open_manifest(published.url)
    with pytest.raises(ManifestError, match="SignatureDoesNotMatch"):
        ClusterClipDataset(remote=published.url, local=str(tmp_path / "cache"), **READ)
    shown = cli("inspect", published.url)
    assert shown.returncode == 2
    assert shown.stderr.startswith("error: ") and shown.stderr.count("\n") == 1 and "SignatureDoesNotMatch" in shown.stderr
    started = time.perf_counter()
    with pytest.raises(InputError, match="SignatureDoesNotMatch"):  # refused before reading or embedding anything
        convert([str(published.src)], f"s3://{s3.bucket}/datasets/never", ConvertConfig(work_dir=str(tmp_path / "w"), **CONFIG))
    assert time.perf_counter() - started < 10 and not (tmp_path / "w").exists()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(ManifestError, match=f"{where}: S3 error InvalidAccessKeyId"):
        open_manifest(published.url)
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ManifestError, match=r"s3://no-such-bucket-here/ds/streamclip.json: S3 error NoSuchBucket"):
        open_manifest("s3://no-such-bucket-here/ds")


class FaultyClient:
    """A real boto3 client whose ``fail_on``-th ``put_object`` raises, as a dropped connection would."""

    def __init__(self, real, fail_on: int) -> None:
        self.real, self.fail_on, self.puts = real, fail_on, 0
        self.lock = threading.Lock()

    def put_object(self, **kwargs):
        with self.lock:
            self.puts += 1
            n = self.puts
        if n == self.fail_on:
            raise ConnectionError(f"injected fault: connection lost on put #{n}")
        return self.real.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_interrupted_upload_leaves_no_readable_manifest_and_resumes(s3, published, sample_docs, tmp_path, monkeypatch):
    url, prefix = f"s3://{s3.bucket}/datasets/interrupted", "datasets/interrupted"
    real = upload_module.s3_client
    monkeypatch.setattr(upload_module, "s3_client", lambda: FaultyClient(real(), fail_on=5))
    config = ConvertConfig(work_dir=str(tmp_path / "work"), **CONFIG)
    with pytest.raises(UploadError, match=r"injected fault.*--resume"):
        convert([str(published.src)], url, config)
    uploaded = names(s3, prefix)
    assert len([n for n in uploaded if n.startswith("shard.")]) >= 4  # shards went up as they were packed...
    assert not uploaded & {"streamclip.json", "index.json"}  # ... but nothing that makes it a dataset
    with pytest.raises(ManifestError, match="streamclip.json: missing"):
        open_manifest(url)
    assert not [p for p in tmp_path.iterdir() if p.name != "work"]  # the staging copy is gone, the work kept

    monkeypatch.setattr(upload_module, "s3_client", real)
    report = convert([str(published.src)], url, ConvertConfig(work_dir=str(tmp_path / "work"), resume=True, **CONFIG))
    assert report.resumed_embeddings == report.written
    assert open_manifest(url).fingerprint() == open_manifest(published.url).fingerprint()

    with pytest.raises(InputError, match="a streamclip dataset exists there; pass --overwrite"):
        S3Uploader(url)
    small = convert_docs(tmp_path, sample_docs[:150], name="small", clusters=3, shard_size=64 << 10)
    upload_dataset(str(small), url, overwrite=True, progress=False)
    assert objects(s3, prefix) == local_files(small)  # the old dataset's extra shards are gone


@pytest.mark.parametrize("read_path", ["fast", "stock"])
def test_corrupted_shard_object_is_detected_and_named(s3, published, tmp_path, read_path):
    client, prefix = s3.client(), f"datasets/corrupt-{read_path}"
    for name, data in objects(s3, published.prefix).items():
        client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{name}", Body=data)
    index = json.loads((published.local / "index.json").read_text())
    victim = index["shards"][len(index["shards"]) // 2]["zip_data"]["basename"]
    data = bytearray((published.local / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{victim}", Body=bytes(data))
    url = f"s3://{s3.bucket}/{prefix}"

    ds = ClusterClipDataset(remote=url, local=str(tmp_path / "cache"), strategy="random", batch_size=16, num_canonical_nodes=2,
                            validate_hash="xxh64", read_path=read_path)
    with pytest.raises(ShardError, match=rf"Checksum failure: \S*{re.escape(victim)}"):
        for _ in DataLoader(ds, batch_size=16, num_workers=0, collate_fn=identity):
            pass
    # Stock streaming only logs the failure from its download thread and ends the epoch early.
    stock = StreamingDataset(remote=url, local=str(tmp_path / "stock"), shuffle=False, batch_size=1, validate_hash="xxh64")
    assert sum(1 for _ in stock) < stock.num_samples


def test_store_stopped_mid_epoch_fails_clearly_and_resumes_exactly(s3, published, tmp_path):
    kwargs = dict(READ, seed=3, predownload=16)
    full = [b["text"] for b in StreamingDataLoader(ClusterClipDataset(local=str(published.local), **kwargs), batch_size=16, collate_fn=columns)]
    assert len(full) == 40

    # An outage longer than the retry window: a clear error, the last checkpoint is intact.
    ds = ClusterClipDataset(remote=published.url, local=str(tmp_path / "a"), download_retry=1, **kwargs)
    loader = StreamingDataLoader(ds, batch_size=16, num_workers=0, collate_fn=columns)
    head, state = [], None
    try:
        with pytest.raises(ShardError, match=r"Could not connect to the endpoint URL.*shard\.\d+\.mds\.zstd.*resume from the last checkpoint"):
            for i, batch in enumerate(loader):
                head.append(batch["text"])
                state = loader.state_dict()
                if i == 1:
                    s3.stop()
    finally:
        s3.start()
    assert 2 <= len(head) < len(full)
    del loader, ds
    gc.collect()
    resumed = ClusterClipDataset(remote=published.url, local=str(tmp_path / "b"), **kwargs)
    resumed.load_state_dict(state)
    tail = [b["text"] for b in StreamingDataLoader(resumed, batch_size=16, num_workers=0, collate_fn=columns)]
    assert as_sets(head + tail) == as_sets(full)
    del resumed
    gc.collect()

    # An outage shorter than the retry window: downloads are retried and the epoch completes as planned.
    ds = ClusterClipDataset(remote=published.url, local=str(tmp_path / "c"), download_retry=6, **kwargs)
    got = []
    for i, batch in enumerate(StreamingDataLoader(ds, batch_size=16, num_workers=0, collate_fn=columns)):
        got.append(batch["text"])
        if i == 1:
            s3.stop()
            s3.start()
    assert as_sets(got) == as_sets(full)


class CachePeak:
    """Polls the total size of a directory from a thread; ``bytes`` is the largest total seen."""

    def __init__(self, path: Path) -> None:
        self.path, self.bytes = path, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            sizes = {}
            for entry in os.scandir(self.path):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                sizes[st.st_ino] = st.st_size  # by inode: a file renamed during the scan is counted once
            self.bytes = max(self.bytes, sum(sizes.values()))
            time.sleep(0.001)

    def __enter__(self) -> CachePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# Stock streaming admits a download when usage + shard <= limit but counts it only once it has finished,
# so concurrent downloads overshot by up to 2.4 shards with two workers; streamclip reserves a download's
# space before it starts (readers/reserve.py), so the cache directory never exceeds the limit.
@pytest.mark.parametrize("workers", [0, 2])
def test_cache_limit_holds_over_a_whole_epoch_with_many_clusters(s3, published, tmp_path, workers):
    largest = largest_shard(published.local)
    with pytest.raises(ValueError, match=f"the minimum is {4 * largest} bytes"):
        ClusterClipDataset(remote=published.url, local=str(tmp_path / "small"), cache_limit=3 * largest, **READ)
    with pytest.raises(ValueError, match="cannot hold what this plan reads at once") as refused:
        ClusterClipDataset(remote=published.url, local=str(tmp_path / "thrash"), cache_limit=6 * largest, **READ)
    assert re.search(r"the minimum is \d+ bytes", str(refused.value))
    index_bytes = (published.local / "index.json").stat().st_size
    limit = 12 * largest + index_bytes
    cache = tmp_path / "cache"
    ds = ClusterClipDataset(remote=published.url, local=str(cache), cache_limit=limit, predownload=16, **READ)
    assert ds.manifest.num_clusters == 12 and ds.num_shards > 3 * 12
    with CachePeak(cache) as peak:
        drawn = sum(len(b) for b in DataLoader(ds, batch_size=16, num_workers=workers, collate_fn=identity))
    assert drawn == 640
    assert 4 * largest < peak.bytes <= limit
    index = json.loads((published.local / "index.json").read_text())
    assert peak.bytes < 0.7 * sum(s["raw_data"]["bytes"] for s in index["shards"])  # shards were evicted, not all kept


def test_convert_reads_its_inputs_from_s3(s3, published, sample_docs, tmp_path):
    client = s3.client()
    lines = b"".join(json.dumps(d).encode() + b"\n" for d in sample_docs)
    client.put_object(Bucket=s3.bucket, Key="corpus/part-0.jsonl.zst", Body=zstandard.ZstdCompressor().compress(lines))
    client.put_object(Bucket=s3.bucket, Key="corpus/part-0.jsonl.gz", Body=gzip.compress(lines))
    client.put_object(Bucket=s3.bucket, Key="corpus/notes.csv", Body=b"not an input")
    assert expand_inputs([f"s3://{s3.bucket}/corpus/"]) == [f"s3://{s3.bucket}/corpus/part-0.jsonl.gz", f"s3://{s3.bucket}/corpus/part-0.jsonl.zst"]
    with pytest.raises(InputError, match="no such object"):
        expand_inputs([f"s3://{s3.bucket}/corpus/missing.jsonl"])
    assert sum(1 for _ in read_source(f"s3://{s3.bucket}/corpus/part-0.jsonl.gz", 0, FieldRules())) == len(sample_docs)

    url = f"s3://{s3.bucket}/datasets/from-s3"
    report = convert([f"s3://{s3.bucket}/corpus/*.jsonl.zst"], url, ConvertConfig(work_dir=str(tmp_path / "work"), **CONFIG))
    assert report.read == report.written == len(sample_docs)
    # Same documents, same settings: the shards and index are byte-identical to the local-input conversion.
    assert objects(s3, "datasets/from-s3")["index.json"] == (published.local / "index.json").read_bytes()
    assert open_manifest(url).inputs[0].path == f"s3://{s3.bucket}/corpus/part-0.jsonl.zst"
    assert list(tmp_path.iterdir()) == []  # staging and work directories removed
