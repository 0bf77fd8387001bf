"""The pages' number formatting (app_pages/fmt.py)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app_pages.fmt import (
    curve_mode,
    fmt_duration,
    fmt_metric,
    fmt_setting,
    share_axis,
    whole_epoch_ticks,
    whole_number_ticks,
)


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.27, "0.3s"),  # a 3-epoch run on the digits: it read "0s", as if it had not run (issue 29)
    (0.0, "0.0s"), (4.04, "4.0s"), (9.96, "10s"), (42.4, "42s"), (185, "3m 05s"), (3720, "1h 02m"),
    (None, "—"), (float("nan"), "—"),
])
def test_durations_read_as_people_read_them(seconds, shown):
    assert fmt_duration(seconds) == shown


def test_a_short_epoch_axis_is_ticked_at_whole_epochs():
    import plotly.graph_objects as go

    short = whole_epoch_ticks(go.Figure(go.Scatter(x=[0.5, 1, 1.5, 2, 2.5, 3], y=[1] * 6)))
    assert short.layout.xaxis.dtick == 1
    long = whole_epoch_ticks(go.Figure(go.Scatter(x=list(range(1, 51)), y=[1] * 50)))
    assert long.layout.xaxis.dtick is None  # plotly's own ticks (5, 10, ...) are whole already


def test_a_narrow_count_axis_is_ticked_at_whole_numbers():
    """The Data page's class balance with 2-3 samples a class was ticked at 0.5 samples, its token histogram of
    four-token texts "4 4 4 4 4"; a wide count axis keeps plotly's own (whole) ticks."""
    import plotly.graph_objects as go

    few = whole_number_ticks(go.Figure(go.Bar(x=["a", "b"], y=[2, 3])), "y", [0, 2, 3])
    assert (few.layout.yaxis.dtick, few.layout.xaxis.dtick) == (1, None)
    one = whole_number_ticks(go.Figure(go.Histogram(x=[4, 4, 4])), "x", [4, 4, 4])
    assert one.layout.xaxis.dtick == 1
    wide = whole_number_ticks(go.Figure(go.Bar(x=["a"], y=[300])), "y", [0, 300])
    assert wide.layout.yaxis.dtick is None


def test_an_accuracy_axis_stays_between_0_and_1():
    """A sentiment LSTM stuck at 0.5 for 4 epochs: its accuracy chart's y axis ran from -0.5 to 1.5."""
    import plotly.graph_objects as go

    flat = share_axis(go.Figure(go.Scatter(x=[1, 2, 3, 4], y=[0.5] * 4)))
    assert list(flat.layout.yaxis.range) == pytest.approx([0.45, 0.55])
    top = share_axis(go.Figure(go.Scatter(x=[1, 2], y=[0.2, 1.0])))
    assert list(top.layout.yaxis.range) == pytest.approx([0.12, 1.01])


def test_a_one_point_curve_of_a_live_run_is_drawn():
    """After epoch 1 of a live GPT run its perplexity and learning-rate charts stood empty (lines only: one point
    draws nothing) while the epoch's sample showed below them."""
    assert curve_mode(1, True) == "lines+markers"
    assert curve_mode(5, True) == "lines" and curve_mode(5, False) == "lines+markers"


def test_large_values_read_as_whole_numbers_never_in_e_notation():
    """An outside review: a CSV's income of 30410.52 read "3.041e+04" in the Explain page's sample table (and an
    error in a price's units would in a metric): from 10,000 up a value is a whole number with separators."""
    assert fmt_metric(30410.52) == "30,411" and fmt_setting(254312.9) == "254,313"
    assert fmt_metric(0.87654) == "0.8765" and fmt_setting(0.0012345678901234567) == "0.001235"  # as before
    assert fmt_metric(0.9, pct=True) == "90.0%" and fmt_metric(float("nan")) == "—"


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: 1e-4 <= abs(v) < 1e15)
       | st.floats(9999.5, 9999.99999) | st.floats(-9999.99999, -9999.5))
@example(9999.5)
def test_a_measured_value_is_never_written_in_e_notation(v):
    """human_number said "never e-notation" and wrote 9999.5 as 1e+04 (rounded to 4 digits); fmt_metric and Try
    it show it."""
    from builder.graph.report import human_number

    shown = human_number(v)
    assert "e" not in shown and abs(float(shown.replace(",", "")) - v) <= max(abs(v) * 1e-3, 0.5), (v, shown)



@given(st.floats(-1e308, 1e308).filter(lambda v: abs(v) >= 1e15) | st.sampled_from([0.0, -0.0]))
def test_a_huge_value_is_short_and_zero_has_no_sign(v):
    """human_number(1e300) wrote 301 digits and -0.0 as "-0"."""
    from builder.graph.report import human_number

    shown = human_number(v)
    assert len(shown) <= 11 and shown != "-0", shown  # -1.341e+154
    assert abs(float(shown) - v) <= abs(v) * 1e-3, (v, shown)
