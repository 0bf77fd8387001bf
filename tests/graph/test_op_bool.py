"""An ``Op`` node's bool output (``aten.lt`` ...) is typed as tokens of vocabulary 2 and feeds an operator that
wants a bool (``aten.where``'s condition): imported Huber losses and masks have this pair."""

from __future__ import annotations

import json

import torch

from builder import compile_graph, infer_shapes


def _op(nid: str, op: str, args: list) -> dict:
    return {"id": nid, "type": "Op", "params": {"op": op, "args": json.dumps(args)}}


def test_a_bool_op_output_feeds_where():
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                       _op("lt", "aten.lt.Scalar", [{"t": 0}, 0.5]),
                       _op("w", "aten.where.self", [{"t": 0}, {"t": 1}, {"t": 2}]),
                       _op("neg", "aten.neg", [{"t": 0}])],
             "edges": [{"source": "x", "target": "lt"}, {"source": "x", "target": "neg"},
                       {"source": "lt", "target": "w", "target_port": "0"},
                       {"source": "x", "target": "w", "target_port": "1"},
                       {"source": "neg", "target": "w", "target_port": "2"}]}
    rep = infer_shapes(graph)
    assert rep.ok, rep.problems
    t = rep.nodes["lt"].type_out
    assert (t.kind, t.vocab) == ("tokens", 2) and rep.nodes["w"].type_out.kind == "tensor"
    x = torch.randn(3, 4)
    assert torch.equal(compile_graph(graph)(x), torch.where(x < 0.5, x, -x))


def test_int64_tokens_are_still_refused_where_a_bool_is_needed():
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                       {"id": "k", "type": "Input", "params": {"shape": [4], "modality": "tokens", "vocab_size": 5}},
                       _op("w", "aten.where.self", [{"t": 0}, {"t": 1}, {"t": 1}])],
             "edges": [{"source": "k", "target": "w", "target_port": "0"},
                       {"source": "x", "target": "w", "target_port": "1"}]}
    rep = infer_shapes(graph)
    assert not rep.ok and any("where" in p.message and p.node == "w" for p in rep.problems), rep.problems
