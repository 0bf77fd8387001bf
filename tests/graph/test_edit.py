"""builder/graph/edit.py: the Build page's graph edits as functions on Graph (new graph out, argument unchanged)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from builder.graph.edit import MAX_LABEL, relabel_node, remove_nodes, set_param, with_edge_ids
from builder.graph.project import Graph
from tests.fuzz_budget import budget


@st.composite
def graphs(draw) -> Graph:
    """Up to 8 nodes (ids unique), edges between them (some with ids, some with ports)."""
    n = draw(st.integers(0, 8))
    ids = [f"n{i}" for i in range(n)]
    nodes = [{"id": i, "type": draw(st.sampled_from(["Input", "Linear", "ReLU", "Add"])),
              "params": draw(st.dictionaries(st.sampled_from(["out_features", "p", "dim"]), st.integers(-3, 9),
                                             max_size=2))} for i in ids]
    edges = []
    if ids:
        for s, t in draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=10)):
            e = {"source": s, "target": t}
            if draw(st.booleans()):
                e["target_port"] = draw(st.sampled_from(["0", "1", "in"]))
            if draw(st.booleans()):
                e["id"] = f"e{len(edges)}"
            edges.append(e)
    return Graph(nodes=nodes, edges=edges)


node_ids = st.sampled_from(["n0", "n1", "n3", "n7", "ghost"])


@settings(max_examples=budget(100), deadline=None)
@given(graphs(), node_ids, st.sampled_from(["out_features", "p", "new"]), st.integers(-5, 50) | st.lists(st.integers(), max_size=2))
def test_set_param_changes_one_value_of_one_node(g, nid, name, value):
    before = g.model_copy(deep=True)
    out = set_param(g, nid, name, value)
    assert g == before  # the argument is not changed
    assert out.edges == g.edges and [n.id for n in out.nodes] == [n.id for n in g.nodes]
    for old, new in zip(g.nodes, out.nodes, strict=True):
        if old.id == nid:
            assert new.params == {**old.params, name: value}
            assert new.model_copy(update={"params": old.params}) == old
        else:
            assert new == old


@settings(max_examples=budget(100), deadline=None)
@given(graphs(), node_ids, st.none() | st.text(max_size=260))
def test_relabel_node_sets_a_trimmed_label_or_clears_it(g, nid, label):
    out = relabel_node(g, nid, label)
    want = (label or "").strip()[:MAX_LABEL] or None
    for old, new in zip(g.nodes, out.nodes, strict=True):
        assert new == (old.model_copy(update={"label": want}) if old.id == nid else old)
    assert out.edges == g.edges


@settings(max_examples=budget(100), deadline=None)
@given(graphs(), st.lists(node_ids, max_size=3))
def test_remove_nodes_drops_the_nodes_and_every_edge_touching_them(g, ids):
    out = remove_nodes(g, ids)
    gone = set(ids)
    assert out.nodes == [n for n in g.nodes if n.id not in gone]
    assert out.edges == [e for e in g.edges if not {e.source, e.target} & gone]
    assert not any({e.source, e.target} & gone for e in out.edges)
    if not gone & {n.id for n in g.nodes} and not any({e.source, e.target} & gone for e in g.edges):
        assert out == g  # unknown ids change nothing


@settings(max_examples=budget(100), deadline=None)
@given(graphs())
def test_with_edge_ids_names_every_edge_by_its_key(g):
    out = with_edge_ids(g)
    assert all(e.id for e in out.edges)
    assert [e.key for e in out.edges] == [e.key for e in g.edges]
    assert with_edge_ids(out) == out and out.nodes == g.nodes


def test_edits_by_hand():
    g = Graph(nodes=[{"id": "x", "type": "Input"}, {"id": "fc", "type": "Linear", "params": {"out_features": 4}},
                     {"id": "r", "type": "ReLU"}],
              edges=[{"source": "x", "target": "fc"}, {"source": "fc", "target": "r"}])
    assert set_param(g, "fc", "out_features", 2).node("fc").params == {"out_features": 2}
    assert relabel_node(g, "fc", " head ").node("fc").label == "head"
    assert relabel_node(relabel_node(g, "fc", "head"), "fc", "   ").node("fc").label is None
    cut = remove_nodes(g, ["fc"])
    assert [n.id for n in cut.nodes] == ["x", "r"] and cut.edges == []
    assert [e.id for e in with_edge_ids(g).edges] == ["x->fc", "fc->r"]
