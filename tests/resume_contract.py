"""The one resume contract every ClusterClipDataset configuration must keep.

``assert_resumes_exactly`` runs an epoch uninterrupted, then the same epoch stopped after ``midpoint``
batches, checkpoints it from the main process (``StreamingDataLoader.state_dict()``, as a trainer does, also
with workers), loads the checkpoint into a fresh dataset and resumes, possibly with another worker count:
what the resumed run yields must be exactly the rest of the uninterrupted epoch, nothing skipped or repeated.
Global batches are compared as multisets; with no worker on either side, in order (stock streaming keeps
the order inside a batch only for one layout).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable
from typing import Any

from streaming import StreamingDataLoader

from streamclip.readers import ClusterClipDataset

MakeDataset = Callable[..., ClusterClipDataset]


def texts(batch: list[dict]) -> dict[str, list[str]]:
    """Dict-of-lists batches: StreamingDataLoader counts samples by the length of the first value."""
    return {"text": [s["text"] for s in batch]}


def _loader(ds: ClusterClipDataset, workers: int) -> StreamingDataLoader:
    return StreamingDataLoader(ds, batch_size=ds.batch_size, num_workers=workers, collate_fn=texts)


def _fresh(make_dataset: MakeDataset, cache: Any, state: dict | None) -> ClusterClipDataset:
    # Finalise earlier datasets first: streaming unlinks shared memory by name when a dataset is collected,
    # and a late collection can unlink the blocks of a new dataset reusing the prefix (a checkpoint is then ignored).
    gc.collect()
    ds = make_dataset(cache=cache)
    if state is not None:
        ds.load_state_dict(state)
    return ds


def epoch_start(make_dataset: MakeDataset, epoch: int, cache: Any) -> dict | None:
    """The checkpoint of the start of ``epoch`` (None for epoch 0): what a run that finished epoch ``epoch - 1`` saves."""
    if epoch == 0:
        return None
    state = _fresh(make_dataset, cache, None).state_dict(0, True)
    return {**state, "epoch": epoch, "sample_in_epoch": 0}


def read_epoch(make_dataset: MakeDataset, epoch: int, cache: Any, workers: int = 0) -> list[list[str]]:
    """Every batch of ``epoch``, read without interruption by a fresh dataset."""
    ds = _fresh(make_dataset, cache, epoch_start(make_dataset, epoch, cache))
    return [batch["text"] for batch in _loader(ds, workers)]


def _same(got: list[list[str]], want: list[list[str]], *, ordered: bool, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} batches, expected {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        if ordered:
            assert a == b, f"{what}: batch {i} differs (in order)"
        else:
            assert Counter(a) == Counter(b), f"{what}: batch {i} holds other samples"


def assert_resumes_exactly(make_dataset: MakeDataset, epoch: int, midpoint: int, workers_before: int, workers_after: int,
                           cache: Any, *, full: list[list[str]] | None = None) -> None:
    """Stop ``epoch`` after ``midpoint`` batches with ``workers_before`` workers, checkpoint from the main process,
    resume a fresh dataset with ``workers_after``: the resumed batches are exactly the rest of the epoch.

    ``make_dataset(cache=cache)`` builds a fresh dataset (a new cache directory each time when ``cache`` is set);
    ``full``, the epoch read uninterrupted with no worker, may be passed when several cases share it.
    """
    full = read_epoch(make_dataset, epoch, cache) if full is None else full
    assert 0 < midpoint < len(full), f"midpoint={midpoint} must fall inside the epoch's {len(full)} batches"
    ds = _fresh(make_dataset, cache, epoch_start(make_dataset, epoch, cache))
    loader = _loader(ds, workers_before)
    batches = iter(loader)
    head = [next(batches)["text"] for _ in range(midpoint)]
    state = loader.state_dict()  # in the main process, as a trainer takes it: the case that hid review item 5
    # Go on to the end, as a trainer does after saving: the workers then exit before the fresh dataset is made
    # (an abandoned worker of the same cache directory may unlink the new dataset's resume state as it quits).
    assert sum(1 for _ in batches) == len(full) - midpoint
    del batches, loader, ds
    assert state["epoch"] == epoch and state["sample_in_epoch"] == midpoint * len(full[0])
    tail = [batch["text"] for batch in _loader(_fresh(make_dataset, cache, state), workers_after)]
    _same(head, full[:midpoint], ordered=workers_before == 0, what="before the checkpoint")
    _same(tail, full[midpoint:], ordered=workers_before == workers_after == 0, what="after resuming")
    drawn = Counter(t for b in head + tail for t in b)
    assert drawn == Counter(t for b in full for t in b), "the interrupted epoch skipped or repeated samples"
