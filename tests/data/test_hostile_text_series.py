"""Hostile text and time-series uploads (the Data page's Text and Time series doors, and new data for drift):
damaged zips are one DatasetError line, never zlib's, lzma's or zipfile's own exception; a zip's directory is
bounded before ``ZipFile`` builds one object per entry; a CSV is parsed chunk by chunk and refused once it passes
the row or cell limit, never parsed whole first. Peak memory is traced per file (tracemalloc sees numpy's and
pandas' arrays); the time each takes is printed, never asserted."""

from __future__ import annotations

from pathlib import Path

import pandas  # noqa: F401  (imported here: its import is not a file's peak)
import pytest

import builder.data.limits as limits
from builder.data.series import load_series
from builder.data.text import load_text, read_new_texts
from builder.errors import DatasetError
from tests.hostile_zips import SECRET, damaged_zips, raw_zip, refused, zip_bytes

TEXTS = [("pos/a.txt", b"good movie " + SECRET), ("neg/b.txt", b"bad movie " + SECRET)]


def _refused(fn, match: str, peak_mib: float = 64) -> str:
    return refused(fn, DatasetError, match, peak_mib)


@pytest.mark.parametrize("case", sorted(damaged_zips(TEXTS)))
def test_a_damaged_zip_of_texts_is_one_line(case, tmp_path):
    data = damaged_zips(TEXTS)[case]
    _refused(lambda: load_text(data, name="texts.zip"), "texts.zip: .*damaged")
    path = tmp_path / "new.zip"
    path.write_bytes(data)
    _refused(lambda: read_new_texts(path), "new.zip: .*damaged")


def test_a_zip_of_texts_with_too_many_entries_is_refused_from_its_directory(monkeypatch):
    monkeypatch.setattr(limits, "MAX_ZIP_ENTRIES", 10_000)
    data = raw_zip(200_000)  # 9 MB: ZipFile alone would build 200,000 ZipInfo objects
    msg = _refused(lambda: load_text(data, name="texts.zip"), "texts.zip: .*entries", peak_mib=16)
    assert "10000" in msg.replace(",", "")


def test_a_legitimate_zip_of_texts_still_loads():
    members = [(f"{c}/{i}.txt", f"{c} text number {i}".encode()) for c in ("pos", "neg") for i in range(20)]
    ds = load_text(zip_bytes(members), name="ok.zip")
    assert ds.info.class_names == ["neg", "pos"]


def _rows_csv(path: Path, header: bytes, row: bytes, n: int) -> Path:
    with open(path, "wb") as f:
        f.write(header)
        chunk = row * 2**16
        for _ in range(n // 2**16):
            f.write(chunk)
    return path


def test_a_series_with_too_many_rows_is_refused_before_it_is_parsed_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_SERIES_ROWS", 10_000)
    data = _rows_csv(tmp_path / "s.csv", b"v\n", b"1\n", 8 * 2**20).read_bytes()  # 16 MB, 8 million steps
    _refused(lambda: load_series(data, name="s.csv"), "s.csv: .*steps, over the limit of 10,000", peak_mib=8)


def test_a_series_with_quoted_cells_is_bounded_too(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_SERIES_ROWS", 10_000)
    data = _rows_csv(tmp_path / "q.csv", b'"v"\n', b'"1"\n', 4 * 2**20).read_bytes()
    _refused(lambda: load_series(data, name="q.csv"), "q.csv: .*over the limit", peak_mib=8)


def test_a_series_with_a_huge_header_is_refused_before_it_is_parsed(tmp_path):
    data = b",".join(b"c%d" % k for k in range(200_000)) + b"\n" + b",".join(b"1" for _ in range(200_000)) + b"\n"
    _refused(lambda: load_series(data, name="wide.csv"), "wide.csv: line 1 .*header.* over the limit", peak_mib=24)


def test_a_csv_of_texts_with_too_many_rows_is_refused_before_it_is_parsed_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_CSV_ROWS", 10_000)
    data = _rows_csv(tmp_path / "t.csv", b"text,label\n", b"a,1\n", 4 * 2**20).read_bytes()  # 16 MB
    _refused(lambda: load_text(data, "label", name="t.csv"), "t.csv: .*rows, over the limit of 10,000", peak_mib=8)
    path = tmp_path / "t.csv"
    _refused(lambda: read_new_texts(path), "t.csv: .*rows, over the limit of 10,000", peak_mib=40)


def test_a_legitimate_series_and_csv_of_texts_still_load():
    rows = "\n".join(f"{t},{(t % 7) * 0.5},{t % 3}" for t in range(300))
    ds = load_series(f"t,v,w\n{rows}\n".encode(), time_column="t", lookback=8, name="ok.csv")
    assert ds.info.feature_names == ["v", "w"]
    texts = "\n".join(f'"text, number {i}",{"ab"[i % 2]}' for i in range(60))
    ds = load_text(f"text,label\n{texts}\n".encode(), "label", name="ok.csv")
    assert ds.info.class_names == ["a", "b"]


@pytest.mark.parametrize("case", ["corrupt lzma", "corrupt deflate"])
def test_a_damaged_zip_of_images_is_one_line_too(case, tmp_path):
    from builder.data import load_image_folder
    from tests.data.test_hostile_uploads import _png

    members = [(f"{c}/{i}.png", _png()) for c in ("cat", "dog") for i in range(3)]
    path = tmp_path / "img.zip"
    path.write_bytes(damaged_zips(members)[case])
    _refused(lambda: load_image_folder(path), "img.zip: .*damaged")
