"""``convert --engine ray`` on a real local Ray (2 CPUs, loopback only) against the local engine.

Same documents in the same clusters, read by stock ``StreamingDataset`` and ``ClusterClipDataset``,
the same rejections, identical output twice, a worker killed mid-pack, nothing listening off loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamclip import open_manifest
from streamclip.cli import main
from streamclip.errors import ConfigError
from streamclip.writers import ConvertConfig, FieldRules, convert
from streamclip.writers.ray_tasks import KILL_ONCE_ENV

from conftest import SAMPLE, write_jsonl

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before ray is imported: bind and advertise 127.0.0.1 only

FAST = dict(embedder="hashing", progress=False)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module: 2 CPUs, on 127.0.0.1, no dashboard; shut down at the end."""
    import ray

    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def read_stock(path: Path) -> list[dict]:
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(path), shuffle=False, batch_size=1)
    return [ds[i] for i in range(ds.num_samples)]


def membership(path: Path) -> dict[int, Counter]:
    """Each cluster's documents (text and kept fields) as a multiset, from the stock reader."""
    clusters: dict[int, Counter] = defaultdict(Counter)
    for s in read_stock(path):
        clusters[int(s["cluster"])][json.dumps({k: v for k, v in s.items() if k != "cluster"}, sort_keys=True)] += 1
    return dict(clusters)


def digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


# Small pieces: every cluster of the full sample is packed in several tasks (piece size is 500 documents at least).
PIECES = dict(clusters=4, seed=5, memory_budget=16 << 10, shard_size=64 << 10, rules=FieldRules(keep=("source",)), **FAST)


def test_ray_gives_the_local_engines_clusters_identically_twice_and_stock_readers_read_it(ray_local, tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    expected = convert([str(SAMPLE)], str(local), ConvertConfig(**PIECES))
    report = convert([str(SAMPLE)], str(on_ray), ConvertConfig(engine="ray", ray_workers=2, **PIECES))
    convert([str(SAMPLE)], str(tmp_path / "again"), ConvertConfig(engine="ray", **PIECES))
    assert digest(on_ray) == digest(tmp_path / "again")  # Ray twice: identical bytes (before the stock reader unpacks shards)
    assert (report.read, report.written, report.rejected, report.clusters) == (expected.read, expected.written, 0, expected.clusters)
    assert membership(on_ray) == membership(local)
    manifest, reference = open_manifest(str(on_ray)), open_manifest(str(local))
    assert max(c.documents for c in manifest.clusters) > 500  # so that cluster was packed in pieces
    assert [(c.documents, c.bytes, c.samples, c.top_terms, c.example) for c in manifest.clusters] == \
        [(c.documents, c.bytes, c.samples, c.top_terms, c.example) for c in reference.clusters]
    assert (on_ray / "centroids.npy").read_bytes() == (local / "centroids.npy").read_bytes()
    assert manifest.clustering == reference.clustering and manifest.embedding == reference.embedding

    from reader_helpers import make_dataset

    ds = make_dataset(on_ray, strategy="clusterclip", strategy_params={"clip": 2}, epoch_size=256)
    texts = {s["text"] for s in read_stock(on_ray)}
    drawn = [ds[i]["text"] for i in range(0, ds.num_samples, max(1, ds.num_samples // 64))]
    assert drawn and all(t in texts for t in drawn)


def test_bad_inputs_are_reported_as_by_the_local_engine(ray_local, tmp_path, sample_docs):
    good = write_jsonl(tmp_path / "a.jsonl", sample_docs[:300])
    bad = write_jsonl(tmp_path / "b.jsonl", sample_docs[300:400], raw_lines=[
        b"{not json", b'{"title": "no text"}', b'{"text": 5}', b"", b'{"text": ""}', b"[1, 2]", b'{"text": "fine, late"}'])
    inputs = [str(good), str(bad)]
    config = dict(clusters=3, **FAST)
    expected = convert(inputs, str(tmp_path / "local"), ConvertConfig(**config))
    report = convert(inputs, str(tmp_path / "ray"), ConvertConfig(engine="ray", **config))
    assert report.rejected > 0 and report.read == report.written + report.rejected
    assert (report.read, report.written, report.rejected, report.rejected_by_reason, report.blank_lines) == \
        (expected.read, expected.written, expected.rejected, expected.rejected_by_reason, expected.blank_lines)
    assert (tmp_path / "ray" / "rejected.jsonl").read_bytes() == (tmp_path / "local" / "rejected.jsonl").read_bytes()
    assert open_manifest(str(tmp_path / "ray")).inputs == open_manifest(str(tmp_path / "local")).inputs
    assert membership(tmp_path / "ray") == membership(tmp_path / "local")


def test_a_worker_killed_while_packing_loses_and_duplicates_nothing(ray_local, tmp_path, monkeypatch, sample_jsonl, sample_docs):
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    report = convert([str(sample_jsonl)], str(tmp_path / "ray"), ConvertConfig(engine="ray", clusters=4, **FAST))
    assert marker.exists()  # a pack task did kill its worker, and Ray ran it again
    assert report.written == len(sample_docs)
    assert Counter(s["text"] for s in read_stock(tmp_path / "ray")) == Counter(d["text"] for d in sample_docs)


def test_cluster_field_on_ray_through_the_cli(ray_local, tmp_path, sample_docs):
    ids = {"jargon": 7, "devil": 3, "kjv": 11, "sonnets": 2, "elements": 5}
    src = write_jsonl(tmp_path / "c.jsonl", [{**d, "group": ids[d["source"]]} for d in sample_docs])
    args = [str(src), "--cluster-field", "group", "--no-progress"]
    result = CliRunner().invoke(main, ["convert", *args, str(tmp_path / "ray"), "--engine", "ray", "--ray-workers", "2"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, ["convert", *args, str(tmp_path / "local")]).exit_code == 0
    assert membership(tmp_path / "ray") == membership(tmp_path / "local")
    assert open_manifest(str(tmp_path / "ray")).clustering["source_ids"] == sorted(ids.values())


def test_ray_options_need_the_ray_engine(tmp_path):
    with pytest.raises(ConfigError, match=r"--ray-address, --num-gpus: only for --engine ray"):
        ConvertConfig(ray_address="auto", num_gpus=1, **FAST)
    with pytest.raises(ConfigError, match=r"--resume: the Ray engine does not resume"):
        ConvertConfig(engine="ray", resume=True, **FAST)
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), str(tmp_path / "x"), "--ray-workers", "2"])
    assert result.exit_code == 2 and "--ray-workers: only for --engine ray" in result.output


def _listening() -> dict[int, str]:
    """LISTEN sockets of this machine: inode -> local address (hex, as /proc/net/tcp{,6} writes it)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                cols = row.split()
                if cols[3] == "0A":
                    found[int(cols[9])] = cols[1].split(":")[0]
    return found


def _socket_inodes(pids: set[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
        except OSError:
            continue
    return inodes


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    children[int(f.read().rsplit(")", 1)[1].split()[1])].append(int(name))
            except OSError:
                continue
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(children[pid])
    return out


LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def test_ray_listens_on_loopback_only(ray_local):
    """Last in the module, so the workers of the conversions above are up too."""
    ours = _socket_inodes(_descendants(os.getpid()))
    listening = {inode: addr for inode, addr in _listening().items() if inode in ours}
    assert len(listening) >= 3  # GCS, raylet, object manager at least: the scan sees Ray's sockets
    assert set(listening.values()) <= LOOPBACK, listening


@pytest.mark.s3
def test_ray_reads_s3_inputs_and_writes_an_s3_dataset_on_a_ray_started_without_s3_settings(ray_local, s3, sample_docs, tmp_path):
    # ray_local was started before the S3 variables were set: its workers learn them from the engine, per task.
    import zstandard

    client, half = s3.client(), len(sample_docs) // 2
    for i, part in enumerate((sample_docs[:half], sample_docs[half:])):
        lines = b"".join(json.dumps(d).encode() + b"\n" for d in part)
        client.put_object(Bucket=s3.bucket, Key=f"ray-corpus/part-{i}.jsonl.zst", Body=zstandard.ZstdCompressor().compress(lines))
    local = convert([str(write_jsonl(tmp_path / "a.jsonl", sample_docs[:half])), str(write_jsonl(tmp_path / "b.jsonl", sample_docs[half:]))],
                    str(tmp_path / "local"), ConvertConfig(**PIECES))
    url = f"s3://{s3.bucket}/datasets/from-ray"
    report = convert([f"s3://{s3.bucket}/ray-corpus/*.jsonl.zst"], url, ConvertConfig(engine="ray", work_dir=str(tmp_path / "work"), **PIECES))
    assert (report.read, report.written, report.rejected) == (local.read, local.written, 0) == (len(sample_docs), len(sample_docs), 0)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix="datasets/from-ray/")
    copy = tmp_path / "copy"
    for key in [item["Key"] for page in pages for item in page.get("Contents", [])]:
        (copy / key.rsplit("/", 1)[1]).parent.mkdir(exist_ok=True)
        (copy / key.rsplit("/", 1)[1]).write_bytes(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    assert [i.path for i in open_manifest(url).inputs] == [f"s3://{s3.bucket}/ray-corpus/part-{i}.jsonl.zst" for i in (0, 1)]
    assert membership(copy) == membership(tmp_path / "local")
