"""builder.data.series: windows split by time without leakage, scaled on the training part; built-in series."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import builder.data.limits as limits
from builder.data import DatasetSource, list_datasets, load_dataset
from builder.data.series import WindowOptions, boundaries, load_series, window_starts
from builder.data.uploads import UploadFolder
from builder.errors import DatasetError
from tests.fuzz_budget import budget


@settings(max_examples=budget(60), deadline=None)
@given(n=st.integers(10, 400), lookback=st.integers(1, 30), horizon=st.integers(1, 8), stride=st.integers(1, 5),
       val=st.floats(0.05, 0.3), test=st.floats(0.05, 0.3))
def test_no_window_of_validation_or_test_touches_a_training_step(n, lookback, horizon, stride, val, test):
    w = WindowOptions(lookback, horizon, stride)
    try:
        tr, va, te = window_starts(n, w, val, test)
    except DatasetError as e:
        assert "shorter than one window" in str(e)
        return
    span = lookback + horizon
    a, b = boundaries(n, val, test)
    steps = [set((s[:, None] + np.arange(span)).reshape(-1).tolist()) for s in (tr, va, te)]
    assert max(steps[0]) < a <= min(steps[1]) and max(steps[1]) < b <= min(steps[2]) and max(steps[2]) < n
    assert all(np.all(np.diff(s) == stride) for s in (tr, va, te) if len(s) > 1)


def _csv(n: int = 120) -> bytes:
    t = np.arange(n)
    rows = [f"{i},{np.sin(i / 4):.5f},{i * 0.5 + 10:.3f},{'up' if np.sin(i / 4) > 0 else 'down'}" for i in t[::-1]]
    return ("time,a,b,state\n" + "\n".join(rows) + "\n").encode()


def test_a_csv_series_is_ordered_windowed_and_scaled_on_training_only(tmp_path):
    ds = load_series(_csv(), time_column="time", columns=["a", "b"], lookback=6, horizon=2, name="s.csv")
    assert ds.info.task == "forecast" and ds.train.X.shape[1:] == (6, 2) and ds.train.y.shape[1] == 4
    a = ds.info.series["boundaries"][0]
    raw_b = np.arange(120) * 0.5 + 10  # in time order although the file is reversed
    assert np.isclose(ds.info.input_mean[1], raw_b[:a].mean())  # training part only
    first = ds.info.own_units(ds.train.y[:1])[0]
    assert np.allclose(first, [np.sin(6 / 4), raw_b[6], np.sin(7 / 4), raw_b[7]], atol=1e-3)
    cls = load_series(_csv(), time_column="time", columns=["a"], target="state", lookback=5, name="s.csv")
    assert cls.info.task == "binary" and cls.info.class_names == ["down", "up"]
    uploads = UploadFolder(tmp_path / "up")
    ref = uploads.save("s.csv", _csv())
    ds2 = load_dataset({"kind": "series", "name": "s.csv", "file": ref,
                        "options": {"time_column": "time", "columns": ["a", "b"], "lookback": 6, "horizon": 2}},
                       uploads=uploads)
    assert torch.equal(ds2.test.y, ds.test.y) and DatasetSource.of(ds2.info).to_spec()["kind"] == "series"


def test_series_problems_are_named_at_once_and_sizes_bounded(monkeypatch):
    with pytest.raises(DatasetError) as e:
        load_series(_csv(), lookback=0, horizon=0, name="s.csv")
    assert "lookback" in str(e.value) and "horizon" in str(e.value)
    with pytest.raises(DatasetError, match="shorter than one window"):
        load_series(_csv(40), lookback=30, name="s.csv")
    monkeypatch.setattr(limits, "MAX_WINDOW_CELLS", 100)
    with pytest.raises(DatasetError, match="MAX_WINDOW_CELLS"):
        load_series(_csv(), lookback=6, name="s.csv")


@pytest.mark.parametrize("name", ["sunspots", "co2", "nile"])
def test_builtin_series_load_offline_with_their_source(name):
    ds = load_dataset(name, stride=3) if name == "co2" else load_dataset(name)
    assert ds.info.task == "forecast" and len(ds.test) > 0 and torch.isfinite(ds.train.X).all()
    d = next(d for d in list_datasets() if d["name"] == name)
    assert "statsmodels" in d["origin"] and "public domain" in d["licence"]


def test_windows_for_the_data_page_are_in_the_series_units():
    from builder.data.series import series_windows

    ds = load_series(_csv(), time_column="time", columns=["b"], lookback=4, horizon=2, name="s.csv")
    w = series_windows(ds, 2, "train")
    assert np.allclose(np.asarray(w[0]["inputs"]).reshape(-1), np.arange(4) * 0.5 + 10)
    assert np.allclose(np.asarray(w[0]["targets"]).reshape(-1), np.arange(4, 6) * 0.5 + 10)
