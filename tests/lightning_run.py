"""One Lightning training run over a ClusterClip plan, for tests/test_lightning.py (a child process, so it can be SIGKILLed).

    python lightning_run.py DATASET CKPT_DIR LOG --workers N [--kill-at STEP] [--resume CKPT] [--seed S] [--loader stock] [--devices N]

Logs one JSON line per trained step (global step, Lightning's epoch, the batch's sample ids) and one at the
end (Lightning's final epoch and step); with ``--devices N`` (``ddp`` on CPU, gloo) each rank logs to LOG.rankR
with a per-device batch of 8/N. ``--kill-at`` SIGKILLs the process when that many steps are done
(just after the checkpoints of that step); ``--resume`` continues from the checkpoint file CKPT_DIR/CKPT. Checkpoints:
``{step}.ckpt`` every 4 steps (inside an epoch, or on its last batch) and ``end-{step}.ckpt`` at every epoch's end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import zlib

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from streaming import StreamingDataLoader

from streamclip.readers import ClusterClipDataset
from streamclip.readers.lightning import ClusterClipDataModule

BATCH, EPOCH, EPOCHS, EVERY = 8, 64, 3, 4  # 8 steps an epoch, a checkpoint every 4 steps (so on every epoch's last batch)


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {"ids": torch.tensor([zlib.crc32(r["text"].encode()) for r in rows], dtype=torch.int64)}


class Tiny(pl.LightningModule):
    def __init__(self, log: str) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.log_path = log

    def _write(self, record: dict) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def training_step(self, batch: dict[str, torch.Tensor], index: int) -> torch.Tensor:
        self._write({"step": self.global_step, "epoch": self.current_epoch, "ids": batch["ids"].tolist()})
        return (self.w - batch["ids"].float().mean() / 2**32).pow(2).sum()

    def on_train_end(self) -> None:
        self._write({"end_epoch": self.trainer.current_epoch, "end_step": self.global_step})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: object, index: int) -> None:
        if trainer.global_step == self.step:  # the checkpoint of this step is on disk: it ran at the end of the last batch
            os.kill(os.getpid(), signal.SIGKILL)


class StockModule(pl.LightningDataModule):
    """The stock loader, to show what LightningLoader fixes."""

    def __init__(self, dataset: dict, workers: int) -> None:
        super().__init__()
        self.dataset, self.workers = dataset, workers

    def train_dataloader(self) -> StreamingDataLoader:
        return StreamingDataLoader(ClusterClipDataset(**self.dataset), batch_size=BATCH, collate_fn=collate, num_workers=self.workers)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("ckpt")
    p.add_argument("log")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--resume", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loader", choices=("lightning", "stock"), default="lightning")
    p.add_argument("--devices", type=int, default=1)
    args = p.parse_args()
    dataset = dict(local=args.dataset, strategy="clusterclip", strategy_params={"clip": 2}, epochs=EPOCHS, epoch_size=EPOCH,
                   seed=args.seed, batch_size=BATCH // args.devices, num_canonical_nodes=1)
    data = (ClusterClipDataModule(dataset, {"num_workers": args.workers}, collate_fn=collate) if args.loader == "lightning"
            else StockModule(dataset, args.workers))
    callbacks: list[Callback] = [ModelCheckpoint(dirpath=args.ckpt, filename="{step}", auto_insert_metric_name=False,
                                                 every_n_train_steps=EVERY, save_top_k=-1),
                                 ModelCheckpoint(dirpath=args.ckpt, filename="end-{step}", auto_insert_metric_name=False,
                                                 every_n_epochs=1, save_on_train_epoch_end=True, save_top_k=-1)]
    if args.kill_at is not None:
        callbacks.append(KillAt(args.kill_at))
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=args.devices, strategy="ddp" if args.devices > 1 else "auto", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks)
    ckpt = None if args.resume is None else os.path.join(args.ckpt, args.resume)
    log = args.log if args.devices == 1 else f"{args.log}.rank{os.environ.get('LOCAL_RANK', '0')}"
    trainer.fit(Tiny(log), datamodule=data, ckpt_path=ckpt)


if __name__ == "__main__":
    main()
