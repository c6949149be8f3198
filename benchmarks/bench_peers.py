"""Read throughput next to peer loaders: the same documents through streamclip, stock streaming, LitData and HF datasets.

    python benchmarks/bench_peers.py --quick    # 30k documents, 2 repetitions
    python benchmarks/bench_peers.py            # the whole benchmark corpus, 5 repetitions

Documents: the dataset ``bench_read.build`` makes (the benchmark corpus, 100 clusters, one zstd MDS shard
each, shards decompressed before timing), and the very same texts and cluster ids, in shard order, written
for each peer: LitData chunks with ``litdata.optimize`` (zstd and uncompressed, as many chunks as there are
MDS shards) and JSONL for HF ``datasets``. Rows, each one epoch, batch 256, in a fresh process, interleaved,
repeated, timed as in bench_read (``gc.collect()`` first, from the first ``next()`` to the last batch):

- ``ClusterClipDataset(read_path="fast")``: bench_read's cc-fast row (a ClusterClip plan of one epoch);
- stock ``streaming.StreamingDataset(shuffle=True)`` over the same shards: bench_read's stock row;
- LitData ``StreamingDataset(shuffle=True)`` in a torch ``DataLoader``, zstd and uncompressed chunks;
- HF ``load_dataset("json", streaming=True)`` iterated with its own ``.iter(batch_size=256)``, no loader,
  in file order (no shuffle): workers=0 only;
- HF ``load_dataset("json")`` (Arrow, prepared once before timing) in a ``DataLoader(shuffle=True)``.

Every loader yields the same batch: texts as a list, cluster ids as an int32 array (bench_read's ``collate``).

The peers live in their own virtualenvs under ``benchmarks/work/peers/<name>`` (git-ignored), made by this
script on first use: HF datasets needs a huggingface-hub that streaming's ``transformers<5`` rules out, and
neither belongs in the project's dependencies. Each is a ``venv`` of this interpreter whose site-packages
holds a ``.pth`` naming this .venv's site-packages, so torch and numpy are imported from here, not fetched
again (a ``pip --dry-run`` refuses the install if it would fetch them). Delete the folder to reinstall.

Pitfalls found (litdata 0.2.76, datasets 5.2.0):

- LitData writes dicts of str/int as "Arrow row" chunks (a header plus an Arrow IPC footer);
  ``compression="zstd"`` then means Arrow IPC zstd buffers (``index.json``: ``compression: null``,
  ``ipc_compression: "zstd"``) and ``compression_level`` is ignored, so the older pitfall (chunks written
  without ``compression_level="chunk"`` could not be read back) does not arise with this data, nor does the
  in-place decompression that deleted the originals; the pristine build is still copied before every run.
- LitData's ``chunk_bytes`` counts compressed bytes, so one ``chunk_bytes`` gives the zstd build about a
  third as many chunks as the uncompressed one; ``chunk_size`` (documents per chunk) gives both the same.
- LitData shuffles the chunk order and within chunks, so a batch comes from one or two chunks, here one or
  two clusters: 1.7 distinct clusters per batch over the full corpus, against 65 for stock streaming and for
  HF Arrow's global shuffle, 82 for the ClusterClip plan, 1.2 for HF streaming in file order (checked once,
  not measured here). In the same check every peer read the same 127,585 (text, cluster) pairs as stock
  streaming (sorted-hash digest); the fast row reads a ClusterClip plan of the same size instead.
- HF ``Dataset.shuffle()`` (an indices mapping) read about 3x slower than ``DataLoader(shuffle=True)`` over
  the unshuffled dataset (30k documents, workers=0); the row uses the faster one.
- HF datasets 5.x pulls huggingface-hub 2.x; pip warns that this .venv's transformers and tokenizers want
  an older one and leaves this .venv alone ("outside environment"); the peer never imports them.
- LitData's PyPI version check is off by default in 0.2.76; ``LITDATA_DISABLE_VERSION_CHECK=1`` is set
  anyway, with ``HF_HUB_OFFLINE=1``, ``HF_DATASETS_OFFLINE=1`` and ``HF_HOME`` in a temporary folder.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_read import BATCH, CLUSTERS, build, collate, decode_shard, read_epoch, timed_epoch  # noqa: E402
from bench_write import BENCH_CORPUS  # noqa: E402
from harness import Case, emit, fmt, interleaved, markdown_table, parse_args, run_child, spread, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
PEER_ROOT = HERE / "work" / "peers"
PEERS = {"litdata": ("litdata",), "datasets": ("datasets", "huggingface-hub", "pyarrow")}  # pip installs the first
REUSED = {"torch", "numpy"}  # must come from this .venv through the .pth, never be fetched into a peer
WORKERS = (0, 2)


class Reader(NamedTuple):
    label: str
    short: str
    peer: str | None  # the virtualenv it runs in; None for this .venv
    workers: tuple[int, ...]


READERS = {
    "cc-fast": Reader('streamclip `ClusterClipDataset(read_path="fast")`', "fast", None, WORKERS),
    "stock": Reader("stock `streaming.StreamingDataset(shuffle=True)`", "stock StreamingDataset", None, WORKERS),
    "litdata-zstd": Reader("LitData `StreamingDataset(shuffle=True)`, zstd chunks", "LitData zstd", "litdata", WORKERS),
    "litdata-raw": Reader("LitData `StreamingDataset(shuffle=True)`, uncompressed chunks", "LitData uncompressed", "litdata", WORKERS),
    "hf-stream": Reader('HF `load_dataset("json", streaming=True).iter(256)`, file order, no loader', "HF streaming", "datasets", (0,)),
    "hf-arrow": Reader('HF `load_dataset("json")` (Arrow) in `DataLoader(shuffle=True)`', "HF Arrow", "datasets", WORKERS),
}


class Peer(NamedTuple):
    python: str
    versions: dict[str, str]


# --- peer virtualenvs ----------------------------------------------------------------------------------


def ensure_peer(name: str) -> Peer:
    """The peer's virtualenv, made on first use; ``ready.json`` marks a finished install (and its versions),
    so an interrupted one is started again from scratch."""
    home = PEER_ROOT / name
    python, ready = home / "bin" / "python", home / "ready.json"
    if not ready.exists():
        shutil.rmtree(home, ignore_errors=True)
        print(f"setting up {home} (pip install {PEERS[name][0]})", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        share_site_packages(python)
        pip_install(python, PEERS[name][0])
        ready.write_text(json.dumps(installed_versions(python, PEERS[name])) + "\n")
    return Peer(str(python), json.loads(ready.read_text()))


def share_site_packages(python: Path) -> None:
    """Append this .venv's site-packages to the peer's path: its own packages come first, torch and numpy
    (~7 GB with CUDA) come from here."""
    peer_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    Path(peer_site, "zz-streamclip-main-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def pip_install(python: Path, requirement: str) -> None:
    """Install ``requirement``, after a dry run shows pip takes torch and numpy as already satisfied."""
    report = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--dry-run", "--report", "-", requirement],
                            check=True, capture_output=True, text=True).stdout
    fetched = {item["metadata"]["name"].lower() for item in json.loads(report)["install"]}
    if fetched & REUSED:
        raise RuntimeError(f"pip would fetch {sorted(fetched & REUSED)} for {requirement} instead of reusing this .venv's")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", requirement], check=True)


def installed_versions(python: Path, packages: Iterable[str]) -> dict[str, str]:
    code = "import json, sys; from importlib import metadata; print(json.dumps({p: metadata.version(p) for p in sys.argv[1:]}))"
    return json.loads(subprocess.run([str(python), "-c", code, *packages], check=True, capture_output=True, text=True).stdout)


def setup_peers() -> tuple[dict[str, Peer], dict[str, str]]:
    """Every peer that could be installed, and why the others could not."""
    peers, broken = {}, {}
    for name in PEERS:
        try:
            peers[name] = ensure_peer(name)
        except (subprocess.CalledProcessError, RuntimeError, ValueError) as error:
            detail = getattr(error, "stderr", None) or str(error)
            broken[name] = f"setup failed: {detail.strip().splitlines()[-1][:200]}"
    return peers, broken


# --- the same documents for every reader ---------------------------------------------------------------


def shard_documents(source: tuple[str, int]) -> Iterator[dict[str, Any]]:
    """The documents of MDS shard ``source = (dataset, shard_id)`` as ``{"text", "cluster"}``, decoded from the
    raw shard with bench_read's decoder: the input LitData's ``optimize`` and the JSONL are written from."""
    dataset, shard_id = source
    with open(os.path.join(dataset, "index.json")) as f:
        info = json.load(f)["shards"][shard_id]
    with open(os.path.join(dataset, info["raw_data"]["basename"]), "rb") as f:
        for row in decode_shard(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), info):
            yield {"text": row["text"], "cluster": int(row["cluster"])}


def shard_count(dataset: Path) -> int:
    with open(dataset / "index.json") as f:
        return len(json.load(f)["shards"])


def write_jsonl(dataset: Path, out: Path) -> int:
    """Every document of the MDS dataset, in shard order, as one JSON object a line (HF's input)."""
    docs = 0
    with open(out, "w", encoding="utf-8") as f:
        for shard_id in range(shard_count(dataset)):
            for doc in shard_documents((str(dataset), shard_id)):
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
                docs += 1
    return docs


def mds_bytes(dataset: Path) -> tuple[int, int]:
    """Zstd and raw bytes of all shards."""
    with open(dataset / "index.json") as f:
        shards = json.load(f)["shards"]
    return sum(s["zip_data"]["bytes"] for s in shards), sum(s["raw_data"]["bytes"] for s in shards)


# --- children: preparation in a peer's virtualenv, and one timed epoch ---------------------------------


def optimize_litdata(spec: dict[str, Any]) -> dict[str, Any]:
    """LitData chunks of the MDS dataset's documents: one optimize worker, so chunks keep the shard order."""
    from litdata import optimize

    shards = shard_count(Path(spec["dataset"]))
    optimize(fn=shard_documents, inputs=[(spec["dataset"], i) for i in range(shards)], output_dir=spec["out"],
             chunk_size=spec["chunk_size"], compression=spec["compression"], num_workers=1, verbose=False)
    chunks = [p for p in Path(spec["out"]).iterdir() if p.name != "index.json"]
    return {"chunks": len(chunks), "bytes": sum(p.stat().st_size for p in chunks)}


def prepare_hf(spec: dict[str, Any]) -> dict[str, Any]:
    """Build HF's Arrow cache of the JSONL once, so the timed runs load it as a prepared dataset."""
    from datasets import load_dataset

    ds = load_dataset("json", data_files=spec["jsonl"], split="train", cache_dir=spec["cache"])
    return {"rows": len(ds), "bytes": sum(os.path.getsize(f["filename"]) for f in ds.cache_files)}


def read_litdata(spec: dict[str, Any]) -> dict[str, Any]:
    """One epoch from a fresh copy of the pristine chunks (LitData has rewritten local datasets in place)."""
    from litdata import StreamingDataset
    from torch.utils.data import DataLoader

    work = Path(tempfile.mkdtemp(prefix="bench-peers-litdata-"))
    try:
        shutil.copytree(spec["pristine"], work / "ds")
        ds = StreamingDataset(str(work / "ds"), shuffle=True, seed=3)
        return timed_epoch(DataLoader(ds, batch_size=BATCH, num_workers=spec["workers"], collate_fn=collate))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_hf_stream(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from datasets import load_dataset

    ds = load_dataset("json", data_files=spec["jsonl"], split="train", streaming=True, cache_dir=spec["cache"])
    return timed_epoch({"text": b["text"], "cluster": np.asarray(b["cluster"], dtype=np.int32)} for b in ds.iter(batch_size=BATCH))


def read_hf_arrow(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from datasets import load_dataset
    from torch.utils.data import DataLoader

    ds = load_dataset("json", data_files=spec["jsonl"], split="train", cache_dir=spec["cache"])
    loader = DataLoader(ds, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(3),
                        num_workers=spec["workers"], collate_fn=collate)
    return timed_epoch(loader)


PEER_STEPS = {"optimize": optimize_litdata, "hf-prepare": prepare_hf, "litdata": read_litdata,
              "hf-stream": read_hf_stream, "hf-arrow": read_hf_arrow}


def child(spec: dict[str, Any]) -> None:
    if spec["kind"] in ("cc-fast", "stock"):
        emit(read_epoch(spec))
        return
    try:
        emit(PEER_STEPS[spec["kind"]](spec))
    except Exception as error:  # a peer that breaks keeps its row, with the reason instead of a number
        emit({"error": f"{type(error).__name__}: {error}"[:300]})


# --- the parent ----------------------------------------------------------------------------------------


class Prepared(NamedTuple):
    specs: dict[str, dict[str, Any]]  # reader kind -> its child's spec, less the workers
    unavailable: dict[str, str]  # reader kind -> why it has no numbers
    sizes: dict[str, Any]


def peer_step(me: str, peer: Peer, spec: dict[str, Any]) -> dict[str, Any]:
    """A preparation child in the peer's virtualenv; a crash comes back as an error, like a caught one."""
    try:
        return run_child([me, "--child", json.dumps(spec)], python=peer.python)
    except RuntimeError as error:
        return {"error": str(error).strip().splitlines()[-1][:300]}


def prepare(root: Path, limit: int | None, peers: dict[str, Peer], broken: dict[str, str], me: str) -> Prepared:
    """The MDS dataset, and from its documents every peer's input that could be made."""
    mds = root / "mds"
    docs = build(limit, mds)
    shards = shard_count(mds)
    jsonl = root / "docs.jsonl"
    if write_jsonl(mds, jsonl) != docs:
        raise RuntimeError("the JSONL does not hold the dataset's documents")
    zstd_bytes, raw_bytes = mds_bytes(mds)
    sizes: dict[str, Any] = {"docs": docs, "shards": shards, "mds_zstd": zstd_bytes, "mds_raw": raw_bytes, "jsonl": jsonl.stat().st_size}
    specs: dict[str, dict[str, Any]] = {"cc-fast": {"kind": "cc-fast", "dataset": str(mds)}, "stock": {"kind": "stock", "dataset": str(mds)}}
    unavailable = {kind: broken[r.peer] for kind, r in READERS.items() if r.peer in broken}
    if "litdata" in peers:
        for kind, compression in (("litdata-zstd", "zstd"), ("litdata-raw", None)):
            out = root / kind
            made = peer_step(me, peers["litdata"], {"kind": "optimize", "dataset": str(mds), "out": str(out),
                                                    "compression": compression, "chunk_size": -(-docs // shards)})
            if "error" in made:
                unavailable[kind] = f"optimize failed: {made['error']}"
            else:
                specs[kind], sizes[kind] = {"kind": "litdata", "pristine": str(out)}, made
    if "datasets" in peers:
        hf = {"jsonl": str(jsonl), "cache": str(root / "hf-cache")}
        made = peer_step(me, peers["datasets"], {"kind": "hf-prepare", **hf})
        for kind in ("hf-stream", "hf-arrow"):
            if "error" in made:
                unavailable[kind] = f"load_dataset failed: {made['error']}"
            else:
                specs[kind] = {"kind": kind, **hf}
        sizes["hf-arrow"] = made
    return Prepared(specs, unavailable, sizes)


def cases(prepared: Prepared, peers: dict[str, Peer], me: str) -> dict[str, list[str] | Case]:
    """Every reader that could be prepared, at each of its worker counts, in this .venv or its peer's."""
    out: dict[str, list[str] | Case] = {}
    for w in WORKERS:
        for kind, reader in READERS.items():
            if kind in prepared.specs and w in reader.workers:
                argv = [me, "--child", json.dumps({**prepared.specs[kind], "workers": w})]
                out[f"{kind} w{w}"] = Case(peers[reader.peer].python, argv) if reader.peer else argv
    return out


def offline_env(root: Path) -> dict[str, str]:
    """No hub, no version checks, and HF's caches in the run's temporary folder."""
    return {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(root / "hf-home"), "LITDATA_DISABLE_VERSION_CHECK": "1"}


def main() -> None:
    args = parse_args(__doc__, "30k documents, 2 repetitions", child)
    if args is None:
        return
    repeats = args.repeats or (2 if args.quick else 5)
    me = str(Path(__file__).resolve())
    peers, broken = setup_peers()
    root = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    os.environ.update(offline_env(root))
    try:
        prepared = prepare(root, 30000 if args.quick else None, peers, broken, me)
        results = interleaved(cases(prepared, peers, me), repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results, prepared, peers, repeats=repeats, quick=args.quick)


def cell(runs: list[dict[str, Any]] | None, reason: str | None) -> tuple[str, dict[str, float] | None]:
    """A table cell and the rates behind it: the reason or the first error where there is no number."""
    if reason:
        return reason, None
    if runs is None:
        return "— (no DataLoader)", None
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return f"failed: {errors[0]}", None
    rate = spread([r["samples"] / r["seconds"] for r in runs])
    return fmt(rate), rate


def ratio_cell(fast: list[dict[str, Any]], peer: list[dict[str, Any]], rates: dict[str, dict[str, float] | None], w: int, kind: str) -> str:
    """Median over median, and the range of the per-run ratios (repetition i of both ran in the same round)."""
    mine, theirs = rates.get(f"cc-fast w{w}"), rates.get(f"{kind} w{w}")
    if not mine or not theirs:
        return "—"
    per_run = [f["samples"] / f["seconds"] / (p["samples"] / p["seconds"]) for f, p in zip(fast, peer)]
    return f"**{mine['median'] / theirs['median']:.1f}x** (per run {min(per_run):.1f}–{max(per_run):.1f}x)"


def report(results: dict[str, list[dict[str, Any]]], prepared: Prepared, peers: dict[str, Peer], *, repeats: int, quick: bool) -> None:
    rows, rates = [], {}
    for kind, reader in READERS.items():
        row = [reader.label]
        for w in WORKERS:
            text, rates[f"{kind} w{w}"] = cell(results.get(f"{kind} w{w}"), prepared.unavailable.get(kind))
            row.append(text)
        rows.append(row)
    for kind, reader in list(READERS.items())[1:]:
        rows.append([f"fast / {reader.short}"] + [ratio_cell(results.get(f"cc-fast w{w}", []), results.get(f"{kind} w{w}", []), rates, w, kind)
                                                  for w in WORKERS])
    write_results("peers", {"rates": rates, "sizes": prepared.sizes, "unavailable": prepared.unavailable,
                            "peers": {name: peer.versions for name, peer in peers.items()}, "runs": results},
                  markdown_table(["reader (samples/s)", "num_workers=0", "num_workers=2"], rows),
                  command=f"python benchmarks/bench_peers.py{' --quick' if quick else ''}", notes=notes(prepared, peers, repeats))


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def notes(prepared: Prepared, peers: dict[str, Peer], repeats: int) -> str:
    s = prepared.sizes
    corpus = "benchmark corpus" if BENCH_CORPUS.exists() else "bundled sample"
    versions = "; ".join(", ".join(f"{p} {v}" for p, v in peer.versions.items()) + f" (peer venv `{name}`)" for name, peer in peers.items())
    litdata = ", ".join(f"{k.split('-')[1]} {s[k]['chunks']} chunks, {mb(s[k]['bytes'])}" for k in ("litdata-zstd", "litdata-raw") if k in s)
    arrow = f", Arrow cache {mb(s['hf-arrow']['bytes'])}" if "bytes" in s.get("hf-arrow", {}) else ""
    return (
        f"{s['docs']:,} documents of the {corpus} ({CLUSTERS} clusters), the same texts and cluster ids for every reader; "
        "the fast row reads a ClusterClip plan of one epoch (as in bench_read), the others every document once. "
        f"MDS: {s['shards']} shards, zstd {mb(s['mds_zstd'])}, raw {mb(s['mds_raw'])} (decompressed before timing, as in bench_read). "
        f"LitData: `optimize(chunk_size={-(-s['docs'] // s['shards'])})` (as many chunks as MDS shards, shard order, 1 worker): {litdata}; "
        "a fresh copy of the pristine build before every run; torch `DataLoader`, not LitData's `StreamingDataLoader`. "
        f"HF: JSONL {mb(s['jsonl'])}{arrow}; streaming reads the JSONL in file order with no shuffle and no loader; Arrow is "
        "prepared once, then each run loads it (`HF_HUB_OFFLINE=1`, `HF_DATASETS_OFFLINE=1`) and a `DataLoader(shuffle=True)` "
        "draws batches through `__getitems__`. All loaders: batch 256, bench_read's collate (texts as a list, clusters as "
        "int32). Samples/s, median (min–max) of "
        f"{repeats} interleaved fresh-process runs, timed from the first `next()` to the last batch (worker start-up included, "
        f"`gc.collect()` first). Peers: {versions or 'none installed'}; each peer venv reuses this .venv's torch and numpy "
        "through a `.pth`."
    )


if __name__ == "__main__":
    main()
