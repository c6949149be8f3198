"""Every configuration keeps the one resume contract (``resume_contract.assert_resumes_exactly``), and a
checkpoint is validated before it is trusted.

Axes, in full: every strategy x {epoch 0, epoch 1} x {fast, stock read path} x {0, 2} workers before x {0, 2}
workers after x {no cache limit, the tightest cache that works, over a separate remote}: 224 cases. Checkpoints
are taken from the main process, also with workers (the case that hid review item 5). The dataset is tiny
(300 documents, 6 clusters, a dozen shards) and an epoch 16 batches of 8, so a case takes a fraction of a second
once the session's imports are frozen out of the garbage collector (conftest).
"""

from __future__ import annotations

import gc
import itertools
from functools import cache as memo
from pathlib import Path

import pytest

from streamclip import open_manifest
from streamclip.errors import CacheTooSmall, ResumeMismatch
from streamclip.readers import ClusterClipDataset

from conftest import convert_docs
from resume_contract import assert_resumes_exactly, read_epoch

BATCH, EPOCH, MIDPOINT = 8, 128, 5  # EPOCH: a multiple of num_canonical_nodes x batch, so no padding
STRATEGIES = {
    "random": {},
    "uniform": {},
    "clusterclip": {"clip": 2},
    "temperature": {"t": 0.5, "clip": 3},
    "weighted": {"weights": (6, 1, 2, 1, 3, 1), "clip": 3},
    "general-to-specific": {"switch": 0.5, "clip": 3},
    "specific-to-general": {"switch": 0.5, "clip": 3},
}


@pytest.fixture(scope="module")
def remote(tmp_path_factory, sample_docs) -> Path:
    out = convert_docs(tmp_path_factory.mktemp("contract"), sample_docs[::2], clusters=6, shard_size=24 << 10)
    manifest = open_manifest(str(out))
    assert len(manifest.clusters) == 6 and 10 <= len(manifest.samples_per_shard) <= 30
    return out


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """Fresh cache directories, one per dataset: a resumed run starts from an empty cache, as after a restart."""
    root = tmp_path_factory.mktemp("caches")
    counter = itertools.count()
    return lambda: str(root / f"c{next(counter)}")


def factory(remote: Path, caches, strategy: str, read_path: str):
    """``make_dataset(cache=...)``: ``cache`` is None (the dataset read in place) or a cache limit in bytes."""
    def make_dataset(cache: int | None) -> ClusterClipDataset:
        where = dict(local=str(remote)) if cache is None else dict(remote=str(remote), local=caches(), cache_limit=cache)
        return ClusterClipDataset(strategy=strategy, strategy_params=STRATEGIES[strategy], epochs=2, epoch_size=EPOCH,
                                  seed=7, batch_size=BATCH, num_canonical_nodes=2, predownload=BATCH, cache_workers=2,
                                  read_path=read_path, **where)
    return make_dataset


def tightest_cache(make_dataset) -> int:
    """The smallest cache_limit construction accepts, from the minimum each refusal names."""
    limit = 1
    for _ in range(4):
        try:
            make_dataset(cache=limit)
            return limit
        except CacheTooSmall as refused:
            assert refused.minimum_bytes > limit
            limit = refused.minimum_bytes
    raise AssertionError("the minimum a refusal names was refused again")


@pytest.fixture(scope="module")
def contract(remote, caches):
    """(make_dataset, cache, the uninterrupted epoch) per case; the expensive parts computed once per module."""
    limits, fulls = {}, {}

    def get(strategy: str, read_path: str, epoch: int, tight: bool):
        make_dataset = factory(remote, caches, strategy, read_path)
        if tight and (strategy, read_path) not in limits:
            limits[strategy, read_path] = tightest_cache(make_dataset)
        cache = limits[strategy, read_path] if tight else None
        if (strategy, read_path, epoch, tight) not in fulls:
            fulls[strategy, read_path, epoch, tight] = read_epoch(make_dataset, epoch, cache)
        return make_dataset, cache, fulls[strategy, read_path, epoch, tight]

    yield get
    gc.collect()


CELLS = list(itertools.product(STRATEGIES, (0, 1), (False, True), ("fast", "stock"), (0, 2), (0, 2)))


@pytest.mark.parametrize("strategy,epoch,tight,read_path,workers_before,workers_after", CELLS,
                         ids=[f"{s}-epoch{e}-{'tight' if t else 'nolimit'}-{r}-{a}to{b}" for s, e, t, r, a, b in CELLS])
def test_resume_yields_exactly_the_rest_of_the_epoch(contract, strategy, epoch, tight, read_path, workers_before, workers_after):
    make_dataset, cache, full = contract(strategy, read_path, epoch, tight)
    assert len(full) == EPOCH // BATCH
    assert_resumes_exactly(make_dataset, epoch, MIDPOINT, workers_before, workers_after, cache, full=full)


def _checkpoint(make_dataset, workers: int, cache: int | None = None) -> dict:
    """A mid-epoch checkpoint taken from the main process of a loader with ``workers`` workers (40 of 128 samples)."""
    gc.collect()
    from resume_contract import _loader

    loader = _loader(make_dataset(cache=cache), workers)
    batches = iter(loader)
    for _ in range(MIDPOINT):
        next(batches)
    state = loader.state_dict()
    sum(1 for _ in batches)
    return state


def test_a_checkpoint_from_workers_pins_the_effective_block_even_under_another_cache(remote, caches, contract):
    """Review 5: the block saved is the one the interrupted epoch was shuffled with, whatever the cache it is
    resumed under; a checkpoint with no block (stock's default was in force) is resumed with that default,
    not with the block fitted to the new cache (which re-shuffled the epoch: samples skipped and repeated)."""
    make_dataset, tight, _ = contract("clusterclip", "fast", 0, True)
    state = _checkpoint(make_dataset, workers=2)
    assert state["streamclip"]["shuffle_block_size"] == max(4_000_000 // 2, 1 << 18)
    full = read_epoch(make_dataset, 0, None)
    for saved in (state, {**state, "streamclip": {**state["streamclip"], "shuffle_block_size": None}}):
        gc.collect()
        resumed = make_dataset(cache=tight)
        assert resumed.shuffle_block_size < 1 << 18  # fitted to the tight cache
        resumed.load_state_dict(saved)
        assert resumed.shuffle_block_size == max(4_000_000 // 2, 1 << 18)
        from resume_contract import _loader

        tail = [b["text"] for b in _loader(resumed, 0)]
        assert tail == full[MIDPOINT:]


@pytest.mark.parametrize("field,value,where", [
    ("sample_in_epoch", -50, "top"), ("sample_in_epoch", 10**6, "top"), ("sample_in_epoch", "abc", "top"),
    ("epoch", -2, "top"), ("epoch", 2, "top"), ("epoch", 0.5, "top"), ("num_canonical_nodes", 0, "top"),
    ("shuffle_seed", None, "top"), ("shuffle_block_size", 0, "streamclip"), ("shuffle_block_size", "big", "streamclip"),
])
def test_an_edited_checkpoint_is_refused_naming_the_field_value_and_range(remote, caches, field, value, where):
    """Probe 12: a hand-edited position was accepted (``sample_in_epoch: -50`` gave a 50-sample epoch) or failed
    only while iterating with a stock or numpy message."""
    make_dataset = factory(remote, caches, "uniform", "fast")
    state = _checkpoint(make_dataset, workers=0)
    edited = dict(state, streamclip=dict(state["streamclip"]))
    (edited if where == "top" else edited["streamclip"])[field] = value
    with pytest.raises(ResumeMismatch, match=rf"checkpoint field {field}={value!r} is not valid: it must be an integer in \[") as refused:
        make_dataset(cache=None).load_state_dict(edited)
    assert "resume from another one" in str(refused.value)
    gc.collect()
    fine = make_dataset(cache=None)
    fine.load_state_dict(state)  # the unedited checkpoint still loads


@pytest.mark.parametrize("workers", [0, 2])
def test_a_checkpoint_survives_its_shared_memory_being_unlinked(contract, workers):
    """Stock keeps a loaded checkpoint only in shared memory named by the dataset's prefix; a late collection of an
    earlier dataset that used the same prefix unlinks that name, and stock then silently restarts the epoch. The
    dataset carries its loaded checkpoint to its workers, so the resume still yields exactly the remainder."""
    from multiprocessing.shared_memory import SharedMemory

    from streaming.base.constant import RESUME
    from streaming.base.shared.prefix import _get_path

    from resume_contract import _loader

    make_dataset, _, full = contract("clusterclip", "fast", 0, False)
    state = _checkpoint(make_dataset, workers=0)
    gc.collect()
    resumed = make_dataset(cache=None)
    resumed.load_state_dict(state)
    gone = SharedMemory(name=_get_path(resumed._shm_prefix_int, RESUME), create=False)
    gone.close()
    gone.unlink()  # what the late collection does
    tail = [batch["text"] for batch in _loader(resumed, workers)]
    assert sorted(t for b in tail for t in b) == sorted(t for b in full[MIDPOINT:] for t in b)
