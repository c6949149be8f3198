"""``prepare_shard`` that keeps the cache within ``cache_limit`` while downloads run.

Stock streaming 0.13 evicts until ``usage + shard`` fits, releases the cache lock, downloads,
and only then adds the shard to the usage. Every download that starts before another finishes
sees the same free space, so the cache overshoots by a shard per concurrent download (measured:
+2.4 shards with two workers). Here the shard's full size (raw + compressed, its peak while it
is decompressed) is reserved under the lock before the download starts, and settled to what the
download really left afterwards. A download that finds the space taken by other downloads in
flight (nothing LOCAL left to evict) waits for them instead of overshooting.

The states, lock, eviction order and accounting are stock's; only the order of two steps changes.
"""

from __future__ import annotations

from time import sleep, time_ns

from filelock import FileLock

from streamclip.readers.compat import TICK, _ShardState

__all__ = ["cache_lock", "prepare_shard_reserved"]

REMOTE = _ShardState.REMOTE
PREPARING = _ShardState.PREPARING
LOCAL = _ShardState.LOCAL


def cache_lock(ds) -> FileLock:
    if not hasattr(ds, "_cache_filelock"):  # FileLocks do not pickle: created lazily, as stock does
        ds._cache_filelock = FileLock(ds._cache_filelock_path)
    return ds._cache_filelock


def _stopping(ds) -> bool:
    """The epoch failed or was left: a download waiting for space gives up (its iteration is being joined)."""
    event, it = getattr(ds, "_event", None), getattr(ds, "_iterator", None)
    return (event is not None and event.is_set()) or (it is not None and it.should_exit())


def prepare_shard_reserved(ds, shard_id: int, blocking: bool = True, *, fallback) -> None:
    """Stock ``prepare_shard`` with the download's space reserved before it starts.

    ``fallback`` is stock ``prepare_shard``: it handles every case but a download under a cache
    limit (a shard already LOCAL or PREPARING, or no limit), where there is nothing to reserve.
    """
    if not ds.cache_limit:
        return fallback(shard_id, blocking)
    lock = cache_lock(ds)
    shard = ds.shards[shard_id]
    need = shard.get_max_size()
    while True:
        lock.acquire()
        if ds._shard_states[shard_id] != REMOTE:
            lock.release()
            return fallback(shard_id, blocking)
        states = ds._shard_states.numpy()
        while ds.cache_limit < ds.cache_usage + need and (states == LOCAL).any():
            ds._evict_coldest_shard()
        if ds.cache_usage + need <= ds.cache_limit:
            break
        lock.release()  # the space is held by downloads in flight: wait until they settle
        if _stopping(ds):
            return None
        sleep(TICK)
    ds._shard_states[shard_id] = PREPARING
    ds.cache_usage += need
    lock.release()
    stream = ds.streams[ds.stream_per_shard[shard_id]]
    try:
        delta = stream.prepare_shard(shard)
    except BaseException:
        with lock:
            ds.cache_usage -= need
            ds._shard_states[shard_id] = REMOTE
        raise
    with lock:
        ds.cache_usage += delta - need
        ds._shard_access_times[shard_id] = time_ns()
        ds._shard_states[shard_id] = LOCAL

