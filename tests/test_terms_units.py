"""``writers/terms.py`` units test_terms.py leaves out: merging per-task statistics, ties, case, stopwords
against the candidate cut, limits of zero, and the corpus frequency counting only candidates."""

from __future__ import annotations

from collections import defaultdict

import pytest

from streamclip.writers.terms import TermStats

from test_terms import collect  # noqa: E402


@pytest.fixture(scope="module")
def by_source(sample_docs) -> list[list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for doc in sample_docs:
        groups[doc["source"]].append(doc["text"])
    return [groups[k] for k in sorted(groups)]


@pytest.mark.parametrize("cut", [0, 1, 3, 5])
def test_extending_per_task_statistics_equals_one_pass(by_source, cut):
    options = dict(docs_per_cluster=40, chars_per_cluster=4000, candidates=30)
    whole = collect(by_source, **options)
    merged = collect(by_source[:cut], **options)
    merged.extend(collect(by_source[cut:], **options))
    assert merged.top_terms(12) == whole.top_terms(12)
    assert len(whole.top_terms(12)) == len(by_source) and all(whole.top_terms(12))


def test_extend_takes_closed_clusters_only():
    other = collect([["apple apple pear"]])
    other.add("unfinished cluster words")  # never closed: not part of other's statistics
    stats = collect([["engine piston"]])
    stats.extend(other)
    assert stats.top_terms() == [["engine", "piston"], ["apple", "pear"]]


def test_no_clusters_no_terms_and_n_zero_gives_empty_lists():
    assert TermStats().top_terms() == []
    assert collect([["alpha beta"], ["gamma"]]).top_terms(0) == [[], []]


def test_equal_scores_are_ordered_alphabetically():
    assert collect([["delta charlie bravo alpha echo"]]).top_terms() == [["alpha", "bravo", "charlie", "delta", "echo"]]


def test_words_are_counted_case_insensitively():
    stats = collect([["Zebra ZEBRA zebra apple"]])
    assert stats.top_terms() == [["zebra", "apple"]]


def test_stopwords_never_take_a_candidate_place():
    assert collect([["the the the the with with cat"]], candidates=1).top_terms() == [["cat"]]


def test_a_terms_corpus_frequency_counts_only_clusters_where_it_is_a_candidate():
    """Cluster 1 keeps 'alpha' (its third word) only with three candidates; then 'alpha' is no longer rare and 'zeta' ranks first."""
    clusters = [["zeta zeta alpha alpha"], ["gamma gamma gamma gamma gamma delta delta delta alpha"]]
    assert collect(clusters, candidates=2).top_terms(1)[0] == ["alpha"]  # a tie with 'zeta', broken alphabetically
    assert collect(clusters, candidates=3).top_terms(1)[0] == ["zeta"]


@pytest.mark.parametrize("limits", [dict(docs_per_cluster=0), dict(chars_per_cluster=0)])
def test_a_zero_limit_counts_nothing(limits):
    stats = TermStats(**limits)
    assert stats.add("apple banana cherry") is False
    stats.end_cluster()
    assert stats.top_terms() == [[]]


def test_a_document_filling_the_character_limit_exactly_completes_the_sample():
    stats = TermStats(chars_per_cluster=len("apple banana"))
    assert stats.add("apple banana") is False
    assert stats.add("cherry") is False


def test_closing_a_cluster_restores_the_character_budget():
    stats = TermStats(chars_per_cluster=12)
    assert stats.add("apple banana pear") is False
    stats.end_cluster()
    assert stats.add("cherry") is True
    stats.end_cluster()
    assert stats.top_terms() == [["apple", "banana"], ["cherry"]]
