"""A recurrent layer with a padding mask: the .py export and ONNX (onnxruntime, import back) compute what the
compiled model computes on padded rows; bidirectional, ONNX is refused with the node named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from builder import compile_graph
from builder.graph.registry import PAD_ID, PADDING_MASK
from builder.interchange import import_model
from builder.interchange.errors import ModelImportError
from builder.interchange.onnx_export import ExportError, export_onnx, ort_session
from builder.interchange.python_export import python_source

ROWS = torch.tensor([[3, 4, 5, PAD_ID, PAD_ID, PAD_ID], [1, 2, 3, 4, 5, 6], [7, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])


def _graph(layer: str, **params) -> dict:
    return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [6], "modality": "tokens", "vocab_size": 11}},
                      {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 4}},
                      {"id": "rec", "type": layer, "params": {"hidden_size": 3, "num_layers": 2, **params}}],
            "edges": [{"source": "x", "target": "emb"}, {"source": "emb", "target": "rec"},
                      {"source": "x", "source_port": PADDING_MASK, "target": "rec", "target_port": PADDING_MASK}]}


def _python_model(graph: dict, model: torch.nn.Module) -> torch.nn.Module:
    ns: dict = {}
    exec(python_source(graph), ns)
    again = ns["Model"]().eval()
    again.load_state_dict(model.state_dict())
    return again


@pytest.mark.parametrize("layer, mode", [("LSTM", "last"), ("GRU", "all"), ("RNN", "last")])
def test_a_masked_recurrent_layer_exports_to_python_and_onnx_and_imports_back(layer, mode, tmp_path):
    graph = _graph(layer, output_mode=mode)
    path = tmp_path / "m.onnx"
    rep = export_onnx(graph, path)
    assert rep.max_abs_diff < 1e-5 and rep.inputs == ["x"]  # the mask is derived inside, from the ids
    torch.manual_seed(0)
    model = compile_graph(graph).eval()
    with torch.no_grad():
        want = model(ROWS)
        torch.testing.assert_close(_python_model(graph, model)(ROWS), want, rtol=0, atol=0)
    got = ort_session(path.read_bytes()).run(None, {"x": ROWS.numpy()})[0]
    assert np.abs(got - want.numpy()).max() < 1e-5  # onnxruntime on padded rows
    res = import_model(path)
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    imported = compile_graph(res.project.graph).eval()
    imported.load_state_dict(res.weights)
    with torch.no_grad():
        torch.testing.assert_close(imported(ROWS), want, rtol=1e-5, atol=1e-5)  # the imported model on padded rows


def test_a_bidirectional_masked_layer_exports_to_python_and_refuses_onnx_naming_the_node(tmp_path):
    graph = _graph("LSTM", bidirectional=True)
    torch.manual_seed(0)
    model = compile_graph(graph).eval()
    with torch.no_grad():
        torch.testing.assert_close(_python_model(graph, model)(ROWS), model(ROWS), rtol=0, atol=0)
    with pytest.raises(ExportError, match="node rec: a bidirectional recurrent layer with a padding mask has no ONNX form"):
        export_onnx(graph, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    # nor does its .py export import (import goes through ONNX): refused, saying why
    code = tmp_path / "model.py"
    code.write_text(python_source(graph))
    with pytest.raises(ModelImportError, match="packs its sequences.*Fix"):
        import_model(f"{code}:Model")


def test_a_masked_layer_exported_to_python_imports_back(tmp_path):
    graph = _graph("GRU")
    code = tmp_path / "model.py"
    code.write_text(python_source(graph))
    res = import_model(f"{code}:Model")
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    assert [n.type for n in res.project.graph.nodes].count("GRU") == 1
