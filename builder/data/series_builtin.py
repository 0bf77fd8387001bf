"""Built-in series that work offline: ``sunspots``, ``co2`` and ``nile``, read from the files statsmodels ships.

The files are read where statsmodels installs them (``statsmodels/datasets/<name>/<name>.csv``), without
importing statsmodels (about 3 s); each is public domain, as statsmodels' ``COPYRIGHT`` for it says. Each loads
as forecasting windows (:func:`builder.data.series.series_dataset`): split by time, scaled on the training part.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from builder.data.builtin import register_dataset
from builder.data.series import WindowOptions, series_dataset
from builder.data.splits import Dataset, DatasetInfo
from builder.errors import DatasetError

_HELP = {"lookback": "past steps the model sees", "horizon": "steps to forecast",
         "stride": "steps between window starts"}
_LICENCE = "public domain (as statsmodels' COPYRIGHT for the set states)"


@functools.lru_cache(maxsize=4)
def statsmodels_series(name: str) -> tuple[np.ndarray, str]:
    """The values of statsmodels' bundled ``name`` series (missing weeks of co2 interpolated) and its column."""
    spec = importlib.util.find_spec("statsmodels")
    path = Path(spec.origin).parent / "datasets" / name / f"{name}.csv" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise DatasetError(f"the built-in series {name} is read from statsmodels' bundled files; received: no "
                           "statsmodels installed. Fix: pip install 'layerlab[sequences]'")
    import pandas as pd  # lazy: heavy (pandas)

    df = pd.read_csv(path)
    col = df.columns[-1]
    return df[col].astype(float).interpolate(limit_direction="both").to_numpy(), str(col)


def _register(name: str, description: str, source: str, lookback: int, horizon: int) -> None:
    @register_dataset(name, description=description + " Input node: shape [lookback, 1]; the last Linear gives "
                      "horizon values.", modality="series", task="forecast",
                      options={"lookback": lookback, "horizon": horizon, "stride": 1}, help=_HELP,
                      origin=f"statsmodels.datasets.{name} (bundled with statsmodels); {source}", licence=_LICENCE,
                      splits=True)
    def load(seed: int, val_fraction: float, test_fraction: float, task: str | None, lookback: int, horizon: int,
             stride: int) -> Dataset:
        if task not in (None, "forecast"):
            raise DatasetError(f"{name} is a series to forecast; received: task={task!r}. Fix: leave the task")
        values, col = statsmodels_series(name)
        info = DatasetInfo(name=name, source=name, task="forecast", modality="series", input_shape=(lookback, 1),
                           feature_names=[col], description=description)
        return series_dataset(values, info, WindowOptions(lookback, horizon, stride), seed=seed,
                              val_fraction=val_fraction, test_fraction=test_fraction)


_register("sunspots", "Yearly sunspot numbers, 1700-2008 (309 steps, an 11-year cycle).",
          "NOAA National Geophysical Data Center", lookback=22, horizon=1)
_register("co2", "Weekly atmospheric CO2 at Mauna Loa, 1958-2001 (2,284 steps; 59 missing weeks interpolated; "
          "trend plus a yearly cycle).", "Scripps Institution of Oceanography (Keeling et al.)", lookback=52,
          horizon=4)
_register("nile", "Yearly flow of the Nile at Aswan, 1871-1970 (100 steps, a change point near 1898).",
          "Cobb (1978), Biometrika", lookback=10, horizon=1)

__all__ = ["statsmodels_series"]
