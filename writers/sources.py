"""Corpus readers: every input format yields either a document or a rejection, never an exception.

One small reader per format on a shared contract (``read_source(path) -> Iterator[Document |
Rejection]``), so the converter can hold the invariant *documents read = written + rejected*
without knowing formats. Field checks live in one place (``_check_record``) so every format
rejects a bad document for the same reason with the same words.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

from streamclip.errors import InputError

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
        if any(ch in arg for ch in "*?["):
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


def read_source(path: str, index: int, rules: FieldRules) -> Iterator[Document | Rejection]:
    """Every document of one input file, or a rejection for it, in file order."""
    if path.endswith(JSONL_SUFFIXES):
        reader: Callable[[str, int, FieldRules], Iterator[Document | Rejection]] = _read_jsonl
    elif path.endswith(PARQUET_SUFFIXES):
        reader = _read_parquet
    else:
        reader = _read_text_file
    try:
        yield from reader(path, index, rules)
    except (OSError, EOFError, ValueError, RuntimeError, zlib.error, _zstd_error()) as e:
        # A file that cannot be opened or stops decoding midway: what was read stays counted,
        # the rest of the file is one rejection so the loss is visible in the report.
        yield Rejection(index, -1, "unreadable", f"{type(e).__name__}: {e}")


def _zstd_error() -> type[Exception]:
    import zstandard

    return zstandard.ZstdError


def _open_binary(path: str) -> io.BufferedIOBase:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.endswith(".zst"):
        import zstandard

        raw = open(path, "rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True, read_across_frames=True))
    return open(path, "rb")


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
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    wanted = [rules.text_field, *rules.keep] + ([rules.cluster_field] if rules.cluster_field else [])
    present = [c for c in dict.fromkeys(wanted) if c in table.schema_arrow.names]
    row = 0
    for batch in table.iter_batches(batch_size=8192, columns=present):
        columns = batch.to_pydict()
        for i in range(batch.num_rows):
            row += 1
            yield _check_record({c: columns[c][i] for c in present}, index, row, rules)


def _read_text_file(path: str, index: int, rules: FieldRules) -> Iterator[Document | Rejection]:
    with open(path, "rb") as f:
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
