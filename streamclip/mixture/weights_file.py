"""``weights.json``: a search's mixture, the dataset it was made for, and the whole history.

The file names its format and version and the manifest fingerprint of its dataset, so a file made for
another dataset (other shards or clusters) is refused when a plan is built instead of silently
re-weighting the wrong clusters.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from streamclip.errors import ConfigError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "read_weights_file", "write_weights_file"]

FORMAT_NAME = "streamclip-mixture"
FORMAT_VERSION = 1


def write_weights_file(path: str | os.PathLike[str], document: dict[str, Any]) -> None:
    """Write atomically (a temporary file, then a rename): a reader never sees half a file."""
    body = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **document}
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(body, handle, indent=1, sort_keys=True, allow_nan=False)
        handle.write("\n")
    os.replace(tmp, path)


def read_weights_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked document: ``weights`` (K finite numbers >= 0, not all 0), ``clusters`` == K, ``dataset`` (str or None)."""
    where = os.fspath(path)
    try:
        with open(where, encoding="utf-8") as handle:
            doc = json.load(handle)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read the weights file ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: not a JSON weights file ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ConfigError(f"{where}: not a streamclip weights file (its 'format' is not {FORMAT_NAME!r}); make one with streamclip climb")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{where}: format_version {doc.get('format_version')!r} is not {FORMAT_VERSION}, the one this streamclip reads")
    weights = doc.get("weights")
    if not isinstance(weights, list) or not weights or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
        raise ConfigError(f"{where}: field 'weights' must be a non-empty list of numbers")
    values = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
        raise ConfigError(f"{where}: field 'weights' must hold finite numbers >= 0, not all zero")
    if doc.get("clusters") != len(weights):
        raise ConfigError(f"{where}: field 'clusters' is {doc.get('clusters')!r} but 'weights' has {len(weights)} entries")
    if doc.get("dataset") is not None and not isinstance(doc.get("dataset"), str):
        raise ConfigError(f"{where}: field 'dataset' must be a manifest fingerprint (a string) or null")
    if doc.get("clustering") is not None and not isinstance(doc.get("clustering"), str):
        raise ConfigError(f"{where}: field 'clustering' must be a clustering fingerprint (a string) or null")
    return doc
