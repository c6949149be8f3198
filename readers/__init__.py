"""Readers: the StreamingDataset subclass that samples a streamclip dataset by plan."""

from streamclip.planning import resolve_budget
from streamclip.readers.dataset import ClusterClipDataset, plan_fingerprint

__all__ = ["ClusterClipDataset", "plan_fingerprint", "resolve_budget"]
