"""Cluster descriptions: per-cluster samples are bounded and the ranking favours words rare elsewhere."""

from __future__ import annotations

import math

from streamclip.writers.terms import STOPWORDS, TermStats


def collect(clusters: list[list[str]], **kwargs) -> TermStats:
    """Each cluster's documents fed as the packer does: until the statistics say they have enough."""
    stats = TermStats(**kwargs)
    for docs in clusters:
        for text in docs:
            if not stats.add(text):
                break
        stats.end_cluster()
    return stats


def describe(clusters: list[list[str]], n: int = 8, **kwargs) -> list[list[str]]:
    return collect(clusters, **kwargs).top_terms(n)


def test_words_frequent_in_a_cluster_but_rare_elsewhere_rank_first():
    fruit = ["apple banana shared", "apple banana shared", "apple cherry shared"]
    engine = ["piston engine shared", "piston engine shared", "piston valve shared"]
    top = describe([fruit, engine])
    # 'shared' is as frequent in each cluster as 'apple' or 'piston', but it is everywhere
    assert top[0][:2] == ["apple", "banana"] and top[0].index("shared") > top[0].index("banana")
    assert top[1][:2] == ["piston", "engine"] and top[1].index("shared") > top[1].index("engine")


def test_scores_follow_class_tf_idf():
    stats = TermStats()
    stats.add("alpha alpha beta")
    stats.end_cluster()
    stats.add("beta gamma")
    stats.end_cluster()
    mean_words = (3 + 2) / 2
    corpus = {"alpha": 2, "beta": 2, "gamma": 1}

    def score(word: str, count: int, words: int) -> float:
        return count / words * math.log(1 + mean_words / corpus[word])

    expected = [
        sorted(["alpha", "beta"], key=lambda w: -score(w, {"alpha": 2, "beta": 1}[w], 3)),
        sorted(["beta", "gamma"], key=lambda w: -score(w, 1, 2)),
    ]
    assert stats.top_terms() == expected


def test_stopwords_short_tokens_and_digits_are_not_terms():
    top = describe([["The cat and the hat: a b 42 x1 wouldn't re-use it"]])[0]
    assert not STOPWORDS.intersection(top) and not any(len(w) < 3 or any(c.isdigit() for c in w) for w in top)
    assert {"cat", "hat", "wouldn't", "re-use"} <= set(top)


def test_a_cluster_sample_stops_at_its_document_limit():
    stats = TermStats(docs_per_cluster=3)
    assert [stats.add(f"word{i} filler") for i in range(3)] == [True, True, False]
    assert stats.add("zebra") is False  # the sample is complete: not counted
    stats.end_cluster()
    assert "zebra" not in stats.top_terms(50)[0]
    assert stats.add("zebra") is True  # a new cluster starts a new sample


def test_a_cluster_sample_stops_at_its_character_limit():
    stats = TermStats(chars_per_cluster=20)
    assert stats.add("apple " * 3) is True  # 18 characters
    assert stats.add("pear zebra") is False  # only 'pe' fits: no complete word
    stats.end_cluster()
    assert stats.top_terms()[0] == ["apple"]


def test_only_the_most_frequent_candidates_are_kept_per_cluster():
    text = " ".join(["common"] * 5 + ["frequent"] * 3 + ["rare"])
    assert describe([[text]], candidates=2) == [["common", "frequent"]]


def test_an_empty_cluster_has_no_terms_and_n_limits_the_list():
    words = " ".join(f"term{chr(97 + i)}{chr(97 + i)}" for i in range(12))
    assert describe([[], [words]], n=5) == [[], sorted(words.split())[:5]]
