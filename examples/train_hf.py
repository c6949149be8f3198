"""Train with the Hugging Face Trainer on a ClusterClip plan, stop, and resume without replaying a batch.

    python examples/train_hf.py DATASET OUT --stop-at 30   # trains 30 steps, checkpointing every 10
    python examples/train_hf.py DATASET OUT                # resumes from OUT's latest checkpoint to the plan's end

StreamclipResumeCallback saves the dataset's position in every checkpoint folder and loads it on
``resume_from_checkpoint``; ``ignore_data_skip=True`` turns off the Trainer's own skip, which would read
every batch of the interrupted epoch again. Needs ``pip install 'streamclip[hf]'``.
"""

from __future__ import annotations

import glob
import os

from transformers import Trainer, TrainingArguments

from bytes_lm import Bigram, collate, example_args
from streamclip.readers import ClusterClipDataset
from streamclip.readers.hf import StreamclipResumeCallback


def main() -> None:
    args = example_args(__doc__)
    ds = ClusterClipDataset(local=args.dataset, strategy="clusterclip", strategy_params={"clip": 4}, epochs=2, epoch_size=1024,
                            batch_size=32, seed=17)
    training = TrainingArguments(
        output_dir=args.out, per_device_train_batch_size=32, num_train_epochs=2, max_steps=args.stop_at,
        save_strategy="steps", save_steps=10, learning_rate=0.05, lr_scheduler_type="constant", report_to=[],
        logging_steps=10, dataloader_num_workers=args.workers, ignore_data_skip=True, use_cpu=True,
        remove_unused_columns=False, disable_tqdm=True)
    trainer = Trainer(model=Bigram(), args=training, train_dataset=ds, data_collator=collate,
                      callbacks=[StreamclipResumeCallback(ds)])
    resume = bool(glob.glob(os.path.join(args.out, "checkpoint-*")))
    trainer.train(resume_from_checkpoint=resume or None)
    print(f"{'resumed' if resume else 'started'}; now at step {trainer.state.global_step}, epoch {trainer.state.epoch:.2f}")


if __name__ == "__main__":
    main()
