"""Exact resume under the Hugging Face Trainer, with no batch replayed (tests/hf_run.py in child processes).

The same plan and kill points as tests/test_lightning.py: a run SIGKILLed right after a checkpoint and
resumed with ``resume_from_checkpoint`` in a new process, on another worker count, logs exactly what the
uninterrupted run logs (each step's samples and the Trainer's epoch) and ends on the same epoch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("accelerate")

from conftest import convert_docs  # noqa: E402
from framework_runs import full_run, killed_and_resumed, read_log, run_example, train  # noqa: E402

SCRIPT = "hf_run.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_docs) -> Path:
    return convert_docs(tmp_path_factory.mktemp("hf"), sample_docs[:300], clusters=4)


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> tuple[list[dict], Path]:
    root = tmp_path_factory.mktemp("full")
    return full_run(SCRIPT, dataset, root, end_epoch=3.0), root


def test_a_run_killed_at_every_kill_point_and_resumed_each_time_trains_what_the_uninterrupted_run_trains(dataset, tmp_path, uninterrupted):
    # inside epoch 0; on epoch 0's last step; inside epoch 1 of a resumed run; at epoch 1's end (save_strategy="epoch")
    kills = [(4, "checkpoint-4"), (8, "checkpoint-8"), (12, "checkpoint-12"), (16, "checkpoint-16")]
    got = killed_and_resumed(SCRIPT, dataset, tmp_path, kills, extra={16: ("--save", "epoch")})
    assert got == uninterrupted[0]  # every step's samples and epoch, the final epoch


def test_a_checkpoint_of_another_plan_is_refused_before_training(dataset, uninterrupted):
    root = uninterrupted[1]  # its checkpoints are of seed 0
    other = train(SCRIPT, dataset, root, "other.jsonl", "--resume", "checkpoint-4", "--seed", "1")
    assert other.returncode != 0 and "ResumeMismatch" in other.stderr and "seed: found 0, expected 1" in other.stderr
    assert read_log(root / "other.jsonl") == []


def test_the_trainers_replaying_skip_is_refused(dataset, tmp_path):
    refused = train(SCRIPT, dataset, tmp_path, "log.jsonl", "--data-skip")
    assert refused.returncode != 0 and "ignore_data_skip=True" in refused.stderr
    assert read_log(tmp_path / "log.jsonl") == []


def test_the_example_stops_and_resumes_to_the_plans_end(sample_dataset, tmp_path):
    assert "started; now at step 30, epoch 0.94" in run_example("train_hf.py", sample_dataset, tmp_path, "--stop-at", "30")
    assert "resumed; now at step 64, epoch 2.00" in run_example("train_hf.py", sample_dataset, tmp_path)
