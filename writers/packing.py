"""Pack documents into MDS shards so that every shard holds exactly one cluster.

Memory stays bounded whatever the corpus size or the number of clusters: documents are first
spilled to one compressed file per cluster through a fixed-size buffer, then each cluster is
streamed into the single ``MDSWriter``, which is made to close a shard at every cluster
boundary. Cluster k therefore owns a contiguous range of shards and of global sample ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from streamclip.writers.docstore import append_frame, encode_record, read_records
from streamclip.writers.terms import TermStats

EXAMPLE_CHARS = 240


@dataclass(frozen=True, slots=True)
class PackedCluster:
    documents: int
    bytes: int
    shards: tuple[int, int]
    samples: tuple[int, int]
    example: str


def spill_by_cluster(
    docs_path: str, labels: NDArray[np.int64], spill_dir: str, *,
    examples: NDArray[np.int64], budget_bytes: int = 64 << 20, progress: bool = True,
) -> dict[int, str]:
    """Split the read-order document file into one file per cluster; returns each cluster's example text.

    ``examples[k]`` is the read-order index of the document chosen to illustrate cluster k.
    """
    os.makedirs(spill_dir, exist_ok=True)
    buffers: dict[int, list[bytes]] = {}
    held = 0
    example_of = {int(i): k for k, i in enumerate(examples) if i >= 0}
    texts: dict[int, str] = {}

    def flush() -> None:
        nonlocal held
        for k, records in buffers.items():
            append_frame(_spill_path(spill_dir, k), records)
        buffers.clear()
        held = 0

    for i, (text, fields) in enumerate(tqdm(read_records(docs_path), total=len(labels), desc="spill", unit="doc", disable=not progress)):
        k = int(labels[i])
        record = encode_record(text, fields)
        buffers.setdefault(k, []).append(record)
        held += len(record)
        if i in example_of:
            texts[example_of[i]] = _shorten(text)
        if held >= budget_bytes:
            flush()
    flush()
    return texts


def pack_clusters(
    spill_dir: str, out_dir: str, *, num_clusters: int, columns: dict[str, str], compression: str,
    size_limit: int, total: int, terms: TermStats, progress: bool = True,
) -> list[PackedCluster]:
    """Write clusters 0..K-1 in order into MDS shards under ``out_dir`` (which gets ``index.json``)."""
    from streaming import MDSWriter

    keep = [c for c in columns if c not in ("text", "cluster")]
    writer = MDSWriter(out=out_dir, columns=columns, compression=compression, hashes=["xxh64"], size_limit=size_limit)
    packed: list[PackedCluster] = []
    shard, sample = 0, 0
    try:
        with tqdm(total=total, desc="pack", unit="doc", disable=not progress) as bar:
            for k in range(num_clusters):
                count = nbytes = 0
                first = None
                for text, fields in read_records(_spill_path(spill_dir, k)):
                    writer.write({"text": text, "cluster": k, **{c: fields.get(c) for c in keep}})
                    terms.add(text)
                    first = first if first is not None else text
                    count += 1
                    nbytes += len(text.encode("utf-8"))
                if writer.new_samples:
                    writer.flush_shard()
                    writer._reset_cache()  # the stock writer only does this when a shard fills
                terms.end_cluster()
                end_shard = len(writer.shards)
                packed.append(PackedCluster(count, nbytes, (shard, end_shard), (sample, sample + count), _shorten(first or "")))
                shard, sample = end_shard, sample + count
                bar.update(count)
        writer.finish()
    except BaseException:
        writer.cancel_future_jobs()
        raise
    return packed


def _spill_path(spill_dir: str, k: int) -> str:
    return os.path.join(spill_dir, f"{k:06d}.zst")


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXAMPLE_CHARS else flat[: EXAMPLE_CHARS - 1] + "…"
