"""Shared fixtures: a real-text subset of the bundled sample, and streaming's leftovers cleaned."""

from __future__ import annotations

import glob
import gzip
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "corpus.jsonl.gz"


def load_sample() -> list[dict]:
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="session")
def sample_docs() -> list[dict]:
    """A 600-document real subset spanning every source: every 6th document, kept in file order."""
    return load_sample()[::6]


def write_jsonl(path: Path, rows: list, *, raw_lines: list[bytes] | None = None) -> Path:
    with open(path, "wb") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        for line in raw_lines or []:
            f.write(line + b"\n")
    return path


@pytest.fixture
def sample_jsonl(tmp_path: Path, sample_docs: list[dict]) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", sample_docs)


@pytest.fixture(autouse=True)
def _clean_streaming_leftovers():
    """MosaicML Streaming leaves shared-memory names and lock files behind; remove them around each test."""
    yield
    try:
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()
    except ImportError:
        pass
    for path in glob.glob("/dev/shm/0000*_*") + glob.glob("/tmp/0000*_*filelock"):
        try:
            os.remove(path)
        except OSError:
            pass
