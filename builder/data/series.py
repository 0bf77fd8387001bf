"""Time series in: a table of numeric columns cut into windows, split by time, scaled on the training part.

A series (rows = time steps, columns = variables) becomes windows of ``lookback`` steps as the input
(N, lookback, columns) and, for task ``forecast``, the next ``horizon`` steps as the target (N, horizon x
columns, flattened step by step); ``stride`` steps separate window starts. Sequence classification labels
each window by a label column's value at its last step.

The timeline is cut first, at ``1 - val_fraction - test_fraction`` and ``1 - test_fraction`` of its steps;
every window lies whole inside one part (:func:`window_starts`), so no validation or test window sees a step
the training windows are fitted on, and the scaling (each column's mean and standard deviation) is measured on
the training part only. Example::

    >>> tr, va, te = window_starts(20, WindowOptions(lookback=3, horizon=1, stride=1), 0.2, 0.2)
    >>> tr.tolist()[-1] + 3 + 1 <= 12 <= va.tolist()[0], va.tolist()[-1] + 4 <= 16 <= te.tolist()[0]
    (True, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import builder.data.limits as limits
from builder.data.files import read_limited
from builder.data.splits import Dataset, DatasetInfo, Split, dataset_record
from builder.data.tabular import read_csv_capped
from builder.errors import DatasetError


@dataclass(frozen=True)
class WindowOptions:
    """How a series is cut: ``lookback`` input steps, ``horizon`` steps to forecast, ``stride`` between starts."""

    lookback: int = 24
    horizon: int = 1
    stride: int = 1

    def problems(self) -> list[str]:
        """Every option out of range (empty: fine)."""
        out = []
        for name in ("lookback", "horizon", "stride"):
            (lo, hi), v = limits.OPTION_RANGES[name], getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                out.append(f"{name} is an integer from {lo} to {hi}; received: {str(v)[:40]}")
        return out

    def check(self) -> WindowOptions:
        """Self, or DatasetError naming every problem at once."""
        problems = self.problems()
        if problems:
            raise DatasetError(f"bad window options: {'; '.join(problems)}. Fix: e.g. lookback=24, horizon=1, "
                               "stride=1")
        return self


def boundaries(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """The steps where validation and test begin: ``n * (1 - val - test)`` and ``n * (1 - test)``."""
    for nm, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(f, int | float) and 0 < f < 0.45):
            raise DatasetError(f"{nm} of a series is between 0 and 0.45; received: {f!r}. Fix: e.g. 0.15")
    return int(n * (1 - val_fraction - test_fraction)), int(n * (1 - test_fraction))


def window_starts(n: int, w: WindowOptions, val_fraction: float, test_fraction: float,
                  span: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first step of every training, validation and test window of a series of ``n`` steps: each window
    (``span`` steps, by default ``lookback + horizon``) lies whole inside its part of the timeline. Raises
    DatasetError when a part holds no window."""
    span = w.lookback + w.horizon if span is None else span
    a, b = boundaries(n, val_fraction, test_fraction)
    parts = []
    for name, lo, hi in (("training", 0, a), ("validation", a, b), ("test", b, n)):
        starts = np.arange(lo, hi - span + 1, w.stride, dtype=np.int64)
        if len(starts) == 0:
            raise DatasetError(f"the {name} part of the series ({hi - lo} steps) is shorter than one window of "
                               f"{span} steps; received: lookback {w.lookback}, horizon {w.horizon} over {n} steps. "
                               "Fix: a shorter lookback or horizon, or smaller val/test fractions")
        parts.append(starts)
    return parts[0], parts[1], parts[2]


def series_dataset(values: np.ndarray, info: DatasetInfo, w: WindowOptions, *, labels: np.ndarray | None = None,
                   seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    """Windows of ``values`` (steps, columns) for ``forecast`` (``labels`` None) or sequence classification
    (``labels``: class ids per step, the window's label at its last step), scaled by the training part."""
    import torch  # lazy: heavy (torch)

    w.check()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n, f = values.shape
    span = _check_windows(info.name, n, f, w, forecast=labels is None)
    a, b = boundaries(n, val_fraction, test_fraction)
    starts = window_starts(n, w, val_fraction, test_fraction, span)
    mean, std = _train_stats(values, a)
    std = np.where(std > 1e-8, std, 1.0)
    scaled = _scaled(values, mean, std)
    steps = np.arange(w.lookback)
    if labels is None:
        info.task = "forecast"
        info.out_size = w.horizon * f
        info.target_mean = np.tile(mean, w.horizon).tolist()
        info.target_std = np.tile(std, w.horizon).tolist()
    else:
        info.num_classes = len(info.class_names)
        info.out_size = 1 if info.task == "binary" else info.num_classes

    def part(s: np.ndarray) -> Split:
        X = torch.from_numpy(np.ascontiguousarray(scaled[s[:, None] + steps[None, :]]))  # (N, lookback, f)
        if labels is None:
            ahead = s[:, None] + w.lookback + np.arange(w.horizon)[None, :]
            y = torch.from_numpy(np.ascontiguousarray(scaled[ahead].reshape(len(s), -1)))  # (N, horizon * f)
        else:
            y = torch.from_numpy(labels[s + w.lookback - 1].astype(np.int64))
        return Split(X, y)
    info.input_mean, info.input_std = mean.tolist(), std.tolist()
    info.series = {**asdict(w), "steps": n, "boundaries": [a, b], "columns": list(info.feature_names)}
    info.options.update(asdict(w))
    info.notes.append(f"series of {n} steps cut at steps {a} and {b} (training, validation, test); every window "
                      "lies inside one part; columns scaled by the training part's mean and standard deviation")
    dataset_record(info, (w.lookback, f), starts, seed, val_fraction, test_fraction)
    return Dataset(info, *(part(s) for s in starts))


_SCALE_ROWS = 65_536


def _train_stats(values: np.ndarray, a: int) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation over the first ``a`` steps: ``values[:a].mean(0)`` and
    ``.std(0)``, the same numbers whatever the layout. A series read from a CSV is column-major (:func:`_numbers`),
    over which numpy would sum each column pairwise; a row-major array's columns it sums row by row, so its blocks
    of rows, copied row-major, are summed on from the running total (vstack of it and the block: one reduction)."""
    if values.flags.c_contiguous or values.shape[1] == 1:
        return values[:a].mean(0), values[:a].std(0)

    def total(part) -> np.ndarray:
        acc = None
        for r in range(0, a, _SCALE_ROWS):
            block = part(np.ascontiguousarray(values[r:min(r + _SCALE_ROWS, a)]))
            acc = block.sum(0) if acc is None else np.add.reduce(np.vstack([acc[None], block]), axis=0)
        return acc

    mean = total(lambda b: b) / a

    def squares(b: np.ndarray) -> np.ndarray:
        b -= mean
        b *= b
        return b
    return mean, np.sqrt(total(squares) / a)


def _scaled(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``((values - mean) / std).astype(float32)``, the same numbers, computed a block of rows at a time into the
    float32 result: whole, the float64 difference and the float32 copy were 2.5 times the series at once."""
    out = np.empty(values.shape, dtype=np.float32)
    for r in range(0, len(values), _SCALE_ROWS):
        block = values[r:r + _SCALE_ROWS] - mean
        block /= std
        out[r:r + _SCALE_ROWS] = block
    return out


def _check_windows(name: str, n: int, f: int, w: WindowOptions, *, forecast: bool) -> int:
    """The steps one window spans; refuses windows of ``n`` steps and ``f`` columns over
    :data:`~builder.data.limits.MAX_WINDOW_CELLS` values (checked before the series is converted or scaled)."""
    span = w.lookback + (w.horizon if forecast else 0)
    cells = (n // w.stride + 1) * span * f
    if cells > limits.MAX_WINDOW_CELLS:
        raise DatasetError(f"{name}: the windows hold {cells:,} values, over the limit of "
                           f"{limits.MAX_WINDOW_CELLS:,} (limits.MAX_WINDOW_CELLS). Fix: a larger stride or a "
                           "shorter lookback")
    return span


def numeric_columns(df: Any) -> list[str]:
    """The columns of a table a series may be made of: numbers (a date or a word column is not one, whatever
    pandas' version calls its text: pandas 3 reads text as its own ``str`` dtype, which numpy cannot interpret).

    >>> import pandas as pd
    >>> numeric_columns(pd.DataFrame({"month": ["2000-01-01"], "sales": [3.5], "n": [2], "holiday": [True]}))
    ['sales', 'n', 'holiday']
    """
    import pandas as pd  # lazy: heavy (pandas)

    return [str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]


def load_series(path: str | Path | bytes, columns: list[str] | None = None, *, time_column: str | None = None,
                target: str | None = None, task: str | None = None, lookback: int = 24, horizon: int = 1,
                stride: int = 1, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15,
                name: str | None = None) -> Dataset:
    """A CSV series: numeric ``columns`` (default: every numeric column but the time and label columns), rows
    in the order of ``time_column`` when given (else the file's), as windows (:func:`series_dataset`). With
    ``target`` (a label column) the windows are classified; else task ``forecast``.

    Raises:
        DatasetError: missing or non-numeric columns, gaps, a size limit, too short for the windows.
    """
    import pandas as pd  # lazy: heavy (pandas)

    w = WindowOptions(lookback, horizon, stride).check()
    label = name or (Path(path).name if not isinstance(path, bytes) else "uploaded series")
    data = read_limited(path, limits.MAX_CSV_UPLOAD_BYTES, "CSV series")
    df = read_csv_capped(data, label, limits.MAX_SERIES_ROWS, what="steps")  # bounded before it is whole
    del data  # the bytes are parsed
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) > limits.MAX_SERIES_ROWS:
        raise DatasetError(f"{label}: {len(df):,} steps, over the limit of {limits.MAX_SERIES_ROWS:,} "
                           "(limits.MAX_SERIES_ROWS). Fix: resample it coarser")
    named = [c for c in (time_column, target, *(columns or [])) if c]
    missing = [c for c in named if c not in df.columns]
    if missing:
        raise DatasetError(f"{label}: column(s) {', '.join(map(repr, missing))} not found; received columns: "
                           f"{', '.join(map(repr, df.columns[:30]))}. Fix: name columns of the file")
    order = None  # the rows in time order (sort_values's stable sort, missing times last); None: the file's
    if time_column:
        t = pd.to_datetime(df[time_column], errors="coerce") if not pd.api.types.is_numeric_dtype(df[time_column]) \
            else df[time_column]
        order = t.reset_index(drop=True).sort_values(kind="stable").index.to_numpy()
        del t
    numeric = numeric_columns(df)
    cols = columns or [c for c in numeric if c not in (time_column, target)]
    bad = [c for c in cols if c not in numeric]
    if not cols or bad:
        raise DatasetError(f"{label}: a series needs numeric columns; received: "
                           f"{'none' if not cols else ', '.join(map(repr, bad[:5])) + ' not numeric'}. Fix: "
                           "columns=[...] of numbers (a time column as time_column=...)")
    if len(cols) > limits.MAX_SERIES_COLUMNS:
        raise DatasetError(f"{label}: {len(cols)} series columns, over the limit of {limits.MAX_SERIES_COLUMNS}")
    _check_windows(f"series:{label}", len(df), len(cols), w, forecast=not target)  # before any copy
    info = DatasetInfo(name=f"series:{label}", task="forecast", modality="series", input_shape=(w.lookback, len(cols)),
                       feature_names=list(cols), source="series",
                       description=f"windows of {len(cols)} column(s) of {label}")
    info.options.update({k: v for k, v in (("columns", columns), ("time_column", time_column),
                                           ("target", target)) if v})
    labels = None
    if target:
        keys = df[target].astype(str).str.strip()
        names = sorted(keys.unique().tolist())
        if not 2 <= len(names) <= 1000:
            raise DatasetError(f"{label}: a label column has 2 to 1000 classes; received: {len(names)}")
        info.class_names = names
        info.task = task or ("binary" if len(names) == 2 else "multiclass")
        labels = keys.map({k: i for i, k in enumerate(names)}).to_numpy(dtype=np.int64)
        del keys
        if order is not None:
            labels = labels[order]
    elif task not in (None, "forecast"):
        raise DatasetError(f"{label}: a series without a label column is forecast; received: task {task!r}. Fix: "
                           "task forecast, or target=<a label column> for sequence classification")
    values = _numbers(df, cols, order, label)
    del df  # the table is read: only its numbers go on
    return series_dataset(values, info, w, labels=labels, seed=seed, val_fraction=val_fraction,
                          test_fraction=test_fraction)


def _numbers(df: Any, cols: list[str], order: np.ndarray | None, label: str) -> np.ndarray:
    """The ``cols`` of ``df`` as one float64 array (steps, columns; column-major) in ``order``, gaps filled linearly,
    each column dropped from ``df`` once copied: the table and its numbers are not held whole at once
    (``df[cols].to_numpy()``, a sort of the frame and a frame's ``interpolate`` were a copy each: an 85 MB CSV grew
    the server by 1.7 GB).
    Raises DatasetError for a column with no numbers at all or an infinite one."""
    import pandas as pd  # lazy: heavy (pandas)

    columns = np.empty((len(cols), len(df)), dtype=np.float64)  # column-major: filling one touches its pages only
    last = {c: j for j, c in enumerate(cols)}
    for j, c in enumerate(cols):
        column = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
        if last[c] == j:
            del df[c]  # the frame's own copy of it goes now (a time or label column read already)
        if order is not None:
            column = column[order]
        if np.isnan(column).any():  # one column at a time: a frame's interpolate fills each column on its own
            column = pd.Series(column).interpolate(limit_direction="both").to_numpy()
        if not np.isfinite(column).all():
            raise DatasetError(f"{label}: a column has no numbers at all or infinite values. Fix: drop it")
        columns[j] = column
    return columns.T


def series_windows(ds: Dataset, n: int = 4, split: str = "test") -> list[dict]:
    """The first ``n`` windows of a split in the series' own units, for a plot: ``inputs`` (lookback, columns),
    ``targets`` (horizon, columns) for a forecast or ``label`` for a classified window."""
    info, s = ds.info, getattr(ds, split)
    out = []
    for i in range(min(n, len(s))):
        item: dict[str, Any] = {"inputs": info.own_units(s.X[i], "input").tolist()}
        if info.task == "forecast":
            item["targets"] = info.own_units(s.y[i].reshape(-1)).reshape(-1, len(info.feature_names)).tolist()
        else:
            item["label"] = info.class_names[int(s.y[i])]
        out.append(item)
    return out


__all__ = ["numeric_columns", "WindowOptions", "boundaries", "window_starts", "series_dataset", "load_series", "series_windows"]
