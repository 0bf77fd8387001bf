"""Rules between a node's own parameters (``LayerSpec.check``: Hardtanh's min_val below max_val, a transposed
convolution's output padding below its stride or dilation, ...) need no input: validation reports them on the node
whatever feeds it. Before, they lived in the shape rules, which run only on a healthy input: a Hardtanh with
min_val > max_val behind a broken layer, or fed token ids, was not reported, and came up only once the rest was
fixed (the same graph, one problem at a time)."""

from __future__ import annotations

import pytest

from builder import validate
from builder.graph.registry import all_specs

CASES = {
    "Hardtanh": ({"min_val": 2.0, "max_val": 1.0}, [4], "min_val"),
    "Hardtanh_equal": ({"min_val": 1.0, "max_val": 1.0}, [4], "min_val"),
    "Clamp": ({"min": 2.0, "max": 1.0}, [4], "min"),
    "Clamp_unbounded": ({"min": None, "max": None}, [4], "bound"),
    "ConvTranspose2d": ({"stride": 2, "output_padding": 2}, [2, 4, 4], "output_padding"),
    "ConvTranspose1d": ({"stride": 1, "dilation": 2, "output_padding": 2}, [2, 4], "output_padding"),
    "MaxPool2d": ({"kernel_size": 2, "padding": [0, 2]}, [2, 4, 4], "padding"),
    "AvgPool1d": ({"kernel_size": 3, "padding": 2}, [2, 8], "padding"),
    "Arithmetic": ({"op": "div", "constant": 0.0}, [4], "dividing by 0"),
    "Reshape": ({"shape": [-1, 2, -1]}, [4], "-1"),
    "Permute": ({"dims": [1, 0, 2]}, [2, 3], "batch"),
    "Pad": ({"pad": [1, 1, 1]}, [4], "pair"),
    "Constant": ({"shape": [10_000, 10_000]}, [4], "too large"),
    "Parameter": ({"shape": [10_000, 10_000]}, [4], "too large"),
}


def _graph(layer: str, params: dict, shape: list, feed: str) -> dict:
    """``layer`` behind ``feed``: a broken Linear (out_features=0), or a token Input the layer refuses."""
    x = {"id": "x", "type": "Input", "params": {"shape": shape}}
    if feed == "tokens":
        x["params"] = {"shape": [4], "modality": "tokens", "vocab_size": 5}
        return {"nodes": [x, {"id": "L", "type": layer, "params": params}], "edges": [{"source": "x", "target": "L"}]}
    nodes = [x, {"id": "bad", "type": "Linear", "params": {"out_features": 0}},
             {"id": "L", "type": layer, "params": params}]
    return {"nodes": nodes, "edges": [{"source": "x", "target": "bad"}, {"source": "bad", "target": "L"}]}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("feed", ["broken_upstream", "tokens"])
def test_a_rule_between_parameters_is_reported_on_its_node_whatever_feeds_it(case, feed):
    params, shape, word = CASES[case]
    problems = validate(_graph(case.split("_")[0], params, shape, feed))
    mine = [p for p in problems if p.node == "L" and p.code == "bad_param"]
    assert len(mine) == 1, problems
    assert word in mine[0].message and "; received: " in mine[0].message and "Fix: " in mine[0].message
    if feed == "broken_upstream":
        assert any(p.node == "bad" for p in problems)  # and the other problem, at once


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_rule_between_parameters_is_reported_once_on_a_healthy_input(case):
    params, shape, _ = CASES[case]
    x = {"id": "x", "type": "Input", "params": {"shape": shape}}
    graph = {"nodes": [x, {"id": "L", "type": case.split("_")[0], "params": params}],
             "edges": [{"source": "x", "target": "L"}]}
    assert [(p.code, p.node) for p in validate(graph)] == [("bad_param", "L")]


def test_every_parameter_rule_passes_the_defaults():
    for spec in all_specs():
        if spec.check is not None:
            assert spec.check(spec.defaults()) == [], spec.type


@pytest.mark.parametrize("layer, shape", [("ConvTranspose2d", [2, 4, 4]), ("ConvTranspose1d", [2, 4])])
def test_a_transposed_convolutions_output_padding_stays_below_its_stride(layer, shape):
    """torch takes an output padding up to max(stride, dilation) - 1, onnxruntime only up to stride - 1: stride 1,
    dilation 2, output_padding 1 validated and its ONNX export failed ("Computed output shape is inconsistent with
    input spatial dimensions. output_padding (1) may be too large"; graph fuzzer seed 777010, graph 620)."""
    x = {"id": "x", "type": "Input", "params": {"shape": shape}}

    def graph(**params):
        return {"nodes": [x, {"id": "L", "type": layer, "params": {"out_channels": 2, **params}}],
                "edges": [{"source": "x", "target": "L"}]}
    problems = validate(graph(stride=1, dilation=2, output_padding=1))
    assert [(p.code, p.node) for p in problems] == [("bad_param", "L")], problems
    assert "stride" in problems[0].message and "onnx" in problems[0].message.lower()
    assert validate(graph(stride=2, dilation=3, output_padding=1)) == []

