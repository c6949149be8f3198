"""One Hugging Face Trainer run over a ClusterClip plan, for tests/test_hf.py (a child process, so it can be SIGKILLed).

    python hf_run.py DATASET OUTPUT_DIR LOG --workers N [--kill-at STEP] [--resume CHECKPOINT] [--save steps|epoch] [--seed S] [--data-skip]

Logs one JSON line per trained step (step, the Trainer's epoch, the batch's sample ids) and one at the
end (the Trainer's final epoch and step); ``--kill-at`` SIGKILLs the process when that many steps are
done (after that step's checkpoint); ``--resume`` continues from ``OUTPUT_DIR/CHECKPOINT``. ``--save steps``
checkpoints every 4 steps (inside an epoch or on its last step), ``--save epoch`` at every epoch's end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import zlib

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from streamclip.readers import ClusterClipDataset
from streamclip.readers.hf import StreamclipResumeCallback

BATCH, EPOCH, EPOCHS, EVERY = 8, 64, 3, 4


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {"ids": torch.tensor([zlib.crc32(r["text"].encode()) for r in rows], dtype=torch.int64)}


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.last: list[int] = []

    def forward(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        self.last = ids.tolist()
        return {"loss": (self.w - ids.float().mean() / 2**32).pow(2).sum()}


class Record(TrainerCallback):
    def __init__(self, log: str, model: Tiny, kill_at: int | None) -> None:
        self.log, self.model, self.kill_at = log, model, kill_at

    def _write(self, record: dict) -> None:
        with open(self.log, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self._write({"step": state.global_step - 1, "epoch": math.ceil(round(state.epoch, 6)) - 1, "ids": self.model.last})

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        if state.global_step == self.kill_at:  # that step's checkpoint is on disk
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_end(self, args, state, control, **kwargs) -> None:
        self._write({"end_epoch": round(state.epoch, 6), "end_step": state.global_step})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("output")
    p.add_argument("log")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--resume", default=None)
    p.add_argument("--save", choices=("steps", "epoch"), default="steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-skip", action="store_true", help="leave the Trainer's replaying skip on (refused)")
    args = p.parse_args()
    ds = ClusterClipDataset(local=args.dataset, strategy="clusterclip", strategy_params={"clip": 2}, epochs=EPOCHS, epoch_size=EPOCH,
                            seed=args.seed, batch_size=BATCH, num_canonical_nodes=1)
    model = Tiny()
    training = TrainingArguments(output_dir=args.output, per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS, save_steps=EVERY,
                                 save_strategy=args.save, learning_rate=0.1, optim="sgd", lr_scheduler_type="constant", report_to=[],
                                 logging_strategy="no", dataloader_num_workers=args.workers, ignore_data_skip=not args.data_skip,
                                 use_cpu=True, save_safetensors=False, remove_unused_columns=False, disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=training, train_dataset=ds, data_collator=collate,
                      callbacks=[StreamclipResumeCallback(ds), Record(args.log, model, args.kill_at)])
    trainer.train(resume_from_checkpoint=None if args.resume is None else os.path.join(args.output, args.resume))


if __name__ == "__main__":
    main()
