"""CLIMB on the built-in proxy: does a searched mixture beat the corpus's own mixture on a target domain?

    python benchmarks/bench_climb.py --quick        # bundled sample, hashing embedder, a tiny search: a smoke run
    python benchmarks/bench_climb.py                # benchmark corpus (bench_outcome's regime A data), CPU

Data: bench_outcome's prepared train/eval split (k-means clusters of MiniLM embeddings; the tags never reach
the clusters). Target: the held-out documents of one fine ``domain`` tag (``--domain``; default: the domain
with the most held-out documents among those under 1% of the train set), scored directly in bits per byte.
Search: ``streamclip.mixture.search`` with ``ProxyObjective`` (small proxies, ``--search-tokens`` bytes each),
its state kept under benchmarks/work/climb/ so a killed search resumes. Then the found mixture, the
size-proportional one (random) and uniform are each trained with the larger ``--final-tokens`` budget and
the outcome experiment's model, on paired seeds, and scored on the target. Each finished final run is a
record in benchmarks/results/climb.json (skipped on a rerun).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_outcome  # noqa: E402
from harness import machine, markdown_table  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "climb"
RESULTS = HERE / "results"
SEARCH_MODEL = dict(layers=1, d_model=64, heads=2, context=64, batch_size=16, docs_per_batch=16, warmup_steps=20, lr=3e-3, min_lr=3e-4)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the bundled sample, a tiny search and final runs")
    p.add_argument("--domain", default=None, help="target domain tag (default: chosen by the rule above)")
    p.add_argument("--runs", default="12,6,6", help="proxy runs per round (the recipe's 64,32,16 is hours of CPU here)")
    p.add_argument("--search-tokens", type=int, default=400_000, help="training bytes per proxy run")
    p.add_argument("--final-tokens", type=int, default=None, help="training bytes per final run (default: regime A's budget)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--merge-to", type=int, default=16, help="super-clusters searched (Ward on the centroids; CLIMB merges to about 20)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default=None)
    return p.parse_args(argv)


def target_documents(held: Path, train: Path, domain: str | None) -> tuple[str, list[str]]:
    from streaming import StreamingDataset

    def rows(path: Path) -> list[dict[str, Any]]:
        ds = StreamingDataset(local=str(path), shuffle=False, batch_size=1)
        return [ds[i] for i in range(ds.num_samples)]

    held_rows, train_rows = rows(held), rows(train)
    if domain is None:
        share: dict[str, int] = {}
        for r in train_rows:
            share[str(r["domain"])] = share.get(str(r["domain"]), 0) + 1
        counts: dict[str, int] = {}
        for r in held_rows:
            d = str(r["domain"])
            if share.get(d, 0) < 0.01 * len(train_rows):
                counts[d] = counts.get(d, 0) + 1
        domain = max(sorted(counts), key=lambda d: counts[d])
    texts = [r["text"] for r in held_rows if str(r["domain"]) == domain]
    if not texts:
        raise SystemExit(f"no held-out document has domain {domain!r}")
    return domain, texts


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from streamclip import open_manifest
    from streamclip.manifest import clustering_fingerprint, load_centroids
    from streamclip.mixture import search
    from streamclip.plan import Random, Uniform, Weighted
    from streamclip.readers import ProxyConfig, ProxyObjective, score_texts, train_proxy

    args = parse(argv)
    regime = bench_outcome.REGIMES["quick" if args.quick else "A"]
    data = bench_outcome.WORK / f"{regime.name}-{regime.data_key()}"
    _, train, held = bench_outcome.prepare(regime, data)
    domain, texts = target_documents(held, train, args.domain)
    runs = tuple(int(r) for r in args.runs.split(","))
    if args.quick:
        runs, args.search_tokens, args.seeds = (6, 3), 40 * 16 * 64, "0"
    m = open_manifest(str(train))
    merge = min(args.merge_to, m.num_clusters)
    tag = f"{'quick' if args.quick else 'A'}-{domain}-{'-'.join(map(str, runs))}-{args.search_tokens}-m{merge}"
    tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)  # a domain tag may hold a slash
    work = WORK / tag
    work.mkdir(parents=True, exist_ok=True)
    search_model = ProxyConfig(**SEARCH_MODEL)
    proxy = ProxyObjective(str(train), tokens=args.search_tokens, target_texts=texts, seed=0, model=search_model,
                           work_dir=str(work / "proxies"), device=args.device, threads=args.threads)
    began = time.perf_counter()
    result = search(proxy, m.num_clusters, iterations=len(runs), runs=runs, pool=20_000, prior=m.cluster_sizes.astype(float), seed=0,
                    state=work / "state.jsonl", merge=merge, centroids=load_centroids(str(train), m), dataset=m.fingerprint(), clustering=clustering_fingerprint(str(train), m), progress=True)
    search_seconds = time.perf_counter() - began
    result.save(work / "weights.json")
    from streamclip.mixture.plot import plot_search

    RESULTS.mkdir(exist_ok=True)
    name = "climb-quick" if args.quick else "climb"
    plot_search(result, m.cluster_sizes, RESULTS / f"{name}-search.png")

    final_model = ProxyConfig(**regime.model)
    final_tokens = args.final_tokens or bench_outcome.tokens_of(regime, train)
    mixtures = {"found": Weighted.load(str(work / "weights.json")), "size-proportional": Random(), "uniform": Uniform()}
    path = RESULTS / f"{name}.json"
    doc = json.loads(path.read_text()) if path.exists() else {"records": []}
    if doc.get("tag") != tag:
        doc = {"tag": tag, "records": []}
    done = {(r["mixture"], r["seed"]) for r in doc["records"]}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for label, strategy in mixtures.items():
            if (label, seed) in done:
                continue
            run = train_proxy(str(train), strategy, tokens=final_tokens, seed=seed, model=final_model, checkpoint_dir=str(work / "final" / f"{label}-s{seed}"),
                              device=args.device, threads=args.threads)
            bpb = score_texts(run.model, texts, device=args.device)
            doc["records"].append({"mixture": label, "seed": seed, "target_bpb": bpb, "tokens": run.tokens, "wall_seconds": run.wall_seconds})
            path.write_text(json.dumps(doc, indent=1))
            print(f"{label} seed {seed}: target {bpb:.4f} bpb ({run.wall_seconds:.0f}s)", file=sys.stderr)
    doc.update({
        "domain": domain, "target_documents": len(texts), "target_bytes": sum(len(t.encode()) for t in texts), "runs": list(runs),
        "search_tokens": args.search_tokens, "search_model": SEARCH_MODEL, "final_tokens": final_tokens, "final_model": regime.model,
        "search_seconds": search_seconds, "proxy_runs": len(result.history), "best_proxy_score": result.score,
        "predictor_quality": result.predictor_quality, "machine": machine(),
    })
    path.write_text(json.dumps(doc, indent=1))
    rows = []
    for label in mixtures:
        values = [r["target_bpb"] for r in doc["records"] if r["mixture"] == label]
        rows.append([label, len(values), f"{statistics.mean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")])
    base = {r["seed"]: r["target_bpb"] for r in doc["records"] if r["mixture"] == "size-proportional"}
    diffs = [r["target_bpb"] - base[r["seed"]] for r in doc["records"] if r["mixture"] == "found" and r["seed"] in base]
    quality = ", ".join(f"round {q['round'] + 1}: {q['spearman']:.2f}" if q["spearman"] is not None else f"round {q['round'] + 1}: n/a"
                        for q in result.predictor_quality)
    info = machine()
    command = "python benchmarks/bench_climb.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"Command: `{command.strip()}`", "",
             f"Target: domain `{domain}`, {len(texts)} held-out documents. Search: {len(result.history)} proxy runs ({'/'.join(map(str, runs))}) of "
             f"{args.search_tokens:,} bytes over {merge} Ward super-clusters on a {search_model.layers}-layer d{search_model.d_model} model, {search_seconds:.0f} s; predictor Spearman "
             f"on held-out runs {quality}. Final runs: {final_tokens:,} bytes each on the outcome experiment's model, paired seeds.", "",
             markdown_table(["mixture", "seeds", "target bits per byte"], rows), "",
             f"found − size-proportional (paired): {statistics.mean(diffs):+.4f} ({sum(d < 0 for d in diffs)}/{len(diffs)} seeds lower)" if diffs else "", "",
             f"Machine: {info['cores']} cores, {info['cpu']}{''.join(f', {g}' for g in info['gpus'])}, Python {info['python']}. Search plot: `{name}-search.png`.", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
