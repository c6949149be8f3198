"""streamclip: cluster-grouped streaming datasets whose loader knows what to sample.

The public API of the core (pure numpy, never imports torch). Converting lives in
``streamclip.writers`` and the training-time dataset in ``streamclip.readers``.
"""

from streamclip._version import __version__
from streamclip.errors import (
    CacheTooSmall,
    CompatError,
    ConfigError,
    InputError,
    ManifestError,
    PlanInfeasible,
    ResumeMismatch,
    ShardError,
    StreamclipError,
    UploadError,
    WorkDirError,
)
from streamclip.manifest import ClusterInfo, Manifest, open_manifest

__all__ = [
    "CacheTooSmall",
    "CompatError",
    "ConfigError",
    "ClusterInfo",
    "InputError",
    "Manifest",
    "ManifestError",
    "PlanInfeasible",
    "ResumeMismatch",
    "ShardError",
    "StreamclipError",
    "UploadError",
    "WorkDirError",
    "__version__",
    "open_manifest",
]
