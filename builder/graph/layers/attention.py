"""Layer specs of the palette group Attention: multi-head attention, transformer encoder layer, positional encoding."""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a module is built: validating a graph does not need it
    import torch

from builder.graph.layers._common import (
    _float,
    _int,
)
from builder.graph.spec import Cost, LayerSpec, Param, ShapeError, register

# ----------------------------------------------------------------------------------------- Attention


def _heads_check(e: int, heads: int, name: str = "num_heads") -> None:
    if e % heads:
        divisors = [d for d in range(1, min(e, 64) + 1) if e % d == 0]
        raise ShapeError(f"{name} must divide the embedding size {e}; received: {name}={heads}. "
                         f"Fix: use one of {divisors}")


def _mha_shape(p, ins):
    q = ins[0]
    _float(q, "query")
    if len(q.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, E); received: {q}. Fix: feed an Embedding or a sequence", "query")
    e = q.shape[-1]
    _heads_check(e, p["num_heads"])
    k = ins[1] if len(ins) > 1 else q
    v = ins[2] if len(ins) > 2 else k
    _float(k, "key")
    _float(v, "value")
    if len(k.shape) != 2 or k.shape[-1] != e:  # the rank first: a rank-0 key has no last dimension
        fix = (f"project it with a Linear to {e} features" if len(k.shape) == 2 else
               f"feed a sequence (Reshape/Unflatten it to (S, {e}), or use an Embedding)")
        raise ShapeError(f"key must be (B, S, {e}) like the query {q}; received: key {k}. Fix: {fix}", "key")
    if v.shape != k.shape:
        raise ShapeError(f"value must match key {k}; received: value {v}. Fix: feed the value from a node with "
                         "the key's shape", "value")
    return q


def _mha_emit(e, attr, p, ins, types):
    q = ins[0]
    k = ins[1] if len(ins) > 1 else q
    v = ins[2] if len(ins) > 2 else k
    res = e.module(attr, q, k, v, need_weights=False, as_="result")
    return e.fn(operator.getitem, res, 0)


def _mha_cost(p, ins, outs) -> Cost:
    """The q, k, v projections and the attention output; with dropout the attention weights (heads × T × S)
    too, since fused attention kernels without dropout never materialise them (measured: builder.graph.memory)."""
    q = ins[0]
    k = ins[1] if len(ins) > 1 else q
    t, e = q.shape
    s_len = k.shape[0]
    weights = 4 * p["num_heads"] * t * s_len if p["dropout"] > 0 else 0
    return Cost(work=2 * t * e + 3 * s_len * e + weights)


register(LayerSpec(
    "MultiheadAttention", "Attention", "Multi-head attention; with only a query edge it is self-attention.",
    params=[_int("num_heads", 4, "Attention heads (must divide the embedding size).", hi=256),
            Param("dropout", "float", 0.0, "Dropout on attention weights.", min=0.0, max=1.0),
            Param("bias", "bool", True, "Learn biases in the projections.")],
    shape=_mha_shape, inferred=("embed_dim",), inputs=("query", "key", "value"), optional_inputs=("key", "value"),
    cost=_mha_cost,
    ctor=lambda p, ins: ("MultiheadAttention", {"embed_dim": ins[0].shape[-1], **p, "batch_first": True}),
    emit=_mha_emit, strides="any"))  # batch_first: the output is a transpose


def _tel_shape(p, ins):
    (t,) = ins
    _float(t)
    if len(t.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, E); received: {t}. Fix: feed an Embedding or a sequence")
    _heads_check(t.shape[-1], p["nhead"], "nhead")
    return t


def _tel_cost(p, ins, outs) -> Cost:
    """q/k/v, the norms' and residuals' intermediates and the feed-forward hidden layer before and after its
    activation; with dropout also the self-attention weights (nhead × T × T) and the dropout masks (fused
    attention without dropout never materialises the weights; measured: builder.graph.memory)."""
    t, e = ins[0].shape
    ff = p["dim_feedforward"]
    extra = 4 * p["nhead"] * t * t + t * ff + 2 * t * e if p["dropout"] > 0 else 0
    return Cost(work=6 * t * e + 2 * t * ff + extra)


register(LayerSpec(
    "TransformerEncoderLayer", "Attention", "Self-attention plus a feed-forward block, each with residual + LayerNorm.",
    params=[_int("nhead", 4, "Attention heads (must divide d_model).", hi=256),
            _int("dim_feedforward", 128, "Hidden size of the feed-forward block.", hi=65536),
            Param("dropout", "float", 0.1, "Dropout rate.", min=0.0, max=1.0),
            Param("activation", "choice", "relu", "Feed-forward activation.", choices=("relu", "gelu")),
            Param("norm_first", "bool", False, "Pre-norm (LayerNorm before each block).")],
    shape=_tel_shape, inferred=("d_model",), cost=_tel_cost,
    ctor=lambda p, ins: ("TransformerEncoderLayer", {"d_model": ins[0].shape[-1], **p, "batch_first": True}),
    strides="any"))


def _pe_shape(p, ins):
    (t,) = ins
    _float(t)
    if len(t.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, E); received: {t}. Fix: put it after an Embedding")
    if t.shape[0] > p["max_len"]:
        raise ShapeError(f"the sequence has {t.shape[0]} steps, more than max_len; received: max_len={p['max_len']}. "
                         f"Fix: set max_len ≥ {t.shape[0]}")
    if p["kind"] == "sinusoidal" and t.shape[1] % 2:
        raise ShapeError(f"sinusoidal encodings need an even embedding size; received: {t}. Fix: use an even "
                         "embedding_dim or kind 'learned'")
    return t


def _pe_ctor(p, ins):
    if p["kind"] == "learned":
        return "Embedding", {"num_embeddings": p["max_len"], "embedding_dim": ins[0].shape[-1]}
    return None


def _pe_emit(e, attr, p, ins, types):
    x = ins[0]
    steps = e.method("size", x, 1, as_="steps")
    table = e.attr(f"{attr}.weight" if p["kind"] == "learned" else attr, as_="table")
    return e.fn(operator.add, x, e.fn(operator.getitem, table, slice(None, steps), as_="rows"))  # (B, T, E) + (T, E)


def sinusoid_table(max_len: int, dim: int) -> torch.Tensor:
    """The fixed sinusoidal position table of "Attention is all you need": (max_len, dim)."""
    import torch

    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


def _pe_cost(p, ins, outs) -> Cost:
    """The sinusoidal table (max_len × dim) is a buffer; building it needs about as much again in temporaries."""
    if p["kind"] != "sinusoidal":
        return Cost(work=ins[0].numel)  # the gathered rows of the learned table
    n = p["max_len"] * ins[0].shape[-1]
    return Cost(buffers=n, build=n, work=ins[0].numel,
                note=f"its fixed position table holds max_len × embedding size = {p['max_len']:,} × "
                     f"{ins[0].shape[-1]:,} values")


def _pe_export(attr, p, ins) -> list[str]:
    if p["kind"] == "learned":
        return []
    n, d = p["max_len"], ins[0].shape[-1]
    return [f"# fixed sinusoidal position table for `{attr}`: ({n}, {d})",
            f"pos = torch.arange({n}, dtype=torch.float32).unsqueeze(1)",
            f"freq = torch.exp(torch.arange(0, {d}, 2, dtype=torch.float32) * (-math.log(10000.0) / {d}))",
            f"table = torch.zeros({n}, {d})",
            "table[:, 0::2] = torch.sin(pos * freq)",
            "table[:, 1::2] = torch.cos(pos * freq)",
            f"self.register_buffer({attr!r}, table)"]


register(LayerSpec(
    "PositionalEncoding", "Attention", "Adds position information to a sequence: learned or fixed sinusoidal.",
    params=[Param("kind", "choice", "learned", "Learned table or fixed sinusoids.", choices=("learned", "sinusoidal")),
            _int("max_len", 512, "Longest sequence supported.", hi=100_000)],
    shape=_pe_shape, ctor=_pe_ctor, emit=_pe_emit, export_init=_pe_export, cost=_pe_cost))
