"""What an ONNX file hides of the model's structure, recovered or reported after mapping: a module called from
two places (one tensor read by two operators) becomes two nodes tied to one set of weights
(:data:`builder.graph.spec.SHARES`), and a BatchNorm that an exporter folded into the convolution before it is
reported (:func:`folded_batchnorm_notes`): it cannot be restored exactly, so the import says so.
"""

from __future__ import annotations

import json

import numpy as np

from builder.errors import LayerLabError
from builder.graph.registry import get_spec
from builder.graph.spec import SHARES, TENSOR, TensorType
from builder.interchange.onnx_read import node_scopes
from builder.interchange.onnx_values import INTEGER_TYPES, Built, Const, T


def checked_layer(imp, handler, n, ins: list, a: dict):
    """What ``handler`` maps ONNX node ``n`` to, or None (a generic Op node then keeps the operator) when a layer it
    added refuses the parameters it was given: the handlers read an operator's attributes as the layer's parameters,
    and some of an operator's values are outside the layer's rules (a Clip to +inf read as a Clamp, a Clip with its
    bounds crossed, a LeakyRelu's negative slope): the import then failed 'the imported graph does not validate'
    (graph fuzzer's ONNX round trip, operator graphs seed 92001). The nodes it added are taken back."""
    if handler is None:
        return None
    nodes, edges = len(imp.out.nodes), len(imp.out.edges)
    res = handler(n, ins, a)
    added = imp.out.nodes[nodes:]
    if res is None or res is False or not any(_refused(imp, n, ins, nd, imp.out.edges[edges:]) for nd in added):
        return res
    for nd in added:
        imp.ids.discard(nd["id"])
        imp.out.weights.pop(nd["id"], None)
        imp.weight_reads.pop(nd["id"], None)
    del imp.out.nodes[nodes:], imp.out.edges[edges:]
    return None


def _refused(imp, n, ins: list, node: dict, edges: list[dict]) -> bool:
    """Whether ``node`` (added for ONNX node ``n``) refuses its parameters, or, fed by ``n``'s first input alone
    (shape and element type known), that input: integer ids into a layer of float features (a Relu of a comparison's
    ids read as a ReLU, seed 92003, graph 591), a rank its rule refuses (a Reshape of a per-sample scalar read as a
    Flatten from dim 1, seed 92002, graph 772)."""
    spec = get_spec(node["type"])
    params, errors = spec.resolve_params(node["params"])
    if errors:
        return True
    fed = [e for e in edges if e["target"] == node["id"]]
    x = ins[0] if ins and isinstance(ins[0], T) else None
    shape = imp.shape(n.input[0]) if x is not None else None
    if len(fed) != 1 or (fed[0]["source"], fed[0].get("source_port")) != (x and x.node, x and x.port) or \
            not shape or any(d is None for d in shape[1:]):
        return False
    if imp.vtype.get(n.input[0]) in INTEGER_TYPES:  # ids: the kinds alone (a rule of ids reads their vocabulary)
        return spec.input_kind == TENSOR
    try:
        spec.shape(params, [TensorType(tuple(shape[1:]))])
    except LayerLabError:
        return True
    return False


#: How to export a model so that its BatchNorm layers stay in the file (named in the import's note).
KEEP_BATCHNORM = ("export with torch.onnx.export(model, args, f, dynamo=False, "
                  "training=torch.onnx.TrainingMode.PRESERVE) or do_constant_folding=False; with dynamo=True, pass "
                  "optimize=False; or save a .pt2 (torch.export.save), which keeps BatchNorm")


def tie_shared(out: Built, reads: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Tie layers that are one module used twice: same type and parameters, weights read from the very same
    tensors of the file (by name, so two layers whose weights merely have equal values stay two layers) and
    equal. The later node gets ``params["shares"]`` naming the first, loses its copy of the weights and says
    so in its label; a note is added per tie. Returns ``[(tied node, node it shares)]``.

    >>> out = Built(nodes=[{"id": "a", "type": "Linear", "params": {"out_features": 2}},
    ...                    {"id": "b", "type": "Linear", "params": {"out_features": 2}}],
    ...             weights={"a": {"weight": np.ones((2, 3))}, "b": {"weight": np.ones((2, 3))}})
    >>> tie_shared(out, {"a": {"fc.weight"}, "b": {"fc.weight"}})
    [('b', 'a')]
    >>> out.nodes[1]["params"], sorted(out.weights)
    ({'out_features': 2, 'shares': 'a'}, ['a'])
    """
    first: dict[tuple, str] = {}
    same_reads: dict[frozenset, str] = {}
    ties = []
    for node in out.nodes:
        nid, w = node["id"], out.weights.get(node["id"])
        if not w or not reads.get(nid) or SHARES in node["params"]:
            continue
        if not _builds_module(node["type"]):  # an Op node reading the file's weights: only a layer's module can be
            # shared (builder.graph.shapes.check_ties); tied, the import's own graph did not validate
            if (other := same_reads.setdefault(frozenset(reads[nid]), nid)) != nid:
                out.notes.append(f"{nid}: reads the same weights as {other} in the file, as an operation of its "
                                 f"own ({node['type']}); imported as a copy of its own, so training unties them")
            continue
        key = (node["type"], json.dumps(node["params"], sort_keys=True, default=str), frozenset(reads[nid]),
               frozenset(w))
        root = first.setdefault(key, nid)
        other = same_reads.setdefault(frozenset(reads[nid]), nid)
        if root == nid and other != nid:  # the same weights, another layer or other parameters: two copies
            out.notes.append(f"{nid}: reads the same weights as {other} in the file, but as another layer or "
                             f"with other parameters ({node['type']}); imported as a copy of its own, so training "
                             f"unties them")
        if root == nid or not all(np.array_equal(w[k], out.weights[root][k]) for k in w):
            continue
        node["params"][SHARES] = root
        node["label"] = f"{node.get('label') or nid} (shares {root})"
        del out.weights[nid]
        ties.append((nid, root))
        out.notes.append(f"{nid}: the same weights as {root} (one module used twice in the original): imported "
                         f"as one set of weights that both nodes use, so training keeps them tied")
    return ties


def _builds_module(layer_type: str) -> bool:
    """Whether nodes of ``layer_type`` build a torch module (what ``shares`` ties), e.g. a Linear; an Op does not."""
    try:
        return get_spec(layer_type).ctor is not None
    except LayerLabError:
        return False


#: between a module's scope and the number of its call: the second call of ``rnn`` is grouped as ``rnn\x00#1``
CALL = "\x00#"


def module_calls(graph, groups: dict[str, list[int]], constants: set[str]) -> dict[str, list[int]]:
    """``groups`` (module scope -> indices of the operators the file records under it) with each scope split into
    the calls of that module: a module used twice leaves two sets of operators under one scope (the dynamo
    exporter records the module, not the call), which are unconnected except through constants (its weights and
    what is computed from them alone). The first call keeps the scope; the k-th is ``scope + CALL + k``.
    ``constants`` names the file's initializers; operators computing from constants only (a zero initial state,
    weights rearranged) belong to every call that reads them, so an index may be in several calls.

    >>> import onnx
    >>> mk = onnx.helper.make_node
    >>> g = onnx.helper.make_graph([mk("Relu", ["x"], ["a"]), mk("MatMul", ["a", "w"], ["b"]),
    ...                             mk("Mul", ["b", "two"], ["c"]), mk("MatMul", ["c", "w"], ["d"])], "g",
    ...                             [onnx.helper.make_tensor_value_info("x", 1, [2])], [])
    >>> module_calls(g, {"fc": [1, 3]}, {"w", "two"})
    {'fc': [1], 'fc\\x00#1': [3]}
    """
    data = {i.name for i in graph.input if i.name not in constants}
    for n in graph.node:  # what depends on the values of an input (a Shape depends on its size only)
        if n.op_type not in ("Shape", "Size") and any(v in data for v in n.input):
            data.update(o for o in n.output if o)
    out: dict[str, list[int]] = {}
    for scope, idxs in groups.items():
        producer = {o: i for i in idxs for o in graph.node[i].output if o}
        parent = {i: i for i in idxs}

        def root(i: int, parent: dict[int, int] = parent) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        late = [i for i in sorted(idxs) if not any(o in data for o in graph.node[i].output)]
        for i in sorted(idxs):  # operators on an input's values are one call with their producers
            for v in graph.node[i].input:
                if v in producer and (i in late or v in data):
                    parent[root(i)] = root(producer[v])
        comps: dict[int, list[int]] = {}
        for i in sorted(idxs):
            comps.setdefault(root(i), []).append(i)
        shared = [m for m in comps.values() if set(m) <= set(late)]  # constants and sizes (weights, a zero state)
        calls = sorted((c for m in comps.values() if m not in shared for c in _repeats(graph, m, constants, data)),
                       key=min) or [sorted(idxs)]
        for members in shared:  # in every call that reads it: each call's layer is read from its own operators
            outs = {o for j in members for o in graph.node[j].output if o}
            users = [c for c in calls if any(outs & set(graph.node[j].input) for j in c)] or calls[:1]
            for c in users:
                c[:] = sorted(set(c) | set(members))
        for k, call in enumerate(calls):
            out[scope if k == 0 else f"{scope}{CALL}{k}"] = call
    return out


def _repeats(graph, members: list[int], constants: set[str], data: set[str]) -> list[list[int]]:
    """``members`` (operators of one scope joined by their data) split into the calls they are, when their
    operators on values (``data``: not sizes) are one call's over and over, each call reading the same weights: a
    module applied to its own output (``m(m(x))``, weights tied) leaves its calls joined by data, where
    :func:`module_calls` told calls apart by their not being joined. An operator on sizes goes with each call
    that reads what it computes (the exporter computes a size once for both). Else ``[members]``.

    >>> import onnx
    >>> mk = onnx.helper.make_node
    >>> g = onnx.helper.make_graph([mk("MatMul", ["x", "w"], ["a"]), mk("Tanh", ["a"], ["b"]),
    ...                             mk("MatMul", ["b", "w"], ["c"]), mk("Tanh", ["c"], ["d"])], "g", [], [])
    >>> _repeats(g, [0, 1, 2, 3], {"w"}, {"x", "a", "b", "c", "d"}), _repeats(g, [0, 1, 2], {"w"}, {"x", "a"})
    ([[0, 1], [2, 3]], [[0, 1, 2]])
    """
    nodes = graph.node
    ops = sorted(i for i in members if any(o in data for o in nodes[i].output))
    sigs = [(nodes[i].op_type, _attrs_key(nodes[i]), tuple(v if v in constants else "" for v in nodes[i].input))
            for i in ops]
    for k in range(2, len(ops) + 1):
        if len(ops) % k:
            continue
        size = len(ops) // k
        chunks = [ops[j:j + size] for j in range(0, len(ops), size)]
        if not (all(sigs[j] == sigs[j + size] for j in range(len(ops) - size))
                and any(v in constants for i in chunks[0] for v in nodes[i].input)):
            continue
        on_values = set(ops)
        sizes = [i for i in sorted(members) if i not in on_values]
        for i in reversed(sizes):  # with every call that reads it (directly or through another size operator)
            outs = {o for o in nodes[i].output if o}
            readers = [c for c in chunks if any(outs & set(nodes[j].input) for j in c)] or chunks[:1]
            for c in readers:
                c.append(i)
        return [sorted(set(c)) for c in chunks]
    return [sorted(members)]


def unscoped_calls(graph, groups: dict[str, list[int]], constants: set[str], limit: int = 64) -> dict[str, list[int]]:
    """``groups`` with the later calls of a module that the file records under no scope added as calls of it
    (``scope + CALL + k``): torch.export names a module used twice in its first call only, so the operators of
    the second are free. A call is the first call's operators again, operator for operator (type and attributes
    equal), reading the same weights (initializers by name), equal constants, and its own input in place of the
    first call's; constants that only its operators read come with it. Structural, not by names: an identical
    computation on the same weights is that module applied again, and the import's output check confirms it.

    >>> import onnx
    >>> mk = onnx.helper.make_node
    >>> g = onnx.helper.make_graph([mk("MatMul", ["x", "w"], ["a"]), mk("Tanh", ["a"], ["b"]),
    ...                             mk("Mul", ["b", "two"], ["c"]), mk("MatMul", ["c", "w"], ["d"]),
    ...                             mk("Tanh", ["d"], ["e"])], "g",
    ...                            [onnx.helper.make_tensor_value_info("x", 1, [2])], [])
    >>> unscoped_calls(g, {"f": [0, 1]}, {"w", "two"})
    {'f': [0, 1], 'f\\x00#1': [3, 4]}
    """
    nodes = list(graph.node)
    taken = {i for idxs in groups.values() for i in idxs}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for v in n.input:
            consumers.setdefault(v, []).append(i)
    sigs: dict[str, object] = {v: ("init", v) for v in constants}
    for n in nodes:  # what a value computed from constants alone is (None: it depends on an input's values or size)
        ins = tuple(sigs.get(u) if u else "" for u in n.input)
        const = n.op_type not in ("Shape", "Size") and all(x is not None for x in ins)
        sigs.update((o, (n.op_type, _attrs_key(n), ins, k) if const else None) for k, o in enumerate(n.output) if o)
    sig = sigs.get
    out = dict(groups)
    for scope, idxs in list(groups.items()):
        if CALL in scope:
            continue
        data = [i for i in sorted(idxs) if any(sig(o) is None for o in nodes[i].output if o)]
        reads = {v for i in idxs for v in nodes[i].input if v in constants}
        free = [i for i in range(len(nodes)) if i not in taken]
        if not data or not reads or not any(v in reads for i in free for v in nodes[i].input):
            continue
        k = sum(1 for s in out if s.split(CALL)[0] == scope)
        while (call := _match(nodes, data, set(idxs), free, taken, sig, consumers, limit)) is not None:
            for i in reversed(range(len(nodes))):  # constants that only this call reads
                if i not in taken and i not in call and all(sig(o) is not None for o in nodes[i].output if o) \
                        and all(set(consumers.get(o, ())) and set(consumers[o]) <= call for o in nodes[i].output
                                if o):
                    call.add(i)
            out[f"{scope}{CALL}{k}"] = sorted(call)
            taken |= call
            free = [i for i in free if i not in call]
            k += 1
    return out


def stray_reads(graph, groups: dict[str, list[int]], constants: set[str], matrices: set[str]) -> dict[str, list[str]]:
    """Operators outside every call of a module that compute on its weight matrices (``matrices``: the
    initializers of rank 2 or more, which an optimiser does not merge by accident as it merges equal vectors of
    ones; read directly or through constants made of them alone) with an input's values: ``{scope: [operator
    names]}``. They are a later call of the module that does not repeat the first call operator for operator
    (other arguments: a mask, a separate key/value), or a use of its parameters outside it; op by op they would
    import as a copy of the weights that training unties.

    >>> import onnx
    >>> mk = onnx.helper.make_node
    >>> g = onnx.helper.make_graph([mk("MatMul", ["x", "w"], ["a"], name="m1"), mk("Transpose", ["w"], ["wt"]),
    ...                             mk("MatMul", ["a", "wt"], ["b"], name="m2")], "g",
    ...                            [onnx.helper.make_tensor_value_info("x", 1, [2])], [])
    >>> stray_reads(g, {"f": [0]}, {"w"}, {"w"})
    {'f': ['m2']}
    """
    nodes = list(graph.node)
    taken = {i for idxs in groups.values() for i in idxs}
    made: dict[str, frozenset[str]] = {v: frozenset({v}) for v in matrices}  # constants: the weights they are
    data: set[str] = {i.name for i in graph.input if i.name not in constants}
    free: list[tuple[str, frozenset[str]]] = []
    for i, n in enumerate(nodes):
        reads = frozenset().union(*(made.get(v, frozenset()) for v in n.input))
        if any(v in data for v in n.input) or n.op_type in ("Shape", "Size"):
            data.update(o for o in n.output if o)
            if i not in taken and reads:
                free.append((n.name, reads))
        elif reads:
            made.update((o, reads) for o in n.output if o)
    out: dict[str, list[str]] = {}
    for scope, idxs in groups.items():
        weights = {w for i in idxs for v in nodes[i].input for w in made.get(v, ())}
        hits = [name for name, reads in free if reads & weights]
        if hits:
            out.setdefault(scope.split(CALL)[0], []).extend(hits)
    return {k: list(dict.fromkeys(v)) for k, v in out.items()}


def stray_refusal(scope: str, cls: str, names: list[str]) -> str:
    """The import's refusal of a module used again by :func:`stray_reads`' operators."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"module `{scope}` ({cls}) is used again by operators that do not repeat its call operator for "
            f"operator; received: node(s) {shown}. LayerLab imports a module called twice as one layer used twice "
            "when both calls compute the same way; a later call with other arguments (a mask, a separate key/value, "
            "an initial state, need_weights) or a read of its parameters outside it would import as a copy of its "
            "weights that training unties. Fix: call the module the same way each time, or give the other use a "
            "module of its own")


def _attrs_key(node) -> tuple:
    return tuple((a.name, a.SerializeToString()) for a in node.attribute)


def _match(nodes, data: list[int], own: set[int], free: list[int], taken: set[int], sig, consumers,
           limit: int) -> set[int] | None:
    """The free operators that compute what ``data`` (a call's input-dependent operators, in order) computes, on
    another input: a set of indices, or None."""
    inside = {o for i in data for o in nodes[i].output if o}
    first = nodes[data[0]]
    starts = [i for i in free if nodes[i].op_type == first.op_type][:limit]
    for start in starts:
        vmap: dict[str, str] = {}
        used: set[int] = set()
        for j in data:
            n = nodes[j]
            mapped = [vmap[v] for v in n.input if v in vmap]
            if j == data[0]:
                pool = [start]
            elif mapped:  # read from what the call computed so far
                pool = sorted({c for v in mapped for c in consumers.get(v, ()) if c not in taken and c not in used})
            else:  # another read of the call's inputs
                pool = [c for c in free if c not in used and nodes[c].op_type == n.op_type]
            hit = next((c for c in pool if _same(n, nodes[c], vmap, inside, sig)), None)
            if hit is None and j != data[0] and all(not u or sig(u) is not None or vmap.get(u, u) == u and
                                                    u not in inside for u in n.input):
                vmap.update((u, u) for u in n.input if u and sig(u) is None)  # a size both calls read (the
                vmap.update((o, o) for o in n.output if o)  # batch times the heads): computed once, by the first
                continue
            if hit is None:
                break
            used.add(hit)
            for a, b in zip(n.output, nodes[hit].output, strict=True):
                if a:
                    vmap[a] = b
        else:
            if used and used.isdisjoint(own):
                return used
    return None


def _same(a, b, vmap: dict[str, str], inside: set[str], sig) -> bool:
    """Whether operator ``b`` does what ``a`` does, its inputs mapped through ``vmap`` (extended, only when it
    does, with the first call's own inputs, each to one value).

    >>> import onnx
    >>> mk = onnx.helper.make_node
    >>> vmap = {}
    >>> _same(mk("Add", ["x", "x"], ["a"]), mk("Add", ["y", "z"], ["b"]), vmap, set(), lambda v: None), vmap
    (False, {})
    """
    if a.op_type != b.op_type or len(a.input) != len(b.input) or len(a.output) != len(b.output) \
            or _attrs_key(a) != _attrs_key(b):
        return False
    new: dict[str, str] = {}
    for u, v in zip(a.input, b.input, strict=True):
        if u in vmap or u in new:
            if (vmap.get(u) or new[u]) != v:
                return False
        elif u in inside or not u or not v:
            if u or v:
                return False
        elif sig(u) is not None:
            if sig(u) != sig(v):
                return False
        elif sig(v) is not None or v in vmap.values() or v in new.values():
            return False
        else:
            new[u] = v  # the call's own input
    vmap.update(new)
    return True


def folded_batchnorm(node, weight: Const) -> str | None:
    """How an exporter shows that it folded a BatchNorm into this Conv/ConvTranspose/Gemm ``node``: the dynamo
    exporter's optimiser records the rewrite rule (``FuseBatchNormIntoConv``) and the BatchNorm's module; the
    classic exporter's constant folding leaves weights that are no parameter of the model (``onnx::Conv_17``)
    where an unfolded convolution reads its parameter (``conv.weight``). None when neither shows.

    >>> import onnx
    >>> import numpy as np
    >>> conv = onnx.helper.make_node("Conv", ["x", "onnx::Conv_17"], ["y"])
    >>> folded_batchnorm(conv, Const(np.ones((1, 1, 1, 1)), src="onnx::Conv_17"))
    'classic'
    >>> folded_batchnorm(conv, Const(np.ones((1, 1, 1, 1)), src="conv.weight")) is None
    True
    """
    md = {p.key: p.value for p in node.metadata_props}
    _, classes = node_scopes(node)
    if "BatchNorm" in md.get("pkg.onnxscript.rewriter.rule_name", "") or \
            any("batchnorm" in c.lower() for c in classes or ()) and node.op_type != "BatchNormalization":
        return "dynamo"
    if node.op_type in ("Conv", "ConvTranspose") and (weight.src or "").startswith("onnx::"):
        return "classic"
    return None


def folded_batchnorm_note(nodes: dict[str, str]) -> str:
    """The import's note for the nodes (node id -> :func:`folded_batchnorm`'s answer) whose BatchNorm an
    exporter folded. Restoring it is not exact: only the products W·γ/σ and (b−μ)·γ/σ+β are in the file, and a
    BatchNorm with made-up statistics (μ=0, σ=1, γ=1, β=0) after them reproduces the outputs in eval mode but
    trains differently (batch statistics replace the lost γ, β), so the import says what it brings instead."""
    ids = ", ".join(sorted(nodes)[:8]) + (f" and {len(nodes) - 8} more" if len(nodes) > 8 else "")
    how = ("the exporter's optimiser folded a BatchNorm into " if "dynamo" in nodes.values() else
           "the exporter computed the weights (not parameters of the model: named onnx::...), as it does when it "
           "folds a BatchNorm into ")
    return (f"{ids}: no BatchNorm. In this file {how}the layer before it, and the BatchNorm's scale, shift and "
            "statistics cannot be told apart from the folded weights: the imported network has no BatchNorm; its "
            "outputs match, but fine-tuning it trains a different network (no batch statistics). To keep "
            f"BatchNorm, {KEEP_BATCHNORM}")


__all__ = ["checked_layer", "module_calls", "unscoped_calls", "stray_reads", "stray_refusal", "CALL", "tie_shared", "folded_batchnorm", "folded_batchnorm_note", "KEEP_BATCHNORM"]
