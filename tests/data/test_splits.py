"""The data's own units: one rule (:meth:`DatasetInfo.own_units` / :meth:`DatasetInfo.model_units`) read by
tables, Try it, forecasts, series plots and drift."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from builder.data.splits import DatasetInfo

_finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def _scaled(draw):
    k = draw(st.integers(1, 6))
    mean = draw(st.lists(_finite, min_size=k, max_size=k))
    std = draw(st.lists(st.floats(1e-3, 1e3), min_size=k, max_size=k))
    rows = draw(st.integers(0, 4))
    values = draw(arrays(np.float64, (rows, k) if rows else (k,), elements=st.floats(-50, 50)))
    return mean, std, values


@given(_scaled(), st.sampled_from(["target", "input"]))
def test_own_units_and_model_units_are_inverse_along_the_last_axis(case, part):
    mean, std, values = case
    info = DatasetInfo("csv:t.csv", "regression", "tabular", (len(mean),))
    if part == "target":
        info.target_mean, info.target_std = mean, std
    else:
        info.input_mean, info.input_std = mean, std
    own = info.own_units(values, part)
    assert own.shape == values.shape
    assert np.allclose(own, values * np.asarray(std) + np.asarray(mean))
    assert np.allclose(info.model_units(own, part), values, atol=1e-6 * (1 + np.abs(own).max(initial=0)))
    other = "input" if part == "target" else "target"
    assert np.array_equal(info.own_units(values, other), values)  # the other part is not scaled


def test_values_of_another_width_or_unscaled_data_are_given_as_they_are():
    info = DatasetInfo("csv:t.csv", "regression", "tabular", (2,), target_mean=[10.0], target_std=[2.0])
    assert info.own_units([[1.0, 2.0]]).tolist() == [[1.0, 2.0]]  # two values, one scaled target
    assert info.own_units(np.float64(1.0)).reshape(-1).tolist() == [12.0]  # one value, one target
    assert DatasetInfo("x", "regression", "tabular", (1,)).own_units([3.0]).tolist() == [3.0]
    import torch

    assert info.own_units(torch.tensor([[0.5]])).tolist() == [[11.0]]  # a tensor, any device, as float64


def test_a_regressions_preview_and_first_rows_give_its_targets_in_their_own_units():
    import torch

    from builder.data.splits import Dataset, Split

    info = DatasetInfo("text:t.csv", "regression", "tokens", (3,), input_dtype="int64", vocab=["<pad>", "a", "b"],
                       target_mean=[3.0], target_std=[2.0], options={"target": "score"})
    s = Split(torch.tensor([[1, 2, 0]]), torch.tensor([[0.5]]))
    ds = Dataset(info, s, s, s)
    assert ds.preview(1)[0]["y"] == [4.0]  # was the standardised 0.5
    assert ds.first_rows(1)["score"] == [4.0]
