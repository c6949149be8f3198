"""Units of ``streamclip.readers.fastiter``, the span-reading epoch iterator, checked against stock's path.

The dataset is tiny and cut into 4 KiB shards (1 to ~15 samples each), so the yield loop's chunks
span several shards, some shards hold a single sample, and the last chunk of an epoch is partial.
Every expected sample sequence is the one ``read_path="stock"`` (streaming's per-sample loop) yields
for the same dataset, epoch and strategy; every expected index is derived from the epoch's work.
(``test_fast_read`` covers each strategy with DataLoader workers; here: chunking, early stops, threads
and read errors.)
"""

from __future__ import annotations

import gc
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from streamclip import ShardError
from streamclip.errors import CacheTooSmall, ConfigError
from streamclip.manifest import open_manifest
from streamclip.readers import ClusterClipDataset
from streamclip.readers.compat import _IterState
from streamclip.readers import fastiter
from streamclip.readers.fastiter import check_keyable, shard_bounds, shards_of, stop_iteration

from conftest import convert_docs
from reader_helpers import make_dataset, within
from test_fast_read import typed

EPOCH = 240  # = 15 batches of 16 on one canonical node: no padding unless a test asks for it
BASE = dict(strategy="random", num_canonical_nodes=1, batch_size=16, epoch_size=EPOCH, epochs=2, seed=5)
HANG = 30  # seconds; an epoch here takes well under one, only a hang reaches it
low_predownload = pytest.mark.filterwarnings("ignore:predownload < batch_size")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    """240 documents, 4 clusters, shards of 4 KiB: dozens of shards, some of a single sample."""
    path = convert_docs(tmp_path_factory.mktemp("fastiter"), sample_docs[:240], clusters=4, shard_size=4 << 10)
    sizes = open_manifest(str(path)).samples_per_shard
    assert len(sizes) > 20 and min(sizes) == 1 and max(sizes) > 1
    return path


def copy_of(dataset: Path, tmp_path: Path) -> Path:
    """A private copy holding only the compressed shards (whatever other tests decompressed in the fixture)."""
    return Path(shutil.copytree(dataset, tmp_path / "copy", ignore=shutil.ignore_patterns("*.mds")))


def reader_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """The fast path's prepare/ready threads started since ``before`` and still running."""
    return [t for t in threading.enumerate() if t not in before and t.is_alive() and t.name.startswith("streamclip-reader")]


def drain(samples: Any, into: list) -> None:
    """Append what ``samples`` yields to ``into`` one at a time (so what came before an error is kept)."""
    for sample in samples:
        into.append(sample)


def stock_epochs(path: Path, epochs: int = 1, **kwargs: Any) -> tuple[list[list[tuple]], np.ndarray]:
    """Stock's samples of the first ``epochs`` epochs, and this worker's ids of the last one (-1: padding)."""
    ds = make_dataset(path, read_path="stock", **{**BASE, **kwargs})
    samples = [typed(list(ds)) for _ in range(epochs)]
    return samples, ds._iterator.sample_ids.copy()


def first_uses(bounds: np.ndarray, ids: np.ndarray) -> dict[int, int]:
    """Shard -> position in ``ids`` of its first sample."""
    positions = np.flatnonzero(ids >= 0)
    shards, index = np.unique(shards_of(bounds, ids[positions]), return_index=True)
    return dict(zip(shards.tolist(), positions[index].tolist()))


def decompressed_copy(dataset: Path, tmp_path: Path) -> Path:
    """A copy in which every shard epoch 0 reads is decompressed (raw files of the right size)."""
    local = copy_of(dataset, tmp_path)
    assert len(list(make_dataset(local, read_path="fast", **BASE))) == EPOCH
    return local


def pick_victim(ds: ClusterClipDataset, ids: np.ndarray, after: int) -> tuple[int, int]:
    """The shard first used earliest at or after position ``after``, and that position."""
    later = {shard: at for shard, at in first_uses(shard_bounds(ds), ids).items() if at >= after}
    shard = min(later, key=later.get)
    return shard, later[shard]


def read_until_error(ds: ClusterClipDataset) -> tuple[list[dict], BaseException | None]:
    got: list[dict] = []
    error = within(HANG, lambda: drain(ds, got))
    return got, error


# --- check_keyable, shard_bounds, shards_of ----------------------------------------------------------------


def test_check_keyable_accepts_exactly_the_runs_whose_keys_stay_below_the_clock():
    """Eviction keys are ``epoch << EPOCH_SHIFT | position``; every key of an accepted run must lie below CLOCK
    (where stock's time_ns stamps start), and the first run refused is the first that would reach it."""
    epochs, size = fastiter.KEYED_EPOCHS, 1 << fastiter.EPOCH_SHIFT
    assert ((epochs - 1) << fastiter.EPOCH_SHIFT | (size - 1)) < fastiter.CLOCK <= epochs << fastiter.EPOCH_SHIFT
    assert time.time_ns() >= fastiter.CLOCK  # a fresh download's stamp is never taken for a position
    check_keyable(epochs, size - 1)
    check_keyable(1, 1)
    with pytest.raises(ConfigError, match=rf"the run has {epochs + 1} epochs, more than the {epochs}.*raise epoch_size"):
        check_keyable(epochs + 1, 1)
    with pytest.raises(ConfigError, match=rf"epoch_size={size} is over the {size} samples per epoch.*lower epoch_size"):
        check_keyable(1, size)


def test_shards_of_matches_a_walk_over_every_sample_of_random_layouts():
    """Random shard sizes (many of one sample), every id in a random order: the shard and the index in it
    are those of a plain walk over the shards."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        sizes = rng.integers(1, 9, size=int(rng.integers(1, 30)))
        walk = [(shard, index) for shard, n in enumerate(sizes.tolist()) for index in range(n)]
        bounds = shard_bounds(SimpleNamespace(samples_per_shard=sizes.tolist()))
        assert bounds.dtype == np.int64 and len(bounds) == len(sizes) + 1
        assert bounds[0] == 0 and bounds[-1] == len(walk)
        ids = rng.permutation(len(walk)).astype(np.int64)
        shards = shards_of(bounds, ids)
        assert list(zip(shards.tolist(), (ids - bounds[shards]).tolist())) == [walk[i] for i in ids.tolist()]


def test_shards_of_maps_ids_beyond_32_bits_at_each_shard_edge():
    """Shards of billions of samples (a large run's global ids): each shard's first and last id and the ids
    around them land in the right shard, by a linear scan of the cumulative sizes."""
    sizes = [3 << 31, 1, 5, 1 << 33, 1, 7 << 30]
    bounds = shard_bounds(SimpleNamespace(samples_per_shard=sizes))
    edges, total = [], 0
    for n in sizes:
        edges += [total, total + 1, total + n - 2, total + n - 1]
        total += n
    ids = np.array(sorted({i for i in edges if 0 <= i < total}), dtype=np.int64)

    def scan(i: int) -> int:
        end = 0
        for shard, n in enumerate(sizes):
            end += n
            if i < end:
                return shard
        raise AssertionError(i)

    assert shards_of(bounds, ids).tolist() == [scan(int(i)) for i in ids]


def test_shard_bounds_of_a_dataset_agree_with_stocks_spanner(dataset):
    """Stock maps a global id to (shard, index) with its Spanner; the fast path's bounds must map every id alike."""
    ds = make_dataset(dataset, **BASE)
    bounds = shard_bounds(ds)
    assert bounds[-1] == ds.manifest.num_documents
    ids = np.arange(bounds[-1], dtype=np.int64)
    shards = shards_of(bounds, ids)
    assert list(zip(shards.tolist(), (ids - bounds[shards]).tolist())) == [tuple(map(int, ds.spanner[int(i)])) for i in ids]


# --- the fast path yields stock's samples ------------------------------------------------------------------


@low_predownload
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("predownload", [1, 7, 64, 65, 1000])
def test_fast_path_yields_stocks_samples_for_any_chunk_size(dataset, predownload, shuffle):
    """The yield loop decodes ``predownload`` ids at a time and advances per STEP (64) samples: chunks of one id,
    odd chunks ending mid-shard, exactly STEP and one more, one chunk larger than the epoch. epoch_size=250
    pads the worker's last batch with -1 ids, so the last chunk is partial and ends in padding. Unshuffled,
    the ids run through whole shards in turn, so chunks cross shard boundaries."""
    kwargs = dict(predownload=predownload, shuffle=shuffle, epoch_size=250)
    stock, ids = stock_epochs(dataset, epochs=2, **kwargs)
    ds = make_dataset(dataset, read_path="fast", **{**BASE, **kwargs})
    assert [typed(list(ds)) for _ in range(2)] == stock
    assert [len(epoch) for epoch in stock] == [250, 250]
    # What the case is about actually happens in it: padding, shard changes inside a chunk, one-sample shards read.
    assert (ids < 0).sum() == -(-250 // 16) * 16 - 250
    bounds, sizes = shard_bounds(ds), np.asarray(ds.samples_per_shard)
    shards = shards_of(bounds, ids[ids >= 0])
    assert (sizes[np.unique(shards)] == 1).any()
    if predownload > 1:
        assert any(len(set(shards[i : i + predownload].tolist())) > 1 for i in range(0, len(shards), predownload))


@pytest.mark.parametrize("sample_in_epoch", [37, EPOCH])
def test_a_resume_mid_batch_or_at_the_epochs_end_yields_what_stock_yields(dataset, sample_in_epoch):
    """Mid-batch, the rest of the epoch is padded with -1 ids; at the end there is no work at all (the
    iterator yields nothing and, like stock, sets up no iteration). Either way the next epoch follows, as with stock."""

    def resumed(read_path: str) -> tuple[list[tuple], bool, list[tuple]]:
        probe = make_dataset(dataset, read_path=read_path, **BASE)
        state = {**probe.state_dict(0, True), "epoch": 0, "sample_in_epoch": sample_in_epoch}
        del probe
        ds = make_dataset(dataset, read_path=read_path, **BASE)
        ds.load_state_dict(state)
        rest = typed(list(ds))
        return rest, hasattr(ds, "_iterator"), typed(list(ds))

    stock = resumed("stock")
    assert [len(stock[0]), len(stock[2])] == [EPOCH - sample_in_epoch, EPOCH]
    assert stock[1] == (sample_in_epoch < EPOCH)
    assert resumed("fast") == stock


def test_under_streamings_floor_cache_shards_are_evicted_and_stocks_samples_still_come(dataset, tmp_path):
    """Unshuffled spans through one-sample and larger shards under the smallest cache stock allows (4 x the largest
    shard; the fit, which would want the whole dataset here, is bypassed as in test_fast_read): the reader keeps
    only the mappings the next chunk needs and prepares again shards evicted since they were ready; the samples
    are still stock's, read without any limit."""
    stock, _ = stock_epochs(dataset, epochs=2, shuffle=False, predownload=16)
    evicted: list[int] = []

    class Tight(ClusterClipDataset):
        def _fit_cache(self, **_: Any) -> None:
            return None

        def _evict_shard(self, shard_id: int) -> None:
            evicted.append(shard_id)
            super()._evict_shard(shard_id)

    gc.collect()
    with pytest.raises(CacheTooSmall) as refused:
        Tight(remote=str(dataset), local=str(tmp_path / "tiny"), cache_limit=1 << 12, read_path="fast", shuffle=False,
              predownload=16, **BASE)
    gc.collect()
    ds = Tight(remote=str(dataset), local=str(tmp_path / "cache"), cache_limit=refused.value.minimum_bytes, read_path="fast",
               shuffle=False, predownload=16, **BASE)
    assert [typed(list(ds)) for _ in range(2)] == stock
    assert len(evicted) > len(ds.shards)  # two epochs through every shard, a cache of a few: most are copied again


# --- early stops and threads -------------------------------------------------------------------------------


@pytest.mark.parametrize("taken", [1, 64, 65, 200])
def test_dropping_an_epoch_early_joins_its_threads_and_the_next_epoch_is_stocks(dataset, taken):
    """Closing the iterator mid-epoch (a loop that breaks) must stop and join both background threads before
    control returns; the dataset's next epoch then yields what stock's does after the same break."""

    def run(read_path: str) -> tuple[list[tuple], list[tuple]]:
        before = set(threading.enumerate())
        ds = make_dataset(dataset, read_path=read_path, predownload=16, **BASE)
        epoch = iter(ds)
        head = [next(epoch) for _ in range(taken)]
        it = ds._iterator
        if read_path == "fast":
            assert len(reader_threads(before)) == 2  # both still wait on the predownload window
        epoch.close()
        if read_path == "fast":
            assert reader_threads(before) == [] and it._state == _IterState.EXITED
        return typed(head), typed(list(ds))

    assert run("fast") == run("stock")


@pytest.mark.parametrize("read_path", ["fast", "stock"])
def test_stop_iteration_returns_only_once_both_background_threads_have_ended(dataset, read_path):
    """What a new epoch does to the previous one: both threads (held by the predownload window, not done) end
    before stop_iteration returns, for the fast path's own threads and for stock's pooled ones; again is a no-op."""
    before = set(threading.enumerate())
    ds = make_dataset(dataset, read_path=read_path, predownload=16, **BASE)
    epoch = iter(ds)
    next(epoch)
    it = ds._iterator
    assert it._num_exited == 0 and not it.should_exit()
    assert within(HANG, lambda: stop_iteration(it)) is None
    assert it.should_exit() and it._num_exited >= 2
    if read_path == "fast":
        assert reader_threads(before) == [] and it._state == _IterState.EXITED
    assert within(HANG, lambda: stop_iteration(it)) is None
    stop_iteration(None)
    epoch.close()
    assert reader_threads(before) == []


def test_a_superseded_epoch_yields_nothing_more_like_stock(dataset, tmp_path):
    """Stock's yield loop tests ``should_exit`` before every sample, so an epoch stopped by the start of the next
    one ends at once; the fast path says it makes the same exit tests. (Every shard decompressed beforehand: no
    shard is PREPARING, so the fast path's first chunk is whole, ids 0-31.)"""
    local = decompressed_copy(dataset, tmp_path)

    def leftover(read_path: str) -> tuple[int, int]:
        ds = make_dataset(local, read_path=read_path, predownload=32, **BASE)
        first = iter(ds)
        for _ in range(5):
            next(first)
        second = iter(ds)
        next(second)  # the next epoch starts: the first one is stopped
        rest = len(list(first))
        more = len(list(second))  # the old epoch's end stopped its own iteration, not this one
        return rest, more

    fast, stock = leftover("fast"), leftover("stock")
    assert fast == stock and fast[0] == 0 and fast[1] == len(make_dataset(local, **BASE)) - 1, (fast, stock)


def test_the_prepare_thread_prepares_each_shard_once_at_its_first_use_within_the_predownload_window(dataset, tmp_path):
    """From an empty cache: stock calls prepare_shard per sample, the fast path once per shard (nothing evicts),
    from a background thread, with ``prepare_index`` at the shard's first use and never more than ``predownload``
    ids past what the reader has consumed."""
    predownload = 32
    calls: list[tuple[str, int, int, int]] = []
    consumed = [0]

    class Recording(ClusterClipDataset):
        def prepare_shard(self, shard_id: int, blocking: bool = True) -> None:
            it = getattr(self, "_iterator", None)
            calls.append((threading.current_thread().name, shard_id, -1 if it is None else it.prepare_index, consumed[0]))
            super().prepare_shard(shard_id, blocking)

    stock, _ = stock_epochs(dataset, predownload=predownload)
    gc.collect()  # finalise the stock dataset before this one takes its shared-memory prefix (see make_dataset)
    ds = Recording(remote=str(dataset), local=str(tmp_path / "cache"), read_path="fast", predownload=predownload, **BASE)
    samples = []
    for sample in ds:
        samples.append(sample)
        consumed[0] += 1
        time.sleep(0.0005)  # a reader slower than the copies: the prepare thread runs ahead to the window
    assert typed(samples) == stock[0]
    ids = ds._iterator.sample_ids
    firsts = first_uses(shard_bounds(ds), ids)
    assert Counter(shard for _, shard, _, _ in calls) == Counter(list(firsts))
    for name, shard, index, seen in calls:
        assert name.startswith("streamclip-reader"), name
        assert index == firsts[shard]
        assert 0 <= index - seen <= predownload
    assert max(index - seen for _, _, index, seen in calls) > 0


def test_yield_index_trails_the_consumer_by_less_than_step_samples_within_a_large_chunk(dataset, tmp_path):
    """A chunk of 200 ids is decoded at once, but ``yield_index`` (the prepare thread's pacing) still moves every
    STEP samples handed out, as stock's moves every sample: never ahead of the consumer, never STEP behind."""
    local = decompressed_copy(dataset, tmp_path)  # nothing PREPARING: the first chunk is whole
    (stock,), _ = stock_epochs(local, predownload=200)
    ds = make_dataset(local, read_path="fast", predownload=200, **BASE)
    samples, lags = [], []
    for sample in ds:
        lags.append(len(samples) - ds._iterator.yield_index)
        samples.append(sample)
    assert typed(samples) == stock
    assert 200 > fastiter.STEP and 0 == min(lags) and max(lags) == fastiter.STEP - 1


# --- read errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zip_too", [False, True])
def test_a_raw_shard_deleted_after_it_was_ready_is_prepared_again_or_named(dataset, tmp_path, zip_too):
    """A shard LOCAL and decompressed when the epoch starts loses its raw file before the reader first maps it
    (evicted by another process, say). Stock's get_item prepares it again (from the zip here); with the zip gone
    too, the iterator ends with a ShardError naming the shard, promptly, its threads joined, having yielded only
    stock's samples before it."""
    local = decompressed_copy(dataset, tmp_path)
    (stock,), ids = stock_epochs(dataset, predownload=100)
    before = set(threading.enumerate())
    ds = make_dataset(local, read_path="fast", predownload=100, **BASE)
    epoch = iter(ds)
    got = [next(epoch) for _ in range(65)]  # every shard is LOCAL: the first chunk, ids 0-99, is decoded whole
    victim, first = pick_victim(ds, ids, after=100)
    raw = local / ds.shards[victim].raw_data.basename
    assert raw.exists()
    raw.unlink()
    if zip_too:
        (local / ds.shards[victim].zip_data.basename).unlink()
    error = within(HANG, lambda: drain(epoch, got))
    assert reader_threads(before) == []
    if not zip_too:
        assert error is None and typed(got) == stock and raw.exists()
        return
    assert isinstance(error, ShardError), repr(error)
    assert f"shard {victim} (" in str(error) and raw.name in str(error)
    assert 65 <= len(got) <= first and typed(got) == stock[: len(got)]


@pytest.mark.parametrize("damage", ["sample count", "offsets", "column sizes"])
def test_a_structurally_corrupt_raw_shard_ends_the_epoch_with_a_shard_error_naming_it(dataset, tmp_path, damage):
    """A decompressed shard damaged in place (same size, so construction accepts it) and first read in the third
    chunk: the iterator yields stock's samples up to it at most, then a ShardError naming the file; no hang, no thread."""
    local = decompressed_copy(dataset, tmp_path)
    (stock,), ids = stock_epochs(dataset, predownload=32)
    probe = make_dataset(local, **BASE)
    victim, first = pick_victim(probe, ids, after=64)
    raw = local / probe.shards[victim].raw_data.basename
    data = bytearray(raw.read_bytes())
    n = int(np.frombuffer(data[:4], np.uint32)[0])
    assert n == probe.shards[victim].samples
    if damage == "sample count":
        data[:4] = np.uint32(n + 1).tobytes()
    elif damage == "offsets":  # the end of the last sample, past the end of the file
        data[4 + 4 * n : 8 + 4 * n] = np.uint32(len(data) + 1).tobytes()
    else:  # the first size header of sample 0 one byte longer: its columns no longer end where the next sample starts
        start = int(np.frombuffer(data[4:8], np.uint32)[0])
        data[start : start + 4] = (np.frombuffer(data[start : start + 4], np.uint32) + 1).tobytes()
    raw.write_bytes(bytes(data))
    del probe
    before = set(threading.enumerate())
    got, error = read_until_error(make_dataset(local, read_path="fast", predownload=32, **BASE))
    assert isinstance(error, ShardError), repr(error)
    assert str(raw) in str(error)
    assert 0 < len(got) <= first and typed(got) == stock[: len(got)]
    assert reader_threads(before) == []


def test_a_sample_whose_text_is_not_utf8_ends_the_epoch_with_a_shard_error_naming_it(dataset, tmp_path):
    """fastiter promises that every failure to read a shard is a ShardError naming it; bytes damaged inside a
    sample's text (the raw file carries no hash, and its size is unchanged) are such a failure."""
    local = decompressed_copy(dataset, tmp_path)
    (stock,), ids = stock_epochs(dataset, predownload=32)
    probe = make_dataset(local, **BASE)
    victim, first = pick_victim(probe, ids, after=64)
    shard = probe.shards[victim]
    raw = local / shard.raw_data.basename
    data = bytearray(raw.read_bytes())
    index = int(ids[first] - shard_bounds(probe)[victim])  # the sample read first: at position ``first``
    offset = int(np.frombuffer(data[4 + 4 * index : 8 + 4 * index], np.uint32)[0])
    variable = [name for name, size in zip(shard.column_names, shard.column_sizes) if not size]
    sizes = np.frombuffer(data[offset : offset + 4 * len(variable)], np.uint32).tolist()
    where = offset + 4 * len(variable)  # then each column's bytes, in column order
    for name, size in zip(shard.column_names, shard.column_sizes):
        if name == "text":
            break
        where += size or sizes[variable.index(name)]
    assert sizes[variable.index("text")] > 0
    data[where] = 0xFF  # never valid in UTF-8
    raw.write_bytes(bytes(data))
    del probe
    before = set(threading.enumerate())
    got, error = read_until_error(make_dataset(local, read_path="fast", predownload=32, **BASE))
    assert reader_threads(before) == []
    assert typed(got) == stock[: len(got)] and len(got) <= first
    assert isinstance(error, ShardError), repr(error)
    assert str(raw) in str(error)
