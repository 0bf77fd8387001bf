"""builder.interchange.worker: an uploaded model is parsed in a worker process and recorded as a run (the
example in the module's docstring, which needs files and processes, run as a test)."""

from __future__ import annotations

import pytest

from builder.graph.templates import load_template
from builder.interchange.errors import ModelImportError
from builder.interchange.worker import export_onnx_bytes, import_upload
from builder.runs.store import RunStore


def test_import_upload_records_the_weights_as_a_run(tmp_path):
    data, _ = export_onnx_bytes(load_template("mlp").to_json())
    store = RunStore(tmp_path)
    project, run_id, report = import_upload(data, "net.onnx", store)
    assert project.name == "net" and project.training == {"init_from": run_id}
    assert store.get(run_id)["status"] == "imported"
    assert report["source"] == "net.onnx" and report["max_abs_diff"] <= 1e-5


@pytest.mark.parametrize(("name", "size", "match"), [("net.py", 10, "imports .onnx and .pt2"),
                                                     ("net.onnx", 11, "larger than the upload limit")])
def test_import_upload_refuses_before_parsing(tmp_path, name: str, size: int, match: str):
    with pytest.raises(ModelImportError, match=match):
        import_upload(b"x" * size, name, RunStore(tmp_path), max_bytes=10)
