"""Hostile uploads, generated here: every one is a clear DatasetError, writes nothing, and stays in memory bounds.

The corpus: zip slip (``..`` names), absolute names, symbolic links in zips and folders, zip bombs (huge
declared sizes, a member that lies about its size, too many entries), a decompression-bomb PNG, many tiny
images blown up to 256x256, pickles disguised as images and CSV, corrupt zips (bad CRC, bad header), CSV
bombs (a huge line, a huge header, thousands of one-hot categories), device files. Peak memory is measured
in this process (tracemalloc, per file) and in a fresh process (peak resident growth over the whole corpus,
which also sees Pillow's and pandas' C allocations).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import builder.data.limits as limits
from builder.data import load_csv, load_image_folder
from builder.data.tabular import preview_csv
from builder.errors import DatasetError
from tests.hostile_zips import raw_zip

ROOT = Path(__file__).resolve().parents[2]
PEAK_LIMIT = 300 * 2**20


def _png(w=2, h=2, mode="RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, "PNG")
    return buf.getvalue()


class _Marker:
    """Unpickling this creates a file: a pickle that runs code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _png_claiming(w: int, h: int) -> bytes:
    """A PNG whose header claims ``w x h`` pixels (8-bit grey), with a few bytes of pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


def _raw_zip(path: Path, n: int, declared: int | None = None) -> Path:
    """A zip of ``n`` empty stored members ``cat/<k>.png`` (:func:`tests.hostile_zips.raw_zip`), as a file."""
    path.write_bytes(raw_zip(n, b".png", folder=lambda k: b"cat", declared=declared))
    return path


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _ok_members() -> list[tuple[str, bytes]]:
    return [(f"{c}/{i}.png", _png()) for c in ("cat", "dog") for i in range(3)]


def build_corpus(d: Path, marker: Path) -> dict[str, tuple[str, Path, dict, str]]:
    """``{name: (kind, path, options, message regex)}``; kind is ``images``, ``csv`` or ``csv-preview``."""
    d.mkdir(parents=True, exist_ok=True)
    c: dict[str, tuple[str, Path, dict, str]] = {}
    png = _png()

    c["zip slip"] = ("images", _zip(d / "slip.zip", [*_ok_members(), ("../../evil.png", png)]), {}, "outside the archive")
    c["nested zip slip"] = ("images", _zip(d / "slip2.zip", [*_ok_members(), ("cat/../../../evil.png", png)]), {},
                            "outside the archive")
    c["absolute name"] = ("images", _zip(d / "abs.zip", [*_ok_members(), ("/tmp/layerlab_abs_evil.png", png)]), {},
                          "outside the archive")
    c["windows drive"] = ("images", _zip(d / "drive.zip", [*_ok_members(), ("C:/evil.png", png)]), {},
                          "outside the archive")
    link = zipfile.ZipInfo("cat/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    c["symlink in zip"] = ("images", _zip(d / "link.zip", [*_ok_members(), (link, b"/etc/passwd")]), {},
                           "symbolic link")

    bomb = d / "bomb.zip"  # 2 x 120 MB of zeros: 240 MB declared, a few hundred KB on disk
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(2):
            with zf.open(f"cat/{k}.png", "w", force_zip64=True) as f:
                chunk = bytes(2**20)
                for _ in range(120):
                    f.write(chunk)
        zf.writestr("dog/0.png", png)
    c["zip bomb (declared sizes)"] = ("images", bomb, {}, "MiB")

    liar = bytearray(_zip(d / "liar_src.zip", [("cat/big.png", bytes(8 * 2**20)), *_ok_members()]).read_bytes())
    real = (8 * 2**20).to_bytes(4, "little")
    liar = liar.replace(real, (100).to_bytes(4, "little"))  # local and central headers now declare 100 bytes
    (d / "liar.zip").write_bytes(bytes(liar))
    c["member lying about its size"] = ("images", d / "liar.zip", {}, "not readable images|damaged|different size")

    many = d / "entries.zip"
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as zf:
        for k in range(50_500):
            zf.writestr(f"cat/{k}.txt", b"")
    c["too many entries"] = ("images", many, {}, "entries")

    c["zip with 100,000 members"] = ("images", _raw_zip(d / "members.zip", 100_000), {}, "65535 entries, over")
    c["zip with 100,000 members, end record says 10"] = ("images", _raw_zip(d / "members10.zip", 100_000, 10), {},
                                                         "more than 50000 entries .*declares 10")
    c["image header claiming 100,000 x 100,000 pixels"] = (
        "images", _zip(d / "claim.zip", [*_ok_members(), ("cat/claim.png", _png_claiming(100_000, 100_000))]), {},
        "megapixels")
    c["image header claiming 5,000 x 5,000 pixels"] = (
        "images", _zip(d / "claim5k.zip", [*_ok_members(), ("dog/claim.png", _png_claiming(5_000, 5_000))]), {},
        "5000x5000 .*over the limit")
    c["zip bomb member (ratio)"] = ("images", _zip(d / "ratio.zip", [*_ok_members(), ("cat/z.bmp", bytes(8 * 2**20))]),
                                    {}, "over 100:1.*zip bomb")
    c["many tiny images at 256x256"] = ("images", _zip(d / "tiny.zip", [(f"{'ab'[i % 2]}/{i}.png", _png(1, 1, "L"))
                                                                        for i in range(2000)]),
                                        {"size": (256, 256)}, "decoded.*limit.*Fix")
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buf, "PNG")  # 144 megapixels, a few KB
    c["decompression bomb PNG"] = ("images", _zip(d / "mega.zip", [*_ok_members(), ("cat/mega.png", buf.getvalue())]),
                                   {}, "megapixels")
    evil = pickle.dumps(_Marker(str(marker)))
    c["pickle as image"] = ("images", _zip(d / "pickle.zip", [*_ok_members(), ("cat/evil.png", evil)]), {},
                            "not readable images")

    stored = _zip(d / "crc_src.zip", _ok_members(), zipfile.ZIP_STORED).read_bytes()
    i = stored.index(png[20:40])  # inside the first member's data
    bad = bytearray(stored)
    bad[i] ^= 0xFF
    (d / "crc.zip").write_bytes(bytes(bad))
    c["bad CRC"] = ("images", d / "crc.zip", {}, "damaged")
    (d / "header.zip").write_bytes(stored[:30] + b"\x00" * 40 + stored[70:])
    c["bad local header"] = ("images", d / "header.zip", {}, "damaged|table of contents cannot be read|not readable")
    (d / "truncated.zip").write_bytes(stored[: len(stored) // 2])
    c["truncated zip"] = ("images", d / "truncated.zip", {}, "not a folder or a zip|table of contents cannot be read")

    folder = d / "linked"
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
        (folder / cls / "0.png").write_bytes(png)
        (folder / cls / "1.png").write_bytes(png)
    (folder / "cat" / "passwd.png").symlink_to("/etc/passwd")
    c["symlink in folder"] = ("images", folder, {}, "symbolic link")
    folder2 = d / "linked_class"
    (folder2 / "cat").mkdir(parents=True)
    (folder2 / "cat" / "0.png").write_bytes(png)
    (d / "outside_class").mkdir()
    (d / "outside_class" / "0.png").write_bytes(png)
    (folder2 / "dog").symlink_to(d / "outside_class", target_is_directory=True)
    c["symlinked class folder"] = ("images", folder2, {}, "symbolic link")

    (d / "line.csv").write_text("a,b,y\n" + "1," + "x" * (3 * 2**20) + ",0\n" + "2,3,1\n" * 10)
    c["CSV huge line"] = ("csv", d / "line.csv", {"target": "y"}, "line 2.*limit")
    (d / "wide.csv").write_text(",".join("c" * 150_000) + "\n" + ",".join("1" * 150_000) + "\n")
    c["CSV huge header"] = ("csv", d / "wide.csv", {"target": "c0"}, "columns, over the limit")
    rows = ["y," + ",".join(f"t{k}" for k in range(999))]
    # 999 text columns of 100 values each (the widest table and the most values a column may have): 99,900
    # features; 100 rows are enough for every value to appear (the scan's cost grows with the cells)
    rows += [f"{r % 2}," + ",".join(f"v{(r + k) % 100}" for k in range(999)) for r in range(100)]
    (d / "cats.csv").write_text("\n".join(rows) + "\n")
    c["CSV one-hot bomb"] = ("csv", d / "cats.csv", {"target": "y"}, "features.*Fix")
    (d / "ids.csv").write_text("id,y\n" + "".join(f"user{k},{k % 2}\n" for k in range(5000)))
    c["CSV id column"] = ("csv", d / "ids.csv", {"target": "y"}, "distinct values")
    (d / "pickle.csv").write_bytes(evil)
    c["pickle as CSV"] = ("csv", d / "pickle.csv", {"target": "y"}, "binary")
    (d / "million.csv").write_bytes(b"y" + b"," * 999_999 + b"\n1" + b"," * 999_999 + b"\n")
    c["CSV 1,000,000-column header"] = ("csv", d / "million.csv", {"target": "y"}, "1000000 columns, over the limit")
    c["CSV 1,000,000-column header, previewed"] = ("csv-preview", d / "million.csv", {}, "1000000 columns, over")
    (d / "named.csv").write_bytes(b",".join(b"c%d" % k for k in range(1_000_000)) + b"\n")
    c["CSV 1,000,000 named columns"] = ("csv", d / "named.csv", {"target": "c0"}, "line 1 .*header.* over the limit")
    c["CSV 1,000,000 named columns, previewed"] = ("csv-preview", d / "named.csv", {}, "line 1 .*header")
    with open(d / "single.csv", "wb") as f:  # 100 MB, one line
        chunk = b"x" * 2**20
        for _ in range(100):
            f.write(chunk)
    c["CSV 100 MB single line"] = ("csv", d / "single.csv", {"target": "y"}, "line 1 .*header.* over the limit")
    c["CSV 100 MB single line, previewed"] = ("csv-preview", d / "single.csv", {}, "line 1 .*header")
    (d / "newlines.csv").write_bytes(b"a,y\n" + b"\n" * (40 * 2**20))
    c["CSV 40 MB of newlines"] = ("csv", d / "newlines.csv", {"target": "y"}, "lines x 2 columns.*cells")
    (d / "rows.csv").write_bytes(b"a,y\n" + b"1,0\n" * 1_100_000)
    c["CSV 1,100,000 rows"] = ("csv", d / "rows.csv", {"target": "y"}, "1,100,000 rows, more than the limit")
    c["device file as CSV"] = ("csv", Path("/dev/zero"), {"target": "y"}, "not a regular file")
    c["device file as image folder"] = ("images", Path("/dev/zero"), {}, "not a folder or a zip|not a regular")
    return c


def _load(kind: str, path: Path, opts: dict):
    if kind == "csv":
        return load_csv(path, **opts)
    if kind == "csv-preview":
        return preview_csv(path, **opts)
    return load_image_folder(path, **opts)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    marker = base / "unpickled.txt"
    return base, marker, build_corpus(base / "corpus", marker)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


#: the corpus is built for these limits (the defaults are larger since issue 20: 200,000 images train)
CORPUS_LIMITS = {"MAX_ZIP_ENTRIES": 50_000, "MAX_DECODED_BYTES": 64 * 2**20}


def test_every_hostile_upload_is_a_clear_error_within_memory_bounds(corpus, monkeypatch):
    base, marker, items = corpus
    for name, value in CORPUS_LIMITS.items():
        monkeypatch.setattr(limits, name, value)
    cwd = base / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)  # a relative zip-slip target would land here
    before = _tree(base)
    abs_target = Path("/tmp/layerlab_abs_evil.png")
    abs_existed = abs_target.exists()
    problems = []
    for name, (kind, path, opts, match) in items.items():
        tracemalloc.start()
        try:
            _load(kind, path, opts)
            problems.append(f"{name}: accepted")
        except DatasetError as e:
            msg = str(e)
            import re

            if not re.search(match, msg) or "\n" in msg:
                problems.append(f"{name}: unclear message {msg!r}")
        except Exception as e:  # noqa: BLE001 - anything else is the defect under test
            problems.append(f"{name}: {type(e).__name__}: {e}")
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        if peak > PEAK_LIMIT:
            problems.append(f"{name}: peak {peak / 2**20:.0f} MiB traced")
    assert problems == []
    assert _tree(base) == before  # nothing extracted, nothing written
    assert abs_target.exists() == abs_existed
    assert not marker.exists()  # no pickle was ever loaded


def test_peak_resident_memory_of_a_fresh_process_stays_bounded(corpus):
    """Peak resident growth (``VmHWM``: ``ru_maxrss`` starts at the forking pytest worker's) while loading the whole
    corpus in a new process (C allocations included)."""
    base, _, items = corpus
    spec = [(kind, str(path), {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()})
            for kind, path, opts, _ in items.values()]
    script = (
        "import json, resource, sys\n"
        "import numpy, pandas, PIL.Image, torch\n"
        "from builder.data import load_csv, load_image_folder\n"
        "from builder.data.tabular import preview_csv\n"
        "import builder.data.limits as limits\n"
        f"for k, v in {CORPUS_LIMITS!r}.items(): setattr(limits, k, v)\n"
        "from builder.errors import DatasetError\n"
        "base = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
        "for kind, path, opts in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        {'csv': load_csv, 'csv-preview': preview_csv}.get(kind, load_image_folder)(path, **opts)\n"
        "    except DatasetError:\n"
        "        pass\n"
        "print((int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) - base) * 1024)\n")
    r = subprocess.run([sys.executable, "-c", script, json.dumps(spec)], cwd=base, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    grew = int(r.stdout.strip().splitlines()[-1])
    assert grew < PEAK_LIMIT, f"peak RSS grew by {grew / 2**20:.0f} MiB"


def test_a_legitimate_upload_still_loads(tmp_path):
    members = [(f"{c}/{i}.png", _png()) for c in ("cat", "dog") for i in range(10)]
    ds = load_image_folder(_zip(tmp_path / "ok.zip", members), size=(8, 8))
    assert ds.info.class_names == ["cat", "dog"] and ds.info.input_shape == (3, 8, 8)


@pytest.mark.parametrize("big", [2**64, -(2**63) - 1, 10**40])  # 10**40: past float32, a clear refusal
def test_a_csv_with_integers_past_64_bits_loads_as_numbers(tmp_path, big):
    """pandas keeps such cells as Python integers (an object column): the table plan read them as text with
    ``.str`` and raised AttributeError ("Can only use .str accessor with string values") after the preview had
    accepted the file: a traceback on the Data page and from ``layerlab train``."""
    rows = ["a,b,target", *(f"{i},{big + i if i % 3 else i},{i % 2}" for i in range(60))]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert list(preview_csv(path).columns) == ["a", "b", "target"]
    if big > 2**100:
        with pytest.raises(DatasetError, match="column 'b' has infinite values"):
            load_csv(path, target="target")
        return
    ds = load_csv(path, target="target")
    assert ds.info.feature_names == ["a", "b"] and ds.info.task == "binary"


def test_a_ragged_csv_is_refused_in_a_persons_words(tmp_path):
    """pandas's own text reached the page: "not a readable CSV file (Error tokenizing data. C error: Expected 3
    fields in line 3, saw 5)", without a fix. The preview, the loader and the series reader say it one way."""
    path = tmp_path / "x.csv"
    path.write_text("a,b,target\n1,2,0\n3,4,5,6,1\n" + "1,2,0\n" * 30, encoding="utf-8")
    for read in (lambda: preview_csv(path), lambda: load_csv(path, target="target")):
        with pytest.raises(DatasetError, match=r"received: line 3 has 5 fields where the header has 3\. Fix: quote"):
            read()
