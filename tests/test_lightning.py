"""Exact resume under PyTorch Lightning (a checkpoint on an epoch's last batch used to drop an epoch).

Each run is a child process (tests/lightning_run.py) training a one-parameter model on a ClusterClip plan
of 3 epochs x 8 steps, checkpointing every 4 steps, logging every step's sample ids and Lightning's epoch.
A run SIGKILLed right after a checkpoint and resumed from it in a new process, with another worker count,
must log exactly what the uninterrupted run logs, step by step, and end on the same epoch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytorch_lightning")

from streaming import StreamingDataLoader  # noqa: E402

from conftest import convert_docs  # noqa: E402
from framework_runs import full_run, killed_and_resumed, read_log, run_example, train  # noqa: E402
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


def test_the_example_stops_and_resumes_to_the_plans_end(sample_dataset, tmp_path):
    first = run_example("train_lightning.py", sample_dataset, tmp_path, "--stop-at", "30")
    assert "started; now at step 30 of 64" in first
    assert "now at step 64 of 64" in run_example("train_lightning.py", sample_dataset, tmp_path) and (tmp_path / "last.ckpt").exists()


def _two_ranks_match(root: Path, one: list[dict]) -> None:
    """Each step of both ranks' logs: the two halves make the one-device run's batch, on the same step and epoch."""
    ranks = [read_log(root / f"log.jsonl.rank{r}") for r in (0, 1)]
    assert [len(log) for log in ranks] == [len(one), len(one)] and ranks[0][-1] == ranks[1][-1] == one[-1]
    for a, b, ref in zip(ranks[0][:-1], ranks[1][:-1], one[:-1]):
        assert (a["step"], a["epoch"]) == (b["step"], b["epoch"]) == (ref["step"], ref["epoch"])
        assert len(a["ids"]) == len(b["ids"]) == 4 and sorted(a["ids"] + b["ids"]) == sorted(ref["ids"])


def test_two_ddp_devices_train_the_global_batches_of_one_device_also_resumed_from_a_one_device_checkpoint(dataset, tmp_path, uninterrupted):
    one, one_root = uninterrupted
    (tmp_path / "fresh").mkdir()
    done = train(SCRIPT, dataset, tmp_path / "fresh", "log.jsonl", "--devices", "2", "--workers", "0")  # ddp on CPU, gloo, 127.0.0.1
    assert done.returncode == 0, done.stderr[-3000:]
    _two_ranks_match(tmp_path / "fresh", one)
    resumed = tmp_path / "resumed"
    (resumed / "ckpt").mkdir(parents=True)
    shutil.copy(one_root / "ckpt" / "12.ckpt", resumed / "ckpt")  # inside epoch 1, taken on one device
    done = train(SCRIPT, dataset, resumed, "log.jsonl", "--devices", "2", "--workers", "2", "--resume", "12.ckpt")
    assert done.returncode == 0, done.stderr[-3000:]
    _two_ranks_match(resumed, one[12:])
