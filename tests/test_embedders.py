"""The derived embedders (static model2vec, MiniLM on ONNX Runtime): deterministic, the dims they promise,
recorded in the manifest, cached by the weights' hash, and never embedding a document twice on resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from streamclip import open_manifest
from streamclip.errors import ConfigError
from streamclip.writers import ConvertConfig, convert
from streamclip.writers import conversion as convert_module
from streamclip.writers.model_cache import CACHE_ENV, cache_folder, packaged_minilm, weights_sha256

pytest.importorskip("model2vec")

TEXTS = ["A cat sat on the mat.", "A kitten was sitting on the rug.", "Quarterly tax filings are due in April.", ""]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One private cache for the module: each derived model is built once here (~25 s for the distillation)."""
    root = tmp_path_factory.mktemp("model-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def static(cache):
    from streamclip.writers.static_embedder import StaticEmbedder

    return StaticEmbedder()


def test_static_is_deterministic_unit_length_and_semantic(static):
    from streamclip.writers.static_embedder import StaticEmbedder

    first = static.encode(TEXTS)
    again = StaticEmbedder().encode(TEXTS)  # a second instance, loaded from the cache
    assert first.shape == (len(TEXTS), static.dim) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first[:3], axis=1), 1.0, rtol=1e-5)
    assert first[0] @ first[1] > first[0] @ first[2]


def test_static_dim_is_the_pca_dims_asked_for(static):
    assert static.pca_dims is None and static.dim == 384 == static.describe()["dim"]  # no PCA by default: MiniLM's width
    with pytest.raises(ConfigError, match="pca_dims=1000"):
        from streamclip.writers.static_embedder import StaticEmbedder

        StaticEmbedder(pca_dims=1000)


def test_static_cache_is_keyed_by_the_source_weights_hash(static, cache, tmp_path):
    from streamclip.writers.static_embedder import StaticEmbedder

    source = packaged_minilm()
    assert static.path == cache_folder("model2vec", source, static.settings)
    assert static.path.parent.parent == cache and static.path.name.startswith(weights_sha256(source)[:16])
    assert not StaticEmbedder().built_now  # the second construction loads, never distils again
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    assert cache_folder("model2vec", copy, static.settings) == static.path  # same bytes elsewhere: the same model
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight changed
    weights.write_bytes(bytes(data))
    changed = cache_folder("model2vec", copy, static.settings)
    assert changed != static.path and not changed.exists()


def test_manifest_records_the_static_embedder(static, tmp_path, sample_docs):
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:200]))
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=5, embedder="static", progress=False))
    embedding = open_manifest(str(tmp_path / "ds")).embedding
    assert embedding["model"] == static.name and embedding["dim"] == static.dim
    assert embedding["version"]["model2vec"] == static.settings["model2vec"]
    assert embedding["weights_sha256"] == weights_sha256(static.path)
    assert embedding["source_weights_sha256"] == weights_sha256(packaged_minilm())
    assert report.seconds["embed"] > 0


class _Counting:
    """A real embedder that counts the texts it embeds and stops (a power cut) after ``calls`` calls."""

    def __init__(self, inner, calls: int, seen: list[int]) -> None:
        self.inner, self.calls, self.seen, self.dim = inner, calls, seen, inner.dim

    def encode(self, texts):
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt("simulated interruption")
        self.seen.append(len(texts))
        return self.inner.encode(texts)

    def describe(self):
        return self.inner.describe()


def test_static_resume_never_embeds_a_document_twice(static, tmp_path, sample_jsonl, monkeypatch):
    monkeypatch.setattr(convert_module, "EMBED_CHUNK", 100)
    config = ConvertConfig(clusters=6, embedder="static", progress=False)
    seen: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        convert([str(sample_jsonl)], str(tmp_path / "ds"), config, embedder=_Counting(static, 2, seen))
    report = convert([str(sample_jsonl)], str(tmp_path / "ds"), ConvertConfig(clusters=6, embedder="static", resume=True, progress=False),
                     embedder=_Counting(static, 10**6, seen))
    assert report.resumed_embeddings == 200 and sum(seen) == report.written  # each document embedded exactly once


def test_bf16_is_refused_for_embedders_without_it():
    with pytest.raises(ConfigError, match="--bf16 is torch autocast for --embedder minilm"):
        ConvertConfig(embedder="static", bf16=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["minilm-onnx", "minilm-onnx-int8"])
def test_onnx_minilm_matches_torch_minilm_and_is_recorded(name, cache, tmp_path, sample_docs):
    pytest.importorskip("onnxruntime")
    from streamclip.writers import MiniLMEmbedder
    from streamclip.writers.embedders import make_embedder

    embedder = make_embedder(name, max_tokens=64)
    vectors = embedder.encode(TEXTS)
    np.testing.assert_array_equal(vectors, embedder.encode(TEXTS))
    assert vectors.shape == (len(TEXTS), 384) == (len(TEXTS), embedder.dim)
    reference = MiniLMEmbedder(max_tokens=64).encode(TEXTS)
    cosine = np.sum(vectors[:3] * reference[:3], axis=1)  # the real sentences (int8 moves the empty text's vector most)
    assert cosine.min() > (0.9999 if name == "minilm-onnx" else 0.98)
    assert embedder.path.name.startswith(weights_sha256(packaged_minilm())[:16])
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:100]))
    convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=4, embedder=name, max_tokens=64, progress=False))
    embedding = open_manifest(str(tmp_path / "ds")).embedding
    assert embedding["runtime"] == "onnxruntime" and embedding["dim"] == 384
    assert embedding["weights_sha256"] == weights_sha256(embedder.path / embedder.file)
    assert embedding["version"]["onnxruntime"] == embedder.versions["onnxruntime"]
