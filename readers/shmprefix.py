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

Only the local leader locks: the other ranks of a job wait for it at the barriers inside
``get_shm_prefix``, so their holding the lock too would deadlock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from torch import distributed as dist

from streamclip.errors import StreamclipError
from streamclip.readers.compat import dataset_module, stock_get_shm_prefix

__all__ = ["LOCK_NAME", "LOCK_WAIT_S", "serialised_prefix"]

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
    if not world.is_local_leader:
        return stock_get_shm_prefix(streams_local, streams_remote, world, retry)
    alone = not (dist.is_available() and dist.is_initialized())
    retries = _RETRIES if alone else 0  # inside a process group, a retry would leave the other ranks at a barrier
    while True:
        with _machine_lock(LOCK_WAIT_S):
            try:
                return stock_get_shm_prefix(streams_local, streams_remote, world, retry)
            except FileExistsError as e:  # taken between stock's look-up and creation by a job that did not lock
                if retries == 0:
                    raise StreamclipError(
                        f"shared memory {e.filename or 'prefix'} was taken by another job starting on this machine while "
                        "this dataset registered its own: start the job again (jobs that construct streamclip datasets "
                        "register one at a time; stock StreamingDataset jobs starting at the same moment do not)"
                    ) from e
                retries -= 1


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
