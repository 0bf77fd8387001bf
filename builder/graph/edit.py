"""Edits of a graph as the Build page makes them: set a parameter, relabel a node, remove nodes, name every edge.

Each function takes a :class:`~builder.graph.project.Graph` and returns a new one (the argument is not
changed), like the canvas's reducers. Ids that are not in the graph are ignored: the browser may already
have removed the node a stale widget refers to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from builder.graph.project import Graph

MAX_LABEL = 200  # characters of a node label (the project format's limit)


def set_param(graph: Graph, node_id: str, name: str, value: Any) -> Graph:
    """Set parameter ``name`` of node ``node_id`` to ``value`` (unchecked: validation reports bad values).

    Example::

        >>> g = Graph(nodes=[{"id": "fc", "type": "Linear"}])
        >>> set_param(g, "fc", "out_features", 3).node("fc").params
        {'out_features': 3}
    """
    nodes = [n.model_copy(update={"params": {**n.params, name: value}}) if n.id == node_id else n for n in graph.nodes]
    return graph.model_copy(update={"nodes": nodes})


def relabel_node(graph: Graph, node_id: str, label: str | None) -> Graph:
    """Give node ``node_id`` a display name (its id stays); blank text removes the label.

    The label is stripped and cut to :data:`MAX_LABEL` characters.

    Example::

        >>> g = relabel_node(Graph(nodes=[{"id": "fc", "type": "Linear"}]), "fc", "  head ")
        >>> g.node("fc").display_name
        'head'
    """
    label = str(label or "").strip()[:MAX_LABEL] or None
    nodes = [n.model_copy(update={"label": label}) if n.id == node_id else n for n in graph.nodes]
    return graph.model_copy(update={"nodes": nodes})


def remove_nodes(graph: Graph, node_ids: Iterable[str]) -> Graph:
    """Remove nodes and every edge touching them.

    Example::

        >>> g = Graph(nodes=[{"id": "x", "type": "Input"}, {"id": "fc", "type": "Linear"}],
        ...           edges=[{"source": "x", "target": "fc"}])
        >>> g2 = remove_nodes(g, ["fc"])
        >>> [n.id for n in g2.nodes], g2.edges
        (['x'], [])
    """
    gone = set(node_ids)
    nodes = [n for n in graph.nodes if n.id not in gone]
    edges = [e for e in graph.edges if e.source not in gone and e.target not in gone]
    return graph.model_copy(update={"nodes": nodes, "edges": edges})


def with_edge_ids(graph: Graph) -> Graph:
    """A copy whose edges all carry explicit ids (their current keys), so browser and Python agree on edge keys."""
    edges = [e if e.id else e.model_copy(update={"id": e.key}) for e in graph.edges]
    return graph.model_copy(update={"edges": edges})
