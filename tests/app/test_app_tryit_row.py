"""Try it on a table under AppTest: the row is shown and read in the CSV's own units, text columns as pickers."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _panel() -> None:
    """Try it for an untrained MLP on a small CSV (age 1.2-17.5, sex F/M), in this process (tests only)."""
    import numpy as np
    import streamlit as st
    import torch

    import builder
    from app_pages.explain_tryit import try_it_panel
    from builder.data.compat import adapt_graph
    from builder.data.tabular import load_csv
    from builder.interpret.session import ExplainSession

    rng = np.random.default_rng(0)
    ages = np.round(rng.uniform(1.2, 17.5, 60), 1)
    ages[:2] = 1.2, 17.5
    lines = ["age,sex,grown"] + [f"{a},{'FM'[i % 2]},{int(a > 9)}" for i, a in enumerate(ages)]
    ds = load_csv("\n".join(lines).encode(), "grown")
    torch.manual_seed(0)
    model = builder.compile_graph(adapt_graph(builder.load_template("mlp").graph, ds.info)).eval()
    if "xs" not in st.session_state:
        st.session_state.xs = ExplainSession(model, ds, "test")
    try_it_panel(st.session_state.xs, 0, lambda k: k)


def test_a_table_row_is_in_the_data_units_with_categories_as_pickers():
    at = AppTest.from_function(_panel, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value  # the row editor
    assert list(table["feature"]) == ["age"]  # the text column is no pair of 0/1 rows
    assert 1.2 <= float(table["value"][0]) <= 17.5  # years, as in the file, not a z-score
    from builder.interpret.tryit import try_form

    form = try_form(at.session_state["xs"], 0)
    assert form.choices == {"sex": ["F", "M"]}
    (pick,) = [s for s in at.selectbox if s.label == "sex"]
    assert pick.options == ["F", "M"] and pick.value == form.picked["sex"]
    assert [m for m in at.metric if m.label == "Your input's prediction"]
    assert _bars(at) == {"age", f"sex: {pick.value}"}  # one bar per picker (it drew sex=F and sex=M)
    pick.set_value("M" if pick.value == "F" else "F").run()  # another category: still answered
    assert not at.exception, [e.value for e in at.exception]
    assert [m for m in at.metric if m.label == "Your input's prediction"]
    assert _bars(at) == {"age", f"sex: {pick.value}"}


def _bars(at) -> set[str]:
    """The feature names of the answer's attribution bars."""
    import json

    (chart,) = at.get("plotly_chart")
    return {str(y) for trace in json.loads(chart.proto.spec)["data"] for y in trace.get("y") or []}
