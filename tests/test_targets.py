"""``writers/targets.assign_texts``: new documents go to the nearest stored centroid, in the embedder the
manifest records. Datasets are hand-built (test_manifest_units.write_dataset) with hashing-embedder
centroids, so the expected clusters are a plain numpy argmax of cosine similarities."""

from __future__ import annotations

import numpy as np
import pytest

from streamclip.errors import ConfigError, ManifestError
from streamclip.writers.embedders import HashingEmbedder
from streamclip.writers.targets import assign_texts

from test_manifest_units import write_dataset

CORPUS = [
    "the cat sat on the mat and another cat slept on the rug",
    "quarterly tax filings are due in april for every company",
    "the rocket launch reached orbit after a second engine burn",
    "fresh bread needs flour water yeast and a hot oven",
]
NEW = ["a cat on a mat", "tax filings for april", "an engine burn before orbit", "yeast and flour in the oven",
       "the company launch of a rocket", "bread for the cat"]


def dataset(root, embedder: HashingEmbedder, *, centroids: np.ndarray | None = None, embedding: dict | None = None) -> str:
    """A dataset of ``len(CORPUS)`` clusters whose centroids are the corpus documents' own vectors."""
    centroids = embedder.encode(CORPUS) if centroids is None else centroids
    write_dataset(root, [3] * len(centroids), centroids=centroids, embedding=embedding or embedder.describe())
    return str(root)


def nearest(embedder: HashingEmbedder, texts: list[str]) -> list[int]:
    """The expected clusters: highest cosine to the corpus vectors, checked to be no near-tie."""
    sims = embedder.encode(texts) @ embedder.encode(CORPUS).T
    top2 = np.sort(sims, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-3), "test texts must have one clear nearest centroid"
    return sims.argmax(axis=1).tolist()


def test_corpus_documents_land_on_their_own_centroid(tmp_path):
    ids = assign_texts(dataset(tmp_path, HashingEmbedder()), CORPUS)
    assert ids.dtype == np.int64 and ids.tolist() == [0, 1, 2, 3]


def test_new_documents_go_to_the_most_similar_centroid(tmp_path):
    embedder = HashingEmbedder()
    location = dataset(tmp_path, embedder)
    expected = nearest(embedder, NEW)
    assert len(set(expected)) == len(CORPUS)  # the texts reach every cluster, so a constant answer fails
    assert assign_texts(location, NEW).tolist() == expected
    assert assign_texts(location, tuple(NEW[::-1] * 2)).tolist() == expected[::-1] * 2  # one id per text, in order


def test_the_embedder_is_rebuilt_as_the_manifest_records_it(tmp_path):
    """A dataset embedded at another width and truncation is placed with those, not the defaults."""
    embedder = HashingEmbedder(dim=64, max_tokens=6)
    location = dataset(tmp_path, embedder)
    assert assign_texts(location, CORPUS).tolist() == [0, 1, 2, 3]
    texts = ["rocket launch reached orbit then the cat sat on the mat and another cat slept on the rug",
             "bread needs flour water yeast and tax filings are due in april for every company"]
    expected = nearest(embedder, texts)
    assert expected != nearest(HashingEmbedder(dim=64), texts)  # the tails point elsewhere: only 6 tokens may count
    assert assign_texts(location, texts).tolist() == expected


def test_clusters_from_an_input_field_cannot_take_new_documents(tmp_path):
    write_dataset(tmp_path, [3, 3])
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: its clusters come from an input field \(no centroids\)"):
        assign_texts(str(tmp_path), CORPUS)


def test_centroids_without_an_embedding_record_are_refused(tmp_path):
    embedder = HashingEmbedder()
    write_dataset(tmp_path, [3] * 4, centroids=embedder.encode(CORPUS), embedding=None)
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: .*new documents cannot be placed"):
        assign_texts(str(tmp_path), CORPUS)


@pytest.mark.parametrize("texts", [[], ()])
def test_no_documents_is_a_config_error(tmp_path, texts):
    with pytest.raises(ConfigError, match="no documents to assign"):
        assign_texts(dataset(tmp_path, HashingEmbedder()), texts)


def test_centroids_of_another_width_than_the_embedder_are_refused(tmp_path):
    embedder = HashingEmbedder()
    narrow = HashingEmbedder(dim=32).encode(CORPUS)
    location = dataset(tmp_path, embedder, centroids=narrow, embedding=embedder.describe())
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: its centroids have 32 dimensions but its embedder gives 256"):
        assign_texts(location, NEW)


@pytest.mark.parametrize("change, message", [
    ({"model": "someone/custom-model"}, "was embedded with 'someone/custom-model', which streamclip cannot rebuild"),
    ({"weights_sha256": "ab" * 32}, "was embedded with weights_sha256 'abab"),
])
def test_an_embedder_this_installation_cannot_reproduce_is_refused(tmp_path, change, message):
    embedder = HashingEmbedder()
    location = dataset(tmp_path, embedder, embedding={**embedder.describe(), **change})
    with pytest.raises(ConfigError, match=rf"^{tmp_path} {message}"):
        assign_texts(location, NEW)


def test_missing_centroids_are_a_manifest_error(tmp_path):
    location = dataset(tmp_path, HashingEmbedder())
    (tmp_path / "centroids.npy").unlink()
    with pytest.raises(ManifestError, match="centroids.npy"):
        assign_texts(location, NEW)
