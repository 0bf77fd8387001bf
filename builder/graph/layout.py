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


# The canvas's free area beside the open palette, width / height, measured in Chromium: 661 x 569 px at 1440x900
# (1.16), 626 x 569 px at 900x900 (1.10); the narrower is the one a layout must fit. A layer is NODE_W px wide.
CANVAS_ASPECT, NODE_W = 1.1, 200.0


def row_layout(graph: Graph, per_row: int | None = 3, dx: float = 280.0, dy: float = 120.0,
               gap: float = 190.0) -> Graph:
    """:func:`auto_layout`'s columns wrapped into rows of ``per_row`` columns, so long chains fit a screen.

    A graph of at most ``per_row`` columns stays one row (a template of four in one row needed zoom 0.52-0.55
    beside the open palette, below the first view's readable 0.65, and showed 3 of its 4 layers). Each further
    row starts at x = 0, ``gap`` below the lowest layer of the row above (each row as tall as its own columns). This is how a
    template (3 columns a row) or an imported file (``per_row=None``: as many as let the whole fit the canvas's free
    area, :data:`CANVAS_ASPECT`, at the largest zoom, at least 3) is placed when it is loaded onto the canvas.

    Args:
        graph: the graph to place (its positions are replaced).
        per_row: columns per row; None fits them to the canvas's shape.
        dx, dy: column and row spacing in pixels.
        gap: vertical space between two rows of columns.

    Returns:
        A copy of ``graph`` with every node positioned.

    Example::

        >>> from builder.graph.project import Graph
        >>> chain = lambda k: Graph(nodes=[{"id": f"n{i}", "type": "ReLU"} for i in range(k)],
        ...                         edges=[{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(k - 1)])
        >>> len({n.position.x for n in row_layout(chain(30), per_row=None).nodes})  # 5 columns by 6 rows, not 30 by 1
        5
        >>> len({n.position.x for n in row_layout(chain(11), per_row=None).nodes})  # as a template's: 3 by 4
        3
    """
    g = auto_layout(graph, dx=dx, dy=dy)
    xs = sorted({n.position.x for n in g.nodes})
    col = {x: i for i, x in enumerate(xs)}
    spans = [(math.inf, -math.inf)] * len(xs)  # column -> (top, bottom) of its layers' tops
    for n in g.nodes:
        lo, hi = spans[col[n.position.x]]
        spans[col[n.position.x]] = (min(lo, n.position.y), max(hi, n.position.y))
    if per_row is None:  # the columns a row at which the whole fits the canvas at the largest zoom, at least 3
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
    """The columns a row (at least 3) at which the wrapped layout, its layers' own width and height included,
    fits a canvas :data:`CANVAS_ASPECT` times as wide as tall at the largest zoom (the fewest on a tie). Aiming at
    an aspect alone wrapped an imported 11-layer CNN into rows of 4 (1,040 px wide) where 3 (760 px) fit: its first
    view at the readable zoom showed 9 of its 11 layers at 1440x900."""
    def zoom(k: int) -> float:  # the fitting zoom on a canvas of height 1
        return min(CANVAS_ASPECT / ((k - 1) * dx + NODE_W), 1.0 / (_row_shifts(spans, k, gap)[1] + NODE_H))

    return max(range(3, max(3, len(spans)) + 1), key=lambda k: (zoom(k), -k))
