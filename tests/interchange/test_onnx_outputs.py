"""Every output of an exported model comes back as an output of the imported canvas, in its order and with the same
values: a learned tensor returned as it is (a Parameter node), a constant, an input passed straight through, one
tensor returned twice, an output that is also consumed inside (graph fuzzer's ONNX round trip: a Parameter output
beside another output was dropped and the other output re-wired to it)."""

from __future__ import annotations

import json

import pytest
import torch

from builder import compile_graph, example_inputs, infer_shapes, load_project
from builder.interchange.importer import import_model
from builder.interchange.onnx_export import export_onnx

X = {"id": "x", "type": "Input", "params": {"shape": [4]}}
TOKENS = {"id": "x", "type": "Input", "params": {"shape": [5], "modality": "tokens", "vocab_size": 7}}


def _node(nid: str, type_: str, **params) -> dict:
    return {"id": nid, "type": type_, "params": params}


def _e(source: str, target: str, port: str | None = None) -> dict:
    return {"source": source, "target": target, **({"target_port": port} if port else {})}


GRAPHS = {
    "parameter beside a layer": ([X, _node("p", "Parameter", shape=[3]), _node("l", "Linear", out_features=2)],
                                 [_e("x", "p"), _e("x", "l")]),
    "parameter table beside a layer": ([X, _node("l", "Linear", out_features=2), _node("p", "Parameter", shape=[2, 3])],
                                       [_e("x", "l"), _e("x", "p")]),
    "parameter alone": ([X, _node("p", "Parameter", shape=[3])], [_e("x", "p")]),
    "two parameters": ([X, _node("p", "Parameter", shape=[3]), _node("q", "Parameter", shape=[2], init="zeros")],
                       [_e("x", "p"), _e("x", "q")]),
    "parameter returned twice": ([X, _node("p", "Parameter", shape=[3]), _node("o1", "Output"), _node("o2", "Output")],
                                 [_e("x", "p"), _e("p", "o1"), _e("p", "o2")]),
    "parameter beside token embeddings": ([TOKENS, _node("e", "Embedding", embedding_dim=3),
                                           _node("p", "Parameter", shape=[5, 3])], [_e("x", "e"), _e("x", "p")]),
    "constant beside a layer": ([X, _node("c", "Constant", shape=[3], value=2.0), _node("l", "Linear", out_features=2)],
                                [_e("x", "c"), _e("x", "l")]),
    "input passed through beside a layer": ([X, _node("o", "Output"), _node("l", "Linear", out_features=2)],
                                            [_e("x", "o"), _e("x", "l")]),
    "input returned twice": ([X, _node("o1", "Output"), _node("o2", "Output")], [_e("x", "o1"), _e("x", "o2")]),
    "one tensor returned twice": ([X, _node("l", "Linear", out_features=2), _node("o1", "Output"),
                                   _node("o2", "Output")], [_e("x", "l"), _e("l", "o1"), _e("l", "o2")]),
    "an output consumed inside": ([X, _node("l", "Linear", out_features=4), _node("o", "Output"), _node("r", "ReLU")],
                                  [_e("x", "l"), _e("l", "o"), _e("l", "r")]),
    # a parameter returned and also used inside, or used by two operators, came back as two copies (its Parameter
    # node or a constant stored in each operator that used it): 8 parameters for 4, untied in training
    "parameter returned and added": ([X, _node("p", "Parameter", shape=[4]), _node("o", "Output"), _node("a", "Add")],
                                     [_e("x", "p"), _e("p", "o"), _e("x", "a"), _e("p", "a")]),
    "parameter table returned and multiplied": (
        [{**X, "params": {"shape": [2, 3]}}, _node("p", "Parameter", shape=[2, 3]), _node("o", "Output"),
         _node("m", "Multiply")], [_e("x", "p"), _e("p", "o"), _e("x", "m"), _e("p", "m")]),
    "parameter returned and through a layer": ([X, _node("p", "Parameter", shape=[4]), _node("o", "Output"),
                                                _node("t", "Tanh")], [_e("x", "p"), _e("p", "o"), _e("p", "t")]),
    "parameter returned and into a Linear": ([X, _node("p", "Parameter", shape=[4]), _node("o", "Output"),
                                              _node("l", "Linear", out_features=2)],
                                             [_e("x", "p"), _e("p", "o"), _e("p", "l")]),
    "parameter used twice inside": ([X, _node("p", "Parameter", shape=[4]), _node("a", "Add"), _node("m", "Multiply"),
                                     _node("s", "Add")], [_e("x", "p"), _e("x", "a"), _e("p", "a"), _e("x", "m"),
                                                          _e("p", "m"), _e("a", "s"), _e("m", "s")]),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", GRAPHS)
def test_every_exported_output_comes_back_as_an_output_with_its_values(name, tmp_path):
    nodes, edges = GRAPHS[name]
    project = load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {"nodes": nodes, "edges": edges}}))
    report = infer_shapes(project.graph)
    assert report.ok, report.problems
    torch.manual_seed(0)
    model = compile_graph(project.graph, report=report).eval()
    export_onnx(project, tmp_path / "m.onnx", weights=model.state_dict())
    res = import_model(tmp_path / "m.onnx", name="again")  # raised: 'the imported model has 1 output(s), the original 2'
    again_report = infer_shapes(res.project.graph)
    assert again_report.ok, again_report.problems
    assert len(again_report.output_nodes) == len(report.output_nodes)
    assert res.report["total_params"] == report.total_params
    # a returned learned tensor is not said to read the weights of the op mapped just before it
    assert not [n for n in res.report["notes"] if "reads the same weights" in n], res.report["notes"]
    again = compile_graph(res.project.graph, report=again_report).eval()
    again.load_state_dict(res.weights)
    xs = example_inputs(model, batch_size=3, seed=1)
    with torch.no_grad():
        want, got = model(*xs), again(*xs)
    want, got = (o if isinstance(o, tuple) else (o,) for o in (want, got))
    for w, g in zip(want, got, strict=True):  # the same values, in the file's order
        torch.testing.assert_close(g, w, rtol=0, atol=1e-6)
