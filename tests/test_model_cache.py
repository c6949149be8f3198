"""``writers/model_cache``: where derived models are kept, how their weights are hashed, and the build-once
protocol (temporary folder, completion mark, atomic rename) with small fake models and builds."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from streamclip.errors import ConfigError
from streamclip.writers.model_cache import (
    CACHE_ENV,
    COMPLETE,
    cache_folder,
    cache_root,
    cached_model,
    packaged_minilm,
    weights_sha256,
)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


@pytest.fixture
def source(tmp_path) -> Path:
    """A model folder with one weights file, plus files that are not weights."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights v1" * 100)
    (folder / "config.json").write_text("{}")
    return folder


def rewrite(path: Path, data: bytes) -> None:
    """Replace a file's bytes and move its mtime on, as a real edit would (timestamps can be coarser than two quick writes)."""
    before = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- cache_root ----------------------------------------------------------------------------------------


def test_cache_root_prefers_the_streamclip_variable_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.setenv(CACHE_ENV, "")  # set but empty counts as unset
    assert cache_root() == tmp_path / "xdg" / "streamclip"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_root() == tmp_path / "home" / ".cache" / "streamclip"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == tmp_path / "home" / ".cache" / "streamclip"


# --- weights_sha256 ------------------------------------------------------------------------------------


def test_a_file_hashes_to_the_sha256_of_its_bytes(tmp_path):
    data = bytes(range(256)) * 5000  # > 1 MiB: read in more than one block
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    assert weights_sha256(path) == sha(data) == weights_sha256(str(path))


def test_a_folder_with_one_weights_file_hashes_as_that_file(source):
    assert weights_sha256(source) == sha(b"weights v1" * 100) == weights_sha256(source / "model.safetensors")
    (source / "tokenizer.json").write_text('{"other": "files"}')  # only *.safetensors count
    assert weights_sha256(source) == sha(b"weights v1" * 100)


def test_a_folder_hash_covers_every_weights_file_and_its_name(tmp_path):
    def folder(name: str, files: dict[str, bytes]) -> Path:
        path = tmp_path / name
        path.mkdir()
        for file, data in files.items():
            (path / file).write_bytes(data)
        return path

    base = weights_sha256(folder("a", {"1.safetensors": b"one", "2.safetensors": b"two"}))
    assert base not in (sha(b"one"), sha(b"two"))
    assert weights_sha256(folder("b", {"2.safetensors": b"two", "1.safetensors": b"one"})) == base  # creation order is irrelevant
    assert weights_sha256(folder("c", {"1.safetensors": b"one", "3.safetensors": b"two"})) != base  # a renamed shard
    assert weights_sha256(folder("d", {"1.safetensors": b"one", "2.safetensors": b"twO"})) != base
    assert weights_sha256(folder("e", {"1.safetensors": b"onetwo", "2.safetensors": b""})) != base  # bytes moved between files


def test_an_edited_file_is_hashed_again(source):
    weights = source / "model.safetensors"
    first = weights_sha256(source)
    rewrite(weights, b"weights v2" * 100)  # same size: only the mtime tells the versions apart
    assert weights_sha256(source) == sha(b"weights v2" * 100) != first


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: None], ids=["empty-folder", "missing"])
def test_no_weights_is_a_config_error_naming_the_folder(tmp_path, make):
    model = tmp_path / "model"
    make(model)
    with pytest.raises(ConfigError, match=rf"{model}: no weights \(\*\.safetensors\) found in this model folder"):
        weights_sha256(model)


# --- cache_folder --------------------------------------------------------------------------------------


def test_cache_folder_is_named_by_weights_and_settings(cache, source):
    folder = cache_folder("onnx", source, {"a": 1, "b": [2, 3]})
    assert folder.parent == cache / "onnx"
    assert folder.name.startswith(sha(b"weights v1" * 100)[:16] + "-")
    assert cache_folder("onnx", source, {"b": [2, 3], "a": 1}) == folder  # key order is not a setting
    assert cache_folder("onnx", source, {"a": 1, "b": [2, 4]}) != folder
    assert cache_folder("model2vec", source, {"a": 1, "b": [2, 3]}).name == folder.name
    assert not folder.exists()  # naming a folder builds nothing


# --- cached_model --------------------------------------------------------------------------------------


class Build:
    """A build that writes one file and counts its calls; ``fail`` makes it raise halfway."""

    def __init__(self, payload: str = "model", *, fail: bool = False) -> None:
        self.payload, self.fail, self.folders = payload, fail, []

    def __call__(self, folder: Path) -> None:
        self.folders.append(folder)
        (folder / "model.bin").write_text(self.payload)
        if self.fail:
            raise RuntimeError("build interrupted")


def leftovers(cache: Path, kind: str) -> list[str]:
    return sorted(p.name for p in (cache / kind).iterdir() if p.name.startswith("."))


def test_a_model_is_built_once_then_loaded(cache, source):
    settings = {"int8": True}
    build = Build()
    folder, built = cached_model("onnx", source, settings, build)
    assert built and folder == cache_folder("onnx", source, settings)
    assert (folder / "model.bin").read_text() == "model"
    assert build.folders[0].parent == folder.parent and build.folders[0] != folder  # built beside, then renamed in
    assert json.loads((folder / COMPLETE).read_text()) == {"source_weights_sha256": sha(b"weights v1" * 100), "settings": settings}
    again = Build("other")
    assert cached_model("onnx", source, settings, again) == (folder, False)
    assert again.folders == [] and (folder / "model.bin").read_text() == "model"
    assert leftovers(cache, "onnx") == []


def test_new_weights_or_settings_build_a_new_model(cache, source):
    first, _ = cached_model("onnx", source, {"int8": True}, Build())
    other_settings, built = cached_model("onnx", source, {"int8": False}, Build())
    assert built and other_settings != first
    rewrite(source / "model.safetensors", b"weights v2" * 100)
    new_weights, built = cached_model("onnx", source, {"int8": True}, Build())
    assert built and new_weights != first and first.is_dir()  # the old model stays for whoever still uses it


def test_a_failed_build_leaves_nothing_and_the_next_call_builds(cache, source):
    with pytest.raises(RuntimeError, match="build interrupted"):
        cached_model("onnx", source, {}, Build(fail=True))
    target = cache_folder("onnx", source, {})
    assert not target.exists() and leftovers(cache, "onnx") == []
    folder, built = cached_model("onnx", source, {}, Build())
    assert built and folder == target and (folder / COMPLETE).is_file()


@pytest.mark.parametrize("junk", [False, True], ids=["empty", "with-files"])
def test_a_folder_without_its_completion_mark_is_replaced(cache, source, junk):
    """What a crash of an older streamclip, or a user's copy, may leave at the target: never loaded as a model."""
    target = cache_folder("onnx", source, {})
    target.mkdir(parents=True)
    if junk:
        (target / "half-written.bin").write_text("partial")
    folder, built = cached_model("onnx", source, {}, Build())
    assert built and folder == target
    assert sorted(p.name for p in folder.iterdir()) == sorted([COMPLETE, "model.bin"])
    assert leftovers(cache, "onnx") == []


def test_a_build_finished_first_by_another_process_is_kept(cache, source):
    target = cache_folder("onnx", source, {})

    def racing_build(folder: Path) -> None:
        (folder / "model.bin").write_text("mine")
        target.mkdir()  # meanwhile another process completes the same build
        (target / "model.bin").write_text("theirs")
        (target / COMPLETE).write_text("{}")

    folder, _ = cached_model("onnx", source, {}, racing_build)
    assert folder == target and (folder / "model.bin").read_text() == "theirs"
    assert leftovers(cache, "onnx") == []


# --- packaged_minilm -----------------------------------------------------------------------------------


def test_the_packaged_model_is_local_and_offline(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "")  # records the value to restore, then unsets it for the call
        monkeypatch.delenv(name)
    folder = packaged_minilm()
    assert folder.is_dir() and sorted(folder.glob("*.safetensors"))
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a user's own choice is left alone
    packaged_minilm()
    assert os.environ["HF_HUB_OFFLINE"] == "0"
