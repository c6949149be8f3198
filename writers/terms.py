"""Top terms per cluster by class-based TF-IDF, in memory bounded by the number of clusters.

Each cluster's term counts come from at most ``docs_per_cluster`` of its documents while it is
packed; only its ``candidates`` most frequent terms are kept. Corpus-wide term frequency goes
into a fixed-size hashed table. At the end every candidate is scored
``tf(t, c) * log(1 + A / f(t))`` (A: mean words per cluster), which ranks words that are
frequent in the cluster but rare elsewhere.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter

import numpy as np

_WORD = re.compile(r"[a-z][a-z'-]{2,}")
STOPWORDS = frozenset(
    """about above after again against all also and any are aren't because been before being below between both but
    can cannot could did does doing down during each few for from further had has have having her here hers herself him
    himself his how however into its itself just let more most much must not now off once only other our ours ourselves
    out over own same shall she should some such than that the their theirs them themselves then there these they this
    those through thus too under until upon very was were what when where which while who whom why will with would yet
    you your yours yourself yourselves one two may might unto thee thou thy shalt hath saith also like see used use
    e.g i.e etc""".split()
)


class TermStats:
    """Accumulates per-cluster candidate terms and hashed corpus frequencies."""

    def __init__(self, *, docs_per_cluster: int = 2000, candidates: int = 200, table_bits: int = 20) -> None:
        self.docs_per_cluster = docs_per_cluster
        self.candidates = candidates
        self._mask = (1 << table_bits) - 1
        self._corpus = np.zeros(1 << table_bits, dtype=np.int64)
        self._clusters: list[list[tuple[str, int]]] = []
        self._words: list[int] = []
        self._current: Counter[str] = Counter()
        self._seen = 0

    def add(self, text: str) -> None:
        """Count the words of one document of the cluster being packed (the first few only)."""
        if self._seen >= self.docs_per_cluster:
            return
        self._seen += 1
        self._current.update(w.strip("'-") for w in _WORD.findall(text.lower()) if w not in STOPWORDS)

    def end_cluster(self) -> None:
        """Close the current cluster: keep its candidates, fold its counts into the corpus table."""
        self._current.pop("", None)
        for word, count in self._current.items():
            self._corpus[zlib.crc32(word.encode()) & self._mask] += count
        self._clusters.append(self._current.most_common(self.candidates))
        self._words.append(sum(self._current.values()))
        self._current = Counter()
        self._seen = 0

    def top_terms(self, n: int = 8) -> list[list[str]]:
        """The ``n`` highest-scoring terms of every cluster, in cluster order."""
        mean_words = max(1.0, sum(self._words) / max(1, len(self._words)))
        out = []
        for candidates, words in zip(self._clusters, self._words):
            scored = []
            for word, count in candidates:
                corpus = int(self._corpus[zlib.crc32(word.encode()) & self._mask])
                scored.append((count / max(1, words) * math.log(1 + mean_words / max(1, corpus)), word))
            scored.sort(key=lambda s: (-s[0], s[1]))
            out.append([w for _, w in scored[:n]])
        return out
