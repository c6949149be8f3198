"""A run's budget and its plan as plain data: shared by the reader, ``streamclip plan`` and the benchmarks."""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any, Mapping

import numpy as np

from streamclip.errors import ConfigError
from streamclip.manifest import Manifest
from streamclip.plan import PlanSummary, num_segments

BYTES_PER_TOKEN = 4.0  # rough English BPE rate; only used for the "estimated tokens" column


_BUDGET_HINTS = {
    "total_samples": "the training budget in samples (--total-samples)",
    "epochs": "the budget in epochs (--epochs)",
    "epoch_size": "samples per epoch (--epoch-size)",
}


def _check_count(value: object, name: str) -> int | None:
    """``value`` as an int >= 1 (None passes through), or a ConfigError that blames ``name``."""
    if value is None:
        return None
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1 ({_BUDGET_HINTS[name]}), got {name}={value!r}")
    return int(value)


# Stock StreamingDataset's epoch_size abbreviations (streaming.base.util.number_abbrev_to_int, which
# cannot be imported here: streaming imports torch, and the core must not).
_ABBREVIATIONS = {"k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


def parse_epoch_size(value: object) -> int | None:
    """``epoch_size`` as stock StreamingDataset reads it: an int, a string of digits, or a number with a
    suffix k/m/b/t (any case, spaces around ignored): ``"100k"`` is 100,000, ``"1.5m"`` 1,500,000.

    A suffixed number is computed as stock computes it (``int(float(number) * unit)``), so the same
    string gives the same epoch size here and in stock. Unlike stock, a float must be whole (stock
    truncates 1.5 to 1), and anything that is not a whole number >= 1 is refused, naming the value.
    """
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        samples = _parse_abbreviation(value)
        if samples < 1:
            raise ConfigError(f"epoch_size={value!r} means {samples} samples; an epoch needs at least 1 ({_BUDGET_HINTS['epoch_size']})")
        return samples
    return _check_count(value, "epoch_size")


def _parse_abbreviation(text: str) -> int:
    clean = text.lower().strip()
    try:
        if clean[-1:] in _ABBREVIATIONS:
            return int(float(clean[:-1]) * _ABBREVIATIONS[clean[-1]])
        if clean.isdigit():
            return int(clean)
    except (ValueError, OverflowError):
        pass
    raise ConfigError(
        f"epoch_size must be a whole number >= 1 or a string such as '5000', '100k', '1.5m', '2b' "
        f"(suffixes: {', '.join(_ABBREVIATIONS)}), got epoch_size={text!r}"
    )


def resolve_budget(num_documents: int, *, total_samples: int | None, epochs: int | None,
                   epoch_size: int | str | None) -> tuple[int, int]:
    """``(total_samples, epoch_size)`` from what the user gave; an epoch defaults to one corpus' worth of draws.

    Every epoch of a StreamingDataset has the same size, so the budget must be a whole number of epochs.
    Each argument is checked on its own first, so an error blames the one that is wrong. ``epoch_size``
    also takes stock's abbreviations (``"100k"``, see ``parse_epoch_size``).
    """
    total_samples = _check_count(total_samples, "total_samples")
    epochs = _check_count(epochs, "epochs")
    epoch_size = parse_epoch_size(epoch_size)
    if total_samples is not None and epochs is not None:
        raise ConfigError(f"give total_samples or epochs, not both (got {total_samples=}, {epochs=})")
    size = epoch_size if epoch_size is not None else num_documents
    if total_samples is None:
        return (1 if epochs is None else epochs) * size, size
    if epoch_size is None and total_samples < size:
        return total_samples, total_samples
    if total_samples % size:
        segments = num_segments(total_samples, size)
        raise ConfigError(
            f"total_samples={total_samples} is not a multiple of epoch_size={size}: every epoch of a StreamingDataset "
            f"has the same size. Use total_samples={_choices(segments, size)}, or an epoch_size that divides it"
        )
    return total_samples, size


def plan_report(manifest: Manifest, summaries: Mapping[str, PlanSummary], *, epoch_size: int) -> dict[str, Any]:
    """Per-strategy and per-cluster figures of whole runs, as JSON-able data."""
    bytes_per_doc = manifest.cluster_bytes / manifest.cluster_sizes
    first = next(iter(summaries.values()))
    total = first.schedule.total_samples
    strategies = {}
    for name, s in summaries.items():
        knocked = np.isfinite(s.knockout_fraction)
        strategies[name] = {
            "strategy": s.schedule.strategy.to_dict(),
            "unique_documents_seen": s.total_unique_seen,
            "unique_fraction": s.total_unique_seen / manifest.num_documents,
            "max_repeats": int(s.passes.max()),
            "clusters_knocked_out": int(knocked.sum()),
            "estimated_tokens": int(float(s.draws @ bytes_per_doc) / BYTES_PER_TOKEN),
            "per_cluster": [
                {"id": k, "size": int(s.sizes[k]), "draws": int(s.draws[k]), "share": float(s.share[k]), "max_repeats": int(s.passes[k]),
                 "knockout_fraction": float(s.knockout_fraction[k]) if knocked[k] else None}
                for k in range(len(s.sizes))
            ],
        }
    return {
        "location": manifest.location, "documents": manifest.num_documents, "clusters": manifest.num_clusters,
        "total_samples": total, "epoch_size": epoch_size, "epochs": math.ceil(total / epoch_size), "strategies": strategies,
    }


def check_weights_fit(strategy: object, location: str, manifest: Manifest) -> None:
    """Refuse a ``Weighted`` loaded from a ``weights.json`` of another dataset (see ``check_made_for``).

    The clustering fingerprint reads ``centroids.npy``; it is computed only when such weights are given."""
    from streamclip.manifest import clustering_fingerprint
    from streamclip.plan.strategies import check_made_for, weighted_parts

    if not any(part.made_for is not None for part in weighted_parts(strategy)):
        return
    check_made_for(strategy, dataset=manifest.fingerprint(), clustering=clustering_fingerprint(location, manifest), location=location)


def _choices(segments: int, size: int) -> str:
    """The whole-epoch totals around a budget of ``segments`` epochs, the last one partial (one, below one epoch)."""
    return f"{size}" if segments == 1 else f"{(segments - 1) * size} or {segments * size}"
