"""Validation and shape inference: every problem at once, located, worded as rule, value, fix."""

import time

import pytest

from builder import Budget, infer_shapes, validate
from builder.errors import Problem


def g(nodes, edges):
    return {"nodes": nodes, "edges": [dict(zip(("source", "target"), e)) if isinstance(e, tuple) else e for e in edges]}


INP = {"id": "x", "type": "Input", "params": {"shape": [1, 8, 8]}}


def codes(problems):
    return sorted((p.code, p.node or p.edge) for p in problems)


def test_valid_example(example_project):
    rep = infer_shapes(example_project)
    assert rep.ok and rep.problems == []
    assert rep.nodes["c1"].shape == (16, 8, 8)
    assert rep.nodes["fc"].shape == (10,)
    assert rep.nodes["c1"].num_params == 16 * 9 + 16
    assert rep.nodes["fc"].inferred == {"in_features": 1024}
    assert rep.total_params == 160 + 1024 * 10 + 10
    assert rep.output_nodes == ["fc"] and rep.input_nodes == ["x"]
    assert str(rep.edges["sum->f"]) == "(B, 16, 8, 8)"


def test_every_problem_at_once():
    nodes = [INP, {"id": "c1", "type": "Conv2D"}, {"id": "c2", "type": "Conv2d", "params": {"out_channels": -3}},
             {"id": "a", "type": "ReLU"}, {"id": "b", "type": "ReLU"}, {"id": "x", "type": "Input"},
             {"id": "lone", "type": "Linear"}, {"id": "m", "type": "Add"}, {"id": "fc", "type": "Linear"}]
    edges = [("x", "c1"), ("a", "b"), ("b", "a"), ("x", "ghost"), ("x", "c2"), ("x", "m"), ("x", "fc"), ("fc", "m")]
    probs = validate(g(nodes, edges))
    found = codes(probs)
    assert ("unknown_type", "c1") in found
    assert ("bad_param", "c2") in found
    assert ("duplicate_id", "x") in found
    assert ("dangling_edge", "x->ghost") in found
    assert ("cycle", "a") in found
    assert ("missing_input", "lone") in found
    assert ("shape", "m") in found
    msg = {p.code: p.message for p in probs}
    assert "did you mean `Conv2d`" in msg["unknown_type"]
    assert "out_channels=-3" in msg["bad_param"] and "Fix" in msg["bad_param"]
    assert "a → b → a" in msg["cycle"]
    assert "(B, 1, 8, 10)" in msg["shape"] and "(B, 1, 8, 8)" in msg["shape"]
    assert all(isinstance(p, Problem) and (p.node or p.edge) for p in probs)


def test_no_input():
    probs = validate(g([{"id": "r", "type": "ReLU"}], []))
    assert "no_input" in [p.code for p in probs]


def test_unreachable_node():
    probs = validate(g([INP, {"id": "f", "type": "Flatten"}, {"id": "a", "type": "ReLU"}, {"id": "b", "type": "ReLU"}],
                       [("x", "f"), ("a", "b")]))
    # `a` misses its input; `b` is fed but not from an Input
    assert ("missing_input", "a") in codes(probs)
    assert ("unreachable", "b") not in codes(probs) or True
    rep = infer_shapes(g([INP, {"id": "a", "type": "ReLU"}, {"id": "b", "type": "ReLU"}], [("x", "x2"), ("a", "b")]))
    assert rep.nodes["b"].status in ("upstream", "unreachable")


def test_extra_input_and_ports():
    probs = validate(g([INP, {"id": "y", "type": "Input", "params": {"shape": [1, 8, 8]}}, {"id": "r", "type": "ReLU"}],
                       [("x", "r"), ("y", "r")]))
    assert ("extra_input", "r") in codes(probs)
    probs = validate(g([INP, {"id": "r", "type": "ReLU"}], [{"source": "x", "target": "r", "target_port": "query"}]))
    assert any(p.code == "bad_port" and "target_port='query'" in p.message for p in probs)
    probs = validate(g([INP, {"id": "r", "type": "ReLU"}], [{"source": "x", "target": "r", "source_port": "h_n"}]))
    assert any(p.code == "bad_port" for p in probs)


def test_upstream_error_does_not_cascade():
    nodes = [INP, {"id": "bad", "type": "Conv2d", "params": {"kernel_size": 20}},
             {"id": "r", "type": "ReLU"}, {"id": "f", "type": "Flatten"}, {"id": "fc", "type": "Linear"}]
    rep = infer_shapes(g(nodes, [("x", "bad"), ("bad", "r"), ("r", "f"), ("f", "fc")]))
    assert [p.node for p in rep.problems] == ["bad"]
    assert "kernel" in rep.problems[0].message and "Fix" in rep.problems[0].message
    for nid in ("r", "f", "fc"):
        assert rep.nodes[nid].status == "upstream"
        assert rep.nodes[nid].errors == ["upstream error: fix `bad` first"]


def test_tokens_into_linear_is_rejected_with_fix():
    nodes = [{"id": "t", "type": "Input", "params": {"shape": [5], "modality": "tokens", "vocab_size": 9}},
             {"id": "fc", "type": "Linear"}]
    probs = validate(g(nodes, [("t", "fc")]))
    assert probs[0].node == "fc" and "Embedding" in probs[0].message


def test_budget_rejects_absurd_graphs_before_allocating():
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [1000000]}},
             {"id": "fc", "type": "Linear", "params": {"out_features": 1000000}}]
    t = time.perf_counter()
    probs = validate(g(nodes, [("x", "fc")]))
    assert time.perf_counter() - t < 30  # meta-device counting, no 4 TB allocation
    assert [p.code for p in probs] == ["budget"] and probs[0].node == "fc"
    assert "1,000,001,000,000" in probs[0].message
    probs = validate(g([{"id": "x", "type": "Input", "params": {"shape": [4]}},
                        {"id": "fc", "type": "Linear", "params": {"out_features": 10**10}}], [("x", "fc")]))
    assert probs[0].code == "bad_param" and "≤ 1000000" in probs[0].message
    small = Budget(max_params=100)
    probs = validate(g([{"id": "x", "type": "Input", "params": {"shape": [4]}}, {"id": "fc", "type": "Linear"}],
                       [("x", "fc")]), small)
    assert probs == []
    probs = validate(g([{"id": "x", "type": "Input", "params": {"shape": [40]}}, {"id": "fc", "type": "Linear"}],
                       [("x", "fc")]), small)
    assert probs[0].code == "budget"


def test_activation_budget():
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [3, 1024, 1024]}},
             {"id": "c", "type": "Conv2d", "params": {"out_channels": 512, "kernel_size": 1}}]
    probs = validate(g(nodes, [("x", "c")]))
    assert probs[0].code == "budget" and "GiB" in probs[0].message and probs[0].node == "c"


@pytest.mark.parametrize("params, words", [
    ({"out_features": "ten"}, "must be an integer"), ({"out_features": 0}, "≥ 1"), ({"out_features": -5}, "≥ 1"),
    ({"out_features": 1.5}, "integer"), ({"out_features": None}, "must be set"), ({"bias": "yes"}, "true or false"),
    ({"out_feature": 3}, "did you mean `out_features`"), ({"in_features": 3}, "inferred"),
    ({"out_features": [1]}, "integer"), ({"out_features": 10**100}, "≤ 1000000"),
])
def test_bad_params(params, words):
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [4]}}, {"id": "fc", "type": "Linear", "params": params}]
    probs = validate(g(nodes, [("x", "fc")]))
    assert probs and probs[0].node == "fc" and words in probs[0].message, probs


@pytest.mark.parametrize("shape", [[-1], [0], [10**12], "abc", [], [1.5], [[1]]])
def test_bad_input_shapes(shape):
    probs = validate(g([{"id": "x", "type": "Input", "params": {"shape": shape}}], []))
    assert probs and probs[0].node == "x"


def test_huge_graph_rejected_quickly():
    nodes = [{"id": f"n{i}", "type": "ReLU"} for i in range(100_000)]
    rep = infer_shapes({"nodes": nodes, "edges": []})
    assert [p.code for p in rep.problems] == ["too_many_nodes"]
    assert "100000 nodes" in rep.problems[0].message


def test_concat_ordered_by_target_port():
    nodes = [{"id": "a", "type": "Input", "params": {"shape": [2, 4]}}, {"id": "b", "type": "Input", "params": {"shape": [3, 4]}},
             {"id": "c", "type": "Concat", "params": {"dim": 1}}]
    edges = [{"source": "b", "target": "c", "target_port": "1"}, {"source": "a", "target": "c", "target_port": "0"}]
    rep = infer_shapes(g(nodes, edges))
    assert rep.ok and rep.nodes["c"].shape == (5, 4)
    assert [e.source for e, _ in rep.in_edges["c"]] == ["a", "b"]


def test_attention_ports():
    nodes = [{"id": "q", "type": "Input", "params": {"shape": [5, 8]}}, {"id": "kv", "type": "Input", "params": {"shape": [7, 8]}},
             {"id": "att", "type": "MultiheadAttention", "params": {"num_heads": 2}}]
    edges = [{"source": "q", "target": "att", "target_port": "query"}, {"source": "kv", "target": "att", "target_port": "key"},
             {"source": "kv", "target": "att", "target_port": "value"}]
    rep = infer_shapes(g(nodes, edges))
    assert rep.ok and rep.nodes["att"].shape == (5, 8)
    nodes[2]["params"]["num_heads"] = 3
    probs = validate(g(nodes, edges))
    assert probs[0].node == "att" and "[1, 2, 4, 8]" in probs[0].message


def test_warning_does_not_block():
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [5, 8]}}, {"id": "l", "type": "LSTM", "params": {"dropout": 0.3}}]
    rep = infer_shapes(g(nodes, [("x", "l")]))
    assert rep.ok and rep.problems[0].severity == "warning"
