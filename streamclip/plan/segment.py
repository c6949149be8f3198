"""One segment (StreamingDataset epoch) of the run as ``(shuffle_units, sample_ids)``.

Segment e holds the run's draws ``[e*E, min((e+1)*E, T))``. Per cluster that is the count
difference ``counts_at(e*E) .. counts_at(end)``, walked from the cluster's count at the segment
start, so a segment depends on ``(layout, schedule, seed, e)`` only: no history, no state, and the
same cost for segment 0 and segment 10^6. The output is what ``StreamingDataset.resample_streams``
returns: int64 ids plus the run lengths laid over them, each run inside one shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike, NDArray

from streamclip.errors import ConfigError
from streamclip.plan.counts import counts_at
from streamclip.plan.schedule import RunSchedule
from streamclip.plan.walk import walk_clusters

__all__ = ["ClusterLayout", "num_segments", "plan_segment"]


def _frozen_int64(values: ArrayLike, what: str) -> NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{what} must be integers, got dtype {arr.dtype}")
    out = arr.astype(np.int64, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True, eq=False)
class ClusterLayout:
    """Where each cluster lives: ``samples_per_shard`` (int64[S]) and ``shard_cluster_ranges``
    (int64[K, 2], cluster k owns shards ``[r0, r1)``), with derived ``shard_offsets`` (int64[S],
    the global id of each shard's first sample) and ``cluster_sizes`` (int64[K])."""

    samples_per_shard: NDArray[np.int64]
    shard_cluster_ranges: NDArray[np.int64]
    shard_offsets: NDArray[np.int64] = field(init=False, repr=False)
    cluster_sizes: NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sizes = _frozen_int64(self.samples_per_shard, "samples_per_shard")
        ranges = _frozen_int64(self.shard_cluster_ranges, "shard_cluster_ranges")
        if sizes.ndim != 1 or sizes.size == 0 or (sizes < 1).any():
            raise ConfigError("samples_per_shard must be a non-empty 1-D array of positive counts (no empty shards)")
        if ranges.ndim != 2 or ranges.shape[1] != 2 or ranges.shape[0] == 0:
            raise ConfigError(f"shard_cluster_ranges must have shape (K, 2) with K >= 1, got {ranges.shape}")
        if (ranges[:, 1] <= ranges[:, 0]).any():
            bad = int(np.flatnonzero(ranges[:, 1] <= ranges[:, 0])[0])
            raise ConfigError(f"cluster {bad} owns no shard: range {ranges[bad].tolist()}; every cluster needs one")
        gaps = np.flatnonzero(ranges[1:, 0] != ranges[:-1, 1])
        if ranges[0, 0] != 0 or ranges[-1, 1] != len(sizes) or gaps.size:
            where = (f"cluster {gaps[0]} ends at shard {ranges[gaps[0], 1]} but cluster {gaps[0] + 1} starts at "
                     f"{ranges[gaps[0] + 1, 0]}" if gaps.size else
                     f"they cover shards {ranges[0, 0]}..{ranges[-1, 1]}")
            raise ConfigError(f"cluster shard ranges must tile shards 0..{len(sizes)} contiguously in cluster order; {where}")
        ends = np.cumsum(sizes)
        offsets = ends - sizes
        cluster_sizes = ends[ranges[:, 1] - 1] - offsets[ranges[:, 0]]
        for name, value in (("samples_per_shard", sizes), ("shard_cluster_ranges", ranges),
                            ("shard_offsets", offsets), ("cluster_sizes", cluster_sizes)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    @classmethod
    def from_shards(cls, samples_per_shard: ArrayLike, shard_ranges: ArrayLike) -> ClusterLayout:
        """Build from any array-likes, e.g. lists read from a manifest: ``[[0, 3], [3, 4], ...]``."""
        return cls(np.asarray(samples_per_shard), np.asarray(shard_ranges))

    @property
    def num_clusters(self) -> int:
        return len(self.shard_cluster_ranges)

    @property
    def num_samples(self) -> int:
        return int(self.samples_per_shard.sum())


def _check_int(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def num_segments(total_samples: int, epoch_size: int) -> int:
    """How many segments (epochs) a run of ``total_samples`` draws has at ``epoch_size`` each."""
    return -(-_check_int(total_samples, "total_samples", 1) // _check_int(epoch_size, "epoch_size", 1))


def plan_segment(
    layout: ClusterLayout, schedule: RunSchedule, *, seed: int, epoch_size: int, epoch: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(shuffle_units, sample_ids)`` for segment ``epoch`` of the run: int64 run lengths and int64
    global sample ids with ``shuffle_units.sum() == len(sample_ids)``; the last segment may be short.

    Cost O(E + K + shards touched), independent of ``epoch``.
    """
    seed = _check_int(seed, "seed", 0)
    epoch_size = _check_int(epoch_size, "epoch_size", 1)
    epoch = _check_int(epoch, "epoch", 0)
    if not np.array_equal(layout.cluster_sizes, schedule.sizes):
        raise ConfigError(
            "the schedule was built for other cluster sizes than this layout's; "
            "build RunSchedule(layout.cluster_sizes, strategy, total_samples)"
        )
    total = schedule.total_samples
    begin = epoch * epoch_size
    if begin >= total:
        segments = num_segments(total, epoch_size)
        raise ConfigError(
            f"epoch={epoch} is beyond the run: total_samples={total} at epoch_size={epoch_size} makes "
            f"{segments} segments (epochs 0..{segments - 1})"
        )
    before = counts_at(schedule, begin)
    after = counts_at(schedule, min(begin + epoch_size, total))
    drawn = np.flatnonzero(after > before)
    run_start, run_length = walk_clusters(
        layout.samples_per_shard, layout.shard_offsets, seed=seed, cluster_ids=drawn,
        shard_ranges=layout.shard_cluster_ranges[drawn], cluster_sizes=layout.cluster_sizes[drawn],
        starts=before[drawn], stops=after[drawn],
    )
    return run_length, _expand_runs(run_start, run_length)


def _expand_runs(run_start: NDArray[np.int64], run_length: NDArray[np.int64]) -> NDArray[np.int64]:
    """Ids of consecutive runs, as a running sum of steps (1 inside a run, a jump between runs):
    one array of E int64 allocated, which matters at E = 1e8."""
    ids = np.ones(int(run_length.sum()), dtype=np.int64)
    if ids.size:
        first_index = np.cumsum(run_length[:-1])
        ids[0] = run_start[0]
        ids[first_index] = run_start[1:] - (run_start[:-1] + run_length[:-1] - 1)
        np.cumsum(ids, out=ids)
    return ids
