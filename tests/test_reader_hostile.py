"""The reader under hostile or broken datasets and arguments: planted links never write outside the
dataset, a shard that fails its hash raises ``ShardError`` naming it instead of hanging, and bad
arguments fail at construction with a ``ConfigError`` naming them."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streaming.base.dataset import _ShardState
from streaming.base.stream import Stream

from streamclip import ConfigError, ManifestError, ShardError
from streamclip.errors import CacheTooSmall
from streamclip.readers import ClusterClipDataset
from streamclip.readers import fastiter
from streamclip.readers.cachefit import epoch_work
from streamclip.readers.fastiter import shard_bounds, shards_of
from streamclip.readers.spanread import ShardSpanReader

from conftest import convert_docs
from reader_helpers import EPOCH, make_dataset, within

HANG = 60  # seconds: far above an epoch of this dataset; only a hang reaches it
PREPARING = _ShardState.PREPARING


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    return convert_docs(tmp_path_factory.mktemp("hostile"), sample_docs, clusters=6, shard_size=24 << 10)


@pytest.fixture
def copy(dataset, tmp_path) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / "ds"))


def zips(path: Path) -> list[Path]:
    return sorted(path.glob("shard.*.mds.*"))


def test_a_planted_tmp_link_is_refused_and_its_target_kept(copy, tmp_path):
    """The probe's repro: reading used to write shard bytes through ``shard.00000.mds.tmp`` into the victim."""
    victim = tmp_path / "victim.txt"
    victim.write_text("ORIGINAL")
    os.symlink(victim, copy / "shard.00000.mds.tmp")
    with pytest.raises(ManifestError, match=r"shard\.00000\.mds\.tmp is a symlink"):
        list(ClusterClipDataset(local=str(copy), batch_size=4))
    assert victim.read_text() == "ORIGINAL"
    assert (copy / "shard.00000.mds.tmp").is_symlink()  # refused, not silently repaired


def test_a_planted_shard_link_or_fifo_is_refused(copy, tmp_path):
    outside = tmp_path / "anywhere"
    outside.write_bytes(b"not a shard")
    os.symlink(outside, copy / "shard.00001.mds")
    with pytest.raises(ManifestError, match=r"shard\.00001\.mds is a symlink"):
        ClusterClipDataset(local=str(copy), batch_size=4)
    os.unlink(copy / "shard.00001.mds")
    os.mkfifo(copy / "shard.00002.mds")
    with pytest.raises(ManifestError, match=r"shard\.00002\.mds is not a regular file"):
        ClusterClipDataset(local=str(copy), batch_size=4)


def test_a_link_in_the_cache_of_a_remote_is_refused(dataset, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("ORIGINAL")
    os.symlink(victim, cache / "shard.00000.mds.zstd.tmp")
    with pytest.raises(ManifestError, match=r"shard\.00000\.mds\.zstd\.tmp is a symlink"):
        ClusterClipDataset(remote=str(dataset), local=str(cache), batch_size=4)
    assert victim.read_text() == "ORIGINAL"


def test_a_link_planted_after_construction_is_not_written_through(copy, tmp_path):
    """Defence in depth: a ``.tmp`` name appearing later is unlinked before a shard is decompressed over it."""
    ds = make_dataset(copy)
    victim = tmp_path / "victim.txt"
    victim.write_text("ORIGINAL")
    for z in zips(copy):
        os.symlink(victim, copy / (z.name.rsplit(".", 1)[0] + ".tmp"))
    assert len(list(ds)) == EPOCH
    assert victim.read_text() == "ORIGINAL"
    raws = [p for p in copy.glob("shard.*.mds")]
    assert raws and not any(p.is_symlink() for p in raws)


def shard_order(ds: ClusterClipDataset) -> list[int]:
    """Shards of epoch 0 in the order a single worker first reads them."""
    block = ds.shuffle_block_size or max(4_000_000 // ds.num_canonical_nodes, 1 << 18)  # stock's default, set lazily
    work = epoch_work(ds, 0, num_nodes=1, ranks_per_node=1, workers_per_rank=1, block_size=block,
                      num_canonical_nodes=ds.num_canonical_nodes)
    ids = work[0].transpose(2, 0, 1, 3).reshape(-1)
    shards = shards_of(shard_bounds(ds), ids[ids >= 0])
    return shards[np.sort(np.unique(shards, return_index=True)[1])].tolist()


def test_a_shard_failing_its_hash_while_the_reader_waits_on_it_raises_instead_of_hanging(copy, monkeypatch):
    """The probe's hang, forced: the prepare thread marks the bad shard PREPARING and fails only once the
    reader needs it too. Stock ``prepare_shard`` left it PREPARING and the reader waited for ever."""
    probe = make_dataset(copy)
    bad = shard_order(probe)[-1]  # read last: the prepare thread reaches it long before the reader
    del probe
    names = sorted(z.name for z in zips(copy))
    bad_name, other = names[bad], names[(bad + 1) % len(names)]
    shutil.copyfile(copy / other, copy / bad_name)  # valid bytes, wrong hash
    reader_waits, readers = threading.Event(), []
    decompress, current = Stream._decompress_shard_part, ShardSpanReader.current

    def held(self, zip_info, zip_filename, raw_filename, compression):
        if os.path.basename(zip_filename) == bad_name and threading.current_thread() not in readers:
            reader_waits.wait(HANG)  # a background thread: fail only once the reader waits for this shard
        return decompress(self, zip_info, zip_filename, raw_filename, compression)

    def noted(self, shard_id, **kwargs):
        found = current(self, shard_id, **kwargs)
        if shard_id == bad and not found and not reader_waits.is_set():  # let the prepare thread take it first, then fail
            for _ in range(HANG * 100):
                if ds._shard_states[bad] == PREPARING:
                    break
                time.sleep(0.01)
            reader_waits.set()
        return found

    monkeypatch.setattr(Stream, "_decompress_shard_part", held)
    monkeypatch.setattr(ShardSpanReader, "current", noted)
    ds = make_dataset(copy)

    def read():
        readers.append(threading.current_thread())
        list(ds)

    error = within(HANG, read)
    assert reader_waits.is_set()
    assert isinstance(error, ShardError), repr(error)
    assert bad_name in str(error) and "Checksum failure" in str(error)


def test_a_decompressed_shard_of_the_wrong_size_is_refused_naming_it(copy):
    """Stock reads a raw shard it finds with no hash; one cut short would be read as samples."""
    list(make_dataset(copy))  # decompresses every shard it reads
    raws = sorted(copy.glob("shard.*.mds"))
    assert raws
    whole = raws[-1].read_bytes()
    raws[-1].write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ManifestError, match=rf"{re.escape(raws[-1].name)} is {len(whole) // 2} bytes but index.json says {len(whole)}.*decompressed again"):
        make_dataset(copy)
    raws[-1].write_bytes(whole)
    assert len(list(make_dataset(copy))) == EPOCH  # the whole file again: read as before


def test_a_deleted_shard_is_named(copy):
    ds = make_dataset(copy)
    gone = zips(copy)[shard_order(ds)[0]]
    gone.unlink()
    with pytest.raises(ShardError, match=rf"shard \d+ \([^)]*{re.escape(gone.name)}\)"):
        list(ds)


def test_bad_arguments_fail_at_construction_naming_the_argument(dataset, tmp_path):
    with pytest.raises(ConfigError, match="strategy=None is not a strategy"):
        ClusterClipDataset(local=str(dataset), strategy=None, batch_size=4)
    with pytest.raises(ConfigError, match="batch_size=0"):
        ClusterClipDataset(local=str(dataset), batch_size=0)
    with pytest.raises(ConfigError, match="read_path must be one of"):
        ClusterClipDataset(local=str(dataset), read_path="quick", batch_size=4)
    with pytest.raises(ConfigError, match="needs batch_size.*pass batch_size="):
        ClusterClipDataset(remote=str(dataset), local=str(tmp_path / "c"), cache_limit=10**9)


def test_a_cache_limit_over_the_only_copy_is_refused_however_the_path_is_spelled(dataset, tmp_path):
    link = tmp_path / "same"
    os.symlink(dataset, link)
    for remote, local in [(f"{dataset}/", str(dataset)), (str(link), str(dataset)), (str(dataset / "." ), str(dataset))]:
        with pytest.raises(ConfigError, match="deleted for good"):
            ClusterClipDataset(remote=remote, local=local, cache_limit=10**9, batch_size=4)


def test_a_cache_below_streamings_floor_says_its_minimum(dataset, tmp_path):
    with pytest.raises(CacheTooSmall, match="the minimum is") as refused:
        ClusterClipDataset(remote=str(dataset), local=str(tmp_path / "c"), cache_limit="10kb", batch_size=4)
    index = (dataset / "index.json").stat().st_size
    assert refused.value.minimum_bytes > index
    assert f"the minimum is {refused.value.minimum_bytes} bytes" in str(refused.value)


def test_more_epochs_than_eviction_keys_tell_apart_are_refused_under_a_cache_limit(dataset, tmp_path):
    with pytest.raises(ConfigError, match="raise epoch_size"):
        ClusterClipDataset(remote=str(dataset), local=str(tmp_path / "c"), cache_limit=10**9, batch_size=1,
                           strategy="random", epoch_size=1, total_samples=fastiter.KEYED_EPOCHS + 1)


@pytest.mark.s3
def test_s3_endpoint_url_is_this_datasets_only(s3, dataset, tmp_path, monkeypatch):
    """Review 11: ``s3_endpoint_url=`` used to set ``S3_ENDPOINT_URL`` for the whole process."""
    client, prefix = s3.client(), "datasets/hostile-endpoint"
    for path in dataset.iterdir():
        client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{path.name}", Body=path.read_bytes())
    monkeypatch.delenv("S3_ENDPOINT_URL")
    ds = ClusterClipDataset(remote=f"s3://{s3.bucket}/{prefix}", local=str(tmp_path / "cache"), batch_size=16,
                            num_canonical_nodes=2, epoch_size=EPOCH, s3_endpoint_url=s3.endpoint)
    assert "S3_ENDPOINT_URL" not in os.environ
    assert sum(1 for _ in ds) == EPOCH
    assert "S3_ENDPOINT_URL" not in os.environ
