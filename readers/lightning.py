"""Exact resume under PyTorch Lightning: a loader with the epoch semantics Lightning expects, and a data module.

Lightning saves the train loader's ``state_dict()`` in every checkpoint and loads it into the new loader
before the first ``iter()``, which it takes as the start of its next epoch (as torchdata's
``StatefulDataLoader`` does). Stock streaming disagrees at one point: a state saved on the last batch of an
epoch resumes *inside* that finished epoch, so the first ``iter()`` yields nothing and only the second
starts the next epoch. Lightning then trains an empty epoch, every later streaming epoch runs one
Lightning epoch late, and the plan's last epoch is never trained, with exit code 0.
``LightningLoader`` rolls such a state over to the start of the next epoch when it is loaded; every other
state (mid-epoch, any worker count before and after) is stock's.

Lightning (2.6) also loads the loader's state only when it believes it is restarting inside an epoch.
It does not after a checkpoint taken at an epoch's end (``every_n_epochs``), nor in a run resumed from
an epoch's last batch and checkpointed again (its epoch counters skip the next epoch's start, so the
next resume looks like a fresh epoch). A fresh streaming dataset then starts the plan again at epoch 0.
``ClusterClipDataModule`` therefore saves the loader's state as its own and loads it into every loader
it builds, whatever Lightning decides. ``ClusterClipDataset`` itself keeps stock semantics, for loops
that count their own epochs.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from streaming import StreamingDataLoader

from streamclip.errors import ConfigError
from streamclip.readers.dataset import ClusterClipDataset
from streamclip.readers.epochs import roll_over

try:
    import pytorch_lightning as pl
except ImportError:  # the loader itself needs no Lightning; the data module does
    raise ConfigError("streamclip.readers.lightning needs PyTorch Lightning: pip install 'streamclip[lightning]'") from None

__all__ = ["ClusterClipDataModule", "LightningLoader", "export_world"]


class LightningLoader(StreamingDataLoader):
    """``StreamingDataLoader`` (same arguments) to return from ``train_dataloader()``: resumes as Lightning expects."""

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        super().load_state_dict(roll_over(self.dataset, obj))


def export_world(trainer: Any) -> None:
    """Set the variables streaming reads to place this process (``RANK``, ``WORLD_SIZE``, ``LOCAL_*``) from ``trainer``.

    Streaming partitions an epoch by these when the dataset is built; under Lightning's own launchers
    (``ddp`` spawned from a script, CPU or GPU) they are not all set, and each process would read the
    whole epoch as if it were alone.
    """
    world = {"RANK": trainer.global_rank, "WORLD_SIZE": trainer.world_size, "LOCAL_RANK": trainer.local_rank,
             "LOCAL_WORLD_SIZE": trainer.num_devices}
    for name, value in world.items():
        os.environ[name] = str(int(value))


class ClusterClipDataModule(pl.LightningDataModule):
    """Builds a fresh ``ClusterClipDataset`` and ``LightningLoader`` for every ``train_dataloader()`` call.

    ``dataset`` holds ``ClusterClipDataset`` keywords (``local``, ``strategy``, ``epochs``, ``batch_size``...);
    ``loader`` holds DataLoader keywords (``num_workers``, ``collate_fn``...). The dataset is built
    after Lightning has placed this process, so under ``ddp`` every rank reads its part of the same
    global batches as one device would (give ``batch_size`` per device, as with stock streaming).
    """

    def __init__(self, dataset: dict[str, Any], loader: dict[str, Any] | None = None,
                 collate_fn: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        super().__init__()
        if "batch_size" not in dataset:
            raise ConfigError("ClusterClipDataModule(dataset=...) needs batch_size (per device): the dataset and the loader must agree on it")
        self.dataset_kwargs, self.loader_kwargs, self.collate_fn = dict(dataset), dict(loader or {}), collate_fn
        self._loader: LightningLoader | None = None
        self._resume: dict[str, Any] | None = None

    def train_dataloader(self) -> LightningLoader:
        if self.trainer is not None:
            export_world(self.trainer)
        ds = ClusterClipDataset(**self.dataset_kwargs)
        loader = LightningLoader(ds, batch_size=self.dataset_kwargs["batch_size"], collate_fn=self.collate_fn, **self.loader_kwargs)
        if self._resume is not None:  # Lightning may load the same state again: loading is idempotent
            loader.load_state_dict(self._resume)
            self._resume = None
        self._loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        """The train loader's state, saved in every checkpoint under this module's name."""
        return {} if self._loader is None else {"loader": self._loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = state_dict.get("loader")
