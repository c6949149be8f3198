"""Read throughput: one epoch through a DataLoader, stock streaming vs ClusterClipDataset's two read paths.

    python benchmarks/bench_read.py --quick     # 30k documents, 3 repetitions
    python benchmarks/bench_read.py             # the whole benchmark corpus, 5 repetitions
    python benchmarks/bench_read.py --profile fast --workers 0   # cProfile one case, print the top

Dataset: the benchmark corpus (``benchmarks/data/corpus.jsonl.zst``, else the bundled sample) converted
with ``FieldRules(cluster_field=...)``: its 99 largest fine domains are one cluster each and the rest
one more, 100 clusters, one zstd MDS shard each (no embedding: the quickest conversion). Shards are
decompressed once before measuring (the warm cache of every epoch after the first), so the rows
compare reading, not copying.

Rows, each one epoch, batch 256, in a fresh process, interleaved, repeated:
- stock ``streaming.StreamingDataset(local=..., shuffle=True)``: every document once;
- ``ClusterClipDataset(read_path="stock")``: a ClusterClip plan of one corpus-sized epoch, stock reads;
- ``ClusterClipDataset(read_path="fast")``: the same plan, span reads from mapped shards;
- physical, two ways, in one process (two for the workers=2 column), no loader, with the fast path's
  decoder: decoding every memory-mapped raw shard (the ceiling for a warm cache), and zstd-decompressing
  then decoding every shard (the issue's "physical decode rate").
All loaders share one collate (texts as a list, clusters as an int array), as a training loop would.
"""

from __future__ import annotations

import cProfile
import gc
import glob
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_write import BENCH_CORPUS, corpus_rows  # noqa: E402
from harness import emit, fmt, interleaved, markdown_table, parse_args, spread, write_results  # noqa: E402

BATCH = 256
CLUSTERS = 100
KINDS = {"stock": "stock StreamingDataset", "cc-stock": "ClusterClipDataset read_path=stock",
         "cc-fast": "ClusterClipDataset read_path=fast", "physical-raw": "physical: decode mapped raw shards, no loader",
         "physical": "physical: zstd decompress + decode, no loader",
         "floor": "loader floor: mapped shards decoded in order in the same DataLoader, no streaming"}
FULL_ONLY = ("cc-stock", "floor")  # left out of --quick to stay under 2 minutes


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    return {"text": [s["text"] for s in batch], "cluster": np.array([s["cluster"] for s in batch], dtype=np.int32)}


def build(limit: int | None, out: Path) -> int:
    """Convert the corpus: 99 largest domains as clusters, the rest as one; then decompress every shard."""
    from streaming import StreamingDataset

    from streamclip.writers import ConvertConfig, FieldRules, convert

    rows = corpus_rows(limit)
    top = [d for d, _ in Counter(r["domain"] for r in rows).most_common(CLUSTERS - 1)]
    group = {d: i for i, d in enumerate(sorted(top))}
    work = Path(tempfile.mkdtemp(prefix="bench-read-in-"))
    try:
        src = work / "in.jsonl"
        with open(src, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"text": r["text"], "group": group.get(r["domain"], CLUSTERS - 1)}, ensure_ascii=False) + "\n")
        report = convert([str(src)], str(out), ConvertConfig(rules=FieldRules(cluster_field="group"), progress=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    warm = StreamingDataset(local=str(out), batch_size=1)
    for shard_id in range(len(warm.shards)):
        warm.prepare_shard(shard_id)
    return report.written


def minimal_reader(dataset: str) -> Any:
    """The format read as simply as it can be inside the same DataLoader: each worker maps its share of
    the raw shards and decodes them in order (``decode_shard``); no shuffle, no streaming machinery."""
    import mmap

    from torch.utils.data import IterableDataset, get_worker_info

    with open(os.path.join(dataset, "index.json")) as f:
        index = json.load(f)["shards"]

    total = sum(info["samples"] for info in index)

    class MinimalReader(IterableDataset):
        def __iter__(self) -> Any:  # worker i of k: global samples [i*N/k, (i+1)*N/k), shards cut where needed
            worker = get_worker_info()
            k, i = (worker.num_workers, worker.id) if worker else (1, 0)
            lo, hi, offset = i * total // k, (i + 1) * total // k, 0
            for info in index:
                begin, end, offset = max(lo - offset, 0), min(hi - offset, info["samples"]), offset + info["samples"]
                if begin < end:
                    with open(os.path.join(dataset, info["raw_data"]["basename"]), "rb") as f:
                        yield from decode_shard(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), info)[begin:end]

    return MinimalReader()


def read_epoch(spec: dict[str, Any]) -> dict[str, Any]:
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory
    from torch.utils.data import DataLoader

    from streamclip.readers import ClusterClipDataset

    clean_stale_shared_memory()
    if spec["kind"] == "floor":
        ds: Any = minimal_reader(spec["dataset"])
    elif spec["kind"] == "stock":
        ds = StreamingDataset(local=spec["dataset"], batch_size=BATCH, shuffle=True, shuffle_seed=3)
    else:
        ds = ClusterClipDataset(local=spec["dataset"], batch_size=BATCH, strategy="clusterclip", epochs=1, seed=3,
                                read_path="fast" if spec["kind"] == "cc-fast" else "stock")
    return timed_epoch(DataLoader(ds, batch_size=BATCH, num_workers=spec["workers"], collate_fn=collate))


def timed_epoch(batches: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The read benchmarks' one measure: ``gc.collect()`` first (the import-time heap's first full collection
    is paid before, not inside, the epoch), then from the first ``next()`` to the last batch."""
    gc.collect()
    start = time.perf_counter()
    samples, first = 0, None
    for batch in batches:
        samples += len(batch["text"])
        if first is None:
            first = time.perf_counter() - start
    return {"seconds": time.perf_counter() - start, "samples": samples, "first_batch_s": first}


def decode_shard(buffer: Any, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Every sample of one raw MDS shard in memory, as dicts: the fast path's algorithm (numpy headers, one
    slice and decode per value), standalone so that this row imports neither streaming nor torch."""
    import numpy as np

    if not set(info["column_encodings"]) <= {"str", "int32", "json"}:
        raise ValueError(f"the physical rows decode str/int32/json columns only, got {info['column_encodings']}")
    u8, n = np.frombuffer(buffer, np.uint8), info["samples"]
    starts = u8[4 : 4 * (n + 1)].view(np.uint32).astype(np.int64)
    nvar = sum(1 for size in info["column_sizes"] if not size)
    head = u8[starts[:, None] + np.arange(4 * nvar)].view(np.uint32).astype(np.int64)
    pos, var, columns = starts + 4 * nvar, 0, []
    for encoding, fixed in zip(info["column_encodings"], info["column_sizes"]):
        if fixed:
            columns.append(list(u8[pos[:, None] + np.arange(4)].view(np.int32)[:, 0]))
            pos = pos + fixed
            continue
        end, var = pos + head[:, var], var + 1
        texts = [buffer[b:e].decode("utf-8") for b, e in zip(pos.tolist(), end.tolist())]
        columns.append(texts if encoding == "str" else [json.loads(t) for t in texts])
        pos = end
    names = info["column_names"]
    return [dict(zip(names, row)) for row in zip(*columns)]


def decode_shards(dataset: str, shard_ids: list[int], raw: bool) -> int:
    """Decode whole shards: memory-mapped raw files (``raw``) or zstd-decompressed in memory."""
    import mmap

    import zstandard

    with open(os.path.join(dataset, "index.json")) as f:
        index = json.load(f)["shards"]
    decompressor, samples = zstandard.ZstdDecompressor(), 0
    for shard_id in shard_ids:
        info = index[shard_id]
        if raw:
            with open(os.path.join(dataset, info["raw_data"]["basename"]), "rb") as f:
                buffer: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            with open(os.path.join(dataset, info["zip_data"]["basename"]), "rb") as f:
                buffer = decompressor.decompress(f.read())
        samples += len(decode_shard(buffer, info))
    return samples


def physical(spec: dict[str, Any]) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor

    num_shards = len(glob.glob(os.path.join(spec["dataset"], "shard.*.mds.zstd")))
    procs = max(1, spec["workers"])
    gc.collect()
    start = time.perf_counter()
    raw = spec["kind"] == "physical-raw"
    if procs == 1:
        samples = decode_shards(spec["dataset"], list(range(num_shards)), raw)
    else:
        with ProcessPoolExecutor(procs) as pool:
            parts = [list(range(i, num_shards, procs)) for i in range(procs)]
            samples = sum(pool.map(decode_shards, [spec["dataset"]] * procs, parts, [raw] * procs))
    return {"seconds": time.perf_counter() - start, "samples": samples, "first_batch_s": None}


def child(spec: dict[str, Any]) -> None:
    emit(physical(spec) if spec["kind"].startswith("physical") else read_epoch(spec))


def profile(dataset: str, kind: str, workers: int) -> None:
    """cProfile one case in this process (workers=0 profiles the whole read; with workers, only the parent)."""
    profiler = cProfile.Profile()
    profiler.enable()
    result = physical({"dataset": dataset, "kind": kind, "workers": 1}) if kind.startswith("physical") else read_epoch({"dataset": dataset, "kind": kind, "workers": workers})
    profiler.disable()
    print(json.dumps(result))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue())


def main() -> None:
    extra = sys.argv[sys.argv.index("--profile"):] if "--profile" in sys.argv else []
    sys.argv = [a for a in sys.argv if a not in extra]
    args = parse_args(__doc__, "30k documents, 3 repetitions", child)
    if args is None:
        return
    root = Path(tempfile.mkdtemp(prefix="bench-read-ds-"))
    try:
        dataset = root / "ds"
        docs = build(30000 if args.quick else None, dataset)
        if extra:
            kind = {"fast": "cc-fast", "cc": "cc-stock"}.get(extra[1], extra[1])
            profile(str(dataset), kind, int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 0)
            return
        repeats = args.repeats or (3 if args.quick else 5)
        me = str(Path(__file__).resolve())
        kinds = [k for k in KINDS if not (args.quick and k in FULL_ONLY)]
        cases = {f"{kind} w{w}": [me, "--child", json.dumps({"dataset": str(dataset), "kind": kind, "workers": w})]
                 for w in (0, 2) for kind in kinds}
        results = interleaved(cases, repeats)
        shards = len(glob.glob(str(dataset / "shard.*.mds.zstd")))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results, docs=docs, shards=shards, repeats=repeats, quick=args.quick)


def report(results: dict[str, list[dict[str, Any]]], *, docs: int, shards: int, repeats: int, quick: bool) -> None:
    rates = {name: spread([r["samples"] / r["seconds"] for r in runs]) for name, runs in results.items()}
    kinds = [k for k in KINDS if f"{k} w0" in rates]
    rows = [[KINDS[kind]] + [fmt(rates[f"{kind} w{w}"]) for w in (0, 2)] for kind in kinds]

    def ratio(kind: str, w: int) -> float:
        return rates[f"cc-fast w{w}"]["median"] / rates[f"{kind} w{w}"]["median"]

    def per_run(w: int) -> list[float]:  # repetition i of both sides ran back to back
        return [f["samples"] / f["seconds"] / (s["samples"] / s["seconds"]) for f, s in zip(results[f"cc-fast w{w}"], results[f"stock w{w}"])]

    rows.append(["**fast / stock StreamingDataset** (goal: >= 20x, >= 8x)"]
                + [f"**{ratio('stock', w):.1f}x** (per run {min(per_run(w)):.1f}–{max(per_run(w)):.1f}x)" for w in (0, 2)])
    if "cc-stock" in kinds:
        rows.append(["fast / ClusterClipDataset read_path=stock"] + [f"{ratio('cc-stock', w):.1f}x" for w in (0, 2)])
    for kind in [k for k in ("physical-raw", "physical", "floor") if k in kinds]:
        rows.append([f"fast / {KINDS[kind].split(',')[0]}"] + [f"{ratio(kind, w):.0%}" for w in (0, 2)])
    verdicts = []
    for w, goal in ((0, 20), (2, 8)):
        got = ratio("stock", w)
        verdicts.append(f"workers={w}: {got:.1f}x against >= {goal}x, " + (f"met by {got / goal - 1:.1%}" if got >= goal else f"missed by {1 - got / goal:.1%}"))
    corpus = "benchmark corpus" if BENCH_CORPUS.exists() else "bundled sample"
    notes = (
        f"{docs:,} documents of the {corpus}, {CLUSTERS} clusters in {shards} zstd shards, batch {BATCH}, one epoch per run, "
        f"warm cache (shards decompressed before timing). Samples/s, median (min–max) of {repeats} interleaved fresh-process "
        "runs, timed from the first `next()` to the last batch (worker start-up included; `gc.collect()` first in every run). "
        "Physical at workers=2 is two processes. Goals (issue 11, medians): " + "; ".join(verdicts) + "."
        + (" `--quick` leaves out the ClusterClipDataset read_path=stock and loader floor rows to stay under 2 minutes." if quick else "")
    )
    write_results("read", {"rates": rates, "docs": docs, "shards": shards, "runs": results},
                  markdown_table(["reader (samples/s)", "num_workers=0", "num_workers=2"], rows),
                  command=f"python benchmarks/bench_read.py{' --quick' if quick else ''}", notes=notes)


if __name__ == "__main__":
    main()
