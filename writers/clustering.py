"""Spherical k-means with faiss on embeddings that may not fit in memory.

Training uses a seeded sample of at most ``max_points_per_centroid * k`` rows (faiss's own rule),
read from the on-disk matrix, so memory is bounded by k, not by the corpus; assignment then
streams every row through a flat inner-product index in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from streamclip.errors import InputError


@dataclass(frozen=True, slots=True)
class KMeansResult:
    """Centroids (unit rows), each row's label and similarity to its centroid, and the fit's record."""

    centroids: NDArray[np.float32]
    labels: NDArray[np.int64]
    similarity: NDArray[np.float32]
    record: dict[str, Any]


def fit_and_assign(
    vectors: NDArray[np.float32], *, k: int, seed: int, iterations: int = 20,
    max_points_per_centroid: int = 256, chunk: int = 65536, progress: bool = True,
) -> KMeansResult:
    """Cluster ``vectors`` (rows of unit norm, possibly a memmap) into ``k`` spherical k-means clusters."""
    import faiss

    n, dim = vectors.shape
    if k < 1:
        raise InputError(f"--clusters must be >= 1, got {k}")
    if n < k:
        raise InputError(f"--clusters {k} is more than the {n} documents written; use at most {n}")
    train_n = min(n, k * max_points_per_centroid)
    rng = np.random.default_rng((seed, 0x6B6D))
    rows = np.sort(rng.choice(n, size=train_n, replace=False)) if train_n < n else np.arange(n)
    sample = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    kmeans = faiss.Kmeans(
        dim, k, niter=iterations, seed=seed, spherical=True, verbose=False,
        max_points_per_centroid=max_points_per_centroid, min_points_per_centroid=1,
    )
    kmeans.train(sample)
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    index = faiss.IndexFlatIP(dim)
    index.add(centroids)
    labels = np.empty(n, dtype=np.int64)
    sims = np.empty(n, dtype=np.float32)
    with tqdm(total=n, desc="assign", unit="doc", disable=not progress) as bar:
        for start in range(0, n, chunk):
            block = np.ascontiguousarray(vectors[start : start + chunk], dtype=np.float32)
            d, i = index.search(block, 1)
            labels[start : start + len(block)] = i[:, 0]
            sims[start : start + len(block)] = d[:, 0]
            bar.update(len(block))
    record = {
        "method": "faiss-kmeans",
        "objective": "spherical (cosine)",
        "requested_k": k,
        "seed": seed,
        "iterations": iterations,
        "trained_on": int(train_n),
        "final_objective": float(kmeans.obj[-1]) if len(kmeans.obj) else None,
        "faiss_version": faiss.__version__,
    }
    return KMeansResult(centroids=centroids, labels=labels, similarity=sims, record=record)
