"""Exports with the calibrated temperature: the .py and the ONNX file divide the logits by T (onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import builder
from builder.data.access import SYSTEM
from builder.errors import ExplainError, LayerLabError
from builder.interchange.onnx_export import ExportError, export_onnx, export_run_onnx, ort_session
from builder.interchange.python_export import export_python
from builder.interpret.calibration import calibrate_run, stored_temperature
from builder.runs.pipeline import load_run, run_training
from builder.runs.store import RunStore


def test_python_and_onnx_exports_divide_the_logits_by_the_temperature(tmp_path):
    graph = builder.load_template("cnn").graph
    torch.manual_seed(0)
    model = builder.compile_graph(graph).eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        want = model(x) / 2.5
    ns: dict = {}
    exec(compile(export_python(graph, temperature=2.5), "<exported>", "exec"), ns)  # noqa: S102
    exported = ns["Model"]().eval()
    exported.load_state_dict(model.state_dict())  # keys unchanged by the temperature
    with torch.no_grad():
        assert torch.allclose(exported(x), want, atol=1e-6)
    rep = export_onnx(graph, tmp_path / "t.onnx", model.state_dict(), temperature=2.5)
    sess = ort_session((tmp_path / "t.onnx").read_bytes())
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, want.numpy(), atol=1e-5) and rep.max_abs_diff < 1e-4
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ExportError, match="temperature"):
            export_onnx(graph, None, temperature=bad)
    with pytest.raises(LayerLabError, match="temperature"):
        export_python(graph, temperature=float("inf"))


def test_a_run_exports_with_its_stored_temperature(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    rid = run_training(builder.load_template("mlp"), "iris", {"epochs": 5, "seed": 0}, store, adapt=True).run_id
    with pytest.raises(ExplainError, match="calibrate"):
        export_run_onnx(store, rid, tmp_path / "m.onnx", temperature=True)
    t = calibrate_run(store, rid).temperature
    assert stored_temperature(store, rid) == pytest.approx(t)
    export_run_onnx(store, rid, tmp_path / "m.onnx", temperature=True)
    model, ds = load_run(store, rid)
    sess = ort_session((tmp_path / "m.onnx").read_bytes())
    got = sess.run(None, {sess.get_inputs()[0].name: ds.test.X.numpy()})[0]
    with torch.no_grad():
        assert np.allclose(got, (model.eval()(ds.test.X) / t).numpy(), atol=1e-5)
    # the command line: `layerlab export --run ID --temperature` for .py and ONNX; weights alone refuse it
    from builder.cli.main import main

    out = tmp_path / "cli.onnx"
    assert main(["export", "--run", rid, "--workspace", str(tmp_path), "--format", "onnx", "-o", str(out),
                 "--temperature"]) == 0
    sess = ort_session(out.read_bytes())
    assert np.allclose(sess.run(None, {sess.get_inputs()[0].name: ds.test.X.numpy()})[0], got, atol=1e-6)
    py = tmp_path / "cli.py"
    assert main(["export", "--run", rid, "--workspace", str(tmp_path), "-o", str(py), "--temperature"]) == 0
    assert str(round(t, 3))[:4] in py.read_text()
    assert main(["export", "--run", rid, "--workspace", str(tmp_path), "-o", str(tmp_path / "w.safetensors"),
                 "--temperature"]) == 2
