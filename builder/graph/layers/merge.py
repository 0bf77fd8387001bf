"""Layer specs of the palette group Merge: Add, Multiply (broadcasting) and Concat."""

from __future__ import annotations

import operator

from builder.graph.layers._common import (
    _check_dim,
    _float,
    _out,
    _torch,
)
from builder.graph.spec import Cost, LayerSpec, Param, ShapeError, TensorType, register

# ----------------------------------------------------------------------------------------- Merge


def broadcast_shape(p, ins):
    """Element-wise merge: per-sample shapes of the same rank whose sizes match or are 1.

    The batch dimension never broadcasts: inputs of different ranks are refused (torch would align them from
    the right and pair one input's batch with the other's features).
    """
    for i, t in enumerate(ins):
        _float(t, str(i))
    out = list(ins[0].shape)
    for i, t in enumerate(ins[1:], start=1):
        if len(t.shape) != len(out):
            hi, lo = (ins[0], t) if len(ins[0].shape) > len(t.shape) else (t, ins[0])
            which = i if lo is t else 0
            raise ShapeError(f"inputs must have the same number of dimensions (the batch dimension never "
                             f"broadcasts); received: input 0: {ins[0]}, input {i}: {t}. Fix: "
                             f"{_rank_match_fix(lo, hi, which)}", str(i))
        for j, (a, b) in enumerate(zip(out, t.shape)):
            if a != b and a != 1 and b != 1:
                listing = ", ".join(f"input {k}: {u}" for k, u in enumerate(ins[: i + 1]))
                raise ShapeError(f"inputs must have the same shape (or sizes of 1 that broadcast); received: "
                                 f"{listing}, which differ in dim {j + 1} ({a} vs {b}). Fix: make the branches produce "
                                 "the same shape (e.g. adjust out_channels/out_features or add a 1×1 Conv2d/Linear "
                                 "projection on one branch)", str(i))
            out[j] = max(a, b) if 1 in (a, b) else a
    return TensorType(tuple(out))


def _rank_match_fix(lo: TensorType, hi: TensorType, which: int) -> str:
    """Suggest a Reshape that gives the lower-rank input the other's rank and broadcasts with it."""
    pad = (1,) * (len(hi.shape) - len(lo.shape))
    for cand in ((*lo.shape, *pad), (*pad, *lo.shape)):  # channels first (B, C, 1, 1), then features last
        if all(a == b or 1 in (a, b) for a, b in zip(cand, hi.shape)):
            return f"add a Reshape with shape {list(cand)} on input {which} so it broadcasts over {hi}"
    return (f"Reshape/Flatten one branch so both have {len(hi.shape) + 1} dimensions with matching sizes "
            f"(sizes of 1 broadcast)")


def _merge_emit(fn):
    def emit(e, attr, p, ins, types):
        out = ins[0]
        for other in ins[1:]:
            out = e.fn(fn, out, other)
        return out
    return emit


def merge_cost(p, ins, outs) -> Cost:
    return Cost(work=max(0, len(ins) - 2) * _out(outs).numel)  # the partial results of a + b + c ...


register(LayerSpec("Add", "Merge", "Element-wise sum of all inputs (residual connections).", shape=broadcast_shape,
                   variadic=True, min_inputs=2, emit=_merge_emit(operator.add), saves="none"))
register(LayerSpec("Multiply", "Merge", "Element-wise product of all inputs (gating).", shape=broadcast_shape,
                   variadic=True, min_inputs=2, emit=_merge_emit(operator.mul), cost=merge_cost))


def _concat_shape(p, ins):
    for i, t in enumerate(ins):
        _float(t, str(i))
    ranks = {len(t.shape) for t in ins}
    if len(ranks) != 1:
        listing = ", ".join(f"input {i}: {t}" for i, t in enumerate(ins))
        raise ShapeError(f"inputs must have the same number of dimensions; received: {listing}. Fix: Flatten or "
                         "Reshape one branch")
    rank = ranks.pop()
    d = _check_dim(p["dim"], rank)
    first = ins[0].shape
    for i, t in enumerate(ins[1:], start=1):
        if any(a != b for j, (a, b) in enumerate(zip(first, t.shape, strict=True)) if j != d):
            raise ShapeError(f"all sizes except dim {p['dim']} must match; received: input 0: {ins[0]}, "
                             f"input {i}: {t}. Fix: change `dim` or make the other sizes equal", str(i))
    out = list(first)
    out[d] = sum(t.shape[d] for t in ins)
    return TensorType(tuple(out))


register(LayerSpec(
    "Concat", "Merge", "Concatenates inputs along `dim` (ordered by the edges' target_port 0, 1, ...).",
    params=[Param("dim", "int", 1, "Dimension to join (torch numbering: 0 is the batch, 1 the channels/features).",
                  min=-8, max=8)],
    shape=_concat_shape, variadic=True, min_inputs=2,
    emit=lambda e, attr, p, ins, types: e.fn(_torch().cat, list(ins), dim=p["dim"]), saves="none"))
