"""The streamclip manifest: the sidecar that says which shards hold which cluster.

A dataset is a stock MDS directory (``index.json`` + zstd shards) plus ``streamclip.json``
and, when clustered by k-means, ``centroids.npy``. The manifest never adds keys to
``index.json`` shard entries (stock readers construct their shard readers from those
keys and crash on unknown ones); it pins ``index.json`` by sha256 instead, so a
manifest that does not belong to its index is refused. See docs/FORMAT.md.

Loading validates everything the sampler relies on, because a silently wrong manifest
would make the loader sample the wrong documents for weeks of training.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamclip._version import __version__
from streamclip.errors import ManifestError
from streamclip.storage import is_remote, read_bytes

FORMAT_NAME = "streamclip"
FORMAT_VERSION = 1
MANIFEST_NAME = "streamclip.json"
INDEX_NAME = "index.json"
CENTROIDS_NAME = "centroids.npy"
REJECTS_NAME = "rejected.jsonl"
OFFSET_BYTES = 4  # an MDS shard stores one uint32 end offset per sample
MAX_SHARD_BYTES = (1 << 32) - 1  # uint32 offsets cannot address a larger shard
MAX_COUNT = (1 << 62) - 1  # any count or byte size: sums of them stay inside int64


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """One cluster: its documents occupy shards ``[shards[0], shards[1])`` and global sample ids ``[samples[0], samples[1])``."""

    id: int
    documents: int
    bytes: int
    shards: tuple[int, int]
    samples: tuple[int, int]
    top_terms: tuple[str, ...] = ()
    example: str = ""


@dataclass(frozen=True, slots=True)
class InputInfo:
    """What one input file contributed: every document read is either written or rejected."""

    path: str
    documents: int
    written: int
    rejected: int
    blank_lines: int = 0  # blank JSONL lines: not documents, counted so every line is accounted for


@dataclass(frozen=True, slots=True, eq=False)
class Manifest:
    """A validated streamclip manifest, with the shard sizes of its ``index.json``.

    Equal when every field is (arrays element by element); the generated ``==`` compared the
    arrays by numpy's truth value and raised.
    """

    clusters: tuple[ClusterInfo, ...]
    columns: dict[str, str]
    embedding: dict[str, Any] | None
    clustering: dict[str, Any]
    inputs: tuple[InputInfo, ...]
    rejected: int
    index_sha256: str
    samples_per_shard: NDArray[np.int64]
    shard_basenames: tuple[str, ...]
    shard_bytes: NDArray[np.int64]
    has_centroids: bool
    streamclip_version: str = __version__
    location: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            same = np.array_equal(mine, theirs) if isinstance(mine, np.ndarray) or isinstance(theirs, np.ndarray) else mine == theirs
            if not same:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # holds dicts and arrays

    @property
    def num_clusters(self) -> int:
        return len(self.clusters)

    @property
    def num_documents(self) -> int:
        return int(self.samples_per_shard.sum())

    @property
    def num_shards(self) -> int:
        return len(self.samples_per_shard)

    @property
    def cluster_sizes(self) -> NDArray[np.int64]:
        return np.array([c.documents for c in self.clusters], dtype=np.int64)

    @property
    def cluster_bytes(self) -> NDArray[np.int64]:
        return np.array([c.bytes for c in self.clusters], dtype=np.int64)

    @property
    def shard_ranges(self) -> NDArray[np.int64]:
        """``(K, 2)`` int64: cluster k owns shards ``[r[k,0], r[k,1])``."""
        return np.array([c.shards for c in self.clusters], dtype=np.int64).reshape(-1, 2)

    def fingerprint(self) -> str:
        """Identifies the dataset content: equal fingerprints mean the same shards and clusters."""
        return hashlib.sha256(f"{self.index_sha256}:{self.shard_ranges.tobytes().hex()}".encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``streamclip.json`` (sorted keys, no machine-specific data)."""
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "streamclip_version": self.streamclip_version,
            "index_sha256": self.index_sha256,
            "columns": dict(self.columns),
            "embedding": self.embedding,
            "clustering": self.clustering,
            "centroids": CENTROIDS_NAME if self.has_centroids else None,
            "totals": {
                "documents": self.num_documents,
                "bytes": int(self.cluster_bytes.sum()),
                "shards": self.num_shards,
                "clusters": self.num_clusters,
            },
            "rejected": self.rejected,
            "inputs": [asdict(i) for i in self.inputs],
            "clusters": [
                {**asdict(c), "shards": list(c.shards), "samples": list(c.samples), "top_terms": list(c.top_terms)}
                for c in self.clusters
            ],
            **({"extra": self.extra} if self.extra else {}),
        }


def dumps_manifest(manifest: Manifest) -> bytes:
    """Canonical bytes: same dataset, same bytes (needed for byte-identical reruns)."""
    return (json.dumps(manifest.to_json(), indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def open_manifest(location: str) -> Manifest:
    """Load and fully validate the manifest of the dataset at ``location`` (a directory or ``s3://`` prefix).

    Reads ``streamclip.json`` and ``index.json`` only, never a shard, so it is cheap on object storage.
    """
    raw_manifest = _read(location, MANIFEST_NAME)
    raw_index = _read(location, INDEX_NAME)
    where = posixpath.join(location, MANIFEST_NAME)
    doc = _parse(raw_manifest, where, "the dataset is damaged: convert it again")
    index = _parse(raw_index, posixpath.join(location, INDEX_NAME), "the dataset is damaged: convert it again")
    index_sha = hashlib.sha256(raw_index).hexdigest()
    return _validate(doc, index, index_sha, location=location, where=where)


def _parse(raw: bytes, where: str, fix: str) -> Any:
    """JSON from a dataset file; deep nesting (RecursionError) and giant integers (ValueError) count as corrupt too."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)[:120]
        raise ManifestError(f"{where}: not valid JSON ({reason}); {fix}") from None


def _read(location: str, name: str) -> bytes:
    path = posixpath.join(location, name)
    try:
        return read_bytes(location, name)
    except FileNotFoundError:
        if not is_remote(location) and not os.path.exists(location):
            raise ManifestError(f"{location}: no such dataset directory; give the directory that `streamclip convert` wrote") from None
        hint = " (is this a streamclip dataset? run `streamclip convert` first)" if name == MANIFEST_NAME else ""
        raise ManifestError(f"{path}: missing{hint}") from None
    except NotADirectoryError:
        raise ManifestError(f"{location}: is a file, not a dataset directory; give the directory holding {MANIFEST_NAME}") from None
    except IsADirectoryError:
        raise ManifestError(f"{path}: is a directory, not a file; the dataset is damaged: convert it again") from None
    except OSError as e:  # permission denied, a symlink loop...: the dataset's files, so the user's to fix
        raise ManifestError(f"{path}: cannot read it ({e.strerror or e}); check the dataset's files and permissions") from None


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ManifestError(f"{where}: {message}")


def _get(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    _require(isinstance(doc, dict) and key in doc, where, f"field {key!r} is missing")
    value = doc[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    _require(ok, where, f"field {key!r} must be {getattr(kind, '__name__', kind)}, got {type(value).__name__} {value!r:.60}")
    return value


def _int(doc: dict[str, Any], key: str, where: str, *, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    value = _get(doc, key, int, where)
    _require(minimum <= value <= maximum, where, f"field {key!r} must be in [{minimum}, {maximum}], got {value}")
    return value


def _pair(doc: dict[str, Any], key: str, where: str) -> tuple[int, int]:
    value = _get(doc, key, list, where)
    ok = len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    _require(ok and value[0] <= value[1], where, f"field {key!r} must be [start, end) with 0 <= start <= end, got {value!r:.60}")
    return value[0], value[1]


def _safe_basename(name: object, where: str) -> str:
    ok = isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\0" not in name
    _require(ok, where, f"shard file name {name!r:.80} is not a plain file name inside the dataset (refusing paths)")
    return name  # type: ignore[return-value]


def _index_shards(index: dict[str, Any], where: str) -> tuple[NDArray[np.int64], tuple[str, ...], NDArray[np.int64]]:
    _require(isinstance(index, dict) and index.get("version") == 2, where, "index.json must be an MDS index of version 2")
    shards = _get(index, "shards", list, where)
    samples, names, sizes = [], [], []
    for i, shard in enumerate(shards):
        at = f"{where} shard {i}"
        count = _int(shard, "samples", at, minimum=1)
        raw = _get(shard, "raw_data", dict, at)
        names.append(_safe_basename(raw.get("basename"), at))
        raw_bytes = _int(raw, "bytes", at, maximum=MAX_SHARD_BYTES)
        # Every MDS sample has a 4-byte offset in its shard: a count the bytes cannot hold is a forged index,
        # refused here rather than as a MemoryError when the reader sizes its arrays by it.
        _require(count * OFFSET_BYTES <= raw_bytes, at, f"claims {count} samples but its raw_data is {raw_bytes} bytes "
                 f"(each MDS sample takes at least {OFFSET_BYTES}); index.json is damaged: convert the dataset again")
        samples.append(count)
        zipped = shard.get("zip_data")
        if zipped is not None:
            _require(isinstance(zipped, dict), at, "zip_data must be an object or null")
            _safe_basename(zipped.get("basename"), at)
            sizes.append(_int(zipped, "bytes", at, maximum=2 * MAX_SHARD_BYTES))  # zstd may grow incompressible data a little
        else:
            sizes.append(raw_bytes)
    return np.array(samples, dtype=np.int64), tuple(names), np.array(sizes, dtype=np.int64)


def _validate(doc: Any, index: Any, index_sha: str, *, location: str, where: str) -> Manifest:
    _require(isinstance(doc, dict), where, "must be a JSON object")
    _require(doc.get("format") == FORMAT_NAME, where, f"field 'format' must be {FORMAT_NAME!r}, got {doc.get('format')!r:.40}")
    version = _int(doc, "format_version", where)
    _require(version <= FORMAT_VERSION, where, f"format_version {version} is newer than this streamclip reads ({FORMAT_VERSION}); upgrade streamclip")
    recorded_sha = _get(doc, "index_sha256", str, where)
    _require(
        recorded_sha == index_sha,
        where,
        f"index.json does not belong to this manifest (sha256 {index_sha[:12]}…, manifest expects {recorded_sha[:12]}…); "
        "the dataset was modified or mixed with another: convert it again",
    )
    samples_per_shard, names, shard_bytes = _index_shards(index, posixpath.join(location, INDEX_NAME))
    offsets = np.concatenate([[0], np.cumsum(samples_per_shard)])

    clusters_doc = _get(doc, "clusters", list, where)
    _require(len(clusters_doc) > 0, where, "has no clusters")
    clusters: list[ClusterInfo] = []
    next_shard = 0
    for k, c in enumerate(clusters_doc):
        at = f"{where} cluster {k}"
        cid = _int(c, "id", at)
        _require(cid == k, at, f"cluster ids must be 0..K-1 in order, got id {cid} at position {k}")
        shards = _pair(c, "shards", at)
        samples = _pair(c, "samples", at)
        docs = _int(c, "documents", at, minimum=1)
        _require(shards[0] == next_shard, at, f"shards must follow the previous cluster's: expected start {next_shard}, got {shards[0]}")
        _require(shards[1] > shards[0] and shards[1] <= len(samples_per_shard), at, f"shard range {list(shards)} is empty or outside the {len(samples_per_shard)} shards of index.json")
        expect = (int(offsets[shards[0]]), int(offsets[shards[1]]))
        _require(samples == expect, at, f"sample range {list(samples)} does not match its shards in index.json {list(expect)}")
        _require(docs == expect[1] - expect[0], at, f"documents {docs} != samples in its shards {expect[1] - expect[0]}")
        terms = _get(c, "top_terms", list, at)
        _require(all(isinstance(t, str) for t in terms), at, "top_terms must be strings")
        clusters.append(
            ClusterInfo(
                id=cid, documents=docs, bytes=_int(c, "bytes", at), shards=shards, samples=samples,
                top_terms=tuple(terms), example=_get(c, "example", str, at),
            )
        )
        next_shard = shards[1]
    _require(next_shard == len(samples_per_shard), where, f"clusters cover {next_shard} shards but index.json lists {len(samples_per_shard)}")

    totals = _get(doc, "totals", dict, where)
    for key, value in (("documents", int(offsets[-1])), ("shards", len(names)), ("clusters", len(clusters)), ("bytes", sum(c.bytes for c in clusters))):
        _require(_int(totals, key, f"{where} totals") == value, where, f"totals.{key} is {totals[key]}, but the clusters add up to {value}")

    inputs = []
    for i, item in enumerate(_get(doc, "inputs", list, where)):
        at = f"{where} input {i}"
        info = InputInfo(path=_get(item, "path", str, at), documents=_int(item, "documents", at), written=_int(item, "written", at), rejected=_int(item, "rejected", at),
                         blank_lines=_int(item, "blank_lines", at) if "blank_lines" in item else 0)
        _require(info.documents == info.written + info.rejected, at, f"documents {info.documents} != written {info.written} + rejected {info.rejected}")
        inputs.append(info)
    rejected = _int(doc, "rejected", where)
    if inputs:
        _require(sum(i.written for i in inputs) == int(offsets[-1]), where, "inputs' written counts do not add up to the documents in the shards")
        _require(sum(i.rejected for i in inputs) <= rejected, where, "inputs' rejected counts exceed the total rejected")

    columns = _get(doc, "columns", dict, where)
    _require("text" in columns and "cluster" in columns, where, "columns must include 'text' and 'cluster'")
    centroids = doc.get("centroids")
    _require(centroids in (None, CENTROIDS_NAME), where, f"centroids must be null or {CENTROIDS_NAME!r}")
    embedding = doc.get("embedding")
    _require(embedding is None or isinstance(embedding, dict), where, "embedding must be an object or null")
    extra = doc.get("extra", {})
    _require(isinstance(extra, dict), where, "extra must be an object")
    return Manifest(
        clusters=tuple(clusters), columns=dict(columns), embedding=embedding,
        clustering=_get(doc, "clustering", dict, where), inputs=tuple(inputs), rejected=rejected,
        index_sha256=index_sha, samples_per_shard=samples_per_shard, shard_basenames=names,
        shard_bytes=shard_bytes, has_centroids=centroids is not None,
        streamclip_version=_get(doc, "streamclip_version", str, where), location=location,
        format_version=version, extra=extra,
    )


def load_centroids(location: str, manifest: Manifest) -> NDArray[np.float32]:
    """The ``(K, dim)`` float32 centroids, to assign new documents to the dataset's clusters."""
    if not manifest.has_centroids:
        raise ManifestError(f"{location}: this dataset was clustered from an input field and has no centroids")
    import io

    where = posixpath.join(location, CENTROIDS_NAME)
    raw = _read(location, CENTROIDS_NAME)  # outside the try: a missing file is said as such, not as unreadable
    unreadable = f"{where}: not a readable .npy array ({{}}); the dataset is damaged: convert it again"
    try:
        stream = io.BytesIO(raw)
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except (ValueError, EOFError) as e:  # not an .npy, or truncated
        raise ManifestError(unreadable.format(str(e)[:120])) from None
    # read_array sizes its buffer from the header: a forged shape would be a MemoryError, not a damaged file
    if dtype != np.float32 or len(shape) != 2 or shape[0] != manifest.num_clusters:
        raise ManifestError(f"{where}: expected float32 ({manifest.num_clusters}, dim), got {dtype} {shape}")
    if stream.tell() + shape[0] * shape[1] * dtype.itemsize != len(raw):
        raise ManifestError(f"{where}: its header says {dtype} {shape}, but the file is {len(raw)} bytes; the dataset "
                            "is damaged: convert it again")
    try:
        arr = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ManifestError(unreadable.format(str(e)[:120])) from None
    return arr


def clustering_fingerprint(location: str, manifest: Manifest) -> str | None:
    """Identifies the clustering (its centroids, in cluster-id order), or None without centroids.

    A dataset and the train set ``split`` makes of it keep the same centroids, so they share this
    fingerprint while their dataset fingerprints differ: cluster weights found on one fit the other."""
    if not manifest.has_centroids:
        return None
    centroids = load_centroids(location, manifest)
    return hashlib.sha256(str(centroids.shape).encode() + np.ascontiguousarray(centroids).tobytes()).hexdigest()[:16]
