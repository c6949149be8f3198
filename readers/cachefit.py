"""Fit an epoch's shard working set to ``cache_limit``.

Sampling uniformly over many clusters touches many shards at once: with stock's default
shuffle block (>= 262,144 samples) a whole epoch is one block, so the next ``predownload``
samples of a worker come from almost as many shards. A cache smaller than that evicts shards
before they are read and downloads them again, over and over (537 downloads for a 640-sample
epoch of 34 shards, measured with an 8-shard cache).

The shuffle block bounds how far a shuffle unit's samples spread, and so how many units a
window of the node's sequence meets. Given a ``cache_limit`` and no ``shuffle_block_size``,
:func:`fit_block_size` picks the largest block (the default divided by a power of 4) whose working set fits, computed
exactly on the epoch's real sample order (:func:`streamclip.plan.locality.max_distinct_in_windows`)
for ``cache_workers`` DataLoader workers per rank (a setting, default 1); the block depends only on
the plan, the seed, ``num_canonical_nodes`` and that setting, never on the worker count a run
really has, so the sample order stays the same for every world. When no block fits, the cache
cannot work for this plan and construction fails with the minimum.

What a node must hold: every worker prepares ``predownload`` samples ahead of the batch it is
yielding, and the DataLoader takes batches from workers (and ranks) in turn, so the shards of
the node's sequence in a window around the batches being yielded (:func:`node_window`), plus one
shard being downloaded by each worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import CacheTooSmall
from streamclip.plan.locality import max_distinct_in_windows
from streamclip.readers.compat import get_partitions, get_shuffle
from streamclip.readers.fastiter import shard_bounds, shards_of

__all__ = ["CacheFit", "check_block_size", "check_layout", "epoch_shapes", "epoch_work", "fit_block_size", "node_working_set", "plan_working_set", "workers_shortfall"]

SMALLEST_BLOCK = 1
# torch's DataLoader default: each worker may produce this many batches before the loader takes them.
PREFETCH_FACTOR = 2


@dataclass(frozen=True)
class CacheFit:
    """The chosen block and what it needs: ``shards`` at once, ``bytes`` of cache with the index."""

    block_size: int
    shards: int
    bytes: int


def epoch_work(ds, epoch: int, *, num_nodes: int, ranks_per_node: int, workers_per_rank: int,
               block_size: int, num_canonical_nodes: int) -> NDArray[np.int64]:
    """Stock ``generate_work_random_batching`` for a given world and block:
    ``(nodes, ranks, workers, batches, batch)`` sample ids, -1 for padding."""
    units, sample_ids = ds.resample_streams(epoch)
    big = get_partitions(ds.partition_algo, ds.epoch_size, num_canonical_nodes, num_nodes, ranks_per_node,
                         workers_per_rank, ds.batch_size, 0, ds.initial_physical_nodes)
    if ds.shuffle:
        order = get_shuffle(ds.shuffle_algo, units, num_canonical_nodes, ds.shuffle_seed, epoch, block_size)
        big = np.where(big != -1, order[big], -1)
    return np.where(big != -1, sample_ids[big], -1)


def node_window(ds, ranks_per_node: int, workers_per_rank: int) -> int:
    """Samples of a node's interleaved sequence whose shards must all be in the cache at once.

    Workers prepare ``ahead`` = ``ceil(predownload / batch) + 1`` batches each past what they yield.
    Several workers of a rank drift apart: the DataLoader lets each produce ``PREFETCH_FACTOR``
    batches before it takes them, in turn, so one may be that many batches (and one being taken)
    ahead of another. The fast read path evicts the shard whose prepared uses lie furthest behind
    in the node's sequence (``fastiter``), so what it must hold is the window from the slowest
    reader to the furthest prepare: ``ahead`` plus the drift, in batches of every worker. Stock
    evicts by the clock, and its reads touch each shard again, which makes a shard read in the last
    batches as recent as one prepared for the next ones: LRU keeps those needed next only if it
    keeps both, twice the window.
    """
    ahead = math.ceil(ds.predownload / ds.batch_size) + 1
    drift = PREFETCH_FACTOR + 1 if workers_per_rank > 1 else 0
    reach = ahead + drift
    if getattr(ds, "read_path", "stock") == "stock":
        reach *= 2
    return reach * ds.batch_size * ranks_per_node * workers_per_rank


def node_working_set(ds, work: NDArray[np.int64], node: int, window: int) -> int:
    """Most distinct shards in any ``window`` of node ``node``'s sequence (batch by batch, ranks and workers in turn)."""
    ids = work[node].transpose(2, 0, 1, 3).reshape(-1)
    return max_distinct_in_windows(shards_of(shard_bounds(ds), ids[ids >= 0]), window)


def _shard_bytes(ds) -> tuple[int, int]:
    """(largest shard's raw + zip bytes: what a download may occupy, index bytes always in the cache)."""
    largest = max(shard.get_max_size() for shard in ds.shards)
    return largest, sum(stream.get_index_size() for stream in ds.streams)


def requirement(ds, shards: int, downloading: int = 1) -> int:
    """Cache bytes for ``shards`` held at once plus ``downloading`` (one per worker of the node), and the index."""
    largest, index = _shard_bytes(ds)
    return (shards + downloading) * largest + index


def epoch_shapes(ds) -> list[int]:
    """The epochs whose mix of clusters differs: epoch 0, and around every phase boundary and knock-out, the
    epoch holding the change and the first one wholly past it. Between two such changes every epoch draws the
    same shares from the same clusters, so one of them stands for all (a fit costs a shuffle per epoch tried)."""
    schedule = ds.schedule
    changes = np.concatenate([schedule.phase_starts[1:], schedule.knockout_times()])
    changes = changes[np.isfinite(changes) & (changes > 0) & (changes < schedule.total_samples)] / ds.epoch_size
    epochs = np.unique(np.concatenate([[0], np.floor(changes), np.ceil(changes)]).astype(np.int64))
    return [int(e) for e in epochs[epochs < ds.num_epochs]]


def plan_working_set(ds, *, block_size: int, num_nodes: int, ranks_per_node: int, workers_per_rank: int,
                     num_canonical_nodes: int, epochs: list[int], stop_above: float = math.inf) -> int:
    """Most shards any node holds at once over ``epochs`` with ``workers_per_rank`` workers per rank; returns as
    soon as that passes ``stop_above`` (the block is then refused anyway), so put the likely worst epoch first."""
    window = node_window(ds, ranks_per_node, workers_per_rank)
    worst = 0
    for epoch in epochs:
        work = epoch_work(ds, epoch, num_nodes=num_nodes, ranks_per_node=ranks_per_node, workers_per_rank=workers_per_rank,
                          block_size=block_size, num_canonical_nodes=num_canonical_nodes)
        worst = max(worst, *(node_working_set(ds, work, node, window) for node in range(num_nodes)))
        if worst > stop_above:
            break
    return worst


def _downloads(world: dict) -> int:
    return world["ranks_per_node"] * world["workers_per_rank"]


def _most_shards(ds, world: dict) -> int:
    """The most shards held at once that ``ds.cache_limit`` allows beside one download per worker and the index."""
    largest, index = _shard_bytes(ds)
    return (ds.cache_limit - index) // largest - _downloads(world)


def check_block_size(ds, block_size: int, **world) -> CacheFit:
    """What a given block needs over ``world["epochs"]``; ``CacheTooSmall`` if ``ds.cache_limit`` cannot hold it."""
    shards = plan_working_set(ds, block_size=block_size, **world)
    fit = CacheFit(block_size, shards, requirement(ds, shards, _downloads(world)))
    if fit.bytes > ds.cache_limit:
        raise CacheTooSmall(
            f"cache_limit={ds.cache_limit} bytes cannot hold what this plan reads at once with shuffle_block_size="
            f"{block_size}: a node needs {shards} shards at the same time plus one downloading per worker, {fit.bytes} "
            "bytes. Raise cache_limit, or leave shuffle_block_size unset so streamclip picks one that fits",
            minimum_bytes=fit.bytes,
        )
    return fit


def check_layout(ds, block_size: int, **world) -> None:
    """``CacheTooSmall`` if this physical layout cannot read ``block_size`` (fitted on the reference layout) within the cache."""
    shards = plan_working_set(ds, block_size=block_size, **world)
    need = requirement(ds, shards, _downloads(world))
    if need > ds.cache_limit:
        raise CacheTooSmall(
            f"cache_limit={ds.cache_limit} bytes cannot hold what a node of this layout ({world['num_nodes']} node(s) x "
            f"{world['ranks_per_node']} rank(s) x cache_workers={world['workers_per_rank']}) reads at once with "
            f"shuffle_block_size={block_size}, the block fitted on one node of one rank so that every layout draws the "
            f"same batches: it needs {shards} shards at the same time plus one downloading per worker, {need} bytes. "
            f"Pass cache_limit={need} with shuffle_block_size={block_size} (the same batches as every other layout), "
            "or a smaller shuffle_block_size",
            minimum_bytes=need,
        )


def fit_block_size(ds, *, default_block: int, **world) -> CacheFit:
    """The largest block ``default_block / 4**i`` whose working set over ``world["epochs"]`` fits ``ds.cache_limit``
    (``world``: the keywords of :func:`plan_working_set` but the block); ``CacheTooSmall`` with the minimum if none does.

    The epoch that refused the last block tried is measured first for the next one: it is the likely worst, and
    a block it refuses needs no other epoch's shuffle."""
    def need(shards: int) -> int:
        return requirement(ds, shards, _downloads(world))

    epochs = list(world.pop("epochs"))
    most = _most_shards(ds, world)

    def working_set(block: int, stop_above: float = most) -> int:
        worst, worst_epoch = -1, epochs[0]
        for epoch in epochs:
            shards = plan_working_set(ds, block_size=block, epochs=[epoch], **world)
            if shards > worst:
                worst, worst_epoch = shards, epoch
            if worst > stop_above:
                break
        epochs.remove(worst_epoch)
        epochs.insert(0, worst_epoch)
        return worst

    candidates = [default_block]  # powers of 4 below the default: each try costs an epoch's shuffle
    while candidates[-1] > SMALLEST_BLOCK:
        candidates.append(max(SMALLEST_BLOCK, candidates[-1] // 4))
    needs = {default_block: working_set(default_block)}
    if needs[default_block] <= most:
        return CacheFit(default_block, needs[default_block], need(needs[default_block]))
    low, high = 1, len(candidates) - 1  # the working set shrinks with the block: binary search the first fit
    while low <= high:
        middle = (low + high) // 2
        needs[candidates[middle]] = working_set(candidates[middle])
        if needs[candidates[middle]] <= most:
            high = middle - 1
        else:
            low = middle + 1
    if low == len(candidates):
        smallest = candidates[-1]
        shards = working_set(smallest, stop_above=math.inf)  # every epoch: the minimum must hold for all of them
        largest, _ = _shard_bytes(ds)
        raise CacheTooSmall(
            f"cache_limit={ds.cache_limit} bytes cannot hold what this plan reads at once: even with shuffle_block_size="
            f"{smallest} a node needs {shards} shards at the same time (predownload={ds.predownload}, batch_size="
            f"{ds.batch_size}, {world['ranks_per_node']} rank(s) per node, cache_workers={world['workers_per_rank']}) plus "
            f"one downloading per worker, so the minimum is {need(shards)} bytes ({largest} bytes per shard, raw + "
            "compressed, and the index). Raise cache_limit, or lower predownload (down to batch_size)",
            minimum_bytes=need(shards),
        )
    block = candidates[low]  # a block that fits was measured on every epoch (no early stop)
    return CacheFit(block, needs[block], need(needs[block]))


def workers_shortfall(ds, work: NDArray[np.int64], *, node: int, ranks_per_node: int, workers_per_rank: int) -> str | None:
    """Why ``ds.cache_limit`` is too small for this epoch's ``work`` read by all of the node's workers, or None.

    The block was fitted for ``cache_workers`` workers per rank; more workers hold more shards at once."""
    window = node_window(ds, ranks_per_node, workers_per_rank)
    shards = node_working_set(ds, work, node, window)
    need = requirement(ds, shards, ranks_per_node * workers_per_rank)
    if need <= ds.cache_limit:
        return None
    return (
        f"cache_limit={ds.cache_limit} bytes is below what {ranks_per_node * workers_per_rank} workers on this node read at "
        f"once ({shards} shards, {need} bytes): shards may be downloaded more than once per epoch. Pass "
        f"cache_workers={workers_per_rank} so the shuffle block is fitted for them, raise cache_limit, or use fewer "
        "workers or a lower predownload"
    )
