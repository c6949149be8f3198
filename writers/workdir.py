"""The work directory of one ``convert`` run: streamclip's own, locked, and apart from OUT and the inputs.

A run stages documents, embeddings and labels there so that ``--resume`` can continue, and it
clears the directory at the start of a fresh run and deletes it after success. So it must never
be a folder streamclip did not make: a work directory carries the marker file ``.streamclip-work``
from its creation on, an existing non-empty folder without that marker is refused, and so is one
that is, holds or lies inside OUT or an input. A lock (``flock`` on ``lock``, released by the
kernel if the run dies) makes a second run on the same directory fail at once instead of racing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from typing import Any

from streamclip.errors import InputError, WorkDirError

MARKER = ".streamclip-work"
LOCK = "lock"
STATE = "state.json"


def is_within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved, symlinks included)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


class WorkDir:
    """A claimed and locked work directory; ``close()`` releases the lock, ``remove()`` deletes what the run made."""

    def __init__(self, path: str, *, out: str, inputs: list[str]) -> None:
        self.path = path
        check_apart(path, out, inputs)
        self.created = self._claim()
        self._fd = self._lock()

    def start(self, key: str, resume: bool) -> dict[str, Any]:
        """The saved state of a resumable run with the same ``key``, else an emptied directory and a new state."""
        state_path = os.path.join(self.path, STATE)
        if resume and os.path.exists(state_path):
            state = self._load_state(state_path)
            if state.get("key") == key:
                return state
            raise InputError(f"--resume: {self.path} was staged from other inputs or settings; drop --resume to start again")
        self._clear(keep=(MARKER, LOCK))
        return {"key": key}

    def save_state(self, state: dict[str, Any]) -> None:
        path = os.path.join(self.path, STATE)
        with open(path + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(path + ".tmp", path)

    def remove(self) -> None:
        """Delete the work: the whole directory if this tool created it, else only its contents (the folder was the user's)."""
        if self.created:
            doomed = f"{self.path}.removing-{uuid.uuid4().hex[:8]}"
            os.rename(self.path, doomed)  # a run starting now finds no directory rather than a half-deleted one
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            self._clear(keep=())
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _claim(self) -> bool:
        """Make the directory, or accept an existing one that is streamclip's (marked) or empty; True if made here."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            os.mkdir(self.path)
            created = True
        except FileExistsError:
            if os.path.islink(self.path) or not os.path.isdir(self.path):
                raise WorkDirError(f"work directory {self.path}: exists and is not a directory; pass --work-dir with a new or empty directory") from None
            marker = os.path.join(self.path, MARKER)
            if os.path.isfile(marker) and not os.path.islink(marker):
                return bool(_read_marker(marker).get("created", False))
            if os.listdir(self.path):
                raise WorkDirError(
                    f"work directory {self.path}: exists, is not empty and is not a streamclip work directory (no {MARKER} in it), "
                    "so streamclip will not clear it; remove it yourself, or pass --work-dir with a new or empty directory")
            created = False
        try:
            with open(os.path.join(self.path, MARKER), "x") as f:
                json.dump({"tool": "streamclip", "created": created}, f)
        except FileExistsError:  # a concurrent run marked it first; the lock decides which of the two goes on
            pass
        return created

    def _lock(self) -> int:
        fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "a process that has not yet said who it is"
            os.close(fd)
            raise WorkDirError(
                f"{self.path}: in use by another streamclip run ({holder}); wait for it to finish, "
                "or give this run another OUT or --work-dir") from None
        except OSError as e:  # e.g. a network file system without flock
            os.close(fd)
            raise WorkDirError(f"work directory {self.path}: cannot be locked ({e.strerror}); pass --work-dir on a local disk") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        return fd

    def _load_state(self, path: str) -> dict[str, Any]:
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError, RecursionError) as e:
            raise WorkDirError(f"--resume: {path} is unreadable ({type(e).__name__}: {e}); rerun without --resume to start again") from None
        if not isinstance(state, dict):
            raise WorkDirError(f"--resume: {path} does not hold a saved run; rerun without --resume to start again")
        return state

    def _clear(self, *, keep: tuple[str, ...]) -> None:
        for entry in os.scandir(self.path):
            if entry.name in keep:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def _read_marker(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def check_apart(work: str, out: str, inputs: list[str]) -> None:
    """The work directory is deleted after success: it must not be, hold or lie inside OUT, nor be or hold an input.

    It may lie inside an input folder (the default ``OUT.streamclip-work`` does when OUT does): the
    expansion of input folders and globs skips it, so it is never read as input, and deleting it
    deletes nothing of the corpus."""
    for role, other, inside_ok in [("OUT", out, False), *(("the input", p, os.path.isdir(p)) for p in inputs)]:
        if (is_within(work, other) and not (inside_ok and os.path.realpath(work) != os.path.realpath(other))) or is_within(other, work):
            where = "is" if os.path.realpath(work) == os.path.realpath(other) else "lies inside" if is_within(work, other) else "holds"
            raise WorkDirError(
                f"work directory {work} {where} {role} {other}; a work directory is cleared and deleted, "
                "so pass --work-dir with a directory apart from OUT and the inputs")
