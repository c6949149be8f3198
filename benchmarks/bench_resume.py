"""Time to the first batch after ``load_state_dict``: resuming late must cost what starting does.

    python benchmarks/bench_resume.py --quick
    python benchmarks/bench_resume.py

A ClusterClip run of 60 epochs over a converted real-text dataset (the benchmark corpus clustered by
its ``domain`` field, else the bundled sample). Each case builds a fresh ``ClusterClipDataset`` in a
fresh process, loads a checkpoint at epoch 0 sample 0, at epoch 0 at 95% of the epoch, and at
epoch 50 at 50%, and times from ``load_state_dict`` to the first batch of a DataLoader (the plan
for that epoch, the stock partition and shuffle, and the first shard reads). Goal (issue 11): the
late resumes take <= 1.2x the start.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_write import corpus_rows, stage_input  # noqa: E402
from harness import emit, fmt, interleaved, markdown_table, parse_args, spread, write_results  # noqa: E402

EPOCHS = 60
BATCH = 256


def build(limit: int | None, out: Path) -> None:
    from streamclip.writers import ConvertConfig, FieldRules, convert

    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        src = stage_input(corpus_rows(limit), work)
        convert([str(src)], str(out), ConvertConfig(rules=FieldRules(cluster_field="group"), shard_size=4 << 20, progress=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def child(spec: dict) -> None:
    from streaming.base.util import clean_stale_shared_memory
    from torch.utils.data import DataLoader

    from streamclip.readers import ClusterClipDataset

    clean_stale_shared_memory()
    kwargs = dict(local=spec["dataset"], strategy="clusterclip", strategy_params={"clip": EPOCHS}, epochs=EPOCHS,
                  batch_size=BATCH, num_canonical_nodes=1, seed=3, **spec.get("extra", {}))
    ds = ClusterClipDataset(**kwargs)
    state = ds.state_dict(0, True)
    epoch_size = ds.epoch_size
    state.update(epoch=spec["epoch"], sample_in_epoch=int(spec["fraction"] * epoch_size) // BATCH * BATCH)
    del ds
    ds = ClusterClipDataset(**kwargs)
    start = time.perf_counter()
    ds.load_state_dict(state)
    batch = next(iter(DataLoader(ds, batch_size=BATCH, num_workers=0, collate_fn=lambda b: b)))
    emit({"seconds": time.perf_counter() - start, "batch": len(batch), "epoch_size": epoch_size})


def main() -> None:
    args = parse_args(__doc__, "30k documents, 3 repetitions", child)
    if args is None:
        return
    repeats = args.repeats or (3 if args.quick else 5)
    root = Path(tempfile.mkdtemp(prefix="bench-resume-ds-"))
    try:
        dataset = root / "ds"
        build(30000 if args.quick else None, dataset)
        me = str(Path(__file__).resolve())
        points = {"epoch 0, 0%": (0, 0.0), "epoch 0, 95%": (0, 0.95), "epoch 50, 50%": (50, 0.5)}
        cases = {name: [me, "--child", json.dumps({"dataset": str(dataset), "epoch": e, "fraction": f})] for name, (e, f) in points.items()}
        results = interleaved(cases, repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = spread([r["seconds"] for r in results["epoch 0, 0%"]])
    rows = []
    for name in points:
        s = spread([r["seconds"] for r in results[name]])
        rows.append([name, fmt(s, " s", 3), f"{s['median'] / base['median']:.2f}x"])
    size = results["epoch 0, 0%"][0]["epoch_size"]
    notes = (f"ClusterClip(clip={EPOCHS}), {EPOCHS} epochs of {size} samples, batch {BATCH}, num_workers=0. "
             f"Median (min–max) of {repeats} interleaved fresh-process runs. Goal: <= 1.2x the start.")
    write_results("resume", {"cases": {n: spread([r["seconds"] for r in results[n]]) for n in points}},
                  markdown_table(["resume point", "load_state_dict -> first batch", "vs start"], rows),
                  command=f"python benchmarks/bench_resume.py{' --quick' if args.quick else ''}", notes=notes)


if __name__ == "__main__":
    main()
