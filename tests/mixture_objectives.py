"""Synthetic objectives with a known optimum, shared by the mixture tests and their subprocesses."""

from __future__ import annotations

import zlib

import numpy as np


def hidden_optimum(k: int, seed: int) -> np.ndarray:
    return np.random.default_rng((seed, 7)).dirichlet(np.ones(k))


def noisy_distance(target: np.ndarray, seed: int, noise: float = 0.02):
    """L1 distance to ``target`` plus noise fixed per mixture (deterministic: seeded by the weights' bytes)."""
    def f(w: np.ndarray) -> float:
        jitter = np.random.default_rng(zlib.crc32(np.round(w, 12).tobytes())).normal(0, noise)
        return float(np.abs(w - target).sum() + jitter)
    return f


def bumpy(target: np.ndarray):
    """Non-convex: distance to ``target`` with ripples (local minima on rings around it); the optimum is ``target``."""
    def f(w: np.ndarray) -> float:
        d = np.abs(w - target).sum()
        return float(d + 0.1 * np.sin(25 * d) ** 2)
    return f
