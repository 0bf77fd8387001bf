"""Helpers the layer families share: rank and dtype checks, output-size arithmetic, small spec builders."""

from __future__ import annotations

from builder.graph.spec import (
    MASK,
    MAX_SIZE,
    PADDING_MASK,
    TOKENS,
    Cost,
    LayerSpec,
    Param,
    ShapeError,
    TensorType,
    by_port,
)


def _torch():
    """torch, imported when a graph is compiled (not when one is validated)."""
    import torch  # lazy: heavy (torch)

    return torch


def _mask_check(mask, seq, port: str, what: str) -> None:
    """A padding mask ``(B, S)`` must have one flag per step of the sequence ``seq`` it masks."""
    if mask is not None and (mask.kind != MASK or mask.shape != seq.shape[:1]):
        raise ShapeError(f"`{port}` must be a padding mask with one flag per step of the {what} {seq}: (B, "
                         f"{seq.shape[0]}); received: {mask}. Fix: connect the padding_mask port of the Input that "
                         f"feeds the {what}", port)


def _args(spec: LayerSpec, args: list, types: list) -> dict:
    """``{port: fx value}`` of a node's call arguments (``types`` carries the ports: :class:`Inputs`)."""
    ports = getattr(types, "ports", None) or list(by_port(spec, types))
    return dict(zip(ports, args, strict=True))



def _pair(v) -> tuple[int, int]:
    return (v[0], v[1]) if isinstance(v, list | tuple) else (v, v)


def _rank(t: TensorType, ranks: tuple[int, ...], what: str, port: str | None = None) -> None:
    if len(t.shape) not in ranks:
        want = " or ".join(_rank_name(r) for r in ranks)
        raise ShapeError(f"expects {want} input; received: {t}. Fix: {_rank_fix(len(t.shape), ranks)}", port)


def _rank_name(r: int) -> str:
    return {1: "(B, F)", 2: "(B, C, L)", 3: "(B, C, H, W)"}.get(r, f"{r + 1}-d")


def _rank_fix(have: int, want: tuple[int, ...]) -> str:
    if have > max(want):
        return "insert a Flatten (or a pooling layer) before this layer"
    if 3 in want and have < 3:
        return "feed an image (C, H, W), e.g. set the Input shape to [1, 8, 8] or add Unflatten"
    return "add a Reshape/Unflatten before this layer"


def _conv_len(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _same(p: dict, ins: list[TensorType]) -> TensorType:
    return ins[0]


def _float(t: TensorType, port: str | None = None) -> None:
    if t.kind == MASK:
        raise ShapeError(f"a padding mask is no feature tensor: it feeds the `{PADDING_MASK}` port of an attention "
                         f"or recurrent layer; received: mask {t}. Fix: connect it to MultiheadAttention, "
                         "TransformerEncoderLayer, TransformerDecoderLayer, RNN, LSTM, GRU or Mean", port)
    if t.kind == TOKENS:
        raise ShapeError(f"tokens must go through an Embedding first: this layer needs float features; received: "
                         f"token ids {t}. Fix: put an Embedding between the token Input and this layer", port)


def _same_float(p: dict, ins: list[TensorType]) -> TensorType:
    """Output = input, for layers that compute on values (activations, dropout): token ids are refused."""
    _float(ins[0])
    return ins[0]


def _out(outs: dict) -> TensorType:
    return next(iter(outs.values()))


def _mask_cost(p, ins, outs) -> Cost:
    return Cost(work=_out(outs).numel)  # the dropout mask kept for backward


def _int(name, default, help, lo=1, hi=MAX_SIZE, **kw) -> Param:
    return Param(name, "int", default, help, min=lo, max=hi, **kw)


def _call_first(e, attr, p, ins, types):
    return e.module(attr, ins[0])


def _mod(name: str):
    """ctor helper: a module class whose only inferred/ set args are the params themselves."""
    def ctor(p: dict, ins: list[TensorType]):
        return name, dict(p)
    return ctor



def _check_dim(dim: int, rank: int, name: str = "dim") -> int:
    """Validate a torch-style dim (0 is the batch) and return its index into the non-batch shape."""
    full = rank + 1
    d = dim + full if dim < 0 else dim
    if d == 0:
        raise ShapeError(f"`{name}` 0 is the batch dimension; received: {name}={dim}. Fix: use 1..{rank} or -1")
    if not 0 < d < full:
        raise ShapeError(f"`{name}` is out of range for a {full}-d tensor (B + {rank}); received: {name}={dim}. "
                         f"Fix: use 1..{rank} or -1..-{rank}")
    return d - 1


