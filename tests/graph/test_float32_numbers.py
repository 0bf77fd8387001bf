"""Numbers float32 cannot hold (builder/graph/spec.py ``float_problem``): one rule for a layer's float parameters
and an ``Op`` node's numbers and inline constants. Before, ``aten.pow`` with exponent -5.4e-159 (or an Arithmetic
``pow`` of that constant) validated and the ONNX export then differed from PyTorch by NaN (0 in the file, not in
PyTorch's kernel); an inline float32 constant of 1e39 validated as 1e39 and computed inf (graph fuzzer)."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder import infer_shapes
from tests.fuzz_budget import budget

T0 = {"t": 0}


def _op(op: str, args: list) -> dict:
    return {"id": "n", "type": "Op", "params": {"op": op, "args": json.dumps(args)}}


def _inline(*values: float) -> dict:
    return {"tensor": list(values), "dtype": "float32", "shape": [len(values)]}


def _graph(node: dict) -> dict:
    x = {"id": "x", "type": "Input", "params": {"shape": [4]}}
    port = {"target_port": "0"} if node["type"] == "Op" else {}
    return {"nodes": [x, node], "edges": [{"source": "x", "target": "n", **port}]}


UNHELD = {
    "op_pow_exponent_rounds_to_0": _op("aten.pow", [T0, -5.4e-159]),
    "op_pow_exponent_turns_into_inf": _op("aten.pow", [T0, 1e39]),
    "op_mul_keyword_rounds_to_0": {"id": "n", "type": "Op", "params": {"op": "aten.mul", "args": '[{"t": 0}]',
                                                                       "kwargs": json.dumps({"other": 1e-300})}},
    "op_inline_constant_inf": _op("aten.add", [T0, _inline(1e39, 1.0, 2.0, 3.0)]),
    "op_inline_constant_rounds_to_0": _op("aten.pow", [T0, _inline(-5.4e-159)]),
    "op_inline_constant_in_a_list": _op("aten.cat", [[T0, _inline(1.0, 1e-50)], -1]),
    "op_inline_constant_of_400_digits": _op("aten.mul", [T0, _inline(10 ** 400)]),  # no OverflowError either
    "arithmetic_pow_constant": {"id": "n", "type": "Arithmetic", "params": {"op": "pow", "constant": -5.4e-159}},
    "leaky_relu_slope": {"id": "n", "type": "LeakyReLU", "params": {"negative_slope": 1e-300}},
    "constant_value": {"id": "n", "type": "Constant", "params": {"shape": [2], "value": 1e-300}},
}


@pytest.mark.parametrize("case", sorted(UNHELD))
def test_a_number_float32_cannot_hold_is_a_located_problem(case):
    report = infer_shapes(_graph(UNHELD[case]))
    assert not report.ok
    (problem,) = report.problems
    assert problem.node == "n", problem
    assert "float32 can hold" in problem.message and "received:" in problem.message and "Fix:" in problem.message


def _held(v: float) -> bool:
    f = struct.unpack("f", struct.pack("f", v))[0]
    return v == 0 or (f != 0 and abs(f) != float("inf"))


@settings(max_examples=budget(60), deadline=None)
@given(v=st.floats(allow_nan=False, allow_infinity=False), where=st.sampled_from(["scalar", "inline", "layer"]))
def test_any_finite_number_is_taken_exactly_when_float32_holds_it(v, where):
    node = {"scalar": _op("aten.mul", [T0, v]), "inline": _op("aten.mul", [T0, _inline(v)]),
            "layer": {"id": "n", "type": "Arithmetic", "params": {"op": "mul", "constant": v}}}[where]
    if where == "layer" and abs(v) > 1e6:
        return  # the Arithmetic constant's own range
    report = infer_shapes(_graph(node))
    assert report.ok == _held(v), (v, report.problems)


@pytest.mark.parametrize(("written", "shown"), [("1e20", "1e+20"), ("1E300", "1e+300"), ("1e400", "inf"),
                                                 ("1" + "0" * 25, "1e+25")])
def test_a_size_out_of_range_is_shown_as_written(written, shown):
    """A whole number too large for a size, written in e-notation in a project file (the JSON float 1e20, taken as
    the integer 10**20): the problem said ``received: out_features=inf``, a value the person never wrote. Now as
    written; only what no float holds (1e400) is inf."""
    from builder.graph.project import load_project
    from builder.graph.shapes import validate

    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                       {"id": "n", "type": "Linear", "params": {"out_features": "WRITTEN"}}],
             "edges": [{"source": "x", "target": "n"}]}
    text = json.dumps({"format": "layerlab", "version": 1, "graph": graph}).replace('"WRITTEN"', written)
    (problem,) = validate(load_project(text.encode()).graph)
    assert f"received: out_features={shown}." in problem.message, problem.message
