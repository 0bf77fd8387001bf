"""What a forecaster shows: its forecasts of the first test windows beside what happened, lookback shaded.

A ``forecast`` run keeps, when it finishes (in its own process, before the test evaluation), the first test
windows in the series' own units: the lookback, the actual next steps and the model's forecast, in the run's
``forecast.json`` (:class:`KeepForecasts`); :func:`read_forecasts` reads them back and
:func:`forecast_figure` draws them for the Runs page (the page runs no model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from builder.data.disk import write_atomic
from builder.data.records import text as record_text
from builder.escape import plotly_text
from builder.training.callbacks import Callback
from builder.training.run_folder import read_json_file

KEPT_WINDOWS = 6


class KeepForecasts(Callback):
    """At the end of a ``forecast`` run, the first :data:`KEPT_WINDOWS` test windows with the model's forecast."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_before_test(self, trainer: Any) -> None:
        from builder.data.predictions import forward_all  # lazy: heavy (torch, numpy)
        from builder.data.series import series_windows  # lazy: heavy (numpy)

        ds = trainer.dataset
        if ds.info.task != "forecast" or not len(ds.test):
            return
        n = min(KEPT_WINDOWS, len(ds.test))
        out = forward_all(trainer.model, ds.test.X[:n]).float().cpu()
        cols = max(len(ds.info.feature_names), 1)
        pred = ds.info.own_units(out.reshape(n, -1)).reshape(n, -1, cols)
        windows = series_windows(ds, n, "test")
        for w, p in zip(windows, pred):
            w["forecast"] = p.tolist()

        data = {"columns": list(ds.info.feature_names), "windows": windows}
        write_atomic(self.path, json.dumps(data).encode("utf-8"), "the forecasts")


def read_forecasts(path: str | Path) -> dict:
    """A run's ``forecast.json`` (``{"columns", "windows": [{"inputs", "targets", "forecast"}]}``) as LayerLab
    writes it: at most :data:`KEPT_WINDOWS` windows of finite-size number arrays (float), column names as texts;
    empty when missing or damaged. The job's process wrote it, and the server draws it for whoever views the run:
    ten thousand windows were as many subplots, and a text among the numbers stopped the page.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "f.json").write_text(json.dumps({"columns": [{"x": 1}], "windows": [
    ...         {"inputs": [[1], [2]], "targets": [[3]], "forecast": [[2.5]]}, {"inputs": "x", "targets": [],
    ...         "forecast": []}] + [{"inputs": [[0]], "targets": [[0]], "forecast": [[0]]}] * 99}))
    ...     got = read_forecasts(Path(d) / "f.json")
    >>> got["columns"], len(got["windows"]), got["windows"][0]["forecast"].tolist()
    (['?'], 6, [[2.5]])
    """
    data = read_json_file(path)  # bounded: the job's process wrote it
    if not isinstance(data, dict) or not isinstance(data.get("windows"), list):
        return {}
    windows = []
    for w in data["windows"]:
        if len(windows) == KEPT_WINDOWS:
            break
        try:
            arrays = {k: np.asarray(w[k], dtype=float) for k in ("inputs", "targets", "forecast")}
        except (TypeError, ValueError, KeyError):
            continue
        if all(a.ndim in (1, 2) and a.size for a in arrays.values()):
            windows.append(arrays)
    cols = data.get("columns") if isinstance(data.get("columns"), list) else []
    return {"columns": [record_text(c) for c in cols[:10_000]],
            "windows": windows} if windows else {}


def forecast_figure(data: dict, column: int = 0) -> Any:
    """Forecast vs actual for each kept window (one row of panels), the lookback shaded."""
    import plotly.graph_objects as go  # lazy: heavy (plotly)
    from plotly.subplots import make_subplots  # lazy: heavy (plotly)

    windows = data.get("windows") or []
    fig = make_subplots(rows=1, cols=max(len(windows), 1), shared_yaxes=True, horizontal_spacing=0.02)
    for k, w in enumerate(windows, start=1):
        inp, tgt, fc = (np.asarray(w[key], dtype=float).reshape(len(w[key]), -1)[:, column]
                        for key in ("inputs", "targets", "forecast"))
        lb = len(inp)
        ahead = list(range(lb, lb + len(tgt)))
        show = k == 1
        fig.add_trace(go.Scatter(x=list(range(lb)), y=inp, name="lookback", line_color="#6366f1",
                                 showlegend=show), row=1, col=k)
        fig.add_trace(go.Scatter(x=ahead, y=tgt, name="actual", mode="lines+markers", line_color="#111827",
                                 showlegend=show), row=1, col=k)
        fig.add_trace(go.Scatter(x=ahead, y=fc, name="forecast", mode="lines+markers",
                                 line={"color": "#f59e0b", "dash": "dash"}, showlegend=show), row=1, col=k)
        # after the traces: plotly leaves shapes out of subplots that are still empty (exclude_empty_subplots)
        fig.add_vrect(x0=-0.5, x1=lb - 0.5, fillcolor="#e0e7ff", opacity=0.6, line_width=0, layer="below",
                      row=1, col=k)
    cols = data.get("columns") or [""]
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 36, "b": 10},
                      title=f"Forecast vs actual on test windows ({plotly_text(cols[column]) if column < len(cols) else ''}; "
                            "lookback shaded)")
    return fig


__all__ = ["KeepForecasts", "read_forecasts", "forecast_figure", "KEPT_WINDOWS"]
