"""Where a resumed run starts: the one place the epoch semantics of frameworks are reconciled with stock's.

Stock streaming resumes a state saved on an epoch's last batch inside that finished epoch (its first
``iter()`` yields nothing); Lightning, the Hugging Face Trainer and torchdata take the first ``iter()``
after a resume as the next epoch. Both ``readers.lightning`` and ``readers.hf`` load states through here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["roll_over"]


def roll_over(dataset: Any, state: dict[str, Any]) -> dict[str, Any]:
    """``state``, moved to the start of the next epoch when it was taken at the end of one.

    An epoch is over once the samples yielded reach ``epoch_size``: stock pads an epoch by less than one
    global batch, so no state taken before its last batch gets there. The last epoch of the run is left
    as it is: there is no next one, and Lightning stops before iterating.
    """
    epoch, seen = state.get("epoch"), state.get("sample_in_epoch")
    size, epochs = getattr(dataset, "epoch_size", None), getattr(dataset, "num_epochs", None)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, seen, size, epochs)):
        return state  # not a state this loader can read: the dataset's own checks name the bad field
    if seen >= size and epoch + 1 < epochs:
        return {**state, "epoch": epoch + 1, "sample_in_epoch": 0}
    return state
