"""Super-clusters: fine clusters merged by Ward linkage on their centroids before a search.

The CLIMB recipe (``3_prune.py``) merges surviving clusters by Ward linkage on the centroids; a search
over fewer, coarser weights needs fewer proxy runs. The map is recorded so the weights found for the
super-clusters go back to every cluster, split by each member's share of the prior.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError

__all__ = ["expand", "ward_groups"]


def ward_groups(centroids: NDArray[np.floating], groups: int) -> NDArray[np.int64]:
    """int64[K]: the super-cluster of each cluster, numbered 0.. in order of each group's first cluster."""
    centroids = np.asarray(centroids, dtype=np.float64)
    if centroids.ndim != 2 or not 1 <= groups <= len(centroids):
        raise ConfigError(f"merge needs 1 <= groups <= clusters ({len(centroids)}), got {groups}")
    if groups == len(centroids):
        return np.arange(groups, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = fcluster(linkage(centroids, method="ward"), t=groups, criterion="maxclust")
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse].astype(np.int64)


def expand(group_weights: NDArray[np.float64], groups: NDArray[np.int64], prior: NDArray[np.float64]) -> NDArray[np.float64]:
    """float64[..., K]: each super-cluster's weight split among its clusters by their share of ``prior``."""
    totals = np.bincount(groups, weights=prior, minlength=int(groups.max()) + 1)
    return np.asarray(group_weights)[..., groups] * (prior / totals[groups])
