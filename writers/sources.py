"""Corpus readers: every input format yields either a document or a rejection, never an exception.

One small reader per format on a shared contract (``read_source(path) -> Iterator[Document |
Rejection]``), so the converter can hold the invariant *documents read = written + rejected*
without knowing formats. Field checks live in one place (``_check_record``) so every format
rejects a bad document for the same reason with the same words.

Inputs may be ``s3://bucket/key`` objects, ``s3://bucket/prefix/`` folders or globs
(``s3://bucket/corpus/*.jsonl.zst``; ``*`` also matches ``/``). They are read through boto3
streaming bodies (``get_object()["Body"]``) with the client of ``streamclip.storage``, so the
endpoint and credentials follow the same ``S3_ENDPOINT_URL`` / ``AWS_*`` rules as the shard
downloads. boto3 is already a dependency of MosaicML Streaming; fsspec/s3fs would add a second
S3 stack (aiobotocore pins botocore tightly) for what a streaming GET does. JSONL and text are
streamed; Parquet needs random access, so a Parquet object is first spooled to a temporary file.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import io
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from streamclip.errors import InputError
from streamclip.storage import describe_s3_error, s3_client, split_s3

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".md")
SUPPORTED = JSONL_SUFFIXES + PARQUET_SUFFIXES + TEXT_SUFFIXES


@dataclass(frozen=True, slots=True)
class FieldRules:
    """What makes a record a document: the text field, kept fields, optional cluster field, size cap."""

    text_field: str = "text"
    keep: tuple[str, ...] = ()
    cluster_field: str | None = None
    max_doc_bytes: int = 1 << 24


@dataclass(frozen=True, slots=True)
class Document:
    """An accepted document: its text, the kept fields, and where it came from."""

    text: str
    fields: dict[str, Any]
    source: int
    line: int
    cluster: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A document that will not be written, with the reason (one of a fixed set) and detail."""

    source: int
    line: int
    reason: str
    detail: str
    field: str | None = None


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files named by the arguments: files, folders (recursive, sorted), or globs, in a stable order."""
    files: list[str] = []
    for arg in inputs:
        if _is_s3(arg):
            files.extend(_expand_s3(arg))
        elif any(ch in arg for ch in "*?["):
            matched = sorted(glob.glob(arg, recursive=True))
            if not matched:
                raise InputError(f"{arg}: the pattern matches no file")
            files.extend(p for p in matched if os.path.isfile(p))
        elif os.path.isdir(arg):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(arg)
                for name in names
                if name.endswith(SUPPORTED)
            )
            if not found:
                raise InputError(f"{arg}: the folder holds no {', '.join(SUPPORTED)} file")
            files.extend(found)
        elif os.path.isfile(arg):
            files.append(arg)
        else:
            raise InputError(f"{arg}: no such file or folder")
    for path in files:
        if not path.endswith(SUPPORTED):
            raise InputError(f"{path}: unsupported input type; streamclip reads {', '.join(SUPPORTED)}")
    return files


def stat_input(path: str) -> tuple[Any, ...]:
    """What identifies an input's content for ``--resume``: (path, size, mtime) or, on S3, (url, size, ETag)."""
    if not _is_s3(path):
        st = os.stat(path)
        return (path, st.st_size, st.st_mtime_ns)
    bucket, key = split_s3(path)
    try:
        head = s3_client().head_object(Bucket=bucket, Key=key)
    except _s3_error_types() as e:
        raise InputError(describe_s3_error(e, path)) from None
    return (path, head["ContentLength"], head.get("ETag", ""))


def read_source(path: str, index: int, rules: FieldRules) -> Iterator[Document | Rejection]:
    """Every document of one input file, or a rejection for it, in file order.

    A file that stops decoding midway becomes one ``unreadable`` rejection; an S3 object whose
    transfer fails raises ``InputError`` instead (the data is fine, the network was not).
    """
    if path.endswith(JSONL_SUFFIXES):
        reader: Callable[[str, int, FieldRules], Iterator[Document | Rejection]] = _read_jsonl
    elif path.endswith(PARQUET_SUFFIXES):
        reader = _read_parquet
    else:
        reader = _read_text_file
    transfer_errors = _s3_error_types() if _is_s3(path) else ()
    try:
        yield from reader(path, index, rules)
    except transfer_errors as e:
        raise InputError(f"{describe_s3_error(e, path)}; nothing was written: run the command again") from None
    except (OSError, EOFError, ValueError, RuntimeError, zlib.error, _zstd_error()) as e:
        # A file that cannot be opened or stops decoding midway: what was read stays counted,
        # the rest of the file is one rejection so the loss is visible in the report.
        yield Rejection(index, -1, "unreadable", f"{type(e).__name__}: {e}")


def _zstd_error() -> type[Exception]:
    import zstandard

    return zstandard.ZstdError


@contextmanager
def _open_binary(path: str) -> Iterator[io.BufferedIOBase]:
    """The decompressed bytes of ``path`` (local or S3), closing every layer afterwards."""
    with _open_raw(path) as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                yield f  # type: ignore[misc]
        elif path.endswith(".zst"):
            import zstandard

            with io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=False, read_across_frames=True)) as f:
                yield f
        else:
            yield raw


def _open_raw(path: str) -> io.BufferedIOBase:
    if not _is_s3(path):
        return open(path, "rb")
    bucket, key = split_s3(path)
    body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
    return io.BufferedReader(_BodyStream(body), buffer_size=1 << 20)


class _BodyStream(io.RawIOBase):
    """A boto3 ``StreamingBody`` as a raw binary stream, so gzip, zstd and line iteration read it incrementally."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _is_s3(path: str) -> bool:
    return path.startswith("s3://")


def _s3_error_types() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _expand_s3(arg: str) -> list[str]:
    """The objects an ``s3://`` argument names: one object, every supported object under a prefix, or a glob."""
    bucket, key = split_s3(arg)
    wild = min((key.index(ch) for ch in "*?[" if ch in key), default=-1)
    prefix = key[:wild] if wild >= 0 else key
    try:
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    except _s3_error_types() as e:
        raise InputError(describe_s3_error(e, arg)) from None
    if wild >= 0:
        matched = sorted(k for k in keys if fnmatch.fnmatchcase(k, key))
        if not matched:
            raise InputError(f"{arg}: the pattern matches no object")
    elif key in keys and not key.endswith("/"):
        matched = [key]
    else:
        folder = key if key.endswith("/") or not key else key + "/"
        matched = sorted(k for k in keys if k.startswith(folder) and k.endswith(SUPPORTED))
        if not matched:
            raise InputError(f"{arg}: no such object, and no {', '.join(SUPPORTED)} object under that prefix")
    return [f"s3://{bucket}/{k}" for k in matched]


def _read_jsonl(path: str, index: int, rules: FieldRules) -> Iterator[Document | Rejection]:
    with _open_binary(path) as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue  # blank lines separate nothing in JSONL: not a document
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Rejection(index, number, "invalid_utf8", f"byte {e.start}: {e.reason}")
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                yield Rejection(index, number, "malformed_json", f"column {e.colno}: {e.msg}")
                continue
            yield _check_record(record, index, number, rules)


def _read_parquet(path: str, index: int, rules: FieldRules) -> Iterator[Document | Rejection]:
    if _is_s3(path):  # Parquet needs random access: spool the object (memory up to 64 MiB, then disk)
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
            with _open_raw(path) as raw:
                while chunk := raw.read(1 << 20):
                    spool.write(chunk)
            spool.seek(0)
            yield from _read_parquet_file(spool, index, rules)
    else:
        yield from _read_parquet_file(path, index, rules)


def _read_parquet_file(source: Any, index: int, rules: FieldRules) -> Iterator[Document | Rejection]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(source)
    wanted = [rules.text_field, *rules.keep] + ([rules.cluster_field] if rules.cluster_field else [])
    present = [c for c in dict.fromkeys(wanted) if c in table.schema_arrow.names]
    row = 0
    for batch in table.iter_batches(batch_size=8192, columns=present):
        columns = batch.to_pydict()
        for i in range(batch.num_rows):
            row += 1
            yield _check_record({c: columns[c][i] for c in present}, index, row, rules)


def _read_text_file(path: str, index: int, rules: FieldRules) -> Iterator[Document | Rejection]:
    with _open_raw(path) as f:
        data = f.read(rules.max_doc_bytes + 1)
    if len(data) > rules.max_doc_bytes:
        yield Rejection(index, 1, "too_large", f"more than --max-doc-bytes={rules.max_doc_bytes}", rules.text_field)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield Rejection(index, 1, "invalid_utf8", f"byte {e.start}: {e.reason}")
        return
    yield _check_record({rules.text_field: text}, index, 1, rules)


def _check_record(record: Any, index: int, line: int, rules: FieldRules) -> Document | Rejection:
    if not isinstance(record, dict):
        return Rejection(index, line, "not_an_object", f"a JSON {type(record).__name__}, not an object")
    name = rules.text_field
    if name not in record or record[name] is None:
        return Rejection(index, line, "missing_text", f"no field {name!r}", name)
    text = record[name]
    if not isinstance(text, str):
        return Rejection(index, line, "text_not_string", f"field {name!r} is a {type(text).__name__}", name)
    if not text.strip():
        return Rejection(index, line, "empty_text", f"field {name!r} is empty or whitespace", name)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return Rejection(index, line, "invalid_utf8", f"field {name!r} holds a lone surrogate", name)
    if size > rules.max_doc_bytes:
        return Rejection(index, line, "too_large", f"{size} bytes > --max-doc-bytes={rules.max_doc_bytes}", name)
    cluster = None
    if rules.cluster_field is not None:
        value = record.get(rules.cluster_field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return Rejection(index, line, "bad_cluster", f"field {rules.cluster_field!r} must be an integer >= 0, got {value!r:.40}", rules.cluster_field)
        cluster = value
    return Document(text=text, fields={k: record.get(k) for k in rules.keep}, source=index, line=line, cluster=cluster)
