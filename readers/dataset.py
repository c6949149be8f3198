"""``ClusterClipDataset``: MosaicML Streaming's dataset, sampling a streamclip dataset by plan.

The only thing replaced is what an epoch contains: ``resample_streams`` returns the plan
engine's segment for that epoch. Partitioning over nodes, ranks and workers, the shuffle,
mid-epoch resume and elastic determinism stay the stock ones, so they keep their guarantees:
with the same ``num_canonical_nodes`` and global batch size, every layout of nodes x ranks x
workers sees the same sequence of global batches.

An "epoch" here is a fixed-size segment of the run (``epoch_size`` draws). The plan for
segment e is a pure function of (manifest, strategy, seed, budget, e), so a checkpoint needs
nothing beyond the stock ``{epoch, sample_in_epoch}`` and a fingerprint that refuses to resume
under another plan.

Two stock behaviours are tightened for object storage: shards are checked against their
xxh64 hash by default (``validate_hash="xxh64"``; streamclip writes it for every shard), and a
shard that fails to download or validate in a background thread raises ``ShardError`` from the
iterator; stock streaming only logs it and ends the epoch early, so a run would silently
train on fewer samples. And a forked DataLoader worker drops the S3 client it inherits from the
parent (which downloaded ``index.json`` with it): sharing its pooled connection across
processes interleaves responses, which stalled epochs for a whole ``download_timeout``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
import time
import warnings
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, get_args

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import CacheTooSmall, ConfigError, ManifestError, PlanInfeasible, ResumeMismatch, ShardError, StreamclipError
from streamclip.manifest import INDEX_NAME, Manifest, open_manifest
from streamclip.planning import check_weights_fit, resolve_budget
from streamclip.plan import ClusterLayout, RunSchedule, Strategy, num_segments, plan_segment, strategy_from_spec
from streamclip.readers.cachefit import CacheFit, check_block_size, check_layout, epoch_shapes, fit_block_size, workers_shortfall
from streamclip.readers.compat import StreamingDataset, _ShardState, bytes_to_int
from streamclip.readers.fastiter import check_keyable, iter_spans, prepare_spans, ready_spans, stop_iteration
from streamclip.readers.localdir import guard_streams, refuse_damaged_raw, refuse_planted_files
from streamclip.readers.reserve import cache_lock, prepare_shard_reserved
from streamclip.readers.s3endpoint import endpoint_env, use_endpoint
from streamclip.readers.shmprefix import release_when_collected, serialised_prefix

STATE_KEY = "streamclip"
logger = logging.getLogger(__name__)
READ_PATHS = ("fast", "stock")


_LIVE: weakref.WeakSet[ClusterClipDataset] = weakref.WeakSet()


def _drop_inherited_s3_clients() -> None:
    """In a forked child, forget the parent's boto3 clients; each process then opens its own connections."""
    from streamclip.readers.compat import S3Downloader

    for dataset in list(_LIVE):
        for stream in getattr(dataset, "streams", ()):
            if isinstance(getattr(stream, "_downloader", None), S3Downloader):
                stream._downloader._s3_client = None


os.register_at_fork(after_in_child=_drop_inherited_s3_clients)


def plan_fingerprint(manifest: Manifest, strategy: Strategy, *, seed: int, total_samples: int, epoch_size: int) -> str:
    """Identifies a run's whole plan: two runs with equal fingerprints draw the same samples."""
    blob = json.dumps(
        {"dataset": manifest.fingerprint(), "strategy": strategy.to_dict(), "seed": seed, "total_samples": total_samples, "epoch_size": epoch_size},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _is_url(location: str | None) -> bool:
    return location is not None and "://" in location


def _check_arguments(*, remote: str | None, local: str | None, strategy: Any, read_path: str, cache_workers: int,
                     kwargs: dict[str, Any]) -> None:
    """Refuse at construction what stock streaming or the plan would only trip over at the first iteration."""
    if read_path not in READ_PATHS:
        raise ConfigError(f"read_path must be one of {', '.join(map(repr, READ_PATHS))}, got read_path={read_path!r}")
    if not isinstance(cache_workers, int) or isinstance(cache_workers, bool) or cache_workers < 1:
        raise ConfigError(f"cache_workers is the DataLoader's num_workers the cache is fitted for (1 or more), got cache_workers={cache_workers!r}")
    if not isinstance(strategy, (str, *get_args(Strategy))):
        raise ConfigError(f"strategy={strategy!r} is not a strategy: pass a name ('clusterclip', ...) or a streamclip.plan strategy object")
    for name in ("streams", "sampling_method", "sampling_granularity"):
        if name in kwargs:
            raise ConfigError(f"ClusterClipDataset does not take {name}=; one streamclip dataset is one stream, and the plan decides each epoch")
    if kwargs.get("batching_method", "random") != "random":
        raise ConfigError(f"ClusterClipDataset supports batching_method='random' only, got batching_method={kwargs['batching_method']!r}")
    batch_size = kwargs.get("batch_size")
    if batch_size is not None and (not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1):
        raise ConfigError(f"batch_size is the per-rank batch size (1 or more), got batch_size={batch_size!r}")
    if remote is None and local is None:
        raise ConfigError("give the dataset location: local=DIR, or remote=s3://... with local=CACHE_DIR")
    if kwargs.get("cache_limit"):
        if batch_size is None:
            raise ConfigError(f"cache_limit={kwargs['cache_limit']!r} needs batch_size: the cache is fitted batch by batch; "
                              "pass batch_size= (the DataLoader's per-rank batch size)")
        same = remote is None or (not _is_url(remote) and local is not None and os.path.realpath(remote) == os.path.realpath(local))
        if same:
            raise ConfigError(
                f"cache_limit={kwargs['cache_limit']!r} evicts shards from local; without a separate remote they would be deleted "
                "for good. Give remote= (where the shards are kept) and a cache directory as local=, or drop cache_limit"
            )


class ClusterClipDataset(StreamingDataset):
    """A ``StreamingDataset`` over a streamclip dataset that samples clusters by a strategy.

    ``strategy`` is a strategy object (``streamclip.plan.ClusterClip(clip=4)``) or a name with
    ``strategy_params`` (``"clusterclip", {"clip": 4}``). The budget is ``total_samples`` or
    ``epochs`` x ``epoch_size`` (default: one corpus' worth per epoch). ``seed`` drives both the plan
    and the stock shuffle. Every other keyword goes to ``StreamingDataset`` unchanged
    (``batch_size``, ``num_canonical_nodes``, ``shuffle_block_size``, ``cache_limit``, ``predownload``...).
    Each sample is the stored row: ``text``, ``cluster`` and any kept columns.

    ``remote="s3://bucket/prefix"`` with ``local=CACHE_DIR`` streams from object storage; the
    manifest is read from the remote. The endpoint of an S3-compatible store comes from
    ``S3_ENDPOINT_URL``, or from ``s3_endpoint_url=`` for this dataset only (``s3endpoint``: the
    process environment is left as it was). A ``cache_limit`` below what streaming can work with
    fails here (``CacheTooSmall``, with the minimum). A local directory holding a symlink or
    special file among ``shard.*`` / ``*.tmp`` names is refused (``localdir``). Under a ``cache_limit`` the shuffle block is fitted so
    the shards in flight fit (``streamclip.readers.cachefit``) for ``cache_workers`` DataLoader
    workers per rank (default 1): set it to the loader's ``num_workers``. It shapes the sample
    order, as the block does, so keep it when resuming; the order never depends on how many
    workers really run.

    ``read_path="fast"`` (default) reads an epoch's samples in spans from memory-mapped shards
    (``streamclip.readers.fastiter``): the same samples in the same order as ``read_path="stock"``,
    streaming's per-sample read, which opens the shard file for every sample.
    """

    def __init__(
        self, *, remote: str | None = None, local: str | None = None, strategy: Strategy | str = "clusterclip",
        strategy_params: dict[str, Any] | None = None, total_samples: int | None = None, epochs: int | None = None,
        epoch_size: int | None = None, seed: int = 0, shuffle: bool = True, s3_endpoint_url: str | None = None,
        read_path: str = "fast", cache_workers: int = 1, **kwargs: Any,
    ) -> None:
        _check_arguments(remote=remote, local=local, strategy=strategy, read_path=read_path, cache_workers=cache_workers, kwargs=kwargs)
        self.read_path = read_path
        self.cache_workers = cache_workers
        self.s3_endpoint_url = s3_endpoint_url
        with endpoint_env(s3_endpoint_url):
            self.manifest = open_manifest(remote if remote is not None else local)  # type: ignore[arg-type]
        if isinstance(strategy, str):
            strategy = strategy_from_spec(strategy, **(strategy_params or {}))
        elif strategy_params:
            raise ConfigError(f"strategy_params={strategy_params!r} is only for a strategy given by name: pass strategy='NAME' with it, or drop it")
        with endpoint_env(s3_endpoint_url):
            check_weights_fit(strategy, remote if remote is not None else local, self.manifest)  # type: ignore[arg-type]
        self.strategy = strategy
        self.plan_seed = seed
        self.total_samples, size = resolve_budget(self.manifest.num_documents, total_samples=total_samples, epochs=epochs, epoch_size=epoch_size)
        self.layout = ClusterLayout.from_shards(self.manifest.samples_per_shard, self.manifest.shard_ranges)
        self.schedule = RunSchedule(self.layout.cluster_sizes, strategy, self.total_samples)
        self.num_epochs = num_segments(self.total_samples, size)
        self.fingerprint = plan_fingerprint(self.manifest, strategy, seed=seed, total_samples=self.total_samples, epoch_size=size)
        kwargs.setdefault("shuffle_seed", seed)
        kwargs.setdefault("validate_hash", "xxh64")
        cache_limit = kwargs.pop("cache_limit", None)  # checked here once the shards are known (stock's check would say less)
        if local is not None:
            refuse_planted_files(os.path.join(local, kwargs.get("split") or ""))
        with endpoint_env(s3_endpoint_url), serialised_prefix():
            super().__init__(remote=remote, local=local, epoch_size=size, shuffle=shuffle, **kwargs)
        release_when_collected(self)
        use_endpoint(self.streams, s3_endpoint_url)
        guard_streams(self.streams)
        self.cache_limit = bytes_to_int(cache_limit) if cache_limit else None
        if self.cache_limit:
            self._check_cache_limit(cache_limit)
            check_keyable(self.num_epochs, self.epoch_size)
        _LIVE.add(self)
        self._check_index_matches()
        self.cache_fit: CacheFit | None = None
        if self.cache_limit:
            self.cache_fit = self._fit_cache(block_given="shuffle_block_size" in kwargs and kwargs["shuffle_block_size"] is not None)

    def _check_cache_limit(self, given: int | str) -> None:
        """Stock streaming's floor for ``cache_limit`` (4 x the largest shard, raw + zip, and more than the
        index), checked here so the error says the minimum (stock's checks are skipped: it gets no limit)."""
        largest = max(shard.get_max_size() for shard in self.shards)
        index = sum(stream.get_index_size() for stream in self.streams)
        minimum = max(4 * largest, index + 1)
        if self.cache_limit < minimum:
            raise CacheTooSmall(
                f"cache_limit={given!r} is too small for {self.manifest.location}: the minimum is {minimum} bytes "
                f"(4 x the largest shard, {largest} bytes raw + compressed); what the plan reads at once is checked "
                "next, and needs more when many clusters are mixed",
                minimum_bytes=minimum,
            )

    def _fit_cache(self, *, block_given: bool) -> CacheFit:
        """Pick the shuffle block that keeps every epoch's shards in flight within ``cache_limit`` (``cachefit``),
        or check the given one; a cache that cannot hold one worker's window fails here, with the minimum.

        The block is fitted on a reference layout, one node of one rank with ``cache_workers`` workers, so every
        layout with these settings draws the same batches; this layout is then checked with it (a node with more
        ranks holds more shards, and is refused with the minimum for that block). Only epochs whose mix differs
        are measured (``epoch_shapes``): each costs a shuffle per block tried."""
        world = self._parallel_rank_world
        ncn = self.num_canonical_nodes or (64 * world.num_nodes if self.shuffle_algo in ("py1s", "py2s") else world.num_nodes)
        default = self.shuffle_block_size if block_given else _default_block(ncn)
        epochs = epoch_shapes(self)
        reference = dict(num_nodes=1, ranks_per_node=1, workers_per_rank=self.cache_workers, num_canonical_nodes=ncn)
        physical = dict(reference, num_nodes=world.num_nodes, ranks_per_node=world.ranks_per_node)
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Shuffle block size was smaller")
            if block_given or not self.shuffle:
                fit = check_block_size(self, default, epochs=epochs, **physical)
            else:
                fit = fit_block_size(self, default_block=default, epochs=epochs, **reference)
                if physical != reference:
                    check_layout(self, fit.block_size, epochs=epochs, **physical)
        if block_given or not self.shuffle:
            return fit
        self.shuffle_block_size = fit.block_size
        if fit.block_size != default and not world.rank:
            logger.info("cache_limit=%d: shuffle_block_size=%d keeps %d shards in flight (%d bytes) over epochs %s; found in "
                        "%.1fs, pass shuffle_block_size=%d to skip the search", self.cache_limit, fit.block_size, fit.shards,
                        fit.bytes, epochs, time.perf_counter() - began, fit.block_size)
        return fit

    def _share_work(self, sample_ids: NDArray[np.int64]):  # noqa: ANN202 (stock's tuple of shared memories)
        """Stock ``_share_work`` (in the node's leader worker, once the world is known), after checking once
        that the node's workers together fit the cache; a warning, since raising here would strand the other
        workers at streaming's barrier."""
        if self.cache_fit is not None and not getattr(self, "_cache_checked", False):
            self._cache_checked = True
            world = self._parallel_worker_world
            shortfall = workers_shortfall(self, sample_ids, node=world.node, ranks_per_node=world.ranks_per_node,
                                          workers_per_rank=world.workers_per_rank)
            if shortfall:
                warnings.warn(shortfall, stacklevel=2)
        return super()._share_work(sample_ids)

    def prepare_shard(self, shard_id: int, blocking: bool = True) -> None:
        """Stock ``prepare_shard``, with a download's space reserved before it starts (``reserve``).

        A failure (download, hash, decompression) becomes a ``ShardError`` naming the shard, and the
        shard goes back to REMOTE: stock leaves it PREPARING, and a reader waiting on it then waits forever.
        """
        try:
            prepare_shard_reserved(self, shard_id, blocking, fallback=super().prepare_shard)
        except BaseException as e:
            self._unmark_preparing(shard_id)
            if isinstance(e, StreamclipError) or not isinstance(e, Exception):
                raise
            raise ShardError(f"{self._shard_names(shard_id)}: {type(e).__name__}: {e}") from e

    def _unmark_preparing(self, shard_id: int) -> None:
        """PREPARING -> REMOTE under the cache lock: the caller's own preparation failed (only it set PREPARING)."""
        with cache_lock(self):
            if self._shard_states[shard_id] == _ShardState.PREPARING:
                self._shard_states[shard_id] = _ShardState.REMOTE

    def _shard_names(self, shard_id: int) -> str:
        """``LOCATION: shard N (shard.N.mds.zstd)``, the files a shard error is about."""
        shard = self.shards[shard_id]
        files = ", ".join(info.basename for pair in shard.file_pairs for info in pair if info is not None)
        return f"{self.manifest.location}: shard {shard_id} ({files})"

    def _check_index_matches(self) -> None:
        """The index streaming actually uses must be the one the manifest describes (a stale cache shadows the
        remote), in a directory with nothing planted among its shard names and no decompressed shard of the wrong
        size (``localdir``)."""
        stream = self.streams[0]
        directory = os.path.join(stream.local, stream.split or "")
        refuse_planted_files(directory)
        path = os.path.join(directory, INDEX_NAME)
        with open(path, "rb") as f:
            found = hashlib.sha256(f.read()).hexdigest()
        if found != self.manifest.index_sha256:
            raise ManifestError(
                f"{path} is not the index of {self.manifest.location} (sha256 {found[:12]}…, manifest expects "
                f"{self.manifest.index_sha256[:12]}…): the local cache holds another dataset; use an empty local directory"
            )
        refuse_damaged_raw(directory, self.shards)
        if not np.array_equal(np.asarray(self.samples_per_shard, dtype=np.int64), self.manifest.samples_per_shard):
            raise ManifestError(f"{path}: shard sizes differ from the manifest of {self.manifest.location}")

    def __iter__(self):  # -> Iterator[dict[str, Any]]
        """One epoch; a shard that fails in a background thread of this epoch raises ``ShardError`` here."""
        if self.read_path == "fast":
            it = yield from iter_spans(self)
        else:
            stop_iteration(getattr(self, "_iterator", None))
            if hasattr(self, "_event"):
                self._event.clear()  # the previous epoch's failure was its own (stock would refuse every later epoch)
            own = None  # this epoch's iterator: a later epoch may have replaced self._iterator by the time this one ends
            try:
                for sample in super().__iter__():
                    if own is None:
                        own = self._iterator
                    yield sample
            finally:  # stock stops its threads only when the next epoch starts
                it = own if own is not None else getattr(self, "_iterator", None)
                stop_iteration(it)
        raise_background_error(self, it)

    def on_exception(self, future: Any) -> None:
        """Nothing: ``_guarded`` already stopped the failing epoch (stock's callback would also stop the next one)."""

    def _prepare_thread(self, it: Any) -> None:
        self._guarded(super()._prepare_thread if self.read_path == "stock" else partial(prepare_spans, self), it)

    def _ready_thread(self, it: Any) -> None:
        self._guarded(super()._ready_thread if self.read_path == "stock" else partial(ready_spans, self), it)

    def _guarded(self, thread: Callable[[Any], None], it: Any) -> None:
        """Run a background thread body, keeping its error on its own iteration (stock only logs it): a thread
        of an abandoned epoch can then never fail the next one. It still counts as exited, so ``exit()`` returns."""
        try:
            thread(it)
        except BaseException as e:
            it.background_error = getattr(it, "background_error", None) or e
            if getattr(self, "_iterator", None) is it:
                self._event.set()  # the other threads of this epoch stop
            it.on_exit()
            raise

    def resample_streams(self, epoch: int, stream_id: int | None = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """This epoch's segment of the plan: ``(shuffle_units, sample_ids)``; runs in the node's leader worker."""
        if epoch >= self.num_epochs:
            raise PlanInfeasible(
                f"epoch {epoch} is past the planned run: total_samples={self.total_samples} is {self.num_epochs} epoch(s) of "
                f"{self.epoch_size}; build the dataset with a larger total_samples or epochs",
                max_total_samples=self.total_samples,
            )
        return plan_segment(self.layout, self.schedule, seed=self.plan_seed, epoch_size=self.epoch_size, epoch=epoch)

    def state_dict(self, num_samples: int, from_beginning: bool) -> dict[str, Any]:
        """The stock resume state plus what identifies the plan (small: checkpoints stay well under 4 KiB).

        The block saved is the effective one, stock's default when none was set, so the checkpoint pins the
        interrupted epoch's order whichever cache (or fitted block) it is resumed under."""
        state = super().state_dict(num_samples, from_beginning)
        block = self.shuffle_block_size if self.shuffle_block_size is not None else _default_block(state["num_canonical_nodes"])
        state[STATE_KEY] = {**self._plan_identity(), "shuffle_block_size": int(block)}
        return state

    def _plan_identity(self) -> dict[str, Any]:
        strategy = json.dumps(self.strategy.to_dict(), sort_keys=True)
        return {
            "fingerprint": self.fingerprint, "dataset": self.manifest.fingerprint(),
            "strategy": self.strategy.to_dict()["name"], "strategy_sha": hashlib.sha256(strategy.encode()).hexdigest()[:16],
            "seed": self.plan_seed, "total_samples": self.total_samples, "epoch_size": self.epoch_size,
        }

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        """Resume from ``obj``; refuses a checkpoint of another dataset, strategy, seed or budget, and one whose
        position is not a valid one of this run (``ResumeMismatch`` naming the field, its value and the range).

        As with stock streaming, call it on a fresh dataset before iterating: after an
        iteration in this process the checkpoint is taken for a stale one and ignored.
        """
        obj = dict(obj)
        ours = obj.pop(STATE_KEY, None)
        if not isinstance(ours, dict):
            raise ResumeMismatch("this checkpoint has no streamclip plan fingerprint: it was not taken from a ClusterClipDataset")
        if ours.get("fingerprint") != self.fingerprint:
            raise ResumeMismatch(_describe_mismatch(ours, self))
        ncn = _checked_int(obj, "num_canonical_nodes", 1, max(self.epoch_size, 1))
        _checked_int(obj, "epoch", -1, self.num_epochs - 1, why=f"the run has {self.num_epochs} epoch(s); -1: taken before the first")
        # A finished epoch counts its padding too: stock pads to a multiple of canonical nodes x global batch.
        unit = ncn * (self.batch_size or 1) * self._parallel_rank_world.num_ranks
        _checked_int(obj, "sample_in_epoch", 0, -(-self.epoch_size // unit) * unit, why=f"epoch_size={self.epoch_size}, with stock's padding")
        _checked_int(obj, "shuffle_seed", 0, 2**63 - 1)
        if obj.get("initial_physical_nodes") is not None:
            _checked_int(obj, "initial_physical_nodes", 1, 2**31)
        block = ours.get("shuffle_block_size")
        # The order of the interrupted epoch: its block may have been fitted to another cache (None: stock's default).
        self.shuffle_block_size = _default_block(ncn) if block is None else _checked_int(ours, "shuffle_block_size", 1, 2**62)
        super().load_state_dict(obj)
        self._loaded_state = obj  # pickled into the workers with the dataset: see _resume

    def _resume(self, world: Any, epoch: int) -> tuple[int, int]:
        """Stock's resume, which reads the checkpoint from shared memory; if that memory is gone although this
        dataset loaded a checkpoint for this epoch, resume from the copy the dataset carries.

        Stock takes a missing resume memory for "nothing to resume" and silently restarts the epoch. It goes
        missing when a DataLoader abandoned mid-epoch still has workers exiting as the next dataset on the same
        local directory is built in this process: that dataset reuses the shared-memory prefix, and an exiting
        worker can unlink the name. The values applied are stock's (``StreamingDataset._resume`` in 0.13).
        """
        resumed = super()._resume(world, epoch)
        state = getattr(self, "_loaded_state", None)
        if state is None or state["epoch"] < epoch or resumed == (state["epoch"], state["sample_in_epoch"]):
            return resumed
        self.num_canonical_nodes = state["num_canonical_nodes"]
        self.shuffle_seed = state["shuffle_seed"]
        self.initial_physical_nodes = state.get("initial_physical_nodes")
        self._set_shuffle_block_size(world)
        return state["epoch"], state["sample_in_epoch"]


def raise_background_error(ds: ClusterClipDataset, it: Any) -> None:
    """Raise ``ShardError`` if a background thread of iteration ``it`` failed: stock would end the epoch early."""
    error = getattr(it, "background_error", None)
    if error is None:
        return
    raise ShardError(
        f"{ds.manifest.location}: the epoch stopped early because a shard failed in the background: "
        f"{type(error).__name__}: {error}. Samples yielded so far are valid; resume from the last checkpoint "
        "once the store is reachable (a hash failure means the stored object is damaged: convert again)"
    ) from error


def _default_block(num_canonical_nodes: int | None) -> int:
    """Stock's shuffle block when none is given (streaming 0.13 ``_set_shuffle_block_size``)."""
    return max(4_000_000 // num_canonical_nodes, 1 << 18) if num_canonical_nodes else 1 << 18


def _checked_int(state: dict[str, Any], field: str, low: int, high: int, why: str = "") -> int:
    """``state[field]`` if it is an int in ``[low, high]``, else ``ResumeMismatch`` naming the field, the value and the range."""
    value = state.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ResumeMismatch(
            f"checkpoint field {field}={value!r} is not valid: it must be an integer in [{low}, {high}]"
            + (f" ({why})" if why else "") + ". The checkpoint was edited or damaged; resume from another one"
        )
    return int(value)


def _describe_mismatch(saved: dict[str, Any], current: ClusterClipDataset) -> str:
    expected = current._plan_identity()
    differences = [f"{key}: found {saved.get(key)!r}, expected {value!r}" for key, value in expected.items() if key != "fingerprint" and saved.get(key) != value]
    return (
        f"checkpoint plan {saved.get('fingerprint')} does not match this dataset's plan {current.fingerprint} ("
        + "; ".join(differences or ["unknown difference"]) + "). Resume with the dataset, strategy, seed and budget of the checkpoint."
    )
