"""Edits of a graph as the Build page makes them: set a parameter, relabel a node, change a node's type, insert a
node after another, remove nodes, name every edge.

Each function takes a :class:`~builder.graph.project.Graph` and returns a new one (the argument is not
changed), like the canvas's reducers. Ids that are not in the graph are ignored: the browser may already
have removed the node a stale widget refers to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from builder.graph.project import Edge, Graph, Node

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


def set_type(graph: Graph, node_id: str, layer_type: str) -> Graph:
    """Change node ``node_id`` into a ``layer_type`` layer (a ReLU into a LeakyReLU); its parameters are dropped
    (the new type's defaults apply), its edges stay. Unchecked: validation reports an unknown type.

    Example::

        >>> g = Graph(nodes=[{"id": "act", "type": "ReLU"}])
        >>> set_type(g, "act", "LeakyReLU").node("act").type
        'LeakyReLU'
    """
    nodes = [n.model_copy(update={"type": layer_type, "params": {}}) if n.id == node_id else n for n in graph.nodes]
    return graph.model_copy(update={"nodes": nodes})


def insert_after(graph: Graph, node_id: str, layer_type: str, params: dict[str, Any] | None = None) -> Graph:
    """Insert a new ``layer_type`` node after ``node_id``: the node's outgoing edges leave from the new node, which
    takes the node's output. The new id is ``<type in lower case>_<n>`` (first free ``n``); it sits 120 px below.

    Example::

        >>> g = Graph(nodes=[{"id": "fc", "type": "Linear"}, {"id": "act", "type": "ReLU"}],
        ...           edges=[{"source": "fc", "target": "act"}])
        >>> g2 = insert_after(g, "fc", "BatchNorm1d")
        >>> [(e.source, e.target) for e in g2.edges]
        [('fc', 'batchnorm1d_1'), ('batchnorm1d_1', 'act')]
    """
    ids = {n.id for n in graph.nodes}
    if node_id not in ids:
        return graph
    i = 1
    while f"{layer_type.lower()}_{i}" in ids:
        i += 1
    new_id = f"{layer_type.lower()}_{i}"
    src = graph.node(node_id)
    pos = {"x": src.position.x, "y": src.position.y + 120} if src.position else None
    new = Node(id=new_id, type=layer_type, params=dict(params or {}), position=pos)
    at = next(k for k, n in enumerate(graph.nodes) if n.id == node_id) + 1
    edges = [e.model_copy(update={"source": new_id, "id": None}) if e.source == node_id else e for e in graph.edges]
    edges.append(Edge(source=node_id, target=new_id))
    return graph.model_copy(update={"nodes": [*graph.nodes[:at], new, *graph.nodes[at:]],
                                    "edges": sorted(edges, key=lambda e: e.target != new_id)})


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
