"""builder.interchange.worker.decode_images_isolated: an uploaded image set is decoded by Pillow in a sandboxed
worker and the server only opens the finished uint8 cache entry (issue 28: user content runs only in sandboxed
processes). Pillow's decoders are native code; a file that crashes one ends the worker (one line), not the
server everyone shares."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import builder.data.cache as cache
from builder.data.images import decode_elsewhere, load_image_folder
from builder.errors import LayerLabError
from builder.interchange.worker import decode_images_isolated
from builder.process.sandbox import TEST_CRASH_ENV


@pytest.fixture(autouse=True)
def _workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(tmp_path / "ws"))


def _zip(path: Path, n: int = 6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, cls in enumerate(("dark", "light")):
            for i in range(n):
                b = io.BytesIO()
                Image.fromarray((rng.random((9, 11, 3)) * 100 + 120 * k).astype(np.uint8)).save(b, format="PNG")
                z.writestr(f"{cls}/{i}.png", b.getvalue())
    path.write_bytes(buf.getvalue())
    return path


def _refuse_pillow(monkeypatch) -> None:
    from PIL import Image

    def refuse(*a, **k):
        raise AssertionError("Pillow opened a person's upload in the server process")

    monkeypatch.setattr(Image, "open", refuse)


def test_an_image_set_is_decoded_in_the_worker_and_only_opened_here(tmp_path, monkeypatch):
    src = _zip(tmp_path / "shades.zip")
    here = load_image_folder(src, 8, cache=False)  # the same set decoded in this process, for comparison
    calls = []

    def decoder(*a):
        calls.append(a)
        decode_images_isolated(*a, owner="anon:t")

    _refuse_pillow(monkeypatch)
    with decode_elsewhere(decoder):
        ds = load_image_folder(src, 8)
        again = load_image_folder(src, 8)  # the entry is in the cache: no second worker
    assert len(calls) == 1
    for name in ("train", "val", "test"):
        a, b = getattr(ds, name), getattr(here, name)
        assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert torch.equal(again.test.X, here.test.X) and ds.info.to_dict() == here.info.to_dict()
    entries = sorted(p.name for p in cache.cache_dir().glob("images/*"))
    assert len(entries) == 1 and len(entries[0]) == 64  # the entry alone: the worker's folder is gone


def test_a_decoder_crash_or_an_unreadable_image_is_one_line_and_leaves_no_entry(tmp_path, monkeypatch):
    src = _zip(tmp_path / "crashme.zip")
    monkeypatch.setenv(TEST_CRASH_ENV, "crashme")  # the worker dies by SIGSEGV on this file, as a decoder bug would
    _refuse_pillow(monkeypatch)
    with decode_elsewhere(lambda *a: decode_images_isolated(*a)), pytest.raises(LayerLabError, match="SIGSEGV") as e:
        load_image_folder(src, 8)
    assert "\n" not in str(e.value) and "The images were not decoded" in str(e.value)
    assert list(cache.cache_dir().glob("images/*")) == []
    monkeypatch.delenv(TEST_CRASH_ENV)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        for cls in ("a", "b"):
            z.writestr(f"{cls}/0.png", b"\x89PNG\r\n\x1a\n not an image")
    with decode_elsewhere(lambda *a: decode_images_isolated(*a)), pytest.raises(LayerLabError, match="not readable"):
        load_image_folder(bad, 8)
    assert list(cache.cache_dir().glob("images/*")) == []


def test_a_full_disk_under_the_cache_is_one_line(tmp_path, small_disk, monkeypatch):
    """Issue 28: a full disk is one clear line: said by the server (the worker's own refusal was a ModelImportError
    wrapping it, cut at 500 characters)."""
    from builder.errors import DiskFullError
    from tests.helpers import fill_disk

    src = _zip(tmp_path / "shades.zip")
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(small_disk / "ws"))
    (small_disk / "ws").mkdir()
    fill_disk(small_disk)
    with decode_elsewhere(lambda *a: decode_images_isolated(*a)), pytest.raises(DiskFullError) as e:
        load_image_folder(src, 8)  # the server's one line of a full disk, before a worker starts
    assert str(e.value).startswith("the disk is full: the decoded images") and "\n" not in str(e.value)
    assert list((small_disk / "ws").rglob("*.box.*")) == []
