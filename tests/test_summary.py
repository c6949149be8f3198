"""``streamclip.summary`` on hand-built manifests: printable(), gini(), describe() and format_table().

test_inspect.py checks the same functions end to end through the CLI; these pin their edge cases.
"""

from __future__ import annotations

import itertools
import json
import math
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamclip.summary import describe, format_table, gini, printable

from test_manifest_units import synthetic

UNSAFE = ("Cc", "Cf", "Zl", "Zp", "Cs")


def unsafe(text: str) -> list[str]:
    return [ch for ch in text if unicodedata.category(ch) in UNSAFE]


# --- printable -----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_characters='"\\'), max_size=40))
def test_printable_leaves_nothing_a_terminal_acts_on_and_decodes_back_as_json(text):
    """Quotes and backslashes are left out: printable() does not escape them, so they are not JSON-safe."""
    shown = printable(text)
    assert unsafe(shown) == []
    assert json.loads(f'"{shown}"') == text


@pytest.mark.parametrize("ch, escaped", [
    ("\x00", "\\u0000"), ("\n", "\\u000a"), ("\x7f", "\\u007f"), ("\x9b", "\\u009b"),  # C0, DEL, C1 (CSI)
    ("\u202e", "\\u202e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"),  # bidi override, line/paragraph separators
    ("\ud800", "\\ud800"),  # a lone surrogate
    ("\U000e0001", "\\udb40\\udc01"),  # a tag character outside the BMP: a UTF-16 surrogate pair, as JSON spells it
])
def test_each_unsafe_character_becomes_its_json_escape(ch, escaped):
    assert printable(f"a{ch}b") == f"a{escaped}b"


def test_safe_text_is_returned_unchanged():
    text = "plain ASCII, é, 中文, emoji 🙂, tab-free, \u00a0nbsp and a \"quote\" \\ backslash"
    assert printable(text) == text


# --- gini ----------------------------------------------------------------------------------------------


def gini_by_definition(sizes) -> float:
    """Mean absolute difference over all ordered pairs, divided by twice the mean."""
    x = [float(v) for v in sizes]
    n, total = len(x), sum(x)
    return sum(abs(a - b) for a, b in itertools.product(x, x)) / (2 * n * total)


@pytest.mark.parametrize("seed", range(5))
def test_gini_matches_its_definition(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 1000, size=int(rng.integers(2, 40)))
    assert gini(sizes) == pytest.approx(gini_by_definition(sizes), rel=1e-12)


def test_gini_ignores_order_and_scale():
    sizes = np.array([40, 3, 3, 1, 17, 9])
    assert gini(sizes[::-1]) == pytest.approx(gini(sizes), abs=1e-15)
    assert gini(sizes * 1000) == pytest.approx(gini(sizes), rel=1e-12)
    assert gini(list(sizes)) == pytest.approx(gini(sizes), abs=1e-15)  # any sequence, not only arrays


@pytest.mark.parametrize("sizes", [[], [0, 0, 0], [7]])
def test_gini_of_nothing_to_compare_is_zero(sizes):
    assert gini(np.array(sizes, dtype=np.int64)) == 0.0


# --- describe ------------------------------------------------------------------------------------------


def test_describe_totals_come_from_the_manifest():
    manifest, _ = synthetic([8, 2, 5], shards_per_cluster=2, rejected=4)
    report = describe(manifest)
    assert report["totals"] == {
        "documents": 15, "bytes": 80 + 21 + 52, "shards": 6, "shard_bytes": sum(60 + i for i in range(6)),
        "clusters": 3, "rejected": 4,
    }
    assert [c["id"] for c in report["clusters"]] == [0, 1, 2]  # id order; the table sorts, the data does not
    assert [c["shards"] for c in report["clusters"]] == [[0, 2], [2, 4], [4, 6]]
    assert [c["share"] for c in report["clusters"]] == [8 / 15, 2 / 15, 5 / 15]
    json.dumps(report, allow_nan=False)  # JSON as it is: plain ints, floats, lists


@pytest.mark.parametrize("k", [1, 2, 9, 10, 11, 19, 20, 21, 30, 100, 101])
def test_long_tail_figures(k):
    sizes = [int(v) for v in np.random.default_rng(k).integers(1, 500, size=k)]
    tail = describe(synthetic(sizes)[0])["long_tail"]
    top = sorted(sizes, reverse=True)[: math.ceil(k / 10)]  # the top 10% of clusters, at least one
    assert tail["largest"] == max(sizes) and tail["smallest"] == min(sizes)
    assert tail["ratio"] == pytest.approx(max(sizes) / min(sizes))
    assert tail["top_10pct_share"] == pytest.approx(sum(top) / sum(sizes))
    assert tail["gini"] == pytest.approx(gini_by_definition(sizes))


# --- format_table --------------------------------------------------------------------------------------


def rows(table: str) -> list[list[str]]:
    """The cluster rows (not the quoted example lines under them), split into columns."""
    lines = table.splitlines()[1:]
    return [line.split(maxsplit=5) for line in lines if line[:5].strip().isdigit()]


def test_table_sorts_largest_first_ties_by_id_and_counts_shards():
    manifest, _ = synthetic([3, 9, 3, 1, 9], shards_per_cluster=2)
    table = format_table(describe(manifest))
    assert [r[0] for r in rows(table)] == ["1", "4", "0", "2", "3"]
    assert [r[1] for r in rows(table)] == ["9", "9", "3", "3", "1"]
    assert [r[3] for r in rows(table)] == [str(c.bytes) for c in (manifest.clusters[i] for i in (1, 4, 0, 2, 3))]
    assert [r[4] for r in rows(table)] == ["2", "2", "2", "2", "1"]
    assert [r[2] for r in rows(table)] == [f"{n / 25:.1%}" for n in (9, 9, 3, 3, 1)]
    assert "more clusters" not in table


def test_table_limit_names_what_was_left_out():
    manifest, _ = synthetic([5, 4, 3, 2, 1])
    table = format_table(describe(manifest), limit=2)
    assert [r[0] for r in rows(table)] == ["0", "1"]
    assert "… 3 more clusters (use --limit 0 for all)" in table
    assert format_table(describe(manifest), limit=5) == format_table(describe(manifest))


def test_table_footer_states_totals_and_the_long_tail():
    manifest, _ = synthetic([40, 10, 2], rejected=7)
    report = describe(manifest)
    footer = format_table(report).splitlines()[-2:]
    t = report["totals"]
    assert footer[0] == (f"documents 52  text bytes {t['bytes']}  shards 3 ({t['shard_bytes']} bytes on disk)  "
                         "clusters 3  rejected 7")
    assert footer[1].startswith("long tail: largest/smallest 40/2 = 20.0x, Gini ")
    assert footer[1].endswith(f"top 10% of clusters hold {40 / 52:.1%}")


@pytest.mark.parametrize("width", [80, 120])
def test_table_rows_fit_the_width_and_escape_corpus_text(width):
    hostile = "\x1b]0;pwned\x07 " + "long " * 50 + "\u202e"
    manifest, _ = synthetic([3, 2], top_terms=[["\x1b[31mred", "x" * 200], ["ok"]], examples=[hostile, "fine"])
    table = format_table(describe(manifest), width=width)
    cluster_lines = table.splitlines()[1:5]
    assert all(len(line) <= width for line in cluster_lines)
    assert unsafe(table.replace("\n", "")) == []
    assert "\\u001b[31mred" in cluster_lines[0] and "“\\u001b]0;pwned\\u0007 long" in cluster_lines[1]
