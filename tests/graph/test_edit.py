"""builder/graph/edit.py: the Build page's graph edits as functions on Graph (new graph out, argument unchanged)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from builder.graph.edit import MAX_LABEL, graph_hash, relabel_node, remove_nodes, set_param, with_edge_ids
from builder.graph.project import Graph
from builder.graph.templates import TEMPLATE_NAMES, load_template
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


@st.composite
def _edited(draw, base: Graph, tag: str) -> Graph:
    """``base`` after a person's (or Python's) edits: some layers removed, changed or moved, some added (ids
    ``<tag>0``...), some connections removed or added."""
    from builder.graph.project import Edge, Node

    nodes = []
    for n in base.nodes:
        act = draw(st.sampled_from(["keep", "keep", "drop", "param", "move"]))
        if act == "drop":
            continue
        if act == "param":
            n = n.model_copy(update={"params": {**n.params, "out_features": draw(st.integers(10, 20))}})
        elif act == "move":
            n = n.model_copy(update={"position": {"x": draw(st.integers(0, 99)), "y": 0}})
        nodes.append(n)
    nodes += [Node(id=f"{tag}{i}", type="ReLU") for i in range(draw(st.integers(0, 3)))]
    ids = [n.id for n in nodes]
    edges = [e for e in base.edges if e.source in ids and e.target in ids and draw(st.booleans())]
    if ids:
        for s, t in draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=3)):
            edges.append(Edge(source=s, target=t, id=f"{tag}-{s}->{t}"))
    return Graph(nodes=nodes, edges=edges)


@settings(max_examples=budget(100), deadline=None)
@given(data=st.data())
def test_rebase_keeps_the_browsers_edits_and_pythons(data):
    """A graph Python changed while the person drew (an inspector edit): the browser's stale graph is applied on top
    of it, never dropped (issue 29: an edit is never lost without a trace)."""
    from builder.graph.edit import rebase

    base = with_edge_ids(data.draw(graphs()))
    base = base.model_copy(update={"edges": list({e.key: e for e in base.edges}.values())})  # keys are unique
    local, current = data.draw(_edited(base, "a")), data.draw(_edited(base, "p"))
    got = rebase(base, local, current)
    ids = [n.id for n in got.nodes]
    by = {n.id: n for n in got.nodes}
    b, loc, cur = ({n.id: n for n in g.nodes} for g in (base, local, current))
    assert len(ids) == len(set(ids))
    assert all(e.source in by and e.target in by for e in got.edges)
    for i, n in loc.items():
        if i not in b:
            assert by[i] == n  # added in the browser
    for i, n in cur.items():
        if i not in b:
            assert by[i] == n  # added by Python
    for i in b:
        if i in loc and i in cur:
            for f in ("type", "label", "position"):  # each field from the side that changed it, Python's if both
                one = getattr(loc[i], f) if getattr(cur[i], f) == getattr(b[i], f) else getattr(cur[i], f)
                assert getattr(by[i], f) == one, f
            for k in {*b[i].params, *loc[i].params, *cur[i].params}:
                side = loc[i] if cur[i].params.get(k, "gone") == b[i].params.get(k, "gone") else cur[i]
                assert by[i].params.get(k, "gone") == side.params.get(k, "gone"), k
            if loc[i] == b[i]:
                assert by[i] == cur[i]  # the browser left it: Python's
            elif cur[i] == b[i]:
                assert by[i] == loc[i]  # Python left it: the browser's
        elif i not in loc and i in cur and cur[i] == b[i]:
            assert i not in by  # removed in the browser, untouched by Python
        elif i not in cur:
            assert i not in by  # removed by Python
    keys = {e.key for e in got.edges}
    for e in local.edges:
        if e.key not in {x.key for x in base.edges} and e.source in by and e.target in by:
            assert e.key in keys
    assert rebase(base, local, got) == got  # applying it again changes nothing
    assert rebase(base, base, current) == current  # no browser edit: Python's graph as it is


def test_rebase_gives_a_layer_added_under_an_id_python_used_a_free_id():
    from builder.graph.edit import rebase
    from builder.graph.project import Edge, Node

    base = Graph(nodes=[Node(id="x", type="Input")])
    local = Graph(nodes=[*base.nodes, Node(id="relu_1", type="ReLU")], edges=[Edge(source="x", target="relu_1")])
    current = Graph(nodes=[*base.nodes, Node(id="relu_1", type="Sigmoid")])
    got = rebase(base, local, current)
    assert [(n.id, n.type) for n in got.nodes] == [("x", "Input"), ("relu_1", "Sigmoid"), ("relu_1_2", "ReLU")]
    assert [(e.source, e.target) for e in got.edges] == [("x", "relu_1_2")]


def _respelled(g: Graph, data) -> Graph:  # noqa: ANN001
    """``g`` as another writer may spell it: implied ports named or not, defaults written or not, positions moved."""
    from builder.graph.registry import get_spec

    edges = []
    for e in g.edges:
        src, dst = get_spec(g.node(e.source).type), get_spec(g.node(e.target).type)
        update = {}
        if e.source_port is None and src.outputs and data.draw(st.booleans()):
            update["source_port"] = src.outputs[0]
        if e.target_port is None and len(dst.inputs) == 1 and not dst.variadic and data.draw(st.booleans()):
            update["target_port"] = dst.inputs[0]
        edges.append(e.model_copy(update=update))
    nodes = []
    for n in g.nodes:
        defaults = {p.name: p.default for p in get_spec(n.type).params if p.name not in n.params}
        chosen = data.draw(st.lists(st.sampled_from(sorted(defaults)), unique=True)) if defaults else []
        nodes.append(type(n).model_validate({**n.model_dump(), "params": {**n.params, **{k: defaults[k] for k in chosen}},
                                             "position": {"x": data.draw(st.integers(0, 900)), "y": 0}}))
    return g.model_copy(update={"nodes": data.draw(st.permutations(nodes)), "edges": data.draw(st.permutations(edges))})


@settings(max_examples=budget(40), deadline=None)
@given(st.sampled_from(TEMPLATE_NAMES), st.data())
def test_the_network_hash_is_the_network_not_its_spelling(name, data):
    """One home for "the same network": the run store's hash, the Train page's run of the canvas and the "replace
    your network?" question. The canvas names the ports templates leave out and writes defaults they omit; a
    run of a template as loaded stopped being the canvas's run after a click, and ports dropped altogether made a
    GAN whose discriminator's inputs were swapped "the template as shipped" (replaced without asking)."""
    g = load_template(name).graph
    assert graph_hash(_respelled(g, data)) == graph_hash(g)
    assert graph_hash(g.model_dump()) == graph_hash(g) == graph_hash(json.loads(g.model_dump_json()))


def test_what_a_network_computes_changes_its_hash():
    gan = load_template("gan").graph
    swapped = gan.model_copy(update={"edges": [e.model_copy(update={"target_port": {"0": "1", "1": "0"}[e.target_port]})
                                               if e.target == "real_fake" else e for e in gan.edges]})
    assert graph_hash(swapped) != graph_hash(gan)  # which input of the concatenation each part feeds
    mlp = load_template("mlp").graph
    fc = next(n for n in mlp.nodes if n.type == "Linear")
    wider = set_param(mlp, fc.id, "out_features", int(fc.params.get("out_features", 1)) + 1)
    assert graph_hash(wider) != graph_hash(mlp)
    no_bias = set_param(mlp, fc.id, "bias", False)  # a default changed is a parameter set
    assert graph_hash(no_bias) != graph_hash(mlp)
    rewired = mlp.model_copy(update={"edges": mlp.edges[1:]})
    assert graph_hash(rewired) != graph_hash(mlp)
