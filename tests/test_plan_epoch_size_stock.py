"""``epoch_size`` strings mean here what they mean to stock StreamingDataset (which imports torch, so
the core has its own parser; this test, which may import streaming, holds the two together)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from streaming.base.util import number_abbrev_to_int

from streamclip.errors import ConfigError
from streamclip.planning import parse_epoch_size

numbers = st.one_of(
    st.integers(-10, 10**13).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.from_regex(r"-?[0-9]{0,5}(\.[0-9]{0,4})?([eE][+-]?[0-9]{1,2})?", fullmatch=True),
    st.text(max_size=3),
)
suffixes = st.sampled_from(["", "k", "K", "m", "M", "b", "B", "t", "T", "x", "kk", " k"])
spaces = st.sampled_from(["", " ", "\t", "  \n"])


@settings(max_examples=400, deadline=None)
@given(st.builds(lambda a, n, s, b: a + n + s + b, spaces, numbers, suffixes, spaces))
@example("100k")
@example("1.5m")
@example("2B")
@example("0.0001k")
@example("4.35k")
@example("\u00b2")
def test_parser_agrees_with_stock(text):
    try:
        expected = number_abbrev_to_int(text)
    except Exception:  # stock refuses it (ValueError, or OverflowError for 'infk')
        expected = None
    if expected is None or expected < 1:
        with pytest.raises(ConfigError, match="epoch_size"):
            parse_epoch_size(text)
    else:
        assert parse_epoch_size(text) == expected


@pytest.mark.parametrize("value", [1, 7, 100_000, 2**40, 3.0])
def test_numbers_agree_with_stock(value):
    assert parse_epoch_size(value) == number_abbrev_to_int(value)
