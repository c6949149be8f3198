"""The ``streamclip`` command: a thin layer over the library.

Errors that streamclip raises on purpose, usage errors, and OS errors on a path the user typed are
printed as one ``error:`` line with exit code 2; anything else is a bug and keeps its traceback.
Options are checked while parsing where they can be (sizes, counts, ``--plot``, ``--weights``), so a
typo fails before any work. Text from the corpus is escaped before it reaches the terminal.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from streamclip._version import __version__
from streamclip.errors import ConfigError, StreamclipError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

# Parameters that hold paths the user typed (name -> how the usage line spells it): an OS error on one of
# them, or on a file inside it, is the user's to fix.
_PATH_PARAMS = {"inputs": "INPUTS", "out": "OUT", "work_dir": "--work-dir", "out_local": "--out-local", "dataset": "DATASET", "plot_path": "--plot"}
_USER_PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def parse_size(text: str) -> int:
    """``"32mb"`` -> 33554432: binary units, as MosaicML Streaming reads them."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a size like 512kb, 32mb or 1gb")
    unit = (match.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(match.group(1)) * _UNITS[unit])


class Size(click.ParamType):
    """A byte size option (``32mb``), checked while parsing so the message names the option."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ConfigError as e:
            self.fail(str(e), param, ctx)


class OutputFile(click.ParamType):
    """A file the command writes at the end: checked first, so a typo costs no work."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        folder = os.path.dirname(os.path.abspath(value))
        if os.path.isdir(value):
            self.fail(f"{value} is a directory; give a file name such as {os.path.join(value, 'plot.png')}", param, ctx)
        if not os.path.isdir(folder):
            self.fail(f"folder {folder} does not exist; create it or write the file elsewhere", param, ctx)
        if not os.access(folder, os.W_OK | os.X_OK):
            self.fail(f"folder {folder} is not writable; choose a folder you may write to", param, ctx)
        return value


class WeightsFile(click.ParamType):
    """A JSON list of positive numbers, one per cluster in cluster-id order: read and checked while parsing."""

    name = "file"
    example = "e.g. [3, 1, 1] for a dataset of 3 clusters"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            with open(value, "rb") as f:
                raw = f.read()
        except OSError as e:
            self.fail(f"cannot read {value} ({e.strerror or e}); give a JSON file with one weight per cluster, {self.example}", param, ctx)
        try:
            weights = json.loads(raw)
        except (ValueError, RecursionError) as e:
            reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)[:80]
            self.fail(f"{value} is not valid JSON ({reason}); write a list with one weight per cluster, {self.example}", param, ctx)
        if isinstance(weights, dict) and "format" in weights:  # a weights.json from streamclip climb
            from streamclip.plan import Weighted

            try:
                return Weighted.load(value)  # type: ignore[return-value]
            except ConfigError as e:
                self.fail(str(e), param, ctx)
        if not isinstance(weights, list) or not weights:
            self.fail(f"{value} holds a {type(weights).__name__}, not a non-empty list; write one weight per cluster, {self.example}", param, ctx)
        values = [_positive(w) for w in weights]
        if None in values:
            i = values.index(None)
            shown = f"a {type(weights[i]).__name__}" if isinstance(weights[i], (list, dict)) else json.dumps(weights[i])[:40]
            self.fail(f"{value}: weight {i} is {shown}; every weight must be a finite number > 0, {self.example}", param, ctx)
        return tuple(values)  # type: ignore[arg-type]


def _positive(w: Any) -> float | None:
    """``w`` as a finite float > 0, or None (a string, a bool, an int too large for a float, inf, nan, <= 0)."""
    if isinstance(w, bool) or not isinstance(w, (int, float)):
        return None
    try:
        f = float(w)
    except OverflowError:
        return None
    return f if math.isfinite(f) and f > 0 else None


def _fail(message: str) -> None:
    from streamclip.summary import printable

    # Messages may quote corpus text (a rejected line, a field name): escaped, but a deliberate line break stays one.
    click.echo("error: " + "\n".join(printable(line) for line in message.split("\n")), err=True)
    sys.exit(2)


def _user_path(error: OSError, given: dict[str, Any]) -> str | None:
    """The option whose path (or a file inside it) ``error`` is about, or None if it is about no path the user gave.

    The closest path wins: ``--work-dir data/x/w`` failing under INPUTS ``data/x`` is the work dir's error.
    """
    failed = [os.path.abspath(f) for f in (error.filename, error.filename2) if isinstance(f, str)]
    best: tuple[int, str] | None = None
    for name, label in _PATH_PARAMS.items():
        values = given.get(name)
        for value in values if isinstance(values, tuple) else (values,):
            if not isinstance(value, str) or "://" in value:
                continue
            root = os.path.abspath(value)
            if any(f == root or f.startswith(root.rstrip(os.sep) + os.sep) for f in failed) and (best is None or len(root) > best[0]):
                best = (len(root), f"{label} {value}")
    return None if best is None else best[1]


def _friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Deliberate errors, and OS errors on paths the user typed, become one line and exit code 2; bugs keep their traceback."""

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StreamclipError as e:
            _fail(str(e))
        except _USER_PATH_ERRORS as e:
            where = _user_path(e, kwargs)
            if where is None:
                raise
            _fail(f"{where}: {e.strerror or e} ({e.filename}); check the path")

    return run


class _Commands(click.Group):
    """Usage errors (a bad option value, an unknown option) print one ``error:`` line too, like every other failure."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            command = e.ctx.command_path if e.ctx else "streamclip"
            _fail(f"{e.format_message()} (see `{command} -h`)")
        except click.ClickException as e:
            _fail(e.format_message())
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="streamclip")
def main() -> None:
    """Cluster-grouped streaming datasets whose loader knows what to sample."""


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.argument("out")
@click.option("--clusters", "-k", type=click.IntRange(min=1), default=64, help="Number of k-means clusters (empty ones are dropped).")
@click.option("--seed", type=int, default=0, help="Seed for k-means (0..2147483647); same inputs + seed give byte-identical output.")
@click.option("--text-field", default="text", help="JSON/Parquet field holding the document text.")
@click.option("--keep", default="", help="Comma-separated fields kept as extra MDS columns (JSON; not text, cluster or the --text-field/--cluster-field names). Parquet binary values are stored as base64, dates/times as ISO 8601, decimals as strings; a value with no JSON form rejects its document as bad_field.")
@click.option("--cluster-field", default=None, help="Take each document's integer cluster id (0 to 2**63-1) from this field; skips embedding and k-means.")
@click.option("--embedder", type=click.Choice(["minilm", "minilm-onnx", "minilm-onnx-int8", "static", "hashing"]), default="minilm", help=(
    "\b\nminilm: all-MiniLM-L6-v2 on torch, offline: the best clusters, the slowest (~20-30 docs/s, shared 2-core CPU)\n"
    "minilm-onnx: the same model on ONNX Runtime: the same vectors, no faster on CPU than torch\n"
    "minilm-onnx-int8: int8 ONNX: ~1.8x minilm-bf16's docs/s, 0.97-1.0x its cluster AMI\n"
    "static: model2vec distilled from MiniLM (once, cached): ~90x the docs/s, 0.7-0.8x the AMI\n"
    "hashing: lexical feature hashing, no model: ~1000x the docs/s, 0.65x the AMI"))
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, help="Truncate documents to this many tokens before embedding.")
@click.option("--bf16/--fp32", default=False, help="Embed under bfloat16 autocast (about 2x faster on CPUs with AMX/AVX512-BF16).")
@click.option("--iterations", type=click.IntRange(min=1), default=20, help="k-means iterations.")
@click.option("--max-doc-bytes", type=Size(), default="16mb", help="Reject documents larger than this (UTF-8 bytes); a JSONL line longer than 6x this + 1 MiB is rejected as too_large without being held in memory.")
@click.option("--shard-size", type=Size(), default="32mb", help="Uncompressed size limit of one shard.")
@click.option("--compression", default="zstd:3", help="Shard compression: zstd or zstd:LEVEL (LEVEL 1..22).")
@click.option("--memory-budget", type=Size(), default="256mb", help="Documents held in memory while grouping by cluster; beyond it they go to per-cluster files.")
@click.option("--strict", is_flag=True, help="Exit with code 2 and write nothing if any document is rejected.")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at OUT, local or s3:// (a stock MDS dataset counts), only once the new one is complete.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its work directory (no re-embedding); under an s3:// OUT, shards a failed upload left are overwritten.")
@click.option("--work-dir", default=None, help="Work directory for resumable staging: new, empty, or one streamclip made (it carries .streamclip-work), apart from OUT and the inputs; locked while a run uses it [default: OUT.streamclip-work; for an s3:// OUT, in the system temp directory].")
@click.option("--out-local", default=None, help="For an s3:// OUT: keep the local copy of the dataset here [default: a temporary staging directory, removed after the upload].")
@click.option("--keep-work", is_flag=True, help="Keep the work directory after success.")
@click.option("--progress/--no-progress", default=True, help="Show tqdm progress bars.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", help="local: this process; ray: Ray Data across a cluster (pip install 'streamclip[ray]'), the same documents in the same clusters.")
@click.option("--ray-address", default=None, help="--engine ray: the Ray cluster to join (e.g. auto, or HEAD:6379) [default: start a local Ray on 127.0.0.1].")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None, help="--engine ray: embedding actors (one model each) [default: 2].")
@click.option("--num-gpus", type=click.FloatRange(min=0), default=None, help="--engine ray: GPUs per embedding actor (e.g. 1, or 0.5 to share one) [default: 0].")
@_friendly
def convert(inputs: tuple[str, ...], out: str, clusters: int, seed: int, text_field: str, keep: str, cluster_field: str | None,
            embedder: str, max_tokens: int, bf16: bool, iterations: int, max_doc_bytes: int, shard_size: int,
            compression: str, memory_budget: int, strict: bool, overwrite: bool, resume: bool, work_dir: str | None, out_local: str | None, keep_work: bool, progress: bool,
            engine: str, ray_address: str | None, ray_workers: int | None, num_gpus: float | None) -> None:
    """Convert corpus files INPUTS (.jsonl, .jsonl.gz, .jsonl.zst, .parquet, folders of .txt/.md, globs; local or s3://) into a dataset at OUT (a directory or s3://bucket/prefix)."""
    from streamclip.writers import ConvertConfig, FieldRules
    from streamclip.writers import convert as run_convert

    rules = FieldRules(
        text_field=text_field, keep=tuple(f for f in keep.split(",") if f), cluster_field=cluster_field,
        max_doc_bytes=max_doc_bytes,
    )
    config = ConvertConfig(
        clusters=clusters, seed=seed, embedder=embedder, max_tokens=max_tokens, bf16=bf16, iterations=iterations,
        rules=rules, compression=compression, shard_size=shard_size, memory_budget=memory_budget, strict=strict, overwrite=overwrite,
        resume=resume, work_dir=work_dir, out_local=out_local, keep_work=keep_work, progress=progress,
        engine=engine, ray_address=ray_address, ray_workers=ray_workers, num_gpus=num_gpus or 0.0,
    )
    report = run_convert(list(inputs), out, config)
    click.echo(f"\nwrote {report.out}: {report.written} documents in {report.clusters} clusters, {report.shards} shards")
    blank = f" ({report.blank_lines} blank lines passed over)" if report.blank_lines else ""
    click.echo(f"read {report.read} = written {report.written} + rejected {report.rejected}{blank}")
    for reason, count in report.rejected_by_reason.items():
        click.echo(f"  rejected {reason:<16} {count:>8}   (details: {report.out}/rejected.jsonl)")
    if report.resumed_embeddings:
        click.echo(f"resumed: {report.resumed_embeddings} embeddings reused from the work directory")
    click.echo("time: " + ", ".join(f"{stage} {secs:.1f}s" for stage, secs in report.seconds.items()))


@main.command()
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--limit", type=click.IntRange(min=0), default=20, help="Clusters shown in the table (0: all).")
@click.option("--plot", "plot_path", type=OutputFile(), default=None, help="Write a PNG of cluster sizes (sorted, log scale).")
@_friendly
def inspect(dataset: str, as_json: bool, limit: int, plot_path: str | None) -> None:
    """Show the clusters of DATASET (a directory or s3:// prefix): sizes, top terms, examples, long-tail figures."""
    from streamclip.manifest import open_manifest
    from streamclip.summary import describe, format_table, plot_sizes, printable

    manifest = open_manifest(dataset)
    report = describe(manifest)
    if as_json:
        text = json.dumps(report, indent=1, ensure_ascii=False)  # every raw newline in it is layout: strings escape theirs
        click.echo("\n".join(printable(line) for line in text.split("\n")))
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
        raise ConfigError(f"--strategy/--compare: unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    accepted = pyinspect.signature(STRATEGIES[name]).parameters
    return strategy_from_spec(name, **{k: v for k, v in params.items() if k in accepted and v is not None})


@main.command()
@click.argument("dataset")
@click.option("--strategy", default="clusterclip", help="random, uniform, clusterclip, temperature, weighted, general-to-specific, specific-to-general.")
@click.option("--compare", default=None, help="Comma-separated strategies to compare side by side (overrides --strategy).")
@click.option("--clip", type=float, default=None, help="Most times any document may be seen over the run (clusterclip default 2).")
@click.option("--t", "temperature", type=float, default=None, help="Temperature: shares proportional to size**t.")
@click.option("--switch", type=float, default=None, help="Fraction of training where general-to-specific / specific-to-general switch.")
@click.option("--weights", "weights", type=WeightsFile(), default=None, help="For 'weighted': a weights.json from streamclip climb, or a JSON list of one weight per cluster, in cluster-id order.")
@click.option("--total-samples", type=click.IntRange(min=1), default=None, help="Training budget in samples [default: epochs x epoch size].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Budget in epochs of --epoch-size samples [default: 1].")
@click.option("--epoch-size", type=str, default=None, help="Samples per epoch (segment): an integer or stock streaming's abbreviations such as 100k or 1.5m [default: documents in the dataset].")
@click.option("--limit", type=click.IntRange(min=0), default=15, help="Clusters shown per strategy (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-cluster plan as JSON.")
@click.option("--plot", "plot_path", type=OutputFile(), default=None, help="Write a PNG: cluster shares over training and repeats per document.")
@_friendly
def plan(dataset: str, strategy: str, compare: str | None, clip: float | None, temperature: float | None, switch: float | None,
         weights: tuple[float, ...] | None, total_samples: int | None, epochs: int | None, epoch_size: int | None, limit: int,
         as_json: bool, plot_path: str | None) -> None:
    """Simulate a whole training run on DATASET's clusters without reading a shard: draws, repeats, knock-outs."""
    from streamclip.manifest import open_manifest
    from streamclip.plan import RunSchedule, plot_plan, summarize
    from streamclip.planning import check_weights_fit, plan_report, resolve_budget

    manifest = open_manifest(dataset)
    if total_samples is not None and epoch_size is None:
        epoch_size = total_samples  # a simulation need not cut the run into epochs
    names = [n.strip() for n in (compare or strategy).split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--compare {compare!r} names no strategy; give a comma-separated list such as random,clusterclip")
    made_for = None
    if weights is not None and not isinstance(weights, tuple):  # a weights.json, loaded as a Weighted
        made_for, weights = weights.made_for, weights.values
    if "weighted" in names and weights is None:
        raise ConfigError("strategy 'weighted' needs --weights FILE: a JSON list with one weight per cluster, in cluster-id order")
    if weights is not None and len(weights) != manifest.num_clusters:
        raise ConfigError(f"--weights holds {len(weights)} weights but {dataset} has {manifest.num_clusters} clusters; give one weight per cluster")
    params = {"clip": clip, "t": temperature, "switch": switch, "weights": weights, "made_for": made_for}
    summaries = {}
    total, size = resolve_budget(manifest.num_documents, total_samples=total_samples, epochs=epochs, epoch_size=epoch_size)
    for name in names:  # the plan engine's argument checks are ConfigErrors, printed by _friendly
        chosen = _strategy(name, params)
        check_weights_fit(chosen, dataset, manifest)
        summaries[name] = summarize(manifest.cluster_sizes, RunSchedule(manifest.cluster_sizes, chosen, total))
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


def _target(value: str, eval_set: str | None) -> dict[str, Any]:
    """``--target``: comma-separated cluster ids (scored on --eval) or a file of target documents (field text)."""
    if os.path.isfile(value):  # read like a convert input: .jsonl(.gz/.zst), parquet or text, bad lines named
        from streamclip.writers.sources import BlankLines, FieldRules, Rejection, read_source

        texts = []
        for item in read_source(value, 0, FieldRules()):
            if isinstance(item, Rejection):
                where = f"{value}:{item.line}" if item.line > 0 else value
                raise ConfigError(f"--target {where}: {item.reason}{f' (field {item.field})' if item.field else ''}: {item.detail}")
            if not isinstance(item, BlankLines):
                texts.append(item.text)
        if not texts:
            raise ConfigError(f"--target {value}: holds no target documents")
        return {"target_texts": texts}
    try:
        clusters = [int(c) for c in value.split(",") if c.strip()]
    except ValueError:
        raise ConfigError(f"--target {value!r} is neither a JSONL file nor comma-separated cluster ids such as 3,7") from None
    if not clusters:
        raise ConfigError("--target names no cluster; give cluster ids such as 3,7 or a JSONL file of target documents")
    if eval_set is None:
        raise ConfigError("--target with cluster ids scores them on a held-out set: give --eval (the eval output of streamclip split)")
    return {"target_clusters": clusters}


def _place_target(dataset: str, n_clusters: int, texts: list[str] | None) -> Any:
    """Per-cluster counts of the target documents (None for a cluster-id target or a dataset without centroids)."""
    if texts is None:
        return None
    import numpy as np

    from streamclip.manifest import open_manifest
    from streamclip.writers.targets import assign_texts

    if not open_manifest(dataset).has_centroids:
        click.echo("target: not placed in clusters (the dataset was clustered from an input field, so it has no centroids)")
        return None
    counts = np.bincount(assign_texts(dataset, texts), minlength=n_clusters)
    top = np.argsort(-counts, kind="stable")[:5]
    shares = ", ".join(f"{int(c)} ({counts[c] / counts.sum():.0%})" for c in top if counts[c])
    click.echo(f"target: {int(counts.sum())} documents fall in {int((counts > 0).sum())} of {n_clusters} clusters; most in {shares}")
    return counts


@main.command()
@click.argument("dataset")
@click.option("--target", required=True, help="What the mixture should be good at: cluster ids (e.g. 3,7; scored on --eval) or a JSONL file of target documents (field text, scored directly).")
@click.option("--eval", "eval_set", default=None, help="The held-out set of DATASET (streamclip split --eval) for a cluster target.")
@click.option("--iterations", type=click.IntRange(min=1), default=3, help="Search rounds.")
@click.option("--runs", default="64,32,16", help="Proxy runs per round, comma-separated, one per iteration (the CLIMB recipe's 64,32,16).")
@click.option("--pool", type=click.IntRange(min=1), default=100_000, help="Candidates the predictor ranks in each later round.")
@click.option("--out", "out", type=OutputFile(), required=True, help="Where weights.json goes (feed it to plan --weights or Weighted.load).")
@click.option("--state", default=None, help="JSONL of finished proxy runs: a restarted search skips them [default: OUT.state.jsonl].")
@click.option("--merge-to", type=click.IntRange(min=1), default=None, help="Search over this many super-clusters (Ward linkage on the centroids).")
@click.option("--prior", "prior_name", type=click.Choice(["size", "uniform", "target"]), default="size",
              help="Mixture the first round samples around: cluster sizes (the recipe's), uniform, or where the --target documents fall (+0.5 per cluster).")
@click.option("--plot", "plot_path", type=OutputFile(), default=None, help="Write a PNG: measured vs predicted scores, found vs size-proportional weights.")
@click.option("--command", "command", default=None, help="Proxy: a shell command that gets a weights-file path ({weights}, else last argument) and prints a score; lower is better unless --maximize.")
@click.option("--maximize", is_flag=True, help="Higher scores are better (e.g. a --command that prints accuracy).")
@click.option("--tokens", type=click.IntRange(min=1), default=2_000_000, help="Built-in proxy: training bytes per run.")
@click.option("--model", "model_json", default=None, help="Built-in proxy: ProxyConfig fields as JSON, e.g. '{\"layers\": 2, \"d_model\": 128}'.")
@click.option("--clip", type=float, default=None, help="Built-in proxy: the clip of each run's Weighted plan.")
@click.option("--seed", type=int, default=0, help="Seed of the search and of every proxy run.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Built-in proxy: torch threads.")
@click.option("--device", default=None, help="Built-in proxy: torch device [default: cuda when present, else cpu].")
@click.option("--work-dir", default=None, help="Proxy checkpoints and candidate files, so a killed run resumes [default: OUT.runs].")
@_friendly
def climb(dataset: str, target: str, eval_set: str | None, iterations: int, runs: str, pool: int, out: str, state: str | None,
          merge_to: int | None, prior_name: str, plot_path: str | None, command: str | None, maximize: bool, tokens: int, model_json: str | None,
          clip: float | None, seed: int, threads: int | None, device: str | None, work_dir: str | None) -> None:
    """Search DATASET's cluster weights (CLIMB): proxy runs, a predictor, and rounds that train only the predicted best."""
    from streamclip.manifest import clustering_fingerprint, load_centroids, open_manifest
    from streamclip.mixture import CommandObjective, search

    manifest = open_manifest(dataset)
    try:
        counts = tuple(int(r) for r in runs.split(","))
    except ValueError:
        raise ConfigError(f"--runs {runs!r}: give one integer per iteration, e.g. 64,32,16") from None
    work = work_dir or f"{out}.runs"
    identity = {"dataset": manifest.fingerprint(), "clustering": clustering_fingerprint(dataset, manifest)}
    aim = _target(target, eval_set) if command is None or os.path.isfile(target) else {}  # a command proxy reads the target itself
    if command is not None:
        evaluate = CommandObjective(command, work, **identity)
    else:
        if maximize:
            raise ConfigError("--maximize is for a --command that prints a higher-is-better score; the built-in proxy scores bits per byte (lower is better)")
        from streamclip.readers import ProxyConfig, ProxyObjective

        try:
            fields = json.loads(model_json) if model_json else {}
        except ValueError as e:
            raise ConfigError(f"--model is not JSON ({str(e)[:80]}); give ProxyConfig fields, e.g. '{{\"layers\": 2}}'") from None
        if not isinstance(fields, dict):
            raise ConfigError("--model must be a JSON object of ProxyConfig fields")
        try:
            config = ProxyConfig(**fields)
        except TypeError as e:
            raise ConfigError(f"--model: {e}") from None
        evaluate = ProxyObjective(dataset, tokens=tokens, eval=eval_set, seed=seed, clip=clip, model=config, work_dir=work,
                                  device=device, threads=threads, **aim)
    placed = _place_target(dataset, manifest.num_clusters, aim.get("target_texts"))
    prior = {"size": manifest.cluster_sizes.astype(float), "uniform": None, "target": None if placed is None else placed + 0.5}[prior_name]
    if prior_name == "target" and placed is None:
        raise ConfigError("--prior target needs --target to be a file of documents (they are placed in the clusters); cluster ids name no shares")
    centroids = load_centroids(dataset, manifest) if merge_to is not None else None
    result = search(evaluate, manifest.num_clusters, iterations=iterations, runs=counts, pool=pool, prior=prior,
                    seed=seed, maximize=maximize, state=state or f"{out}.state.jsonl", merge=merge_to, centroids=centroids,
                    progress=True, **identity)
    if placed is not None:
        result.target = {"documents": int(placed.sum()), "per_cluster": [int(c) for c in placed]}
    result.save(out)
    quality = ", ".join(f"round {q['round'] + 1}: {q['spearman']:.2f}" if q["spearman"] is not None else f"round {q['round'] + 1}: n/a"
                        for q in result.predictor_quality)
    click.echo(f"best of {len(result.history)} proxy runs: score {result.score:.4f}; predictor Spearman on held-out runs {quality}")
    click.echo(f"wrote {out}: {manifest.num_clusters} cluster weights for dataset {identity['dataset']}")
    if plot_path:
        from streamclip.mixture.plot import plot_search

        plot_search(result, manifest.cluster_sizes, plot_path)
        click.echo(f"plot: {plot_path}")


if __name__ == "__main__":
    main(prog_name="streamclip")
