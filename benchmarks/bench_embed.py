"""Every embedder's speed on this machine and the quality of the clusters it leads to.

    python benchmarks/bench_embed.py --quick    # 600 documents, one round (a smoke test, minutes)
    python benchmarks/bench_embed.py            # 6,000 documents in 3 interleaved rounds (~15 min on 2 cores)

Corpus: a seeded uniform subsample of ``benchmarks/data/corpus.jsonl.zst`` (build it with
``benchmarks/build_corpus.py``). Its ``domain`` (a few hundred fine labels) and ``source`` (11)
tags are the ground truth; the clusters never see them.

Speed: the subsample is cut into rounds; in each round every embedder embeds that round's slice in
a fresh process (model load and a 64-document warm-up not timed), the order of the embedders
rotating from round to round, so machine load hits all alike. docs/s is the median over rounds.

Quality: each embedder's vectors for the whole subsample are clustered with streamclip's own
spherical k-means (``writers/clustering.py``) at K = 100 and 400 for 3 seeds; reported are the
adjusted mutual information (scikit-learn) of the clusters with ``domain`` and with ``source``, and
the largest/smallest non-empty cluster ratio, median over seeds (min-max beside it).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, emit, interleaved, markdown_table, parse_args, spread, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCH_CORPUS = HERE / "data" / "corpus.jsonl.zst"
SEED = 0
KS = (100, 400)
KMEANS_SEEDS = (0, 1, 2)

# name -> (how make_embedder / the class is called); max_tokens 256 unless named.
CASES: dict[str, dict] = {
    "minilm fp32 256": {"kind": "minilm", "max_tokens": 256},
    "minilm bf16 256": {"kind": "minilm", "max_tokens": 256, "bf16": True},
    "minilm fp32 128": {"kind": "minilm", "max_tokens": 128},
    "minilm bf16 128": {"kind": "minilm", "max_tokens": 128, "bf16": True},
    "minilm-onnx fp32 256": {"kind": "minilm-onnx", "max_tokens": 256},
    "minilm-onnx-int8 256": {"kind": "minilm-onnx-int8", "max_tokens": 256},
    "static pca64": {"kind": "static", "pca_dims": 64},
    "static pca128": {"kind": "static", "pca_dims": 128},
    "static pca256": {"kind": "static", "pca_dims": 256},
    "static full384": {"kind": "static", "pca_dims": None},
    "hashing": {"kind": "hashing"},
}


def build(case: dict):
    """The embedder a case names (the library's own classes, as ``convert`` builds them)."""
    from streamclip.writers.embedders import make_embedder

    if case["kind"] == "static":
        from streamclip.writers.static_embedder import StaticEmbedder

        return StaticEmbedder(pca_dims=case["pca_dims"], max_tokens=case.get("max_tokens", 256))
    return make_embedder(case["kind"], max_tokens=case.get("max_tokens", 256), bf16=case.get("bf16", False))


def subsample(n: int) -> list[dict]:
    """``n`` documents drawn uniformly (seeded) from the benchmark corpus, in corpus order."""
    if not BENCH_CORPUS.exists():
        sys.exit(f"{BENCH_CORPUS} is missing: build it with python benchmarks/build_corpus.py")
    with io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(BENCH_CORPUS, "rb")), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    keep = sorted(random.Random(SEED).sample(range(len(rows)), n))
    return [{"text": rows[i]["text"], "domain": rows[i]["domain"], "source": rows[i]["source"]} for i in keep]


def child(job: dict) -> None:
    texts = json.loads(Path(job["texts"]).read_text())
    t = time.perf_counter()
    embedder = build(job["case"])
    load = time.perf_counter() - t
    embedder.encode(texts[:64])  # warm-up: first-call allocations and thread pools, not timed
    t = time.perf_counter()
    vectors = embedder.encode(texts)
    seconds = time.perf_counter() - t
    np.save(job["out"], vectors)
    emit({"docs": len(texts), "seconds": seconds, "docs_per_s": len(texts) / seconds, "load_s": load,
          "describe": embedder.describe()})


def quality(vectors: np.ndarray, domain: np.ndarray, source: np.ndarray) -> dict:
    from sklearn.metrics import adjusted_mutual_info_score

    from streamclip.writers.clustering import fit_and_assign

    out = {}
    for k in KS:
        runs = []
        for seed in KMEANS_SEEDS:
            labels = np.asarray(fit_and_assign(vectors, k=k, seed=seed, progress=False).labels)
            sizes = np.bincount(labels, minlength=k)
            filled = sizes[sizes > 0]
            runs.append({"ami_domain": adjusted_mutual_info_score(domain, labels), "ami_source": adjusted_mutual_info_score(source, labels),
                         "size_ratio": float(filled.max() / filled.min()), "empty": int((sizes == 0).sum())})
        out[str(k)] = {key: spread([r[key] for r in runs]) for key in runs[0]}
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for marker, k in zip("os", KS):
        for i, (name, r) in enumerate(results.items()):
            x, y = r["docs_per_s"]["median"], r["quality"][str(k)]["ami_domain"]["median"]
            ax.scatter(x, y, marker=marker, color=f"C{i % 10}", label=name if marker == "o" else None)
            if marker == "o":
                ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("documents/s on this machine (log; median of interleaved rounds)")
    ax.set_ylabel("AMI of clusters with `domain`")
    ax.set_title(f"Embedders: speed vs cluster quality (o: K={KS[0]}, s: K={KS[1]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args(__doc__, "600 documents, one round", child)
    if args is None:
        return
    n, rounds = (600, 1) if args.quick else (6000, args.repeats or 3)
    rows = subsample(n)
    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    try:
        slices = np.array_split(np.arange(n), rounds)
        for r, idx in enumerate(slices):
            (work / f"texts{r}.json").write_text(json.dumps([rows[i]["text"] for i in idx]))
        for case in CASES.values():  # derived models (ONNX export, distillation) are built once, outside the timing
            build(case)
        measured: dict[str, list[dict]] = {name: [] for name in CASES}
        names = list(CASES)
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            cases = {name: [__file__, "--child", json.dumps({"case": CASES[name], "texts": str(work / f"texts{r}.json"),
                                                               "out": str(work / f"{names.index(name)}-{r}.npy")})] for name in order}
            for name, results in interleaved(cases, 1).items():
                measured[name] += results
        domain = np.unique([row["domain"] for row in rows], return_inverse=True)[1]
        source = np.unique([row["source"] for row in rows], return_inverse=True)[1]
        results = {}
        for i, name in enumerate(names):
            vectors = np.concatenate([np.load(work / f"{i}-{r}.npy") for r in range(rounds)])
            results[name] = {"docs_per_s": spread([m["docs_per_s"] for m in measured[name]]),
                             "load_s": spread([m["load_s"] for m in measured[name]]),
                             "describe": measured[name][0]["describe"], "quality": quality(vectors, domain, source)}
            print(f"  quality {name}: {json.dumps(results[name]['quality'])[:200]}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, n, rounds, quick=args.quick)


def report(results: dict, n: int, rounds: int, *, quick: bool) -> None:
    base = results["minilm bf16 256"]
    header = ["embedder", "dim", "docs/s (min-max)", "x MiniLM bf16"]
    header += [f"{col} K={k}" for k in KS for col in ("AMI domain", "AMI source", "largest/smallest")]
    header += [f"AMI domain vs MiniLM bf16 K={k}" for k in KS]
    rows = []
    for name, r in results.items():
        row = [name, r["describe"]["dim"], f"{r['docs_per_s']['median']:,.0f} ({r['docs_per_s']['min']:,.0f}–{r['docs_per_s']['max']:,.0f})",
               f"{r['docs_per_s']['median'] / base['docs_per_s']['median']:.1f}x"]
        for k in KS:
            q = r["quality"][str(k)]
            row += [f"{q['ami_domain']['median']:.3f} ({q['ami_domain']['min']:.3f}–{q['ami_domain']['max']:.3f})",
                    f"{q['ami_source']['median']:.3f}", f"{q['size_ratio']['median']:.0f}"]
        row += [f"{r['quality'][str(k)]['ami_domain']['median'] / base['quality'][str(k)]['ami_domain']['median']:.2f}" for k in KS]
        rows.append(row)
    name = "bench_embed_quick" if quick else "bench_embed"
    RESULTS.mkdir(exist_ok=True)
    png = RESULTS / f"{name}.png"
    plot(results, png)
    command = "python benchmarks/bench_embed.py" + (" --quick" if quick else "")
    notes = (f"{n:,} documents (seeded uniform subsample, seed {SEED}, of the benchmark corpus), {rounds} interleaved round(s) of "
             f"{n // rounds:,}; docs/s: median (min-max) over rounds, model load excluded. AMI: median (min-max) over k-means seeds "
             f"{', '.join(map(str, KMEANS_SEEDS))}; largest/smallest: non-empty clusters, median over seeds. The machine was shared with other "
             "work during the run (2 cores), so absolute docs/s are lower bounds; the ratios rest on the interleaving. "
             f"No GPU was lent to this run, so MiniLM on CUDA is not measured. Plot: `{png.name}`.")
    write_results(name, {"documents": n, "rounds": rounds, "ks": list(KS), "kmeans_seeds": list(KMEANS_SEEDS), "shared_machine": True,
                         "results": results}, markdown_table(header, rows), command=command, notes=notes)


if __name__ == "__main__":
    main()
