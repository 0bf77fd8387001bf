"""The table cache: a large CSV parsed once, in chunks, into float32 features on disk, memory-mapped after that.

The cache is shared by every owner: one entry per file content (the SHA-256 of the file's bytes,
:func:`builder.data.cache.content_hash`; never its path, size or modification time) plus the target and task, beside the image cache (:mod:`builder.data.cache`) under ``<workspace>/cache/tables/<key>/``::

    features.f32    rows x features float32, before standardisation (NaN: a missing number)
    targets.npy     rows targets: int64 class indices or float32 values
    meta.json       written last (temp name + atomic rename): the encoding; only an entry with it is ever read

Pass 1 streams the chunks through :class:`~builder.data.table_plan.TablePlan` (rows, column kinds, levels,
classes); the row limit and the compact form's size (``limits.MAX_TABLE_BYTES`` and the free disk) are checked
before pass 2 writes anything; both passes together stop at ``limits.MAX_DECODE_SECONDS``. The data files are
written under temporary names and renamed, so a killed parse leaves no ``meta.json``: the entry is built again,
never trusted. Example::

    >>> import pandas as pd, tempfile
    >>> from builder.data.cache import use_cache_dir
    >>> df = pd.DataFrame({"a": [1, 2, 3, 4], "t": ["p", "q", "p", "q"]})
    >>> with tempfile.TemporaryDirectory() as d, use_cache_dir(d):
    ...     X, y, enc = load_table("k1", lambda **kw: iter([df.copy()]), "t", None, "t.csv")
    ...     X2, _, _ = load_table("k1", None, "t", None, "t.csv")  # cached: nothing parsed
    ...     X2.tolist(), enc.class_names
    ([[1.0], [2.0], [3.0], [4.0]], ['p', 'q'])
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import builder.data.limits as limits
from builder.data.cache import CACHE_VERSION, build_dir, check_free_disk, entry_dir, write_json
from builder.data.table_plan import Encoding, TablePlan, plan_table
from builder.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

Frames = Callable[..., Iterable["pd.DataFrame"]]  # frames(text=[columns read as text], only=None): one pass


def open_cached(key: str) -> tuple[np.ndarray, np.ndarray, Encoding, str] | None:
    """``(features, targets, encoding, note)`` of a complete, readable entry for ``key`` (nothing parsed), or None."""
    d = entry_dir(key, "tables")
    opened = _open(d)
    if opened is None:
        return None
    try:
        note = str(json.loads((d / "meta.json").read_text()).get("note", ""))
    except (OSError, ValueError, AttributeError):
        return None
    return (*opened, note)


def load_table(key: str, frames: Frames | None, target: str, task: str | None, label: str, *,
               note: str = "") -> tuple[np.ndarray, np.ndarray, Encoding]:
    """The cached ``(features, targets, encoding)`` of entry ``key``: features a read-only memory map (rows x
    features float32, before standardisation). A complete entry is opened without calling ``frames``; otherwise
    the table is parsed from ``frames()`` in two passes and the entry written (``note``, the file's encoding
    note, is kept in it).

    Raises:
        DatasetError: what :class:`TablePlan` refuses, more than ``limits.MAX_CSV_ROWS`` rows, a compact form over
            ``limits.MAX_TABLE_BYTES`` or the free disk, parsing over ``limits.MAX_DECODE_SECONDS``.
    """
    for d in dict.fromkeys((entry_dir(key, "tables"), build_dir(key, "tables"))):  # shared, then (own_cache) its own
        opened = _open(d)
        if opened is not None:
            return opened
    if frames is None:
        raise DatasetError(f"the table cache entry {key} is missing or incomplete; received: no file to parse. Fix: "
                           "load the dataset from its CSV file")
    start = time.monotonic()
    plan = TablePlan(target, task, label, cell_limit=False)

    def check(plan: TablePlan) -> None:
        if plan.rows > limits.MAX_CSV_ROWS:
            plan.decide()  # refuses: more rows than the limit (counted before anything is written)
        _check_time(start, label, f"{plan.rows:,} rows read in pass 1 of 2")
    enc = plan_table(plan, frames, check)
    nbytes = enc.rows * enc.width * 4
    if nbytes > limits.MAX_TABLE_BYTES:
        rows = max(1, limits.MAX_TABLE_BYTES // (enc.width * 4))
        raise DatasetError(f"{label}: {enc.rows:,} rows x {enc.width} encoded features would take "
                           f"{nbytes / 2**20:.0f} MiB as float32, over the limit of {limits.MAX_TABLE_BYTES / 2**20:.0f} "
                           f"MiB (limits.MAX_TABLE_BYTES); received: {nbytes:,} bytes. Fix: use at most {rows:,} rows "
                           "or drop or group text columns")
    (d / "meta.json").unlink(missing_ok=True)
    d.mkdir(parents=True, exist_ok=True)
    _remove_orphans(d)
    check_free_disk(d, nbytes, f"{label}: the parsed table")
    tmp = f".{os.getpid()}.tmp"
    fx, fy = d / f"features.f32{tmp}", d / f"targets.npy{tmp}"
    ydtype = np.int64 if enc.task in ("multiclass", "binary") else np.float32
    try:
        X = np.memmap(fx, dtype=np.float32, mode="w+", shape=(max(enc.rows, 1), enc.width))
        y = np.lib.format.open_memmap(fy, mode="w+", dtype=ydtype, shape=(enc.rows,))
        pos = 0
        for df in frames(text=plan.text_columns()):
            Xc, yc = plan.encode(df)
            if pos + len(Xc) > enc.rows:
                break
            X[pos:pos + len(Xc)] = Xc
            y[pos:pos + len(yc)] = yc
            pos += len(Xc)
            _check_time(start, label, f"{pos:,} of {enc.rows:,} rows written in pass 2 of 2")
        if pos != enc.rows:
            raise DatasetError(f"{label}: the file changed while it was read; received: {pos:,} rows in pass 2, "
                               f"{enc.rows:,} in pass 1. Fix: load it again once it is no longer being written")
        X.flush()
        y.flush()
        del X, y
        os.replace(fx, d / "features.f32")
        os.replace(fy, d / "targets.npy")
    finally:
        for f in (fx, fy):
            f.unlink(missing_ok=True)
    write_json(d / "meta.json", {"version": CACHE_VERSION, "rows": enc.rows, "width": enc.width,
                                 "encoding": enc.to_dict(), "note": note,
                                 "parse_s": round(time.monotonic() - start, 3)})
    opened = _open(d)
    if opened is None:
        raise DatasetError(f"the table cache entry {d} could not be read back after writing it. Fix: delete the "
                           "folder and load again")
    return opened


def _remove_orphans(d: Path) -> None:
    """Delete the temporary data files of parses killed before their rename (their process is gone)."""
    for f in d.glob("*.tmp"):
        try:
            pid = int(f.name.rsplit(".", 2)[-2])
            if pid != os.getpid():
                os.kill(pid, 0)  # raises when no such process
        except ProcessLookupError:
            f.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError, OSError):
            pass


def _check_time(start: float, label: str, done: str) -> None:
    if time.monotonic() - start > limits.MAX_DECODE_SECONDS:
        raise DatasetError(f"{label}: parsing took longer than the limit of {limits.MAX_DECODE_SECONDS:.0f} s "
                           f"(limits.MAX_DECODE_SECONDS); received: {done}. Fix: sample the file down or drop "
                           "columns")


def _open(d: Path) -> tuple[np.ndarray, np.ndarray, Encoding] | None:
    try:
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("version") != CACHE_VERSION:
            return None
        rows, width = int(meta["rows"]), int(meta["width"])
        enc = Encoding.from_dict(meta["encoding"])
        if enc.rows != rows or enc.width != width or (d / "features.f32").stat().st_size != max(rows, 1) * width * 4:
            return None
        y = np.load(d / "targets.npy", allow_pickle=False, mmap_mode="r")
        if y.shape != (rows,):
            return None
        X = np.memmap(d / "features.f32", dtype=np.float32, mode="r", shape=(max(rows, 1), width))[:rows]
        return X, np.array(y), enc
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


__all__ = ["load_table", "open_cached"]
