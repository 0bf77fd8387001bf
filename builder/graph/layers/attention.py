"""Layer specs of the palette group Attention: multi-head attention, transformer encoder and decoder layers (with
causal and padding masks), positional encoding."""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a module is built: validating a graph does not need it
    import torch

from builder.graph.layers._common import (
    _args,
    _float,
    _int,
    _mask_check,
)
from builder.graph.spec import PADDING_MASK, Cost, LayerSpec, Param, ShapeError, by_port, register

# ----------------------------------------------------------------------------------------- Attention


def _heads_check(e: int, heads: int, name: str = "num_heads") -> None:
    if e % heads:
        divisors = [d for d in range(1, min(e, 64) + 1) if e % d == 0]
        raise ShapeError(f"{name} must divide the embedding size {e}; received: {name}={heads}. "
                         f"Fix: use one of {divisors}")


def _mha_shape(p, ins):
    a = by_port(_MHA, ins)
    q = a["query"]
    _float(q, "query")
    if len(q.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, E); received: {q}. Fix: feed an Embedding or a sequence", "query")
    e = q.shape[-1]
    _heads_check(e, p["num_heads"])
    k = a.get("key", q)
    v = a.get("value", k)
    _float(k, "key")
    _float(v, "value")
    if len(k.shape) != 2 or k.shape[-1] != e:  # the rank first: a rank-0 key has no last dimension
        fix = (f"project it with a Linear to {e} features" if len(k.shape) == 2 else
               f"feed a sequence (Reshape/Unflatten it to (S, {e}), or use an Embedding)")
        raise ShapeError(f"key must be (B, S, {e}) like the query {q}; received: key {k}. Fix: {fix}", "key")
    if v.shape != k.shape:
        raise ShapeError(f"value must match key {k}; received: value {v}. Fix: feed the value from a node with "
                         "the key's shape", "value")
    _causal_check(p["causal"], q, k)
    _mask_check(a.get(PADDING_MASK), k, PADDING_MASK, "key")
    return q


def _causal_check(causal: bool, q, k) -> None:
    if causal and q.shape[0] != k.shape[0]:
        raise ShapeError(f"a causal mask needs keys as long as the queries (step t sees steps ≤ t); received: query "
                         f"{q}, key {k}. Fix: turn `causal` off for cross-attention, or feed keys of {q.shape[0]} "
                         "steps", "key")


def causal_mask(e, x):
    """``(T, T)`` booleans, True above the diagonal (step t may not see later steps), for a sequence ``x`` (B, T, E).

    Built from ``x``'s length at run time, so exports keep a dynamic sequence length."""
    import torch  # lazy: heavy (torch)

    steps = e.method("size", x, 1, as_="steps")
    ones = e.fn(torch.ones, steps, steps, dtype=torch.bool, device=e.fn(getattr, x, "device", as_="device"),
                as_="ones")
    return e.method("triu", ones, 1, as_="causal")  # (T, T)


def _mask_kwargs(e, a: dict, causal_on, causal_kw: str, padding: dict[str, str]) -> dict:
    """The mask keyword arguments of an attention module's call: ``causal_kw`` gets the causal mask of the
    sequence ``causal_on`` (none when it is None), and each padding port of ``padding`` ({port: keyword}) that is
    connected in ``a`` passes its (B, S) mask on."""
    kw = {} if causal_on is None else {causal_kw: causal_mask(e, causal_on)}  # (T, T)
    kw.update({name: a[port] for port, name in padding.items() if port in a})  # (B, S) each
    return kw


def _mha_emit(e, attr, p, ins, types):
    a = _args(_MHA, ins, types)
    q = a["query"]
    k = a.get("key", q)
    v = a.get("value", k)
    kw = _mask_kwargs(e, a, q if p["causal"] else None, "attn_mask", {PADDING_MASK: "key_padding_mask"})
    res = e.module(attr, q, k, v, need_weights=False, **kw, as_="result")
    return e.fn(operator.getitem, res, 0)


def _mha_cost(p, ins, outs) -> Cost:
    """The q, k, v projections and the attention output; with dropout the attention weights (heads × T × S)
    too, since fused attention kernels without dropout never materialise them (measured: builder.graph.memory)."""
    a = by_port(_MHA, ins)
    q = a["query"]
    k = a.get("key", q)
    t, e = q.shape
    s_len = k.shape[0]
    weights = 4 * p["num_heads"] * t * s_len if p["dropout"] > 0 else 0
    return Cost(work=2 * t * e + 3 * s_len * e + weights)


_CAUSAL_HELP = "Causal mask: step t attends to steps ≤ t only (language models, decoders)."
_MASK_DOC = (" An optional padding_mask port takes the data's padding mask (True = padding) from a sequence or token "
             "Input: padded steps are never attended to.")

_MHA = register(LayerSpec(
    "MultiheadAttention", "Attention", "Multi-head attention; with only a query edge it is self-attention." + _MASK_DOC,
    params=[_int("num_heads", 4, "Attention heads (must divide the embedding size).", hi=256),
            Param("dropout", "float", 0.0, "Dropout on attention weights.", min=0.0, max=1.0),
            Param("bias", "bool", True, "Learn biases in the projections."),
            Param("causal", "bool", False, _CAUSAL_HELP)],
    shape=_mha_shape, inferred=("embed_dim",), inputs=("query", "key", "value", PADDING_MASK),
    optional_inputs=("key", "value", PADDING_MASK), mask_inputs=(PADDING_MASK,), cost=_mha_cost,
    ctor=lambda p, ins: ("MultiheadAttention", {"embed_dim": ins[0].shape[-1], "batch_first": True,
                                                **{k: v for k, v in p.items() if k != "causal"}}),
    emit=_mha_emit, strides="any"))  # batch_first: the output is a transpose


def _tel_shape(p, ins):
    a = by_port(_TEL, ins)
    t = a["in"]
    _float(t)
    if len(t.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, E); received: {t}. Fix: feed an Embedding or a sequence")
    _heads_check(t.shape[-1], p["nhead"], "nhead")
    _mask_check(a.get(PADDING_MASK), t, PADDING_MASK, "input")
    return t


def _tel_cost(p, ins, outs) -> Cost:
    """q/k/v, the norms' and residuals' intermediates and the feed-forward hidden layer before and after its
    activation; with dropout also the self-attention weights (nhead × T × T) and the dropout masks (fused
    attention without dropout never materialises the weights; measured: builder.graph.memory)."""
    t, e = ins[0].shape
    ff = p["dim_feedforward"]
    extra = 4 * p["nhead"] * t * t + t * ff + 2 * t * e if p["dropout"] > 0 else 0
    return Cost(work=6 * t * e + 2 * t * ff + extra)


def _tel_emit(e, attr, p, ins, types):
    a = _args(_TEL, ins, types)
    x = a["in"]
    kw = _mask_kwargs(e, a, x if p["causal"] else None, "src_mask", {PADDING_MASK: "src_key_padding_mask"})
    return e.module(attr, x, **kw)


def _no_causal(cls: str, inferred: str):
    """ctor: ``torch.nn.<cls>`` with the input's size and the params (``causal`` is a mask, not an argument)."""
    def ctor(p, ins):
        return cls, {inferred: ins[0].shape[-1], **{k: v for k, v in p.items() if k != "causal"}, "batch_first": True}
    return ctor


_FF_PARAMS = [_int("nhead", 4, "Attention heads (must divide d_model).", hi=256),
              _int("dim_feedforward", 128, "Hidden size of the feed-forward block.", hi=65536),
              Param("dropout", "float", 0.1, "Dropout rate.", min=0.0, max=1.0),
              Param("activation", "choice", "relu", "Feed-forward activation.", choices=("relu", "gelu")),
              Param("norm_first", "bool", False, "Pre-norm (LayerNorm before each block).")]

_TEL = register(LayerSpec(
    "TransformerEncoderLayer", "Attention", "Self-attention plus a feed-forward block, each with residual + "
    "LayerNorm; `causal` makes it a decoder-only (GPT-style) block." + _MASK_DOC,
    params=[*_FF_PARAMS, Param("causal", "bool", False, _CAUSAL_HELP)],
    shape=_tel_shape, inferred=("d_model",), cost=_tel_cost, inputs=("in", PADDING_MASK),
    optional_inputs=(PADDING_MASK,), mask_inputs=(PADDING_MASK,), emit=_tel_emit,
    ctor=_no_causal("TransformerEncoderLayer", "d_model"), strides="any"))


_TGT_MASK, _MEM_MASK = "tgt_padding_mask", "memory_padding_mask"


def _tdl_shape(p, ins):
    a = by_port(_TDL, ins)
    t, m = a.get("tgt"), a.get("memory")
    for port, got in (("tgt", t), ("memory", m)):
        if got is None:
            raise ShapeError(f"a decoder layer reads a target sequence (tgt) and the encoder's output (memory); "
                             f"received: nothing on {port}. Fix: connect a sequence (B, T, E) to {port}", port)
    _float(t, "tgt")
    _float(m, "memory")
    if len(t.shape) != 2:
        raise ShapeError(f"expects a target sequence (B, T, E); received: {t}. Fix: feed an Embedding or a "
                         "sequence", "tgt")
    e = t.shape[-1]
    _heads_check(e, p["nhead"], "nhead")
    if len(m.shape) != 2 or m.shape[-1] != e:
        raise ShapeError(f"memory must be a sequence (B, S, {e}) with the target's features; received: memory {m}. "
                         f"Fix: feed the encoder's output (project it with a Linear to {e} features)", "memory")
    _mask_check(a.get(_TGT_MASK), t, _TGT_MASK, "target")
    _mask_check(a.get(_MEM_MASK), m, _MEM_MASK, "memory")
    return t


def _tdl_cost(p, ins, outs) -> Cost:
    """As the encoder layer's, plus the cross-attention's query, key and value projections and its residual
    (with dropout also its weights, nhead × T × S)."""
    (t, e), s = ins[0].shape, ins[1].shape[0]
    ff = p["dim_feedforward"]
    extra = 4 * p["nhead"] * t * (t + s) + t * ff + 3 * t * e if p["dropout"] > 0 else 0
    return Cost(work=9 * t * e + 2 * s * e + 2 * t * ff + extra)


def _tdl_emit(e, attr, p, ins, types):
    a = _args(_TDL, ins, types)
    t = a["tgt"]
    kw = _mask_kwargs(e, a, t if p["causal"] else None, "tgt_mask",
                      {_TGT_MASK: "tgt_key_padding_mask", _MEM_MASK: "memory_key_padding_mask"})
    return e.module(attr, t, a["memory"], **kw)


_TDL = register(LayerSpec(
    "TransformerDecoderLayer", "Attention", "Masked self-attention over the target, cross-attention to the memory "
    "(an encoder's output) and a feed-forward block, each with residual + LayerNorm. Padding masks of the target "
    "and of the memory go into tgt_padding_mask and memory_padding_mask.",
    params=[*_FF_PARAMS, Param("causal", "bool", True, _CAUSAL_HELP)],
    shape=_tdl_shape, inferred=("d_model",), cost=_tdl_cost, inputs=("tgt", "memory", _TGT_MASK, _MEM_MASK),
    optional_inputs=(_TGT_MASK, _MEM_MASK), mask_inputs=(_TGT_MASK, _MEM_MASK), emit=_tdl_emit,
    ctor=_no_causal("TransformerDecoderLayer", "d_model"), strides="any",
    doc_url="https://pytorch.org/docs/stable/generated/torch.nn.TransformerDecoderLayer.html"))


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
    import torch  # lazy: heavy (torch)

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
