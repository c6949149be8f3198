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

import base64
import datetime
import decimal
import fnmatch
import gzip
import io
import json
import logging
import os
import stat
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import zstandard

from streamclip.errors import InputError
from streamclip.storage import describe_s3_error, s3_client, split_s3
from streamclip.writers.docstore import ZstdReader

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".md")
SUPPORTED = JSONL_SUFFIXES + PARQUET_SUFFIXES + TEXT_SUFFIXES
CLUSTER_ID_MAX = (1 << 63) - 1  # conversion holds the ids as int64 (the MDS column is its own 0..K-1 renumbering)
_BOM = b"\xef\xbb\xbf"
_ARRAY_HINT = "this looks like a JSON array; convert expects one JSON object per line (JSONL)"

logger = logging.getLogger(__name__)


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
class BlankLines:
    """The blank lines of one JSONL file, yielded once after its last line: not documents, but counted."""

    source: int
    lines: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """A document that will not be written, with the reason (one of a fixed set) and detail."""

    source: int
    line: int
    reason: str
    detail: str
    field: str | None = None


def expand_inputs(inputs: list[str], *, exclude: Sequence[str] = ()) -> list[str]:
    """Files named by the arguments: files, folders (recursive, sorted), or globs, in a stable order.

    ``exclude`` names paths whose subtrees are never read: convert's own output, work and temporary
    folders, which may sit inside an input folder; an entry ending in ``*`` stands for every sibling
    whose name starts with what precedes it. Naming a file inside one of them is an ``InputError``.
    Folders and ``**`` do not follow symbolic links to folders, so a link cycle is not walked round; a
    file reached twice (given twice, or through a link) is read once, with a warning.
    """
    skip = _Excluded(exclude)
    files: list[str] = []
    for arg in inputs:
        if _is_s3(arg):
            files.extend(_expand_s3(arg))
            continue
        if (owner := skip.owner(arg)) is not None:
            raise InputError(f"{arg}: lies inside {owner}, where convert writes; put the output elsewhere")
        if any(ch in arg for ch in "*?["):
            matched = sorted(p for p in _glob(arg, skip) if not os.path.isdir(p))
            if not matched:
                raise InputError(f"{arg}: the pattern matches no file")
            files.extend(matched)
        elif os.path.isdir(arg):
            found = sorted(_walk(arg, skip))
            if not found:
                raise InputError(f"{arg}: the folder holds no {', '.join(SUPPORTED)} file")
            files.extend(found)
        elif os.path.lexists(arg):
            files.append(arg)
        else:
            raise InputError(f"{arg}: no such file or folder")
    for path in files:
        if not path.endswith(SUPPORTED):
            raise InputError(f"{path}: unsupported input type; streamclip reads {', '.join(SUPPORTED)}")
    return _read_once(files)


class _Excluded:
    """Whether a local path lies in one of the excluded subtrees (compared as resolved paths)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self._roots = [(os.path.realpath(e[:-1] if e.endswith("*") else e), e.endswith("*"), e) for e in entries]

    def owner(self, path: str) -> str | None:
        real = os.path.realpath(path)
        for root, is_prefix, entry in self._roots:
            if is_prefix:
                parent, stem = os.path.split(root)
                rel = os.path.relpath(real, parent)
                if rel != os.curdir and not rel.startswith(os.pardir) and rel.split(os.sep)[0].startswith(stem):
                    return entry
            elif real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return entry
        return None

    def __call__(self, path: str) -> bool:
        return self.owner(path) is not None


def _walk(folder: str, skip: _Excluded) -> Iterator[str]:
    """Supported files under ``folder``; links to folders are not entered (``os.walk``'s default)."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not skip(os.path.join(root, d))]
        yield from (os.path.join(root, n) for n in names if n.endswith(SUPPORTED) and not skip(os.path.join(root, n)))


def _glob(pattern: str, skip: _Excluded) -> Iterator[str]:
    """``glob.glob(pattern, recursive=True)``, except that ``**`` does not enter links to folders
    (the standard one does, and a link to a parent multiplies every file below it)."""
    parts = pattern.split(os.sep)
    literal = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    base = os.sep.join(parts[:literal]) or ("" if literal == 0 else os.sep)
    yield from _glob_parts(base, parts[literal:], skip)


def _glob_parts(base: str, parts: list[str], skip: _Excluded) -> Iterator[str]:
    if not parts:
        yield base
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        yield from _glob_parts(base, rest, skip)
        for path, name, real_dir in _scan(base):
            if real_dir and not name.startswith(".") and not skip(path):
                yield from _glob_parts(path, parts, skip)
    elif any(ch in head for ch in "*?["):
        for path, name, _ in _scan(base):
            hidden_ok = head.startswith(".") or not name.startswith(".")
            if hidden_ok and fnmatch.fnmatchcase(name, head) and not skip(path):
                yield from _glob_parts(path, rest, skip)
    elif os.path.lexists(os.path.join(base, head)):
        yield from _glob_parts(os.path.join(base, head), rest, skip)


def _scan(folder: str) -> list[tuple[str, str, bool]]:
    """``(path, name, is a folder that is not a link)`` of each entry; ``""`` is the current folder, its paths bare names."""
    try:
        with os.scandir(folder or os.curdir) as entries:
            return [(os.path.join(folder, e.name), e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    except OSError:  # not a folder, or unreadable: matches nothing, as in glob.glob
        return []


def _read_once(files: list[str]) -> list[str]:
    """``files`` without the ones that resolve to a file already listed (warned, not silently doubled)."""
    first: dict[str, str] = {}
    kept = []
    for path in files:
        key = path if _is_s3(path) else os.path.realpath(path)
        if key in first:
            logger.warning("%s: the same file as %s, which is read once", path, first[key])
            continue
        first[key] = path
        kept.append(path)
    return kept


def stat_input(path: str) -> tuple[Any, ...]:
    """What identifies an input's content for ``--resume``: (path, size, mtime) or, on S3, (url, size, ETag).

    A local file that cannot be stat'ed (a dangling or looping link) is identified by its error: reading
    it becomes an ``unreadable`` rejection, not a stopped run.
    """
    if not _is_s3(path):
        try:
            st = os.stat(path)
        except OSError as e:
            return (path, None, e.strerror)
        return (path, st.st_size, st.st_mtime_ns)
    bucket, key = split_s3(path)
    try:
        head = s3_client().head_object(Bucket=bucket, Key=key)
    except _s3_error_types() as e:
        raise InputError(describe_s3_error(e, path)) from None
    return (path, head["ContentLength"], head.get("ETag", ""))


def read_source(path: str, index: int, rules: FieldRules) -> Iterator[Document | Rejection | BlankLines]:
    """Every document of one input file, or a rejection for it, in file order.

    A local path that is not a regular file (a FIFO would block the run, a device never ends) is one
    ``not_a_regular_file`` rejection; one that cannot be opened (a dangling or looping link) is one
    ``unreadable`` rejection. A file that stops decoding midway keeps what was read before and ends
    with an ``unreadable`` rejection; an S3 object whose transfer fails raises ``InputError`` instead
    (the data is fine, the network was not).
    """
    if not _is_s3(path):
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            yield Rejection(index, -1, "unreadable", f"{type(e).__name__}: {e.strerror}")
            return
        if not stat.S_ISREG(mode):
            yield Rejection(index, -1, "not_a_regular_file", f"a {_file_kind(mode)}, not a regular file")
            return
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
    except _READ_ERRORS + (RuntimeError,) as e:
        # A file that cannot be opened or stops decoding midway: what was read stays counted,
        # the rest of the file is one rejection so the loss is visible in the report.
        yield Rejection(index, -1, "unreadable", f"{type(e).__name__}: {e}")


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "folder", stat.S_ISFIFO: "FIFO (named pipe)", stat.S_ISSOCK: "socket", stat.S_ISCHR: "character device", stat.S_ISBLK: "block device"}
    return next((name for test, name in kinds.items() if test(mode)), "special file")


_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError, zlib.error, zstandard.ZstdError)


@contextmanager
def _open_binary(path: str) -> Iterator[io.BufferedIOBase]:
    """The decompressed bytes of ``path`` (local or S3), closing every layer afterwards."""
    with _open_raw(path) as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                yield f  # type: ignore[misc]
        elif path.endswith(".zst"):
            with io.BufferedReader(ZstdReader(raw), buffer_size=1 << 16) as f:
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


def line_limit(rules: FieldRules) -> int:
    """The longest JSONL line read, in bytes: room for the largest text JSON escaping can give
    (``\\u00XX`` is 6 bytes for 1) and 1 MiB of other fields. A longer line is passed over in pieces,
    never held whole, so a decompression bomb or a giant line costs no more memory than this."""
    return 6 * rules.max_doc_bytes + (1 << 20)


def _read_jsonl(path: str, index: int, rules: FieldRules) -> Iterator[Document | Rejection]:
    """One document or rejection per non-blank line, each with its 1-based line number.

    A line that fails in any way (bad JSON, an integer past Python's 4300 digits, nesting past the
    recursion limit, not an object, too long) is rejected alone. If the file stops decoding (a cut
    gzip or zstd stream, an I/O error), the complete lines before are kept and an ``unreadable``
    rejection names the line where reading stopped. Blank lines are not documents: they are neither
    written nor rejected (so ``read = written + rejected`` counts documents; line numbers count
    every line); their number comes last, as one ``BlankLines``. A UTF-8 byte order mark before the
    first line is dropped.
    """
    limit = line_limit(rules)
    number = blank = 0
    with _open_binary(path) as f:
        while True:
            try:
                raw = f.readline(limit + 1)
                if len(raw) > limit and not raw.endswith(b"\n"):
                    length = len(raw) + _skip_line(f)
                    number += 1
                    yield Rejection(index, number, "too_large", f"a line of {length} bytes; lines are read up to {limit} bytes (6 x --max-doc-bytes={rules.max_doc_bytes} + 1 MiB)")
                    continue
            except _READ_ERRORS as e:
                if number == 0:
                    raise  # nothing read: the whole file is unreadable
                yield Rejection(index, number + 1, "unreadable", f"{type(e).__name__}: {e}; reading stopped at line {number + 1}, the lines before it are kept")
                return
            if not raw:
                break
            number += 1
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if not raw.strip():
                blank += 1
                continue
            item = _parse_line(raw, index, number, rules)
            if number == 1 and isinstance(item, Rejection) and item.reason in ("malformed_json", "not_an_object") and raw.lstrip().startswith(b"["):
                item = Rejection(index, number, item.reason, f"{item.detail}; {_ARRAY_HINT}")
            yield item
    if blank:
        yield BlankLines(index, blank)


def _skip_line(f: io.BufferedIOBase) -> int:
    """Read past the rest of a too-long line in bounded pieces; the bytes passed over."""
    skipped = 0
    while piece := f.readline(1 << 20):
        skipped += len(piece)
        if piece.endswith(b"\n"):
            break
    return skipped


def _parse_line(raw: bytes, index: int, number: int, rules: FieldRules) -> Document | Rejection:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejection(index, number, "invalid_utf8", f"byte {e.start}: {e.reason}")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return Rejection(index, number, "malformed_json", f"column {e.colno}: {e.msg}")
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        return Rejection(index, number, "malformed_json", str(e))
    except RecursionError:
        return Rejection(index, number, "malformed_json", "nested too deeply to parse")
    return _check_record(record, index, number, rules)


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
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= CLUSTER_ID_MAX:
            return Rejection(index, line, "bad_cluster", f"field {rules.cluster_field!r} must be an integer from 0 to 2**63-1, got {value!r:.40}", rules.cluster_field)
        cluster = value
    fields = {}
    for key in rules.keep:
        try:
            fields[key] = _kept_value(record.get(key))
        except UnicodeEncodeError:
            return Rejection(index, line, "invalid_utf8", f"field {key!r} holds a lone surrogate", key)
        except (TypeError, ValueError, RecursionError) as e:
            return Rejection(index, line, "bad_field", f"field {key!r} cannot be kept as JSON: {type(e).__name__}: {e}"[:200], key)
    return Document(text=text, fields=fields, source=index, line=line, cluster=cluster)


def _kept_value(value: Any) -> Any:
    """``value`` as the JSON column stores it. JSON values stay as they are; Parquet's other types are
    encoded: binary as base64, dates and times as ISO 8601, decimals as strings. Raises for what
    has no JSON form or no UTF-8 form (a lone surrogate), so the document is rejected, not the run."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except TypeError:
        encoded = json.loads(json.dumps(value, default=_encode))
        json.dumps(encoded, ensure_ascii=False).encode("utf-8")
        return encoded


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"a {type(value).__name__} has no JSON form")
