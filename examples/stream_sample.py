"""Stream a few batches of a streamclip dataset with ClusterClip, checkpoint, and resume.

    python examples/stream_sample.py DATASET

What a training loop does: a fresh ClusterClipDataset per DataLoader, a StreamingDataLoader
whose state_dict() is saved with the model, and load_state_dict() on a fresh dataset to resume.
"""

from __future__ import annotations

import sys
from collections import Counter

from streaming import StreamingDataLoader

from streamclip.readers import ClusterClipDataset


def collate(batch: list[dict]) -> dict[str, list]:
    # Dict-of-lists batches: StreamingDataLoader counts samples by the length of the first value.
    return {"text": [s["text"] for s in batch], "cluster": [int(s["cluster"]) for s in batch]}


def make_loader(dataset: str) -> tuple[ClusterClipDataset, StreamingDataLoader]:
    ds = ClusterClipDataset(local=dataset, strategy="clusterclip", strategy_params={"clip": 4}, epochs=2, batch_size=32, seed=17)
    return ds, StreamingDataLoader(ds, batch_size=32, num_workers=2, collate_fn=collate)


def main(dataset: str) -> None:
    ds, loader = make_loader(dataset)
    print(f"{ds.manifest.num_documents} documents in {ds.manifest.num_clusters} clusters; "
          f"plan {ds.fingerprint}: {ds.total_samples} samples in {ds.num_epochs} epochs of {ds.epoch_size}")
    seen: Counter[int] = Counter()
    for step, batch in enumerate(loader):
        seen.update(batch["cluster"])
        if step == 9:
            break
    checkpoint = loader.state_dict()
    print(f"after 10 batches: checkpoint {checkpoint}")
    print(f"clusters in those batches: {len(seen)} distinct, most common {seen.most_common(3)}")
    del loader, ds
    ds, loader = make_loader(dataset)  # a fresh dataset, as after a restart
    ds.load_state_dict(checkpoint)
    rest = sum(len(b["text"]) for b in loader)
    print(f"resumed: {rest} more samples to the end of epoch 0 ({10 * 32 + rest} = epoch size {ds.epoch_size} rounded up to whole batches)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
