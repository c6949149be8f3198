"""Readers: the StreamingDataset subclass that samples a streamclip dataset by plan."""

from streamclip.planning import resolve_budget
from streamclip.readers.dataset import ClusterClipDataset, plan_fingerprint
from streamclip.readers.mixture_proxy import ProxyObjective
from streamclip.readers.proxy import ProxyConfig, ProxyResult, evaluate_proxy, score_texts, train_proxy

__all__ = ["ClusterClipDataset", "ProxyConfig", "ProxyObjective", "ProxyResult", "evaluate_proxy", "plan_fingerprint", "resolve_budget", "score_texts", "train_proxy"]
