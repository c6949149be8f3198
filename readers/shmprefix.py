"""Two jobs on one machine must not pick the same shared-memory prefix.

Stock streaming 0.13 names every shared resource of a dataset ``/dev/shm/00000N_*``. Its
``get_shm_prefix`` first looks for the lowest free ``N`` and then creates ``00000N_locals``; two
jobs that construct a dataset at the same moment (a sweep launching one job per GPU, two test
runs) can both find the same ``N``, and the second then dies with ``FileExistsError:
'/00000N_locals'``. Here the local leader of each job holds a machine-wide ``flock`` while it
registers, so leaders register one at a time; the wait is bounded, so a job stuck inside the
registration (its barrier waits for a slow rank) delays others by ``LOCK_WAIT_S`` at most, after
which they register as stock would. A job alone on its machine (no process group) also retries
once the prefix it found is taken, which covers jobs that do not take the lock (stock datasets).

Inside a process group, stock has every rank look up the lowest free prefix itself before its
leader registers one; a rank that looks while another job registers finds another ``N`` than its
leader: it dies with "shared memory registered does not match", or, where both jobs read the same
local directory, attaches to the other job's memory without a word (four 2-rank jobs started
together did so 3 runs in 3, tests/test_shm_prefix.py). There the leader alone looks up
and registers ``N`` (under the lock, retrying a prefix taken in between), and its ranks learn ``N``
from it over a gloo group, then attach and compare as stock does.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from torch import distributed as dist

from streamclip.errors import StreamclipError
from streamclip.readers.compat import dataset_module, prefix_module, shared_memory_of, stock_get_shm_prefix

__all__ = ["LOCK_NAME", "LOCK_WAIT_S", "release_when_collected", "serialised_prefix"]

LOCK_NAME = "streamclip_shm_prefix.lock"
LOCK_WAIT_S = 10.0
_RETRIES = 20  # prefixes taken by others while this job was looking, one after another

_installed = 0
_installing = threading.Lock()


@contextlib.contextmanager
def _machine_lock(wait_s: float) -> Iterator[None]:
    """Hold the machine-wide registration lock, or go on without it after ``wait_s`` (or if the lock
    file cannot be opened): never worse than stock, never a hang."""
    path = os.path.join(tempfile.gettempdir(), LOCK_NAME)
    try:  # read-only, so a lock file another user created still opens; no symlink followed
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + wait_s
        locked = False
        while not locked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # releases the lock


def _registered(streams_local: list[str], streams_remote: list[str | None], world: Any, retry: int = 100) -> tuple[int, Any]:
    """Stock ``get_shm_prefix``, with the leader's look-up and creation under the machine lock."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return _registered_in_group(streams_local, streams_remote, world, retry)
    if not world.is_local_leader:
        return stock_get_shm_prefix(streams_local, streams_remote, world, retry)
    prefix_module._check_self(streams_local)  # alone: stock's steps are these two, its barriers are no-ops
    return _leader_registers(streams_local, streams_remote, retry)


def _taken(error: FileExistsError) -> StreamclipError:
    return StreamclipError(
        f"shared memory {error.filename or 'prefix'} was taken by other jobs starting on this machine while this "
        "dataset registered its own, again and again: start the job again (jobs that construct streamclip datasets "
        "register one at a time; stock StreamingDataset jobs starting at the same moment do not)"
    )


def _registered_in_group(streams_local: list[str], streams_remote: list[str | None], world: Any, retry: int) -> tuple[int, Any]:
    """``get_shm_prefix`` for a job of several ranks: the local leader looks up and registers, its ranks are told.

    Every rank reaches the one gather, also when its leader failed, so an error is raised on every rank
    of that node instead of leaving them at a barrier.
    """
    prefix_module._check_self(streams_local)
    prefix_int: int | None = None
    shm: Any = None
    failure: BaseException | None = None
    if world.is_local_leader:
        try:
            prefix_int, shm = _leader_registers(streams_local, streams_remote, retry)
        except Exception as e:  # noqa: BLE001 - re-raised below, after the ranks were told
            failure = e
    told: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(told, (world.node, prefix_int, None if failure is None else f"{type(failure).__name__}: {failure}"),
                           group=_gloo_group())
    if failure is not None:
        raise failure
    node_prefix, node_failure = next((p, f) for node, p, f in told if node == world.node and (p is not None or f is not None))
    if node_failure is not None:
        raise StreamclipError(f"the local leader of this node could not register the dataset's shared memory: {node_failure}")
    if world.is_local_leader:
        return prefix_int, shm  # type: ignore[return-value]
    try:
        shm = prefix_module.SharedMemory(prefix_module._get_path(node_prefix, prefix_module.LOCALS), False)
    except FileNotFoundError:
        raise StreamclipError(f"shared memory prefix {node_prefix} was not registered by the local leader: give every rank "
                              "the same local directory") from None
    their_locals, their_prefix = prefix_module._unpack_locals(bytes(shm.buf))
    if their_locals != streams_local or their_prefix != node_prefix:
        raise StreamclipError(f"the local leader registered local directories {their_locals} under prefix {their_prefix}, this rank "
                              f"has {streams_local}: give every rank the same local directory")
    return node_prefix, shm


def _leader_registers(streams_local: list[str], streams_remote: list[str | None], retry: int) -> tuple[int, Any]:
    """Look up the lowest free prefix and create its ``N_locals`` under the machine lock (no barrier inside)."""
    retries = _RETRIES
    while True:
        with _machine_lock(LOCK_WAIT_S):
            prefix_int = max(prefix_module._check_and_find_retrying(streams_local, streams_remote, shm_name=name, retry=retry)
                             for name in prefix_module.SHM_TO_CLEAN)
            data = prefix_module._pack_locals(streams_local, prefix_int)
            try:
                shm = prefix_module.SharedMemory(prefix_module._get_path(prefix_int, prefix_module.LOCALS), True, len(data))
            except FileExistsError as e:  # a job that does not lock took it in between
                if retries == 0:
                    raise _taken(e) from e
                retries -= 1
                continue
            shm.buf[: len(data)] = data
            return prefix_int, shm


_gloo_groups: dict[int, Any] = {}


def _gloo_group() -> Any:
    """A CPU group to send the prefix over (``None``: the default group is gloo already).

    An NCCL group would need each rank's GPU chosen before the dataset is built; creating the gloo
    group is itself collective, which every rank reaches here, and is done once per default group.
    """
    default = dist.group.WORLD
    if dist.get_backend(default) == "gloo":
        return None
    key = id(default)
    if key not in _gloo_groups:
        _gloo_groups[key] = dist.new_group(backend="gloo")
    return _gloo_groups[key]


@contextlib.contextmanager
def serialised_prefix() -> Iterator[None]:
    """Within this block, datasets constructed in this process register their prefix under the lock.

    Stock ``StreamingDataset.__init__`` calls ``get_shm_prefix`` through its module's namespace, so the
    locked version is put there for the block and the stock one restored after the last block ends.
    """
    global _installed
    with _installing:
        if _installed == 0:
            dataset_module.get_shm_prefix = _registered
        _installed += 1
    try:
        yield
    finally:
        with _installing:
            _installed -= 1
            if _installed == 0:
                dataset_module.get_shm_prefix = stock_get_shm_prefix


def release_when_collected(dataset: Any) -> None:
    """Free a dataset's shared memory when the dataset is collected, not only when the process ends.

    Stock registers each ``SharedMemory``'s cleanup with ``atexit``, which keeps it alive (two file
    descriptors and its ``/dev/shm`` name) until exit: a process that builds many datasets (a sweep,
    a notebook, a test suite: about 1,700 of them) runs out of descriptors. The cleanup is moved to
    a finaliser of the dataset, which still runs at exit for a dataset alive then.
    """
    shms = shared_memory_of(dataset)
    for shm in shms:
        atexit.unregister(shm.cleanup)
    weakref.finalize(dataset, _clean_up, shms)


def _clean_up(shms: list[Any]) -> None:
    for shm in shms:
        shm.cleanup()
