"""A graph whose learned parameters no output's gradient reaches is a located problem at validate (probe of
h-probe2, issue 28 class a): Input -> Linear -> Detach (or an Op aten.detach, or a factory like aten.zeros_like)
validated and failed at the first training step with torch's "element 0 of tensors does not require grad and does
not have a grad_fn"."""

from __future__ import annotations

import json

import pytest

from builder import validate


def _chain(*layers) -> dict:
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [4]}}]
    for i, (t, p) in enumerate(layers):
        nodes.append({"id": f"n{i}", "type": t, "params": p})
    return {"nodes": nodes, "edges": [{"source": a["id"], "target": b["id"]} for a, b in zip(nodes, nodes[1:])]}


def _op(op: str, args: list) -> tuple[str, dict]:
    return "Op", {"op": op, "args": json.dumps(args), "kwargs": "{}"}


T0 = {"t": 0}
CUT = {
    "detach_layer": _chain(("Linear", {"out_features": 3}), ("Detach", {})),
    "op_detach": _chain(("Linear", {"out_features": 3}), _op("aten.detach", [T0])),
    "op_zeros_like": _chain(("Linear", {"out_features": 3}), _op("aten.zeros_like", [T0])),
}


@pytest.mark.parametrize("case", sorted(CUT))
def test_no_gradient_reaching_any_learned_parameter_is_a_located_problem(case):
    problems = [p for p in validate(CUT[case]) if p.severity == "error"]
    assert [(p.code, p.node) for p in problems] == [("no_gradient", "n1")], problems
    assert "; received: " in problems[0].message and "Fix: " in problems[0].message


KEEP = {
    "plain": _chain(("Linear", {"out_features": 3})),
    "detach_then_linear": _chain(("Linear", {"out_features": 3}), ("Detach", {}), ("Linear", {"out_features": 2})),
    "comparison_cast_then_linear": _chain(("Linear", {"out_features": 4}), _op("aten.lt", [T0, 0.0]),
                                          _op("aten.to", [T0, {"dtype": "float32"}]), ("Linear", {"out_features": 3})),
    "no_parameters": _chain(_op("aten.erf", [T0])),  # nothing to learn: the trainer's own message
}


@pytest.mark.parametrize("case", sorted(KEEP))
def test_graphs_whose_output_reaches_a_parameter_stay_valid(case):
    assert [p for p in validate(KEEP[case]) if p.code == "no_gradient"] == []


def test_a_gan_like_graph_with_one_detached_branch_stays_valid():
    g = _chain(("Linear", {"out_features": 3}), ("Detach", {}))
    g["nodes"].append({"id": "head", "type": "Linear", "params": {"out_features": 2}})
    g["edges"].append({"source": "x", "target": "head"})
    assert [p for p in validate(g) if p.code == "no_gradient"] == []


def test_an_output_that_carries_the_gradient_is_followed_per_port():
    """An audit: Linear → Op aten.max.dim (values, indices) → ReLU was refused with no_gradient because the node had
    one integer output (its indices); its values carry the gradient, and the model trains. Gradients are followed
    per output port (the indices are token ids: they carry none)."""
    import json

    import torch

    from builder import compile_graph, validate

    def graph(port: str) -> dict:  # the values: "out"
        return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [3, 4]}},
                          {"id": "lin", "type": "Linear", "params": {"out_features": 4}},
                          {"id": "mx", "type": "Op", "params": {"op": "aten.max.dim", "args": json.dumps([{"t": 0}, 1]),
                                                                "outputs": 2}},
                          {"id": "act", "type": "ReLU"}],
                "edges": [{"source": "x", "target": "lin"}, {"source": "lin", "target": "mx", "target_port": "0"},
                          {"source": "mx", "source_port": port, "target": "act"}]}

    assert not [p for p in validate(graph("out")) if p.severity == "error"]
    model = compile_graph(graph("out"))
    model(torch.randn(2, 3, 4)).sum().backward()
    assert model.lin.weight.grad is not None
