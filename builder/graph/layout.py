"""Layered left-to-right layout for graphs without canvas positions (templates, imported files)."""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

from builder.graph.project import Graph, Position


def auto_layout(graph: Graph, dx: float = 260.0, dy: float = 130.0, only_missing: bool = False) -> Graph:
    """Return a copy of ``graph`` with nodes placed in columns by longest path from the inputs.

    Args:
        graph: the graph to place.
        dx, dy: column and row spacing in pixels.
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
    pos: dict[str, Position] = {}
    for col, ids in columns.items():
        top = -(len(ids) - 1) * dy / 2
        for row, nid in enumerate(ids):
            pos[nid] = Position(x=col * dx, y=top + row * dy)
    nodes = [n.model_copy(update={"position": pos[n.id]}) if not (only_missing and n.position) else n
             for n in graph.nodes]
    return graph.model_copy(update={"nodes": nodes})
