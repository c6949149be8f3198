"""``cache_limit`` under ClusterClip: the shuffle block is fitted so an epoch reads each shard once,
a cache that cannot work is refused at construction with its minimum, and a checkpoint keeps the
sample order of the cache it was taken under. The remote here is a local directory (streaming
copies shards from it like downloads); ``test_s3`` measures the same over a real S3 server."""

from __future__ import annotations

import re
import time
import warnings
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streaming import StreamingDataLoader
from streaming.base.stream import Stream
from torch.utils.data import DataLoader

from streamclip.plan.locality import max_distinct_in_windows
from streamclip.readers import fastiter
from streamclip.readers.fastiter import shard_bounds, shards_of
from streamclip.readers import ClusterClipDataset
from streamclip.readers.cachefit import epoch_work, node_window, workers_shortfall

from conftest import convert_docs
from reader_helpers import EPOCH, columns, identity

READ = dict(strategy="clusterclip", strategy_params={"clip": 2}, epochs=2, epoch_size=EPOCH, batch_size=16, num_canonical_nodes=2)


@given(st.lists(st.integers(0, 6), max_size=60), st.integers(1, 70), st.sampled_from([1, -3, 1 << 20]))
@settings(max_examples=300, deadline=None)
def test_max_distinct_in_windows_matches_brute_force(keys, window, spread):
    """``spread`` takes the keys beyond 2^16 values (another sort) and below zero."""
    keys = [k * spread for k in keys]
    expected = max((len(set(keys[i : i + window])) for i in range(max(1, len(keys) - window + 1))), default=0)
    assert max_distinct_in_windows(np.array(keys, dtype=np.int64), window) == expected


@pytest.mark.parametrize("ranks, workers", [(1, 1), (1, 3), (2, 3)])
def test_eviction_keys_follow_the_node_sequence_the_cache_is_fitted_on(ranks, workers):
    """The fast path keys a shard by where its use falls in the node's sequence; that sequence must be the
    one cachefit measures windows on (batch by batch, ranks and workers in turn), or the fit would promise
    a window the eviction does not keep. Keys of a later epoch sort after every key of an earlier one."""
    batch, batches = 4, 5
    order = np.arange(ranks * workers * batches * batch).reshape(1, ranks, workers, batches, batch)
    node_order = order[0].transpose(2, 0, 1, 3).reshape(-1)  # what cachefit.node_working_set walks
    where = np.argsort(node_order)
    for epoch in (0, 3):
        for rank in range(ranks):
            for worker in range(workers):
                world = SimpleNamespace(ranks_per_node=ranks, rank_of_node=rank, workers_per_rank=workers, worker_of_rank=worker)
                ds = SimpleNamespace(_parallel_worker_world=world, batch_size=batch)
                it = SimpleNamespace(key_base=epoch << fastiter.EPOCH_SHIFT)
                keys = fastiter._node_keys(ds, it, np.arange(batches * batch))
                expected = where[order[0, rank, worker].reshape(-1)] + (epoch << fastiter.EPOCH_SHIFT)
                np.testing.assert_array_equal(keys, expected)


def test_a_lagging_worker_never_makes_a_shard_look_older():
    """Keys only grow while a shard is cached; stock's clock stamp (just downloaded) and NEVER (evicted)
    are replaced, since neither is a position."""
    times = np.array([100, 100, time.time_ns(), np.iinfo(np.uint64).max], dtype=np.uint64)
    ds = SimpleNamespace(_shard_access_times=SimpleNamespace(numpy=lambda: times))
    fastiter._raise_keys(ds, np.arange(4), np.array([50, 150, 70, 80], dtype=np.uint64))
    np.testing.assert_array_equal(times, [100, 150, 70, 80])


@pytest.fixture(scope="module")
def remote(tmp_path_factory, sample_docs) -> Path:
    """12 clusters over ~190 shards of 16 KiB: a ClusterClip epoch touches dozens of shards."""
    return convert_docs(tmp_path_factory.mktemp("cachefit"), sample_docs, clusters=12, shard_size=16 << 10)


def largest_shard(ds: ClusterClipDataset) -> int:
    return max(shard.get_max_size() for shard in ds.shards)


@pytest.fixture
def downloads(monkeypatch, tmp_path) -> Path:
    """Every shard copy from the remote, one line per copy, from this process and forked workers alike."""
    log = tmp_path / "downloads.log"
    log.touch()
    copy = Stream.prepare_shard

    def logged(self, shard):
        with open(log, "a") as f:
            f.write(shard.file_pairs[0][0].basename + "\n")
        return copy(self, shard)

    monkeypatch.setattr(Stream, "prepare_shard", logged)
    return log


def minimum_in(message: str) -> int:
    return int(re.search(r"the minimum is (\d+) bytes", message).group(1))


def test_cache_limit_needs_a_separate_remote(remote):
    with pytest.raises(ValueError, match="deleted for good"):
        ClusterClipDataset(local=str(remote), cache_limit=10**9, **READ)


def test_a_cache_too_small_fails_at_construction_and_its_minimum_works(remote, tmp_path):
    with pytest.raises(ValueError, match="cannot hold what this plan reads at once") as refused:
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "a"), cache_limit=100_000, **READ)
    minimum = minimum_in(str(refused.value))
    with pytest.raises(ValueError, match=f"the minimum is {minimum} bytes"):
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "b"), cache_limit=minimum - 1, **READ)
    ds = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "c"), cache_limit=minimum, **READ)
    assert ds.cache_fit.bytes <= minimum
    assert sum(len(b) for b in DataLoader(ds, batch_size=16, collate_fn=identity)) == EPOCH


def test_more_workers_than_the_cache_was_fitted_for_are_named(remote, tmp_path):
    """The block is fitted for ``cache_workers`` per rank (default 1: the loader's worker count is unknown at
    construction); the node's leader worker checks the real count as each epoch's work is shared, and warns
    with the setting that fits (raising there would strand the other workers at streaming's barrier). The
    epoch still completes."""
    with pytest.raises(ValueError) as refused:
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "a"), cache_limit=100_000, predownload=16, **READ)
    minimum = minimum_in(str(refused.value))
    ds = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "b"), cache_limit=minimum, predownload=16, **READ)

    def shortfall(workers: int) -> str | None:
        work = epoch_work(ds, 0, num_nodes=1, ranks_per_node=1, workers_per_rank=workers, block_size=ds.shuffle_block_size,
                          num_canonical_nodes=2)
        return workers_shortfall(ds, work, node=0, ranks_per_node=1, workers_per_rank=workers)

    assert shortfall(1) is None
    assert "is below what 4 workers on this node read at once" in shortfall(4)
    assert "Pass cache_workers=4" in shortfall(4)
    assert sum(len(b) for b in DataLoader(ds, batch_size=16, num_workers=2, collate_fn=identity)) == EPOCH


@pytest.mark.parametrize("workers", [0, 2])
def test_a_fitted_block_reads_each_shard_once_per_epoch(remote, tmp_path, downloads, workers):
    """The smallest cache that works for the loader's workers (predownload = one batch): stock's default
    block is refused there, and the fitted block copies a shard once per visit, never again while it is
    still in use (it was 537 copies of 34 shards before the fit), whatever the timing of the workers:
    eviction follows the plan, so this holds run after run."""
    kwargs = dict(READ, predownload=16, cache_workers=max(workers, 1))
    with pytest.raises(ValueError) as refused:
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "tiny"), cache_limit=100_000, **kwargs)
    kwargs["cache_limit"] = minimum_in(str(refused.value))
    with pytest.raises(ValueError, match="leave shuffle_block_size unset"):
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "stock-block"), shuffle_block_size=1 << 18, **kwargs)
    ds = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "cache"), **kwargs)
    assert ds.shuffle_block_size < EPOCH
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="cache_limit")
        drawn = [s["text"] for batch in DataLoader(ds, batch_size=16, num_workers=workers, collate_fn=identity) for s in batch]
    assert len(drawn) == EPOCH
    copies = downloads.read_text().split()
    shards = node_shards(ds, max(workers, 1))
    assert {int(name.split(".")[1]) for name in copies} == set(shards.tolist())
    assert len(copies) <= visits(shards, node_window(ds, 1, max(workers, 1)))


def node_shards(ds: ClusterClipDataset, workers: int) -> np.ndarray:
    """The shard of each sample of epoch 0, in the order this node's workers take them."""
    work = epoch_work(ds, 0, num_nodes=1, ranks_per_node=1, workers_per_rank=workers, block_size=ds.shuffle_block_size,
                      num_canonical_nodes=ds.num_canonical_nodes)
    ids = work[0].transpose(2, 0, 1, 3).reshape(-1)
    return shards_of(shard_bounds(ds), ids[ids >= 0])


def visits(shards: np.ndarray, window: int) -> int:
    """Stretches of use per shard: a shard used again within ``window`` must still be cached; after a longer
    gap it may have been evicted (a cluster's next pass over it is a new visit)."""
    total = 0
    for shard in np.unique(shards):
        uses = np.flatnonzero(shards == shard)
        total += 1 + int((np.diff(uses) > window).sum())
    return total


def test_a_checkpoint_keeps_the_order_of_the_cache_it_was_taken_under(remote, tmp_path):
    """Resumed without a cache limit (stock's default block), a checkpoint taken under a fitted block
    still yields exactly the rest of its epoch."""
    probe = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "probe"), **READ)
    limit = 12 * largest_shard(probe) + sum(s.get_index_size() for s in probe.streams)
    kwargs = dict(READ, predownload=16)

    def loader(ds):
        return StreamingDataLoader(ds, batch_size=16, num_workers=0, collate_fn=columns)

    full = [t for batch in loader(ClusterClipDataset(remote=str(remote), local=str(tmp_path / "full"), cache_limit=limit, **kwargs)) for t in batch["text"]]
    ds = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "first"), cache_limit=limit, **kwargs)
    it = loader(ds)
    head = []
    for i, batch in enumerate(it):
        head.extend(batch["text"])
        if i == 9:
            break
    state = it.state_dict()
    assert state["streamclip"]["shuffle_block_size"] == ds.shuffle_block_size < 1 << 18
    resumed = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "second"), **kwargs)
    resumed.load_state_dict(state)
    tail = [t for batch in loader(resumed) for t in batch["text"]]
    assert head + tail == full


def test_cache_limit_without_batch_size_names_the_option(remote, tmp_path):
    from streamclip.errors import ConfigError

    kwargs = {k: v for k, v in READ.items() if k != "batch_size"}
    with pytest.raises(ConfigError, match="(?i)needs batch_size.*pass batch_size="):
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "c"), cache_limit=10**9, **kwargs)


def test_a_too_small_cache_carries_its_minimum(remote, tmp_path):
    from streamclip.errors import CacheTooSmall

    with pytest.raises(CacheTooSmall) as refused:
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "a"), cache_limit=100_000, **READ)
    assert refused.value.minimum_bytes == minimum_in(str(refused.value))


PHASED = dict(READ, strategy="general-to-specific", strategy_params={"switch": 0.5, "clip": 3}, predownload=16)


def _reference_need(ds, block: int, epoch: int) -> int:
    from streamclip.readers.cachefit import plan_working_set, requirement

    shards = plan_working_set(ds, block_size=block, num_nodes=1, ranks_per_node=1, workers_per_rank=1,
                              num_canonical_nodes=2, epochs=[epoch])
    return requirement(ds, shards, 1)


def test_the_fit_holds_for_every_epoch_of_a_phased_plan(remote, tmp_path):
    """Review 8: general-to-specific draws by size in epoch 0 and uniformly in epoch 1, which can meet more shards
    at once. A cache fitted on epoch 0 alone took a block that epoch 1 thrashes with; now the block fits every
    epoch, or the cache is refused with a minimum that does."""
    from streamclip.errors import CacheTooSmall

    probe = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "probe"), **PHASED)
    blocks = [max(1, (1 << 18) // 4**i) for i in range(10)]
    # A cache that holds epoch 0 at some block but not epoch 1 at it (derived from the plan, not assumed).
    block = next(b for b in blocks if _reference_need(probe, b, 1) > _reference_need(probe, b, 0))
    limit = _reference_need(probe, block, 0)
    try:
        ds = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "c"), cache_limit=limit, **PHASED)
    except CacheTooSmall as refused:
        assert refused.minimum_bytes > limit
        minimum = refused.minimum_bytes
        assert all(_reference_need(probe, 1, e) <= minimum for e in range(probe.num_epochs))
        ds = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "d"), cache_limit=minimum, **PHASED)
        limit = minimum
    assert all(_reference_need(ds, ds.shuffle_block_size, e) <= limit for e in range(ds.num_epochs))


def test_two_layouts_get_the_same_block(remote, tmp_path):
    """Review 8: the block is fitted on one node of one rank, so 1 node x 1 rank and 2 nodes x 1 rank (each node
    then holds half the canonical nodes, fewer shards) draw the same batches; it was fitted per layout before.
    A node with 2 ranks needs more: it gets the same block or is refused, naming that block and its minimum.
    The layouts are given as the world the fit reads (a multi-rank construction needs a process group)."""
    from streaming.base.world import World

    from streamclip.errors import CacheTooSmall

    kwargs = dict(PHASED, strategy="clusterclip", strategy_params={"clip": 2})
    with pytest.raises(CacheTooSmall) as refused:
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "tiny"), cache_limit=100_000, **kwargs)
    ds = ClusterClipDataset(remote=str(remote), local=str(tmp_path / "one"), cache_limit=refused.value.minimum_bytes, **kwargs)
    single = ds.shuffle_block_size
    assert single < 1 << 18
    for nodes, ranks in ((2, 1), (1, 2)):
        ds.shuffle_block_size = None
        ds._parallel_rank_world = World(num_nodes=nodes, ranks_per_node=ranks, workers_per_rank=1, worker=0)
        try:
            assert ds._fit_cache(block_given=False).block_size == single == ds.shuffle_block_size
        except CacheTooSmall as e:
            assert ranks == 2 and f"shuffle_block_size={single}" in str(e) and e.minimum_bytes > ds.cache_limit
