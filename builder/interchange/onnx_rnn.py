"""ONNX ``LSTM``/``GRU``/``RNN`` operators → LayerLab's recurrent layers (both ONNX exporters, and .pt2 files).

Exporters write a batch-first recurrent module as ``Transpose(x, [1, 0, 2])`` (time first) → the ONNX op
(output ``Y`` of shape ``[T, directions, B, H]``, ``Y_h``/``Y_c`` of shape ``[directions, B, H]``) → reshapes
back to ``(B, T, directions·H)``. The importer tracks those time-major intermediates as values without nodes
(:class:`TimeMajor`, :class:`RnnY`), so the whole pattern becomes one layer. Weights are recognised by the
operator's structure (its W/R/B inputs), never by their names, with the gates reordered: ONNX LSTM ``i o f c``
→ torch ``i f g o``; ONNX GRU ``z r h`` → torch ``r z n``. Zero initial states (``ConstantOfShape``/``Expand``
of a zero) are dropped; any other initial state, ``sequence_lens``, ``clip`` or non-default activations are
refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from builder.interchange.onnx_fold import text_of
from builder.interchange.onnx_ops import const_ints
from builder.interchange.onnx_read import node_attributes, to_array
from builder.interchange.onnx_values import Const, RnnState, T

RNN_OPS = {"LSTM": ("LSTM", 4, [0, 2, 3, 1]), "GRU": ("GRU", 3, [1, 0, 2]), "RNN": ("RNN", 1, [0])}
_ZERO_CHAIN = {"ConstantOfShape", "Expand", "Slice", "Identity", "Cast", "Unsqueeze", "Reshape", "Tile"}
_DEFAULT_ACTS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"], "RNN": ["tanh"]}
TIME_MAJOR_FIX = ("a time-major tensor (batch second) may only feed a recurrent layer; construct the module with "
                  "batch_first=True and keep the transposes around it")


@dataclass(frozen=True)
class TimeMajor:
    """The batch-first tensor ``inner`` seen transposed to ``(T, B, ...)`` (no node: only an RNN reads it)."""

    inner: T


@dataclass(frozen=True)
class RnnY:
    """An ONNX RNN op's ``Y``: stage ``y`` [T, D, B, H], ``tbdh`` [T, B, D, H] or ``btdh`` [B, T, D, H]."""

    node: str
    directions: int
    stage: str = "y"


def zero_state_nodes(graph) -> set[str]:
    """First outputs of the nodes that only build all-zero initial states of RNN ops (skipped by the importer)."""
    producer = {o: n for n in graph.node for o in n.output if o}
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for v in n.input:
            consumers.setdefault(v, []).append(n)
    skip: set[str] = set()
    for n in graph.node:
        if n.op_type not in RNN_OPS:
            continue
        for k in (5, 6):
            if len(n.input) > k and n.input[k]:
                chain = _zero_chain(n.input[k], producer, inits)
                if chain is not None:
                    skip.update(c.output[0] for c in chain)
    # keep only chains whose every output feeds skipped nodes or RNN ops
    changed = True
    while changed:
        changed = False
        for out in list(skip):
            if any(c.op_type not in RNN_OPS and c.output[0] not in skip for c in consumers.get(out, [])):
                skip.discard(out)
                changed = True
    return skip


def _zero_chain(value: str, producer: dict, inits: dict) -> list | None:
    chain = []
    for _ in range(16):
        if value in inits:
            return chain if not np.any(to_array(inits[value])) else None
        n = producer.get(value)
        if n is None:
            return None
        if n.op_type == "Constant":
            a = node_attributes(n)
            return chain + [n] if "value" in a and not np.any(to_array(a["value"])) else None
        if n.op_type not in _ZERO_CHAIN:
            return None
        chain.append(n)
        if n.op_type == "ConstantOfShape":
            a = node_attributes(n)
            return chain if "value" not in a or not np.any(to_array(a["value"])) else None
        value = n.input[0]
    return None


def _weights(kind: str, W, R, B, hidden: int, directions: int) -> dict[str, np.ndarray]:
    cls, gates, order = RNN_OPS[kind]

    def reorder(m: np.ndarray) -> np.ndarray:
        blocks = [m[g * hidden:(g + 1) * hidden] for g in range(gates)]
        return np.ascontiguousarray(np.concatenate([blocks[i] for i in order], axis=0).astype(np.float32))

    out = {}
    for d in range(directions):
        sfx = "_reverse" if d == 1 else ""
        b = B[d] if B is not None else np.zeros(2 * gates * hidden, np.float32)
        out[f"weight_ih_l0{sfx}"] = reorder(W[d])
        out[f"weight_hh_l0{sfx}"] = reorder(R[d])
        out[f"bias_ih_l0{sfx}"] = reorder(b[:gates * hidden])
        out[f"bias_hh_l0{sfx}"] = reorder(b[gates * hidden:])
    return out


def rnn_op(imp, n, ins: list, a: dict):
    """One LSTM/GRU/RNN operator → one recurrent layer; its outputs as :class:`RnnY` / :class:`RnnState`."""
    kind = n.op_type
    cls = RNN_OPS[kind][0]
    where = f"{n.name or kind} ({kind})"
    x = ins[0]
    layout = int(a.get("layout", 0))
    src = x.inner if isinstance(x, TimeMajor) and layout == 0 else x if isinstance(x, T) and layout == 1 else None
    if src is None:
        imp.bad(f"{kind} over a time-major input", where, "construct the module with batch_first=True")
        return False
    W, R = ins[1], ins[2]
    B = ins[3] if len(ins) > 3 else None
    if not (isinstance(W, Const) and isinstance(R, Const) and (B is None or isinstance(B, Const))):
        imp.bad(f"{kind} with computed weights", where, "export the model with its weights as constants")
        return False
    if len(n.input) > 4 and n.input[4]:
        imp.bad(f"{kind} with sequence_lens", where, "pad the sequences instead of packing them")
        return False
    for k in (5, 6):
        zero = len(ins) > k and isinstance(ins[k], Const) and not np.any(ins[k].value)
        if len(n.input) > k and n.input[k] and not zero and n.input[k] not in imp.zero_state:
            imp.bad(f"{kind} with an initial state", where, "start from the zero state (no h0/c0 argument)")
            return False
    direction = text_of(a.get("direction", "forward"))
    acts = [text_of(v).lower() for v in a.get("activations", [])]
    directions = 2 if direction == "bidirectional" else 1
    rnn_act = "tanh"
    if kind == "RNN" and acts and acts[0] in ("relu", "tanh"):
        rnn_act = acts[0]
        acts = [rnn_act] * len(acts)
    defaults = (["relu"] if rnn_act == "relu" else _DEFAULT_ACTS[kind]) * directions
    if direction == "reverse" or "clip" in a or a.get("input_forget", 0) or (acts and acts != defaults) or \
            (kind == "GRU" and not a.get("linear_before_reset", 0)):
        imp.bad(f"{kind} (direction {direction}, activations/clip/input_forget not torch's)", where,
                "use a plain torch.nn module (the exporter writes torch's defaults)")
        return False
    hidden = int(a.get("hidden_size", R.value.shape[-1]))
    weights = _weights(kind, W.value, R.value, None if B is None else B.value, hidden, directions)
    params: dict = {"hidden_size": hidden, "num_layers": 1}
    if cls == "RNN":
        params["nonlinearity"] = rnn_act
    uses_y = bool(n.output and n.output[0] and imp.consumers[n.output[0]]) or \
        bool(n.output and n.output[0] in {o.name for o in imp.g.output})
    params.update(bidirectional=directions == 2, dropout=0.0, output_mode="all" if uses_y else "last")
    nid = imp.add(imp.node_name(n), cls, params, [src], weights)
    s_in = imp.shape(n.input[0])
    prev = imp.rnn_info.get(src.node, {}) if src.port == "out" else {}
    steps = s_in[0] if s_in and s_in[0] and layout == 0 else prev.get("steps")  # stacked: the level below's
    imp.rnn_info[nid] = {"directions": directions, "layers": 1, "hidden": hidden, "steps": steps}
    imp.out.mapped[cls] += 1
    res = [RnnY(nid, directions), RnnState(nid, directions, 1), RnnState(nid, directions, 1, cell=True)]
    return res[:len(n.output)]


def follow(imp, n, ins: list, a: dict):
    """The reshapes between a time-major value and batch-first tensors; None when the op does not fit."""
    op, x = n.op_type, ins[0]
    if op in ("Identity", "Dropout"):
        return x
    if op == "Transpose":
        perm = [int(p) for p in a.get("perm", [])]
        if isinstance(x, TimeMajor) and perm == [1, 0, 2]:
            return x.inner
        if isinstance(x, RnnY) and x.stage == "y" and perm == [0, 2, 1, 3]:
            return RnnY(x.node, x.directions, "tbdh")
        if isinstance(x, RnnY) and x.stage == "y" and perm == [2, 0, 1, 3]:
            return RnnY(x.node, x.directions, "btdh")
        return None
    if op == "Squeeze" and isinstance(x, RnnY) and x.directions == 1:
        axes = const_ints(ins[1]) if len(ins) > 1 and ins[1] is not None else a.get("axes")
        axes = [int(v) % 4 for v in axes or []]
        if x.stage == "y" and axes == [1]:
            return TimeMajor(T(x.node, "out"))
        if x.stage == "btdh" and axes == [2]:
            return T(x.node, "out")
        return None
    if op == "Reshape" and isinstance(x, RnnY) and x.stage in ("tbdh", "btdh"):
        shape = const_ints(ins[1]) if not hasattr(ins[1], "items") else [
            v if isinstance(v, int) else -2 for v in ins[1].items]
        if shape is None or len(shape) != 3 or shape[2] not in (-1, imp.rnn_info[x.node]["hidden"] * x.directions):
            return None
        return TimeMajor(T(x.node, "out")) if x.stage == "tbdh" else T(x.node, "out")
    return None


def to_time_major(imp, n, ins: list, a: dict):
    """``Transpose(x, [1, 0, 2])`` read only by RNN ops → :class:`TimeMajor` (no node); else None."""
    users = imp.consumers[n.output[0]]
    if n.op_type != "Transpose" or not isinstance(ins[0], T) or [int(p) for p in a.get("perm", [])] != [1, 0, 2] \
            or not users or any(imp.g.node[i].op_type not in RNN_OPS for i in users):
        return None
    return TimeMajor(ins[0])


def time_major_shape(imp, v) -> list | None:
    """The shape of a time-major value of a recurrent op from what the op recorded (batch as None)."""
    info = imp.rnn_info.get(v.inner.node if isinstance(v, TimeMajor) else v.node, {})
    t, h = info.get("steps"), info.get("hidden")
    if not t or not h:
        return None
    if isinstance(v, TimeMajor):
        return [t, None, info["directions"] * h] if v.inner.port == "out" else None
    d = v.directions
    return {"y": [t, d, None, h], "tbdh": [t, None, d, h], "btdh": [None, t, d, h]}[v.stage]


def batch_axis(v) -> int:
    """Where the batch is in a time-major value."""
    return 1 if isinstance(v, TimeMajor) else {"y": 2, "tbdh": 1, "btdh": 0}[v.stage]


def special(v) -> bool:
    """True for the time-major values only this module handles."""
    return isinstance(v, TimeMajor | RnnY)


__all__ = ["TimeMajor", "RnnY", "RNN_OPS", "rnn_op", "follow", "special", "zero_state_nodes", "TIME_MAJOR_FIX",
           "to_time_major", "batch_axis", "time_major_shape"]
