"""ClusterClipDataset end to end: counts follow the plan, layouts agree on global batches (resume: test_resume_contract)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from streamclip import ManifestError, PlanInfeasible, ResumeMismatch, open_manifest
from streamclip.plan import ClusterClip, ClusterLayout, RunSchedule, Uniform, counts_at, plan_segment
from streamclip.readers import ClusterClipDataset, resolve_budget
from streamclip.writers import ConvertConfig, convert

from conftest import convert_docs
from reader_helpers import EPOCH, as_sets, global_batches, make_dataset

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    return convert_docs(tmp_path_factory.mktemp("reader"), sample_docs, clusters=8, shard_size=24 << 10)


@pytest.fixture(scope="module")
def texts_by_id(dataset) -> list[str]:
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(dataset), batch_size=1)
    return [ds[i]["text"] for i in range(ds.num_samples)]


STRATEGIES = [
    ("clusterclip", {"clip": 2}),
    ("random", {}),
    ("uniform", {}),
    ("temperature", {"t": 0.5, "clip": 3}),
    ("specific-to-general", {"switch": 0.5, "clip": 3}),
]


@pytest.mark.parametrize("name,params", STRATEGIES)
def test_each_epoch_draws_exactly_the_planned_documents(dataset, texts_by_id, name, params):
    ds = make_dataset(dataset, strategy=name, strategy_params=params, epochs=2, seed=5)
    manifest = open_manifest(str(dataset))
    layout = ClusterLayout.from_shards(manifest.samples_per_shard, manifest.shard_ranges)
    schedule = RunSchedule(layout.cluster_sizes, ds.strategy, ds.total_samples)
    loader_batches = global_batches(dataset, strategy=name, strategy_params=params, epochs=2, seed=5, epochs_to_read=2)
    seen = [t for b in loader_batches for t in b]
    assert len(seen) == 2 * EPOCH
    for epoch in range(2):
        _, ids = plan_segment(layout, schedule, seed=5, epoch_size=ds.epoch_size, epoch=epoch)
        got = seen[epoch * ds.epoch_size : (epoch + 1) * ds.epoch_size]
        assert Counter(got) == Counter(texts_by_id[i] for i in ids)
        planned = counts_at(schedule, (epoch + 1) * ds.epoch_size) - counts_at(schedule, epoch * ds.epoch_size)
        clusters = np.searchsorted(layout.shard_offsets[layout.shard_cluster_ranges[:, 0]], ids, side="right") - 1
        assert np.bincount(clusters, minlength=layout.num_clusters).tolist() == planned.tolist()


def test_samples_carry_their_cluster(dataset):
    ds = make_dataset(dataset, strategy="uniform", epochs=1)
    manifest = open_manifest(str(dataset))
    for i in (0, manifest.num_documents // 2, manifest.num_documents - 1):
        cluster = next(c for c in manifest.clusters if c.samples[0] <= i < c.samples[1])
        assert ds[i]["cluster"] == cluster.id


def test_clusterclip_never_repeats_a_document_more_than_clip(dataset):
    clip = 2
    batches = global_batches(dataset, strategy=ClusterClip(clip=clip), epochs=2, epochs_to_read=2)
    counts = Counter(t for b in batches for t in b)
    assert max(counts.values()) <= clip
    assert sum(counts.values()) == 2 * EPOCH


def test_worker_counts_give_the_same_global_batches(dataset):
    zero = global_batches(dataset, strategy="clusterclip", strategy_params={"clip": 3}, epochs=1, num_workers=0)
    two = global_batches(dataset, strategy="clusterclip", strategy_params={"clip": 3}, epochs=1, num_workers=2)
    assert as_sets(zero) == as_sets(two)
    assert len(zero) == EPOCH // 16


def test_resume_refuses_another_plan(dataset):
    ds = make_dataset(dataset, strategy="clusterclip", strategy_params={"clip": 2}, epochs=2, seed=1)
    state = ds.state_dict(0, True)
    other = make_dataset(dataset, strategy="clusterclip", strategy_params={"clip": 3}, epochs=2, seed=2)
    with pytest.raises(ResumeMismatch, match=r"strategy_sha: found .*; seed: found 1, expected 2"):
        other.load_state_dict(state)
    stock = {k: v for k, v in state.items() if k != "streamclip"}
    with pytest.raises(ResumeMismatch, match="not taken from a ClusterClipDataset"):
        make_dataset(dataset, epochs=2).load_state_dict(stock)


def test_budget_beyond_the_clip_fails_at_construction_with_the_maximum(dataset):
    n = open_manifest(str(dataset)).num_documents
    with pytest.raises(PlanInfeasible, match=f"{2 * n}") as info:
        make_dataset(dataset, strategy=ClusterClip(clip=2), epochs=3, epoch_size=n)
    assert info.value.max_total_samples == 2 * n


def test_reading_past_the_planned_run_is_a_clear_error(dataset):
    ds = make_dataset(dataset, strategy=Uniform(), epochs=1, epoch_size=100)
    with pytest.raises(PlanInfeasible, match="epoch 1 is past the planned run"):
        ds.resample_streams(1)


def test_budget_arguments():
    assert resolve_budget(100, total_samples=None, epochs=None, epoch_size=None) == (100, 100)
    assert resolve_budget(100, total_samples=None, epochs=3, epoch_size=40) == (120, 40)
    assert resolve_budget(100, total_samples=50, epochs=None, epoch_size=None) == (50, 50)
    assert resolve_budget(100, total_samples=300, epochs=None, epoch_size=None) == (300, 100)
    with pytest.raises(ValueError, match="total_samples=250 is not a multiple of epoch_size=100.*Use total_samples=200 or 300"):
        resolve_budget(100, total_samples=250, epochs=None, epoch_size=None)
    with pytest.raises(ValueError, match="give total_samples or epochs, not both"):
        resolve_budget(100, total_samples=100, epochs=1, epoch_size=None)


def test_a_stale_cache_of_another_dataset_is_refused(dataset, tmp_path, sample_docs):
    src = tmp_path / "other.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:100]))
    other = tmp_path / "other"
    convert([str(src)], str(other), ConvertConfig(clusters=3, embedder="hashing", progress=False))
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(other / "index.json", cache / "index.json")
    with pytest.raises(ManifestError, match="the local cache holds another dataset"):
        ClusterClipDataset(remote=str(dataset), local=str(cache), batch_size=4)


def test_unsupported_arguments_are_named(dataset):
    with pytest.raises(ValueError, match="does not take sampling_method="):
        ClusterClipDataset(local=str(dataset), sampling_method="fixed")
    with pytest.raises(ValueError, match="batching_method='random' only"):
        ClusterClipDataset(local=str(dataset), batching_method="stratified")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_ranks_cover_the_epoch_disjointly_with_the_same_global_batches(dataset, tmp_path):
    out = tmp_path / "ranks"
    out.mkdir()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}", str(HERE / "dist_reader.py"), str(dataset), str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    single = global_batches(dataset, strategy="clusterclip", strategy_params={"clip": 2}, epochs=1, batch_size=16)
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    combined = [a + b for a, b in zip(ranks[0], ranks[1])]
    assert as_sets(combined) == as_sets(single)
    assert Counter(t for b in combined for t in b) == Counter(t for b in single for t in b)
