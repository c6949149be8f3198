"""Exact resume under PyTorch Lightning (issue: a checkpoint on an epoch's last batch used to drop an epoch).

Each run is a child process (tests/lightning_run.py) training a one-parameter model on a ClusterClip plan
of 3 epochs x 8 steps, checkpointing every 4 steps, logging every step's sample ids and Lightning's epoch.
A run SIGKILLed right after a checkpoint and resumed from it in a new process, with another worker count,
must log exactly what the uninterrupted run logs, step by step, and end on the same epoch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytorch_lightning")

from streaming import StreamingDataLoader  # noqa: E402

from conftest import convert_docs  # noqa: E402
from streamclip.readers import ClusterClipDataset  # noqa: E402
from streamclip.readers.lightning import LightningLoader  # noqa: E402

RUN = Path(__file__).with_name("lightning_run.py")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    return convert_docs(tmp_path_factory.mktemp("lightning"), sample_docs[:300], clusters=4)


def _train(dataset: Path, root: Path, log: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(RUN.parent)}
    return subprocess.run([sys.executable, str(RUN), str(dataset), str(root / "ckpt"), str(root / log), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("full")
    done = _train(dataset, root, "log.jsonl", "--workers", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    log = _log(root / "log.jsonl")
    assert [r["step"] for r in log[:-1]] == list(range(24)) and log[-1] == {"end_epoch": 3, "end_step": 24}
    assert [r["epoch"] for r in log[:-1]] == [e for e in range(3) for _ in range(8)]
    return log


@pytest.mark.parametrize("kill_at, before, after", [(4, 2, 0), (8, 2, 0), (12, 0, 2)],
                         ids=["inside-epoch-0", "after-the-checkpoint-on-epoch-0s-last-batch", "inside-epoch-1"])
def test_a_killed_run_resumed_from_its_checkpoint_trains_what_the_uninterrupted_run_trains(dataset, tmp_path, uninterrupted, kill_at, before, after):
    killed = _train(dataset, tmp_path, "log.jsonl", "--workers", str(before), "--kill-at", str(kill_at))
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (tmp_path / "ckpt" / f"{kill_at}.ckpt").exists()
    assert [r["step"] for r in _log(tmp_path / "log.jsonl")] == list(range(kill_at))  # killed before training step kill_at
    resumed = _train(dataset, tmp_path, "log.jsonl", "--workers", str(after), "--resume", str(kill_at))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _log(tmp_path / "log.jsonl") == uninterrupted  # every step's samples and epoch, and the final epoch


def test_a_checkpoint_of_another_plan_is_refused_before_training(dataset, tmp_path):
    killed = _train(dataset, tmp_path, "log.jsonl", "--kill-at", "4")
    assert killed.returncode == -9
    other = _train(dataset, tmp_path, "other.jsonl", "--resume", "4", "--seed", "1")
    assert other.returncode != 0 and "ResumeMismatch" in other.stderr and "seed: found 0, expected 1" in other.stderr
    assert not (tmp_path / "other.jsonl").exists()  # not one step trained


def _loader(cls, dataset: Path, **kwargs):
    ds = ClusterClipDataset(local=str(dataset), strategy="clusterclip", strategy_params={"clip": 2}, epochs=3, epoch_size=64, seed=0,
                            batch_size=8, num_canonical_nodes=1)
    return cls(ds, batch_size=8, collate_fn=lambda rows: {"text": [r["text"] for r in rows]}, **kwargs)


def test_an_end_of_epoch_state_starts_the_next_epoch_on_the_first_iter_where_stock_yields_nothing(dataset):
    first = _loader(LightningLoader, dataset)
    epochs = [[t for b in first for t in b["text"]] for _ in range(2)]
    state = first.state_dict()  # taken at the end of epoch 1
    assert (state["epoch"], state["sample_in_epoch"]) == (1, 64)
    stock = _loader(StreamingDataLoader, dataset)
    stock.load_state_dict(state)
    assert [t for b in stock for t in b["text"]] == []  # stock: the empty rest of epoch 1; Lightning would count it as epoch 2
    ours = _loader(LightningLoader, dataset)
    ours.load_state_dict(state)
    third = [t for b in ours for t in b["text"]]
    fresh = _loader(LightningLoader, dataset)
    assert third == [[t for b in fresh for t in b["text"]] for _ in range(3)][2] and third not in epochs
