"""An ONNX operator whose values a LayerLab layer's rules refuse imports as a generic Op node, not as that layer: a Clip
to +inf was read as a Clamp with max=inf, a Clip with crossed bounds (hardtanh(x, 2.0): min 2, max 1) as a Clamp
with min > max, a LeakyRelu with a negative slope as a LeakyReLU; each import failed 'the imported graph does not
validate' (graph fuzzer's ONNX round trip, operator graphs seed 92001, graphs 1927, 2143, 2769)."""

from __future__ import annotations

import json

import pytest
import torch

from builder import compile_graph, example_inputs, infer_shapes, load_project
from builder.interchange.importer import import_model
from builder.interchange.onnx_export import export_onnx


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("op, args, layer", [
    ("aten.hardtanh", [0.0, float("inf")], "Clamp"),
    ("aten.hardtanh", [2.0], "Clamp"),
    ("aten.leaky_relu", [-1.0], "LeakyReLU"),
])
def test_an_operator_outside_its_layers_rules_imports_as_an_op_node(op, args, layer, tmp_path):
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [2, 4, 4]}},
             {"id": "f", "type": "Op", "params": {"op": op, "args": json.dumps([{"t": 0}, *args])}}]
    project = load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {
        "nodes": nodes, "edges": [{"source": "x", "target": "f", "target_port": "0"}]}}))
    assert infer_shapes(project.graph).ok
    model = compile_graph(project.graph).eval()
    export_onnx(project, tmp_path / "m.onnx", weights=model.state_dict())
    res = import_model(tmp_path / "m.onnx")  # raised ModelImportError: the imported graph does not validate
    types = [n.type for n in res.project.graph.nodes]
    assert layer not in types and "Op" in types, types
    again = compile_graph(res.project.graph).eval()
    again.load_state_dict(res.weights)
    xs = example_inputs(model, batch_size=3, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(again(*xs), model(*xs), rtol=0, atol=1e-6)


def test_a_layer_the_importer_maps_within_its_rules_stays_that_layer(tmp_path):
    """The other side: a Clip(0, 6) is still a ReLU6 and a LeakyRelu(0.2) a LeakyReLU."""
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [4]}},
             {"id": "a", "type": "ReLU6"}, {"id": "b", "type": "LeakyReLU", "params": {"negative_slope": 0.2}}]
    project = load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {
        "nodes": nodes, "edges": [{"source": "x", "target": "a"}, {"source": "a", "target": "b"}]}}))
    export_onnx(project, tmp_path / "m.onnx")
    types = [n.type for n in import_model(tmp_path / "m.onnx").project.graph.nodes]
    assert "ReLU6" in types and "LeakyReLU" in types and "Op" not in types, types


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_model_that_adds_an_axis_before_the_batch_is_refused_by_name(tmp_path):
    """A 2-d pooling of a 3-d tensor (batch taken for channels) exports as Unsqueeze(0) ... Squeeze(0): refused
    naming the operator and what to do (it imported as an Op node that moves the batch: 'the imported graph does
    not validate'; deep operator fuzzer, seed 92002, graph 344)."""
    from builder.interchange.errors import UnsupportedOpsError

    nodes = [{"id": "x", "type": "Input", "params": {"shape": [4, 4]}},
             {"id": "f", "type": "Op", "params": {"op": "aten.adaptive_avg_pool2d", "args": '[{"t": 0}, [2, 2]]'}}]
    project = load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {
        "nodes": nodes, "edges": [{"source": "x", "target": "f", "target_port": "0"}]}}))
    export_onnx(project, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedOpsError, match="before the batch") as e:
        import_model(tmp_path / "m.onnx")
    assert "so that the batch stays the first axis" in str(e.value)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("nodes, layer", [
    # a Relu of a comparison's ids (int64) was a ReLU layer, which takes float features (seed 92003, graph 591)
    ([{"id": "x", "type": "Input", "params": {"shape": [2]}},
      {"id": "c", "type": "Op", "params": {"op": "aten.logical_and", "args": '[{"t": 0}, {"t": 0}]'}},
      {"id": "r", "type": "Op", "params": {"op": "aten.relu", "args": '[{"t": 0}]'}}], "ReLU"),
    # a Reshape of a per-sample scalar (a summed loss) was a Flatten from dim 1 of a 1-d tensor (seed 92002, 772)
    ([{"id": "x", "type": "Input", "params": {"shape": [1, 6]}},
      {"id": "s", "type": "Op", "params": {"op": "aten.sum.dim_IntList", "args": '[{"t": 0}, [1, 2]]'}},
      {"id": "r", "type": "Reshape", "params": {}}], "Flatten"),
])
def test_an_operator_whose_input_a_layer_refuses_imports_as_an_op_node(nodes, layer, tmp_path):
    edges = [{"source": a["id"], "target": b["id"], **({"target_port": "0"} if b["type"] == "Op" else {})}
             for a, b in zip(nodes, nodes[1:])]
    project = load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {"nodes": nodes, "edges": edges}}))
    assert infer_shapes(project.graph).ok
    model = compile_graph(project.graph).eval()
    export_onnx(project, tmp_path / "m.onnx", weights=model.state_dict())
    res = import_model(tmp_path / "m.onnx")  # raised: the imported graph does not validate
    assert layer not in [n.type for n in res.project.graph.nodes]
    again = compile_graph(res.project.graph).eval()
    again.load_state_dict(res.weights)
    xs = example_inputs(model, batch_size=3, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(again(*xs), model(*xs), rtol=0, atol=1e-6)
