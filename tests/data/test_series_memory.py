"""A CSV series is read and converted in about the memory of its numbers: the chunked read's columns are not
concatenated as a second table (``read_csv_capped``), the numbers are copied out a column at a time, and the
scaled float32 series is built a block of rows at a time; the windows are those the whole-table pandas path
gives, to the bit."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import builder.data.limits as limits
import builder.data.series as series
from builder.data.series import WindowOptions, load_series, series_dataset
from builder.data.splits import DatasetInfo
from builder.data.tabular import read_csv_capped

ROOT = Path(__file__).resolve().parents[2]


def _whole_table(data: bytes, cols: list[str], time_column: str | None, target: str | None, w: WindowOptions):
    """The series as pandas makes it from the whole table at once (the reading before chunked limits)."""
    df = pd.read_csv(io.BytesIO(data))
    df.columns = [str(c).strip() for c in df.columns]
    if time_column:
        t = pd.to_datetime(df[time_column], errors="coerce") if not pd.api.types.is_numeric_dtype(df[time_column]) \
            else df[time_column]
        df = df.assign(_t=t).sort_values("_t", kind="stable").drop(columns="_t")
    values = df[cols].to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        values = pd.DataFrame(values).interpolate(limit_direction="both").to_numpy()
    info = DatasetInfo(name="ref", task="forecast", modality="series", input_shape=(w.lookback, len(cols)),
                       feature_names=list(cols))
    labels = None
    if target:
        keys = df[target].astype(str).str.strip()
        info.class_names = sorted(keys.unique().tolist())
        info.task = "binary" if len(info.class_names) == 2 else "multiclass"
        labels = keys.map({k: i for i, k in enumerate(info.class_names)}).to_numpy(dtype=np.int64)
    return series_dataset(values, info, w, labels=labels, seed=0, val_fraction=0.15, test_fraction=0.15)


def _table(rng: np.random.Generator, n: int, f: int) -> str:
    cols = {f"c{j}": rng.standard_normal(n) * 10.0 ** rng.integers(-3, 6) for j in range(f)}
    cols["c0"] = rng.integers(-50, 50, n)  # an integer column
    frame = pd.DataFrame(cols)
    frame.loc[rng.random(n) < 0.05, f"c{f - 1}"] = np.nan  # gaps
    frame["when"] = pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.permutation(n), unit="D")
    frame.loc[rng.random(n) < 0.02, "when"] = None  # unknown times sort last
    frame["state"] = rng.choice(["up", "down", "flat"], n)
    return frame.to_csv(index=False)


@pytest.mark.parametrize("f", [1, 3, 9])
def test_the_chunked_series_equals_the_whole_table_series_to_the_bit(monkeypatch, f):
    monkeypatch.setattr(limits, "CSV_CHUNK_CELLS", 97)  # many chunks
    monkeypatch.setattr(series, "_SCALE_ROWS", 13, raising=False)  # many blocks of rows
    rng = np.random.default_rng(f)
    data = _table(rng, 700, f).encode()
    cols = [f"c{j}" for j in range(f)]
    w = WindowOptions(lookback=5, horizon=2, stride=3)
    for time_column, target in ((None, None), ("when", None), ("when", "state")):
        got = load_series(data, columns=cols, time_column=time_column, target=target, lookback=5, horizon=2,
                          stride=3, name="s.csv")
        want = _whole_table(data, cols, time_column, target, w)
        assert got.info.input_mean == want.info.input_mean and got.info.input_std == want.info.input_std
        for split in ("train", "val", "test"):
            assert torch.equal(getattr(got, split).X, getattr(want, split).X)
            assert torch.equal(getattr(got, split).y, getattr(want, split).y)


def test_the_chunked_read_is_the_concatenation_of_its_chunks(monkeypatch):
    """Column types decided over all chunks as a table's concatenation decides them (bool and float chunks give
    float64; numbers and words give object), the chunks' row numbers kept."""
    monkeypatch.setattr(limits, "CSV_CHUNK_CELLS", 6)
    rng = np.random.default_rng(0)
    cells = ["1", "2.5", "", "x", "True", "False", "2020-01-01", "nan", " 3", "-7", "1e3"]
    for _ in range(600):
        width, rows = int(rng.integers(1, 5)), int(rng.integers(0, 14))
        text = ",".join(f"c{j}" for j in range(width)) + "\n" + "".join(
            ",".join(str(rng.choice(cells)) for _ in range(width)) + "\n" for _ in range(rows))
        for options in ({}, {"dtype": str, "keep_default_na": False}):
            parts = list(pd.read_csv(io.StringIO(text), chunksize=max(1, 6 // width), **options))
            want = (pd.concat(parts) if len(parts) > 1 else parts[0]) if parts else \
                pd.read_csv(io.StringIO(text), nrows=0, **options)
            pd.testing.assert_frame_equal(read_csv_capped(text.encode(), "t.csv", 100, **options), want,
                                          check_exact=True)


def test_a_series_at_the_cell_limit_grows_the_server_by_about_its_numbers(tmp_path):
    """A 100 MB CSV of 64 integer columns (780,000 steps: 50 million cells, the limit; 381 MiB as float64) grew a
    fresh process by 1,208 MiB: the chunks and their concatenation (2x), the float64 copy next to the table, the
    scaled float64 and float32 copies. Now ~626 MiB: the numbers, their float32 scaled copy and the file's bytes."""
    path = tmp_path / "s.csv"
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        f.write(",".join(f"c{j}" for j in range(64)) + "\n")
        for _ in range(78):
            f.write("\n".join(",".join(map(str, r)) for r in rng.integers(0, 10, (10_000, 64)).tolist()) + "\n")
    code = textwrap.dedent(f"""
        import json, re
        import torch, pandas
        from builder.data.series import load_series
        def peak():
            return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        before = peak()
        ds = load_series({str(path)!r}, lookback=4, horizon=1, stride=200)
        assert ds.train.X.shape == (2730, 4, 64), ds.train.X.shape
        print(json.dumps({{"grew_mib": (peak() - before) / 1024}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    grew = json.loads(out.stdout.splitlines()[-1])["grew_mib"]
    assert grew < 800, grew  # 1,208 before


def test_a_table_read_for_columns_it_lacks_is_empty_as_pandas_reads_it():
    """Reading only columns a file lacks gave no column to join: pd.concat of nothing raised ValueError out of the
    reader ("No objects to concatenate"), where the text loader says which column is missing."""
    import io

    import pandas as pd

    from builder.data.tabular import read_csv_capped

    data = b"a,b\n1,2\n3,4\n"
    got = read_csv_capped(data, "t.csv", 100, columns=["text"])
    want = pd.read_csv(io.BytesIO(data), usecols=lambda c: c in {"text"})
    assert got.shape == want.shape and list(got.columns) == list(want.columns)
