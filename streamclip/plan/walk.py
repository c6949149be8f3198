"""Which documents a cluster's draws hit: full passes over its shards, in a fresh order per pass.

Cluster k's draws walk an endless pass sequence. Pass p visits the cluster's shards in the order
``default_rng((seed, k, p)).permutation(S_k)`` and each shard's samples in stored order, so
positions ``[a, b)`` of the walk are a few runs of consecutive samples: contiguous on disk (one
shuffle unit each) and, because every pass covers each document once, a cluster drawn d times
repeats a document at most ``ceil(d / n_k)`` times. Seeds are tuples, never ``seed + x``, so no two
(seed, cluster, pass) triples share a stream.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError

__all__ = ["pass_order", "walk_cluster", "walk_clusters"]


def _check_seed(seed: object) -> int:
    if not isinstance(seed, Integral) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed=}")
    return int(seed)


def pass_order(num_shards: int, *, seed: int, cluster_id: int, pass_index: int) -> NDArray[np.int64]:
    """int64[S_k]: the order (local shard indices) in which pass ``pass_index`` visits the cluster."""
    return _permutation(int(num_shards), _check_seed(seed), int(cluster_id), int(pass_index))


def _permutation(count: int, seed: int, cluster_id: int, pass_index: int) -> NDArray[np.int64]:
    if count == 1:  # the permutation of one item, without paying for a generator
        return np.zeros(1, dtype=np.int64)
    return np.random.default_rng((seed, cluster_id, pass_index)).permutation(count)


def _group_starts(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.cumsum(counts) - counts


def _ranks_in_groups(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """For groups of the given sizes laid end to end: each item's index inside its group."""
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(_group_starts(counts), counts)


def walk_clusters(
    samples_per_shard: NDArray[np.int64],
    shard_offsets: NDArray[np.int64],
    *,
    seed: int,
    cluster_ids: NDArray[np.int64],
    shard_ranges: NDArray[np.int64],
    cluster_sizes: NDArray[np.int64],
    starts: NDArray[np.int64],
    stops: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Runs ``(global_sample_start, length)`` covering walk positions ``[starts[i], stops[i])`` of
    cluster ``cluster_ids[i]``, in cluster order, then walk order. Every run lies inside one shard.

    ``shard_ranges[i]`` is ``(first, last + 1)``, the shards of ``cluster_ids[i]``, and
    ``cluster_sizes[i]`` their total samples; ``shard_offsets`` is each shard's first global sample id. Only the passes touched are generated:
    O(sum_i (passes_i * S_i)) work, one generator per touched pass of a multi-shard cluster.
    """
    seed = _check_seed(seed)
    spans = np.asarray(shard_ranges, dtype=np.int64).reshape(-1, 2)
    starts = np.asarray(starts, dtype=np.int64)
    stops = np.asarray(stops, dtype=np.int64)
    cluster_ids = np.asarray(cluster_ids, dtype=np.int64)
    if (starts < 0).any() or (stops <= starts).any():
        raise ConfigError("walk ranges need 0 <= start < stop for every cluster")
    sizes = np.asarray(cluster_sizes, dtype=np.int64)
    first, num_shards = spans[:, 0], spans[:, 1] - spans[:, 0]

    # One row per (cluster, pass) touched.
    first_pass = starts // sizes
    num_passes = (stops - 1) // sizes - first_pass + 1
    pass_cluster = np.repeat(np.arange(len(sizes)), num_passes)
    pass_index = first_pass[pass_cluster] + _ranks_in_groups(num_passes)

    # One row per (cluster, pass, shard), shards in the pass's order.
    shards_per_pass = num_shards[pass_cluster]
    local = _ranks_in_groups(shards_per_pass)
    row_start = _group_starts(shards_per_pass)
    for row in np.flatnonzero(shards_per_pass > 1).tolist():
        cluster = int(pass_cluster[row])
        count = int(shards_per_pass[row])
        local[row_start[row]:row_start[row] + count] = _permutation(
            count, seed, int(cluster_ids[cluster]), int(pass_index[row]))
    row_pass = np.repeat(np.arange(len(pass_cluster)), shards_per_pass)
    row_cluster = pass_cluster[row_pass]
    shard = first[row_cluster] + local
    length = samples_per_shard[shard]
    done = np.cumsum(length) - length
    within_pass = done - np.repeat(done[row_start], shards_per_pass)
    position = pass_index[row_pass] * sizes[row_cluster] + within_pass

    low = np.maximum(position, starts[row_cluster])
    high = np.minimum(position + length, stops[row_cluster])
    keep = high > low
    run_start = shard_offsets[shard[keep]] + (low[keep] - position[keep])
    return run_start, (high - low)[keep]


def walk_cluster(
    samples_per_shard: NDArray[np.int64],
    shard_offsets: NDArray[np.int64],
    *,
    seed: int,
    cluster_id: int,
    start: int,
    stop: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Runs ``(global_sample_start, length)`` for walk positions ``[start, stop)`` of one cluster.

    ``samples_per_shard`` and ``shard_offsets`` describe only this cluster's shards, in shard-id order.
    """
    sizes = np.asarray(samples_per_shard, dtype=np.int64)
    offsets = np.asarray(shard_offsets, dtype=np.int64)
    if sizes.ndim != 1 or sizes.shape != offsets.shape or sizes.size == 0 or (sizes < 1).any():
        raise ConfigError("a cluster needs one or more non-empty shards, with one offset per shard")
    if not 0 <= start <= stop:
        raise ConfigError(f"walk positions need 0 <= start <= stop, got {start=}, {stop=}")
    if start == stop:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return walk_clusters(
        sizes, offsets, seed=seed, cluster_ids=np.array([cluster_id]), shard_ranges=np.array([[0, len(sizes)]]),
        cluster_sizes=np.array([sizes.sum()]), starts=np.array([start]), stops=np.array([stop]),
    )
