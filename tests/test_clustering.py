"""Unit tests of writers/clustering.py: training sample, spherical k-means, nearest-centroid assignment.

Expected values are computed here with numpy (float64 inner products) or with faiss called directly.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamclip import ConfigError, InputError
from streamclip.writers.clustering import _keep_most_central, assign, centroid_index, fit_and_assign, train_centroids, training_rows


def unit_rows(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def similarities(vectors, centroids) -> np.ndarray:
    return vectors.astype(np.float64) @ centroids.astype(np.float64).T


def assert_nearest(vectors, centroids, labels, atol=1e-5):
    """Each label is a centroid of highest inner product (up to float32 rounding)."""
    sims = similarities(vectors, centroids)
    chosen = sims[np.arange(len(vectors)), labels]
    assert np.all(chosen >= sims.max(axis=1) - atol)
    clear = np.sort(sims, axis=1)[:, -1] - np.sort(sims, axis=1)[:, -2] > 10 * atol
    assert clear.mean() > 0.9 and np.array_equal(labels[clear], sims.argmax(axis=1)[clear])


def expected_central(vectors, centroids, labels, k) -> np.ndarray:
    """Per cluster, its row of highest similarity to the centroid, the lowest such row on a tie; -1 if empty."""
    sims = similarities(vectors, centroids)
    central = np.full(k, -1)
    for c in range(k):
        rows = np.flatnonzero(labels == c)
        if len(rows):
            central[c] = rows[np.argmax(sims[rows, c])]
    return central


def test_training_rows_are_every_row_when_the_corpus_is_small():
    assert np.array_equal(training_rows(50, k=2, seed=0), np.arange(50))
    assert np.array_equal(training_rows(20, k=4, seed=0, max_points_per_centroid=5), np.arange(20))  # exactly k * max
    assert np.array_equal(training_rows(5, k=5, seed=0), np.arange(5))


def test_training_rows_sample_is_bounded_distinct_sorted_and_seeded():
    rows = training_rows(1000, k=3, seed=7, max_points_per_centroid=7)
    assert len(rows) == 21 and rows.dtype == np.int64
    assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < 1000
    assert rows[-1] > 21  # a sample of the whole corpus, not its first rows
    assert np.array_equal(rows, training_rows(1000, k=3, seed=7, max_points_per_centroid=7))
    assert not np.array_equal(rows, training_rows(1000, k=3, seed=8, max_points_per_centroid=7))


@pytest.mark.parametrize(
    "n, k, error, match",
    [
        (5, 0, ConfigError, "--clusters 0: must be an integer >= 1"),
        (5, -2, ConfigError, "--clusters -2: must be an integer >= 1"),
        (3, 4, InputError, "--clusters 4 is more than the 3 documents written; use at most 3"),
        (0, 1, InputError, "--clusters 1 is more than the 0 documents written"),
    ],
)
def test_training_rows_refuses_impossible_k(n, k, error, match):
    with pytest.raises(error, match=match):
        training_rows(n, k=k, seed=0)
    with pytest.raises(error, match=match):
        fit_and_assign(unit_rows(n), k=k, seed=0, progress=False)


def test_assign_is_the_nearest_centroid_by_inner_product():
    centroids, vectors = unit_rows(5, seed=1), unit_rows(200, seed=2)
    labels, sims = assign(centroid_index(centroids), vectors)
    assert labels.shape == sims.shape == (200,)
    assert_nearest(vectors, centroids, labels)
    np.testing.assert_allclose(sims, similarities(vectors, centroids)[np.arange(200), labels], atol=1e-5)


def test_assign_accepts_float64_and_strided_rows():
    centroids, vectors = unit_rows(4, seed=3), unit_rows(40, seed=4)
    index = centroid_index(centroids)
    strided = vectors.astype(np.float64)[::3]
    labels, sims = assign(index, strided)
    expected_labels, expected_sims = assign(index, np.ascontiguousarray(vectors[::3]))
    assert np.array_equal(labels, expected_labels)
    np.testing.assert_allclose(sims, expected_sims, atol=1e-6)


def test_each_centroid_is_its_own_nearest():
    centroids = unit_rows(6, seed=5)
    labels, sims = assign(centroid_index(centroids), centroids)
    assert np.array_equal(labels, np.arange(6))
    np.testing.assert_allclose(sims, 1.0, atol=1e-5)


def test_train_centroids_are_unit_rows_and_record_the_fit():
    import faiss

    sample = unit_rows(120, d=6, seed=6)
    centroids, record = train_centroids(sample, k=4, seed=3, iterations=10)
    assert centroids.shape == (4, 6) and centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    objective = record.pop("final_objective")
    assert record == {
        "method": "faiss-kmeans", "objective": "spherical (cosine)", "requested_k": 4, "seed": 3,
        "iterations": 10, "trained_on": 120, "faiss_version": faiss.__version__,
    }
    # The last iteration's objective is measured before its centroid update, which can only raise the total
    # similarity of the training rows to their nearest centroid.
    best = similarities(sample, centroids).max(axis=1).sum()
    assert 0 < objective <= best + 1e-3


@pytest.mark.parametrize("chunk", [7, 65536])
def test_fit_and_assign_labels_nearest_centroid_and_central_is_the_most_similar_row(chunk):
    vectors = unit_rows(300, seed=7)
    result = fit_and_assign(vectors, k=5, seed=0, iterations=10, chunk=chunk, progress=False)
    assert result.labels.shape == (300,) and result.labels.dtype == np.int32
    assert_nearest(vectors, result.centroids, result.labels)
    assert np.array_equal(result.central, expected_central(vectors, result.centroids, result.labels, 5))


def test_fit_and_assign_trains_on_the_seeded_sample_only():
    import faiss

    vectors = unit_rows(300, d=8, seed=8)
    result = fit_and_assign(vectors, k=3, seed=4, iterations=8, max_points_per_centroid=10, progress=False)
    rows = training_rows(300, k=3, seed=4, max_points_per_centroid=10)
    kmeans = faiss.Kmeans(8, 3, niter=8, seed=4, spherical=True, max_points_per_centroid=10)
    kmeans.train(np.ascontiguousarray(vectors[rows]))
    np.testing.assert_allclose(result.centroids, kmeans.centroids, atol=1e-6)
    assert result.record["trained_on"] == len(rows) == 30
    assert_nearest(vectors, result.centroids, result.labels)  # yet every row is assigned


def test_fit_and_assign_is_deterministic_per_seed():
    vectors = unit_rows(300, seed=9)
    runs = [fit_and_assign(vectors, k=3, seed=s, max_points_per_centroid=20, progress=False) for s in (5, 5, 6)]
    for field in ("centroids", "labels", "central"):
        assert np.array_equal(getattr(runs[0], field), getattr(runs[1], field))
    assert not np.array_equal(runs[0].centroids, runs[2].centroids)


def test_labels_path_writes_the_labels_to_an_int32_npy(tmp_path):
    vectors = unit_rows(100, seed=10)
    path = tmp_path / "labels.npy"
    on_disk = fit_and_assign(vectors, k=3, seed=1, chunk=16, progress=False, labels_path=str(path))
    in_memory = fit_and_assign(vectors, k=3, seed=1, chunk=16, progress=False)
    stored = np.load(path)
    assert stored.dtype == np.int32 and np.array_equal(stored, in_memory.labels)
    assert np.array_equal(np.asarray(on_disk.labels), in_memory.labels)


def test_one_cluster_is_the_normalised_mean():
    vectors = unit_rows(200, seed=11)
    result = fit_and_assign(vectors, k=1, seed=0, progress=False)
    mean = vectors.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(result.centroids[0], mean / np.linalg.norm(mean), atol=1e-5)
    assert np.all(result.labels == 0)
    assert result.central[0] == np.argmax(similarities(vectors, result.centroids)[:, 0])


def test_as_many_clusters_as_documents_gives_each_its_own():
    vectors = unit_rows(6, seed=12)
    result = fit_and_assign(vectors, k=6, seed=0, progress=False)
    assert sorted(result.labels.tolist()) == list(range(6))
    assert np.array_equal(result.central[result.labels], np.arange(6))


@pytest.mark.parametrize("chunk", [3, 65536])
def test_duplicate_rows_leave_clusters_empty_and_those_have_no_central_row(chunk):
    """Two distinct rows, each four times, into four clusters: equal rows get equal labels, so at least two
    clusters stay empty; a cluster's central row is the first of its equally similar rows, across chunks too."""
    a, b = unit_rows(2, seed=13)
    vectors = np.stack([a, b, a, a, b, b, a, b])
    result = fit_and_assign(vectors, k=4, seed=0, chunk=chunk, progress=False)
    labels = result.labels
    assert len(set(labels[[0, 2, 3, 6]])) == 1 and len(set(labels[[1, 4, 5, 7]])) == 1
    assert np.array_equal(result.central, expected_central(vectors, result.centroids, labels, 4))
    assert np.sum(result.central == -1) >= 2


@pytest.mark.parametrize("step", [1, 4, 7, 60])
def test_keep_most_central_matches_brute_force_over_any_chunking(step):
    """Coarse similarities make many ties, within chunks and across them; cluster 4 never occurs."""
    rng = np.random.default_rng(14)
    labels = rng.integers(0, 4, size=60).astype(np.int64)
    sims = (rng.integers(0, 4, size=60) / 4).astype(np.float32)
    best, central = np.full(5, -np.inf, dtype=np.float32), np.full(5, -1, dtype=np.int64)
    for start in range(0, 60, step):
        _keep_most_central(labels[start : start + step], sims[start : start + step], start, best, central)
    for c in range(5):
        rows = np.flatnonzero(labels == c)
        assert central[c] == (rows[np.argmax(sims[rows])] if len(rows) else -1)
        assert best[c] == (sims[rows].max() if len(rows) else -np.inf)
