"""Large CSVs parsed once, in chunks, into the table cache (builder.data.table_cache; issue 20)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import builder.data.cache as cache
import builder.data.limits as limits
import builder.data.table_plan as table_plan
from builder.data import load_csv
from builder.data.tabular import preview_csv
from builder.errors import DatasetError
from tests.fuzz_budget import budget


def _text(n: int = 240, seed: int = 0) -> str:
    """Numbers with gaps, a text column, a column that looks numeric until its last rows, rows without a target."""
    rng = np.random.default_rng(seed)
    rows = ["a,b,colour,late,y"]
    for i in range(n):
        a = "" if i % 17 == 3 else f"{rng.normal(10, 3):.4f}"
        late = str(i % 4) if i < n - 60 else ["x", "y", "z"][i % 3]  # text only near the end: one-hot everywhere
        y = "" if i % 41 == 7 else ["cat", "dog", "owl"][(i + int(rng.integers(0, 2))) % 3]
        rows.append(f"{a},{rng.integers(0, 100)},{['red', 'green', 'blue'][i % 3]},{late},{y}")
    return "\n".join(rows) + "\n"


@pytest.fixture
def scans(monkeypatch):
    """Counts chunks parsed in pass 1 (any load that parses the file calls it)."""
    calls = [0]
    real = table_plan.TablePlan.scan

    def scan(self, df):
        calls[0] += 1
        return real(self, df)
    monkeypatch.setattr(table_plan.TablePlan, "scan", scan)
    return calls


def _entries() -> list[str]:
    d = cache.cache_dir() / "tables"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def _same(a, b) -> None:
    for name in ("train", "val", "test"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert torch.equal(sa.X, sb.X) and torch.equal(sa.y, sb.y)
    assert a.info.to_dict() == b.info.to_dict()


@settings(max_examples=budget(4), deadline=None)
@given(chunk_cells=st.integers(40, 2000))
def test_cached_load_equals_the_in_memory_load_for_any_chunk_size(tmp_path_factory, chunk_cells):
    p = tmp_path_factory.mktemp("t") / "t.csv"
    p.write_text(_text())
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(limits, "CACHE_MIN_ROWS", 10**9)
        whole = load_csv(p, "y", seed=3)  # one chunk
        mp.setattr(limits, "CSV_CHUNK_CELLS", chunk_cells)
        plain = load_csv(p, "y", seed=3)
        _same(plain, whole)  # chunks of any size: the same numbers
        mp.setattr(limits, "CACHE_MIN_ROWS", 100)  # the file is just over the threshold
        cached = load_csv(p, "y", seed=3)
    finally:
        mp.undo()
    _same(cached, plain)
    info = cached.info
    assert "late=x" in info.feature_names and "late=0" in info.feature_names and info.class_names == ["cat", "dog", "owl"]
    assert any("left out" in n for n in info.notes) and any("training median" in n for n in info.notes)


def test_second_load_parses_nothing_and_a_partial_entry_is_rebuilt(tmp_path, monkeypatch, scans):
    monkeypatch.setattr(limits, "CACHE_MIN_ROWS", 100)
    p = tmp_path / "t.csv"
    p.write_text(_text())
    first = load_csv(p, "y")
    parsed = scans[0]
    assert parsed > 0 and len(_entries()) == 1
    again = load_csv(p, "y")
    assert scans[0] == parsed  # opened from the cache: not parsed
    _same(again, first)
    entry = cache.cache_dir() / "tables" / _entries()[0]
    (entry / "meta.json").unlink()  # a killed parse leaves no meta.json: never trusted
    orphan = entry / "features.f32.999999999.tmp"  # the data file of a parse killed before its rename
    orphan.write_bytes(b"x")
    _same(load_csv(p, "y"), first)
    assert scans[0] == 2 * parsed and (entry / "meta.json").is_file() and not orphan.exists()
    with open(entry / "features.f32", "r+b") as f:  # a damaged data file with its meta: rebuilt too
        f.truncate(10)
    _same(load_csv(p, "y"), first)
    assert scans[0] == 3 * parsed
    assert load_csv(p, "y", task="multiclass").info.task == "multiclass" and len(_entries()) == 2  # target/task key


def test_a_changed_file_gets_a_new_entry(tmp_path, monkeypatch, scans):
    monkeypatch.setattr(limits, "CACHE_MIN_ROWS", 100)
    p = tmp_path / "t.csv"
    p.write_text(_text(seed=0))
    a = load_csv(p, "y")
    p.write_text(_text(seed=1))
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    b = load_csv(p, "y")
    assert len(_entries()) == 2 and not torch.equal(a.train.X, b.train.X)
    n = scans[0]
    data = p.read_bytes()
    up = load_csv(data, "y", name="up.csv")  # uploaded bytes: keyed by their SHA-256, as the same file's bytes
    m = scans[0]
    assert m == n and len(_entries()) == 2  # the same bytes: the same entry, nothing parsed
    load_csv(data, "y", name="up.csv")
    assert scans[0] == m and torch.equal(up.train.X, b.train.X)


def test_a_file_with_the_same_path_size_and_mtime_but_other_bytes_gets_its_own_entry(tmp_path, monkeypatch):
    """The cache is shared by every owner: a path, a size and a modification time are not the content."""
    monkeypatch.setattr(limits, "CACHE_MIN_ROWS", 100)
    p = tmp_path / "t.csv"
    a_text, b_text = _text(seed=0), _text(seed=1)
    b_text = b_text[:len(a_text)] if len(b_text) >= len(a_text) else b_text + " " * (len(a_text) - len(b_text))
    p.write_text(a_text)
    st0 = p.stat()
    a = load_csv(p, "y")
    p.write_text(b_text)
    os.utime(p, ns=(st0.st_atime_ns, st0.st_mtime_ns))  # the same name, size and mtime; other bytes
    assert (p.stat().st_size, p.stat().st_mtime_ns) == (st0.st_size, st0.st_mtime_ns)
    b = load_csv(p, "y")
    fresh = tmp_path / "copy.csv"
    fresh.write_text(b_text)
    want = load_csv(fresh, "y", name="t.csv")
    assert all(torch.equal(getattr(b, k).X, getattr(want, k).X) for k in ("train", "val", "test"))
    assert not torch.equal(a.train.X, b.train.X)


@pytest.mark.parametrize("limit,value,match", [
    ("MAX_CSV_ROWS", 200, r"240 rows, more than the limit of 200 \(limits.MAX_CSV_ROWS\)\. Fix: sample"),
    ("MAX_TABLE_BYTES", 1000, r"would take .* MiB as float32, over the limit .*MAX_TABLE_BYTES.*Fix: use at most 20 rows"),
    ("MAX_DECODE_SECONDS", -1.0, r"parsing took longer than the limit .*MAX_DECODE_SECONDS.*pass 1 of 2.*Fix:"),
    ("MAX_CSV_BYTES", 1000, r"larger than the limit.*received: [\d,]+ bytes.*Fix"),
])
def test_limits_are_refused_before_the_work_they_bound(tmp_path, monkeypatch, scans, limit, value, match):
    monkeypatch.setattr(limits, "CACHE_MIN_ROWS", 100)
    monkeypatch.setattr(limits, limit, value)
    p = tmp_path / "t.csv"
    p.write_text(_text())
    with pytest.raises(DatasetError, match=match):
        load_csv(p, "y")
    if limit in ("MAX_CSV_ROWS", "MAX_CSV_BYTES"):
        assert scans[0] == 0  # counted over the bytes: nothing parsed
    for e in _entries():  # nothing half-written is left to be trusted
        assert not (cache.cache_dir() / "tables" / e / "meta.json").exists()


def test_quoted_rows_are_counted_in_pass_1_before_anything_is_written(tmp_path, monkeypatch, scans):
    monkeypatch.setattr(limits, "CACHE_MIN_ROWS", 100)
    monkeypatch.setattr(limits, "MAX_CSV_ROWS", 150)
    monkeypatch.setattr(limits, "CSV_CHUNK_CELLS", 250)  # 50 rows a chunk
    p = tmp_path / "q.csv"
    p.write_text(_text().replace("red", '"r,ed"'))  # a quoted cell: lines are not rows, pass 1 counts them
    with pytest.raises(DatasetError, match=r"rows, more than the limit of 150"):
        load_csv(p, "y")
    assert scans[0] == 4  # stopped at the chunk that crossed the limit
    assert not any((cache.cache_dir() / "tables" / e / "features.f32").exists() for e in _entries())


def test_preview_of_a_big_file_reads_only_its_head(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_CSV_MEMORY_BYTES", 2000)
    monkeypatch.setattr(limits, "CSV_PREVIEW_BYTES", 1000)
    p = tmp_path / "big.csv"
    p.write_bytes(_text().encode() + b"\x00" * 5000)  # binary after the head: a full read would refuse it
    head = preview_csv(p, 5)
    assert list(head.columns) == ["a", "b", "colour", "late", "y"] and len(head) == 5
    up = preview_csv(p.read_bytes(), 5, name="big.csv")  # the Data page hands over the upload's bytes
    assert up.equals(head)
    with pytest.raises(DatasetError, match="binary"):
        load_csv(p, "y")
    monkeypatch.setattr(limits, "MAX_CSV_BYTES", 3000)
    with pytest.raises(DatasetError, match="larger than the limit"):
        preview_csv(p, 5)
