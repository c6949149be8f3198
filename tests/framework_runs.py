"""Run a framework's training script (lightning_run.py, hf_run.py) in a child process and read its step log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# offline, and ddp on loopback only
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}


def train(script: str, dataset: Path, root: Path, log: str, *args: str) -> subprocess.CompletedProcess:
    """``script DATASET ROOT/ckpt ROOT/LOG ARGS...``; killed runs return -9."""
    env = {**os.environ, **CHILD_ENV, "PYTHONPATH": str(HERE)}
    return subprocess.run([sys.executable, str(HERE / script), str(dataset), str(root / "ckpt"), str(root / log), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def full_run(script: str, dataset: Path, root: Path, *, end_epoch: float) -> list[dict]:
    """The uninterrupted run's log: 3 epochs of 8 steps, each step's epoch as the framework counts it."""
    done = train(script, dataset, root, "log.jsonl", "--workers", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    log = read_log(root / "log.jsonl")
    assert [r["step"] for r in log[:-1]] == list(range(24)) and log[-1] == {"end_epoch": end_epoch, "end_step": 24}
    assert [r["epoch"] for r in log[:-1]] == [e for e in range(3) for _ in range(8)]
    return log


def killed_and_resumed(script: str, dataset: Path, root: Path, kills: list[tuple[int, str]],
                       extra: dict[int, tuple[str, ...]] | None = None) -> list[dict]:
    """One run SIGKILLed at every kill point in turn, each time just after a checkpoint, and resumed from that
    checkpoint in a new process on another worker count, then run to the end; the stitched log.

    ``kills`` lists (step, checkpoint name written by that step); ``extra`` adds arguments to the run killed at a step.
    """
    workers, resume = 2, None
    for kill_at, checkpoint in [*kills, (None, None)]:
        args = ["--workers", str(workers), *(extra or {}).get(kill_at, ())]
        args += ([] if resume is None else ["--resume", resume]) + ([] if kill_at is None else ["--kill-at", str(kill_at)])
        done = train(script, dataset, root, "log.jsonl", *args)
        if kill_at is None:
            assert done.returncode == 0, done.stderr[-3000:]
            break
        assert done.returncode == -9, f"expected a kill at step {kill_at}: {done.stderr[-3000:]}"
        assert (root / "ckpt" / checkpoint).exists(), f"{checkpoint} not written by step {kill_at}"
        assert [r["step"] for r in read_log(root / "log.jsonl")] == list(range(kill_at))  # killed before training step kill_at
        workers, resume = 2 - workers, checkpoint
    return read_log(root / "log.jsonl")


def run_example(name: str, dataset: Path, out: Path, *args: str) -> str:
    """``examples/NAME DATASET OUT ARGS`` with no workers; its stdout (it must exit 0)."""
    done = subprocess.run([sys.executable, str(HERE.parent / "examples" / name), str(dataset), str(out), "--workers", "0", *args],
                          capture_output=True, text=True, env={**os.environ, **CHILD_ENV}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
