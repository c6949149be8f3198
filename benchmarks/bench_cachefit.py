"""What fitting the shuffle block to a ``cache_limit`` costs at construction, next to one stock shuffle.

    python benchmarks/bench_cachefit.py --quick     # epochs of 1e6 samples, 2 repetitions
    python benchmarks/bench_cachefit.py             # epochs of 1e6 and 1e7 samples, 3 repetitions

Dataset: bench_read's (100 clusters of the benchmark corpus, one zstd shard each; 30k documents with
--quick). Each row builds ``ClusterClipDataset(cache_limit=16 shards + index, predownload=one batch,
batch 256, ClusterClip clip=100, epoch of N samples)`` in a fresh process with an empty cache and times
the construction, which searches the block (``readers/cachefit.py``); the baseline, also in a fresh
process, is what every epoch of a StreamingDataset runs anyway: stock ``get_shuffle('py1e')`` over the
same epoch's shuffle units with the default block. The search runs a few such shuffles (one per block
tried), plus the windows of each.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_read import BATCH, build  # noqa: E402
from harness import emit, fmt, interleaved, markdown_table, parse_args, spread, write_results  # noqa: E402

CACHE_SHARDS = 16


def dataset_kwargs(spec: dict[str, Any], cache: str) -> dict[str, Any]:
    index = Path(spec["dataset"]) / "index.json"
    largest = max(s["raw_data"]["bytes"] + (s["zip_data"] or {}).get("bytes", 0) for s in json.loads(index.read_text())["shards"])
    return dict(remote=spec["dataset"], local=cache, strategy="clusterclip", strategy_params={"clip": 100}, epochs=1,
                epoch_size=spec["N"], batch_size=BATCH, predownload=BATCH, seed=3,
                cache_limit=CACHE_SHARDS * largest + index.stat().st_size)


def child(spec: dict[str, Any]) -> None:
    from streaming.base.shuffle import get_shuffle

    from streamclip.readers import ClusterClipDataset

    cache = tempfile.mkdtemp(prefix="bench-cachefit-")
    try:
        kwargs = dataset_kwargs(spec, cache)
        if spec["what"] == "fit":
            t = time.perf_counter()
            ds = ClusterClipDataset(**kwargs)
            emit({"seconds": time.perf_counter() - t, "block": ds.shuffle_block_size, "shards": ds.cache_fit.shards})
        else:
            kwargs.pop("cache_limit")
            ds = ClusterClipDataset(**kwargs)
            units, _ = ds.resample_streams(0)
            t = time.perf_counter()
            get_shuffle("py1e", units, 1, ds.shuffle_seed, 0, max(4_000_000 // 1, 1 << 18))  # stock's default block, one canonical node
            emit({"seconds": time.perf_counter() - t})
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    args = parse_args(__doc__, "epochs of 1e6 samples, 2 repetitions", child)
    if args is None:
        return
    repeats = args.repeats or (2 if args.quick else 3)
    root = Path(tempfile.mkdtemp(prefix="bench-cachefit-ds-"))
    me = str(Path(__file__).resolve())
    try:
        dataset = root / "ds"
        docs = build(30000 if args.quick else None, dataset)
        rows, data = [], []
        for n in [10**6] if args.quick else [10**6, 10**7]:
            spec = {"dataset": str(dataset), "N": n}
            results = interleaved({what: [me, "--child", json.dumps({**spec, "what": what})] for what in ("fit", "shuffle")}, repeats)
            fit, shuffle = (spread([r["seconds"] for r in results[w]]) for w in ("fit", "shuffle"))
            block, shards = results["fit"][0]["block"], results["fit"][0]["shards"]
            rows.append([f"{n:.0e}", fmt(fit, " s", 2), fmt(shuffle, " s", 2), f"{fit['median'] / shuffle['median']:.1f}", block, shards])
            data.append({"N": n, "construct_with_fit": fit, "one_py1e_shuffle": shuffle, "block": block, "shards": shards})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    notes = (f"{docs:,} documents, 100 clusters in 100 zstd shards; cache_limit {CACHE_SHARDS} shards + index, predownload one "
             f"batch of {BATCH}, cache_workers 1. Median (min–max) of {repeats} interleaved fresh-process runs.")
    header = ["epoch samples", "construction with the fit", "one stock py1e shuffle", "fit / shuffle", "block found", "shards at once"]
    write_results("cachefit", {"rows": data, "docs": docs}, markdown_table(header, rows),
                  command=f"python benchmarks/bench_cachefit.py{' --quick' if args.quick else ''}", notes=notes)


if __name__ == "__main__":
    main()
