"""Train under PyTorch Lightning on a ClusterClip plan, stop, and resume exactly where the plan was.

    python examples/train_lightning.py DATASET OUT --stop-at 30   # trains 30 steps, checkpointing every 10
    python examples/train_lightning.py DATASET OUT                # resumes from OUT/last.ckpt to the plan's end

ClusterClipDataModule builds a fresh dataset for every train loader and saves the loader's position in
every checkpoint, so Lightning's ``ckpt_path`` resumes the plan mid-epoch or at an epoch's end, on any
worker count. Needs ``pip install 'streamclip[lightning]'``.
"""

from __future__ import annotations

import os
from collections import Counter

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from bytes_lm import Bigram, collate, example_args
from streamclip.readers.lightning import ClusterClipDataModule


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = Bigram()
        self.seen: Counter[int] = Counter()

    def training_step(self, batch: dict[str, torch.Tensor], index: int) -> torch.Tensor:
        self.seen.update(batch["cluster"].tolist())
        return self.model(**batch)["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=0.05)


def main() -> None:
    args = example_args(__doc__)
    data = ClusterClipDataModule(
        dataset={"local": args.dataset, "strategy": "clusterclip", "strategy_params": {"clip": 4}, "epochs": 2,
                 "epoch_size": 1024, "batch_size": 32, "seed": 17},
        loader={"num_workers": args.workers}, collate_fn=collate)
    last = os.path.join(args.out, "last.ckpt")
    trainer = pl.Trainer(max_epochs=2, max_steps=args.stop_at, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=[ModelCheckpoint(dirpath=args.out, every_n_train_steps=10, save_last=True)])
    resume = last if os.path.exists(last) else None
    module = Module()
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    started = "resumed from " + resume if resume else "started"
    print(f"{started}; now at step {trainer.global_step} of 64; "
          f"clusters trained in this run: {len(module.seen)}, documents: {sum(module.seen.values())}")


if __name__ == "__main__":
    main()
