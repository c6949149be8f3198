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

__all__ = ["PlanPicture", "PlanSummary", "plan_picture", "plot_plan", "summarize"]


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


@dataclass(frozen=True, slots=True, eq=False)
class PlanPicture:
    """What ``plot_plan`` draws for one strategy, as data (so it can be checked without reading pixels).

    Rows are clusters sorted by size, largest first (row 0 on top); with more clusters than rows,
    each row sums ``row_bounds[r]..row_bounds[r+1]`` of that order.
    """

    edges: NDArray[np.float64]  # float64[C+1]: fraction of training at the column edges
    order: NDArray[np.int64]  # int64[K]: cluster ids, largest first (ties by id)
    row_bounds: NDArray[np.int64]  # int64[R+1]: rows as ranges of ``order``
    shares: NDArray[np.float64]  # float64[R, C]: each row's share of the draws in each column
    knockout_at: NDArray[np.float64]  # fraction of training at which each knocked-out cluster hit its cap
    knockout_row: NDArray[np.int64]  # the row of that cluster
    knockout_cluster: NDArray[np.int64]  # its id

    @property
    def clusters_per_row(self) -> float:
        return len(self.order) / (len(self.row_bounds) - 1)


def plan_picture(schedule: RunSchedule, *, columns: int = 200, max_rows: int = 400) -> PlanPicture:
    """Every cluster's share of the draws over training, and where each is knocked out.

    O(columns * K): the schedule is evaluated at the column edges only, never per sample.
    """
    if columns < 1 or max_rows < 1:
        raise ConfigError(f"columns and max_rows must be >= 1, got {columns=}, {max_rows=}")
    total = schedule.total_samples
    edges = np.linspace(0.0, float(total), columns + 1)
    draws = np.stack([schedule.draws(t) for t in edges])  # float64[C+1, K]
    shares = np.diff(draws, axis=0) / np.diff(edges)[:, None]  # float64[C, K]
    k = schedule.num_clusters
    order = np.lexsort((np.arange(k), -schedule.sizes))
    rows = min(k, max_rows)
    row_bounds = np.linspace(0, k, rows + 1).round().astype(np.int64)
    binned = np.add.reduceat(shares[:, order], row_bounds[:-1], axis=1).T  # float64[R, C]
    row_of_cluster = np.empty(k, dtype=np.int64)
    row_of_cluster[order] = np.searchsorted(row_bounds, np.arange(k), side="right") - 1
    times = schedule.knockout_times()
    knocked = np.flatnonzero(np.isfinite(times))
    return PlanPicture(
        edges=edges / total, order=order, row_bounds=row_bounds, shares=binned,
        knockout_at=times[knocked] / total, knockout_row=row_of_cluster[knocked], knockout_cluster=knocked,
    )


def plot_plan(summaries: Mapping[str, PlanSummary], path: str | Path, *, top: int = 8,
              size_px: tuple[int, int] | None = None, dpi: int = 100) -> Path:
    """Write a PNG that shows what each strategy does to every cluster, the tail included.

    One heatmap per strategy: x is training progress, y every cluster by size (largest on top;
    binned to at most 400 rows), colour its share of the draws on a log scale, black once it gets
    none, and a white dot where it hits its cap (knock-out). A last panel puts each cluster's mean
    repeats (draws / size) against its size. ``top`` largest clusters get their id on the y axis
    (when not binned). ``size_px`` is the image size (default grows with the number of strategies).
    """
    if not summaries:
        raise ConfigError("plot_plan needs at least one named PlanSummary")
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend and global state alone

    names = list(summaries)
    width, height = size_px if size_px is not None else (420 * len(names) + 520, 640)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(names) + 1, gridspec_kw={"width_ratios": [3] * len(names) + [2.4]})
    pictures = {name: plan_picture(summaries[name].schedule) for name in names}
    positive = np.concatenate([p.shares[p.shares > 0] for p in pictures.values()])
    norm = LogNorm(vmin=max(float(positive.min(initial=1.0)), 1e-12), vmax=float(positive.max(initial=1.0)))
    image = None
    for index, (ax, name) in enumerate(zip(axes, names)):
        image = _draw_heatmap(ax, name, pictures[name], summaries[name], norm, top, first=index == 0)
    fig.colorbar(image, ax=list(axes[:-1]), label="share of draws (log)", fraction=0.03, pad=0.01)
    _draw_repeats(axes[-1], summaries)
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    return out


def _draw_heatmap(ax, name: str, picture: PlanPicture, summary: PlanSummary, norm, top: int, *, first: bool):  # -> AxesImage
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="black", under="black")
    rows = len(picture.row_bounds) - 1
    masked = np.ma.masked_less_equal(picture.shares, 0.0)
    image = ax.imshow(masked, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm,
                      extent=(0.0, 1.0, rows, 0.0))
    ax.scatter(picture.knockout_at, picture.knockout_row + 0.5, s=9, c="white", edgecolors="black",
               linewidths=0.3, zorder=3, label="knock-out (cap reached)")
    k = len(picture.order)
    if rows < k:
        ylabel = f"{k} clusters by size, largest on top\n(binned: {rows} rows of ~{picture.clusters_per_row:.0f}, shares summed)"
    else:
        ylabel = f"{k} clusters by size, largest on top (ids)"
        shown = min(top, k)
        ax.set_yticks(np.arange(shown) + 0.5, [str(c) for c in picture.order[:shown]], fontsize="x-small")
    knocked = len(picture.knockout_cluster)
    ax.set(title=f"{name}: {knocked} of {k} knocked out, {summary.total_unique_seen / summary.sizes.sum():.0%} docs seen",
           xlabel="fraction of training", ylabel=ylabel if first else "", xlim=(0, 1), ylim=(rows, 0))
    ax.title.set_fontsize("small")
    if knocked:
        ax.legend(loc="lower left", fontsize="x-small", framealpha=0.7)
    return image


def _draw_repeats(ax, summaries: Mapping[str, PlanSummary]) -> None:
    for name, s in summaries.items():
        drawn = s.draws > 0  # a cluster never drawn has no place on a log axis
        ax.scatter(s.sizes[drawn], s.draws[drawn] / s.sizes[drawn], s=8, alpha=0.5, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(title="Mean repeats per document, by cluster", xlabel="cluster size (documents)",
           ylabel="draws / size (1 = each document once)")
    ax.title.set_fontsize("small")
    ax.legend(fontsize="x-small")
