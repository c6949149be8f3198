"""The fast epoch iterator of ``ClusterClipDataset``: stock ``StreamingDataset.__iter__`` with span reads.

:func:`iter_spans` mirrors streaming 0.13's ``__iter__`` line for line (resume and epoch
increment, the node's shared work array, the ``_Iterator`` with its prepare and ready threads),
so which sample ids a worker yields, and in which order, is stock's. Three per-sample loops of
stock cost more than reading a sample and are replaced by equivalent loops over chunks of ids
(the dataset's ``_prepare_thread`` / ``_ready_thread`` call :func:`prepare_spans` / :func:`ready_spans`):

- the yield loop takes up to ``predownload`` ids from ``yield_index`` on at once (those the ready
  thread passed, then those whose shard is LOCAL: the ready thread's own test), skips -1 padding,
  decodes them with :class:`ShardSpanReader` and advances ``yield_index`` every few samples, so the
  prepare thread's ``predownload`` window still holds;
- the prepare thread calls stock ``prepare_shard`` (download, hash check, decompress, eviction)
  once per run of ids in one shard instead of once per id (it takes a file lock each time), and
  not at all for a shard it already prepared that is still LOCAL;
- the ready thread advances over a whole chunk of LOCAL shards at once, and prepares a shard again
  if it is evicted while the thread waits for it (stock waits forever there).

Eviction follows the plan, not the clock. Stock evicts the shard with the oldest access time; on
this path the "time" of a shard is the latest position in the node's sequence (batch by batch,
ranks and workers in turn, :func:`_node_keys`) at which any worker prepared it, so the shard
evicted is the one whose known uses are furthest behind, whichever worker runs ahead or lags,
and reads touch nothing. What a node must hold is then the shards between its slowest reader and
its furthest prepare thread (``cachefit.node_window``), not twice that as with stock's clock.
A shard just downloaded carries stock's clock stamp, larger than any position, until its key is set.
A shard evicted after it was ready is prepared again before it is read, as stock ``get_item`` does.
Under a cache limit, once a chunk is decoded the reader keeps only the mappings of LOCAL shards the
next chunk reads: the shards just read are the next the prepare thread evicts (their uses lie
behind), and an unlinked file keeps its blocks on disk while mapped, past ``cache_limit``. A shard
read again after a gap is mapped and parsed again (evicted meanwhile, it would be anyway).

However an iteration ends (exhausted, dropped, or an error in any thread), its prepare and ready
threads are stopped and joined before control returns (stock leaves them polling until the next
epoch). A background failure is kept on its own iteration (``it.background_error``), so a thread
of an abandoned epoch never fails the next one; each epoch starts with the stop event cleared.
A shard another thread is preparing is waited for without blocking (stock ``prepare_shard`` waits
for ever if that preparation failed), and every failure to read a shard is a ``ShardError`` naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Event
from time import sleep
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError, ShardError
from streamclip.readers.compat import TICK, _Iterator, _IterState, _ShardState
from streamclip.readers.spanread import ShardSpanReader

if TYPE_CHECKING:
    from streaming import StreamingDataset

__all__ = ["check_keyable", "iter_spans", "prepare_spans", "ready_spans", "shard_bounds", "shards_of", "stop_iteration"]

LOCAL = int(_ShardState.LOCAL)
REMOTE = int(_ShardState.REMOTE)
PREPARING = int(_ShardState.PREPARING)
ITERATING = int(_IterState.ITERATING)  # stock starts _state as a plain 0
# Ids handled per step of the background threads: large enough to amortise numpy, small enough
# that a step never holds the GIL for long.
CHUNK = 4096
# A mapping unused by this many shard lookups in a row is dropped (see ShardSpanReader.forget_unused).
KEEP_MAPPED = 256
RETRIES = 7
STEP = 64


# Eviction keys: epoch << EPOCH_SHIFT | node position. Stock's clock stamps (time_ns: above 2^60 for any
# date after 2006) and NEVER lie above CLOCK, so a key never mistakes one for a position. That leaves
# 2^36 positions per node and epoch and 2^24 epochs; check_keyable refuses a run beyond either.
EPOCH_SHIFT = 36
CLOCK = 1 << 60
KEYED_EPOCHS = CLOCK >> EPOCH_SHIFT


def check_keyable(num_epochs: int, epoch_size: int) -> None:
    """Refuse, under a cache limit, a run whose eviction keys would reach the clock range (the eviction
    order would then mix positions with clock stamps)."""
    if num_epochs > KEYED_EPOCHS:
        raise ConfigError(f"cache_limit: the run has {num_epochs} epochs, more than the {KEYED_EPOCHS} the cache's eviction "
                          "order can tell apart; raise epoch_size (fewer, longer epochs) or drop cache_limit")
    if epoch_size >= 1 << EPOCH_SHIFT:
        raise ConfigError(f"cache_limit: epoch_size={epoch_size} is over the {1 << EPOCH_SHIFT} samples per epoch the cache's "
                          "eviction order can tell apart; lower epoch_size or drop cache_limit")


def _node_keys(ds: StreamingDataset, it: _Iterator, positions: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Eviction keys of this worker's ``positions``: where they fall in the node's sequence of the epoch."""
    world = ds._parallel_worker_world
    batch, offset = np.divmod(positions, ds.batch_size)
    node = ((batch * world.ranks_per_node + world.rank_of_node) * world.workers_per_rank + world.worker_of_rank) * ds.batch_size + offset
    return (node + it.key_base).astype(np.uint64)


def _raise_keys(ds: StreamingDataset, shard_ids: NDArray[np.int64], keys: NDArray[np.uint64]) -> None:
    """Keys only grow while a shard is cached (a lagging worker must not make another's shard look old);
    a clock stamp (just downloaded) or NEVER (evicted) is replaced. Racy across processes by design,
    like stock's touches: a lost update changes which shard is evicted first, never what is read."""
    times = ds._shard_access_times.numpy()
    old = times[shard_ids]
    times[shard_ids] = np.where(old >= CLOCK, keys, np.maximum(old, keys))


def _touch_chunk(ds: StreamingDataset, it: _Iterator, begin: int, positions: NDArray[np.int64], shard_ids: NDArray[np.int64]) -> None:
    """Key each LOCAL shard of a prepared chunk by its last position there (only a cache limit evicts)."""
    if not ds.cache_limit:
        return
    last = len(shard_ids) - 1 - np.unique(shard_ids[::-1], return_index=True)[1]
    shards = shard_ids[last]
    local = ds._shard_states.numpy()[shards] == LOCAL
    _raise_keys(ds, shards[local], _node_keys(ds, it, begin + positions[last[local]]))


def _touch_one(ds: StreamingDataset, it: _Iterator, shard_id: int, position: int) -> None:
    _raise_keys(ds, np.array([shard_id]), _node_keys(ds, it, np.array([position])))


def iter_spans(ds: StreamingDataset) -> Iterator[dict[str, Any]]:  # returns its _Iterator (None: no work)
    """One worker's samples of the next epoch, exactly as stock ``StreamingDataset.__iter__`` yields them."""
    stop_iteration(getattr(ds, "_iterator", None))
    if not hasattr(ds, "_event"):
        ds._event = Event()
    ds._event.clear()  # a failure of the previous epoch belonged to it (raised there, or dropped with it)
    ds._unique_worker_world = ds._unique_rank_world.detect_workers()
    ds._parallel_worker_world = ds._parallel_rank_world.detect_workers()
    epoch, sample_in_epoch = ds._resume_incr_epoch()
    sample_ids = ds._get_work(epoch, sample_in_epoch)
    if not len(sample_ids):
        return None
    ds._iterator = it = _Iterator(sample_ids)
    # Positions restart each epoch (and at a resume, the same for every worker); the epoch keeps keys ordered.
    it.key_base = epoch << EPOCH_SHIFT
    it.background_error = None
    # The threads of this iteration only: joined when it ends (see stop_iteration).
    it.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="streamclip-reader")
    it.executor.submit(ds._prepare_thread, it)  # the dataset picks prepare_spans for the fast path
    it.executor.submit(ds._ready_thread, it)  # ... and ready_spans
    reader = ShardSpanReader(ds.shards)
    try:
        yield from _yield_spans(ds, it, shard_bounds(ds), reader)
    finally:  # exhausted, dropped or failed alike
        reader.release()
        it.on_exit()
        stop_iteration(it)
    return it


def stop_iteration(it: _Iterator | None) -> None:
    """Stop an iteration's prepare and ready threads and wait until they have ended (their errors stay on ``it``)."""
    if it is None:
        return
    it.non_blocking_exit()
    executor = getattr(it, "executor", None)
    if executor is not None:  # the fast path's own threads: joined
        executor.shutdown(wait=True)
        it.exit()
        return
    # Stock's threads share the dataset's pool: wait for both to note their exit (``_guarded`` notes a failure too).
    while it._state != _IterState.EXITED and it._num_exited < it._num_threads_to_exit:
        sleep(TICK)


def shard_bounds(ds: StreamingDataset) -> NDArray[np.int64]:
    """Global id of each shard's first sample, then the total: shard of id i is ``searchsorted(bounds, i, 'right') - 1``."""
    return np.concatenate([[0], np.cumsum(ds.samples_per_shard)]).astype(np.int64)


def shards_of(bounds: NDArray[np.int64], ids: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.searchsorted(bounds, ids, side="right") - 1


def _window(ds: StreamingDataset, it: _Iterator, begin: int) -> int:
    """End of the next chunk from ``begin``: stock lets a thread run ``predownload`` ids past ``yield_index``."""
    stop = min(it.total, begin + CHUNK)
    if ds.predownload is not None:
        stop = min(stop, it.yield_index + ds.predownload + 1)
    return stop


def _yield_spans(ds: StreamingDataset, it: _Iterator, bounds: NDArray[np.int64], reader: ShardSpanReader) -> Iterator[dict[str, Any]]:
    """Stock ``map(ds.__getitem__, ds._each_sample_id(it))``, a chunk of ready ids at a time."""
    chunk = max(1, ds.predownload or CHUNK)
    while True:
        if it.should_exit() or it.yield_index == it.total or ds._event.is_set():
            break
        begin = it.yield_index
        ids = it.sample_ids[begin : min(it.total, begin + chunk)]
        positions = np.flatnonzero(ids >= 0)
        shard_ids = shards_of(bounds, ids[positions])
        # Ready: before the ready thread's index (an eviction since is repaired by _make_current, as
        # stock get_item does), or beyond it with its shard LOCAL, the ready thread's own test.
        unchecked = np.searchsorted(positions, it.ready_index - begin)
        not_local = unchecked + np.flatnonzero(ds._shard_states.numpy()[shard_ids[unchecked:]] != LOCAL)
        if len(not_local):  # Yield up to the first id whose shard is not ready, like stock.
            end = int(positions[not_local[0]])
            if end == 0:
                sleep(TICK)
                continue
            positions, shard_ids = positions[: not_local[0]], shard_ids[: not_local[0]]
        else:
            end = len(ids)
        samples = _read(ds, it, reader, shard_ids, ids[positions] - bounds[shard_ids])
        if ds.cache_limit:  # decoded: the prepare thread may now evict these shards, and a mapped file keeps its blocks
            upcoming = it.sample_ids[begin + end : begin + end + chunk]
            reader.forget_stale(ds._shard_states.numpy() != LOCAL, keep=shards_of(bounds, upcoming[upcoming >= 0]))
        # Stock advances yield_index per sample; per STEP samples keeps the prepare thread's
        # predownload pacing (it is all the index is for) at a fraction of the cost.
        for first in range(0, len(samples), STEP):
            it.yield_index = begin + int(positions[first])
            for sample in samples[first : first + STEP]:
                if it._state != ITERATING:  # a new epoch began (stock checks before each sample too); no lock: one read
                    return
                yield sample
        it.yield_index = begin + end
        reader.forget_unused(KEEP_MAPPED)


def _read(ds: StreamingDataset, it: _Iterator, reader: ShardSpanReader, shard_ids: NDArray[np.int64],
          local: NDArray[np.int64]) -> list[dict[str, Any]]:
    """Decode ``(shard_ids[i], local[i])`` in order, each shard's file checked (or prepared again) first."""
    if not len(shard_ids):
        return []
    shards = np.unique(shard_ids)
    for shard_id in shards.tolist():
        _make_current(ds, it, reader, shard_id)
    # Not touched here (stock touches a shard per sample read): the prepare thread keyed each shard by its
    # uses ahead, so eviction takes shards whose uses are behind before any shard still ahead (cachefit.node_window).
    return reader.read(shard_ids, local)


def _make_current(ds: StreamingDataset, it: _Iterator, reader: ShardSpanReader, shard_id: int) -> None:
    """Stock ``get_item``'s recovery: a shard file evicted since it was ready is prepared again."""
    for _ in range(1 + RETRIES):
        if reader.current(shard_id, check=bool(ds.cache_limit)):  # without a cache limit nothing evicts
            return
        ds.prepare_shard(shard_id, False)  # a failure here is a ShardError naming the shard
        _await_preparation(ds, it, reader, shard_id)
        _touch_one(ds, it, shard_id, it.yield_index)  # read now: keyed where it is read, not as fresh
    raise ShardError(
        f"{reader.path(shard_id)} is missing after {RETRIES} attempts to prepare it: "
        + ("the cache_limit may be too low (shards evicted as soon as prepared)" if ds.cache_limit else
           "check that the shard exists in the remote, or that nothing deletes files from the local directory")
    )


def _await_preparation(ds: StreamingDataset, it: _Iterator, reader: ShardSpanReader, shard_id: int) -> None:
    """Wait while another thread or worker prepares the shard. Its failure puts the shard back to REMOTE
    (the dataset's ``prepare_shard``), and one in this iteration's threads also sets the stop event."""
    states = ds._shard_states
    while states[shard_id] == PREPARING:
        if ds._event.is_set():
            error = it.background_error
            raise ShardError(f"{reader.path(shard_id)} could not be prepared: a background thread failed: "
                             f"{type(error).__name__}: {error}") from error
        sleep(TICK)


def _next_chunk(ds: StreamingDataset, it: _Iterator, begin: int, bounds: NDArray[np.int64]
                ) -> tuple[int, int, NDArray[np.int64], NDArray[np.int64]] | None:
    """A background thread's next chunk from ``begin``: ``(begin, stop, positions of real ids, their shards)``,
    or None while the thread is ``predownload`` ahead of the yield index (it waits, as stock does)."""
    if ds.predownload is not None and ds.predownload < begin - it.yield_index:
        return None
    stop = _window(ds, it, begin)
    if stop <= begin:
        return None
    ids = it.sample_ids[begin:stop]
    positions = np.flatnonzero(ids >= 0)
    return begin, stop, positions, shards_of(bounds, ids[positions])


def prepare_spans(ds: StreamingDataset, it: _Iterator) -> None:
    """Stock ``_prepare_thread``: download/decompress shards ahead, within ``predownload`` of the yield index."""
    bounds = shard_bounds(ds)
    prepared: set[int] = set()  # Shards this thread prepared; while LOCAL they need nothing more.
    while True:
        if it.should_exit():
            break
        if it.prepare_index == it.total or it.ready_index == it.total:
            it.prepare_index = it.total
            break
        if ds._event.is_set():
            break
        chunk = _next_chunk(ds, it, it.prepare_index, bounds)
        if chunk is None:
            sleep(TICK)
            continue
        begin, stop, positions, shard_ids = chunk
        run_starts = np.flatnonzero(np.diff(shard_ids, prepend=-1))
        states = ds._shard_states.numpy()
        # Key the chunk's cached shards before its downloads evict anything, and the downloaded ones after.
        _touch_chunk(ds, it, begin, positions, shard_ids)
        for shard_id, position in zip(shard_ids[run_starts].tolist(), positions[run_starts].tolist()):
            if shard_id in prepared and states[shard_id] == LOCAL:
                continue
            it.prepare_index = begin + position
            ds.prepare_shard(shard_id, False)
            if states[shard_id] == LOCAL:
                prepared.add(shard_id)
            if it.should_exit() or ds._event.is_set():
                break
        else:
            _touch_chunk(ds, it, begin, positions, shard_ids)
            it.prepare_index = stop
            continue
        break
    it.on_exit()


def ready_spans(ds: StreamingDataset, it: _Iterator) -> None:
    """Stock ``_ready_thread``: advance ``ready_index`` over ids whose shard is LOCAL, preparing again a shard
    evicted after the prepare thread passed it."""
    bounds = shard_bounds(ds)
    while True:
        # Ids the yield loop passed were read (their shards were LOCAL then): never prepared again from here.
        it.ready_index = max(it.ready_index, it.yield_index)
        if it.should_exit() or it.ready_index == it.total or ds._event.is_set():
            break
        chunk = _next_chunk(ds, it, it.ready_index, bounds)
        if chunk is None:
            sleep(TICK)
            continue
        begin, stop, positions, shard_ids = chunk
        states = ds._shard_states.numpy()
        waiting = np.flatnonzero(states[shard_ids] != LOCAL)
        if not len(waiting):
            it.ready_index = stop
            continue
        it.ready_index = position = begin + int(positions[waiting[0]])
        shard_id = int(shard_ids[waiting[0]])
        while states[shard_id] != LOCAL and it.yield_index <= position and not it.should_exit() and not ds._event.is_set():
            # A shard the prepare thread has yet to reach is left to it: stock's ready thread downloads it
            # too, which takes a second download slot from the cache (a shard still needed is evicted for
            # it). One the prepare thread passed is REMOTE only if it was evicted since; stock then waits
            # forever (it prepares a shard once), so it is prepared again here.
            if states[shard_id] == REMOTE and it.prepare_index > position:
                ds.prepare_shard(shard_id, False)
                if states[shard_id] == LOCAL:
                    _touch_one(ds, it, shard_id, it.ready_index)
            else:
                sleep(TICK)
        it.ready_index += 1
    it.on_exit()
