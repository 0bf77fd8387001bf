"""Random graphs, broken ones included: never an unhandled exception; accepted ones compile and run with the
inferred shapes; rejected ones have node- or edge-located messages."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder import compile_graph, example_inputs, infer_shapes
from builder.graph.registry import all_specs
from tests.fuzz_budget import budget

TYPES = [s.type for s in all_specs()]
GRAPH_LEVEL = {"no_input", "too_many_nodes"}

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                 st.text(max_size=4), st.lists(st.integers(-3, 20), max_size=4))


@st.composite
def random_graph(draw):
    n = draw(st.integers(1, 9))
    nodes = [{"id": "in", "type": "Input", "params": {"shape": draw(st.sampled_from([[4], [6], [1, 8, 8], [3, 6, 6], [5, 8]]))}}]
    for i in range(1, n):
        typ = draw(st.sampled_from(TYPES) | st.sampled_from(["Lineer", "conv2d", "Bogus"]) if draw(st.integers(0, 9)) == 0
                   else st.sampled_from(TYPES))
        params = {}
        if draw(st.booleans()):
            spec = next((s for s in all_specs() if s.type == typ), None)
            if spec is not None and spec.params:
                p = draw(st.sampled_from(spec.params))
                params[p.name] = draw(junk | st.just(p.default))
        nodes.append({"id": draw(st.sampled_from([f"n{i}", f"n {i}", f"{i}x", "in"])) if i % 4 == 0 else f"n{i}",
                      "type": typ, "params": params})
    ids = [nd["id"] for nd in nodes]
    edges = []
    for j in range(1, n):
        if draw(st.integers(0, 5)) > 0:
            src = draw(st.integers(0, j - 1))
            edges.append({"source": ids[src], "target": ids[j]})
    for _ in range(draw(st.integers(0, 2))):
        edges.append({"source": draw(st.sampled_from(ids + ["ghost"])), "target": draw(st.sampled_from(ids)),
                      "target_port": draw(st.none() | st.sampled_from(["0", "1", "query", "key", "zz"])),
                      "source_port": draw(st.none() | st.sampled_from(["out", "h_n", "zz"]))})
    return {"nodes": nodes, "edges": edges}


@settings(max_examples=budget(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graph())
def test_random_graphs(graph):
    report = infer_shapes(graph)  # must never raise
    if not report.ok:
        for p in report.problems:
            assert p.node or p.edge or p.code in GRAPH_LEVEL, p
            assert p.message
        return
    model = compile_graph(graph).eval()
    xs = example_inputs(model, batch_size=2)
    with torch.no_grad():
        out = model(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == len(report.output_nodes)
    for o, nid in zip(outs, report.output_nodes, strict=True):
        assert tuple(o.shape) == (2, *report.nodes[nid].shape)
