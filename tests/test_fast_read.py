"""The fast read path yields exactly what the stock per-sample path yields: same samples, same order, same types."""

from __future__ import annotations

import faulthandler
import gc
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streaming import MDSWriter, StreamingDataset
from torch.utils.data import DataLoader

from streamclip import open_manifest
from streamclip.readers import ClusterClipDataset
from streamclip.readers.spanread import ShardSpanReader
from streamclip.writers import ConvertConfig, FieldRules, convert

from reader_helpers import EPOCH, identity, make_dataset

STRATEGIES = [
    ("clusterclip", {"clip": 2}),
    ("random", {}),
    ("uniform", {}),
    ("temperature", {"t": 0.5, "clip": 3}),
    ("weighted", {"weights": (5, 1, 1, 1, 2, 1, 1, 3)}),
    ("general-to-specific", {"switch": 0.5, "clip": 3}),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    """8 clusters over ~25 zstd shards of ~24 KiB (several shards per cluster), keeping two JSON columns."""
    root = tmp_path_factory.mktemp("fastread")
    src = root / "c.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in sample_docs))
    out = root / "ds"
    convert([str(src)], str(out), ConvertConfig(clusters=8, embedder="hashing", shard_size=24 << 10, rules=FieldRules(keep=("source", "domain")), progress=False))
    manifest = open_manifest(str(out))
    assert manifest.columns == {"text": "str", "cluster": "int32", "source": "json", "domain": "json"}
    assert len(manifest.clusters) == 8 and max(b - a for a, b in manifest.shard_ranges) > 1
    return out


def typed(samples: list[dict[str, Any]]) -> list[tuple]:
    """Samples as comparable tuples of (column, type, value): np.int32 must stay np.int32."""
    return [tuple((k, type(v).__name__, v if not isinstance(v, np.generic) else v.item()) for k, v in s.items()) for s in samples]


def read(path: Path, *, read_path: str, num_workers: int = 0, epochs_to_read: int = 2, **kwargs: Any) -> list[tuple]:
    # Finalise earlier datasets first: streaming unlinks shared memory by name when a dataset is collected.
    gc.collect()
    ds = make_dataset(path, read_path=read_path, **kwargs)
    loader = DataLoader(ds, batch_size=ds.batch_size, num_workers=num_workers, collate_fn=identity)
    return typed([s for _ in range(epochs_to_read) for batch in loader for s in batch])


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("name,params", STRATEGIES)
def test_fast_path_yields_the_stock_sequence(dataset, name, params, num_workers):
    kwargs = dict(strategy=name, strategy_params=params, epochs=2, seed=3, num_workers=num_workers)
    stock = read(dataset, read_path="stock", **kwargs)
    assert len(stock) == 2 * EPOCH
    assert read(dataset, read_path="fast", **kwargs) == stock


@pytest.mark.parametrize("num_workers", [0, 2])
def test_evictions_under_cache_limit_change_nothing(dataset, tmp_path, num_workers):
    """A cache of 5 x the largest shard (raw + zip) against ~25 shards, predownload 32: shards are evicted
    and copied/decompressed again all epoch. Compared with stock *without* a limit: stock's ready thread
    hangs under this limit (it waits forever for a shard evicted after it prepared it)."""
    faulthandler.dump_traceback_later(240, exit=True)  # a hang fails CI instead of stalling it
    largest = max(s.get_max_size() for s in StreamingDataset(local=str(dataset), batch_size=1).shards)
    kwargs = dict(strategy="uniform", epochs=2, seed=4, num_workers=num_workers)
    expected = read(dataset, read_path="stock", **kwargs)
    evicted = []

    class Counting(ClusterClipDataset):
        def _fit_cache(self, **_):  # construction refuses a cache this tight (test_s3); bypassed to force evictions
            return None

        def _evict_shard(self, shard_id: int) -> None:
            evicted.append(shard_id)
            super()._evict_shard(shard_id)

    ds = Counting(remote=str(dataset), local=str(tmp_path / "cache"), read_path="fast", cache_limit=5 * largest, predownload=32,
                  strategy="uniform", epochs=2, seed=4, batch_size=16, num_canonical_nodes=2, epoch_size=EPOCH)
    loader = DataLoader(ds, batch_size=16, num_workers=num_workers, collate_fn=identity)
    got = typed([s for _ in range(2) for batch in loader for s in batch])
    assert got == expected
    if num_workers == 0:  # evictions happen in this process only without workers
        assert len(evicted) > 10
    assert len(list((tmp_path / "cache").glob("shard.*.mds"))) < len(ds.shards)
    faulthandler.cancel_dump_traceback_later()


def test_a_mapped_shard_survives_eviction_and_a_replaced_file_is_remapped(dataset, tmp_path):
    local = tmp_path / "copy"
    shutil.copytree(dataset, local)
    stock = StreamingDataset(local=str(local), batch_size=1)
    n = stock.shards[0].samples
    expected = typed([stock.shards[0][i] for i in range(n)])
    reader = ShardSpanReader(stock.shards)
    everything = np.arange(n, dtype=np.int64)
    assert reader.current(0)
    path = reader.path(0)
    moved = tmp_path / "moved.mds"
    shutil.copy(path, moved)
    os.remove(path)  # evicted while mapped: the mapping still reads the right bytes
    assert typed(reader.read(np.zeros(n, dtype=np.int64), everything[::-1]))[::-1] == expected
    assert not reader.current(0) and reader.num_mapped == 0  # gone: dropped, the caller prepares it again
    os.rename(moved, path)  # re-downloaded: another inode
    assert reader.current(0) and typed(reader.read(np.zeros(n, dtype=np.int64), everything)) == expected
    shutil.copy(path, moved)
    os.rename(moved, path)
    before = reader._mapped[0]
    assert reader.current(0) and reader._mapped[0] is not before
    reader.forget_unused(keep_last=1)
    assert reader.num_mapped == 1
    assert reader.current(1) and reader.current(1)
    reader.forget_unused(keep_last=1)
    assert reader.num_mapped == 1 and 1 in reader._mapped


def test_other_encodings_fall_back_to_stock_decoding(tmp_path):
    columns = {"a": "int64", "b": "bytes", "c": "float32", "d": "str", "e": "ndarray:int16", "f": "json"}
    rng = np.random.default_rng(0)
    rows = [{"a": i, "b": bytes(rng.integers(0, 256, i % 7, dtype=np.uint8)), "c": float(i) / 3, "d": "é" * (i % 5),
             "e": np.arange(1 + i % 4, dtype=np.int16), "f": {"i": [i]}} for i in range(300)]
    with MDSWriter(out=str(tmp_path / "mds"), columns=columns, size_limit=2048) as writer:
        for row in rows:
            writer.write(row)
    stock = StreamingDataset(local=str(tmp_path / "mds"), batch_size=1)
    reader = ShardSpanReader(stock.shards)
    for shard_id, shard in enumerate(stock.shards):
        order = np.random.default_rng(shard_id).permutation(shard.samples)
        assert reader.current(shard_id)
        for got, i in zip(reader.read(np.full(len(order), shard_id), order), order):
            want = shard[int(i)]
            assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) and type(got[k]) is type(want[k]) for k in want)


def test_read_path_is_checked(dataset):
    with pytest.raises(ValueError, match="read_path must be one of 'fast', 'stock', got read_path='mmap'"):
        ClusterClipDataset(local=str(dataset), read_path="mmap")
