"""Exact resume under the Hugging Face ``Trainer``, without replaying the data already trained on.

On ``resume_from_checkpoint`` the Trainer skips the batches of the interrupted epoch by reading them again
(``skip_first_batches``): on a streamed dataset that is every sample since the epoch began, hours on a
large run, and streaming's own position is lost. ``StreamclipResumeCallback`` instead stores the
dataset's position in every checkpoint folder and loads it into the dataset before the Trainer's first
``iter()``, with the Trainer's skip turned off (``ignore_data_skip=True``, which it insists on). A state
taken on an epoch's last batch starts the next epoch, as the Trainer counts epochs (``epochs.roll_over``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from streamclip.errors import ConfigError, ResumeMismatch
from streamclip.readers.dataset import ClusterClipDataset
from streamclip.readers.epochs import roll_over

try:
    from transformers import TrainerCallback
except ImportError:
    raise ConfigError("streamclip.readers.hf needs transformers and accelerate: pip install 'streamclip[hf]'") from None

__all__ = ["STATE_FILE", "StreamclipResumeCallback"]

STATE_FILE = "streamclip_loader.json"


class StreamclipResumeCallback(TrainerCallback):
    """Pass ``callbacks=[StreamclipResumeCallback(train_dataset)]`` and ``TrainingArguments(ignore_data_skip=True)``.

    The position saved is the samples trained in the current epoch (steps x per-device batch x
    gradient accumulation x processes), counted by the callback rather than read from the loader, which
    may have fetched ahead. Checkpoints are found where the Trainer writes them,
    ``output_dir/checkpoint-STEP``.
    """

    def __init__(self, dataset: ClusterClipDataset) -> None:
        if not isinstance(dataset, ClusterClipDataset):
            raise ConfigError(f"StreamclipResumeCallback needs the ClusterClipDataset given to the Trainer, got {type(dataset).__name__}")
        self.dataset = dataset
        self.samples_in_epoch, self.epoch_over = 0, False

    def _global_batch(self, args: Any) -> int:
        return int(args.per_device_train_batch_size) * int(args.gradient_accumulation_steps) * int(args.world_size)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not args.ignore_data_skip:
            raise ConfigError("StreamclipResumeCallback: set TrainingArguments(ignore_data_skip=True); the Trainer's own skip would "
                              "replay every batch of the interrupted epoch and then skip past the restored position")
        self.samples_in_epoch, self.epoch_over = 0, False
        if state.global_step == 0:
            return
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}", STATE_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except FileNotFoundError:
            raise ResumeMismatch(f"{path}: missing; this checkpoint was not saved with StreamclipResumeCallback, so the data position is unknown") from None
        except ValueError as e:
            raise ResumeMismatch(f"{path}: not JSON ({e}); the checkpoint is damaged, resume from another one") from None
        state_now = roll_over(self.dataset, saved)
        self.dataset.load_state_dict(state_now)
        self.samples_in_epoch = int(state_now["sample_in_epoch"])

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # an epoch-end checkpoint is saved after this hook: it must still read as the end of this epoch
        self.epoch_over = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.epoch_over:
            self.samples_in_epoch, self.epoch_over = 0, False
        self.samples_in_epoch += self._global_batch(args)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if not os.path.isdir(folder) or not state.is_world_process_zero:
            return
        position = self.dataset.state_dict(self.samples_in_epoch, True)
        tmp = os.path.join(folder, STATE_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(position, f)
        os.replace(tmp, os.path.join(folder, STATE_FILE))
