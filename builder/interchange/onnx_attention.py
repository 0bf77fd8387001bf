"""Attention modules recognised by structure (ONNX import): weights read from the operators, not their names.

Optimised dynamo files deduplicate and rename initializers (two LayerNorms with equal ones share one name, a
zero bias disappears), and the classic exporter records no module classes at all. So a recorded (dynamo) or
named (classic ``/enc/self_attn/MatMul``) module scope is read by its structure: the constant-weight projections
in the order the module computes them (MatMul + Add bias, or Gemm) and its LayerNormalization operators.
``nn.TransformerEncoderLayer`` is in_proj (3E×E), out_proj (E×E), linear1 (F×E), linear2 (E×F), norm1, norm2.
"""

from __future__ import annotations

import numpy as np

from builder.interchange.onnx_values import Const

ENCODER_CHILDREN = {"self_attn", "linear1", "linear2", "norm1", "norm2"}


def classic_class(scope: str, names: list[str], ops: set[str]) -> str | None:
    """The module class of a classic exporter's scope from its children's names (None when unknown)."""
    prefix = "/" + scope.replace(".", "/") + "/"
    children = {nm[len(prefix):].split("/")[0] for nm in names if nm.startswith(prefix) and
                nm[len(prefix):].count("/") >= 1}
    if children >= ENCODER_CHILDREN:
        return "TransformerEncoderLayer"
    if "out_proj" in children and "Softmax" in ops:
        return "MultiheadAttention"
    return None


def classic_scopes(name: str) -> list[str]:
    """``/enc/self_attn/MatMul`` → ``["enc", "enc.self_attn"]`` (outermost first)."""
    parts = (name or "").split("/")
    if len(parts) < 3 or parts[0] or not all(parts[1:-1]):
        return []
    return [".".join(parts[1:k]) for k in range(2, len(parts))]


def projections(imp, nodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Constant-weight linear maps in computation order: (weight out×in, bias or None)."""
    consumers = {}
    for n in nodes:
        for v in n.input:
            consumers.setdefault(v, []).append(n)
    out = []
    for n in nodes:
        if n.op_type == "MatMul" and len(n.input) == 2:
            w = imp.value(n.input[1])
            if not (isinstance(w, Const) and w.value.ndim == 2) or isinstance(imp.value(n.input[0]), Const):
                continue
            bias = None
            for c in consumers.get(n.output[0], []):
                if c.op_type == "Add":
                    other = [imp.value(v) for v in c.input if v != n.output[0]]
                    if other and isinstance(other[0], Const) and other[0].value.ndim == 1:
                        bias = other[0].value
            out.append((np.asarray(w.value, np.float32).T, bias))
        elif n.op_type == "Gemm":
            from builder.interchange.onnx_read import node_attributes

            a = node_attributes(n)
            w = imp.value(n.input[1])
            if not isinstance(w, Const) or a.get("transA", 0):
                continue
            W = w.value if a.get("transB", 0) else w.value.T
            b = imp.value(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            out.append((np.asarray(W, np.float32), None if not isinstance(b, Const) else
                        np.broadcast_to(b.value, (W.shape[0],)).astype(np.float32)))
    return out


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
    z = np.zeros
    return {"self_attn.in_proj_weight": wi, "self_attn.in_proj_bias": bi if bi is not None else z(3 * e, np.float32),
            "self_attn.out_proj.weight": wo, "self_attn.out_proj.bias": bo if bo is not None else z(e, np.float32),
            "linear1.weight": w1, "linear1.bias": b1 if b1 is not None else z(f, np.float32),
            "linear2.weight": w2, "linear2.bias": b2 if b2 is not None else z(e, np.float32),
            "norm1.weight": lns[0][0], "norm1.bias": lns[0][1], "norm2.weight": lns[1][0], "norm2.bias": lns[1][1]}


def mha_weights(imp, nodes) -> dict[str, np.ndarray] | None:
    """A packed-projection MultiheadAttention's state dict from its operators (in_proj 3E×E, out_proj E×E)."""
    proj = projections(imp, nodes)
    if len(proj) != 2:
        return None
    (wi, bi), (wo, bo) = proj
    e = wi.shape[1]
    if wi.shape != (3 * e, e) or wo.shape != (e, e):
        return None
    return {"in_proj_weight": wi, "in_proj_bias": bi if bi is not None else np.zeros(3 * e, np.float32),
            "out_proj.weight": wo, "out_proj.bias": bo if bo is not None else np.zeros(e, np.float32)}


__all__ = ["classic_class", "classic_scopes", "projections", "norms", "encoder_weights", "mha_weights",
           "ENCODER_CHILDREN"]
