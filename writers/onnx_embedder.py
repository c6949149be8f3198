"""MiniLM through ONNX Runtime (sentence-transformers' ``backend="onnx"``), in fp32 or dynamically quantised int8.

The packaged model ships PyTorch weights only, so the ONNX graph is exported from it once (about
10 s) and, for int8, quantised for this CPU's instruction set (about 5 s); both are cached by the
source weights' hash (``model_cache.py``). The same tokenizer, truncation and mean pooling as the
torch path, so fp32 ONNX gives the torch path's vectors (cosine ~1.0); int8 gives cosine ~0.99.
"""

from __future__ import annotations

import logging
import os
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError
from streamclip.writers.model_cache import cached_model, packaged_minilm, weights_sha256

NAME = "sentence-transformers/all-MiniLM-L6-v2"


def quantisation_target() -> str:
    """The most specific of optimum's int8 configurations this CPU runs (``avx512_vnni`` > ``avx512`` > ``avx2``; ``arm64``)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    if os.uname().machine in ("aarch64", "arm64"):
        return "arm64"
    return "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"


def _versions() -> dict[str, str]:
    try:
        return {name: metadata.version(name) for name in ("onnxruntime", "optimum", "sentence-transformers")}
    except metadata.PackageNotFoundError:
        raise ConfigError("--embedder minilm-onnx needs ONNX Runtime: pip install 'streamclip[onnx]' (onnxruntime, optimum-onnx)") from None


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime's CPU provider; ``int8=True`` uses a dynamically quantised graph."""

    def __init__(self, *, max_tokens: int = 256, batch_size: int = 64, int8: bool = False, source: str | Path | None = None) -> None:
        if not isinstance(max_tokens, int) or max_tokens < 8:
            raise ConfigError(f"--max-tokens {max_tokens!r}: the MiniLM embedder needs at least 8 tokens")
        self.versions = _versions()
        from sentence_transformers import SentenceTransformer

        self.source = Path(source) if source is not None else packaged_minilm()
        self.int8 = int8
        self.target = quantisation_target() if int8 else None
        settings = {**self.versions, "int8": self.target}
        self.path, self.built_now = cached_model("onnx", self.source, settings, self._export)
        self.file = "onnx/" + (f"model_qint8_{self.target}.onnx" if int8 else "model.onnx")
        self.model = SentenceTransformer(str(self.path), backend="onnx", device="cpu", model_kwargs={"file_name": self.file})
        self.model.max_seq_length = min(max_tokens, 512)
        self.max_tokens = self.model.max_seq_length
        self.batch_size = batch_size
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def _export(self, folder: Path) -> None:
        from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

        # The exporter's advice to save into the (read-only, packaged) source folder does not apply: we save to the cache.
        quiet = logging.getLogger("sentence_transformers")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = SentenceTransformer(str(self.source), backend="onnx", device="cpu")  # no model.onnx there: exports
                model.save_pretrained(str(folder))
                if self.target:
                    export_dynamic_quantized_onnx_model(model, self.target, str(folder))
        finally:
            quiet.setLevel(level)

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        from streamclip.writers.embedders import normalise

        out = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=False, show_progress_bar=False)
        return normalise(out)

    def describe(self) -> dict[str, Any]:
        return {
            "model": NAME, "dim": self.dim, "max_tokens": self.max_tokens, "normalized": True,
            "precision": f"int8 ({self.target})" if self.int8 else "fp32", "runtime": "onnxruntime",
            "version": self.versions, "weights_sha256": weights_sha256(self.path / self.file),
            "source_weights_sha256": weights_sha256(self.source),
        }
