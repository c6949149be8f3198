"""Does the sampling help? The ClusterClip experiment in miniature, trained through ClusterClipDataset.

    python benchmarks/bench_outcome.py --quick                 # bundled sample, 2 strategies, 1 seed, minutes
    python benchmarks/bench_outcome.py --regime A              # benchmark corpus, CPU, minutes a run
    python benchmarks/bench_outcome.py --regime B --device cuda
    python benchmarks/bench_outcome.py --regime A --plan-only  # the plans' repeats, no training: check the regime holds

Pipeline: ``streamclip convert`` (embeddings + k-means, not the source tags) -> ``streamclip split``
(N held-out documents per cluster, a fraction F of the rest for training) -> ``train_proxy`` once per
(strategy, seed), the same paired seeds for every strategy -> held-out bits per byte per cluster,
and the same on N training documents per cluster (the train-vs-held-out gap).

Resumable record by record: each finished run appends one record to the results JSON (a list); a
finished (regime, strategy, seed) is skipped, and an interrupted run continues from its checkpoint
under benchmarks/work/outcome/. Every option that shapes a run is part of the work directory's
name, so changing one starts new work rather than mixing runs. The markdown table and the PNG are
rebuilt from all records at the end of every invocation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, markdown_table  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLE = "data/sample/corpus.jsonl.gz"  # corpora relative to the repository root, so records name no machine path
CORPUS = "benchmarks/data/corpus.jsonl.zst"
WORK = HERE / "work" / "outcome"
RESULTS = HERE / "results"
ALL_STRATEGIES = ("random", "uniform", "clusterclip2", "clusterclip4", "temperature0.5", "g2s", "s2g")
PAIRS = (("uniform", "random"), ("clusterclip2", "uniform"), ("clusterclip4", "uniform"), ("clusterclip2", "random"),
         ("clusterclip4", "random"), ("temperature0.5", "random"), ("g2s", "random"), ("s2g", "random"))
METRICS = ("macro", "worst", "rare_half", "common_half", "micro")


def strategy(name: str):  # -> streamclip.plan.Strategy
    from streamclip.plan import ClusterClip, Random, Temperature, Uniform, general_to_specific, specific_to_general

    return {"random": Random(), "uniform": Uniform(), "clusterclip2": ClusterClip(clip=2), "clusterclip4": ClusterClip(clip=4),
            "temperature0.5": Temperature(0.5), "g2s": general_to_specific(0.5), "s2g": specific_to_general(0.5)}[name]


@dataclass(frozen=True)
class Regime:
    """Everything that decides a regime's runs (the work directory is named after its hash)."""

    name: str
    corpus: str
    embedder: str
    clusters: int
    eval_per_cluster: int
    train_fraction: float
    token_epochs: float  # training bytes = this many times the train set's bytes
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    model: dict[str, Any] = field(default_factory=dict)  # ProxyConfig fields
    split_seed: int = 0
    tokens: int | None = None  # training bytes, overriding token_epochs
    bf16: bool = True  # MiniLM under bf16 autocast: about twice fp32's documents/s on CPU

    def data_key(self) -> str:
        """What the converted dataset and its split depend on: runs of other models or budgets share them."""
        fields = ("corpus", "embedder", "clusters", "eval_per_cluster", "train_fraction", "split_seed", "bf16")
        return hashlib.sha256(json.dumps({k: getattr(self, k) for k in fields}, sort_keys=True).encode()).hexdigest()[:10]

    def key(self) -> str:
        """What a run's record depends on, the proxy's effective configuration included (a changed default reruns)."""
        from streamclip.readers.proxy import ProxyConfig

        blob = {k: v for k, v in asdict(self).items() if k not in ("strategies", "seeds")}
        blob["proxy"] = asdict(ProxyConfig(**self.model))
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:10]


TINY = dict(layers=2, d_model=64, heads=2, context=64, batch_size=8, docs_per_batch=8, warmup_steps=30, lr=3e-3, min_lr=3e-4)
REGIMES = {
    "quick": Regime("quick", SAMPLE, "hashing", 16, 20, 1.0, 0.1, ("random", "uniform"), (0,), TINY),
    # Regime A (CPU, minutes a run). k-means on MiniLM flattens this corpus's tail (K=256: smallest cluster 60 documents,
    # mean 498), so the held-out set does the skewing: 10 documents out of every cluster leave the smallest with 50, and
    # one random epoch of bytes then has uniform repeat the smallest clusters about 10 times. A 5% train fraction keeps
    # a run to minutes on 2 cores (about 3.8 MB of training bytes).
    "A": Regime("A", CORPUS, "minilm", 256, 10, 0.05, 1.0, ALL_STRATEGIES, (0, 1, 2),
                dict(layers=2, d_model=128, heads=4, context=128, batch_size=32, docs_per_batch=32)),
    # Regime B (the paper's): rare clusters repeated 100 times or more under uniform. The held-out set skews the tail
    # again (10 documents out of every cluster), and 1.9 epochs of bytes (just inside ClusterClip(2)'s limit) have
    # uniform repeat the smallest clusters up to ~130 times (check with --plan-only). The static embedder (model2vec
    # distilled from MiniLM, about a minute for the corpus) because work directories do not outlive a session here
    # and MiniLM would re-embed the corpus for most of an hour before every CPU session's runs; A's model, about 16 min
    # a run on 2 cores, so a campaign spans sessions run by run (finished records are kept in the results file).
    "B": Regime("B", CORPUS, "static", 256, 10, 0.1, 1.9, ("random", "uniform", "clusterclip2", "clusterclip4"), (0, 1, 2),
                dict(layers=2, d_model=128, heads=4, context=128, batch_size=32, docs_per_batch=32), bf16=False),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the bundled sample, random and uniform, one seed, a tiny model")
    p.add_argument("--regime", choices=sorted(REGIMES), default=None)
    p.add_argument("--corpus", default=None, help="input corpus (default: the regime's)")
    p.add_argument("--embedder", choices=("minilm", "minilm-onnx-int8", "static", "hashing"), default=None)
    p.add_argument("--clusters", type=int, default=None)
    p.add_argument("--eval-per-cluster", type=int, default=None)
    p.add_argument("--train-fraction", type=float, default=None)
    p.add_argument("--token-epochs", type=float, default=None, help="training bytes as a multiple of the train set's bytes")
    p.add_argument("--tokens", type=int, default=None, help="training bytes (overrides --token-epochs)")
    p.add_argument("--strategies", default=None, help=f"comma-separated, from {', '.join(ALL_STRATEGIES)}")
    p.add_argument("--seeds", default=None, help="comma-separated paired seeds, e.g. 0,1,2")
    p.add_argument("--model", default=None, help='JSON of ProxyConfig fields, e.g. \'{"layers": 2, "d_model": 128}\'')
    p.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    p.add_argument("--device", default=None, help="cpu or cuda [default: cuda when present]")
    p.add_argument("--results", default=None, help="results JSON (default: benchmarks/results/outcome.json; outcome-quick.json for --quick)")
    p.add_argument("--work", default=str(WORK), help="where datasets and checkpoints live")
    p.add_argument("--plan-only", action="store_true", help="print each strategy's plan (repeats, documents) and stop")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)  # tests: interrupt the first run at this step
    return p.parse_args(argv)


def regime_of(args: argparse.Namespace) -> Regime:
    base = REGIMES["quick" if args.quick else (args.regime or "A")]
    changes: dict[str, Any] = {}
    for name in ("corpus", "embedder", "clusters", "eval_per_cluster", "train_fraction", "token_epochs", "tokens"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.strategies:
        changes["strategies"] = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
        unknown = set(changes["strategies"]) - set(ALL_STRATEGIES)
        if unknown:
            raise SystemExit(f"unknown strategies {sorted(unknown)}; choose from {', '.join(ALL_STRATEGIES)}")
    if args.seeds:
        changes["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    if args.model:
        changes["model"] = {**base.model, **json.loads(args.model)}
    return replace(base, **changes)


def prepare(regime: Regime, work: Path) -> tuple[Path, Path, Path]:
    """The converted dataset and its split, built once per regime configuration (both steps are deterministic)."""
    from streamclip.writers import ConvertConfig, FieldRules, convert, split

    ds, train, held = work / "ds", work / "train", work / "eval"
    if not (ds / "streamclip.json").exists():
        # One work directory per (corpus, embedder), kept: regimes that differ only in K re-cluster the same embeddings (--resume).
        embedded = work.parent / f"embed-{hashlib.sha256(json.dumps([regime.corpus, regime.embedder, regime.bf16]).encode()).hexdigest()[:10]}"
        convert([str(REPO / regime.corpus)], str(ds), ConvertConfig(clusters=regime.clusters, embedder=regime.embedder, bf16=regime.bf16 and regime.embedder == "minilm",
                                                         rules=FieldRules(keep=("source", "domain")), overwrite=True, resume=True,
                                                         work_dir=str(embedded), keep_work=True, progress=sys.stderr.isatty()))
    if not (held / "streamclip.json").exists() or not (train / "streamclip.json").exists():
        split(str(ds), str(train), str(held), eval_per_cluster=regime.eval_per_cluster, train_fraction=regime.train_fraction,
              seed=regime.split_seed, overwrite=True)
    return ds, train, held


def describe_dataset(ds: Path, train: Path) -> dict[str, Any]:
    """Cluster sizes (documents and bytes) and how well k-means recovers the source tags (adjusted mutual information)."""
    from sklearn.metrics import adjusted_mutual_info_score
    from streaming import StreamingDataset

    from streamclip import open_manifest

    m, t = open_manifest(str(ds)), open_manifest(str(train))
    stored = StreamingDataset(local=str(ds), shuffle=False, batch_size=1)
    rows = [stored[i] for i in range(stored.num_samples)]
    clusters = [int(r["cluster"]) for r in rows]
    ami = adjusted_mutual_info_score([r["source"] for r in rows], clusters)
    ami_domain = adjusted_mutual_info_score([str(r["domain"]) for r in rows], clusters)
    return {
        "documents": m.num_documents, "clusters": m.num_clusters, "train_documents": t.num_documents,
        "largest": {"documents": int(m.cluster_sizes.max()), "bytes": int(m.cluster_bytes.max())},
        "smallest": {"documents": int(m.cluster_sizes.min()), "bytes": int(m.cluster_bytes.min())},
        "train_bytes": int(t.cluster_bytes.sum()), "ami_with_source": float(ami), "ami_with_domain": float(ami_domain),
    }


def tokens_of(regime: Regime, train: Path) -> int:
    from streamclip import open_manifest

    if regime.tokens is not None:
        return regime.tokens
    return int(regime.token_epochs * int(open_manifest(str(train)).cluster_bytes.sum()))


def plan_only(regime: Regime, train: Path) -> None:
    from streamclip import PlanInfeasible, open_manifest
    from streamclip.readers.proxy import ProxyConfig, plan_documents
    from streamclip.plan import RunSchedule, summarize

    m = open_manifest(str(train))
    config = ProxyConfig(**regime.model)
    tokens = tokens_of(regime, train)
    print(f"{regime.name}: {m.num_documents} train documents, {int(m.cluster_bytes.sum())} bytes; {tokens} training bytes")
    for name in regime.strategies:
        try:
            total = plan_documents(m, strategy(name), tokens // config.context * (config.context + 1), margin=0.0)
            s = summarize(m.cluster_sizes, RunSchedule(m.cluster_sizes, strategy(name), total))
        except PlanInfeasible as e:
            print(f"  {name:<15} infeasible: {e}")
            continue
        rare = s.passes[m.cluster_sizes <= statistics.median(m.cluster_sizes.tolist())]
        print(f"  {name:<15} documents {total:>9}  unique {s.total_unique_seen / m.num_documents:6.1%}  max repeats {int(s.passes.max()):>5}"
              f"  rare-half repeats {int(rare.min())}-{int(rare.max())}")


def run_one(regime: Regime, name: str, seed: int, train: Path, held: Path, work: Path, *, threads: int, device: str | None,
            stop_after: int | None) -> dict[str, Any] | None:
    """One (strategy, seed) run as a record; None when interrupted (its checkpoint holds it)."""
    import numpy as np

    from streamclip import open_manifest
    from streamclip.readers import ProxyConfig, evaluate_proxy, train_proxy

    result = train_proxy(str(train), strategy(name), tokens=tokens_of(regime, train), seed=seed, model=ProxyConfig(**regime.model),
                         eval=str(held), checkpoint_dir=str(work / "runs" / regime.key() / f"{name}-s{seed}"), device=device, threads=threads,
                         stop_after=stop_after, progress=sys.stderr.isatty())
    if not result.completed:
        return None
    sizes = open_manifest(str(train)).cluster_sizes
    ev = result.eval
    ids = np.array(ev["clusters"])
    held_bpb = np.array(ev["bpb"])
    seen = evaluate_proxy(result.model, str(train), device=device, max_documents_per_cluster=regime.eval_per_cluster)
    train_bpb = np.array(seen["bpb"])[ids]
    order = np.argsort(sizes[ids], kind="stable")
    rare, common = order[: len(order) // 2], order[len(order) // 2:]
    return {
        "regime": regime.name, "strategy": name, "seed": seed, "tokens": result.tokens, "max_repeats": result.max_repeats,
        "documents_drawn": result.documents_drawn,
        "bpb": {"macro": ev["macro"], "worst": ev["worst"], "rare_half": float(held_bpb[rare].mean()),
                "common_half": float(held_bpb[common].mean()), "micro": ev["micro"]},
        "rare_gap": float(held_bpb[rare].mean() - train_bpb[rare].mean()),
        "per_cluster": {"clusters": ids.tolist(), "train_size": sizes[ids].tolist(), "held_out_bpb": held_bpb.tolist(), "train_bpb": train_bpb.tolist()},
        "steps": result.steps, "train_loss": result.train_loss, "parameters": result.parameters, "device": result.device,
        "wall_seconds": result.wall_seconds, "regime_key": regime.key(), "config": {k: v for k, v in asdict(regime).items() if k not in ("strategies", "seeds")},
    }


def load_records(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def save_records(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=1) + "\n")
    os.replace(tmp, path)


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def report(records: list[dict[str, Any]], dataset: dict[str, dict[str, Any]], md: Path, png: Path, command: str) -> None:
    """Mean and spread per strategy, paired differences with the seeds on which each sign holds, and the per-cluster plot."""
    lines = [f"Command: `{command}`", ""]
    for regime in sorted({r["regime"] for r in records}):
        runs = [r for r in records if r["regime"] == regime]
        names = [s for s in ALL_STRATEGIES if any(r["strategy"] == s for r in runs)]
        lines += [f"### Regime {regime}", ""]
        if regime in dataset:
            d = dataset[regime]
            lines += [f"{d['documents']} documents in {d['clusters']} k-means clusters (largest {d['largest']['documents']} docs / "
                      f"{d['largest']['bytes']} bytes, smallest {d['smallest']['documents']} / {d['smallest']['bytes']}); "
                      f"AMI with the source tags {d['ami_with_source']:.3f}, with the fine domain tags {d.get('ami_with_domain', float('nan')):.3f}; {d['train_documents']} train documents, {d['train_bytes']} bytes.", ""]
        rows = []
        for s in names:
            group = [r for r in runs if r["strategy"] == s]
            rows.append([s, len(group), f"{statistics.mean(r['tokens'] for r in group):,.0f}", f"{statistics.mean(r['documents_drawn'] for r in group):,.0f}",
                         max(r["max_repeats"] for r in group)] + [_mean_sd([r["bpb"][m] for r in group]) for m in METRICS]
                        + [_mean_sd([r["rare_gap"] for r in group])])
        lines += [markdown_table(["strategy", "seeds", "tokens", "documents drawn", "max repeats", *(f"{m} bpb" for m in METRICS), "rare gap"], rows), ""]
        diffs = []
        for a, b in PAIRS:
            paired = [(x, y) for x in runs for y in runs if x["strategy"] == a and y["strategy"] == b and x["seed"] == y["seed"]]
            if not paired:
                continue
            cells = []
            for m in ("macro", "worst", "rare_half", "micro"):
                d = [x["bpb"][m] - y["bpb"][m] for x, y in paired]
                cells.append(f"{statistics.mean(d):+.4f} ({sum(v < 0 for v in d)}/{len(d)} lower)")
            diffs.append([f"{a} − {b}", *cells])
        if diffs:
            lines += ["Paired differences (same seeds; negative = the first is better; in brackets the seeds where it is lower):", "",
                      markdown_table(["pair", "macro", "worst", "rare half", "micro"], diffs), ""]
    info = machine()
    lines += [f"Machine: {info['cores']} cores, {info['cpu']}{''.join(f', {g}' for g in info['gpus'])}, Python {info['python']}.", ""]
    md.write_text("\n".join(lines))
    _plot(records, png)


def _plot(records: list[dict[str, Any]], png: Path) -> None:
    """Per regime: every seed's macro bpb per strategy, and each strategy's per-cluster gain over random by cluster size.

    Per-cluster curves of absolute bpb are dominated by how hard each cluster's text is (a 1-bit spread) and hide
    the strategies' differences (hundredths of a bit), so the right panel plots the paired difference to random,
    averaged over seeds and over clusters grouped into size octiles."""
    import numpy as np
    from matplotlib.figure import Figure

    regimes = sorted({r["regime"] for r in records})
    fig = Figure(figsize=(12, 4.5 * len(regimes)))
    axes = np.array(fig.subplots(len(regimes), 2, squeeze=False))
    for (left, right), regime in zip(axes, regimes):
        runs = [r for r in records if r["regime"] == regime]
        names = [s for s in ALL_STRATEGIES if any(r["strategy"] == s for r in runs)]
        for i, s in enumerate(names):
            values = [r["bpb"]["macro"] for r in runs if r["strategy"] == s]
            left.scatter(np.full(len(values), i), values, color="0.4", s=14, zorder=3)
            left.hlines(np.mean(values), i - 0.3, i + 0.3, color=f"C{i}", linewidth=2.5)
        left.set_xticks(range(len(names)), names, rotation=30, ha="right")
        left.set(title=f"Regime {regime}: held-out macro bits per byte (dots: seeds)", ylabel="bits per byte (lower is better)")
        sizes = np.array(runs[0]["per_cluster"]["train_size"])
        order = np.argsort(sizes, kind="stable")
        bins = np.array_split(order, min(8, len(order)))
        centres = [float(np.median(sizes[b])) for b in bins]
        base = {r["seed"]: np.array(r["per_cluster"]["held_out_bpb"]) for r in runs if r["strategy"] == "random"}
        for i, s in enumerate(names):
            diffs = [np.array(r["per_cluster"]["held_out_bpb"]) - base[r["seed"]] for r in runs if r["strategy"] == s and r["seed"] in base]
            if s == "random" or not diffs:
                continue
            mean = np.mean(diffs, axis=0)
            right.plot(centres, [mean[b].mean() for b in bins], marker="o", color=f"C{i}", label=s)
        right.axhline(0, color="0.5", linewidth=1)
        right.set_xscale("log")
        right.set(title=f"Regime {regime}: strategy − random, per cluster (paired seeds)", xlabel="cluster train size (documents; median of each octile)",
                  ylabel="Δ bits per byte (below 0: better than random)")
        right.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    regime = regime_of(args)
    work = Path(args.work) / f"{regime.name}-{regime.data_key()}"
    results = Path(args.results) if args.results else RESULTS / ("outcome-quick.json" if args.quick else "outcome.json")
    ds, train, held = prepare(regime, work)
    if args.plan_only:
        plan_only(regime, train)
        return 0
    records = load_records(results)
    done = {(r["regime"], r.get("regime_key"), r["strategy"], r["seed"]) for r in records}
    stop_after = args.stop_after
    for seed in regime.seeds:  # seed-major: a partial campaign still has paired runs
        for name in regime.strategies:
            if (regime.name, regime.key(), name, seed) in done:
                continue
            record = run_one(regime, name, seed, train, held, work, threads=args.threads, device=args.device, stop_after=stop_after)
            if record is None:
                print(f"{regime.name} {name} seed {seed}: interrupted at step {stop_after}; run again to resume", file=sys.stderr)
                return 3
            records.append(record)
            save_records(results, records)
            print(f"{regime.name} {name} seed {seed}: macro {record['bpb']['macro']:.4f} worst {record['bpb']['worst']:.4f} "
                  f"rare gap {record['rare_gap']:+.4f} ({record['wall_seconds']:.0f}s)", file=sys.stderr)
    info_path = work / "dataset.json"
    if not info_path.exists():
        info_path.write_text(json.dumps(describe_dataset(ds, train), indent=1))
    datasets = {regime.name: json.loads(info_path.read_text())}
    command = "python benchmarks/bench_outcome.py " + " ".join(argv if argv is not None else sys.argv[1:])
    latest = {r["regime"]: r.get("regime_key") for r in records}  # per regime, the configuration that ran last
    current = [r for r in records if r.get("regime_key") == latest[r["regime"]]]
    report(current, datasets, results.with_suffix(".md"), results.with_suffix(".png"), command.strip())
    print(results.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
