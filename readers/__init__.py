"""Readers: the StreamingDataset subclass that samples a streamclip dataset by plan."""

from streamclip.readers.dataset import ClusterClipDataset, plan_fingerprint, resolve_budget

__all__ = ["ClusterClipDataset", "plan_fingerprint", "resolve_budget"]
