"""Edits of a graph as the Build page makes them: set a parameter, relabel a node, change a node's type, insert a
node after another, remove nodes, name every edge, and apply the browser's edits on top of a graph Python changed
meanwhile (:func:`rebase`).

Each function takes a :class:`~builder.graph.project.Graph` and returns a new one (the argument is not
changed), like the canvas's reducers. Ids that are not in the graph are ignored: the browser may already
have removed the node a stale widget refers to.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from builder.errors import GraphError, Problem, ProjectFormatError
from builder.graph.project import MAX_BLOCK_EDGES, MAX_BLOCK_NODES, MAX_BLOCKS, Edge, Graph, Node
from builder.graph.registry import get_spec, has_spec

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


def parse_whole_numbers(name: str, text: str) -> list[int]:
    """The whole numbers typed for parameter ``name`` (``"3, 5"``, ``"3x5"``, ``"[3; 5]"``; ``1e1`` is 10), for an
    ``int_list`` or ``int_or_pair`` field of the inspector.

    Raises:
        GraphError: one problem (rule, received value and fix) where an entry is no number, not whole (``2.5``
            was cut to 2) or not finite (``1e400`` stopped the Build page with "cannot convert float infinity to
            integer"), or nothing was typed.

    >>> parse_whole_numbers("kernel_size", "3x5"), parse_whole_numbers("padding", "1e1")
    ([3, 5], [10])
    >>> parse_whole_numbers("kernel_size", "1e400")
    Traceback (most recent call last):
    ...
    builder.errors.GraphError: 1 problem(s): graph: `kernel_size` takes whole numbers separated by commas; \
received: 1e400. Fix: enter e.g. 3, 3
    """
    parts = [x.strip() for x in re.split(r"[,;x×]", str(text or "").strip().strip("[]()")) if x.strip()]
    if not parts:
        raise GraphError([Problem("bad_param", f"`{name}` takes at least one number; received: nothing. Fix: "
                                  "enter e.g. 3")])
    out = []
    for x in parts:
        try:
            v = float(x)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or not v.is_integer():
            shown = x if len(x) <= 20 else x[:17] + "..."
            raise GraphError([Problem("bad_param", f"`{name}` takes whole numbers separated by commas; received: "
                                      f"{shown}. Fix: enter e.g. 3, 3")])
        out.append(int(v))
    return out


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


MAX_CHAIN = 200  # nodes of a chain a search may repeat


def graph_hash(graph: Any) -> str:
    """A short hash of what a graph computes: node ids, types, parameters and which output feeds which input; not
    positions, labels, nor how an edge or a node is spelled. An edge's port is left out where it is the one an
    edge without it means (a source's first output; a target's input where it has only one), and a parameter
    where it equals its default: templates and project files write neither, the canvas sends both back, and the
    same network must stay the same (a run of a template as loaded was no longer the canvas's run after a click
    on a layer; a share link of the canvas's network was taken for another). Two projects with the same hash
    train the same model, so a run matches the canvas when the hashes agree; the run store keeps each run's.

    Example::

        >>> bare = {"nodes": [{"id": "a", "type": "Input"}, {"id": "r", "type": "ReLU"}],
        ...         "edges": [{"source": "a", "target": "r"}]}
        >>> named = {"nodes": [{"id": "a", "type": "Input"}, {"id": "r", "type": "ReLU", "params": {}}],
        ...          "edges": [{"source": "a", "target": "r", "source_port": "out", "target_port": "in"}]}
        >>> graph_hash(bare) == graph_hash(named)
        True
    """
    g = graph.model_dump() if hasattr(graph, "model_dump") else dict(graph or {})
    kinds = {str(n.get("id")): n.get("type") for n in g.get("nodes") or [] if isinstance(n, dict)}
    nodes = sorted((str(n.get("id")), str(n.get("type")), _canonical(_set_params(n.get("type"), n.get("params"))))
                   for n in g.get("nodes") or [] if isinstance(n, dict))
    edges = sorted(_canonical(_bare_ports(e, kinds)) for e in g.get("edges") or [] if isinstance(e, dict))
    return hashlib.sha256(json.dumps([nodes, edges]).encode()).hexdigest()[:16]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _set_params(layer_type: Any, params: Any) -> dict:
    """The parameters a node sets, those equal to its type's default left out (an unknown type's all kept)."""
    given = dict(params or {}) if isinstance(params, dict) else {}
    if not isinstance(layer_type, str) or not has_spec(layer_type):
        return given
    defaults = {p.name: _canonical(p.default) for p in get_spec(layer_type).params}
    return {k: v for k, v in given.items() if k not in defaults or _canonical(v) != defaults[k]}


def _bare_ports(edge: dict, kinds: dict[str, Any]) -> dict:
    """An edge without its id, and without the ports an edge without them means (compile's rule)."""
    out = {k: v for k, v in edge.items() if k != "id" and v not in (None, "")}
    src, dst = kinds.get(str(edge.get("source"))), kinds.get(str(edge.get("target")))
    if isinstance(src, str) and has_spec(src) and get_spec(src).outputs and \
            out.get("source_port") == get_spec(src).outputs[0]:
        del out["source_port"]
    if isinstance(dst, str) and has_spec(dst):
        spec = get_spec(dst)
        if len(spec.inputs) == 1 and not spec.variadic and out.get("target_port") == spec.inputs[0]:
            del out["target_port"]
    return out


def chain_between(graph: Graph, first: str, last: str) -> list[str] | None:
    """The ids of the chain ``first`` → … → ``last`` when it is one: every link the only edge out of its source
    and the only edge into its target (a block drawn as a straight run of layers); None otherwise.

    >>> g = Graph(nodes=[{"id": i, "type": "ReLU"} for i in "abc"], edges=[{"source": "a", "target": "b"},
    ...                                                                    {"source": "b", "target": "c"}])
    >>> chain_between(g, "a", "c"), chain_between(g, "c", "a")
    (['a', 'b', 'c'], None)
    """
    ids = {n.id for n in graph.nodes}
    if first not in ids or last not in ids:
        return None
    outs: dict[str, list[Edge]] = {}
    ins: dict[str, list[Edge]] = {}
    for e in graph.edges:
        outs.setdefault(e.source, []).append(e)
        ins.setdefault(e.target, []).append(e)
    chain = [first]
    while chain[-1] != last:
        nxt = outs.get(chain[-1], [])
        if len(nxt) != 1 or len(chain) >= MAX_CHAIN:
            return None
        t = nxt[0].target
        if len(ins.get(t, [])) != 1 or t in chain:
            return None
        chain.append(t)
    return chain


def repeat_chain(graph: Graph, first: str, last: str, times: int) -> Graph:
    """The chain ``first`` … ``last`` (:func:`chain_between`) repeated ``times`` times in a row (copies get ids
    ``<id>_r2``, ``<id>_r3``, … and sit below the original), or skipped for 0 (its input feeds its successors).
    Repeating or skipping is meant for a chain whose output shape is its input shape.

    >>> g = Graph(nodes=[{"id": i, "type": "ReLU"} for i in "abc"], edges=[{"source": "a", "target": "b"},
    ...                                                                    {"source": "b", "target": "c"}])
    >>> [(e.source, e.target) for e in repeat_chain(g, "b", "b", 3).edges]
    [('a', 'b'), ('b_r3', 'c'), ('b', 'b_r2'), ('b_r2', 'b_r3')]
    >>> [(e.source, e.target) for e in repeat_chain(g, "b", "b", 0).edges]
    [('a', 'c')]

    Raises:
        GraphError: not a chain, a chain without exactly one input edge, or ``times`` outside 0..16.
    """
    chain = chain_between(graph, first, last)
    into = [e for e in graph.edges if e.target == first]
    if chain is None or len(into) != 1 or not 0 <= int(times) <= 16:
        raise GraphError([Problem("repeat_chain", f"a repeated block is a straight run of layers with one input, "
                                  f"repeated 0..16 times; received: {first}..{last} x{times}. Fix: pick the first and "
                                  "last layer of such a run", node=first)])
    times, inside = int(times), set(chain)
    if times == 1:
        return graph
    (e_in,) = into
    if times == 0:  # the chain's input feeds its successors, each edge where it was (merge inputs keep their order)
        edges = [e.model_copy(update={"source": e_in.source, "source_port": e_in.source_port, "id": None})
                 if e.source == last else e for e in graph.edges if e.target not in inside]
        return graph.model_copy(update={"nodes": [n for n in graph.nodes if n.id not in inside], "edges": edges})
    links = [e for e in graph.edges if e.source in inside and e.target in inside]
    port_out = next((e.source_port for e in graph.edges if e.source == last), None)
    taken = {n.id for n in graph.nodes}
    nodes, added, prev_last = list(graph.nodes), [], last
    for k in range(2, times + 1):
        ids = {}
        for nid in chain:
            new, j = f"{nid}_r{k}", k
            while new in taken:
                j += 1
                new = f"{nid}_r{j}"
            ids[nid] = new
            taken.add(new)
        for nid in chain:
            n = graph.node(nid)
            pos = {"x": n.position.x, "y": n.position.y + 140 * (k - 1)} if n.position else None
            nodes.append(Node(id=ids[nid], type=n.type, params=dict(n.params), position=pos))
        added.append(Edge(source=prev_last, target=ids[first], source_port=port_out, target_port=e_in.target_port))
        added += [e.model_copy(update={"source": ids[e.source], "target": ids[e.target], "id": None}) for e in links]
        prev_last = ids[last]
    edges = [e.model_copy(update={"source": prev_last, "id": None}) if e.source == last else e for e in graph.edges]
    return graph.model_copy(update={"nodes": nodes, "edges": edges + added})


def _three_way(base: Any, local: Any, current: Any) -> Any:
    """``local`` where only the browser changed the value, else ``current`` (Python's, or the same in both)."""
    return local if local != base and current == base else current


def _merge_node(base: Node, local: Node, current: Node) -> Node:
    """A layer both sides may have changed: each field, and each parameter, from the side that changed it (Python's
    where both did)."""
    keys = dict.fromkeys([*current.params, *local.params, *base.params])
    params = {}
    for k in keys:
        v = _three_way(base.params.get(k, _GONE), local.params.get(k, _GONE), current.params.get(k, _GONE))
        if v is not _GONE:
            params[k] = v
    return current.model_copy(update={"params": params, **{
        f: _three_way(getattr(base, f), getattr(local, f), getattr(current, f)) for f in ("type", "label", "position")}})


_GONE = object()  # a parameter one side removed


def rebase(base: Graph, local: Graph, current: Graph) -> Graph:
    """The browser's edits (``base`` → ``local``) applied on top of ``current``, a graph Python changed meanwhile
    (``base`` → ``current``: an inspector edit while the person was still drawing). Nothing is lost silently: the
    layers and connections the browser added are added, those it removed are removed (unless Python changed them),
    and a layer both changed takes each field and parameter from the side that changed it (Python's where both
    did). A layer the browser added under an id Python gave another layer meanwhile gets a free id; a
    connection whose ends are gone is dropped.

    Example::

        >>> base = Graph(nodes=[{"id": "x", "type": "Input"}, {"id": "fc", "type": "Linear"}],
        ...              edges=[{"source": "x", "target": "fc", "id": "x->fc"}])
        >>> local = base.model_copy(update={"nodes": [*base.nodes, Node(id="relu", type="ReLU")],
        ...                                 "edges": [*base.edges, Edge(source="fc", target="relu", id="fc->relu")]})
        >>> current = set_param(base, "fc", "out_features", 3)
        >>> g = rebase(base, local, current)
        >>> [n.id for n in g.nodes], [e.key for e in g.edges], g.node("fc").params
        (['x', 'fc', 'relu'], ['x->fc', 'fc->relu'], {'out_features': 3})
    """
    b = {n.id: n for n in base.nodes}
    loc = {n.id: n for n in local.nodes}
    nodes: list[Node] = []
    for n in current.nodes:
        if n.id in b and n.id not in loc:  # the browser removed it: gone, unless Python changed it meanwhile
            if n == b[n.id]:
                continue
            nodes.append(n)
        elif n.id in b and loc[n.id] != b[n.id]:  # the browser changed it: field by field, parameter by parameter
            nodes.append(_merge_node(b[n.id], loc[n.id], n))
        else:
            nodes.append(n)
    cur = {n.id: n for n in current.nodes}
    taken = set(cur)  # the kept layers are some of these
    renamed: dict[str, str] = {}  # a layer the browser added under an id Python gave another layer meanwhile
    for n in local.nodes:
        if n.id in b or cur.get(n.id) == n:  # a layer of the base, or one already added (applied twice)
            continue
        if n.id in taken:
            i = 2
            while True:
                moved = n.model_copy(update={"id": f"{n.id}_{i}"})
                if cur.get(moved.id) == moved or (moved.id not in taken and moved.id not in loc):
                    break
                i += 1
            renamed[n.id] = moved.id
            if cur.get(moved.id) == moved:
                continue
            n = moved
        nodes.append(n)
        taken.add(n.id)
    have = {n.id for n in nodes}
    base_e = {e.key for e in base.edges}
    local_e = {e.key for e in local.edges}
    edges = [e for e in current.edges if not (e.key in base_e and e.key not in local_e)]  # the browser's removals
    keys = {e.key for e in edges}
    for e in local.edges:  # and additions
        if e.key in base_e or e.key in keys:
            continue
        if e.source in renamed or e.target in renamed:
            e = e.model_copy(update={"source": renamed.get(e.source, e.source),
                                     "target": renamed.get(e.target, e.target), "id": None})
            e = e.model_copy(update={"id": e.key})
        edges.append(e)
        keys.add(e.key)
    edges = [e for e in edges if e.source in have and e.target in have]
    return current.model_copy(update={"nodes": nodes, "edges": edges})


def block_of(graph: Graph, node_ids: Iterable[str], name: str) -> dict:
    """A reusable block of some nodes of ``graph`` (the edges between them kept), named ``name`` (spaces folded, at
    most 60 characters). Raises ProjectFormatError over MAX_BLOCK_NODES nodes or MAX_BLOCK_EDGES edges between them,
    counted before any is copied (a block the project could not read back broke its file, its runs and its jobs).

    >>> g = Graph(nodes=[{"id": "a", "type": "ReLU"}, {"id": "b", "type": "ReLU"}], edges=[{"source": "a", "target": "b"}])
    >>> b = block_of(g, ["a", "b", "gone"], "  two   relus ")
    >>> b["name"], [n["id"] for n in b["nodes"]], len(b["edges"])
    ('two relus', ['a', 'b'], 1)
    """
    ids = {str(i) for i in node_ids}
    chosen = [n for n in graph.nodes if n.id in ids]
    if len(chosen) > MAX_BLOCK_NODES:
        raise ProjectFormatError(f"a block holds at most {MAX_BLOCK_NODES} layers; received: {len(chosen)}. Fix: "
                                 "group a smaller part of the network")
    inner = [e for e in graph.edges if e.source in ids and e.target in ids]
    if len(inner) > MAX_BLOCK_EDGES:  # a densely wired part (each Concat fed by every layer before it)
        raise ProjectFormatError(f"a block holds at most {MAX_BLOCK_EDGES} connections; received: {len(inner)} "
                                 "between these layers. Fix: group a smaller part of the network")
    nodes = [n.model_dump(exclude_none=True) for n in chosen]
    edges = [e.model_dump(exclude_none=True) for e in inner]
    clean = re.sub(r"\s+", " ", str(name)).strip()[:60] or "block"
    return {"name": clean, "nodes": nodes, "edges": edges}


def with_block(blocks: list[dict], block: dict) -> list[dict]:
    """``blocks`` with ``block`` added last (replacing one of its name). Raises ProjectFormatError past MAX_BLOCKS
    (each block is a copy of its layers, kept in the project, its file and every page's palette: 200 groupings of a
    5,000-layer network sent as 8 MB of events grew the server by 750 MB and its autosave to 285 MB)."""
    kept = [b for b in blocks if b.get("name") != block.get("name")]
    if len(kept) >= MAX_BLOCKS:
        raise ProjectFormatError(f"a project holds at most {MAX_BLOCKS} blocks; received: one more. Fix: delete a "
                                 "block, or give this one the name of one to replace")
    return [*kept, block]
