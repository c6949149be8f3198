"""``convert --engine ray``: the same dataset as the local engine, built by Ray Data across a cluster.

Stages (the task code is in ``ray_tasks.py``; the math and the formats are the local engine's):

1. read: one Ray task per input file runs ``read_source``; rejections and counts go to per-file side
   files, documents flow on with a read-order key (file index, position);
2. embed: ``map_batches`` over an actor pool, one embedder per actor (``--num-gpus`` each); the
   documents and their vectors are written to Parquet in the work directory;
3. cluster: the local engine's seeded training rows are picked out of the Parquet, faiss k-means is
   trained on the driver, and every document is assigned in parallel and written partitioned by
   cluster (``cluster=<k>/``), the layout NeMo Curator uses instead of a shuffle (Ray's ``groupby``
   needs each group on one node, and a long-tailed corpus has one giant cluster);
4. pack: one task per cluster, a large cluster in pieces of bounded size, sorted by key and packed
   into MDS shards by the local engine's ``pack_clusters``;
5. the driver renames the shards into one flat sequence in cluster order, writes ``index.json``,
   ``centroids.npy``, ``rejected.jsonl`` and ``streamclip.json`` last, and publishes through the
   local engine's staging swap (or its S3 upload, manifest last).

Ray retries a task whose worker died; every task replaces its own named files, so a retry neither
loses nor duplicates documents.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError, InputError, StreamclipError
from streamclip.manifest import CENTROIDS_NAME, INDEX_NAME, MANIFEST_NAME, REJECTS_NAME, ClusterInfo, InputInfo, dumps_manifest
from streamclip.writers import ray_tasks
from streamclip.writers.clustering import train_centroids, training_rows
from streamclip.writers.conversion import EMBED_CHUNK, ConvertConfig, ConvertReport, _first_rejects, _manifest, describe_reject
from streamclip.writers.embedders import Embedder, make_embedder
from streamclip.writers.sources import Rejection
from streamclip.writers.staging import Staging, remove_stale
from streamclip.writers.terms import TermStats
from streamclip.writers.upload import S3Uploader, UploadError
from streamclip.writers.workdir import WorkDir

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
DEFAULT_WORKERS = 2
# Environment the workers need to read s3:// inputs and write like the driver (copied into Ray's runtime_env).
_PASSED_ENV = ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
               "AWS_REGION", "AWS_PROFILE", "HF_HUB_OFFLINE")


def convert_on_ray(files: list[str], out: str, local_out: str, work: WorkDir, uploader: S3Uploader | None,
                   config: ConvertConfig, embedder: Embedder | None) -> ConvertReport:
    """Run the conversion on Ray in ``work`` (checked and locked by ``convert``, which releases it)."""
    if len(files) >= ray_tasks.MAX_FILES:
        raise InputError(f"{len(files)} input files: the Ray engine keys documents by file index and takes at most {ray_tasks.MAX_FILES - 1}")
    ray = _start_ray(config)
    started = not ray.is_initialized()
    if started:
        _init(ray, config)
    try:
        return _Run(ray, files, out, local_out, work, uploader, config, embedder).run()
    finally:
        if started:
            ray.shutdown()


def _start_ray(config: ConvertConfig) -> Any:
    """Import ray; without ``--ray-address`` a local Ray is started, on loopback only (the variable must be set before import)."""
    if config.ray_address is None:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError:
        raise StreamclipError("--engine ray needs Ray Data: pip install 'streamclip[ray]'") from None
    return ray


def _worker_env() -> dict[str, str]:
    return {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}


def _init(ray: Any, config: ConvertConfig) -> None:
    env = _worker_env()
    if config.ray_address is not None:
        ray.init(address=config.ray_address, runtime_env={"env_vars": env}, log_to_driver=False)
    else:
        ray.init(num_cpus=max(os.cpu_count() or 1, config.ray_workers or DEFAULT_WORKERS), _node_ip_address="127.0.0.1",
                 include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)


class _Run:
    """One conversion's stages; the work directory holds the side files, Parquet stages and packed pieces."""

    def __init__(self, ray: Any, files: list[str], out: str, local_out: str, work: WorkDir, uploader: S3Uploader | None,
                 config: ConvertConfig, embedder: Embedder | None) -> None:
        import ray.data

        self.ray, self.data = ray, ray.data
        self.files, self.out, self.local_out, self.work, self.uploader, self.config = files, out, local_out, work, uploader, config
        self.workers = config.ray_workers or DEFAULT_WORKERS
        self.by_field = config.rules.cluster_field is not None
        self.embedder = embedder
        self.report = ConvertReport(out=out)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = config.progress
        context.verbose_progress = False
        self.sidecars = self._fresh("read")
        self.embedded = os.path.join(work.path, "embedded")
        self.assigned = os.path.join(work.path, "assigned")

    def _fresh(self, name: str) -> str:
        path = os.path.join(self.work.path, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def run(self) -> ConvertReport:
        report, config = self.report, self.config
        t = time.perf_counter()
        docs = self.data.from_items([{"source": i, "path": p} for i, p in enumerate(self.files)], override_num_blocks=len(self.files))
        # the readers get the driver's S3 settings also on a Ray started elsewhere (its runtime_env has none of them)
        worker_env = _worker_env()
        env = {"runtime_env": {"env_vars": worker_env}} if worker_env else {}
        docs = docs.map_batches(ray_tasks.read_files, batch_size=1, fn_kwargs={"rules": config.rules, "sidecar_dir": self.sidecars}, **env)
        if self.by_field:
            shutil.rmtree(self.assigned, ignore_errors=True)
            docs.write_parquet(self.assigned, partition_cols=["cid"])
        else:
            if self.embedder is None:
                make_embedder(config.embedder, max_tokens=config.max_tokens, bf16=config.bf16)  # fail here, not in an actor
            docs = docs.map_batches(
                ray_tasks.EmbedActor, batch_size=EMBED_CHUNK, compute=self.data.ActorPoolStrategy(size=self.workers), num_gpus=config.num_gpus or None,
                fn_constructor_kwargs={"name": config.embedder, "max_tokens": config.max_tokens, "bf16": config.bf16, "embedder": self.embedder},
                **env,  # the same remote arguments as the read, so Ray fuses the two (apart, the readers wait for CPUs the actors hold)
            )
            shutil.rmtree(self.embedded, ignore_errors=True)
            docs.write_parquet(self.embedded)
        inputs, rejects = self._read_report()
        report.seconds["read+embed" if not self.by_field else "read"] = time.perf_counter() - t
        if config.strict and report.rejected:
            raise InputError(f"--strict: {report.rejected} document(s) rejected, nothing written:\n{_first_rejects(rejects)}")
        if report.written == 0:
            raise InputError(f"no document could be read from {len(self.files)} input file(s); see {os.path.join(self.sidecars, '*.jsonl')}")

        t = time.perf_counter()
        centroids = None
        if self.by_field:
            clustering = {"method": "input-field", "field": config.rules.cluster_field, "seed": None}
            embedding = None
            partitions = self._partitions("cid")
            clustering["source_ids"] = [raw for raw, _ in partitions]
            clustering = {k: clustering[k] for k in ("method", "field", "source_ids", "seed")}  # the local engine's key order
        else:
            centroids, record = self._train([i.written for i in inputs])
            shutil.rmtree(self.assigned, ignore_errors=True)
            assigned = self.data.read_parquet(self.embedded).map_batches(ray_tasks.assign_batch, batch_size=EMBED_CHUNK, fn_kwargs={"centroids": centroids})
            assigned.write_parquet(self.assigned, partition_cols=["cluster"])
            partitions = self._partitions("cluster")
            keep = np.array([raw for raw, _ in partitions], dtype=np.int64)
            centroids = centroids[keep]
            clustering = {**record, "empty_dropped": int(config.clusters - len(keep))}
            embedding = (self.embedder or make_embedder(config.embedder, max_tokens=config.max_tokens, bf16=config.bf16)).describe()
        report.seconds["cluster"] = time.perf_counter() - t

        t = time.perf_counter()
        self._publish(partitions, centroids, clustering, embedding, inputs)
        report.seconds["pack"] = time.perf_counter() - t
        if not config.keep_work:
            self.work.remove()
        return report

    def _read_report(self) -> tuple[list[InputInfo], list[str]]:
        """The per-file side files, joined in file order: the report's counts, inputs and ``rejected.jsonl``."""
        inputs, preview = [], []
        reasons: dict[str, int] = {}
        with open(os.path.join(self.work.path, REJECTS_NAME), "w", encoding="utf-8") as joined:
            for i, path in enumerate(self.files):
                stem = os.path.join(self.sidecars, f"{i:08d}")
                with open(f"{stem}.json", encoding="utf-8") as f:
                    counts = json.load(f)
                with open(f"{stem}.jsonl", encoding="utf-8") as f:
                    for line in f:
                        joined.write(line)
                        row = json.loads(line)
                        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
                        if len(preview) < 10:
                            item = Rejection(i, -1 if row["line"] is None else row["line"], row["reason"], row["detail"], row["field"])
                            preview.append(describe_reject(path, item))
                self.text_bytes = getattr(self, "text_bytes", 0) + counts.pop("text_bytes")
                inputs.append(InputInfo(**counts))
        report = self.report
        report.read = sum(i.documents for i in inputs)
        report.blank_lines = sum(i.blank_lines for i in inputs)
        report.written = sum(i.written for i in inputs)
        report.rejected = sum(i.rejected for i in inputs)
        report.rejected_by_reason = dict(sorted(reasons.items()))
        return inputs, preview

    def _train(self, written: list[int]) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """The local engine's training rows, fetched from the embedded Parquet, and k-means on the driver."""
        config = self.config
        n = sum(written)
        rows = training_rows(n, k=config.clusters, seed=config.seed)
        offsets = np.concatenate([[0], np.cumsum(written)[:-1]]).astype(np.int64)
        picked = self.data.read_parquet(self.embedded).map_batches(
            ray_tasks.pick_rows, batch_size=EMBED_CHUNK, fn_kwargs={"offsets": offsets, "rows": rows}).to_pandas()
        order = np.argsort(picked["row"].to_numpy(), kind="stable")
        sample = np.stack(picked["vector"].to_numpy()[order]).astype(np.float32)
        if len(sample) != len(rows):
            raise StreamclipError(f"the Ray engine found {len(sample)} of the {len(rows)} training rows; the embedded stage in {self.embedded} is incomplete")
        return train_centroids(sample, k=config.clusters, seed=config.seed, iterations=config.iterations)

    def _partitions(self, column: str) -> list[tuple[int, list[str]]]:
        """The non-empty partitions ``column=<raw id>/`` in id order with their Parquet files: their rank is the cluster id."""
        found = []
        for entry in os.scandir(self.assigned):
            if entry.is_dir() and entry.name.startswith(f"{column}="):
                found.append((int(entry.name.split("=", 1)[1]), sorted(glob.glob(os.path.join(entry.path, "*.parquet")))))
        return sorted(found)

    def _pieces(self, files: list[str]) -> list[tuple[int, int]]:
        """Key ranges splitting one partition into pieces of about ``--memory-budget`` bytes of documents."""
        import pyarrow.parquet as pq

        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in files)
        per_doc = max(1, self.text_bytes // max(1, self.report.written))
        piece_rows = max(TermStats().docs_per_cluster, self.config.memory_budget // per_doc)  # the first piece holds the term sample
        everything = [(0, (1 << 63) - 1)]
        if rows <= piece_rows:
            return everything
        keys = np.sort(np.concatenate([pq.read_table(p, columns=["key"], partitioning=None)["key"].to_numpy() for p in files]))
        bounds = [0, *keys[piece_rows::piece_rows].tolist(), (1 << 63) - 1]
        return list(zip(bounds[:-1], bounds[1:]))

    def _publish(self, partitions: list[tuple[int, list[str]]], centroids: NDArray[np.float32] | None, clustering: dict[str, Any],
                 embedding: dict[str, Any] | None, inputs: list[InputInfo]) -> None:
        config, uploader = self.config, self.uploader
        staging = Staging(self.local_out)
        tmp = staging.dataset
        try:
            os.makedirs(tmp)
            parts = os.path.join(staging.root, "parts")
            columns = {"text": "str", "cluster": "int32", **{name: "json" for name in config.rules.keep}}
            pack = self.ray.remote(ray_tasks.pack_piece).options(num_cpus=1, max_retries=3)
            kill = os.environ.get(ray_tasks.KILL_ONCE_ENV)
            jobs = []
            for k, (_, files) in enumerate(partitions):
                for j, (low, high) in enumerate(self._pieces(files)):
                    jobs.append((k, j, pack.remote(
                        files=files, low=low, high=high, cluster=k, part_dir=os.path.join(parts, f"c{k:08d}-{j:06d}"), columns=columns,
                        compression=config.compression, size_limit=config.shard_size, by_similarity=not self.by_field, kill_marker=kill)))
            results = self.ray.get([ref for _, _, ref in jobs])
            self.report.worker_peak_mb = max(r["peak_mb"] for r in results)
            clusters, shards = self._gather(tmp, parts, jobs, results, len(partitions))
            with open(os.path.join(tmp, INDEX_NAME), "w") as f:
                json.dump({"version": 2, "shards": shards}, f, sort_keys=True)  # as MDSWriter writes it
            shutil.rmtree(parts)
            if centroids is not None:
                np.save(os.path.join(tmp, CENTROIDS_NAME), centroids)
            shutil.copyfile(os.path.join(self.work.path, REJECTS_NAME), os.path.join(tmp, REJECTS_NAME))
            manifest = _manifest(tmp, clusters, columns, embedding, clustering, inputs, self.report.rejected, centroids is not None)
            with open(os.path.join(tmp, MANIFEST_NAME), "wb") as f:
                f.write(dumps_manifest(manifest))
            if uploader is not None:
                for entry in shards:
                    uploader.submit_shard_files(tmp, entry)
                uploader.finish(tmp)
            if uploader is not None and not config.out_local:
                staging.remove()
                remove_stale(self.local_out)
            else:
                staging.publish()
        except BaseException as e:
            if uploader is not None:
                uploader.abort()
            staging.remove()
            if isinstance(e, UploadError):
                raise UploadError(f"{e}. Run the same command again to retry") from e
            raise
        self.report.clusters, self.report.shards = len(partitions), manifest.num_shards

    def _gather(self, tmp: str, parts: str, jobs: list[tuple[int, int, Any]], results: list[dict[str, Any]],
                num_clusters: int) -> tuple[tuple[ClusterInfo, ...], list[dict[str, Any]]]:
        """Move every piece's shards into ``tmp`` as one sequence in cluster order; each cluster's record."""
        terms = TermStats()
        shards: list[dict[str, Any]] = []
        stats = [{"documents": 0, "bytes": 0, "best": float("-inf"), "example": "", "first": -1, "start": 0} for _ in range(num_clusters)]
        sample = 0
        for (k, j, _), result in zip(jobs, results):
            s = stats[k]
            if j == 0:
                terms.extend(result["terms"])
                s["first"], s["start"], s["example"] = len(shards), sample, result["example"]
            if result["best"] > s["best"]:
                s["best"], s["example"] = result["best"], result["example"]
            s["documents"] += result["documents"]
            s["bytes"] += result["bytes"]
            sample += result["documents"]
            for entry in result["shards"]:
                shards.append(_moved(entry, os.path.join(parts, f"c{k:08d}-{j:06d}"), tmp, len(shards)))
            s["end"] = len(shards)
        top = terms.top_terms()
        clusters = tuple(
            ClusterInfo(id=k, documents=s["documents"], bytes=s["bytes"], shards=(s["first"], s["end"]),
                        samples=(s["start"], s["start"] + s["documents"]), top_terms=tuple(top[k]), example=s["example"])
            for k, s in enumerate(stats)
        )
        return clusters, shards


def _moved(entry: dict[str, Any], src: str, dst: str, number: int) -> dict[str, Any]:
    """Rename one packed shard's file(s) to the dataset's ``shard.<number>.mds[.zstd]``; its index entry with the new names."""
    entry = json.loads(json.dumps(entry))
    for part in ("raw_data", "zip_data"):
        info = entry.get(part)
        if not info:
            continue
        name = info["basename"]
        new = f"shard.{number:05d}.{name.split('.', 2)[2]}"
        if os.path.exists(os.path.join(src, name)):
            os.replace(os.path.join(src, name), os.path.join(dst, new))
        info["basename"] = new
    return entry
