"""What a plan will do, before any training: per-cluster draws, repeats, knock-outs, and a picture.

Used by the CLI's ``plan`` command to compare strategies on a dataset's cluster sizes without
reading a sample. matplotlib is imported only inside ``plot_plan`` (an optional extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError
from streamclip.plan.counts import counts_at
from streamclip.plan.schedule import RunSchedule
from streamclip.plan.segment import ClusterLayout

__all__ = ["PlanSummary", "plot_plan", "summarize"]


@dataclass(frozen=True, slots=True, eq=False)
class PlanSummary:
    """Per-cluster figures of a whole run (arrays are int64[K] or float64[K] in cluster-id order)."""

    schedule: RunSchedule
    sizes: NDArray[np.int64]
    draws: NDArray[np.int64]  # planned draws over the run (sum == total_samples)
    passes: NDArray[np.int64]  # ceil(draws / size): the most times any of its documents is seen
    knockout_fraction: NDArray[np.float64]  # fraction of training when the cap was hit; inf if never
    share: NDArray[np.float64]  # draws / total_samples
    unique_seen: NDArray[np.int64]  # documents seen at least once: min(draws, size)

    @property
    def total_unique_seen(self) -> int:
        return int(self.unique_seen.sum())

    def repeat_histogram(self) -> NDArray[np.int64]:
        """int64[R+1]: how many documents are seen r times, r = 0..R (passes are full except the last)."""
        full, partial = np.divmod(self.draws, self.sizes)
        counts = np.zeros(int(self.passes.max(initial=0)) + 2, dtype=np.int64)
        np.add.at(counts, full, self.sizes - partial)
        np.add.at(counts, full + 1, partial)
        return np.trim_zeros(counts, "b")


def summarize(layout_or_sizes: Union[ClusterLayout, NDArray[np.int64]], schedule: RunSchedule) -> PlanSummary:
    """Summarise the whole run of ``schedule`` on a layout (or just its cluster sizes)."""
    sizes = layout_or_sizes.cluster_sizes if isinstance(layout_or_sizes, ClusterLayout) else np.asarray(layout_or_sizes)
    if not np.array_equal(sizes, schedule.sizes):
        raise ConfigError("the schedule was built for other cluster sizes than the ones given to summarize")
    total = schedule.total_samples
    draws = counts_at(schedule, total)
    return PlanSummary(
        schedule=schedule,
        sizes=schedule.sizes,
        draws=draws,
        passes=-(-draws // schedule.sizes),
        knockout_fraction=schedule.knockout_times() / total,
        share=draws / total,
        unique_seen=np.minimum(draws, schedule.sizes),
    )


def _shares_over_time(schedule: RunSchedule, points: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Fraction of training at interval midpoints, and float64[points, K] instantaneous shares."""
    grid = np.linspace(0.0, schedule.total_samples, points + 1)
    draws = np.stack([schedule.draws(t) for t in grid])
    shares = np.diff(draws, axis=0) / np.diff(grid)[:, None]
    return (grid[:-1] + grid[1:]) / 2 / schedule.total_samples, shares


def plot_plan(summaries: Mapping[str, PlanSummary], path: str | Path, *, top: int = 8) -> Path:
    """Write a PNG: cluster shares over training for the first strategy (``top`` clusters plus
    "other", stacked), and the per-document repeat distribution of every strategy."""
    if not summaries:
        raise ConfigError("plot_plan needs at least one named PlanSummary")
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend and global state alone

    names = list(summaries)
    first = summaries[names[0]]
    when, shares = _shares_over_time(first.schedule, points=200)
    biggest = np.argsort(-first.draws, kind="stable")[:top]
    layers = [shares[:, k] for k in biggest]
    labels = [f"cluster {k}" for k in biggest]
    if first.schedule.num_clusters > len(biggest):
        layers.append(shares.sum(axis=1) - np.sum(layers, axis=0))
        labels.append("other")

    fig = Figure(figsize=(12, 4.5))
    left, right = fig.subplots(1, 2)
    left.stackplot(when, layers, labels=labels)
    left.set(title=f"Cluster shares over training: {names[0]}", xlabel="fraction of training",
             ylabel="share of draws", xlim=(0, 1), ylim=(0, 1))
    left.legend(loc="upper right", fontsize="small")

    histograms = {name: s.repeat_histogram() for name, s in summaries.items()}
    width = 0.8 / len(names)
    for i, (name, hist) in enumerate(histograms.items()):
        repeats = np.arange(len(hist))
        right.bar(repeats + (i - (len(names) - 1) / 2) * width, hist / hist.sum(), width=width, label=name)
    right.set(title="Times each document is seen", xlabel="repeats per document", ylabel="fraction of documents")
    right.legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out
