"""Tied weights (``params["shares"]``): a node that calls another node's module, as a PyTorch module called from
two places. One set of weights, counted once, one module in the compiled model and in the ``.py`` export;
nodes that cannot share are refused, every problem at once."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.graph.compile import compile_graph
from builder.graph.shapes import infer_shapes
from builder.interchange.python_export import export_python
from tests.fuzz_budget import budget


def _two_branches(features: int, hidden: int, b_params: dict | None = None) -> dict:
    """x -> a -> c, x -> b, c + b; ``b`` shares ``a`` unless ``b_params`` says otherwise."""
    return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [features]}},
                      {"id": "a", "type": "Linear", "params": {"out_features": hidden}},
                      {"id": "b", "type": "Linear", "params": b_params or {"out_features": hidden, "shares": "a"}},
                      {"id": "c", "type": "Linear", "params": {"out_features": hidden}},
                      {"id": "s", "type": "Add", "params": {}}],
            "edges": [{"source": "x", "target": "a"}, {"source": "a", "target": "c"}, {"source": "x", "target": "b"},
                      {"source": "c", "target": "s"}, {"source": "b", "target": "s"}]}


@settings(max_examples=budget(15), deadline=None)
@given(features=st.integers(1, 12), hidden=st.integers(1, 12))
def test_a_shared_node_holds_no_weights_of_its_own(features, hidden):
    graph = _two_branches(features, hidden)
    report = infer_shapes(graph)
    assert report.ok, report.problems
    untied = infer_shapes(_two_branches(features, hidden, {"out_features": hidden}))
    assert report.total_params == untied.total_params - untied.nodes["b"].num_params
    model = compile_graph(graph)
    assert sum(p.numel() for p in model.parameters()) == report.total_params
    assert sorted(model.state_dict()) == ["a.bias", "a.weight", "c.bias", "c.weight"]
    assert model.layerlab_names["b"] == model.layerlab_names["a"] == "a"
    x = torch.randn(3, features)
    with torch.no_grad():
        assert torch.equal(model(x), model.c(model.a(x)) + model.a(x))
    scope: dict = {}
    exec(compile(export_python(graph), "<export>", "exec"), scope)  # noqa: S102 - our own generated source
    exported = scope["Model"]()
    exported.load_state_dict(model.state_dict())  # the same keys: no module for the shared node
    with torch.no_grad():
        assert torch.equal(exported(x), model(x))


def test_nodes_that_cannot_share_are_refused_all_at_once():
    graph = _two_branches(4, 3, {"out_features": 5, "shares": "a"})
    graph["nodes"] += [{"id": "r1", "type": "Identity", "params": {}},
                       {"id": "r2", "type": "Identity", "params": {"shares": "r1"}},
                       {"id": "d", "type": "Linear", "params": {"out_features": 3, "shares": "nowhere"}},
                       {"id": "e", "type": "Linear", "params": {"out_features": 3, "shares": "b"}}]
    graph["edges"] += [{"source": "x", "target": "r1"}, {"source": "r1", "target": "r2"},
                       {"source": "x", "target": "d"}, {"source": "x", "target": "e"}]
    problems = {p.node: p.message for p in infer_shapes(graph).problems if p.code == "bad_share"}
    assert set(problems) == {"b", "r2", "d", "e"}
    assert "out_features=3 there, 5 here" in problems["b"]
    assert "a layer without weights" in problems["r2"]
    assert "shares='nowhere'" in problems["d"] and "Fix:" in problems["d"]
    assert "which shares 'a'" in problems["e"]


def test_a_shared_node_must_see_the_same_input_size():
    graph = _two_branches(4, 3)
    graph["edges"][2] = {"source": "a", "target": "b"}  # b now reads a's 3 features, a reads x's 4
    problems = [p.message for p in infer_shapes(graph).problems if p.code == "bad_share"]
    assert problems and "in_features=4 there, 3 here" in problems[0]


def test_structured_pruning_leaves_tied_weights_alone():
    from builder.graph.shrink import channel_plan

    graph = _two_branches(4, 3)
    graph["nodes"].insert(1, {"id": "stem", "type": "Linear", "params": {"out_features": 4}})
    graph["edges"] = [{"source": "x", "target": "stem"}] + [
        {**e, "source": "stem"} if e["source"] == "x" else e for e in graph["edges"]]
    plan = channel_plan(graph)
    assert any("shared with b (tied)" in r for r in plan.groups[plan.producers["a"]].blocked)
    assert any("tied" in r for r in plan.groups[plan.producers["stem"]].blocked)  # b and a read its channels
