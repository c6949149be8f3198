"""The picture of a search: did the predictor rank well, and how far did the mixture move from the corpus?"""

from __future__ import annotations

import os

import numpy as np

from streamclip.mixture.search import MixtureResult

__all__ = ["plot_search"]


def plot_search(result: MixtureResult, sizes: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Left: measured vs predicted score of every run of rounds 2+ (round 1 has no prediction), best run marked.
    Right: the chosen weights beside the size-proportional ones (and the target documents' shares when
    they were placed in the clusters), clusters largest first."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    left, right = fig.subplots(1, 2)
    rounds = sorted({h["round"] for h in result.history})
    for r in rounds:
        runs = [h for h in result.history if h["round"] == r]
        if r == 0:
            left.axhspan(min(h["score"] for h in runs), max(h["score"] for h in runs), color="0.9", label="round 1 scores (no prediction)")
            continue
        left.scatter([h["predicted"] for h in runs], [h["score"] for h in runs], s=18, label=f"round {r + 1}")
    left.axhline(result.score, color="k", linewidth=1, linestyle="--", label=f"best measured {result.score:.4f}")
    left.set(title="proxy runs: measured vs predicted", xlabel="predicted score", ylabel="measured score")
    left.legend(fontsize="small")
    order = np.argsort(-np.asarray(sizes), kind="stable")
    prior = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)
    x = np.arange(len(order))
    right.bar(x - 0.2, prior[order], width=0.4, label="size-proportional", color="0.6")
    right.bar(x + 0.2, np.asarray(result.weights)[order], width=0.4, label="found", color="C1")
    if result.target is not None:  # where the target documents fall: the search should move weight toward these
        placed = np.asarray(result.target["per_cluster"], dtype=np.float64)
        right.plot(x, (placed / placed.sum())[order], "k.", markersize=5, label="target documents")
    right.set(title="cluster weights", xlabel="clusters, largest first", ylabel="share of draws")
    if len(order) > 40:
        right.set_yscale("log")
    right.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
