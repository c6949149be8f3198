"""The built-in CLIMB proxy: a small ``train_proxy`` run per candidate mixture, scored on a target.

A candidate's weights become ``Weighted(weights, clip)`` over the train set; the score is held-out bits
per byte on the target: a list of clusters (scored on those clusters of the eval set) or a list of target
documents (scored directly). Lower is better, which is ``search``'s default.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError
from streamclip.plan import Weighted
from streamclip.readers.proxy import ProxyConfig, evaluate_proxy, score_texts, train_proxy

__all__ = ["ProxyObjective"]


class ProxyObjective:
    """``evaluate(weights) -> bits per byte`` for ``streamclip.mixture.search``.

    Every candidate trains from the same ``seed`` on ``tokens`` bytes, so two candidates differ only in
    their mixture. With ``work_dir`` each candidate checkpoints under a folder named by a hash of its
    weights: a search killed in the middle of a proxy run resumes that run where it stopped.
    ``plan_margin`` sizes each plan above its expected documents (``train_proxy``'s default is 0.3): a
    candidate that puts most weight on a few clusters draws few documents, whose total length varies
    more, and on the benchmark corpus such a plan ran out at 0.3; unread documents cost nothing.
    """

    def __init__(self, train: str, *, tokens: int, eval: str | None = None, target_clusters: Sequence[int] | None = None,
                 target_texts: Sequence[str] | None = None, seed: int = 0, clip: float | None = None,
                 model: ProxyConfig | None = None, work_dir: str | None = None, device: str | None = None,
                 threads: int | None = None, plan_margin: float = 1.0) -> None:
        if (target_clusters is None) == (target_texts is None):
            raise ConfigError("give the proxy one target: target_clusters (cluster ids of the eval set) or target_texts (documents)")
        if target_clusters is not None and eval is None:
            raise ConfigError("target_clusters are scored on an eval set: pass eval= (the eval output of streamclip split)")
        if target_texts is not None and not target_texts:
            raise ConfigError("target_texts is empty; give at least one target document")
        self.train, self.tokens, self.eval, self.seed, self.clip = train, tokens, eval, seed, clip
        self.target_clusters = None if target_clusters is None else [int(c) for c in target_clusters]
        self.target_texts = None if target_texts is None else list(target_texts)
        self.model, self.work_dir, self.device, self.threads = model, work_dir, device, threads
        self.plan_margin = plan_margin

    def __call__(self, weights: NDArray[np.float64]) -> float:
        values = np.asarray(weights, dtype=np.float64)
        settings = json.dumps([self.tokens, self.seed, self.clip, self.plan_margin, asdict(self.model) if self.model else None], sort_keys=True)
        key = hashlib.sha256(values.tobytes() + settings.encode()).hexdigest()[:16]  # a changed setting never meets an old checkpoint
        strategy = Weighted.from_mixture(values, clip=self.clip)
        checkpoint = os.path.join(self.work_dir, f"run-{key}") if self.work_dir else None
        result = train_proxy(self.train, strategy, tokens=self.tokens, seed=self.seed, model=self.model, checkpoint_dir=checkpoint,
                             device=self.device, threads=self.threads, plan_margin=self.plan_margin)
        if self.target_texts is not None:
            score = score_texts(result.model, self.target_texts, device=self.device)
        else:
            score = float(evaluate_proxy(result.model, self.eval, device=self.device, clusters=self.target_clusters)["macro"])
        return score
