"""builder.training.metrics_units: an error's units read the target's name where the Data page reads it
(:func:`builder.data.splits.named_targets`), never a second rule that drifts from it."""

from __future__ import annotations

from dataclasses import asdict

from hypothesis import given
from hypothesis import strategies as st

from builder.data.splits import DatasetInfo
from builder.training.metrics_units import metric_label, metric_units

_NAMES = st.one_of(st.none(), st.text(min_size=0, max_size=6), st.lists(st.text(max_size=4), max_size=3),
                   st.integers())


@given(task=st.sampled_from(["regression", "forecast"]), target=_NAMES, columns=_NAMES)
def test_an_errors_unit_is_the_targets_name_the_data_page_shows(task, target, columns):
    info = DatasetInfo("csv:x.csv", task, "tabular", (3,), out_size=1, target_std=[2.5],
                       options={"target": target, "columns": columns})
    unit = metric_units("mae", asdict(info))[0]
    (name,) = info.target_names
    assert unit == (f" ({name})" if name != "target" or target == "target" or columns == "target"
                    else " (target units)"), (unit, info.target_names)
    assert metric_units("mse", asdict(info))[0] == unit[:-1] + "²)"


def test_a_forecasts_series_and_a_tables_one_named_target():
    """A regression's target given as a list of one column was "target units" beside a table that named it; a
    forecast's one column was named by the errors and called "target" on the table."""
    table = DatasetInfo("csv:p.csv", "regression", "tabular", (3,), out_size=1, target_std=[5.0],
                        options={"target": ["price"]})
    series = DatasetInfo("series:s.csv", "forecast", "series", (8, 1), out_size=1, target_std=[34.0],
                         options={"columns": ["spots"], "target": "ignored"})
    assert table.target_names == ["price"] and metric_units("rmse", asdict(table))[0] == " (price)"
    assert series.target_names == ["spots"] and metric_units("mae", asdict(series))[0] == " (spots)"
    assert [metric_label(m) for m in ("r2", "mae", "loss")] == ["R²", "MAE", "Loss"]
