"""A static (lookup-table) embedder distilled from the packaged MiniLM with model2vec.

Model2Vec runs MiniLM once over every token of its vocabulary, reduces the token vectors with PCA
and weights them (SIF); a document's embedding is then the mean of its tokens' rows: no transformer
at conversion time, so thousands of documents per second on a CPU, at a cost in cluster quality
that ``benchmarks/bench_embed.py`` measures. The distillation runs offline from the shipped weights
on first use (about 20 s on 2 cores) and is cached by the weights' hash (``model_cache.py``).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError
from streamclip.writers.model_cache import cached_model, packaged_minilm, weights_sha256

SOURCE_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def _model2vec_version() -> str:
    try:
        return metadata.version("model2vec")
    except metadata.PackageNotFoundError:
        raise ConfigError("--embedder static needs model2vec: pip install 'streamclip[static]' (model2vec>=0.7,<0.8)") from None


class StaticEmbedder:
    """Model2Vec static embeddings distilled from all-MiniLM-L6-v2; ``pca_dims=None`` (the default) keeps all 384 dimensions.

    No PCA is the default because it gave the best clusters of the static variants measured
    (``bench_embed``: AMI with ``domain`` 0.71x MiniLM's at K=100, 0.81x at K=400; PCA to 256 dims 0.57x/0.59x).

    ``source`` is the MiniLM folder to distil (default: the packaged one); the distilled model is
    cached under ``cache_root()/model2vec``, keyed by the source's weights hash and the settings.
    """

    def __init__(self, *, pca_dims: int | None = None, max_tokens: int = 512, batch_size: int = 1024, source: str | Path | None = None) -> None:
        if pca_dims is not None and (not isinstance(pca_dims, int) or not 2 <= pca_dims <= 384):
            raise ConfigError(f"StaticEmbedder(pca_dims={pca_dims!r}): must be an integer in 2..384 (MiniLM's width) or None for no PCA")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"--max-tokens {max_tokens!r}: must be an integer >= 1")
        version = _model2vec_version()
        from model2vec import StaticModel

        self.source = Path(source) if source is not None else packaged_minilm()
        self.pca_dims = pca_dims
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.settings = {"model2vec": version, "pca_dims": pca_dims, "sif_coefficient": 1e-4, "quantize_to": "float16"}
        self.path, self.built_now = cached_model("model2vec", self.source, self.settings, self._distil)
        self.model = StaticModel.from_pretrained(str(self.path))
        self.dim = int(self.model.dim)
        self.name = f"streamclip/minilm-model2vec-{'pca' + str(pca_dims) if pca_dims else 'full'}"

    def _distil(self, folder: Path) -> None:
        from model2vec.distill import distill

        model = distill(model_name=str(self.source), pca_dims=self.pca_dims, device="cpu",
                        sif_coefficient=self.settings["sif_coefficient"], quantize_to=self.settings["quantize_to"])
        model.save_pretrained(str(folder))

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        from streamclip.writers.embedders import normalise

        out = self.model.encode(texts, max_length=self.max_tokens, batch_size=self.batch_size, show_progress_bar=False, use_multiprocessing=False)
        return normalise(out)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name, "dim": self.dim, "max_tokens": self.max_tokens, "normalized": True, "precision": "fp16 weights",
            "version": {"model2vec": self.settings["model2vec"]}, "weights_sha256": weights_sha256(self.path),
            "distilled_from": SOURCE_NAME, "source_weights_sha256": weights_sha256(self.source), "pca_dims": self.pca_dims,
        }
