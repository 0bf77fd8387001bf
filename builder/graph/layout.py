"""Where nodes go on the canvas: layered left-to-right placement (:func:`auto_layout`) and the same wrapped
into rows (:func:`row_layout`), for graphs without positions (templates, imported files)."""

from __future__ import annotations

import math
from collections import defaultdict

import networkx as nx

from builder.graph.project import Graph, Node, Position
from builder.graph.registry import get_spec, has_spec

# A node's height on the canvas (frontend/src/LayerNode.jsx, measured in Chromium): 114 px with one row of ports,
# 22 px more for each further row (Reparameterize's mu and logvar, a loss's input and target, a token Input's
# padding_mask). Nodes of a column are stacked at least this tall plus NODE_GAP apart.
NODE_H, PORT_ROW_H, NODE_GAP = 114.0, 22.0, 6.0


def node_height(node: Node) -> float:
    """The height (px) ``node`` takes on the canvas: :data:`NODE_H` with one row of ports, more with more rows.

    >>> from builder.graph.project import Node
    >>> node_height(Node(id="a", type="ReLU")), node_height(Node(id="z", type="Reparameterize"))
    (114.0, 136.0)
    """
    if not has_spec(node.type):
        return NODE_H
    spec = get_spec(node.type)
    rows = max(len(spec.inputs) + len(spec.optional_inputs), len(spec.outputs), 1)
    return NODE_H + PORT_ROW_H * (rows - 1)


def auto_layout(graph: Graph, dx: float = 260.0, dy: float = 130.0, only_missing: bool = False) -> Graph:
    """Return a copy of ``graph`` with nodes placed in columns by longest path from the inputs.

    Args:
        graph: the graph to place.
        dx, dy: column and row spacing in pixels; a node taller than ``dy`` (more rows of ports, see
            :func:`node_height`) keeps its height plus :data:`NODE_GAP` to the next one (the VAE's ``z`` and
            ``kl_loss``, the GAN's three losses overlapped by 16 px at 120 px apart).
        only_missing: keep positions that are already set.
    """
    g = nx.DiGraph()
    g.add_nodes_from(n.id for n in graph.nodes)
    g.add_edges_from((e.source, e.target) for e in graph.edges if e.source in g and e.target in g
                     and e.source != e.target)
    level: dict[str, int] = {}
    if nx.is_directed_acyclic_graph(g):
        for nid in nx.topological_sort(g):
            level[nid] = max((level[p] + 1 for p in g.predecessors(nid)), default=0)
    else:
        level = {n.id: i for i, n in enumerate(graph.nodes)}
    columns: dict[int, list[str]] = defaultdict(list)
    for n in graph.nodes:
        columns[level.get(n.id, 0)].append(n.id)
    heights = {n.id: node_height(n) for n in graph.nodes}
    pos: dict[str, Position] = {}
    for col, ids in columns.items():
        steps = [max(dy, heights[a] + NODE_GAP) for a in ids[:-1]]  # from each node's top to the next one's
        y = -sum(steps) / 2
        for row, nid in enumerate(ids):
            pos[nid] = Position(x=col * dx, y=y)
            y += steps[row] if row < len(steps) else 0.0
    nodes = [n.model_copy(update={"position": pos[n.id]}) if not (only_missing and n.position) else n
             for n in graph.nodes]
    return graph.model_copy(update={"nodes": nodes})


SCREEN_ASPECT = 1.6  # width / height of the canvas a fitted layout aims at (1440x900)


def row_layout(graph: Graph, per_row: int | None = 3, dx: float = 280.0, dy: float = 120.0,
               gap: float = 190.0) -> Graph:
    """:func:`auto_layout`'s columns wrapped into rows of ``per_row`` columns, so long chains fit a screen.

    A graph of at most ``per_row`` columns stays one row (a template of four in one row needed zoom 0.52-0.55
    beside the open palette, below the first view's readable 0.65, and showed 3 of its 4 layers). Each further
    row starts at x = 0, ``gap`` below the lowest layer of the row above (each row as tall as its own columns). This is how a
    template (3 columns a row) or an imported file (``per_row=None``: as many as make the whole about
    :data:`SCREEN_ASPECT` times as wide as it is tall, at least 3) is placed when it is loaded onto the canvas.

    Args:
        graph: the graph to place (its positions are replaced).
        per_row: columns per row; None fits them to the screen's shape.
        dx, dy: column and row spacing in pixels.
        gap: vertical space between two rows of columns.

    Returns:
        A copy of ``graph`` with every node positioned.

    Example::

        >>> from builder.graph.project import Graph
        >>> chain = Graph(nodes=[{"id": f"n{i}", "type": "ReLU"} for i in range(30)],
        ...               edges=[{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(29)])
        >>> len({n.position.x for n in row_layout(chain, per_row=None).nodes})  # 6 columns by 5 rows, not 30 by 1
        6
    """
    g = auto_layout(graph, dx=dx, dy=dy)
    xs = sorted({n.position.x for n in g.nodes})
    col = {x: i for i, x in enumerate(xs)}
    spans = [(math.inf, -math.inf)] * len(xs)  # column -> (top, bottom) of its layers' tops
    for n in g.nodes:
        lo, hi = spans[col[n.position.x]]
        spans[col[n.position.x]] = (min(lo, n.position.y), max(hi, n.position.y))
    if per_row is None:  # the fewest columns a row that make the whole at least SCREEN_ASPECT wide, at least 3
        per_row = _screen_columns(spans, dx, gap)
    if len(xs) <= per_row:
        return g
    shift, _ = _row_shifts(spans, per_row, gap)
    nodes = [n.model_copy(update={"position": Position(x=(col[n.position.x] % per_row) * dx,
                                                        y=n.position.y + shift[col[n.position.x] // per_row])})
             for n in g.nodes]
    return g.model_copy(update={"nodes": nodes})


def _row_shifts(spans: list[tuple[float, float]], per_row: int, gap: float) -> tuple[list[float], float]:
    """How far down each row of ``per_row`` columns moves (each row starts ``gap`` below the lowest layer of the
    row above: as tall as its own columns), and the height of the whole (tops of the first and last layers)."""
    shift: list[float] = []
    first = below = 0.0
    for r in range(0, len(spans), per_row):
        top = min(lo for lo, _ in spans[r:r + per_row])
        bottom = max(hi for _, hi in spans[r:r + per_row])
        shift.append(below + gap - top if shift else 0.0)
        first = top if len(shift) == 1 else first
        below = bottom + shift[-1]
    return shift, below - first


def _screen_columns(spans: list[tuple[float, float]], dx: float, gap: float) -> int:
    """The fewest columns a row (at least 3) for which the wrapped layout is at least :data:`SCREEN_ASPECT` times
    as wide as tall (a row and a column gap included), by bisection: more columns a row, wider and lower."""
    def wide_enough(k: int) -> bool:
        return k * dx >= SCREEN_ASPECT * (_row_shifts(spans, k, gap)[1] + gap)

    lo, hi = 3, max(3, len(spans))
    while lo < hi:
        mid = (lo + hi) // 2
        if wide_enough(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
