"""``split``: one streamclip dataset in, a train set and a held-out eval set out, in the same format.

A held-out set must hold documents of every cluster, drawn the same way whatever the cluster's
size, or "rare clusters are learned better" cannot be measured. So the eval set takes N documents
of each cluster (a seeded draw), and the train set a seeded fraction of the rest. A cluster of N
documents or fewer has nothing to spare: it stays whole in train, is absent from eval, and is
reported.

Both outputs keep the source's clustering, embedding and centroids. The train set has the source's
clusters with the source's ids (every cluster keeps at least one train document). The eval set's
manifest can only list clusters that have documents (``open_manifest`` refuses empty ones and
wants ids 0..K'-1), so when a cluster is absent its clusters are renumbered; ``extra.split.cluster_ids``
of both manifests gives, for each of its clusters, the source's (and so the train set's) id.
Documents are packed by the converter's own code (``packing.pack_clusters``) into a temporary
directory renamed into place when complete; an ``s3://`` output is staged locally and uploaded
shard by shard, the manifest last (``upload.S3Uploader``), as ``convert`` does.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import zstandard
from numpy.typing import NDArray

from streamclip.errors import ConfigError, InputError
from streamclip.manifest import CENTROIDS_NAME, INDEX_NAME, MANIFEST_NAME, ClusterInfo, Manifest, dumps_manifest, load_centroids, open_manifest
from streamclip.storage import is_remote, read_bytes
from streamclip.writers.conversion import _check_destination, _manifest
from streamclip.writers.staging import Staging
from streamclip.writers.docstore import encode_record
from streamclip.writers.packing import pack_clusters
from streamclip.writers.terms import TermStats
from streamclip.writers.upload import S3Uploader

__all__ = ["SplitReport", "split"]


@dataclass(slots=True)
class SplitReport:
    """What a split did; ``documents == train + eval + dropped`` always, in total and per cluster."""

    train: str
    eval: str
    documents: int = 0
    train_documents: int = 0
    eval_documents: int = 0
    dropped: int = 0
    clusters: int = 0
    eval_clusters: int = 0
    small_clusters: tuple[int, ...] = ()  # source ids of clusters with <= eval_per_cluster documents: all in train
    per_cluster: dict[str, list[int]] = field(default_factory=dict)  # "train", "eval", "dropped": int per source cluster


@dataclass(frozen=True, slots=True)
class _Selection:
    """Which documents of each source cluster go to one side: local indices in input order, per cluster."""

    picks: tuple[NDArray[np.int64], ...]  # per source cluster, sorted indices within the cluster
    clusters: tuple[int, ...]  # source cluster ids this side holds, in its cluster order

    @property
    def documents(self) -> int:
        return int(sum(len(self.picks[k]) for k in self.clusters))


def split(
    dataset: str, train_out: str, eval_out: str, *, eval_per_cluster: int, train_fraction: float = 1.0, seed: int = 0,
    overwrite: bool = False, progress: bool = False,
) -> SplitReport:
    """Split ``dataset`` (a directory or ``s3://`` prefix) into ``train_out`` and ``eval_out`` (each a directory or ``s3://bucket/prefix``).

    The same dataset, options and seed give byte-identical outputs. Raises ``ConfigError`` for
    invalid options and for outputs that exist (without ``overwrite``) or coincide.
    """
    _check_options(dataset, train_out, eval_out, eval_per_cluster=eval_per_cluster, train_fraction=train_fraction, seed=seed)
    source = open_manifest(dataset)
    index = json.loads(read_bytes(dataset, INDEX_NAME))
    train, held = _select(source.cluster_sizes, eval_per_cluster=eval_per_cluster, train_fraction=train_fraction, seed=seed)
    if not held.clusters:
        raise ConfigError(
            f"--eval-per-cluster {eval_per_cluster}: every cluster of {dataset} has at most {eval_per_cluster} documents "
            f"(the largest has {int(source.cluster_sizes.max())}), so the eval set would be empty; choose a smaller value"
        )
    destinations = [_Destination.open(out, overwrite=overwrite, progress=progress, source=dataset) for out in (train_out, eval_out)]
    centroids = load_centroids(dataset, source) if source.has_centroids else None
    provenance = {
        "source": dataset, "source_fingerprint": source.fingerprint(), "source_index_sha256": source.index_sha256,
        "eval_per_cluster": eval_per_cluster, "train_fraction": train_fraction, "seed": seed,
    }
    reader = _ShardSource(dataset, index)
    for part, selection, destination in (("train", train, destinations[0]), ("eval", held, destinations[1])):
        destination.write(source, reader, selection, centroids, extra={"split": {**provenance, "part": part, "cluster_ids": list(selection.clusters)}})

    per = {name: [len(s.picks[k]) for k in range(source.num_clusters)] for name, s in (("train", train), ("eval", held))}
    per["dropped"] = [int(n - t - e) for n, t, e in zip(source.cluster_sizes, per["train"], per["eval"])]
    absent = sorted(set(range(source.num_clusters)) - set(held.clusters))
    return SplitReport(
        train=destinations[0].out, eval=destinations[1].out, documents=source.num_documents, train_documents=train.documents,
        eval_documents=held.documents, dropped=sum(per["dropped"]), clusters=source.num_clusters, eval_clusters=len(held.clusters),
        small_clusters=tuple(absent), per_cluster=per,
    )


def _check_options(dataset: str, train_out: str, eval_out: str, *, eval_per_cluster: int, train_fraction: float, seed: int) -> None:
    if isinstance(eval_per_cluster, bool) or not isinstance(eval_per_cluster, int) or eval_per_cluster < 1:
        raise ConfigError(f"--eval-per-cluster must be an integer >= 1 (held-out documents per cluster), got {eval_per_cluster!r}")
    if not isinstance(train_fraction, (int, float)) or not 0 < train_fraction <= 1:
        raise ConfigError(f"--train-fraction must be in (0, 1] (the share of each cluster's remaining documents kept for training), got {train_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {seed!r}")
    places = {"DATASET": _place(dataset), "--train": _place(train_out), "--eval": _place(eval_out)}
    if len(set(places.values())) < 3:
        raise ConfigError(f"DATASET, --train and --eval must be three different locations, got {dataset!r}, {train_out!r}, {eval_out!r}")


def _place(location: str) -> str:
    return location.rstrip("/") if is_remote(location) else os.path.abspath(location)


def _select(sizes: NDArray[np.int64], *, eval_per_cluster: int, train_fraction: float, seed: int) -> tuple[_Selection, _Selection]:
    """Per cluster, one seeded permutation: its first N documents are held out, the next ``round(F * rest)`` (at least one) train.

    Each cluster draws from its own stream (``SeedSequence([seed, k])``), so one cluster's draw does not
    depend on the others' sizes.
    """
    train, held = [], []
    for k, n in enumerate(sizes.tolist()):
        order = np.random.default_rng(np.random.SeedSequence([seed, k])).permutation(n)
        if n <= eval_per_cluster:
            train.append(np.arange(n, dtype=np.int64))
            held.append(np.empty(0, dtype=np.int64))
            continue
        rest = n - eval_per_cluster
        keep = max(1, math.floor(train_fraction * rest + 0.5))
        held.append(np.sort(order[:eval_per_cluster]).astype(np.int64))
        train.append(np.sort(order[eval_per_cluster : eval_per_cluster + keep]).astype(np.int64))
    ids = tuple(range(len(sizes)))
    return _Selection(tuple(train), ids), _Selection(tuple(held), tuple(k for k in ids if len(held[k])))


class _ShardSource:
    """The source's documents as staged records (the packer's input), read one shard at a time."""

    def __init__(self, location: str, index: dict[str, Any]) -> None:
        self.location, self.shards = location, index["shards"]
        first = self.shards[0]
        self.names, self.encodings = first["column_names"], first["column_encodings"]
        self.fixed = first["column_sizes"]
        self.compression, self.size_limit = first.get("compression"), first.get("size_limit")
        self.offsets = np.concatenate([[0], np.cumsum([s["samples"] for s in self.shards])]).astype(np.int64)

    def records(self, cluster: ClusterInfo, picks: NDArray[np.int64]) -> Iterator[bytes]:
        """The records of ``picks`` (indices within ``cluster``), in that order."""
        at = picks + cluster.samples[0]
        shard_of = np.searchsorted(self.offsets, at, side="right") - 1
        for s in np.unique(shard_of).tolist():
            data = self._shard_bytes(s)
            offsets = np.frombuffer(data, np.uint32, count=struct.unpack_from("<I", data)[0] + 1, offset=4)
            for i in (at[shard_of == s] - self.offsets[s]).tolist():
                yield self._record(data[offsets[i] : offsets[i + 1]])

    def _shard_bytes(self, s: int) -> bytes:
        shard = self.shards[s]
        raw = shard["raw_data"]["basename"]
        if not is_remote(self.location) and os.path.isfile(os.path.join(self.location, raw)):
            return read_bytes(self.location, raw)
        zipped = shard.get("zip_data")
        if not zipped:
            return read_bytes(self.location, raw)
        return zstandard.ZstdDecompressor().decompress(read_bytes(self.location, zipped["basename"]), max_output_size=int(shard["raw_data"]["bytes"]))

    def _record(self, sample: bytes) -> bytes:
        """A stored MDS sample (sizes of the variable columns, then each column) as a staged record of its text and kept fields."""
        from streamclip.writers.compat import mds_decode

        nvar = sum(1 for size in self.fixed if not size)
        sizes = iter(struct.unpack_from(f"<{nvar}I", sample))
        pos, values = 4 * nvar, {}
        for name, encoding, fixed in zip(self.names, self.encodings, self.fixed):
            size = fixed or next(sizes)
            values[name] = mds_decode(encoding, sample[pos : pos + size])
            pos += size
        text = values.pop("text")
        values.pop("cluster")
        return encode_record(text, values)


class _Selected:
    """What ``pack_clusters`` reads from (the interface of ``ClusterSpill``): cluster k of one side."""

    def __init__(self, source: Manifest, reader: _ShardSource, selection: _Selection) -> None:
        self.source, self.reader, self.selection = source, reader, selection

    def records(self, k: int) -> Iterator[bytes]:
        cid = self.selection.clusters[k]
        return self.reader.records(self.source.clusters[cid], self.selection.picks[cid])


@dataclass(slots=True)
class _Destination:
    """One output: its final place, and the uploader for an ``s3://`` one (staged in a temporary directory)."""

    out: str
    progress: bool
    uploader: S3Uploader | None = None

    @classmethod
    def open(cls, out: str, *, overwrite: bool, progress: bool, source: str) -> _Destination:
        """Checked before any work: an existing dataset needs ``overwrite`` (the uploader checks a remote one)."""
        try:  # convert's checks and messages; for split the outputs are options, so a ConfigError
            if is_remote(out):
                uploader = S3Uploader(out, overwrite=overwrite, progress=progress)
                return cls(out.rstrip("/"), progress, uploader)
            _check_destination(os.path.normpath(out), overwrite, [] if is_remote(source) else [source])
        except InputError as e:
            raise ConfigError(str(e)) from None
        return cls(os.path.normpath(out), progress)

    def write(self, source: Manifest, reader: _ShardSource, selection: _Selection, centroids: NDArray[np.float32] | None, *, extra: dict[str, Any]) -> None:
        remote = self.uploader is not None
        parent = tempfile.mkdtemp(prefix="streamclip-split-") if remote else None
        staging = None if remote else Staging(self.out)
        tmp = os.path.join(parent, "dataset") if remote else staging.dataset
        try:
            terms = TermStats()
            packed = pack_clusters(
                _Selected(source, reader, selection), tmp, num_clusters=len(selection.clusters), columns=dict(source.columns),
                compression=reader.compression or "zstd:3", size_limit=reader.size_limit or (32 << 20), total=selection.documents,
                terms=terms, progress=self.progress,
                on_shard=None if not remote else lambda entry: self.uploader.submit_shard_files(tmp, entry),
            )
            top = terms.top_terms()
            clusters = tuple(
                ClusterInfo(id=k, documents=p.documents, bytes=p.bytes, shards=p.shards, samples=p.samples, top_terms=tuple(top[k]), example=p.example)
                for k, p in enumerate(packed)
            )
            if centroids is not None:
                np.save(os.path.join(tmp, CENTROIDS_NAME), centroids[list(selection.clusters)])
            manifest = _manifest(tmp, clusters, dict(source.columns), source.embedding, _clustering(source, selection), [], 0, centroids is not None)
            with open(os.path.join(tmp, MANIFEST_NAME), "wb") as f:
                f.write(dumps_manifest(replace(manifest, extra=extra)))
            if remote:
                self.uploader.finish(tmp)
                shutil.rmtree(tmp)
            else:
                staging.publish()
        except BaseException:
            if remote:
                self.uploader.abort()
            else:
                staging.remove()
            raise
        finally:
            if remote:
                shutil.rmtree(parent, ignore_errors=True)


def _clustering(source: Manifest, selection: _Selection) -> dict[str, Any]:
    """The source's clustering record; per-cluster lists in it follow this side's clusters."""
    clustering = dict(source.clustering)
    if isinstance(clustering.get("source_ids"), list):
        clustering["source_ids"] = [clustering["source_ids"][k] for k in selection.clusters]
    return clustering
