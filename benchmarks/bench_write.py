"""What converting costs next to the raw tools it is built on, and whether memory stays flat.

    python benchmarks/bench_write.py --quick    # 20k documents, 300 embedded
    python benchmarks/bench_write.py            # the whole benchmark corpus, 2,000 embedded

Three questions, each side in a fresh process, interleaved, median of repetitions:
- pack: streamclip's spill + pack (one cluster per shard) vs a plain ``MDSWriter`` writing the same
  documents and columns in input order with the same compression and shard size. Documents are
  clustered by their ``domain`` field (``--cluster-field``), so no embedding is involved.
- embed: the converter's embedding stage vs the model's own ``encode`` on the same documents
  (MiniLM, 256 tokens, bf16 autocast on CPU).
- memory: peak RSS of a whole ``convert`` (hashing embedder, 64 k-means clusters) on the corpus and on
  the corpus read 4 times over (four copies of the file).

Corpus: ``benchmarks/data/corpus.jsonl.zst`` (build it with ``benchmarks/build_corpus.py``), else the
bundled sample.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import emit, fmt, interleaved, markdown_table, parse_args, spread, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCH_CORPUS = HERE / "data" / "corpus.jsonl.zst"
SAMPLE = HERE.parent / "data" / "sample" / "corpus.jsonl.gz"


def corpus_rows(limit: int | None) -> list[dict]:
    """The first ``limit`` documents of the benchmark corpus (or the bundled sample)."""
    import gzip

    if BENCH_CORPUS.exists():
        raw = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(BENCH_CORPUS, "rb")), encoding="utf-8")
    else:
        raw = gzip.open(SAMPLE, "rt", encoding="utf-8")
    rows = []
    with raw:
        for line in raw:
            rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


def stage_input(rows: list[dict], work: Path, copies: int = 1) -> Path:
    domains = {d: i for i, d in enumerate(sorted({r["domain"] for r in rows}))}
    path = work / "in.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(copies):
            for r in rows:
                f.write(json.dumps({"text": r["text"], "domain": r["domain"], "group": domains[r["domain"]]}, ensure_ascii=False) + "\n")
    return path


def child(spec: dict) -> None:
    rows = corpus_rows(spec["limit"])
    work = Path(tempfile.mkdtemp(prefix="bench-write-"))
    try:
        if spec["what"] == "pack":
            import streaming  # noqa: F401  imported before timing, as on the raw side

            from streamclip.writers import ConvertConfig, FieldRules, convert

            src = stage_input(rows, work)
            report = convert([str(src)], str(work / "ds"), ConvertConfig(rules=FieldRules(cluster_field="group"), progress=False))
            emit({"seconds": report.seconds["pack"], "docs": report.written})
        elif spec["what"] == "raw":
            from streaming import MDSWriter

            start = time.perf_counter()
            with MDSWriter(out=str(work / "raw"), columns={"text": "str", "cluster": "int32"}, compression="zstd:3", hashes=["xxh64"], size_limit=32 << 20) as w:
                for i, r in enumerate(rows):
                    w.write({"text": r["text"], "cluster": i % 7})
            emit({"seconds": time.perf_counter() - start, "docs": len(rows)})
        elif spec["what"] in ("embed_ours", "embed_model"):
            from streamclip.writers import MiniLMEmbedder

            texts = [r["text"] for r in rows[: spec["embed"]]]
            embedder = MiniLMEmbedder(max_tokens=256, bf16=True)
            embedder.encode(texts[:16])  # load weights and warm up once on both sides
            start = time.perf_counter()
            if spec["what"] == "embed_ours":
                import numpy as np

                from streamclip.writers.conversion import _embed_stage
                from streamclip.writers.docstore import RecordWriter, encode_record

                writer = RecordWriter(str(work / "docs.zst"))
                for t in texts:
                    writer.write(encode_record(t, {}))
                writer.close()
                from streamclip.writers.workdir import WorkDir

                stage = WorkDir(str(work / "embed-work"), out=str(work / "unused-out"), inputs=[])
                state = {**stage.start("bench", False), "documents": len(texts)}
                start = time.perf_counter()
                vectors, _ = _embed_stage(str(work / "docs.zst"), stage, state, embedder, False)
                np.asarray(vectors[-1])
                stage.close()
            else:
                import torch

                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    embedder.model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
            emit({"seconds": time.perf_counter() - start, "docs": len(texts)})
        elif spec["what"] == "engine":
            from streamclip.writers import ConvertConfig, convert

            src = stage_input(rows, work)
            ray = {"engine": "ray", "ray_workers": spec["workers"]} if spec["workers"] else {}
            if ray:
                os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
                import ray as ray_module  # imported before timing, as the local side imports nothing more

            start = time.perf_counter()
            report = convert([str(src)], str(work / "ds"), ConvertConfig(clusters=16, embedder="hashing", progress=False, **ray))
            emit({"seconds": time.perf_counter() - start, "docs": report.written, "worker_peak_mb": report.worker_peak_mb})
        else:  # memory
            from streamclip.writers import ConvertConfig, convert

            src = stage_input(rows, work, copies=spec["copies"])
            report = convert([str(src)], str(work / "ds"), ConvertConfig(clusters=64, embedder="hashing", progress=False))
            emit({"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "docs": report.written})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    args = parse_args(__doc__, "20k documents, 300 embedded, 2 repetitions", child)
    if args is None:
        return
    limit, embed = (20000, 300) if args.quick else (None, 2000)
    repeats = args.repeats or (2 if args.quick else 3)
    me = str(Path(__file__).resolve())

    def case(what: str, **extra) -> list[str]:
        return [me, "--child", json.dumps({"what": what, "limit": limit, "embed": embed, **extra})]

    pack = interleaved({"streamclip pack": case("pack"), "raw MDSWriter": case("raw")}, repeats)
    emb = interleaved({"streamclip embed stage": case("embed_ours"), "model.encode": case("embed_model")}, repeats)
    engines = interleaved({"local": case("engine", workers=0), "ray 1 worker": case("engine", workers=1),
                           "ray 2 workers": case("engine", workers=2)}, repeats)
    sample_limit = limit
    limit = 3842  # the bundled sample's size: the scheduling overhead is measured on it
    small = interleaved({"local": case("engine", workers=0), "ray 2 workers": case("engine", workers=2)}, repeats)
    limit = sample_limit
    mem = interleaved({"1x corpus": case("memory", copies=1), "4x corpus": case("memory", copies=4)}, repeats)

    def rate(results: list[dict]) -> dict:
        return spread([r["docs"] / r["seconds"] for r in results])

    pack_ours, pack_raw = rate(pack["streamclip pack"]), rate(pack["raw MDSWriter"])
    emb_ours, emb_model = rate(emb["streamclip embed stage"]), rate(emb["model.encode"])
    mem1, mem4 = spread([r["max_rss_mb"] for r in mem["1x corpus"]]), spread([r["max_rss_mb"] for r in mem["4x corpus"]])
    docs = pack["streamclip pack"][0]["docs"]
    eng = {name: rate(results) for name, results in engines.items()}
    peak = spread([r["worker_peak_mb"] for r in engines["ray 2 workers"]])
    overhead = spread([r["seconds"] - l["seconds"] for r, l in zip(small["ray 2 workers"], small["local"])])
    rows = [
        ["pack (docs/s)", f"streamclip spill+pack {fmt(pack_ours)}", f"raw MDSWriter {fmt(pack_raw)}", f"{pack_ours['median'] / pack_raw['median']:.2f}x", ">= 0.8x"],
        ["embed (docs/s)", f"streamclip stage {fmt(emb_ours, digits=1)}", f"model.encode {fmt(emb_model, digits=1)}", f"{emb_ours['median'] / emb_model['median']:.2f}x", ">= 0.9x"],
        ["convert, ray 1 worker (docs/s)", f"ray {fmt(eng['ray 1 worker'])}", f"local {fmt(eng['local'])}", f"{eng['ray 1 worker']['median'] / eng['local']['median']:.2f}x", "report"],
        ["convert, ray 2 workers (docs/s)", f"ray {fmt(eng['ray 2 workers'])}", f"local {fmt(eng['local'])}", f"{eng['ray 2 workers']['median'] / eng['local']['median']:.2f}x", "report"],
        ["ray packing worker peak RSS (MB)", f"2 workers {fmt(peak)}", "", "", "report"],
        ["ray scheduling overhead on the sample (s)", f"ray 2 workers - local {fmt(overhead, digits=1)}", "", "", "report"],
        ["peak RSS (MB)", f"4x corpus {fmt(mem4)}", f"1x corpus {fmt(mem1)}", f"{mem4['median'] / mem1['median']:.2f}x", "<= 1.1x"],
    ]
    corpus = "benchmark corpus" if BENCH_CORPUS.exists() else "bundled sample"
    notes = f"{docs} documents of the {corpus} ({mem['4x corpus'][0]['docs']} at 4x); {embed} embedded. Median (min–max) over {repeats} interleaved fresh-process runs."
    write_results("write", {"pack": {"ours": pack_ours, "raw": pack_raw}, "embed": {"ours": emb_ours, "model": emb_model},
                            "memory_mb": {"1x": mem1, "4x": mem4}, "docs": docs,
                            "engines": eng, "ray_worker_peak_mb": peak, "ray_overhead_s": overhead},
                  markdown_table(["stage", "streamclip", "baseline", "ratio", "goal"], rows),
                  command=f"python benchmarks/bench_write.py{' --quick' if args.quick else ''}", notes=notes)


if __name__ == "__main__":
    main()
