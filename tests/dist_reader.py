"""Run under torchrun by test_reader: each rank reads one epoch and writes its batches' texts."""

import json
import sys

import torch.distributed as dist
from torch.utils.data import DataLoader

from streamclip.readers import ClusterClipDataset


def main() -> None:
    dataset, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ds = ClusterClipDataset(local=dataset, strategy="clusterclip", strategy_params={"clip": 2}, epochs=1, epoch_size=640, batch_size=8, num_canonical_nodes=2)
    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=lambda b: b)
    batches = [[s["text"] for s in batch] for batch in loader]
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(batches, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
