"""builder/graph/layout.py: columns by longest path from the inputs, and the same wrapped into rows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.graph.layout import auto_layout, node_height, row_layout
from builder.graph.project import Graph
from builder.graph.templates import TEMPLATE_NAMES, load_template
from tests.fuzz_budget import budget


@st.composite
def dags(draw) -> Graph:
    """Up to 12 nodes with unique ids; edges only from a lower to a higher index (acyclic)."""
    n = draw(st.integers(1, 12))
    nodes = [{"id": f"n{i}", "type": "Linear"} for i in range(n)]
    pairs = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] < p[1])
    edges = [{"source": f"n{a}", "target": f"n{b}"} for a, b in draw(st.lists(pairs, max_size=15))] if n > 1 else []
    return Graph(nodes=nodes, edges=edges)


@settings(max_examples=budget(100), deadline=None)
@given(dags())
def test_auto_layout_puts_every_edge_left_to_right(g):
    out = auto_layout(g)
    pos = {n.id: n.position for n in out.nodes}
    assert all(p is not None for p in pos.values())
    assert all(pos[e.target].x > pos[e.source].x for e in out.edges)
    assert len({(p.x, p.y) for p in pos.values()}) == len(pos)  # no two nodes on one spot


@settings(max_examples=budget(100), deadline=None)
@given(dags(), st.integers(1, 5))
def test_row_layout_wraps_columns_into_rows(g, per_row):
    cols = auto_layout(g, dx=280.0, dy=120.0)
    out = row_layout(g, per_row=per_row)
    assert [n.id for n in out.nodes] == [n.id for n in g.nodes] and out.edges == g.edges
    pos = {n.id: n.position for n in out.nodes}
    assert len({(p.x, p.y) for p in pos.values()}) == len(pos)
    xs = sorted({n.position.x for n in cols.nodes})
    if len(xs) <= per_row:
        assert out == cols  # short graphs stay one row
        return
    assert {p.x for p in pos.values()} <= {k * 280.0 for k in range(per_row)}
    for a in cols.nodes:  # nodes of one column stay together, in the same order
        for b in cols.nodes:
            if a.position.x == b.position.x:
                assert pos[a.id].x == pos[b.id].x
                assert (pos[a.id].y < pos[b.id].y) == (a.position.y < b.position.y)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_templates_fit_three_columns(name):
    """Three columns a row: the two 4-layer LSTM templates stayed one row of four, which needs zoom 0.52-0.55 beside
    the open palette, so their first view (zoom >= 0.65) showed 3 of their 4 layers at 1440x900 and 900x900."""
    g = row_layout(load_template(name).graph)
    assert {n.position.x for n in g.nodes} <= {0.0, 280.0, 560.0}


def test_row_layout_by_hand():
    chain = Graph(nodes=[{"id": f"n{i}", "type": "Linear"} for i in range(5)],
                  edges=[{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(4)])
    out = row_layout(chain, per_row=2)
    assert [(n.position.x, n.position.y) for n in out.nodes] == [(0, 0), (280, 0), (0, 190), (280, 190), (0, 380)]


def _extent(g: Graph) -> tuple[float, float]:
    """(width, height) of a placed graph, one column and one row gap included."""
    xs, ys = [n.position.x for n in g.nodes], [n.position.y for n in g.nodes]
    return max(xs) - min(xs) + 280.0, max(ys) - min(ys) + 190.0


@settings(max_examples=budget(60), deadline=None)
@given(dags(), st.integers(0, 60))
def test_a_fitted_layout_is_about_as_wide_as_a_screen(g, chain):
    """``per_row=None`` (imported files): a long chain or a DAG is wrapped into rows, never one long row; a
    graph with more than a few columns ends at most 3 times as wide as tall (a 1440x900 screen is 1.6)."""
    if chain:  # a long chain after the DAG, as an imported CNN or transformer is
        ids = [f"c{i}" for i in range(chain)]
        g = Graph(nodes=[*g.nodes, *({"id": i, "type": "ReLU"} for i in ids)],
                  edges=[*g.edges, {"source": g.nodes[-1].id, "target": ids[0]},
                         *({"source": a, "target": b} for a, b in zip(ids, ids[1:]))])
    out = row_layout(g, per_row=None)
    pos = {n.id: n.position for n in out.nodes}
    assert len({(p.x, p.y) for p in pos.values()}) == len(pos)
    if len({n.position.x for n in auto_layout(g).nodes}) > 4:
        width, height = _extent(out)
        assert width <= 3 * height, (width, height)


def _fit_zoom(g: Graph, aspect: float) -> float:
    """The zoom at which the whole placed graph (its layers' 200 x 114 px included) fits a canvas ``aspect`` times
    as wide as it is tall, of height 1."""
    xs, ys = [n.position.x for n in g.nodes], [n.position.y for n in g.nodes]
    return min(aspect / (max(xs) - min(xs) + 200.0), 1.0 / (max(ys) - min(ys) + 114.0))


@pytest.mark.parametrize("layers", [11, 12, 14, 20, 30, 45])
def test_an_imported_chain_is_wrapped_to_fit_the_canvas_at_the_largest_zoom(layers):
    """Review of issue 29: an imported 11-layer CNN was wrapped into rows of 4 (aimed at a 1.6 screen, its layers'
    width left out): 1,040 px wide, so its first view at the readable zoom showed 9 of its 11 layers at 1440x900,
    where the templates' 3 a row fit. The free canvas beside the palette is 661 x 569 px there, 626 x 569 at
    900x900: no other number of columns fits it larger."""
    from builder.graph.layout import CANVAS_ASPECT

    chain = Graph(nodes=[{"id": f"n{i}", "type": "ReLU"} for i in range(layers)],
                  edges=[{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(layers - 1)])
    assert 1.0 <= CANVAS_ASPECT <= 1.2  # the measured free area's shape
    for aspect in (626 / 569, 661 / 569):
        best = max(_fit_zoom(row_layout(chain, per_row=k), aspect) for k in range(3, layers + 1))
        assert _fit_zoom(row_layout(chain, per_row=None), aspect) >= 0.97 * best, (aspect, best)
    if layers <= 12:
        assert len({n.position.x for n in row_layout(chain, per_row=None).nodes}) == 3


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_no_two_layers_of_a_template_overlap(name):
    """The VAE's ``z`` and ``kl_loss`` and the GAN's three losses (136 px tall: two rows of ports) sat 120 px apart
    in their columns, each over the next one's top 16 px (its output shape hidden)."""
    nodes = row_layout(load_template(name).graph).nodes
    for a in nodes:
        for b in nodes:
            if a is not b and a.position.x == b.position.x and a.position.y <= b.position.y:
                assert b.position.y - a.position.y >= node_height(a), (name, a.id, b.id)


def _rows(g: Graph, per_row: int = 3) -> list[list]:
    """The placed nodes of ``row_layout(g)`` grouped by row (the row a node's column wraps into)."""
    cols = sorted({n.position.x for n in auto_layout(g).nodes})
    col = {n.id: cols.index(n.position.x) for n in auto_layout(g).nodes}
    placed = row_layout(g, per_row=per_row).nodes
    rows: dict[int, list] = {}
    for n in placed:
        rows.setdefault(col[n.id] // per_row, []).append(n)
    return [rows[r] for r in sorted(rows)]


@settings(max_examples=budget(100), deadline=None)
@given(dags(), st.integers(1, 5))
def test_each_row_sits_its_own_height_below_the_last(g, per_row):
    """A row starts ``gap`` below the lowest layer of the row above, whatever the tallest column elsewhere: every
    row of the GAN template (19 columns, one of them 4 layers tall) was as tall as that column, so its simple
    chains sat ~400 px apart and Fit showed the graph at zoom 0.16."""
    rows = _rows(g, per_row)
    for upper, lower in zip(rows, rows[1:]):
        bottom = max(n.position.y for n in upper)
        top = min(n.position.y for n in lower)
        assert top - bottom == pytest.approx(190.0), (bottom, top)


def test_the_gan_template_is_no_taller_than_its_rows():
    rows = _rows(load_template("gan").graph)
    ys = [n.position.y for n in row_layout(load_template("gan").graph).nodes]
    tallest = [max(n.position.y for n in r) - min(n.position.y for n in r) for r in rows]
    assert max(ys) - min(ys) == pytest.approx(sum(tallest) + 190.0 * (len(rows) - 1))
