"""builder.data.records: the one rule for a number or a text read from a record someone else wrote."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from builder.data import records

# anything a JSON file (Python's json, which writes NaN and Infinity) can hold
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)


@given(_json, st.booleans(), st.booleans())
def test_a_number_is_a_real_number_or_none_for_anything_json_holds(value, finite, parse):
    n = records.number(value, finite=finite, parse=parse)
    assert n is None or (type(n) in (int, float))
    if n is not None:
        assert not isinstance(value, bool)
        assert math.isfinite(float(n)) or not finite
        if not parse:
            assert n == value or (math.isnan(n) and math.isnan(value))


@given(_json)
def test_a_text_is_short_text_for_anything_json_holds(value):
    t = records.text(value)
    assert isinstance(t, str) and len(t) <= records.TEXT_LIMIT
    if isinstance(value, str):
        assert t == value[:records.TEXT_LIMIT]
    elif isinstance(value, (bool, list, dict)) or value is None:
        assert t == "?"


def test_numbers_read_back_from_a_crafted_file():
    crafted = json.loads('[1, 1.5, true, "3", NaN, Infinity, -Infinity, 1e999, ' + "9" * 400 + ', null, [1], {"a": 1}]')
    assert [records.number(v) for v in crafted] == [1, 1.5, None, None, None, None, None, None, None, None, None, None]
    kept = [records.number(v, finite=False) for v in crafted]
    assert kept[:2] == [1, 1.5] and math.isnan(kept[4]) and kept[5] == math.inf and kept[6] == -math.inf
    assert kept[8] is None  # a whole number too large for a float is no number, finite or not


def test_parse_reads_numeric_text_only():
    assert records.number("1e-3", parse=True) == 0.001
    assert records.number("inf", parse=True) is None and records.number("-inf", parse=True, finite=False) == -math.inf
    assert [records.number(v, parse=True) for v in ("", "abc", "1,5", "0x10")] == [None] * 4


def test_numpy_numbers_come_back_as_python_numbers():
    """Metrics computed with numpy are numbers too (the old checks dropped them), and JSON can write what comes back."""
    got = [records.number(v) for v in (np.float32(0.5), np.int64(7), np.float64("nan"), np.bool_(True))]
    assert got == [0.5, 7, None, None] and type(got[0]) is float and type(got[1]) is int
    json.dumps(got)


def test_a_huge_whole_number_is_not_shown_as_text():
    """str() of an int over 4,300 digits raises in Python 3.11: the text rule never tries."""
    assert records.text(10 ** 5000) == "?"
    assert records.text(12) == "12" and records.text(1.5) == "1.5"
