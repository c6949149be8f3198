"""Place documents that are not in a dataset (a CLIMB target, a new domain) in the dataset's clusters.

The target of a mixture search is often a handful of documents of the domain a model should be good at.
Which clusters they fall in says where the search should look, and is what CLIMB's target-aware prior
starts from: embed them with the embedder the dataset was built with, then take the nearest stored
centroid, exactly as ``convert`` assigned the corpus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError
from streamclip.manifest import load_centroids, open_manifest
from streamclip.writers.clustering import assign, centroid_index
from streamclip.writers.embedders import embedder_for

__all__ = ["assign_texts"]


def assign_texts(dataset: str, texts: Sequence[str]) -> NDArray[np.int64]:
    """The cluster id of each text in ``dataset``'s clustering (int64, one per text)."""
    manifest = open_manifest(dataset)
    if not manifest.has_centroids or not manifest.embedding:
        raise ConfigError(f"{dataset}: its clusters come from an input field (no centroids), so new documents cannot be placed in them")
    if not texts:
        raise ConfigError("no documents to assign")
    centroids = load_centroids(dataset, manifest)
    embedder = embedder_for(manifest.embedding, where=dataset)
    vectors = np.ascontiguousarray(embedder.encode(list(texts)), dtype=np.float32)
    if vectors.shape[1] != centroids.shape[1]:
        raise ConfigError(f"{dataset}: its centroids have {centroids.shape[1]} dimensions but its embedder gives {vectors.shape[1]}")
    return assign(centroid_index(centroids), vectors)[0].astype(np.int64)
