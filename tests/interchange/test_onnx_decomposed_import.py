"""Modules that torch's dynamo exporter decomposes into plain ops come back as their layer (the module scope the
file records, builder/interchange/onnx_modules.py ``STATELESS`` and the unrolled ``nn.RNN``); without the scopes
the same ops import one by one (a 3-d AveragePool as a generic Op node) with the same outputs."""

from __future__ import annotations

import onnx
import pytest

from builder import infer_shapes
from builder.interchange.importer import import_model
from builder.interchange.onnx_export import export_onnx


def _one(layer: str, shape: list[int], params: dict) -> dict:
    return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                      {"id": "layer", "type": layer, "params": params}],
            "edges": [{"source": "x", "target": "layer"}]}


@pytest.mark.parametrize(("layer", "shape", "params"), [
    ("LocalResponseNorm", [4, 5, 3], {"size": 3, "alpha": 0.5, "beta": 0.75, "k": 2.0}),  # a 3-d AveragePool
    ("PixelUnshuffle", [2, 6, 3], {"downscale_factor": 3}),  # Shape arithmetic over the batch
    ("GroupNorm", [6, 5], {"num_groups": 3, "eps": 1e-3, "affine": True}),
    ("AdaptiveAvgPool1d", [3, 7], {"output_size": 2}),  # index arithmetic (uneven windows)
    ("RNN", [4, 3], {"hidden_size": 3, "num_layers": 2, "nonlinearity": "relu", "bidirectional": True,
                     "dropout": 0.0, "output_mode": "last"}),  # unrolled step by step
], ids=lambda v: v if isinstance(v, str) else None)
def test_decomposed_module_comes_back_as_its_layer(layer, shape, params, tmp_path):
    graph = _one(layer, shape, params)
    export_onnx(graph, tmp_path / "m.onnx")
    res = import_model(tmp_path / "m.onnx")
    assert [n.type for n in res.project.graph.nodes] == ["Input", layer]
    got = res.project.graph.nodes[1].params
    assert all(got[k] == pytest.approx(v) for k, v in params.items() if k != "dropout"), got
    assert res.report["max_abs_diff"] <= 1e-5
    assert res.report["total_params"] == infer_shapes(graph).total_params


def test_without_module_scopes_the_ops_import_one_by_one(tmp_path):
    export_onnx(_one("LocalResponseNorm", [4, 5, 3], {"size": 3, "alpha": 0.5, "beta": 0.75, "k": 2.0}),
                tmp_path / "m.onnx")
    model = onnx.load(tmp_path / "m.onnx")
    for n in model.graph.node:  # what an optimiser or another exporter leaves: no module scopes
        del n.metadata_props[:]
    onnx.save(model, tmp_path / "plain.onnx")
    res = import_model(tmp_path / "plain.onnx")
    ops = {n.params["op"] for n in res.project.graph.nodes if n.type == "Op"}
    assert "aten.avg_pool3d" in ops and res.report["max_abs_diff"] <= 1e-5


def test_unrolled_rnn_with_renamed_weights_is_read_by_structure(tmp_path):
    """The dynamo exporter's optimiser folds W_ih^T and W_hh^T into anonymous constants: found by what they
    multiply (the time-first input, each step's state)."""
    from tests.interchange.zoo import export

    path = export("relu_rnn", "onnx_dynamo", tmp_path)
    assert "rnn.weight_ih_l0" not in {t.name for t in onnx.load(path).graph.initializer}
    res = import_model(path)
    rnn = [n for n in res.project.graph.nodes if n.type == "RNN"]
    assert len(rnn) == 1 and rnn[0].params["nonlinearity"] == "relu" and res.report["max_abs_diff"] <= 1e-5
