"""Attention modules recognised by structure (ONNX import): weights read from the operators, not their names.

Optimised dynamo files deduplicate and rename initializers (two LayerNorms with equal ones share one name, a
zero bias disappears), and the classic exporter records no module classes at all. So a recorded (dynamo) or
named (classic ``/enc/self_attn/MatMul``) module scope is read by its structure: the constant-weight projections
in the order the module computes them (MatMul + Add bias, or Gemm) and its LayerNormalization operators.
``nn.TransformerEncoderLayer`` is in_proj (3E×E), out_proj (E×E), linear1 (F×E), linear2 (E×F), norm1, norm2.
"""

from __future__ import annotations

import numpy as np

from builder.interchange.onnx_read import node_attributes, to_array
from builder.interchange.onnx_values import INTEGER_TYPES, Const, Sym, SymArr, T

ENCODER_CHILDREN = {"self_attn", "linear1", "linear2", "norm1", "norm2"}
DECODER_CHILDREN = ENCODER_CHILDREN | {"multihead_attn", "norm3"}


def classic_class(scope: str, names: list[str], ops: set[str]) -> str | None:
    """The module class of a classic exporter's scope from its children's names (None when unknown)."""
    children = set()  # by the names' own scopes: a child named `blocks.0` holds a dot itself
    for nm in names:
        scopes = classic_scopes(nm)
        if scope in scopes and scopes.index(scope) + 1 < len(scopes):
            children.add(scopes[scopes.index(scope) + 1][len(scope) + 1:])
    if children >= DECODER_CHILDREN:
        return "TransformerDecoderLayer"
    if children >= ENCODER_CHILDREN:
        return "TransformerEncoderLayer"
    if "Softmax" in ops and ("out_proj" in children or not children):  # F.multi_head_attention_forward inline
        return "MultiheadAttention"
    return None


def plausible(imp, cls: str, nodes, tensor_inputs: int) -> bool:
    """Whether a classic scope guessed from names has the projections of ``cls`` (else its ops import one by one).

    ``nn.MultiheadAttention`` fed by one tensor packs q, k and v into one in_proj (3E×E, then out_proj E×E); four
    projections mean separate q/k/v weights, which torch uses only for a key/value of another width (two tensors).
    A hand-written attention (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` Linears, or raw parameter matrices)
    has the names and the Softmax but not that structure: it is not a MultiheadAttention and imports op by op."""
    n_proj = len(projections(imp, nodes))
    if cls == "TransformerEncoderLayer":
        return n_proj == 4
    if cls == "TransformerDecoderLayer":  # read by its weights' names (self_attn, multihead_attn, ...)
        return True
    roles = mha_roles(imp, nodes)  # a learned constant or another tensor as the key/value (or the query)
    if roles is not None and separate_key_value(imp, roles[0]) or learned_inputs(imp, nodes):
        return True
    return mha_weights(imp, nodes) is not None if tensor_inputs == 1 else n_proj in (2, 4)


def classic_scopes(name: str) -> list[str]:
    """``/enc/self_attn/MatMul`` → ``["enc", "enc.self_attn"]`` (outermost first)."""
    parts = (name or "").split("/")
    if len(parts) < 3 or parts[0] or not all(parts[1:-1]):
        return []
    return [".".join(parts[1:k]) for k in range(2, len(parts))]


def _linear_maps(imp, nodes) -> list[tuple[object, np.ndarray, np.ndarray | None]]:
    """(node, weight out×in, bias or None) of each MatMul by a constant matrix and each Gemm by a constant weight,
    in computation order (a MatMul of two constants included: a projection of a folded learned constant)."""
    consumers = {}
    for n in nodes:
        for v in n.input:
            consumers.setdefault(v, []).append(n)
    out = []
    for n in nodes:
        if n.op_type == "MatMul" and len(n.input) == 2:
            w = imp.value(n.input[1])
            if not (isinstance(w, Const) and w.value.ndim == 2):
                continue
            bias = None
            for c in consumers.get(n.output[0], []):
                if c.op_type == "Add":
                    other = [imp.value(v) for v in c.input if v != n.output[0]]
                    if other and isinstance(other[0], Const) and other[0].value.ndim == 1:
                        bias = other[0].value
            out.append((n, np.asarray(w.value, np.float32).T, bias))
        elif n.op_type == "Gemm":
            a = node_attributes(n)
            w = imp.value(n.input[1])
            if not isinstance(w, Const) or a.get("transA", 0):
                continue
            W = w.value if a.get("transB", 0) else w.value.T
            b = imp.value(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            out.append((n, np.asarray(W, np.float32), None if not isinstance(b, Const) else
                        np.broadcast_to(b.value, (W.shape[0],)).astype(np.float32)))
    return out


def projections(imp, nodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Constant-weight linear maps of tensors in computation order: (weight out×in, bias or None)."""
    return [(w, b) for n, w, b in _linear_maps(imp, nodes)
            if n.op_type != "MatMul" or not isinstance(imp.value(n.input[0]), Const)]


def norms(imp, nodes) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(weight, bias) of each LayerNormalization in order; None when one is not constant."""
    res = []
    for n in nodes:
        if n.op_type != "LayerNormalization":
            continue
        w = imp.value(n.input[1])
        b = imp.value(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if not isinstance(w, Const) or (b is not None and not isinstance(b, Const)):
            return None
        res.append((np.asarray(w.value, np.float32),
                    np.asarray(b.value, np.float32) if b is not None else np.zeros_like(w.value, np.float32)))
    return res


def _or_zeros(b: np.ndarray | None, n: int) -> np.ndarray:
    """A bias read from the file, or the zeros an optimiser dropped it as."""
    return np.zeros(n, np.float32) if b is None else np.asarray(b, np.float32)


def encoder_weights(imp, nodes) -> dict[str, np.ndarray] | None:
    """The state dict of a TransformerEncoderLayer read from its operators; None when the structure differs."""
    proj, lns = projections(imp, nodes), norms(imp, nodes)
    if len(proj) != 4 or not lns or len(lns) != 2:
        return None
    (wi, bi), (wo, bo), (w1, b1), (w2, b2) = proj
    e = wi.shape[1]
    f = w1.shape[0]
    if wi.shape != (3 * e, e) or wo.shape != (e, e) or w1.shape != (f, e) or w2.shape != (e, f):
        return None
    return {"self_attn.in_proj_weight": wi, "self_attn.in_proj_bias": _or_zeros(bi, 3 * e),
            "self_attn.out_proj.weight": wo, "self_attn.out_proj.bias": _or_zeros(bo, e),
            "linear1.weight": w1, "linear1.bias": _or_zeros(b1, f), "linear2.weight": w2, "linear2.bias": _or_zeros(b2, e),
            "norm1.weight": lns[0][0], "norm1.bias": lns[0][1], "norm2.weight": lns[1][0], "norm2.bias": lns[1][1]}


def decoder_weights(imp, nodes) -> dict[str, np.ndarray] | None:
    """The state dict of a TransformerDecoderLayer read from its operators (the optimised dynamo export renames
    and deduplicates its weights): self-attention in_proj 3E×E and out_proj E×E, the cross-attention's query E×E
    and memory key/value 2E×E (either first) and out_proj E×E, linear1 F×E, linear2 E×F, three LayerNorms in
    order; biases an optimiser dropped as zeros; a learned target or memory's projections (of a constant) too.
    None when the structure differs."""
    proj, lns = [(w, b) for _, w, b in _linear_maps(imp, nodes)], norms(imp, nodes)
    if len(proj) == 5 and lns and len(lns) == 3:  # the classic exporter: the cross-attention sliced at run time
        proj = _sliced_cross_attention(imp, nodes, proj)
    if proj is None or len(proj) != 7 or not lns or len(lns) != 3:
        return None
    e = proj[0][0].shape[1]
    kv_first = proj[2][0].shape == (2 * e, e)
    (si, sib), (so, sob), (cq, cqb), (ckv, ckvb), (co, cob), (w1, b1), (w2, b2) = \
        [proj[0], proj[1], proj[3], proj[2], *proj[4:]] if kv_first else proj
    f = w1.shape[0]
    if [w.shape for w in (si, so, cq, ckv, co, w1, w2)] != [(3 * e, e), (e, e), (e, e), (2 * e, e), (e, e), (f, e), (e, f)]:
        return None
    out = {"self_attn.in_proj_weight": si, "self_attn.in_proj_bias": _or_zeros(sib, 3 * e),
           "self_attn.out_proj.weight": so, "self_attn.out_proj.bias": _or_zeros(sob, e),
           "multihead_attn.in_proj_weight": np.concatenate([cq, ckv]),
           "multihead_attn.in_proj_bias": np.concatenate([_or_zeros(cqb, e), _or_zeros(ckvb, 2 * e)]),
           "multihead_attn.out_proj.weight": co, "multihead_attn.out_proj.bias": _or_zeros(cob, e),
           "linear1.weight": w1, "linear1.bias": _or_zeros(b1, f), "linear2.weight": w2, "linear2.bias": _or_zeros(b2, e)}
    for k, (w, b) in enumerate(lns, 1):
        out.update({f"norm{k}.weight": w, f"norm{k}.bias": b})
    return out


def _sliced_cross_attention(imp, nodes, proj: list) -> list | None:
    """The classic exporter's decoder: its cross-attention slices the query rows and the key/value rows out of
    in_proj (3E×E, and its bias) while it runs, so only 5 projections are constant (self in and out, cross out,
    linear1, linear2). The 7 of :func:`decoder_weights`, the sliced ones read from the constants the module's
    ``Slice`` nodes cut; None when they are not one (3E, E) weight and at most one (3E,) bias."""
    e = proj[0][0].shape[1]
    cut = {id(v): v.value for n in nodes if n.op_type == "Slice" and isinstance(v := imp.value(n.input[0]), Const)}
    ws = [np.asarray(v, np.float32) for v in cut.values() if v.shape == (3 * e, e)]
    bs = [np.asarray(v, np.float32) for v in cut.values() if v.shape == (3 * e,)]
    if len(ws) != 1 or len(bs) > 1 or [w.shape for w, _ in proj[:3]] != [(3 * e, e), (e, e), (e, e)]:
        return None
    b = bs[0] if bs else None
    return [proj[0], proj[1], (ws[0][:e], None if b is None else b[:e]),
            (ws[0][e:], None if b is None else b[e:]), *proj[2:]]


def mha_weights(imp, nodes) -> dict[str, np.ndarray] | None:
    """A packed-projection MultiheadAttention's state dict from its operators (in_proj 3E×E, out_proj E×E)."""
    proj = projections(imp, nodes)
    if len(proj) != 2:
        return None
    (wi, bi), (wo, bo) = proj
    e = wi.shape[1]
    if wi.shape != (3 * e, e) or wo.shape != (e, e):
        return None
    if bi is None and bo is None:  # bias=False
        return {"in_proj_weight": wi, "out_proj.weight": wo}
    return {"in_proj_weight": wi, "in_proj_bias": _or_zeros(bi, 3 * e), "out_proj.weight": wo,
            "out_proj.bias": _or_zeros(bo, e)}


_VIEWS = frozenset({"Transpose", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Cast"})  # the same values, moved


def _source(name: str, made_in: dict) -> str | None:
    """The value from outside the module that ``name`` is a view of (through transposes and reshapes), None when
    the module computed it (an attention's result)."""
    for _ in range(16):
        n = made_in.get(name)
        if n is None or n.op_type not in _VIEWS:
            break
        name = n.input[0]
    return None if name in made_in else name


def _sequence(imp, name: str) -> bool:
    """A (B, S, E) tensor, or a float constant of that rank (a learned tensor the same for every sample)."""
    v = imp.value(name)
    return isinstance(v, T) or isinstance(v, Const) and v.value.ndim == 3 and v.value.dtype.kind == "f"


def mha_roles(imp, nodes) -> tuple[tuple[str, str, str], dict[str, np.ndarray]] | None:
    """``nn.MultiheadAttention(query, key, value)`` read from its projections, for a key/value other than the query.

    torch projects a query that is also the key and value with all of in_proj (3E×E); else the query with its first
    E rows and a key that is the value with the other 2E (or the key and the value with E rows each), in that order,
    then the result with out_proj (E×E). Returns the names of the values outside the module that the query, key and
    value are (tensors, or learned constants the exporter expanded over the batch) and the state dict (in_proj
    stacked back, biases an optimiser dropped as zeros); None when the projections are not that."""
    made_in = {o: n for n in nodes for o in n.output if o}
    ins, outs = [], []
    for n, w, b in _linear_maps(imp, nodes):
        src = _source(n.input[0], made_in)
        (ins if src is not None else outs).append((src, w, b))
    if len(outs) != 1 or not ins:
        return None
    wo, bo = outs[0][1:]
    e = wo.shape[0]
    if wo.shape != (e, e) or any(w.shape[1] != e or w.shape[0] % e for _, w, _ in ins) \
            or sum(w.shape[0] for _, w, _ in ins) != 3 * e:
        return None
    roles = tuple(src for src, w, _ in ins for _ in range(w.shape[0] // e))
    if not all(_sequence(imp, v) for v in roles):
        return None
    wi = np.concatenate([w for _, w, _ in ins])
    if bo is None and all(b is None for _, _, b in ins):  # bias=False
        return roles, {"in_proj_weight": wi, "out_proj.weight": wo}
    bi = np.concatenate([_or_zeros(b, w.shape[0]) for _, w, b in ins])
    return roles, {"in_proj_weight": wi, "in_proj_bias": bi, "out_proj.weight": wo,
                   "out_proj.bias": _or_zeros(bo, e)}


def learned_inputs(imp, nodes) -> list[str]:
    """The learned constants (float, (1, S, E) expanded over the batch) from outside an attention module that one of
    its matrix products reads as data: a query, key or value that is no tensor of the input."""
    made_in = {o: n for n in nodes for o in n.output if o}
    found = (_source(n.input[0], made_in) for n in nodes if n.op_type == "MatMul")
    return list(dict.fromkeys(v for v in found if v and _sequence(imp, v) and not isinstance(imp.value(v), T)))


def separate_key_value(imp, roles: tuple[str, str, str]) -> bool:
    """Whether an attention's query, key and value are other than one tensor (a learned constant counts)."""
    return len(set(roles)) > 1 or not isinstance(imp.value(roles[0]), T)


def _constant_leaves(imp, name: str, made_in: dict) -> list[np.ndarray] | None:
    """The float constants a value inside a module is computed from (with shapes), None when a tensor flows in."""
    stack, seen, leaves = [name], set(), []
    while stack:
        v = stack.pop()
        if not v or v in seen:
            continue
        seen.add(v)
        val = imp.value(v)
        if isinstance(val, Const):
            if val.value.dtype.kind == "f":
                leaves.append(val.value)
            continue
        n = made_in.get(v)
        if isinstance(val, SymArr | Sym) or n is not None and n.op_type == "Shape":
            continue
        if n is None:
            return None  # a tensor from outside the module
        if n.op_type == "ConstantOfShape":
            fill = node_attributes(n).get("value")
            leaves.append(to_array(fill) if fill is not None else np.zeros(1, np.float32))
            continue
        stack.extend(n.input)
    return leaves


def kv_extensions(imp, nodes) -> list[str]:
    """The ``nn.MultiheadAttention`` arguments that append constant steps to its keys and values, read from its
    operators (names and values of the constants play no part: an optimiser renames them): a Concat of tensors
    whose last piece is computed from constants alone is ``add_zero_attn`` when they are zeros (torch appends a
    zero step after the heads are split), else ``add_bias_kv`` (the learned ``bias_k``/``bias_v`` repeated over
    the batch)."""
    made_in = {o: n for n in nodes for o in n.output if o}
    found: list[str] = []
    for n in nodes:
        out = imp.value(n.output[0]) if n.output else None
        if n.op_type != "Concat" or len(n.input) < 2 or isinstance(out, SymArr | Sym) \
                or isinstance(out, Const) and out.value.dtype.kind != "f" or imp.vtype.get(n.output[0]) in INTEGER_TYPES:
            continue
        leaves = _constant_leaves(imp, n.input[-1], made_in)
        if leaves is None or not any(x.size > 0 for x in leaves):
            continue
        kind = "add_zero_attn" if not any(np.any(x) for x in leaves) else "add_bias_kv"
        if kind not in found:
            found.append(kind)
    return found


__all__ = ["classic_class", "classic_scopes", "projections", "norms", "encoder_weights", "decoder_weights", "mha_weights",
           "ENCODER_CHILDREN", "plausible", "cross_attention", "mha_roles", "separate_key_value", "kv_extensions",
           "learned_inputs"]


def cross_attention(imp, scope: str, nodes, ext_inputs: list[str], weights: dict) -> object | None:
    """``nn.MultiheadAttention(query, kv, kv)`` with kdim/vdim ≠ embed_dim, decomposed into batch-first layers
    (Linear q/k/v, Reshape + Permute to heads, MatMul, scale, Softmax, MatMul, back, Linear out); None when the
    weights or sizes are not found."""
    need = ("q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight")
    if len(ext_inputs) != 2:
        return None
    if all(k in weights for k in need):
        wq, wk, wv, wo = (np.asarray(weights[k], np.float32) for k in need)
        e = wq.shape[0]
        b = weights.get("in_proj_bias")
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        bo = weights.get("out_proj.bias")
    else:  # names lost (optimised file): the four projections in computation order
        proj = projections(imp, nodes)
        if len(proj) != 4:
            return None
        (wq, bq), (wk, bk), (wv, bv), (wo, bo) = proj
        e = wq.shape[0]
        if wq.shape != (e, e) or wk.shape[0] != e or wv.shape[0] != e or wo.shape != (e, e):
            return None
        if bo is None and bq is not None:  # an optimiser drops the all-zero out_proj bias: bias=True all the same
            bo = np.zeros(e, np.float32)
    sq, skv = imp.shape(ext_inputs[0]), imp.shape(ext_inputs[1])
    heads = imp._heads(nodes, e)
    if sq is None or skv is None or len(sq) != 3 or len(skv) != 3 or not heads or None in (sq[1], skv[1]) \
            or sq[2] != wq.shape[1] or skv[2] != wk.shape[1]:
        return None
    q_in, kv_in = imp.value(ext_inputs[0]), imp.value(ext_inputs[1])
    t_len, s_len, d = int(sq[1]), int(skv[1]), e // heads

    def lin(name, x, w, bias):
        ws = {"weight": w, **({"bias": np.asarray(bias, np.float32)} if bias is not None else {})}
        return T(imp.add(f"{scope}.{name}", "Linear", {"out_features": int(w.shape[0]), "bias": bias is not None},
                         [x], ws))

    def heads_of(name, x, steps, dims):
        r = T(imp.add(f"{scope}.{name}_heads", "Reshape", {"shape": [steps, heads, d]}, [x]))
        return T(imp.add(f"{scope}.{name}_perm", "Permute", {"dims": dims}, [r]))

    q = heads_of("q", lin("q_proj", q_in, wq, bq), t_len, [0, 2, 1, 3])
    k = heads_of("k", lin("k_proj", kv_in, wk, bk), s_len, [0, 2, 3, 1])
    v = heads_of("v", lin("v_proj", kv_in, wv, bv), s_len, [0, 2, 1, 3])
    sc = T(imp.add(f"{scope}.scores", "MatMul", {}, [q, k], ports=["input", "other"]))
    sc = T(imp.add(f"{scope}.scale", "Arithmetic", {"op": "mul", "constant": float(1 / np.sqrt(d))}, [sc]))
    sm = T(imp.add(f"{scope}.softmax", "Softmax", {"dim": -1}, [sc]))
    o = T(imp.add(f"{scope}.mix", "MatMul", {}, [sm, v], ports=["input", "other"]))
    o = T(imp.add(f"{scope}.merge_perm", "Permute", {"dims": [0, 2, 1, 3]}, [o]))
    o = T(imp.add(f"{scope}.merge", "Reshape", {"shape": [t_len, e]}, [o]))
    return lin("out_proj", o, wo, bo)
