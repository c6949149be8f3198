"""Exact resume under PyTorch Lightning (a checkpoint on an epoch's last batch used to drop an epoch).

Each run is a child process (tests/lightning_run.py) training a one-parameter model on a ClusterClip plan
of 3 epochs x 8 steps, checkpointing every 4 steps, logging every step's sample ids and Lightning's epoch.
A run SIGKILLed right after a checkpoint and resumed from it in a new process, with another worker count,
must log exactly what the uninterrupted run logs, step by step, and end on the same epoch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytorch_lightning")

from streaming import StreamingDataLoader  # noqa: E402

from conftest import convert_docs  # noqa: E402
from framework_runs import full_run, killed_and_resumed, read_log, train  # noqa: E402
from streamclip.readers import ClusterClipDataset  # noqa: E402
from streamclip.readers.lightning import LightningLoader  # noqa: E402

SCRIPT = "lightning_run.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    return convert_docs(tmp_path_factory.mktemp("lightning"), sample_docs[:300], clusters=4)


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> tuple[list[dict], Path]:
    root = tmp_path_factory.mktemp("full")
    return full_run(SCRIPT, dataset, root, end_epoch=3), root


def test_a_run_killed_at_every_kill_point_and_resumed_each_time_trains_what_the_uninterrupted_run_trains(dataset, tmp_path, uninterrupted):
    # inside epoch 0; on epoch 0's last batch; inside epoch 1 of a run resumed from a last batch (Lightning then
    # believes the next resume starts a fresh epoch); at epoch 1's end (Lightning loads no loader state there)
    kills = [(4, "4.ckpt"), (8, "8.ckpt"), (12, "12.ckpt"), (16, "end-16.ckpt")]
    assert killed_and_resumed(SCRIPT, dataset, tmp_path, kills) == uninterrupted[0]  # every step's samples and epoch, the final epoch


def test_a_checkpoint_of_another_plan_is_refused_before_training(dataset, uninterrupted):
    root = uninterrupted[1]  # its checkpoints are of seed 0
    other = train(SCRIPT, dataset, root, "other.jsonl", "--resume", "4.ckpt", "--seed", "1")
    assert other.returncode != 0 and "ResumeMismatch" in other.stderr and "seed: found 0, expected 1" in other.stderr
    assert read_log(root / "other.jsonl") == []  # not one step trained


def _loader(cls, dataset: Path):
    ds = ClusterClipDataset(local=str(dataset), strategy="clusterclip", strategy_params={"clip": 2}, epochs=3, epoch_size=64, seed=0,
                            batch_size=8, num_canonical_nodes=1)
    return cls(ds, batch_size=8, collate_fn=lambda rows: {"text": [r["text"] for r in rows]})


def _texts(loader) -> list[str]:
    return [t for batch in loader for t in batch["text"]]


def test_an_end_of_epoch_state_starts_the_next_epoch_on_the_first_iter_where_stock_yields_nothing(dataset):
    first = _loader(LightningLoader, dataset)
    epochs = [_texts(first) for _ in range(2)]
    state = first.state_dict()  # taken at the end of epoch 1
    assert (state["epoch"], state["sample_in_epoch"]) == (1, 64)
    stock = _loader(StreamingDataLoader, dataset)
    stock.load_state_dict(state)
    assert _texts(stock) == []  # stock: the empty rest of epoch 1, which Lightning would count as its epoch 2
    ours = _loader(LightningLoader, dataset)
    ours.load_state_dict(state)
    third = _texts(ours)
    fresh = _loader(LightningLoader, dataset)
    assert third == [_texts(fresh) for _ in range(3)][2] and third not in epochs
