"""A proxy that is a shell command: it gets a ``weights.json`` path and prints its score.

This is how a search drives a trainer streamclip does not know (another framework, a cluster job):
the command reads the weights with ``Weighted.load`` (or any JSON reader), trains, and prints one number
as the last line of its standard output. Its stderr passes through, so its progress stays visible.
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
import subprocess
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError
from streamclip.mixture.weights_file import write_weights_file

__all__ = ["CommandObjective"]


class CommandObjective:
    """``evaluate(weights)`` by running ``command``: ``{weights}`` in it is replaced by the file's path,
    else the path is appended as the last argument. Files go to ``work_dir`` (one per candidate, named by
    a hash of its weights), so a command that checkpoints by that name can resume after a kill."""

    def __init__(self, command: str | Sequence[str], work_dir: str, *, dataset: str | None = None, clustering: str | None = None,
                 timeout: float | None = None) -> None:
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not argv:
            raise ConfigError("the proxy command is empty; give a command that prints a score, e.g. 'python train.py {weights}'")
        self.argv, self.work_dir, self.dataset, self.clustering, self.timeout = argv, work_dir, dataset, clustering, timeout
        os.makedirs(work_dir, exist_ok=True)

    def __call__(self, weights: NDArray[np.float64]) -> float:
        key = hashlib.sha256(np.asarray(weights, dtype=np.float64).tobytes()).hexdigest()[:16]
        path = os.path.join(self.work_dir, f"candidate-{key}.json")
        write_weights_file(path, {"dataset": self.dataset, "clustering": self.clustering, "clusters": len(weights),
                                  "weights": [float(w) for w in weights]})
        argv = [a.replace("{weights}", path) for a in self.argv]
        if not any("{weights}" in a for a in self.argv):
            argv.append(path)
        shown = shlex.join(argv)
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=None, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError:
            raise ConfigError(f"proxy command not found: {argv[0]!r} (in {shown})") from None
        except subprocess.TimeoutExpired:
            raise ConfigError(f"proxy command ran past {self.timeout} s: {shown}") from None
        if done.returncode != 0:
            raise ConfigError(f"proxy command exited {done.returncode}: {shown}")
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        try:
            score = float(lines[-1])
        except (IndexError, ValueError):
            tail = lines[-1][:80] if lines else "nothing"
            raise ConfigError(f"proxy command printed {tail!r} as its last line, not a score: {shown}") from None
        if not math.isfinite(score):
            raise ConfigError(f"proxy command printed {score} for {path}; a score must be finite: {shown}")
        return score
