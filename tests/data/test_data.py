"""Datasets: registry, built-ins, splits, CSV and image loaders with every error case, graph checks."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from builder import data as D
from builder.data import (
    DatasetSource,
    limits,
    list_datasets,
    load_csv,
    load_dataset,
    load_image_folder,
    split_indices,
)
from builder.errors import DatasetError

BUILTINS = ["digits", "iris", "wine", "breast_cancer", "diabetes", "moons", "circles", "spirals", "xor", "blobs",
            "sequence"]


def test_registry_lists_every_builtin():
    names = {d["name"] for d in list_datasets()}
    assert set(BUILTINS) <= names
    for d in list_datasets():
        assert d["modality"] in D.MODALITIES and d["task"] in D.TASKS and d["description"]


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_shapes_and_split(name):
    ds = load_dataset(name)
    info = ds.info
    n = len(ds.train) + len(ds.val) + len(ds.test)
    assert info.sizes == {"train": len(ds.train), "val": len(ds.val), "test": len(ds.test)}
    assert abs(len(ds.test) / n - 0.15) < 0.03 and abs(len(ds.val) / n - 0.15) < 0.03
    for s in (ds.train, ds.val, ds.test):
        assert tuple(s.X.shape[1:]) == info.input_shape
        assert s.X.dtype == (torch.int64 if info.input_dtype == "int64" else torch.float32)
        assert len(s.X) == len(s.y)
    if info.task in ("multiclass", "binary"):
        assert ds.train.y.dtype == torch.int64
        assert int(ds.train.y.max()) < info.num_classes == len(info.class_names)
    else:
        assert ds.train.y.shape[1] == info.out_size
    assert ds.preview(3) and len(ds.preview(3)) == 3
    assert info.to_dict()["name"] == name


def test_digits_is_1x8x8_in_unit_range():
    ds = load_dataset("digits")
    assert ds.info.input_shape == (1, 8, 8) and ds.info.num_classes == 10
    assert float(ds.train.X.min()) >= 0 and float(ds.train.X.max()) <= 1


def test_split_is_seeded_stratified_and_disjoint():
    a, b = load_dataset("iris", seed=3), load_dataset("iris", seed=3)
    assert torch.equal(a.train.X, b.train.X) and torch.equal(a.test.y, b.test.y)
    c = load_dataset("iris", seed=4)
    assert not torch.equal(a.test.X, c.test.X)
    assert a.class_counts("test") == {"setosa": 8, "versicolor": 8, "virginica": 8}
    m = load_dataset("moons", seed=1)
    rows = {tuple(r.tolist()) for r in m.train.X}
    assert not any(tuple(r.tolist()) in rows for r in m.test.X)


def test_split_indices_errors():
    with pytest.raises(DatasetError, match="at least 6"):
        split_indices(None, 3, seed=0, val_fraction=0.1, test_fraction=0.1, stratify=False)
    with pytest.raises(DatasetError, match="between 0 and 1"):
        split_indices(None, 100, seed=0, val_fraction=1.5, test_fraction=0.1, stratify=False)


def test_a_target_of_one_row_per_class_says_so_not_that_the_data_is_too_small():
    """A CSV whose target is a name (120 rows, 120 classes) was told it had too few rows for the split fractions:
    the fix names the target (a usability review)."""
    from builder.data.tabular import load_csv

    rows = "".join(f"student{i},{i % 7},{i % 3}\n" for i in range(90))
    with pytest.raises(DatasetError, match="a target of 90 classes in 90 rows.*not a name or an id"):
        load_csv(("student_name,hours,grade\n" + rows).encode(), "student_name")
    assert load_csv(("student_name,hours,grade\n" + rows).encode(), "grade").info.num_classes == 3


def test_toy_options_and_errors():
    ds = load_dataset("moons", n_samples=200, noise=0.3)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 200
    assert load_dataset("blobs", centers=5).info.num_classes == 5
    with pytest.raises(DatasetError, match="unknown dataset 'nope'; known datasets: .*moons"):
        load_dataset("nope")
    with pytest.raises(DatasetError, match="no option.*colour"):
        load_dataset("moons", colour=1)
    with pytest.raises(DatasetError, match="n_samples"):
        load_dataset("moons", n_samples=5)
    with pytest.raises(DatasetError, match="noise"):
        load_dataset("xor", noise=-1)


def test_sequence_rule_holds():
    ds = load_dataset("sequence", n_samples=500)
    info = ds.info
    assert info.modality == "tokens" and info.input_dtype == "int64" and info.vocab_size == 12
    assert info.task == "binary" and info.class_names == ["A", "B"]
    X, y = ds.train.X, ds.train.y
    nf = 12 - 2
    first_half = X[:, :8]
    marker = (first_half >= nf).float().argmax(1)
    assert torch.equal(first_half[torch.arange(len(X)), marker] - nf, y)
    four = load_dataset("sequence", markers=4)
    assert four.info.task == "multiclass" and four.info.num_classes == 4
    assert four.preview(1)[0]["tokens"][0] in four.info.vocab


def test_reconstruction_override_and_flatten():
    ds = load_dataset("digits", task="reconstruction", flatten=True)
    assert ds.info.task == "reconstruction" and ds.info.input_shape == (64,) and ds.info.out_size == 64
    assert ds.train.y is ds.train.X
    name, opts = ds.info.reload_args()
    again = load_dataset(name, **opts)
    assert torch.equal(again.train.X, ds.train.X)
    with pytest.raises(DatasetError, match="continuous target"):
        load_dataset("diabetes", task="multiclass")
    with pytest.raises(DatasetError, match="token"):
        load_dataset("sequence", task="reconstruction")


def test_regression_target_standardised():
    ds = load_dataset("diabetes")
    assert ds.info.out_size == 1 and ds.info.target_std is not None
    assert abs(float(ds.train.y.mean())) < 1e-5


# ---------------------------------------------------------------------------------------------- CSV
def _csv(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _table(n=60):
    rng = np.random.default_rng(0)
    rows = ["age,colour,income,label"]
    for i in range(n):
        age = "" if i == 5 else f"{rng.integers(20, 60)}"
        rows.append(f"{age},{['red', 'green', 'blue'][i % 3]},{rng.normal(50, 10):.2f},{['yes', 'no'][i % 2]}")
    return "\n".join(rows) + "\n"


def test_csv_encodes_and_infers(tmp_path):
    ds = load_csv(_csv(tmp_path, _table()), "label")
    info = ds.info
    assert info.task == "binary" and info.class_names == ["no", "yes"]
    assert info.feature_names == ["age", "colour=blue", "colour=green", "colour=red", "income"]
    assert not torch.isnan(ds.train.X).any()
    assert abs(float(ds.train.X[:, 0].mean())) < 1e-5  # standardised on train
    assert any("median" in n for n in info.notes)
    assert load_csv(_csv(tmp_path, _table()), "income").info.task == "regression"
    assert load_csv(_csv(tmp_path, _table()), "label", task="multiclass").info.task == "multiclass"
    name, opts = info.reload_args()  # a file of the command line: reloaded for the CLI's own runs only
    again = DatasetSource.from_run({"dataset_name": name, "dataset_options": opts}, local=True)
    assert name == "csv" and torch.equal(load_dataset(again).train.X, ds.train.X)
    with pytest.raises(DatasetError, match="never a file on the server; received: option path"):
        load_dataset(name, **opts)  # the same path as content


def test_csv_multiclass_from_small_integers(tmp_path):
    text = "x,y\n" + "\n".join(f"{i * 0.1},{i % 3}" for i in range(60))
    assert load_csv(_csv(tmp_path, text), "y").info.task == "multiclass"


@pytest.mark.parametrize("text,target,match", [
    ("", "y", "empty"),
    ("   \n", "y", "empty"),
    ("a,y\n", "y", "no data rows"),
    ("a,b\n1,2\n3,4\n", "y", "target column 'y' not found; columns are: 'a', 'b'"),
    ("a,y\n" + "\n".join(f"{i},1" for i in range(20)), "y", "single class"),
    ("a,y\n" + "\n".join(f"{'oops' if i == 7 else i},{i % 2}" for i in range(20)), "y",
     r"column 'a' is numeric but has non-numeric values \('oops'\) on line\(s\) 9"),
    ("a,y\n" + "\n".join(f"{i},{i % 3}" for i in range(30)), "y", "exactly 2 classes"),
    ("a,y\n" + "\n".join(f"{i},{'x' if i % 2 else 'z'}" for i in range(30)), "y", "numeric target"),
    ("y\n1\n2\n", "y", "at least one feature"),
    ("a,y\n" + "\n".join(f"v{i},{i % 2}" for i in range(150)), "y", "distinct values"),
])
def test_csv_errors(tmp_path, text, target, match):
    task = {"exactly 2 classes": "binary", "numeric target": "regression"}.get(match)
    with pytest.raises(DatasetError, match=match):
        load_csv(_csv(tmp_path, text), target, task=task)


def test_csv_missing_file_and_size_limit(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="no such file"):
        load_csv(tmp_path / "missing.csv", "y")
    monkeypatch.setattr(limits, "MAX_CSV_BYTES", 100)
    with pytest.raises(DatasetError, match="larger than"):
        load_csv(_csv(tmp_path, _table()), "label")


def test_csv_via_registry_needs_path():
    with pytest.raises(DatasetError, match="upload"):
        load_dataset("csv")


# -------------------------------------------------------------------------------------------- images
def _png(colour) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (10, 12), colour).save(buf, "PNG")
    return buf.getvalue()


def _image_tree(root, classes=("cat", "dog"), n=8):
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            (root / c / f"{i}.png").write_bytes(_png((ci * 200, i * 20, 50)))
    return root


def test_image_folder_and_zip(tmp_path):
    root = _image_tree(tmp_path / "pets")
    ds = load_image_folder(root, size=(8, 8))
    assert ds.info.input_shape == (3, 8, 8) and ds.info.class_names == ["cat", "dog"]
    assert ds.info.task == "binary" and float(ds.train.X.max()) <= 1.0
    z = tmp_path / "pets.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(root.rglob("*.png")):
            zf.write(f, f"pets/{f.parent.name}/{f.name}")
    dz = load_image_folder(z, size=(8, 8))
    assert dz.info.class_names == ["cat", "dog"] and len(dz.train) == len(ds.train)
    gray = load_image_folder(root, size=(6, 6), channels=1)
    assert gray.info.input_shape == (1, 6, 6)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        load_image_folder(tmp_path / "none")
    one = _image_tree(tmp_path / "one", classes=("cat",))
    with pytest.raises(DatasetError, match="only class 'cat'"):
        load_image_folder(one)
    bad = _image_tree(tmp_path / "bad")
    (bad / "cat" / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="not readable images.*junk.png"):
        load_image_folder(bad)
    with pytest.raises(DatasetError, match="size"):
        load_image_folder(bad, size=(1, 1))


def test_image_limits(tmp_path, monkeypatch):
    root = _image_tree(tmp_path / "pets")
    monkeypatch.setattr(limits, "MAX_IMAGE_FILES", 5)
    with pytest.raises(DatasetError, match="more than 5 images"):
        load_image_folder(root)


def test_image_zip_bytes_and_dataset_snapshot(tmp_path):
    from builder.data import load_saved_dataset, save_dataset
    root = _image_tree(tmp_path / "pets")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(root.rglob("*.png")):
            zf.write(f, f"{f.parent.name}/{f.name}")
    ds = load_image_folder(buf.getvalue(), size=(8, 8))
    assert ds.info.class_names == ["cat", "dog"] and ds.info.options["path"] is None
    back = load_saved_dataset(save_dataset(ds, tmp_path / "snap.safetensors"))
    assert back.info == ds.info and torch.equal(back.test.X, ds.test.X) and torch.equal(back.train.y, ds.train.y)
    rec = load_dataset("digits", task="reconstruction", flatten=True)
    back = load_saved_dataset(save_dataset(rec, tmp_path / "rec.safetensors"))
    assert back.train.y is back.train.X
    with pytest.raises(DatasetError, match="not found"):
        load_saved_dataset(tmp_path / "none.safetensors")
    with pytest.raises(DatasetError, match="table of contents cannot be read|not a folder or a zip"):
        load_image_folder(b"PK\x03\x04junk")
    whole = bytearray(buf.getvalue())  # its central directory damaged: zipfile's words alone were shown
    at = whole.rfind(b"PK\x01\x02")
    whole[at:at + 2] = b"XX"
    with pytest.raises(DatasetError, match=r"the zip's table of contents cannot be read; received: BadZipFile \(Bad "
                                           r"magic number for central directory\)\. Fix: re-create the zip"):
        load_image_folder(bytes(whole), size=(8, 8))


# ------------------------------------------------------------------------- upload limits (issue 9)
def test_latin1_and_cp1252_csv_are_read_with_a_note(tmp_path):
    text = "name,city,y\n" + "".join(f"{i},{['Zürich', 'Málaga', 'Köln'][i % 3]},{i % 2}\n" for i in range(30))
    for enc in ("latin-1", "cp1252"):
        p = tmp_path / f"{enc}.csv"
        p.write_bytes((text + "40,Besançon – €,1\n").encode("cp1252") if enc == "cp1252" else text.encode(enc))
        ds = load_csv(p, "y")
        assert "city=Zürich" in ds.info.feature_names
        assert any("not UTF-8" in n and "line 2" in n for n in ds.info.notes)
    p = tmp_path / "utf16.csv"
    p.write_bytes(text.encode("utf-16"))
    assert "city=Köln" in load_csv(p, "y").info.feature_names
    p = tmp_path / "bom.csv"
    p.write_bytes(text.encode("utf-8-sig"))
    ds = load_csv(p, "y")
    assert ds.info.feature_names[0] == "name" and not any("UTF-8" in n for n in ds.info.notes)


def test_stat_size_is_not_trusted(tmp_path, monkeypatch):
    """A /proc file reports size 0 and streams more; a device streams forever: both are bounded."""
    proc = Path("/proc/self/maps")
    assert proc.stat().st_size == 0 and len(proc.read_bytes()) > 200
    monkeypatch.setattr(limits, "MAX_CSV_BYTES", 200)
    with pytest.raises(DatasetError, match="larger than the limit"):
        load_csv(proc, "y")
    with pytest.raises(DatasetError, match="not a regular file"):
        load_csv("/dev/zero", "y")
    with pytest.raises(DatasetError, match="not a folder or a zip"):
        load_image_folder("/dev/zero")


def test_one_hot_total_is_capped(tmp_path, monkeypatch):
    rows = ["y," + ",".join(f"t{k}" for k in range(30))]
    rows += [f"{r % 2}," + ",".join(f"v{(r + k) % 50}" for k in range(30)) for r in range(100)]
    p = _csv(tmp_path, "\n".join(rows) + "\n")
    monkeypatch.setattr(limits, "MAX_FEATURES", 500)
    with pytest.raises(DatasetError, match=r"features x 100 rows, over the limits of 500 features.*Fix: drop"):
        load_csv(p, "y")
    monkeypatch.setattr(limits, "MAX_FEATURES", 5000)
    assert load_csv(p, "y").info.input_shape == (1500,)


def test_decoded_image_budget_and_megapixels(tmp_path, monkeypatch):
    root = _image_tree(tmp_path / "pets")  # 16 RGB images of 10x12
    monkeypatch.setattr(limits, "MAX_DECODED_BYTES", 16 * 3 * 32 * 32 - 1)  # uint8 bytes of the compact form
    with pytest.raises(DatasetError, match=r"16 images x 3 channel\(s\) x 32x32 would take .* MiB decoded.*Fix: a "
                                           r"smaller size \(at most 31x31"):
        load_image_folder(root, size=(32, 32))
    assert load_image_folder(root, size=(31, 31)).info.input_shape == (3, 31, 31)
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DatasetError, match=r"is 10x12 \(0 megapixels\), over the limit"):
        load_image_folder(root, size=(8, 8))


@pytest.mark.parametrize("damage", ["crc", "header", "truncated"])
def test_corrupt_zips_are_dataset_errors(tmp_path, damage):
    root = _image_tree(tmp_path / "pets")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(root.rglob("*.png")):
            zf.write(f, f"{f.parent.name}/{f.name}")
    raw = bytearray(buf.getvalue())
    if damage == "crc":
        raw[60] ^= 0xFF  # inside the first member's data
    elif damage == "header":
        raw[30:40] = b"\x00" * 10  # the first local header's name
    else:
        raw = raw[: len(raw) // 2]
    with pytest.raises(DatasetError, match="damaged|table of contents cannot be read|not a folder or a zip"):
        load_image_folder(bytes(raw), size=(8, 8))
