"""Helpers for reader tests: build datasets, run loaders, compare global batches."""

from __future__ import annotations

import gc
import threading
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from streamclip.readers import ClusterClipDataset


EPOCH = 640


def identity(batch: list[dict]) -> list[dict]:
    return batch


def columns(batch: list[dict]) -> dict[str, list]:
    """Dict-of-lists batches: the form StreamingDataLoader counts samples in (it reads len of the first value)."""
    return {"text": [s["text"] for s in batch], "cluster": [int(s["cluster"]) for s in batch]}


def make_dataset(path: Path | str, **kwargs: Any) -> ClusterClipDataset:
    # Finalise earlier datasets first: streaming unlinks shared memory by name when a dataset is collected,
    # and a late collection can unlink the blocks of a new dataset reusing the prefix (a checkpoint then is ignored).
    gc.collect()
    kwargs.setdefault("num_canonical_nodes", 2)
    kwargs.setdefault("batch_size", 16)
    # A multiple of num_canonical_nodes x global batch: stock streaming then pads nothing, so an epoch is exactly the plan.
    kwargs.setdefault("epoch_size", EPOCH)
    return ClusterClipDataset(local=str(path), **kwargs)


def global_batches(path: Path | str, *, num_workers: int = 0, epochs_to_read: int = 1, **kwargs: Any) -> list[list[str]]:
    """The texts of every batch of the next ``epochs_to_read`` epochs, read in this process (one rank)."""
    ds = make_dataset(path, **kwargs)
    loader = DataLoader(ds, batch_size=ds.batch_size, num_workers=num_workers, collate_fn=identity)
    out = []
    for _ in range(epochs_to_read):
        out.extend([s["text"] for s in batch] for batch in loader)
    return out


def as_sets(batches: list[list[str]]) -> list[frozenset]:
    """Global batches compared as multisets-by-position: streaming promises the batch, not the order inside it."""
    return [frozenset((t, b.count(t)) for t in b) for b in batches]


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj))


def within(seconds: float, fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn`` in a thread; its error (None if it returned), failing the test if it still runs after ``seconds``."""
    outcome: list[BaseException | None] = []

    def body() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 (handed to the test)
            outcome.append(e)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: the iterator hung"
    return outcome[0]
