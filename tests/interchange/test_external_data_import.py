"""ONNX files written as a pair (issue 29 item 3): torch 2.13's ``torch.onnx.export(model, (x,), "m.onnx")`` writes
``m.onnx`` and ``m.onnx.data``. The importer takes the pair (a folder, an uploaded set, a zip), resolving external
data only inside the set; a file exported at batch 1 (``torch.flatten`` a reshape to ``[1, 64]``) imports with the
batch kept symbolic; a file that fixes the batch where it cannot be recovered is refused naming the fix."""

from __future__ import annotations

import io
import logging
import warnings
import zipfile
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from builder.data.access import Actor
from builder.interchange import ModelImportError
from builder.interchange.importer import import_model
from builder.interchange.worker import import_upload
from builder.runs.store import RunStore


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(64, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def _export(folder: Path, **options) -> tuple[nn.Module, Path]:
    """The default export of torch 2.13 (dynamo, batch 1 example, external data unless told otherwise)."""
    torch.manual_seed(0)
    model = Net().eval()
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            torch.onnx.export(model, (torch.randn(1, 1, 8, 8),), str(folder / "m.onnx"), verbose=False, **options)
        finally:
            logging.disable(logging.NOTSET)
    return model, folder / "m.onnx"


def _check(res, model) -> None:
    from builder.graph.compile import compile_graph

    imported = compile_graph(res.project.graph)
    imported.load_state_dict(res.weights)
    x = torch.randn(5, 1, 8, 8)  # the file fixed batch 1
    with torch.no_grad():
        assert float((imported.eval()(x) - model(x)).abs().max()) <= 1e-5
    assert "Flatten" in {n.type for n in res.project.graph.nodes}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    model, path = _export(tmp_path_factory.mktemp("pair"))
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.onnx", "m.onnx.data"]
    return model, path


def test_the_pair_imports_from_its_folder_an_uploaded_set_and_a_zip(pair):
    model, path = pair
    _check(import_model(path.parent), model)  # the CLI's `layerlab import FOLDER`
    files = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    res = import_model(files)
    _check(res, model)
    assert res.report["source"] == "m.onnx"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"export/{name}", data)
    _check(import_model(buf.getvalue()), model)


def test_the_app_upload_takes_the_pair(pair, tmp_path):
    model, path = pair
    project, rid, report = import_upload(path.read_bytes(), "my model.onnx", RunStore(tmp_path, actor=Actor.local()),
                                         companions={"m.onnx.data": (path.parent / "m.onnx.data").read_bytes()})
    assert project.name == "my model" and report["max_abs_diff"] <= 1e-5


def test_a_batch_one_file_without_external_data_imports(tmp_path):
    model, path = _export(tmp_path, external_data=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    _check(import_model(path), model)


def _pointing_to(path: Path, location: str) -> bytes:
    proto = onnx.load(str(path), load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    return proto.SerializeToString()


@pytest.mark.parametrize("location", ["../outside.data", "/etc/hostname"])
def test_external_data_resolves_only_inside_the_uploaded_set(pair, tmp_path, location):
    _, path = pair
    (tmp_path / "outside.data").write_bytes((path.parent / "m.onnx.data").read_bytes())  # a real file, not uploaded
    files = {"m.onnx": _pointing_to(path, location), "m.onnx.data": (path.parent / "m.onnx.data").read_bytes()}
    with pytest.raises(ModelImportError, match="outside the model's folder") as e:
        import_model(files)
    assert "outside.data" not in str(e.value) or location in str(e.value)


def test_a_model_chosen_without_its_data_file_asks_for_both(pair, tmp_path):
    """The default export written by ``torch.onnx.export(model, (x,), "m.onnx")`` is two files; a newcomer who chose
    only m.onnx in the app read that its data lay "outside the model's folder" and was told to "keep external data
    files next to the model", which an upload cannot do. The message names the missing file and the fix."""
    _, path = pair
    with pytest.raises(ModelImportError) as e:
        import_upload(path.read_bytes(), "m.onnx", RunStore(tmp_path, actor=Actor.local()))
    text = str(e.value)
    assert "'m.onnx.data'" in text and "missing" in text and "both files" in text, text
    assert "outside" not in text
    with pytest.raises(ModelImportError, match="missing"):
        import_model({"m.onnx": _pointing_to(path, "elsewhere.data"), "m.onnx.data": b""})


@pytest.mark.parametrize("name", ["../m.onnx.data", "sub/m.onnx.data", "/tmp/m.onnx.data", ".."])
def test_uploaded_names_are_plain_file_names(pair, name):
    _, path = pair
    with pytest.raises(ModelImportError, match="plain file name"):
        import_model({"m.onnx": path.read_bytes(), name: b""})


def test_a_file_fixing_the_batch_is_refused_naming_the_export_option(tmp_path):
    class Regroup(nn.Module):  # the batch folded into another dimension: no batch-first reshape recovers it
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x.reshape(x.shape[0] * 4, 4)).reshape(x.shape[0], 8)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Regroup().eval(), (torch.randn(1, 16),), str(tmp_path / "r.onnx"), dynamo=False)
    with pytest.raises(ModelImportError, match=r"fixes the batch at 1.*dynamic_shapes"):
        import_model(tmp_path / "r.onnx")
