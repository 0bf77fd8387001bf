"""Hostile zips of an ONNX model (the Build page's Import takes ``m.onnx`` with ``m.onnx.data`` as a .zip): the
zip is unpacked in the server process (:func:`builder.interchange.importer.zip_members`, before the worker), so
a damaged member (corrupt deflate or LZMA, a CRC or header mismatch, encryption) is one ModelImportError line
that quotes nothing of the file, and a zip listing many entries is refused from its directory before ``ZipFile``
builds one object per entry. Peak memory is traced; the time each takes is printed, never asserted."""

from __future__ import annotations

import pytest

from builder.data.access import SYSTEM
from builder.interchange.errors import ModelImportError
from builder.interchange.importer import import_model, zip_members
from builder.interchange.worker import import_upload
from builder.runs.store import RunStore
from tests.hostile_zips import SECRET, damaged_zips, encrypted, raw_zip, refused, zip_bytes

MODEL = [("m.onnx", b"\x08\x07" + SECRET * 50), ("m.onnx.data", SECRET * 100)]


def hostile_model_zips() -> dict[str, bytes]:
    out = damaged_zips(MODEL)
    out["encrypted"] = encrypted(zip_bytes(MODEL))
    out["100,000 entries"] = raw_zip(100_000, b".onnx.data")
    return out


def _refused(fn, match: str, peak_mib: float = 16) -> str:
    return refused(fn, ModelImportError, match, peak_mib)


@pytest.mark.parametrize("case", sorted(hostile_model_zips()))
def test_a_hostile_model_zip_is_one_line_from_the_server_side_unpacking(case):
    data = hostile_model_zips()[case]
    _refused(lambda: zip_members(data), "zip|entries")


@pytest.mark.parametrize("case", ["corrupt deflate", "encrypted", "100,000 entries"])
def test_the_import_door_refuses_it_before_any_worker_starts(case, tmp_path):
    data = hostile_model_zips()[case]
    _refused(lambda: import_upload(data, "model.zip", RunStore(tmp_path, actor=SYSTEM)), "zip|entries")
    _refused(lambda: import_model(data), "zip|entries|torch.export", peak_mib=64)


def test_a_pt2_listing_many_entries_is_refused_from_its_directory(tmp_path):
    from builder.interchange.pt2_read import read_pt2

    data = raw_zip(100_000, b".json")
    path = tmp_path / "many.pt2"
    path.write_bytes(data)
    _refused(lambda: read_pt2(data), "more than 10,000 members", peak_mib=4)
    _refused(lambda: read_pt2(path), "more than 10,000 members", peak_mib=4)


def _bomb(unpacked: int = 200 * 2**20) -> bytes:
    """A 200 KB zip of a tiny model and ``unpacked`` bytes of zeros as its external data."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("m.onnx", b"\x08\x07" + SECRET)
        with zf.open("m.onnx.data", "w", force_zip64=True) as f:
            for _ in range(unpacked // 2**20):
                f.write(bytes(2**20))
    return buf.getvalue()


def test_a_zip_bomb_of_external_data_is_refused_from_its_directory(tmp_path):
    """A 203 KB zip of 200 MB of zeros was unpacked into the server's memory (397 MB at its peak) and written to
    disk before the worker started; now a member over 100 times its compressed size is refused before anything is
    unpacked (a model's weights barely compress)."""
    data = _bomb()
    assert len(data) < 300_000
    _refused(lambda: import_upload(data, "model.zip", RunStore(tmp_path, actor=SYSTEM)), "zip bomb", peak_mib=4)
    _refused(lambda: zip_members(data, 2**30), "zip bomb", peak_mib=4)


def test_the_server_unpacks_a_zipped_model_to_disk_a_block_at_a_time(tmp_path):
    """A zipped model's files go to the import's folder a MiB at a time: the server held each whole (and twice,
    as read), 2x their size for a 32 MiB one."""
    import os
    import tracemalloc

    from builder.interchange.importer import unzip_bundle

    weights = os.urandom(32 * 2**20)
    data = zip_bytes([("net.onnx", b"\x08\x07"), ("net.onnx.data", weights)])
    tracemalloc.start()
    try:
        path = unzip_bundle(data, tmp_path, model_stem="model")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path == tmp_path / "model.onnx" and path.read_bytes() == b"\x08\x07"
    assert (tmp_path / "net.onnx.data").read_bytes() == weights
    assert peak < 8 * 2**20, peak / 2**20  # ~4 MiB (a block read, inflated and written); 64 MiB as bytes before
    with pytest.raises(ModelImportError, match="one model"):
        unzip_bundle(zip_bytes([("a.onnx", b""), ("b.onnx", b"")]), tmp_path / "x")
