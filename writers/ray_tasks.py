"""What Ray runs on its workers for ``convert --engine ray``: read a file, embed, assign, pack a partition.

Each piece is a plain function or class that Ray ships to a worker; none imports ray, so they are the
local engine's own code (``read_source``, the embedders, ``assign``, ``pack_clusters``) run elsewhere.
Everything a task leaves on disk is named after what it holds (input file index, cluster and piece)
and written to a temporary name then renamed, so a task that Ray runs again after a crash or a lost
worker replaces its own files instead of adding to them: no document is lost or written twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamclip.writers.clustering import assign, centroid_index
from streamclip.writers.docstore import decode_record, encode_record
from streamclip.writers.embedders import Embedder, make_embedder
from streamclip.writers.packing import ClusterSpill, _shorten, pack_clusters
from streamclip.writers.sources import BlankLines, Document, FieldRules, read_source
from streamclip.writers.terms import TermStats

# A document's place in read order, one int64: input file index (high bits) and its position among
# that file's documents. Sorting by it inside a cluster gives the local engine's order.
SEQ_BITS = 40
MAX_FILES = 1 << (63 - SEQ_BITS)
READ_BATCH = 4096
# Private test hook: a marker path; the first pack task to see it missing creates it and kills its own worker.
KILL_ONCE_ENV = "STREAMCLIP_TEST_KILL_PACK_ONCE"


def read_files(batch: dict[str, NDArray[Any]], *, rules: FieldRules, sidecar_dir: str) -> Iterator[dict[str, Any]]:
    """Ray ``map_batches`` function: the documents of each input file of ``batch`` (columns ``source``, ``path``).

    Rejections and the file's counts go to ``sidecar_dir/<source>.jsonl`` and ``<source>.json`` in the
    words of the local engine (``reject_line``); the driver joins them in file order.
    """
    from streamclip.writers.conversion import reject_line

    for source, path in zip(batch["source"].tolist(), batch["path"].tolist()):
        counts = {"path": path, "documents": 0, "written": 0, "rejected": 0, "blank_lines": 0, "text_bytes": 0}
        stem = os.path.join(sidecar_dir, f"{source:08d}")
        keys: list[int] = []
        records: list[bytes] = []
        cids: list[int] = []
        with open(f"{stem}.jsonl.part", "w", encoding="utf-8") as rejects:
            for item in read_source(path, source, rules):
                if isinstance(item, BlankLines):
                    counts["blank_lines"] += item.lines
                    continue
                counts["documents"] += 1
                if not isinstance(item, Document):
                    counts["rejected"] += 1
                    rejects.write(reject_line(path, item))
                    continue
                keys.append((source << SEQ_BITS) | counts["written"])
                records.append(encode_record(item.text, item.fields))
                cids.append(item.cluster if item.cluster is not None else -1)
                counts["written"] += 1
                counts["text_bytes"] += len(records[-1])
                if len(keys) == READ_BATCH:
                    yield _rows(keys, records, cids, rules)
                    keys, records, cids = [], [], []
        if keys:
            yield _rows(keys, records, cids, rules)
        os.replace(f"{stem}.jsonl.part", f"{stem}.jsonl")
        _write_json(f"{stem}.json", counts)


def _rows(keys: list[int], records: list[bytes], cids: list[int], rules: FieldRules) -> dict[str, Any]:
    rows: dict[str, Any] = {"key": np.array(keys, dtype=np.int64), "record": np.array(records, dtype=object)}
    if rules.cluster_field is not None:
        rows["cid"] = np.array(cids, dtype=np.int64)
    return rows


class EmbedActor:
    """Ray actor for ``map_batches``: one embedder per actor (loaded once), on the actor's GPU if Ray gave it one."""

    def __init__(self, *, name: str, max_tokens: int, bf16: bool, embedder: Embedder | None = None) -> None:
        self.embedder = embedder if embedder is not None else make_embedder(name, max_tokens=max_tokens, bf16=bf16)

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        from streamclip.writers.conversion import _checked

        texts = [decode_record(raw)[0] for raw in batch["record"]]
        batch["vector"] = _checked(self.embedder.encode(texts), len(texts), self.embedder.dim, self.embedder)
        return batch


def pick_rows(batch: dict[str, NDArray[Any]], *, offsets: NDArray[np.int64], rows: NDArray[np.int64]) -> dict[str, NDArray[Any]]:
    """Ray ``map_batches`` function: the training sample's rows of ``batch``, with their read-order row numbers."""
    keys = batch["key"]
    row = offsets[keys >> SEQ_BITS] + (keys & ((1 << SEQ_BITS) - 1))
    hit = np.isin(row, rows)
    return {"row": row[hit], "vector": np.asarray(batch["vector"])[hit]}


def assign_batch(batch: dict[str, NDArray[Any]], *, centroids: NDArray[np.float32]) -> dict[str, NDArray[Any]]:
    """Ray ``map_batches`` function: each document's nearest centroid (``cluster``) and its similarity (``sim``)."""
    labels, sims = assign(centroid_index(centroids), np.asarray(batch["vector"], dtype=np.float32))
    return {"key": batch["key"], "record": batch["record"], "cluster": labels.astype(np.int32), "sim": sims.astype(np.float32)}


def pack_piece(*, files: list[str], low: int, high: int, cluster: int, part_dir: str, columns: dict[str, str],
               compression: str, size_limit: int, by_similarity: bool, kill_marker: str | None = None) -> dict[str, Any]:
    """Pack the documents of one cluster whose keys lie in ``[low, high)`` into MDS shards under ``part_dir``.

    The documents are sorted by key (read order), so the piece's shards are those the local engine
    writes for the same documents. Returns the shards' ``index.json`` entries, the counts, the term
    statistics (used for the cluster's first piece only) and the example text (the most central
    document, first in read order on ties; the first document for an input-field clustering).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = ["key", "record"] + (["sim"] if by_similarity else [])
    tables = []
    for path in files:
        table = pq.read_table(path, columns=wanted, partitioning=None)
        mask = pc.and_(pc.greater_equal(table["key"], low), pc.less(table["key"], high))
        tables.append(table.filter(mask))
    import pyarrow as pa

    table = pa.concat_tables(tables).sort_by("key")
    if kill_marker and not os.path.exists(kill_marker):
        with open(kill_marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)  # the test of Ray's retry: this worker dies mid-job, once
    shutil.rmtree(part_dir, ignore_errors=True)  # what an earlier, killed try left
    spill = ClusterSpill(os.path.join(part_dir, "spill"), budget_bytes=1 << 62)
    for raw in table["record"].to_pylist():
        spill.add(cluster, raw)
    terms = TermStats()
    packed = pack_clusters(spill, part_dir, num_clusters=cluster + 1, cluster_ids=[cluster], columns=columns, compression=compression,
                           size_limit=size_limit, total=table.num_rows, terms=terms, progress=False)[0]
    with open(os.path.join(part_dir, "index.json"), encoding="utf-8") as f:
        shards = json.load(f)["shards"]
    best, example = float("-inf"), packed.example
    if by_similarity and table.num_rows:
        sims = table["sim"].to_numpy()
        at = int(np.argmax(sims))  # the first of the highest
        best, example = float(sims[at]), _shorten(decode_record(table["record"][at].as_py())[0])
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this worker's peak so far (workers are reused)
    return {"shards": shards, "documents": packed.documents, "bytes": packed.bytes, "example": example, "best": best, "terms": terms,
            "peak_mb": peak_mb}


def _write_json(path: str, value: Any) -> None:
    with open(f"{path}.part", "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(f"{path}.part", path)
