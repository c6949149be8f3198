"""Where a dataset is built before it becomes OUT, and how it takes OUT's place.

A run builds the dataset in ``.OUT.tmp-XXXXXXXX/dataset`` beside OUT and moves it into place only
when complete, so a crash never leaves something that looks like a dataset at OUT. The staging
directory carries the marker ``streamclip-staging``, locked (``flock``) for as long as its run
lives; a successful run removes the staging directories of the same OUT whose marker nobody holds
any more (left by a run killed with ``kill -9``), and never a directory without the marker.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
import stat
import uuid

MARKER = "streamclip-staging"
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


class Staging:
    """One run's staging directory beside ``out``; ``dataset`` is the folder the dataset is written to."""

    def __init__(self, out: str) -> None:
        self.out = out
        parent = os.path.dirname(os.path.abspath(out))
        os.makedirs(parent, exist_ok=True)  # OUT may name folders that do not exist yet, as with any output path
        self.root = os.path.join(parent, f".{os.path.basename(out)}.tmp-{uuid.uuid4().hex[:8]}")
        os.mkdir(self.root)
        self._fd: int | None = os.open(os.path.join(self.root, MARKER), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.dataset = os.path.join(self.root, "dataset")

    def publish(self) -> None:
        """Move the finished dataset to OUT (the old one, if any, goes to the staging directory, then away)."""
        replace_dir(self.dataset, self.out, aside=os.path.join(self.root, "old"))
        self.remove()
        remove_stale(self.out)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def replace_dir(new: str, out: str, *, aside: str) -> None:
    """Put directory ``new`` at ``out``; an existing ``out`` is moved to ``new`` (exchanged) or to ``aside``.

    On Linux (``renameat2(RENAME_EXCHANGE)``: ext4, xfs, btrfs, tmpfs and most local file systems)
    the two directories swap in one atomic step, so a reader finds the old or the new dataset at
    ``out`` at every instant. Where the exchange is not supported, the old dataset is renamed aside
    and the new one renamed in: between those two renames (microseconds) ``out`` does not exist.
    """
    if not os.path.lexists(out):
        os.rename(new, out)
    elif _exchange(new, out):
        shutil.rmtree(new)
    else:
        os.rename(out, aside)
        os.rename(new, out)
        shutil.rmtree(aside)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap paths ``a`` and ``b``; False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def remove_stale(out: str) -> list[str]:
    """Delete the staging directories of ``out`` that a dead run left (marked, and the marker unlocked); returns them."""
    parent = os.path.dirname(os.path.abspath(out))
    pattern = re.compile(rf"\.{re.escape(os.path.basename(out))}\.tmp-[0-9a-f]{{8}}")
    removed = []
    for entry in os.scandir(parent):
        if pattern.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False) and _abandoned(entry.path):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _abandoned(root: str) -> bool:
    try:
        fd = os.open(os.path.join(root, MARKER), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False  # no marker (or a symlink in its place): not a directory streamclip made
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its run is alive
    finally:
        os.close(fd)
    return True
