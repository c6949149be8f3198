"""``convert``: corpus files in, a cluster-grouped streamclip dataset out.

Stages: read (validate, stage accepted documents, record rejects) -> embed (to an on-disk
matrix, resumable) -> cluster (faiss spherical k-means, or an input field) -> spill per
cluster -> pack into MDS shards -> manifest. The stages keep their files in a locked work
directory that only ever holds streamclip's own files (``workdir.py``); the dataset is built in
a staging directory beside the output and moved into place only when complete, so a crash never
leaves something that looks like a dataset (``staging.py``). For an ``s3://bucket/prefix`` output the dataset is
staged locally (``out_local``, else a temporary directory) and each shard is uploaded as soon
as it is packed; the manifest files go up last (``writers/upload.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from streamclip._version import __version__
from streamclip.errors import ConfigError, InputError
from streamclip.manifest import (
    CENTROIDS_NAME, INDEX_NAME, MANIFEST_NAME, REJECTS_NAME, ClusterInfo, InputInfo, Manifest, dumps_manifest,
)
from streamclip.storage import is_remote
from streamclip.writers.clustering import fit_and_assign
from streamclip.writers.docstore import RecordWriter, encode_record, read_records
from streamclip.writers.embedders import EMBEDDERS, Embedder, make_embedder
from streamclip.writers.packing import ClusterSpill, pack_clusters, spill_by_cluster
from streamclip.writers.sources import BlankLines, Document, FieldRules, Rejection, expand_inputs, read_source, stat_input
from streamclip.writers.terms import TermStats
from streamclip.writers.staging import Staging, remove_stale
from streamclip.writers.upload import S3Uploader, UploadError
from streamclip.writers.workdir import WorkDir, check_apart, is_within

EMBED_CHUNK = 2048


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertConfig:
    """Everything that decides the output of ``convert`` (plus how loudly it runs)."""

    clusters: int = 64
    seed: int = 0
    embedder: str = "minilm"
    max_tokens: int = 256
    bf16: bool = False
    iterations: int = 20
    rules: FieldRules = field(default_factory=FieldRules)
    compression: str = "zstd:3"
    shard_size: int = 32 << 20
    memory_budget: int = 256 << 20
    strict: bool = False
    overwrite: bool = False
    resume: bool = False
    work_dir: str | None = None
    out_local: str | None = None  # for an s3:// output: keep the local copy here [default: a temporary staging dir]
    keep_work: bool = False
    progress: bool = True
    engine: str = "local"  # "local" (this process) or "ray" (Ray Data: writers/ray_engine.py)
    ray_address: str | None = None  # --engine ray: a running cluster [default: start a local Ray on 127.0.0.1]
    ray_workers: int | None = None  # --engine ray: embedding actors and parallel tasks [default: 2]
    num_gpus: float = 0.0  # --engine ray: GPUs per embedding actor

    def __post_init__(self) -> None:
        """Every option is checked here, before anything is read: a bad one fails in a second, not after embedding."""
        _check_rules(self.rules)
        _at_least("--clusters", self.clusters, 1)
        _at_least("--seed", self.seed, 0, SEED_LIMIT - 1, why="faiss k-means takes a 32-bit seed")
        _at_least("--iterations", self.iterations, 1)
        _at_least("--max-tokens", self.max_tokens, MIN_TOKENS.get(self.embedder, 1))
        _at_least("--shard-size", self.shard_size, 1 << 12, why="bytes; at least 4 KiB")
        _at_least("--memory-budget", self.memory_budget, 1, why="bytes")
        _at_least("--max-doc-bytes", self.rules.max_doc_bytes, 1, why="bytes")
        if self.embedder not in EMBEDDERS:
            raise ConfigError(f"--embedder {self.embedder!r}: unknown; choose one of {', '.join(EMBEDDERS)}")
        if self.bf16 and self.embedder != "minilm":
            raise ConfigError(f"--bf16 is torch autocast for --embedder minilm; --embedder {self.embedder} has no bf16 mode (drop --bf16)")
        if not isinstance(self.compression, str) or not _COMPRESSION.fullmatch(self.compression):
            raise ConfigError(f"--compression {self.compression!r}: use zstd or zstd:LEVEL with LEVEL in 1..22 (zstd's levels), e.g. zstd:3")
        self._check_engine()
        reserved = {"text", "cluster", self.rules.text_field, self.rules.cluster_field} - {None}
        clash = sorted(set(self.rules.keep) & reserved)
        if clash:
            raise ConfigError(
                f"--keep {','.join(clash)}: 'text' and 'cluster' are the dataset's own columns, and --text-field/--cluster-field "
                "are read into them; drop these names from --keep (to keep such a field, rename it in the input)")


    def _check_engine(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine {self.engine!r}: unknown; choose one of {', '.join(ENGINES)}")
        given = [name for name, value in (("--ray-address", self.ray_address), ("--ray-workers", self.ray_workers),
                                          ("--num-gpus", self.num_gpus or None)) if value is not None]
        if self.engine == "local" and given:
            raise ConfigError(f"{', '.join(given)}: only for --engine ray; add --engine ray or drop {'them' if len(given) > 1 else 'it'}")
        if self.ray_workers is not None:
            _at_least("--ray-workers", self.ray_workers, 1)
        if isinstance(self.num_gpus, bool) or not isinstance(self.num_gpus, (int, float)) or not 0 <= self.num_gpus <= 64:
            raise ConfigError(f"--num-gpus {self.num_gpus!r}: must be a number of GPUs per embedding actor in 0..64 (e.g. 1, or 0.5 to share one)")
        if self.engine == "ray" and self.resume:
            raise ConfigError("--resume: the Ray engine does not resume (Ray retries failed tasks itself); run the command again without --resume")


ENGINES = ("local", "ray")
SEED_LIMIT = 1 << 31
MIN_TOKENS = {"minilm": 8, "minilm-onnx": 8, "minilm-onnx-int8": 8}
_COMPRESSION = re.compile(r"zstd(?::(?:[1-9]|1[0-9]|2[0-2]))?")


def _at_least(option: str, value: Any, low: int, high: int | None = None, *, why: str = "") -> None:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value and (high is None or value <= high):
        return
    bound = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
    raise ConfigError(f"{option} {value!r}: must be {bound}{f' ({why})' if why else ''}")


@dataclass(slots=True)
class ConvertReport:
    """What a conversion did: counts that add up (read = written + rejected), per stage timings."""

    out: str
    read: int = 0
    written: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    clusters: int = 0
    shards: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    resumed_embeddings: int = 0
    blank_lines: int = 0  # blank JSONL lines passed over: not documents, so not in read
    worker_peak_mb: float | None = None  # --engine ray: the highest peak RSS of a packing worker


def convert(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], config: ConvertConfig | None = None, *,
            embedder: Embedder | None = None) -> ConvertReport:
    """Convert the corpus files ``inputs`` into a streamclip dataset at directory ``out`` (or ``s3://bucket/prefix``).

    ``embedder`` overrides ``config.embedder`` with any object following the ``Embedder`` protocol.
    Raises ``ConfigError`` for a bad option, ``WorkDirError`` for a work directory that is not
    streamclip's, is in use or overlaps OUT or an input, ``InputError`` for unusable inputs, and
    under ``strict`` when any document is rejected.
    """
    config = config or ConvertConfig()
    inputs, out = [os.fspath(path) for path in inputs], os.fspath(out)  # pathlib paths work as well as strings
    remote = is_remote(out)
    if config.out_local and not remote:
        raise ConfigError(f"--out-local is for an s3:// output; {out!r} is a local directory already")
    uploader = S3Uploader(out, overwrite=config.overwrite, resume=config.resume, progress=config.progress) if remote else None
    out = out.rstrip("/") if remote else os.path.normpath(out)
    local_out = _local_output(out, config) if remote else out
    work_path = config.work_dir or f"{local_out}.streamclip-work"
    staged = os.path.join(os.path.dirname(os.path.abspath(local_out)), f".{os.path.basename(local_out)}.tmp-*")
    given = _local_paths(list(inputs))
    _check_destination(local_out, config.overwrite, given)
    check_apart(work_path, local_out, given)  # before expansion, which skips the work dir
    files = expand_inputs(inputs, exclude=(local_out, work_path, staged))  # OUT and its work never feed the run
    work = WorkDir(work_path, out=local_out, inputs=_local_paths([*inputs, *files]))
    try:
        if config.engine == "ray":
            from streamclip.writers.ray_engine import convert_on_ray

            return convert_on_ray(files, out, local_out, work, uploader, config, embedder)
        return _convert(files, out, local_out, work, uploader, config, embedder)
    finally:
        work.close()


def _convert(files: list[str], out: str, local_out: str, work: WorkDir, uploader: S3Uploader | None,
             config: ConvertConfig, embedder: Embedder | None) -> ConvertReport:
    """The stages, run in a claimed and locked work directory (``convert`` releases it however this ends)."""
    report = ConvertReport(out=out)
    clustered_by_field = config.rules.cluster_field is not None
    if embedder is None and not clustered_by_field:
        embedder = make_embedder(config.embedder, max_tokens=config.max_tokens, bf16=config.bf16)
    key = _work_key(files, config, embedder)
    state = work.start(key, config.resume)

    t = time.perf_counter()
    if not state.get("read_done"):
        state = _read_stage(files, work, key, config)
    report.seconds["read"] = time.perf_counter() - t
    inputs_info = [InputInfo(**i) for i in state["inputs"]]
    report.read = sum(i.documents for i in inputs_info)
    report.blank_lines = sum(i.blank_lines for i in inputs_info)
    report.written = state["documents"]
    report.rejected = state["rejected"]
    report.rejected_by_reason = state["rejected_by_reason"]
    if config.strict and report.rejected:
        work.remove()
        raise InputError(f"--strict: {report.rejected} document(s) rejected, nothing written:\n{_first_rejects(state['rejects_preview'])}")
    if report.written == 0:
        raise InputError(f"no document could be read from {len(files)} input file(s); see {os.path.join(work.path, REJECTS_NAME)}")

    t = time.perf_counter()
    docs_path = os.path.join(work.path, "docs.zst")
    centroids: NDArray[np.float32] | None = None
    if clustered_by_field:
        source_ids = np.fromfile(os.path.join(work.path, CLUSTER_IDS), dtype="<i8")
        unique, labels = np.unique(source_ids, return_inverse=True)
        order = np.argsort(labels, kind="stable")
        examples = order[np.searchsorted(labels[order], np.arange(len(unique)))]  # first document of each cluster
        clustering: dict[str, Any] = {"method": "input-field", "field": config.rules.cluster_field, "source_ids": unique.tolist(), "seed": None}
        embedding = None
    elif embedder is not None:
        vectors, report.resumed_embeddings = _embed_stage(docs_path, work, state, embedder, config.progress)
        report.seconds["embed"] = time.perf_counter() - t
        t = time.perf_counter()
        result = fit_and_assign(
            vectors, k=config.clusters, seed=config.seed, iterations=config.iterations, progress=config.progress,
            labels_path=os.path.join(work.path, "labels.npy"),
        )
        labels, examples, keep = _drop_empty(result.labels, result.central, config.clusters)
        centroids = result.centroids[keep]
        clustering = {**result.record, "empty_dropped": int(config.clusters - len(keep))}
        embedding = embedder.describe()
        del vectors
    report.seconds["cluster"] = time.perf_counter() - t
    num_clusters = int(labels.max()) + 1

    t = time.perf_counter()
    staging = Staging(local_out)
    tmp = staging.dataset
    try:
        shutil.rmtree(os.path.join(work.path, "spill"), ignore_errors=True)
        spill = ClusterSpill(os.path.join(work.path, "spill"), budget_bytes=config.memory_budget)
        example_texts = spill_by_cluster(docs_path, labels, spill, examples=examples, progress=config.progress)
        columns = {"text": "str", "cluster": "int32", **{name: "json" for name in config.rules.keep}}
        terms = TermStats()
        packed = pack_clusters(
            spill, tmp, num_clusters=num_clusters, columns=columns, compression=config.compression,
            size_limit=config.shard_size, total=report.written, terms=terms, progress=config.progress,
            on_shard=None if uploader is None else lambda entry: uploader.submit_shard_files(tmp, entry),
        )
        top = terms.top_terms()
        clusters = tuple(
            ClusterInfo(id=k, documents=p.documents, bytes=p.bytes, shards=p.shards, samples=p.samples,
                        top_terms=tuple(top[k]), example=example_texts.get(k, p.example))
            for k, p in enumerate(packed)
        )
        if centroids is not None:
            np.save(os.path.join(tmp, CENTROIDS_NAME), centroids)
        shutil.copyfile(os.path.join(work.path, REJECTS_NAME), os.path.join(tmp, REJECTS_NAME))
        manifest = _manifest(tmp, clusters, columns, embedding, clustering, inputs_info, report.rejected, centroids is not None)
        with open(os.path.join(tmp, MANIFEST_NAME), "wb") as f:
            f.write(dumps_manifest(manifest))
        if uploader is not None:
            uploader.finish(tmp)
        if uploader is not None and not config.out_local:
            staging.remove()
            remove_stale(local_out)
        else:
            staging.publish()
    except BaseException as e:
        if uploader is not None:
            uploader.abort()
        staging.remove()
        if isinstance(e, UploadError):
            raise UploadError(f"{e}. The work directory {work.path} is kept: run the same command with --resume to retry without re-reading or re-embedding") from e
        raise
    report.seconds["pack"] = time.perf_counter() - t
    report.clusters, report.shards = num_clusters, manifest.num_shards
    if not config.keep_work:
        work.remove()
    return report


def _local_paths(paths: list[str]) -> list[str]:
    """The inputs that exist on this machine (files and the folders given), for the overlap checks."""
    return sorted({p for p in paths if not is_remote(p) and os.path.exists(p)})


def _check_rules(rules: Any) -> None:
    """``FieldRules`` built in Python (the CLI always builds a good one): a str ``keep`` would be kept letter by letter."""
    if not isinstance(rules, FieldRules):
        raise ConfigError(f"rules={rules!r}: give a streamclip.writers.sources.FieldRules (text field, --keep, --cluster-field)")
    if isinstance(rules.keep, str) or not all(isinstance(name, str) and name for name in rules.keep):
        raise ConfigError(f"--keep {rules.keep!r}: give field names as a tuple of non-empty strings, e.g. keep=('source',)")
    if not isinstance(rules.text_field, str) or not rules.text_field:
        raise ConfigError(f"--text-field {rules.text_field!r}: give a field name (a non-empty string)")
    if rules.cluster_field is not None and (not isinstance(rules.cluster_field, str) or not rules.cluster_field):
        raise ConfigError(f"--cluster-field {rules.cluster_field!r}: give a field name (a non-empty string), or none to cluster by embedding")


def _check_destination(out: str, overwrite: bool, inputs: list[str]) -> None:
    if os.path.islink(out):  # the dataset is moved into OUT's place: a link would be replaced, not followed
        raise ConfigError(f"OUT {out}: is a symbolic link (to {os.path.realpath(out)}); name the directory itself, "
                          f"e.g. {os.path.realpath(out)}")
    if os.path.isfile(out):
        raise InputError(f"{out}: exists and is a file; choose a directory path for the dataset")
    if is_within(os.getcwd(), out):
        raise ConfigError(f"OUT {out}: is the current directory or holds it; a dataset is moved into place whole, so name a new directory, e.g. {os.path.join(out, 'dataset')}")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise InputError(f"{out}: exists and is not empty; pass --overwrite to replace it")
    inside = [p for p in inputs if is_within(p, out)]
    if inside and os.path.isdir(out):
        raise ConfigError(f"--overwrite: the input {inside[0]} lies inside OUT {out}, which would be deleted; move the input or choose another OUT")


def _local_output(out: str, config: ConvertConfig) -> str:
    """Where an ``s3://`` output is staged: ``out_local``, else a directory named after the destination beside
    the work directory (the system temp dir by default; a stable name, so ``--resume`` finds the work)."""
    if config.out_local:
        return os.path.normpath(config.out_local)
    base = os.path.dirname(os.path.abspath(config.work_dir)) if config.work_dir else tempfile.gettempdir()
    return os.path.join(base, f"streamclip-{hashlib.sha256(out.encode()).hexdigest()[:12]}")


def _work_key(files: list[str], config: ConvertConfig, embedder: Embedder | None) -> str:
    """Identifies the staged work: inputs (path, size, mtime or S3 ETag) and everything that shapes read and embed."""
    stats = [stat_input(p) for p in files]
    described = embedder.describe() if embedder is not None else None
    blob = json.dumps([stats, asdict(config.rules), described, __version__], sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_stage(files: list[str], work: WorkDir, key: str, config: ConvertConfig) -> dict[str, Any]:
    docs = RecordWriter(os.path.join(work.path, "docs.zst"))
    reasons: Counter[str] = Counter()
    per_input = []
    cluster_ids = _IdWriter(os.path.join(work.path, CLUSTER_IDS)) if config.rules.cluster_field is not None else None
    preview: list[str] = []
    written = 0
    with open(os.path.join(work.path, REJECTS_NAME), "w", encoding="utf-8") as rejects, tqdm(desc="read", unit="doc", disable=not config.progress) as bar:
        for index, path in enumerate(files):
            counts = Counter()
            for item in read_source(path, index, config.rules):
                if isinstance(item, BlankLines):
                    counts["blank_lines"] += item.lines
                    continue
                if isinstance(item, Document):
                    docs.write(encode_record(item.text, item.fields))
                    if cluster_ids is not None:
                        cluster_ids.add(item.cluster)
                    counts["written"] += 1
                else:
                    _write_reject(rejects, path, item)
                    reasons[item.reason] += 1
                    counts["rejected"] += 1
                    if len(preview) < 10:
                        preview.append(describe_reject(path, item))
                bar.update(1)
            per_input.append({"path": path, "documents": counts["written"] + counts["rejected"], "written": counts["written"], "rejected": counts["rejected"],
                              "blank_lines": counts["blank_lines"]})
            written += counts["written"]
    docs.close()
    if cluster_ids is not None:
        cluster_ids.close()
    state = {
        "key": key, "read_done": True, "documents": written, "rejected": sum(reasons.values()),
        "rejected_by_reason": dict(sorted(reasons.items())), "inputs": per_input, "rejects_preview": preview, "embedded": 0,
    }
    work.save_state(state)
    return state


CLUSTER_IDS = "cluster_ids.i64"


class _IdWriter:
    """Each document's cluster id, appended to a raw little-endian int64 file through a fixed buffer:
    8 bytes a document on disk and a bounded buffer in memory, where a Python list held ~36 bytes a document."""

    def __init__(self, path: str, chunk: int = 1 << 16) -> None:
        self._file = open(path, "wb")
        self._buffer = np.empty(chunk, dtype="<i8")
        self._held = 0

    def add(self, cluster: int) -> None:
        self._buffer[self._held] = cluster
        self._held += 1
        if self._held == len(self._buffer):
            self._flush()

    def close(self) -> None:
        self._flush()
        self._file.close()

    def _flush(self) -> None:
        self._file.write(self._buffer[: self._held].tobytes())
        self._held = 0


def _write_reject(rejects: Any, path: str, item: Rejection) -> None:
    rejects.write(reject_line(path, item))


def reject_line(path: str, item: Rejection) -> str:
    """One ``rejected.jsonl`` line (both engines write these words)."""
    row = {"file": path, "line": item.line if item.line >= 0 else None, "reason": item.reason, "field": item.field, "detail": item.detail}
    return json.dumps(row, ensure_ascii=False) + "\n"


def describe_reject(path: str, item: Rejection) -> str:
    """A rejection as the one-line preview ``--strict`` prints."""
    where = f"{path}:{item.line}" if item.line >= 0 else path
    field_part = f" field {item.field!r}" if item.field else ""
    return f"{where}:{field_part} {item.reason} ({item.detail})"


def _first_rejects(preview: list[str]) -> str:
    return "\n".join(f"  {line}" for line in preview)


def _embed_stage(docs_path: str, work: WorkDir, state: dict[str, Any], embedder: Embedder, progress: bool) -> tuple[NDArray[np.float32], int]:
    """Fill ``embeddings.f32`` (N x dim), continuing after the rows a previous run completed."""
    n, dim = state["documents"], embedder.dim
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ConfigError(f"embedder {type(embedder).__name__}.dim is {dim!r}; an Embedder's dim is its vectors' width, a positive int")
    path = os.path.join(work.path, "embeddings.f32")
    done = int(state.get("embedded", 0))
    if done and (not os.path.exists(path) or os.path.getsize(path) != n * dim * 4):
        done = 0  # the saved rows are gone (the file deleted or cut by hand): zeros must not stand in for them
    vectors = np.memmap(path, dtype=np.float32, mode="r+" if done else "w+", shape=(n, dim))
    resumed = done
    if done < n:
        batch: list[str] = []
        row = 0
        with tqdm(total=n, initial=done, desc="embed", unit="doc", disable=not progress) as bar:
            for text, _, _ in read_records(docs_path):
                row += 1
                if row <= done:
                    continue
                batch.append(text)
                if len(batch) == EMBED_CHUNK or row == n:
                    vectors[done : done + len(batch)] = _checked(embedder.encode(batch), len(batch), dim, embedder)
                    vectors.flush()
                    done += len(batch)
                    state["embedded"] = done
                    work.save_state(state)
                    bar.update(len(batch))
                    batch = []
    return np.memmap(path, dtype=np.float32, mode="r", shape=(n, dim)), resumed


def _checked(rows: Any, n: int, dim: int, embedder: Embedder) -> NDArray[np.float32]:
    """A user's embedder must keep its promise (``(n, dim)`` finite rows); the error names it, not numpy's broadcasting."""
    try:
        rows = np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError) as e:  # ragged rows, strings, objects
        raise ConfigError(f"embedder {type(embedder).__name__}.encode returned rows that are not a float array ({e}) for {n} texts; "
                          f"an Embedder must return (len(texts), dim={dim}) finite float32 rows") from None
    if rows.shape != (n, dim) or not np.isfinite(rows).all():
        raise ConfigError(f"embedder {type(embedder).__name__}.encode returned {rows.shape} rows{' with NaN/inf' if rows.shape == (n, dim) else ''} "
                          f"for {n} texts; an Embedder must return (len(texts), dim={dim}) finite float32 rows")
    return rows


def _drop_empty(labels: NDArray[np.int32], central: NDArray[np.int64], k: int) -> tuple[NDArray[np.int32], NDArray[np.int64], NDArray[np.int64]]:
    """Renumber clusters 0..K'-1 without the empty ones (in place, chunk by chunk, so a memmap stays on disk)."""
    counts = np.zeros(k, dtype=np.int64)
    for start in range(0, len(labels), 1 << 22):
        counts += np.bincount(labels[start : start + (1 << 22)], minlength=k)
    keep = np.flatnonzero(counts)
    if len(keep) < k:
        remap = np.full(k, -1, dtype=np.int32)
        remap[keep] = np.arange(len(keep), dtype=np.int32)
        for start in range(0, len(labels), 1 << 22):
            labels[start : start + (1 << 22)] = remap[labels[start : start + (1 << 22)]]
    return labels, central[keep], keep


def _manifest(tmp: str, clusters: tuple[ClusterInfo, ...], columns: dict[str, str], embedding: dict[str, Any] | None,
              clustering: dict[str, Any], inputs: list[InputInfo], rejected: int, has_centroids: bool) -> Manifest:
    with open(os.path.join(tmp, INDEX_NAME), "rb") as f:
        raw = f.read()
    index = json.loads(raw)
    samples = np.array([s["samples"] for s in index["shards"]], dtype=np.int64)
    names = tuple(s["raw_data"]["basename"] for s in index["shards"])
    sizes = np.array([(s["zip_data"] or s["raw_data"])["bytes"] for s in index["shards"]], dtype=np.int64)
    return Manifest(
        clusters=clusters, columns=columns, embedding=embedding, clustering=clustering, inputs=tuple(inputs),
        rejected=rejected, index_sha256=hashlib.sha256(raw).hexdigest(), samples_per_shard=samples,
        shard_basenames=names, shard_bytes=sizes, has_centroids=has_centroids,
    )
