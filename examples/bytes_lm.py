"""The model and batches shared by the framework examples: a next-byte bigram model, so the examples stay about data.

Kept deliberately tiny (one 256x256 table): what the examples show is the loader under a framework,
its plan and its resume, not modelling.
"""

from __future__ import annotations

import argparse

import torch

WINDOW = 128  # bytes a document contributes to a batch


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    """Each document's first WINDOW+1 bytes as (input, next byte) pairs; shorter documents padded and ignored."""
    x = torch.zeros(len(rows), WINDOW, dtype=torch.long)
    y = torch.full((len(rows), WINDOW), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        b = torch.tensor(list(row["text"].encode("utf-8")[: WINDOW + 1]), dtype=torch.long)
        n = max(len(b) - 1, 0)
        x[i, :n], y[i, :n] = b[:n], b[1 : n + 1]
    return {"input_ids": x, "labels": y, "cluster": torch.tensor([int(r["cluster"]) for r in rows])}


class Bigram(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(256, 256)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, **_: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.table(input_ids)
        return {"loss": torch.nn.functional.cross_entropy(logits.view(-1, 256), labels.view(-1), ignore_index=-100)}


def example_args(doc: str) -> argparse.Namespace:
    """DATASET OUT [--stop-at N] [--workers W]: what both framework examples take."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("out")
    p.add_argument("--stop-at", type=int, default=-1, help="stop after this many steps (to resume later)")
    p.add_argument("--workers", type=int, default=2)
    return p.parse_args()
