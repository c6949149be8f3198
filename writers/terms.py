"""Top terms per cluster by class-based TF-IDF, in memory bounded by the number of clusters.

Each cluster's term counts come from its first documents while it is packed, at most
``docs_per_cluster`` of them and ``chars_per_cluster`` characters in all (about 5k words: plenty for
eight terms, and the cost stays a fixed fraction of packing whatever the document sizes); only its
``candidates`` most frequent terms are kept. A term's corpus frequency is the sum
of its counts over the clusters where it is a candidate, which is where a common word (one that
would dilute every cluster's description) shows up. At the end every candidate is scored
``tf(t, c) * log(1 + A / f(t))`` (A: mean words per cluster), ranking words that are frequent in
the cluster but rare elsewhere.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"[a-z][a-z'-]+[a-z]")
STOPWORDS = frozenset(
    """about above after again against all also and any are aren't because been before being below between both but
    can cannot could did does doing down during each few for from further had has have having her here hers herself him
    himself his how however into its itself just let more most much must not now off once only other our ours ourselves
    out over own same shall she should some such than that the their theirs them themselves then there these they this
    those through thus too under until upon very was were what when where which while who whom why will with would yet
    you your yours yourself yourselves one two may might unto thee thou thy shalt hath saith like see used use""".split()
)


class TermStats:
    """Accumulates per-cluster candidate terms and their corpus frequencies."""

    def __init__(self, *, docs_per_cluster: int = 500, chars_per_cluster: int = 1 << 15, candidates: int = 200) -> None:
        self.docs_per_cluster = docs_per_cluster
        self.chars_per_cluster = chars_per_cluster
        self.candidates = candidates
        self._corpus: Counter[str] = Counter()
        self._clusters: list[list[tuple[str, int]]] = []
        self._words: list[int] = []
        self._current: Counter[str] = Counter()
        self._seen = 0
        self._chars = 0

    def add(self, text: str) -> bool:
        """Count the words of one document of the cluster being packed; False once the cluster's
        sample is complete, so the caller can stop decoding documents for it."""
        room = self.chars_per_cluster - self._chars
        if self._seen >= self.docs_per_cluster or room <= 0:
            return False
        piece = text[:room]
        self._seen += 1
        self._chars += len(piece)
        self._current.update(_WORD.findall(piece.lower()))
        return self._seen < self.docs_per_cluster and self._chars < self.chars_per_cluster

    def end_cluster(self) -> None:
        """Close the current cluster: keep its candidates and fold them into the corpus counts."""
        for word in STOPWORDS.intersection(self._current):
            del self._current[word]
        top = self._current.most_common(self.candidates)
        self._corpus.update(dict(top))
        self._clusters.append(top)
        self._words.append(sum(self._current.values()))
        self._current = Counter()
        self._seen = 0
        self._chars = 0

    def extend(self, other: TermStats) -> None:
        """Append ``other``'s closed clusters after this one's: per-task statistics combine on the driver
        (in cluster order) into the ones a single pass would have made."""
        self._corpus.update(other._corpus)
        self._clusters.extend(other._clusters)
        self._words.extend(other._words)

    def top_terms(self, n: int = 8) -> list[list[str]]:
        """The ``n`` highest-scoring terms of every cluster, in cluster order."""
        mean_words = max(1.0, sum(self._words) / max(1, len(self._words)))
        out = []
        for candidates, words in zip(self._clusters, self._words):
            scored = sorted(
                ((-(count / max(1, words)) * math.log(1 + mean_words / self._corpus[word]), word) for word, count in candidates),
            )
            out.append([w for _, w in scored[:n]])
        return out
