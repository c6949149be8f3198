"""The fast read path's background threads under a tight cache and on abnormal exits: the ready thread
never downloads a shard the reader has passed, an iterator that fails leaves no thread behind and the
next epoch is clean, and evicted shards stop taking disk as soon as they are evicted (unlinked files
still mapped count: the directory listing alone cannot see them)."""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import pytest
from streaming.base.stream import Stream
from torch.utils.data import DataLoader

from streamclip import ShardError
from streamclip.readers import ClusterClipDataset
from streamclip.readers import dataset as dataset_module
from streamclip.readers import spanread
from streamclip.readers.cachefit import node_window

from reader_helpers import EPOCH, identity, make_dataset
from test_cache_fit import READ, downloads, minimum_in, node_shards, remote, visits  # noqa: F401 (fixtures)

HANG = 60  # seconds; only a thread that never starts or never ends reaches it


def tight(remote: Path, tmp_path: Path, **extra) -> ClusterClipDataset:
    """The smallest cache the fit accepts for one worker, predownload one batch (test_cache_fit's setting)."""
    kwargs = dict(READ, predownload=16, **extra)
    with pytest.raises(ValueError) as refused:
        ClusterClipDataset(remote=str(remote), local=str(tmp_path / "tiny"), cache_limit=100_000, **kwargs)
    return ClusterClipDataset(remote=str(remote), local=str(tmp_path / "cache"), cache_limit=minimum_in(str(refused.value)), **kwargs)


def test_a_ready_thread_behind_the_reader_downloads_no_shard_already_read(remote, tmp_path, downloads, monkeypatch):
    """Forced: the ready thread starts only once the reader is half-way (the yield loop reads past it any
    shard that is LOCAL). It used to walk from 0 and download again every consumed shard evicted since."""
    ready = dataset_module.ready_spans

    def late(ds, it):
        for _ in range(HANG * 100):
            if it.yield_index >= it.total // 2 or it.should_exit():
                break
            threading.Event().wait(0.01)
        return ready(ds, it)

    monkeypatch.setattr(dataset_module, "ready_spans", late)
    ds = tight(remote, tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="cache_limit")
        drawn = [s for batch in DataLoader(ds, batch_size=16, num_workers=0, collate_fn=identity) for s in batch]
    assert len(drawn) == EPOCH
    copies = downloads.read_text().split()
    shards = node_shards(ds, 1)
    assert len(copies) <= visits(shards, node_window(ds, 1, 1))


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


@pytest.mark.parametrize("where", ["background", "reader"])
def test_a_failing_epoch_leaves_no_thread_and_the_next_epoch_is_clean(remote, tmp_path, monkeypatch, where):
    """One failure mid-epoch (a download in the prepare thread, or a corrupt shard file decoded by the
    reader): the iterator raises ShardError, its threads are gone when it has, and the next epoch of the
    same dataset reads every sample (stock refused every later epoch once its event was set)."""
    ds = make_dataset(remote, epochs=2, read_path="fast", predownload=16)
    seen: list[str] = []  # shards prepared or mapped so far, in order; the third one fails, once

    if where == "background":  # the prepare thread's decompression of it fails, as a dropped connection would
        prepare = Stream.prepare_shard

        def flaky(self, shard):
            seen.append(shard.file_pairs[0][0].basename)
            if len(seen) == 3:
                raise OSError(f"connection reset while preparing {seen[-1]}")
            return prepare(self, shard)

        monkeypatch.setattr(Stream, "prepare_shard", flaky)
    else:  # the reader finds it corrupt when it maps it
        opened = spanread._Mapped.open

        def corrupt(path, shard):
            seen.append(path)
            if len(seen) == 3:
                raise ShardError(f"{path}: corrupt sample 0 (simulated)")
            return opened(path, shard)

        monkeypatch.setattr(spanread._Mapped, "open", staticmethod(corrupt))
    before = set(threading.enumerate())
    got = 0
    with pytest.raises(ShardError):
        for _ in ds:
            got += 1
    assert len(seen) >= 3 and got < EPOCH
    assert new_threads(before) == []
    assert sum(1 for _ in ds) == EPOCH
    assert new_threads(before) == []


def real_disk_use(cache: Path) -> int:
    """Bytes of ``cache`` in the cache's own unit (file sizes, as ``cache_limit`` counts them): its files plus
    the unlinked files this process still maps or holds open (their blocks are freed only when the last
    mapping goes; the directory listing cannot see them)."""
    total = 0
    for entry in os.scandir(cache):
        try:
            total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:  # evicted or renamed since listed
            continue
    unlinked = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.rstrip("\n").split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith(str(cache)) and fields[5].endswith(" (deleted)"):
                try:
                    st = os.stat(f"/proc/self/map_files/{fields[0]}")
                except FileNotFoundError:  # unmapped since the listing
                    continue
                unlinked[(st.st_dev, st.st_ino)] = st.st_size
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(cache)) and target.endswith(" (deleted)"):
                st = os.stat(f"/proc/self/fd/{fd}")
                unlinked[(st.st_dev, st.st_ino)] = st.st_size
        except OSError:
            continue
    return total + sum(unlinked.values())


def test_real_disk_use_stays_within_the_cache_limit_over_an_epoch(remote, tmp_path):
    """Measured after every batch, in the reading process (0 workers): evicted shards used to stay mapped
    for 256 shard lookups, so they stayed on disk while the listing looked within the limit."""
    ds = tight(remote, tmp_path)
    cache = Path(ds.streams[0].local)
    peak = 0
    for batch in DataLoader(ds, batch_size=16, num_workers=0, collate_fn=identity):
        assert len(batch) == 16
        peak = max(peak, real_disk_use(cache))
    assert 0 < peak <= ds.cache_limit
