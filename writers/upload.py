"""Publishing a dataset to ``s3://bucket/prefix``: shards first, the manifest last.

A reader decides that a dataset exists by finding ``streamclip.json`` (and stock streaming by
``index.json``), so the upload order is the commit protocol: every shard, then
``centroids.npy`` and ``rejected.jsonl``, then ``index.json``, and ``streamclip.json`` last.
An interrupted upload therefore leaves no readable manifest.

Any dataset already at the prefix (``streamclip.json``, a stock ``index.json`` or ``shard.*.mds*``
files) is refused unless ``overwrite``; with ``resume``, shard files without an index (what an
interrupted upload leaves) are accepted and overwritten. Replacing a dataset first deletes the old
``streamclip.json``, then its other metadata, so a reader that opens the prefix during the upload
finds no dataset, and one that opens it afterwards finds only the new one; after the upload, every
shard file the new dataset did not write is deleted (listed, so a retried replacement removes them
too). Files under the prefix that are not named like dataset files are left alone. A reader that loaded the old
index *before* the replacement and is still running is not protected: new shards reuse the old
names, so it may fetch new bytes under an old name (with ``validate_hash`` it fails with a hash
error; without, it reads samples of the new dataset). Stop such readers first, or publish each
version under its own prefix.

``S3Uploader`` can be fed shards one by one while they are being written (``convert`` does
this) or given a finished directory (``upload_dataset``). Uploads go through boto3 (the client
of ``streamclip.storage.s3_client``, honouring ``S3_ENDPOINT_URL``) on a thread pool.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from streamclip.errors import InputError, UploadError
from streamclip.manifest import CENTROIDS_NAME, INDEX_NAME, MANIFEST_NAME, REJECTS_NAME
from streamclip.storage import describe_s3_error, s3_client, split_s3

# Uploaded after every shard, in this order; the manifest is the commit mark.
METADATA_ORDER = (CENTROIDS_NAME, REJECTS_NAME, INDEX_NAME, MANIFEST_NAME)
# How MDS names shard files (``shard.00000.mds``, ``shard.00000.mds.zstd``).
SHARD_NAME = re.compile(r"shard\.[^/]*\.mds(?:\.[^/]*)?")


class S3Uploader:
    """Uploads one dataset's files to ``location`` (``s3://bucket/prefix``); shards concurrently, the manifest last.

    Construction checks the destination (credentials, bucket, and that no dataset is there
    unless ``overwrite``) before any work is done, so a conversion fails in seconds, not after
    embedding. ``client`` replaces the boto3 client (tests wrap a real one to inject faults).
    """

    def __init__(self, location: str, *, overwrite: bool = False, resume: bool = False, client: Any = None,
                 workers: int = 8, progress: bool = True) -> None:
        self.location = location.rstrip("/")
        try:
            self.bucket, self.prefix = split_s3(self.location)
        except ValueError:
            raise InputError(f"{location}: a dataset goes to a local directory or to s3://bucket/prefix") from None
        self.client = client if client is not None else s3_client()
        self.overwrite = overwrite
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []
        self._names: list[str] = []
        self._prepared = False
        self._old_files: set[str] = set()
        self._lock = threading.Lock()
        self._progress = progress
        self._bar: tqdm | None = None
        if not overwrite:
            self._refuse_existing(resume)

    def key(self, name: str) -> str:
        return posixpath.join(self.prefix, name) if self.prefix else name

    def url(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def submit(self, path: str, name: str | None = None) -> None:
        """Start uploading local file ``path`` as ``name`` (default: its basename) in the background."""
        name = name or os.path.basename(path)
        if not os.path.exists(path):  # at once; a path that cannot be read fails in the background, at the next submit
            raise UploadError(f"{path}: no such file to upload as {self.url(name)}")
        self._raise_if_failed()
        self._prepare()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="streamclip-upload")
        self._add_total(os.path.getsize(path))
        self._names.append(name)
        self._futures.append(self._pool.submit(self._put, path, name))

    def submit_shard_files(self, directory: str, shard: dict[str, Any]) -> None:
        """Upload the files of one ``index.json`` shard entry found in ``directory`` (the zip, else the raw file)."""
        for part in ("zip_data", "raw_data"):
            info = shard.get(part)
            if info and os.path.isfile(os.path.join(directory, info["basename"])):
                self.submit(os.path.join(directory, info["basename"]))
                return
        raise UploadError(f"{directory}: no local file for shard {shard.get('raw_data', {}).get('basename')!r}")

    def _raise_if_failed(self) -> None:
        """Fail fast: an upload that already failed stops the producer at its next shard."""
        pending = []
        for future in self._futures:
            if not future.done():
                pending.append(future)
            elif future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        self._futures = pending

    def _add_total(self, nbytes: int) -> None:
        with self._lock:
            if self._bar is None:
                self._bar = tqdm(desc="upload", unit="B", unit_scale=True, unit_divisor=1024, total=0, disable=not self._progress)
            self._bar.total += nbytes
            self._bar.refresh()

    def wait(self) -> None:
        """Block until every submitted file is uploaded; raise ``UploadError`` for the first that failed."""
        failed: BaseException | None = None
        for future in self._futures:
            error = future.exception()
            if error is not None and failed is None:
                failed = error
        self._futures.clear()
        if failed is not None:
            raise failed

    def finish(self, directory: str) -> None:
        """Wait for the shards, then upload the metadata of ``directory`` with ``streamclip.json`` last."""
        try:
            self.wait()
            self._prepare()
            for name in METADATA_ORDER:
                path = os.path.join(directory, name)
                if os.path.isfile(path):
                    self._add_total(os.path.getsize(path))
                    self._put(path, name)
            self._delete_stale()
        finally:
            self.close()

    def abort(self) -> None:
        """Stop: cancel queued uploads and wait for running ones; the manifest is never uploaded."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._bar is not None:
            self._bar.close()

    def _put(self, path: str, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with open(path, "rb") as f:
                self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=f)
        except (BotoCoreError, ClientError) as e:
            raise UploadError(f"upload failed, no manifest was written: {describe_s3_error(e, self.url(name))}") from e
        except Exception as e:  # anything else (a dropped connection, a full disk): still no manifest
            raise UploadError(f"upload of {self.url(name)} failed, no manifest was written: {type(e).__name__}: {e}") from e
        with self._lock:
            if self._bar is not None:
                self._bar.update(os.path.getsize(path))

    def _refuse_existing(self, resume: bool) -> None:
        if self._listed(MANIFEST_NAME, exact=True):
            raise InputError(f"{self.location}: a streamclip dataset exists there; pass --overwrite to replace it")
        if self._listed(INDEX_NAME, exact=True):
            raise InputError(f"{self.location}: an MDS dataset exists there ({INDEX_NAME}); pass --overwrite to replace it")
        shards = [name for name in self._listed("shard.", exact=False) if SHARD_NAME.fullmatch(name)]
        if shards and not resume:
            raise InputError(f"{self.location}: shard files are there ({shards[0]}, ...) but no index; pass --overwrite to replace them, "
                             "or --resume if they are what an interrupted run of this conversion uploaded")

    def _listed(self, start: str, *, exact: bool) -> list[str]:
        """Names directly under the prefix that begin with ``start`` (the first page: enough to tell whether any exist)."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(start)
        base = len(key) - len(start)
        try:  # LIST, not HEAD: a HEAD error has no body, so no S3 error code to report
            found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, Delimiter="/", MaxKeys=1 if exact else 1000).get("Contents", [])
        except (BotoCoreError, ClientError) as e:
            raise InputError(f"cannot write the dataset: {describe_s3_error(e, self.location)}") from None
        names = [item["Key"][base:] for item in found]
        return [n for n in names if n == start] if exact else names

    def _prepare(self) -> None:
        """Before the first byte: with ``overwrite``, unpublish the old dataset (manifest, then the other metadata)."""
        if self._prepared:
            return
        self._prepared = True
        if not self.overwrite:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        old = set(self._dataset_files())
        self._old_files = {name for name in old if SHARD_NAME.fullmatch(name)}
        # All old metadata goes now, manifest first: a metadata file the new dataset lacks (centroids.npy of
        # a k-means dataset replaced by a --cluster-field one) would otherwise outlive it.
        for name in [n for n in (MANIFEST_NAME, INDEX_NAME, CENTROIDS_NAME, REJECTS_NAME) if n in old]:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
            except (BotoCoreError, ClientError) as e:
                raise UploadError(f"cannot remove the old dataset's {name}: {describe_s3_error(e, self.url(name))}") from e

    def _dataset_files(self) -> list[str]:
        """Every dataset file (shard-named or metadata) directly under the prefix, all pages.

        Listed rather than read from the old ``index.json``: after an interrupted overwrite that index is
        gone, and the shards it named are still there for the retry to remove. Other files are not ours.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        base = self.key("")
        names: list[str] = []
        request = {"Bucket": self.bucket, "Prefix": base, "Delimiter": "/"}
        try:
            while True:
                page = self.client.list_objects_v2(**request)
                names += [item["Key"][len(base):] for item in page.get("Contents", [])]
                if not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
        except (BotoCoreError, ClientError) as e:
            raise UploadError(f"cannot list the dataset being replaced: {describe_s3_error(e, self.location)}") from e
        return [n for n in names if SHARD_NAME.fullmatch(n) or n in METADATA_ORDER]

    def _delete_stale(self) -> None:
        """After an overwrite, remove shards of the old dataset that the new one does not reuse."""
        stale = self._old_files - set(self._names) - set(METADATA_ORDER)
        for name in sorted(stale):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
            except Exception:  # noqa: BLE001 - leftovers are harmless (no index names them); never fail a complete upload
                pass


def upload_dataset(directory: str, location: str, *, overwrite: bool = False, client: Any = None, workers: int = 8, progress: bool = True) -> None:
    """Upload the finished dataset in ``directory`` to ``location`` (``s3://bucket/prefix``), manifest last."""
    if not os.path.isfile(os.path.join(directory, MANIFEST_NAME)) or not os.path.isfile(os.path.join(directory, INDEX_NAME)):
        raise InputError(f"{directory}: no {MANIFEST_NAME} or {INDEX_NAME}; only a complete streamclip dataset can be uploaded")
    shards = _index_shards(directory)
    uploader = S3Uploader(location, overwrite=overwrite, client=client, workers=workers, progress=progress)
    try:
        for shard in shards:
            uploader.submit_shard_files(directory, shard)
        uploader.finish(directory)
    except BaseException:
        uploader.abort()
        raise


def _index_shards(directory: str) -> list[dict[str, Any]]:
    """The shard entries of ``directory/index.json``, each checked for the fields the upload reads.

    A basename must be a plain file name: one with a ``/`` would upload a file from outside the dataset.
    """
    path = os.path.join(directory, INDEX_NAME)
    with open(path, "rb") as f:
        try:
            shards = json.load(f)["shards"]
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise InputError(f"{path}: not a readable MDS index ({type(e).__name__}: {e})") from None
    if not isinstance(shards, list):
        raise InputError(f"{path}: field 'shards' is a {type(shards).__name__}, not a list of shard entries")
    for i, shard in enumerate(shards):
        if not isinstance(shard, dict):
            raise InputError(f"{path}: shards[{i}] is a {type(shard).__name__}, not a shard entry (an object with raw_data)")
        for part in ("raw_data", "zip_data"):
            info = shard.get(part)
            if info is None and part == "zip_data":
                continue
            name = info.get("basename") if isinstance(info, dict) else None
            if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
                raise InputError(f"{path}: shards[{i}].{part}.basename is {name!r}, not a shard file name; "
                                 "the index is damaged, convert the dataset again")
    return shards
