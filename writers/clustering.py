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

from streamclip.errors import ConfigError, InputError


@dataclass(frozen=True, slots=True)
class KMeansResult:
    """Centroids (unit rows), each row's label, each cluster's most central row (-1 if empty), the fit's record."""

    centroids: NDArray[np.float32]
    labels: NDArray[np.int32]
    central: NDArray[np.int64]
    record: dict[str, Any]


def fit_and_assign(
    vectors: NDArray[np.float32], *, k: int, seed: int, iterations: int = 20,
    max_points_per_centroid: int = 256, chunk: int = 65536, progress: bool = True, labels_path: str | None = None,
) -> KMeansResult:
    """Cluster ``vectors`` (rows of unit norm, possibly a memmap) into ``k`` spherical k-means clusters.

    With ``labels_path`` the labels go to an on-disk int32 array, so memory does not grow with the corpus.
    """
    n, _ = vectors.shape
    rows = training_rows(n, k=k, seed=seed, max_points_per_centroid=max_points_per_centroid)
    centroids, record = train_centroids(
        np.ascontiguousarray(vectors[rows], dtype=np.float32), k=k, seed=seed, iterations=iterations,
        max_points_per_centroid=max_points_per_centroid,
    )
    labels = np.lib.format.open_memmap(labels_path, mode="w+", dtype=np.int32, shape=(n,)) if labels_path else np.empty(n, dtype=np.int32)
    best = np.full(k, -np.inf, dtype=np.float32)
    central = np.full(k, -1, dtype=np.int64)
    index = centroid_index(centroids)
    with tqdm(total=n, desc="assign", unit="doc", disable=not progress) as bar:
        for start in range(0, n, chunk):
            ids, sims = assign(index, vectors[start : start + chunk])
            labels[start : start + len(ids)] = ids
            _keep_most_central(ids, sims, start, best, central)
            bar.update(len(ids))
    return KMeansResult(centroids=centroids, labels=labels, central=central, record=record)


def training_rows(n: int, *, k: int, seed: int, max_points_per_centroid: int = 256) -> NDArray[np.int64]:
    """The sorted read-order rows k-means trains on: a seeded sample of at most ``max_points_per_centroid * k``.

    Both engines draw it from ``(n, k, seed)`` alone, so the same corpus trains the same centroids
    whether its vectors sit in one matrix (local) or are spread over a cluster (Ray).
    """
    if k < 1:
        raise ConfigError(f"--clusters {k}: must be an integer >= 1")
    if n < k:
        raise InputError(f"--clusters {k} is more than the {n} documents written; use at most {n}")
    train_n = min(n, k * max_points_per_centroid)
    rng = np.random.default_rng((seed, 0x6B6D))
    return np.sort(rng.choice(n, size=train_n, replace=False)) if train_n < n else np.arange(n)


def train_centroids(
    sample: NDArray[np.float32], *, k: int, seed: int, iterations: int = 20, max_points_per_centroid: int = 256,
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """Spherical k-means on the training rows: unit centroids and the record kept in the manifest."""
    import faiss

    kmeans = faiss.Kmeans(
        sample.shape[1], k, niter=iterations, seed=seed, spherical=True, verbose=False,
        max_points_per_centroid=max_points_per_centroid, min_points_per_centroid=1,
    )
    kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
    record = {
        "method": "faiss-kmeans",
        "objective": "spherical (cosine)",
        "requested_k": k,
        "seed": seed,
        "iterations": iterations,
        "trained_on": int(len(sample)),
        "final_objective": float(kmeans.obj[-1]) if len(kmeans.obj) else None,
        "faiss_version": faiss.__version__,
    }
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32), record


def centroid_index(centroids: NDArray[np.float32]) -> Any:
    """A flat inner-product index over the centroids (nearest centroid = highest cosine for unit rows)."""
    import faiss

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def assign(index: Any, vectors: NDArray[np.floating]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each vector's nearest centroid and its similarity, with ``index`` from ``centroid_index``."""
    d, i = index.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
    return i[:, 0], d[:, 0]


def _keep_most_central(labels: NDArray[np.int64], sims: NDArray[np.float32], start: int, best: NDArray[np.float32], central: NDArray[np.int64]) -> None:
    """Update each cluster's best (highest similarity, then lowest row) document with one chunk."""
    order = np.lexsort((-sims, labels))
    first = order[np.r_[True, labels[order][1:] != labels[order][:-1]]]
    better = sims[first] > best[labels[first]]
    best[labels[first[better]]] = sims[first[better]]
    central[labels[first[better]]] = start + first[better]
