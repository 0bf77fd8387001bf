"""CSV tables as tabular datasets: capped reading, encoding detection, one-hot text columns, standardisation."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

import builder.data.limits as limits
from builder.data.files import natural_key, read_head, read_limited
from builder.data.splits import TASKS, Dataset, DatasetInfo, finish, split_indices
from builder.errors import DatasetError


def load_csv(path: str | Path | bytes, target: str, task: str | None = None, *, seed: int = 0,
             val_fraction: float = 0.15, test_fraction: float = 0.15, name: str | None = None) -> Dataset:
    """Load a CSV file as a tabular dataset.

    Numeric columns are standardised (missing values filled with the training median), text columns are
    one-hot encoded (up to 100 categories). The task is inferred from the target column (text or few
    integer values: classification; otherwise regression) and can be overridden.

    Raises:
        DatasetError: empty file, missing target, non-numeric junk in a numeric column, a single class,
            too many rows, columns or categories, a file that is not CSV text.
    """
    import pandas as pd

    label = name or (Path(path).name if not isinstance(path, bytes) else "uploaded.csv")
    text, encoding_note = _read_checked_csv(path, label)
    try:
        df = pd.read_csv(io.StringIO(text), nrows=limits.MAX_CSV_ROWS + 1, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{label}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DatasetError(f"{label}: not a readable CSV file ({str(e).splitlines()[0][:200]})") from None
    del text
    if len(df) == 0:
        raise DatasetError(f"{label}: the file has a header but no data rows")
    if len(df) > limits.MAX_CSV_ROWS:
        raise DatasetError(f"{label}: more than {limits.MAX_CSV_ROWS} rows; sample the file down first")
    if df.shape[1] > limits.MAX_CSV_COLUMNS:
        raise DatasetError(f"{label}: {df.shape[1]} columns is more than the limit of {limits.MAX_CSV_COLUMNS}")
    df.columns = [str(c).strip() for c in df.columns]
    if target not in df.columns:
        raise DatasetError(f"{label}: target column {target!r} not found; columns are: "
                           f"{', '.join(map(repr, df.columns[:30]))}")
    if df.shape[1] < 2:
        raise DatasetError(f"{label}: only the target column {target!r}; at least one feature column is needed")
    n_rows = len(df)
    df = df.dropna(subset=[target])
    if len(df) == 0:
        raise DatasetError(f"{label}: the target column {target!r} is empty in every row")
    dropped = n_rows - len(df)
    ycol = df[target]
    features = df.drop(columns=[target])

    # --- target and task
    y_num = pd.to_numeric(ycol, errors="coerce")
    y_is_num = bool(y_num.notna().all())
    if task is None:
        if not y_is_num:
            task = "multiclass"
        else:
            uniq = np.unique(y_num.to_numpy())
            integral = bool(np.all(np.isclose(uniq, np.round(uniq))))
            task = "multiclass" if integral and len(uniq) <= 20 else "regression"
        if task == "multiclass" and ycol.nunique() == 2:
            task = "binary"
    if task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    class_names: list[str] = []
    if task in ("multiclass", "binary"):
        keys = ycol.astype(str).str.strip()
        class_names = sorted(keys.unique().tolist(), key=natural_key)
        if len(class_names) < 2:
            raise DatasetError(f"{label}: target {target!r} has a single class ({class_names[0]!r}); "
                               "classification needs at least two classes; pick another target or task "
                               "regression")
        if task == "binary" and len(class_names) != 2:
            raise DatasetError(f"{label}: task binary needs exactly 2 classes; target {target!r} has "
                               f"{len(class_names)}: use task multiclass")
        if len(class_names) > 1000:
            raise DatasetError(f"{label}: target {target!r} has {len(class_names)} classes (limit 1000); "
                               "is it an id column? Use task regression or another target")
        index = {c: i for i, c in enumerate(class_names)}
        y = keys.map(index).to_numpy(dtype=np.int64)
    elif task == "regression":
        if not y_is_num:
            bad = ycol[y_num.isna()].iloc[0]
            raise DatasetError(f"{label}: task regression needs a numeric target; column {target!r} has "
                               f"non-numeric value {bad!r}")
        y = y_num.to_numpy(dtype=np.float32)
    else:
        y = np.zeros(len(df), dtype=np.float32)

    # --- features: plan the encoding (and its size) before anything is materialised
    plan: list[tuple[str, str, Any]] = []  # (column, "num" | "cat", numeric values | (codes, levels))
    width = 0
    for c in features.columns:
        if width > limits.MAX_FEATURES or width * len(df) > limits.MAX_FEATURE_CELLS:
            break  # refused below, before the remaining columns are even looked at
        s = features[c]
        if s.isna().all():
            continue  # an empty column carries nothing
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna()
        if not bad.any():
            plan.append((c, "num", num))
            width += 1
            continue
        frac_numeric = float((num.notna()).sum()) / max(int(s.notna().sum()), 1)
        if frac_numeric >= 0.8:
            rows = [int(i) + 2 for i in np.flatnonzero(bad.to_numpy())[:5]]  # +2: header line, 1-based
            examples = ", ".join(repr(str(v)[:40]) for v in s[bad].iloc[:3])
            raise DatasetError(f"{label}: column {c!r} is numeric but has non-numeric values ({examples}) "
                               f"on line(s) {', '.join(map(str, rows))}; fix or remove those values")
        cats = s.astype(str).str.strip().where(s.notna(), "<missing>")
        n_levels = int(cats.nunique())
        if n_levels > limits.MAX_CATEGORIES:
            raise DatasetError(f"{label}: text column {c!r} has {n_levels} distinct values (limit "
                               f"{limits.MAX_CATEGORIES} for one-hot encoding); drop it or group its values")
        levels = sorted(cats.unique().tolist(), key=natural_key)
        plan.append((c, "cat", (cats, levels)))
        width += len(levels)
    if not plan:
        raise DatasetError(f"{label}: no usable feature columns besides the target {target!r}")
    if width > limits.MAX_FEATURES or width * len(df) > limits.MAX_FEATURE_CELLS:
        wide = sorted(((len(v[1]), c) for c, k, v in plan if k == "cat"), reverse=True)[:3]
        more = "" if len(plan) == len(features.columns) else " (and more)"
        raise DatasetError(f"{label}: encoding gives {width}{more} features x {len(df)} rows, over the limits of "
                           f"{limits.MAX_FEATURES} features and {limits.MAX_FEATURE_CELLS:,} values; the widest text columns: "
                           + ", ".join(f"{c!r} ({n} values)" for n, c in wide)
                           + ". Fix: drop or group those text columns, or use fewer rows")
    X = np.empty((len(df), width), dtype=np.float64)
    names, kinds, j = [], [], 0
    for c, kind, v in plan:
        if kind == "num":
            X[:, j] = v.to_numpy(dtype=np.float64)
            names.append(c)
            kinds.append("num")
            j += 1
            continue
        cats, levels = v
        for lv in levels:
            X[:, j] = (cats == lv).to_numpy(dtype=np.float64)
            names.append(f"{c}={lv}")
            kinds.append("cat")
            j += 1
    del plan
    info = DatasetInfo(name=f"csv:{label}", source="csv", task=task, modality="tabular", input_shape=(X.shape[1],),
                       class_names=class_names, feature_names=names,
                       description=f"{label}: {len(df)} rows, target {target!r}",
                       options={"path": str(path) if not isinstance(path, bytes) else None, "target": target,
                                "task": task})
    if dropped:
        info.notes.append(f"{dropped} row(s) without a target value were left out")
    if encoding_note:
        info.notes.append(encoding_note)
    # numeric columns: fill missing with the training median, then standardise on train statistics
    num_idx = [i for i, k in enumerate(kinds) if k == "num"]
    tr, _, _ = split_indices(y if task in ("multiclass", "binary") else None, len(X), seed=seed,
                             val_fraction=val_fraction, test_fraction=test_fraction,
                             stratify=task in ("multiclass", "binary"))
    for i in num_idx:
        col = X[:, i]
        if np.isnan(col).any():
            med = np.nanmedian(col[tr]) if np.isfinite(col[tr]).any() else 0.0
            col[np.isnan(col)] = med
            info.notes.append(f"missing values in {names[i]!r} filled with the training median {med:g}")
        if not np.isfinite(col).all():
            raise DatasetError(f"{label}: column {names[i]!r} has infinite values; fix or remove them")
        m, sd = col[tr].mean(), col[tr].std()
        X[:, i] = (col - m) / (sd if sd > 1e-12 else 1.0)
    X = X.astype(np.float32)
    return finish(X, y, info, task=None, seed=seed,
                   val_fraction=val_fraction, test_fraction=test_fraction, standardise=False)


def _decode_csv(raw: bytes, label: str) -> tuple[str, str]:
    """The CSV's text and a note on its encoding: UTF-8 (with or without BOM), UTF-16 with a BOM, else
    Windows-1252, else Latin-1 (which reads any byte). Binary files (NUL bytes) are refused."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "read as UTF-16"
        except UnicodeDecodeError as e:
            raise DatasetError(f"{label}: broken UTF-16 text at byte {e.start}. Fix: save the file as UTF-8") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise DatasetError(f"{label}: a binary file, not CSV text (NUL byte on line {line}); received: binary "
                           "data. Fix: export the table as CSV (UTF-8)")
    try:
        return raw.decode("utf-8-sig"), ""
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
    for enc in ("cp1252", "latin-1"):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        return text, (f"not UTF-8 (first non-UTF-8 byte on line {line}); read as {enc}. If characters look "
                      "wrong, save the file as UTF-8")
    raise DatasetError(f"{label}: line {line} is not UTF-8 text. Fix: save the file as UTF-8")  # unreachable


def preview_csv(path: str | Path | bytes, rows: int = 200, *, name: str | None = None):
    """The first ``rows`` rows of a CSV as pandas reads them (no encoding), for a preview.

    The file passes the same checks as :func:`load_csv` first (bytes, header length and columns, lines x
    columns, longest line), all before pandas parses anything: a file ``load_csv`` refuses for its size is
    refused here, quickly and in bounded memory.

    Raises:
        DatasetError: an empty, binary, unreadable or over-limit file.
    """
    import pandas as pd

    label = name or (Path(path).name if not isinstance(path, bytes) else "uploaded.csv")
    text, _ = _read_checked_csv(path, label)
    try:
        return pd.read_csv(io.StringIO(text), nrows=max(1, int(rows)), skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{label}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DatasetError(f"{label}: not a readable CSV file ({str(e).splitlines()[0][:200]})") from None


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _read_checked_csv(path: str | Path | bytes, label: str) -> tuple[str, str]:
    """The CSV's text and a note on its encoding, every size limit checked before anything is parsed.

    In order, each in bounded memory: the header line from a bounded read of the file's start (its length
    and its number of columns: delimiters outside quotes are counted, nothing is split), the file's size
    (reported, then as read with a cap), then over the bytes: lines x columns, data lines (when no cell is
    quoted, lines are rows) and the longest line, streaming. Raises DatasetError.
    """
    head = read_head(path, limits.MAX_CSV_LINE_BYTES, "CSV file")
    if not head.startswith(_UTF16_BOMS):  # UTF-16 is checked once transcoded, below
        _check_header(head, label)
    raw = read_limited(path, limits.MAX_CSV_BYTES, "CSV file")
    if not raw or raw.isspace():
        raise DatasetError(f"{label}: the file is empty; it needs a header row and at least one data row")
    if raw.startswith(_UTF16_BOMS):
        text, note = _decode_csv(raw, label)
        _check_csv_shape(text.encode("utf-8"), label)
        return text, note
    _check_csv_shape(raw, label)  # before the text is decoded (a copy)
    return _decode_csv(raw, label)


def _check_header(head: bytes, label: str) -> int:
    """The header's number of columns, from the file's first ``MAX_CSV_LINE_BYTES + 1`` bytes (or fewer): an
    over-long first line or too many columns is refused without splitting anything. Raises DatasetError."""
    nl = head.find(b"\n")
    first = head if nl < 0 else head[:nl]
    if len(first) > limits.MAX_CSV_LINE_BYTES:
        raise DatasetError(f"{label}: line 1 (the header) has more than {limits.MAX_CSV_LINE_BYTES:,} bytes, over the "
                           "limit. Fix: check the file is a CSV table (one sample per line)")
    columns = _count_fields(first)
    if columns > limits.MAX_CSV_COLUMNS:
        raise DatasetError(f"{label}: the header has {columns} columns, over the limit of {limits.MAX_CSV_COLUMNS}. "
                           "Fix: keep the columns the model needs")
    return columns


def _count_fields(line: bytes) -> int:
    """Fields of one CSV line: commas outside double quotes, plus one (``""`` inside quotes toggles twice)."""
    a = np.frombuffer(line, dtype=np.uint8)
    quoted = np.cumsum(a == 34, dtype=np.int64) & 1
    return int(np.count_nonzero((a == 44) & (quoted == 0))) + 1


def _check_csv_shape(raw: bytes, label: str) -> None:
    """Refuse a CSV whose header, lines x columns, rows or longest line would blow up parsing, streaming over
    ``raw`` (the file in an ASCII-compatible encoding: newlines are byte 10) in bounded memory. Raises
    DatasetError."""
    columns = _check_header(raw[: limits.MAX_CSV_LINE_BYTES + 1], label)
    lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    if lines * columns > limits.MAX_CSV_CELLS:
        raise DatasetError(f"{label}: {lines:,} lines x {columns} columns is over the limit of "
                           f"{limits.MAX_CSV_CELLS:,} cells. Fix: sample rows or drop columns")
    if lines - 1 > limits.MAX_CSV_ROWS and b'"' not in raw:  # no quoted cell: every line is a row
        raise DatasetError(f"{label}: {lines - 1:,} rows, more than the limit of {limits.MAX_CSV_ROWS:,}. Fix: sample "
                           "the file down first")
    line, length = _longest_line(raw)
    if length > limits.MAX_CSV_LINE_BYTES:
        raise DatasetError(f"{label}: line {line} has {length:,} bytes, over the limit of "
                           f"{limits.MAX_CSV_LINE_BYTES:,}. Fix: check the file is a CSV table (one sample per line)")


def _longest_line(raw: bytes, chunk: int = 2**20) -> tuple[int, int]:
    """``(line number, bytes)`` of the longest line, scanned ``chunk`` bytes at a time (at most ``9 x chunk``
    bytes of scratch, however many lines the file has)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    best_len, best_line, start, line = -1, 0, 0, 0
    for off in range(0, len(buf), chunk):
        ends = np.flatnonzero(buf[off:off + chunk] == 10)
        if len(ends) == 0:
            continue
        ends += off
        lengths = np.diff(ends, prepend=start - 1) - 1
        k = int(lengths.argmax())
        if lengths[k] > best_len:
            best_len, best_line = int(lengths[k]), line + k
        line += len(ends)
        start = int(ends[-1]) + 1
    if len(buf) - start > best_len:
        best_len, best_line = len(buf) - start, line
    return best_line + 1, best_len


__all__ = ["load_csv", "preview_csv"]
