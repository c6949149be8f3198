"""The exceptions streamclip raises on purpose.

    StreamclipError                 base: catch this to catch every deliberate failure
     ├── ConfigError                an option or argument is invalid (names the option and the fix)
     │    └── CacheTooSmall         ``cache_limit`` cannot hold what one node needs; carries the minimum
     ├── WorkDirError               a work directory is not streamclip's, is in use, or overlaps inputs/OUT
     ├── ManifestError              a dataset directory or manifest is missing, corrupt or unsafe
     ├── InputError                 the corpus cannot be converted (e.g. ``--strict`` and rejects)
     ├── UploadError                publishing to object storage failed; no manifest was written
     ├── PlanInfeasible             the training budget exceeds what the caps allow
     ├── ResumeMismatch             a checkpoint belongs to another dataset, strategy, seed or budget
     ├── ShardError                 a shard could not be downloaded or failed its hash check while reading
     └── CompatError                the installed mosaicml-streaming is not the release streamclip mirrors (0.13)

Every message says what happened, the value involved and how to fix it, so a CLI user
never needs the traceback.
"""

from __future__ import annotations


class StreamclipError(Exception):
    """Base class of every error streamclip raises deliberately."""


class ConfigError(StreamclipError, ValueError):
    """An option or argument is invalid; the message names the option, the value and the fix."""


class CacheTooSmall(ConfigError):
    """``cache_limit`` cannot hold the shards one node needs at once; ``minimum_bytes`` is the least that works."""

    def __init__(self, message: str, *, minimum_bytes: int | None = None) -> None:
        super().__init__(message)
        self.minimum_bytes = minimum_bytes


class WorkDirError(StreamclipError, ValueError):
    """A work directory is not one streamclip created, is locked by another run, or overlaps the inputs or OUT."""


class ManifestError(StreamclipError, ValueError):
    """A dataset's manifest is missing, malformed, inconsistent with its shards, or unsafe."""


class InputError(StreamclipError, ValueError):
    """The input corpus cannot be converted as asked."""


class UploadError(StreamclipError):
    """Uploading a dataset to object storage failed; the remote holds no readable manifest."""


class PlanInfeasible(StreamclipError, ValueError):
    """The requested budget is larger than the caps allow; ``max_total_samples`` is the most that fits."""

    def __init__(self, message: str, *, max_total_samples: int | None = None) -> None:
        super().__init__(message)
        self.max_total_samples = max_total_samples


class ResumeMismatch(StreamclipError, ValueError):
    """A checkpoint was taken with another dataset, strategy, seed or budget than the current one."""


class ShardError(StreamclipError, RuntimeError):
    """A shard could not be downloaded, or failed its hash check, while iterating; the message names it."""


class CompatError(StreamclipError, ImportError):
    """The installed mosaicml-streaming is not a version streamclip supports (it mirrors private parts of 0.13)."""
