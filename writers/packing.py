"""Pack documents into MDS shards so that every shard holds exactly one cluster.

Memory stays bounded whatever the corpus size or the number of clusters: documents are first
spilled to one compressed file per cluster through a fixed-size buffer, then each cluster is
streamed into the single ``MDSWriter``, which is made to close a shard at every cluster
boundary. Cluster k therefore owns a contiguous range of shards and of global sample ids.
"""

from __future__ import annotations

import functools
import itertools
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from streamclip.errors import ShardError
from streamclip.writers.docstore import append_frame, decode_record, iter_raw, record_text
from streamclip.writers.terms import TermStats

EXAMPLE_CHARS = 240


@dataclass(frozen=True, slots=True)
class PackedCluster:
    documents: int
    bytes: int
    shards: tuple[int, int]
    samples: tuple[int, int]
    example: str


class ClusterSpill:
    """Documents grouped by cluster within a fixed memory budget.

    While everything fits in ``budget_bytes`` the groups stay in memory and packing reads them from
    there; once the budget is exceeded, every group goes to its own compressed file and later
    additions are appended, so memory stays bounded whatever the corpus size or number of clusters.
    """

    def __init__(self, spill_dir: str, *, budget_bytes: int = 256 << 20) -> None:
        self.spill_dir = spill_dir
        self.budget_bytes = budget_bytes
        self.spilled = False
        self._buffers: dict[int, list[bytes]] = {}
        self._held = 0

    def add(self, cluster: int, record: bytes) -> None:
        self._buffers.setdefault(cluster, []).append(record)
        self._held += len(record)
        if self._held >= self.budget_bytes:
            self._flush()

    def close(self) -> None:
        """Call after the last ``add``: a group that went to disk must be complete there."""
        if self.spilled:
            self._flush()

    def records(self, cluster: int) -> Iterator[bytes]:
        """The raw records of one cluster in the order they were added (each group can be read once)."""
        if self.spilled:
            return iter_raw(self._path(cluster))
        return iter(self._buffers.pop(cluster, ()))

    def _flush(self) -> None:
        os.makedirs(self.spill_dir, exist_ok=True)
        for k, records in self._buffers.items():
            append_frame(self._path(k), records)
        self._buffers.clear()
        self._held = 0
        self.spilled = True

    def _path(self, k: int) -> str:
        return os.path.join(self.spill_dir, f"{k:06d}.zst")


def spill_by_cluster(
    docs_path: str, labels: NDArray[np.integer], spill: ClusterSpill, *, examples: NDArray[np.int64], progress: bool = True,
) -> dict[int, str]:
    """Route the read-order staged documents to their clusters; returns each cluster's example text.

    ``examples[k]`` is the read-order index of the document chosen to illustrate cluster k.
    """
    example_of = {int(i): k for k, i in enumerate(examples) if i >= 0}
    texts: dict[int, str] = {}
    chunk = 1 << 16
    block = np.empty(0, dtype=np.int64)
    for i, raw in enumerate(tqdm(iter_raw(docs_path), total=len(labels), desc="group", unit="doc", disable=not progress)):
        if i % chunk == 0:
            block = np.asarray(labels[i : i + chunk], dtype=np.int64)  # one read of an on-disk label array per chunk
        spill.add(int(block[i % chunk]), raw)
        if i in example_of:
            texts[example_of[i]] = _shorten(decode_record(raw)[0])
    spill.close()
    return texts


def pack_clusters(
    spill: ClusterSpill, out_dir: str, *, num_clusters: int, columns: dict[str, str], compression: str,
    size_limit: int, total: int, terms: TermStats, progress: bool = True, on_shard: Callable[[dict[str, Any]], None] | None = None,
    cluster_ids: Sequence[int] | None = None,
) -> list[PackedCluster]:
    """Write clusters 0..K-1 in order into MDS shards under ``out_dir`` (which gets ``index.json``).

    ``cluster_ids`` packs only those clusters, in that order (a Ray task packs its own partition);
    each one's ``shards``/``samples`` ranges are then counted within ``out_dir``.

    Samples are encoded here, straight from the staged records (``_SampleEncoder``), and handed
    to streaming's own writer already encoded, so the shards, their hashes and ``index.json`` are
    the ones ``MDSWriter.write`` would produce (tested byte for byte) at a fraction of its per-sample cost.
    ``on_shard`` is called with each shard's ``index.json`` entry as soon as its file is complete
    (the uploader starts sending it while later shards are being packed).
    """
    writer = _cluster_shard_writer()(out=out_dir, columns=columns, compression=compression, hashes=["xxh64"], size_limit=size_limit)
    encoder = _SampleEncoder(writer.column_names, writer.column_encodings)
    packed: list[PackedCluster] = []
    shard, sample = 0, 0
    announced = 0

    def announce() -> None:  # the writer also closes shards by itself when one fills up
        nonlocal announced
        while on_shard is not None and announced < len(writer.shards):
            on_shard(writer.shards[announced])
            announced += 1

    try:
        with tqdm(total=total, desc="pack", unit="doc", disable=not progress) as bar:
            for k in (range(num_clusters) if cluster_ids is None else cluster_ids):
                count = nbytes = 0
                example, counting = "", True
                # A batch at a time: the per-sample cost stays amortised and memory stays bounded however large the cluster.
                for records in _batches(spill.records(k), PACK_BATCH):
                    writer.write_encoded(encoder.encode(records, k))
                    announce()
                    if not count:
                        example = _shorten(decode_record(records[0])[0])
                    counting = counting and _count_terms(terms, records)
                    count += len(records)
                    nbytes += sum(len(record_text(raw)[1]) for raw in records)
                    bar.update(len(records))
                if writer.new_samples:
                    writer.flush_shard()
                    writer._reset_cache()  # the stock writer only does this when a shard fills
                announce()
                terms.end_cluster()
                end_shard = len(writer.shards)
                packed.append(PackedCluster(count, nbytes, (shard, end_shard), (sample, sample + count), example))
                shard, sample = end_shard, sample + count
        writer.finish()
    except BaseException:
        writer.cancel_future_jobs()
        raise
    return packed


# Records packed per step: large enough to amortise the per-call cost, small enough to bound memory.
PACK_BATCH = 4096


def _batches(records: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    while batch := list(itertools.islice(records, size)):
        yield batch


def _count_terms(terms: TermStats, records: list[bytes]) -> bool:
    """Feed documents to the cluster's term statistics until they have enough; False once they do."""
    for raw in records:
        if not terms.add(decode_record(raw)[0]):
            return False
    return True


@functools.cache
def _cluster_shard_writer() -> type:
    """``MDSWriter`` fed samples that are already MDS-encoded; shard cutting, files, hashes and index are stock's.
    (Made on first use: importing streaming pulls in torch, which the CLI's other commands do without.)"""
    from streamclip.writers.compat import MDSWriter

    class ClusterShardWriter(MDSWriter):
        def write_encoded(self, samples: list[bytes]) -> None:
            """Stock ``write`` for each sample, minus ``encode_sample``: the same size rule decides where shards end,
            except that a shard is never closed empty (stock writes a 0-sample shard when the first sample after a
            flush is over the limit, which a cluster's first document can be; readers refuse such an index)."""
            if self.event.is_set():
                self.cancel_future_jobs()
                raise ShardError("writing a shard failed in streaming's writer thread; see the traceback above")
            for data in samples:
                size = len(data) + self.extra_bytes_per_sample
                if self.size_limit and self.new_samples and self.size_limit < self.new_shard_size + size:
                    self.flush_shard()
                    self._reset_cache()
                self.new_samples.append(data)
                self.new_shard_size += size

    return ClusterShardWriter


class _SampleEncoder:
    """MDS sample bytes from staged records: the sizes of the variable columns (uint32 each), then
    every column's bytes, columns in name order (``MDSWriter.encode_sample``).

    A staged record already holds the text as UTF-8 after its 8-byte header, so with no kept
    columns a sample is its text size, the cluster id and that slice: nothing is decoded. Kept
    columns (``json``) are decoded and encoded by streaming's own coder.
    """

    def __init__(self, names: list[str], encodings: list[str]) -> None:
        self.names, self.encodings = names, encodings
        self.simple = names == ["cluster", "text"] and encodings == ["int32", "str"]

    def encode(self, records: list[bytes], cluster: int) -> list[bytes]:
        label = struct.pack("<i", cluster)
        if self.simple:  # MDS: the str column's uint32 size, the int32 cluster, the text: docstore's size is that uint32
            return [size + label + text for size, text in map(record_text, records)]
        return [self._encode_one(raw, cluster) for raw in records]

    def _encode_one(self, raw: bytes, cluster: int) -> bytes:
        from streamclip.writers.compat import get_mds_encoded_size, mds_encode

        text, fields, _ = decode_record(raw)
        values = {"text": text, "cluster": cluster, **fields}
        sizes, body = [], []
        for name, encoding in zip(self.names, self.encodings):
            datum = mds_encode(encoding, values.get(name))
            if get_mds_encoded_size(encoding) is None:
                sizes.append(len(datum))
            body.append(datum)
        return struct.pack(f"<{len(sizes)}I", *sizes) + b"".join(body)


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXAMPLE_CHARS else flat[: EXAMPLE_CHARS - 1] + "…"
