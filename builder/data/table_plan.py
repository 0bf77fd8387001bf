"""A CSV table's encoding, decided over chunks of text cells and applied chunk by chunk (issue 20).

Both ways a CSV is loaded go through here: in memory (the whole table as one chunk) and streamed into the table
cache (:mod:`builder.data.table_cache`, many chunks), so both give the same numbers. The target and the one-hot
columns are read as text (a chunk's number inference never changes a level's spelling), the other columns as
pandas infers them per chunk (fast) with text chunks converted by :func:`numeric`; :class:`TablePlan` counts rows,
decides each column's kind (numeric, one-hot text with its levels, empty, or numeric with junk: an error with
line numbers) and the target's task and classes (pass 1); :meth:`TablePlan.encode` turns a chunk into float32
features before standardisation and targets (pass 2); :func:`standardise` fills missing values with the
training median and standardises numeric columns on training statistics. Example::

    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": ["1", "2", None, "4"], "c": ["x", "y", "x", "x"], "t": ["p", "q", "p", "q"]})
    >>> plan = TablePlan("t", None, "t.csv")
    >>> plan.scan(df)
    >>> enc = plan.decide()
    >>> enc.names, enc.task, enc.class_names
    (['a', 'c=x', 'c=y'], 'binary', ['p', 'q'])
    >>> X, y = plan.encode(df)
    >>> X.tolist()[2], y.tolist()
    ([nan, 1.0, 0.0], [0, 1, 0, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

import builder.data.limits as limits
from builder.data.files import natural_key
from builder.data.splits import TASKS, Dataset, DatasetInfo, finish, split_indices
from builder.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

MISSING = "<missing>"  # the level of an empty cell in a text column
_BOOL = {"True": 1.0, "TRUE": 1.0, "true": 1.0, "False": 0.0, "FALSE": 0.0, "false": 0.0}  # pandas's words
MAX_CLASSES = 1000


def numeric(s: pd.Series) -> pd.Series:
    """Text cells as numbers (NaN where a cell is empty or not a number; pandas's true/false words are 1/0)."""
    import pandas as pd  # lazy: heavy (pandas)

    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna() & s.notna()
    if bad.any():
        num = num.astype(np.float64)
        num[bad] = s[bad].map(_BOOL)
    return num


def _levels_of(s: pd.Series) -> pd.Series:
    """A text column's cells as their levels (stripped; empty cells :data:`MISSING`). Cells pandas kept as Python
    objects of another kind (an integer past 64 bits) are read as their text.

    >>> import pandas as pd
    >>> _levels_of(pd.Series([" a", None, 2**64], dtype=object)).tolist()
    ['a', '<missing>', '18446744073709551616']
    """
    return s.astype(str).str.strip().where(s.notna(), MISSING)


@dataclass
class _Column:
    name: str
    notna: int = 0
    numeric: int = 0
    bad_lines: list[int] = field(default_factory=list)
    bad_examples: list[str] = field(default_factory=list)
    levels: set[str] | None = field(default_factory=set)  # None: more than MAX_CATEGORIES
    number_chunks: bool = False  # some chunk had only numbers here (read as numbers: no text levels seen)


@dataclass
class Encoding:
    """What pass 1 decided: the encoded feature names and kinds, the task and its classes, row counts."""

    names: list[str]
    kinds: list[str]  # "num" | "cat" per encoded feature
    task: str
    class_names: list[str]
    rows: int  # rows kept (with a target value)
    dropped: int  # rows without a target value
    plan: list[tuple[str, str, Any]]  # (column, "num" | "cat", levels)

    @property
    def width(self) -> int:
        """Encoded features per row."""
        return len(self.names)

    def to_dict(self) -> dict:
        """JSON-able form (the cache entry's meta)."""
        return {"names": self.names, "kinds": self.kinds, "task": self.task, "class_names": self.class_names,
                "rows": self.rows, "dropped": self.dropped, "plan": [list(p) for p in self.plan]}

    @classmethod
    def from_dict(cls, d: dict) -> Encoding:
        """The inverse of :meth:`to_dict`."""
        return cls(list(d["names"]), list(d["kinds"]), str(d["task"]), list(d["class_names"]), int(d["rows"]),
                   int(d["dropped"]), [(str(c), str(k), v) for c, k, v in d["plan"]])


class TablePlan:
    """Pass 1 over a table's chunks (:meth:`scan`, then :meth:`decide`), pass 2 (:meth:`encode`)."""

    def __init__(self, target: str, task: str | None, label: str, *, cell_limit: bool = True):
        if task is not None and task not in TASKS:
            raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        self.target, self.task, self.label, self.cell_limit = target, task, label, cell_limit
        self.columns: list[_Column] | None = None
        self.rows = self.dropped = 0
        self.y_numeric, self.y_bad = True, None
        self.y_values: set[float] | None = set()  # None: more than 20 distinct numbers
        self.y_keys: set[str] | None = set()  # None: more than MAX_CLASSES
        self.encoding: Encoding | None = None

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        df.columns = [str(c).strip() for c in df.columns]
        if self.columns is None:
            label = self.label
            if df.shape[1] > limits.MAX_CSV_COLUMNS:
                raise DatasetError(f"{label}: {df.shape[1]} columns is more than the limit of {limits.MAX_CSV_COLUMNS}")
            if self.target not in df.columns:
                raise DatasetError(f"{label}: target column {self.target!r} not found; columns are: "
                                   f"{', '.join(map(repr, df.columns[:30]))}")
            if df.shape[1] < 2:
                raise DatasetError(f"{label}: only the target column {self.target!r}; at least one feature column "
                                   "is needed")
            self.columns = [_Column(c) for c in df.columns if c != self.target]
        return df

    def scan(self, df: pd.DataFrame) -> None:
        """Pass 1 over one chunk (the target read as text; the index the 0-based data row)."""
        from pandas.api.types import is_numeric_dtype  # lazy: heavy (pandas)

        df = self._frame(df)
        self.rows += len(df)
        keep = df[self.target].notna()
        if not keep.all():
            self.dropped += int((~keep).sum())
            df = df[keep]
        ycol = df[self.target]
        y_num = numeric(ycol)
        if self.y_numeric and not y_num.notna().all():
            self.y_numeric, self.y_bad = False, ycol[y_num.isna()].iloc[0]
        if self.y_numeric and self.y_values is not None:
            self.y_values.update(np.unique(y_num.to_numpy(dtype=np.float64)).tolist())
            if len(self.y_values) > 20:
                self.y_values = None
        if self.y_keys is not None:
            self.y_keys.update(ycol.str.strip().unique().tolist())
            if len(self.y_keys) > MAX_CLASSES:
                self.y_keys = None
        for col in self.columns or []:
            s = df[col.name]
            notna = s.notna()
            n_notna = int(notna.sum())
            if n_notna == 0:
                if col.levels is not None and len(s):
                    col.levels.add(MISSING)
                continue
            col.notna += n_notna
            if is_numeric_dtype(s.dtype):  # pandas read every cell of this chunk as a number (or true/false)
                col.numeric += n_notna
                col.number_chunks = True
                continue
            num = numeric(s)
            bad = num.isna() & notna
            col.numeric += int(num.notna().sum())
            if bad.any() and len(col.bad_lines) < 5:
                col.bad_lines += [int(i) + 2 for i in s.index[bad.to_numpy()][: 5 - len(col.bad_lines)]]
                col.bad_examples += [str(v)[:40] for v in s[bad].iloc[: 3 - len(col.bad_examples)]]
            if col.levels is not None:
                col.levels.update(_levels_of(s).unique().tolist())
                if len(col.levels) > limits.MAX_CATEGORIES:
                    col.levels = None

    def pending(self) -> list[str]:
        """Text columns whose levels pass 1 could not see whole (some chunks were all numbers, read as numbers):
        read them again as text with :meth:`scan_levels` before :meth:`decide`."""
        return [c.name for c in self.columns or [] if c.number_chunks and c.notna and c.numeric < c.notna
                and c.numeric / c.notna < 0.8 and c.levels is not None]

    def scan_levels(self, df: pd.DataFrame, names: list[str], first: bool) -> None:
        """The levels of text columns ``names`` from a chunk read with those columns (and the target) as text;
        ``first``: the first chunk of that pass (the levels seen so far are replaced)."""
        df = self._frame(df)
        df = df[df[self.target].notna()]
        for col in self.columns or []:
            if col.name not in names:
                continue
            if first:
                col.levels, col.number_chunks = set(), False
            if col.levels is not None:
                col.levels.update(_levels_of(df[col.name]).unique().tolist())
                if len(col.levels) > limits.MAX_CATEGORIES:
                    col.levels = None

    def text_columns(self) -> list[str]:
        """The columns to read as text: the target, and after :meth:`decide` the one-hot columns."""
        enc = self.encoding
        return [self.target, *([c for c, k, _ in enc.plan if k == "cat"] if enc is not None else [])]

    def decide(self) -> Encoding:
        """The encoding, once every chunk is scanned. Raises DatasetError (see :func:`~builder.data.load_csv`)."""
        label, target = self.label, self.target
        if self.columns is None or self.rows == 0:
            raise DatasetError(f"{label}: the file has a header but no data rows")
        if self.rows > limits.MAX_CSV_ROWS:
            raise DatasetError(f"{label}: {self.rows:,} rows, more than the limit of {limits.MAX_CSV_ROWS:,} "
                               "(limits.MAX_CSV_ROWS). Fix: sample the file down first")
        kept = self.rows - self.dropped
        if kept == 0:
            raise DatasetError(f"{label}: the target column {target!r} is empty in every row")
        task = self.task
        if task is None:
            if not self.y_numeric:
                task = "multiclass"
            else:
                uniq = np.asarray(sorted(self.y_values or []))
                integral = self.y_values is not None and bool(np.all(np.isclose(uniq, np.round(uniq))))
                task = "multiclass" if integral else "regression"
            if task == "multiclass" and self.y_keys is not None and len(self.y_keys) == 2:
                task = "binary"
        class_names: list[str] = []
        if task in ("multiclass", "binary"):
            if self.y_keys is None:
                raise DatasetError(f"{label}: target {target!r} has more than {MAX_CLASSES} classes (limit "
                                   f"{MAX_CLASSES}); is it an id column? Use task regression or another target")
            class_names = sorted(self.y_keys, key=natural_key)
            if len(class_names) < 2:
                raise DatasetError(f"{label}: target {target!r} has a single class ({class_names[0]!r}); "
                                   "classification needs at least two classes; pick another target or task "
                                   "regression")
            if task == "binary" and len(class_names) != 2:
                raise DatasetError(f"{label}: task binary needs exactly 2 classes; target {target!r} has "
                                   f"{len(class_names)}: use task multiclass")
        elif task == "regression" and not self.y_numeric:
            raise DatasetError(f"{label}: task regression needs a numeric target; column {target!r} has "
                               f"non-numeric value {self.y_bad!r}")
        plan: list[tuple[str, str, Any]] = []
        names: list[str] = []
        kinds: list[str] = []
        for col in self.columns:
            if col.notna == 0:
                continue  # an empty column carries nothing
            if col.numeric == col.notna:
                plan.append((col.name, "num", None))
                names.append(col.name)
                kinds.append("num")
                continue
            if col.numeric / max(col.notna, 1) >= 0.8:
                examples = ", ".join(repr(v) for v in col.bad_examples)
                raise DatasetError(f"{label}: column {col.name!r} is numeric but has non-numeric values ({examples}) "
                                   f"on line(s) {', '.join(map(str, col.bad_lines))}; fix or remove those values")
            if col.levels is None:
                raise DatasetError(f"{label}: text column {col.name!r} has more than {limits.MAX_CATEGORIES} distinct "
                                   f"values (limit {limits.MAX_CATEGORIES} for one-hot encoding); drop it or group "
                                   "its values")
            levels = sorted(col.levels, key=natural_key)
            plan.append((col.name, "cat", levels))
            names += [f"{col.name}={lv}" for lv in levels]
            kinds += ["cat"] * len(levels)
        if not plan:
            raise DatasetError(f"{label}: no usable feature columns besides the target {target!r}")
        width = len(names)
        if width > limits.MAX_FEATURES or (self.cell_limit and width * kept > limits.MAX_FEATURE_CELLS):
            wide = sorted(((len(v), c) for c, k, v in plan if k == "cat"), reverse=True)[:3]
            raise DatasetError(f"{label}: encoding gives {width} features x {kept} rows, over the limits of "
                               f"{limits.MAX_FEATURES} features and {limits.MAX_FEATURE_CELLS:,} values; the widest "
                               "text columns: " + ", ".join(f"{c!r} ({n} values)" for n, c in wide)
                               + ". Fix: drop or group those text columns, or use fewer rows")
        self.encoding = Encoding(names, kinds, task, class_names, kept, self.dropped, plan)
        return self.encoding

    def encode(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Pass 2 over one chunk: float32 features (NaN where a number is missing; before standardisation) and
        the targets (int64 class indices, float32 values, or zeros for other tasks)."""
        import pandas as pd  # lazy: heavy (pandas)

        enc = self.encoding if self.encoding is not None else self.decide()
        df = self._frame(df)
        df = df[df[self.target].notna()]
        n = len(df)
        X = np.zeros((n, enc.width), dtype=np.float32)
        j = 0
        rows = np.arange(n)
        for c, kind, levels in enc.plan:
            s = df[c]
            if kind == "num":
                X[:, j] = numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)
                j += 1
                continue
            codes = pd.Categorical(_levels_of(s), categories=levels).codes.astype(np.int64)
            ok = codes >= 0
            X[rows[ok], j + codes[ok]] = 1.0
            j += len(levels)
        ycol = df[self.target]
        if enc.task in ("multiclass", "binary"):
            index = {k: i for i, k in enumerate(enc.class_names)}
            y = ycol.str.strip().map(index).to_numpy(dtype=np.int64)
        elif enc.task == "regression":
            y = numeric(ycol).to_numpy(dtype=np.float32)
        else:
            y = np.zeros(n, dtype=np.float32)
        return X, y


def plan_table(plan: TablePlan, frames: Callable[..., Iterable[pd.DataFrame]],
               check: Callable[[TablePlan], None] | None = None) -> Encoding:
    """Pass 1 of ``plan`` over ``frames(text=[...], only=None)`` (a fresh pass over the table's chunks, the named
    columns read as text, only the ``only`` columns when given), the text columns pass 1 saw partly as numbers
    read again as text, then :meth:`TablePlan.decide`. ``check(plan)`` runs after every chunk (limits)."""
    for df in frames(text=[plan.target]):
        plan.scan(df)
        if check is not None:
            check(plan)
    pend = plan.pending()
    if pend:
        first = True
        for df in frames(text=[plan.target, *pend], only=[plan.target, *pend]):
            plan.scan_levels(df, pend, first)
            first = False
            if check is not None:
                check(plan)
    return plan.decide()


def standardise(X: np.ndarray, y: np.ndarray, enc: Encoding, info: DatasetInfo, *, seed: int, val_fraction: float,
                test_fraction: float) -> Dataset:
    """Split, fill missing numbers with the training median, standardise numeric columns on the training split's
    mean and standard deviation (one-hot columns stay 0/1), and wrap as tensors. ``X`` (rows x features, float32
    before standardisation, e.g. the cache's memory map) is copied once; it is not changed."""
    classification = enc.task in ("multiclass", "binary")
    tr, _, _ = split_indices(y if classification else None, len(X), seed=seed, val_fraction=val_fraction,
                             test_fraction=test_fraction, stratify=classification)
    out = np.array(X, dtype=np.float32)
    mean, std = np.zeros(enc.width), np.ones(enc.width)  # one-hot columns: as they are
    for i, kind in enumerate(enc.kinds):
        if kind != "num":
            continue
        col = out[:, i].astype(np.float64)
        missing = np.isnan(col)
        if missing.any():
            ctr = col[tr]
            med = float(np.nanmedian(ctr)) if np.isfinite(ctr).any() else 0.0
            col[missing] = med
            info.notes.append(f"missing values in {enc.names[i]!r} filled with the training median {med:g}")
        if not np.isfinite(col).all():
            raise DatasetError(f"{info.name.removeprefix('csv:')}: column {enc.names[i]!r} has infinite values (or "
                               f"numbers past float32's range, about ±3.4e38); received: {int((~np.isfinite(col)).sum())} "
                               "such cell(s). Fix: rescale the column, or remove those cells or the column")
        ctr = col[tr]
        m, sd = ctr.mean(), ctr.std()
        mean[i], std[i] = m, (sd if sd > 1e-12 else 1.0)
        out[:, i] = (col - m) / std[i]
    info.input_mean, info.input_std = mean.tolist(), std.tolist()  # the data's own units back (Try it, drift)
    info.categories = {c: [str(v) for v in levels] for c, k, levels in enc.plan if k == "cat"}
    return finish(out, y, info, task=None, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                  standardise=False)


__all__ = ["Encoding", "TablePlan", "numeric", "plan_table", "standardise", "MISSING"]
