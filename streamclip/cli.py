"""The ``streamclip`` command: a thin layer over the library.

Errors that streamclip raises on purpose are printed as one clear message with exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from streamclip._version import __version__
from streamclip.errors import StreamclipError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"32mb"`` -> 33554432: binary units, as MosaicML Streaming reads them."""
    match = _SIZE.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size like 512kb, 32mb or 1gb")
    unit = (match.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(match.group(1)) * _UNITS[unit])


def _friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StreamclipError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="streamclip")
def main() -> None:
    """Cluster-grouped streaming datasets whose loader knows what to sample."""


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.argument("out")
@click.option("--clusters", "-k", type=int, default=64, help="Number of k-means clusters (empty ones are dropped).")
@click.option("--seed", type=int, default=0, help="Seed for k-means; same inputs + seed give byte-identical output.")
@click.option("--text-field", default="text", help="JSON/Parquet field holding the document text.")
@click.option("--keep", default="", help="Comma-separated fields kept as extra MDS columns (json-encoded).")
@click.option("--cluster-field", default=None, help="Take each document's integer cluster id from this field; skips embedding and k-means.")
@click.option("--embedder", type=click.Choice(["minilm", "hashing"]), default="minilm", help="minilm: all-MiniLM-L6-v2 (offline); hashing: fast lexical features.")
@click.option("--max-tokens", type=int, default=256, help="Truncate documents to this many tokens before embedding.")
@click.option("--bf16/--fp32", default=False, help="Embed under bfloat16 autocast (about 2x faster on CPUs with AMX/AVX512-BF16).")
@click.option("--iterations", type=int, default=20, help="k-means iterations.")
@click.option("--max-doc-bytes", default="16mb", help="Reject documents larger than this (UTF-8 bytes).")
@click.option("--shard-size", default="32mb", help="Uncompressed size limit of one shard.")
@click.option("--compression", default="zstd:3", help="Shard compression, zstd or zstd:LEVEL.")
@click.option("--memory-budget", default="256mb", help="Documents held in memory while grouping by cluster; beyond it they go to per-cluster files.")
@click.option("--strict", is_flag=True, help="Exit with code 2 and write nothing if any document is rejected.")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at OUT (only once the new one is complete).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its work directory (no re-embedding).")
@click.option("--work-dir", default=None, help="Staging directory [default: OUT.streamclip-work; for an s3:// OUT, in the system temp directory].")
@click.option("--out-local", default=None, help="For an s3:// OUT: keep the local copy of the dataset here [default: a temporary staging directory, removed after the upload].")
@click.option("--keep-work", is_flag=True, help="Keep the work directory after success.")
@click.option("--progress/--no-progress", default=True, help="Show tqdm progress bars.")
@_friendly
def convert(inputs: tuple[str, ...], out: str, clusters: int, seed: int, text_field: str, keep: str, cluster_field: str | None,
            embedder: str, max_tokens: int, bf16: bool, iterations: int, max_doc_bytes: str, shard_size: str,
            compression: str, memory_budget: str, strict: bool, overwrite: bool, resume: bool, work_dir: str | None, out_local: str | None, keep_work: bool, progress: bool) -> None:
    """Convert corpus files INPUTS (.jsonl, .jsonl.gz, .jsonl.zst, .parquet, folders of .txt/.md, globs; local or s3://) into a dataset at OUT (a directory or s3://bucket/prefix)."""
    from streamclip.writers import ConvertConfig, FieldRules
    from streamclip.writers import convert as run_convert

    rules = FieldRules(
        text_field=text_field, keep=tuple(f for f in keep.split(",") if f), cluster_field=cluster_field,
        max_doc_bytes=parse_size(max_doc_bytes),
    )
    config = ConvertConfig(
        clusters=clusters, seed=seed, embedder=embedder, max_tokens=max_tokens, bf16=bf16, iterations=iterations,
        rules=rules, compression=compression, shard_size=parse_size(shard_size), memory_budget=parse_size(memory_budget), strict=strict, overwrite=overwrite,
        resume=resume, work_dir=work_dir, out_local=out_local, keep_work=keep_work, progress=progress,
    )
    report = run_convert(list(inputs), out, config)
    click.echo(f"\nwrote {report.out}: {report.written} documents in {report.clusters} clusters, {report.shards} shards")
    click.echo(f"read {report.read} = written {report.written} + rejected {report.rejected}")
    for reason, count in report.rejected_by_reason.items():
        click.echo(f"  rejected {reason:<16} {count:>8}   (details: {report.out}/rejected.jsonl)")
    if report.resumed_embeddings:
        click.echo(f"resumed: {report.resumed_embeddings} embeddings reused from the work directory")
    click.echo("time: " + ", ".join(f"{stage} {secs:.1f}s" for stage, secs in report.seconds.items()))


@main.command()
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--limit", type=int, default=20, help="Clusters shown in the table (0: all).")
@click.option("--plot", "plot_path", default=None, help="Write a PNG of cluster sizes (sorted, log scale).")
@_friendly
def inspect(dataset: str, as_json: bool, limit: int, plot_path: str | None) -> None:
    """Show the clusters of DATASET (a directory or s3:// prefix): sizes, top terms, examples, long-tail figures."""
    from streamclip.manifest import open_manifest
    from streamclip.summary import describe, format_table, plot_sizes

    manifest = open_manifest(dataset)
    report = describe(manifest)
    if as_json:
        click.echo(json.dumps(report, indent=1, ensure_ascii=False))
    else:
        click.echo(format_table(report, limit=limit or None))
    if plot_path:
        plot_sizes(manifest, plot_path)
        click.echo(f"plot: {plot_path}", err=as_json)



def _strategy(name: str, params: dict[str, Any]):  # -> Strategy
    """Build ``name`` from the CLI parameters that it takes (``--clip`` means nothing to ``random``)."""
    import inspect as pyinspect

    from streamclip.plan import STRATEGIES, strategy_from_spec

    if name not in STRATEGIES:
        raise click.BadParameter(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    accepted = pyinspect.signature(STRATEGIES[name]).parameters
    return strategy_from_spec(name, **{k: v for k, v in params.items() if k in accepted and v is not None})


@main.command()
@click.argument("dataset")
@click.option("--strategy", default="clusterclip", help="random, uniform, clusterclip, temperature, weighted, general-to-specific, specific-to-general.")
@click.option("--compare", default=None, help="Comma-separated strategies to compare side by side (overrides --strategy).")
@click.option("--clip", type=float, default=None, help="Most times any document may be seen over the run (clusterclip default 2).")
@click.option("--t", "temperature", type=float, default=None, help="Temperature: shares proportional to size**t.")
@click.option("--switch", type=float, default=None, help="Fraction of training where general-to-specific / specific-to-general switch.")
@click.option("--weights", "weights_file", default=None, help="JSON file with one weight per cluster (for 'weighted').")
@click.option("--total-samples", type=int, default=None, help="Training budget in samples [default: epochs x epoch size].")
@click.option("--epochs", type=int, default=None, help="Budget in epochs of --epoch-size samples [default: 1].")
@click.option("--epoch-size", type=int, default=None, help="Samples per epoch (segment) [default: documents in the dataset].")
@click.option("--limit", type=int, default=15, help="Clusters shown per strategy (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-cluster plan as JSON.")
@click.option("--plot", "plot_path", default=None, help="Write a PNG: cluster shares over training and repeats per document.")
@_friendly
def plan(dataset: str, strategy: str, compare: str | None, clip: float | None, temperature: float | None, switch: float | None,
         weights_file: str | None, total_samples: int | None, epochs: int | None, epoch_size: int | None, limit: int,
         as_json: bool, plot_path: str | None) -> None:
    """Simulate a whole training run on DATASET's clusters without reading a shard: draws, repeats, knock-outs."""
    from streamclip.manifest import open_manifest
    from streamclip.plan import RunSchedule, plot_plan, summarize
    from streamclip.planning import plan_report, resolve_budget

    manifest = open_manifest(dataset)
    if total_samples is not None and epoch_size is None:
        epoch_size = total_samples  # a simulation need not cut the run into epochs
    weights = None
    if weights_file:
        with open(weights_file) as f:
            weights = tuple(float(w) for w in json.load(f))
    params = {"clip": clip, "t": temperature, "switch": switch, "weights": weights}
    names = [n.strip() for n in (compare or strategy).split(",") if n.strip()]
    summaries = {}
    try:
        total, size = resolve_budget(manifest.num_documents, total_samples=total_samples, epochs=epochs, epoch_size=epoch_size)
        for name in names:
            summaries[name] = summarize(manifest.cluster_sizes, RunSchedule(manifest.cluster_sizes, _strategy(name, params), total))
    except ValueError as e:
        if isinstance(e, StreamclipError):
            raise
        raise click.UsageError(str(e)) from None
    report = plan_report(manifest, summaries, epoch_size=size)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(format_plan(report, limit=limit or None))
    if plot_path:
        plot_plan(summaries, plot_path)
        click.echo(f"plot: {plot_path}", err=as_json)


def format_plan(report: dict[str, Any], *, limit: int | None) -> str:
    """Side-by-side text: one summary line per strategy, then each strategy's largest clusters."""
    lines = [f"budget {report['total_samples']} samples = {report['epochs']} epoch(s) of {report['epoch_size']}; "
             f"{report['documents']} documents in {report['clusters']} clusters"]
    lines.append(f"{'strategy':<22} {'unique docs':>12} {'max repeats':>11} {'knocked out':>11} {'est. tokens':>12}")
    for name, s in report["strategies"].items():
        lines.append(f"{name:<22} {s['unique_documents_seen']:>7} ({s['unique_fraction']:.0%}) {s['max_repeats']:>11} "
                     f"{s['clusters_knocked_out']:>11} {s['estimated_tokens']:>12}")
    for name, s in report["strategies"].items():
        rows = sorted(s["per_cluster"], key=lambda c: (-c["size"], c["id"]))
        lines.append(f"\n{name}: {s['strategy']}")
        lines.append(f"{'id':>5} {'size':>8} {'draws':>9} {'share':>7} {'repeats':>7} {'knocked out at':>14}")
        shown = rows if not limit or len(rows) <= limit else rows[: limit - limit // 2] + [None] + rows[len(rows) - limit // 2 :]
        for c in shown:  # the largest and the smallest clusters: where the strategies differ
            if c is None:
                lines.append(f"  … {len(rows) - limit} more clusters (use --limit 0 for all)")
                continue
            out = "-" if c["knockout_fraction"] is None else f"{c['knockout_fraction']:.1%}"
            lines.append(f"{c['id']:>5} {c['size']:>8} {c['draws']:>9} {c['share']:>7.2%} {c['max_repeats']:>7} {out:>14}")
    return "\n".join(lines)


@main.command()
@click.argument("dataset")
@click.option("--eval-per-cluster", type=int, required=True, help="Held-out documents drawn from every cluster; a cluster with no more than this stays whole in train.")
@click.option("--train-fraction", type=float, default=1.0, help="Share of each cluster's remaining documents kept for training (the rest is dropped).")
@click.option("--seed", type=int, default=0, help="Seed of the draws; same dataset + options + seed give byte-identical outputs.")
@click.option("--train", "train_out", required=True, help="Where the train set goes (a directory or s3://bucket/prefix).")
@click.option("--eval", "eval_out", required=True, help="Where the held-out set goes (a directory or s3://bucket/prefix).")
@click.option("--overwrite", is_flag=True, help="Replace existing datasets at --train / --eval (each only once the new one is complete).")
@click.option("--progress/--no-progress", default=True, help="Show tqdm progress bars.")
@_friendly
def split(dataset: str, eval_per_cluster: int, train_fraction: float, seed: int, train_out: str, eval_out: str, overwrite: bool, progress: bool) -> None:
    """Split DATASET into a train set and a held-out eval set of N documents per cluster, both in the streamclip format."""
    from streamclip.writers import split as run_split

    report = run_split(dataset, train_out, eval_out, eval_per_cluster=eval_per_cluster, train_fraction=train_fraction,
                       seed=seed, overwrite=overwrite, progress=progress)
    click.echo(f"wrote {report.train}: {report.train_documents} documents in {report.clusters} clusters")
    click.echo(f"wrote {report.eval}: {report.eval_documents} documents in {report.eval_clusters} clusters")
    click.echo(f"in {report.documents} = train {report.train_documents} + eval {report.eval_documents} + dropped {report.dropped}")
    if report.small_clusters:
        ids = ", ".join(map(str, report.small_clusters))
        click.echo(f"{len(report.small_clusters)} cluster(s) with <= {eval_per_cluster} documents kept whole in train, absent from eval: {ids}")


if __name__ == "__main__":
    main()
