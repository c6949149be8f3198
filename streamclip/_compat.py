"""What the readers' and the writers' compat modules share: the streaming versions streamclip
supports, the check that refuses the others, and source fingerprints of the stock code it mirrors.

streamclip follows private parts of mosaicml-streaming 0.13 (the epoch iterator and its threads,
the shard cache, the MDS writer), which any release may change without notice. Each wing's
``compat`` module checks the version when it is imported and records a :class:`Mirror` per stock
callable followed; ``tests/test_compat.py`` recomputes the fingerprints, so an upgrade fails
naming the stock function that changed and the streamclip code to re-check against it.

Standard library only: the core never imports streaming (it pulls in torch); :func:`resolve`
imports only what a wing's table names, when a test asks.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any

from streamclip.errors import CompatError

__all__ = ["STREAMING_PIN", "SUPPORTED_STREAMING", "Mirror", "check_streaming_version", "drift", "resolve", "source_fingerprint"]

# (major, minor) of the streaming releases whose private code the mirrors were checked against.
SUPPORTED_STREAMING = (0, 13)
STREAMING_PIN = "mosaicml-streaming==0.13.*"


def check_streaming_version(version: str) -> None:
    """Refuse a streaming release other than the supported one, naming it and what to install."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None or (int(match[1]), int(match[2])) != SUPPORTED_STREAMING:
        raise CompatError(
            f"mosaicml-streaming {version} is installed, but streamclip supports {STREAMING_PIN} only: it follows "
            "private parts of streaming 0.13 (the epoch iterator, the shard cache and the MDS writer), which other "
            f"releases change. Install the supported release (pip install '{STREAMING_PIN}'), or a streamclip "
            f"release that supports {version}"
        )


def source_fingerprint(obj: Any) -> str:
    """sha256 of ``obj``'s source with whitespace normalised (indentation, blank lines, runs of spaces),
    so re-indenting or reflowing stock code keeps it and any change to its tokens does not."""
    lines = (" ".join(line.split()) for line in inspect.getsource(obj).splitlines())
    return hashlib.sha256("\n".join(line for line in lines if line).encode()).hexdigest()


def resolve(qualified: str) -> Any:
    """The object a dotted name denotes: the longest importable module prefix, then attributes."""
    parts = qualified.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is None or not f"{module_name}.".startswith(f"{e.name}."):
                raise  # a dependency of the module is missing, not the name itself
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(f"no module in {qualified!r} can be imported", name=parts[0])


@dataclass(frozen=True)
class Mirror:
    """A stock callable streamclip mirrors or relies on the internals of.

    ``stock``: its qualified name; ``fingerprint``: :func:`source_fingerprint` of the release it was
    checked against; ``by``: which streamclip code follows it, where, and what it relies on.
    """

    stock: str
    fingerprint: str
    by: str


def drift(mirror: Mirror) -> str | None:
    """Why ``mirror`` no longer matches the installed stock source, or None if it still does."""
    try:
        found = source_fingerprint(resolve(mirror.stock))
    except (AttributeError, ImportError, OSError, TypeError) as e:
        return f"{mirror.stock} cannot be read from the installed streaming ({type(e).__name__}: {e}); re-check {mirror.by}"
    if found == mirror.fingerprint:
        return None
    return (
        f"{mirror.stock} changed (source sha256 {found[:12]}…, recorded {mirror.fingerprint[:12]}…): re-check {mirror.by}, "
        "then record the new fingerprint"
    )
