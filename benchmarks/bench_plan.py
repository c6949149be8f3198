"""How long the plan for one epoch takes, next to the stock shuffle that runs on it anyway.

    python benchmarks/bench_plan.py --quick     # N in {1e6}, K in {10, 1000, 10000}
    python benchmarks/bench_plan.py             # N in {1e6, 1e7, 1e8}

Plans read no text, only cluster and shard sizes: clusters get a lognormal long tail of sizes
(sigma 1.5, seeded) summing to N, split into shards of at most 16,384 samples (about 16 MB of
1 KB documents). The run is 4 epochs of N draws under ClusterClip(clip=8); each epoch's
``plan_segment`` is timed at epochs 0, 1 and 3 (flat in the epoch index?) and compared with
``streaming.base.shuffle.get_shuffle('py1e', ...)`` over the same N samples and shard sizes, which
every StreamingDataset epoch runs after the plan. Memory is the tracemalloc peak of the call
(numpy reports its buffers there) divided by N.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import emit, fmt, interleaved, markdown_table, parse_args, spread, write_results  # noqa: E402

SHARD = 16384
EPOCHS = 4


def layout(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-shard sample counts and each cluster's shard range, for a long-tailed corpus of n samples."""
    rng = np.random.default_rng((n, k))
    weights = rng.lognormal(0.0, 1.5, size=k)
    sizes = np.maximum(1, np.floor(weights / weights.sum() * n)).astype(np.int64)
    sizes[np.argmax(sizes)] += n - sizes.sum()
    per_cluster_shards = -(-sizes // SHARD)
    shards = np.full(per_cluster_shards.sum(), SHARD, dtype=np.int64)
    ends = np.cumsum(per_cluster_shards)
    shards[ends - 1] = sizes - (per_cluster_shards - 1) * SHARD
    ranges = np.stack([ends - per_cluster_shards, ends], axis=1)
    return shards, ranges


def child(spec: dict) -> None:
    from streamclip.plan import ClusterClip, ClusterLayout, RunSchedule, plan_segment

    n, k, epoch = spec["N"], spec["K"], spec["epoch"]
    shards, ranges = layout(n, k)
    if spec["what"] == "shuffle":
        from streaming.base.shuffle import get_shuffle

        tracemalloc.start()
        t = time.perf_counter()
        get_shuffle("py1e", shards, 1, 9176, epoch, 1 << 18)
    else:
        lay = ClusterLayout.from_shards(shards, ranges)
        t0 = time.perf_counter()
        schedule = RunSchedule(lay.cluster_sizes, ClusterClip(clip=8), EPOCHS * n)
        setup = time.perf_counter() - t0
        tracemalloc.start()
        t = time.perf_counter()
        units, ids = plan_segment(lay, schedule, seed=17, epoch_size=n, epoch=epoch)
        if len(ids) != n:
            raise SystemExit(f"plan has {len(ids)} samples, expected {n}")
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    emit({"seconds": seconds, "bytes_per_sample": peak / n, "shards": int(len(shards)), **({"setup": setup} if spec["what"] == "plan" else {})})


def main() -> None:
    args = parse_args(__doc__, "N = 1e6 only, 2 repetitions (under 2 minutes)", child)
    if args is None:
        return
    sizes = [10**6] if args.quick else [10**6, 10**7, 10**8]
    repeats = args.repeats or (2 if args.quick else 3)
    me = str(Path(__file__).resolve())
    rows, data = [], []
    for n in sizes:
        for k in (10, 1000, 10000):
            cases = {"shuffle": [me, "--child", json.dumps({"what": "shuffle", "N": n, "K": k, "epoch": 0})]}
            for epoch in (0, 1, EPOCHS - 1):
                cases[f"plan@{epoch}"] = [me, "--child", json.dumps({"what": "plan", "N": n, "K": k, "epoch": epoch})]
            print(f"N={n:.0e} K={k}", file=sys.stderr)
            results = interleaved(cases, repeats)
            stock = spread([r["seconds"] for r in results["shuffle"]])
            plans = {e: spread([r["seconds"] for r in results[f"plan@{e}"]]) for e in (0, 1, EPOCHS - 1)}
            mem = max(r["bytes_per_sample"] for e in (0, 1, EPOCHS - 1) for r in results[f"plan@{e}"])
            ratio = plans[0]["median"] / stock["median"]
            rows.append([f"{n:.0e}", k, results["shuffle"][0]["shards"], fmt(stock, " s", 3),
                         *(fmt(plans[e], " s", 3) for e in (0, 1, EPOCHS - 1)), f"{ratio:.2f}x", f"{mem:.1f}"])
            data.append({"N": n, "K": k, "stock_shuffle": stock, "plan": {str(e): s for e, s in plans.items()},
                         "plan_over_shuffle": ratio, "plan_bytes_per_sample": mem,
                         "schedule_setup_seconds": spread([r["setup"] for r in results["plan@0"]])})
    header = ["N", "K", "shards", "stock get_shuffle py1e", "plan epoch 0", "plan epoch 1", f"plan epoch {EPOCHS - 1}", "plan / shuffle", "plan bytes/sample"]
    notes = ("Goal (issue 11): plan <= 0.5x stock get_shuffle and <= 16 bytes per sample, flat in the epoch index. "
             "Median (min–max) of interleaved fresh-process runs.")
    write_results("plan", {"rows": data}, markdown_table(header, rows),
                  command=f"python benchmarks/bench_plan.py{' --quick' if args.quick else ''}", notes=notes)


if __name__ == "__main__":
    main()
