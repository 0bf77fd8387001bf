"""Layer specs of the palette groups Inputs (Input, Output) and Dense (Linear, Identity)."""

from __future__ import annotations

import math

from builder.graph.layers._common import (
    _float,
    _int,
    _same,
)
from builder.graph.spec import (
    MASK,
    MAX_SIZE,
    PADDING_MASK,
    TOKENS,
    LayerSpec,
    Param,
    ShapeError,
    TensorType,
    register,
)

# ----------------------------------------------------------------------------------------- Inputs

def _input_shape(p: dict, ins: list[TensorType]) -> TensorType | dict[str, TensorType]:
    shape = tuple(p["shape"])
    modality = p["modality"]
    if any(s < 1 for s in shape):
        raise ShapeError(f"every size in `shape` must be ≥ 1; received: shape={list(shape)}. Fix: use positive sizes")
    want = {"vector": (1,), "image": (3,), "sequence": (2,), "tokens": (1,)}.get(modality)
    if want and len(shape) not in want:
        eg = {"vector": "[4]", "image": "[1, 8, 8]", "sequence": "[16, 8]", "tokens": "[16]"}[modality]
        raise ShapeError(f"a {modality} Input needs a shape of {want[0]} dimension(s); received: shape={list(shape)}. "
                         f"Fix: use e.g. {eg} or modality 'auto'")
    if math.prod(shape) > 50_000_000:
        raise ShapeError(f"the input is too large ({math.prod(shape):,} values per sample); received: shape={list(shape)}. "
                         "Fix: use at most 50,000,000 values")
    out = TensorType(shape, TOKENS, p["vocab_size"]) if modality == "tokens" else TensorType(shape)
    if modality == "tokens" or (len(shape) == 2 and modality in ("auto", "sequence")):
        # (B, T) booleans, True = padding: what the dataset hands over as `padding_mask` with each batch
        return {"out": out, PADDING_MASK: TensorType(shape[:1], MASK)}
    return out


register(LayerSpec(
    "Input", "Inputs", "Where data enters: a feature vector, an image C×H×W, a sequence T×F or token ids; a sequence "
    "or token Input also gives its padding mask (True = padding) on the `padding_mask` port.",
    params=[
        Param("shape", "int_list", [4], "Size of one sample without the batch dimension: [features], "
              "[channels, height, width], [steps, features] or [steps] for tokens.", min=1, max=MAX_SIZE),
        Param("modality", "choice", "auto", "What the input holds; 'auto' reads it from the shape.",
              choices=("auto", "vector", "image", "sequence", "tokens")),
        _int("vocab_size", 100, "Number of distinct token ids (tokens only); ids run from 0 to vocab_size-1.", lo=2),
    ],
    shape=_input_shape, inputs=(), outputs=("out", PADDING_MASK), min_inputs=0, saves="none"))

register(LayerSpec(
    "Output", "Inputs", "Marks a model output (optional: nodes without successors are outputs anyway).",
    shape=_same, emit=lambda e, attr, p, ins, types: ins[0], saves="none"))

# ----------------------------------------------------------------------------------------- Dense


def _linear_shape(p, ins):
    (t,) = ins
    _float(t)
    if not t.shape:
        raise ShapeError("expects at least one feature dimension")
    return TensorType((*t.shape[:-1], p["out_features"]))


register(LayerSpec(
    "Linear", "Dense", "Fully connected layer: y = xWᵀ + b over the last dimension.",
    params=[_int("out_features", 10, "Number of output features."),
            Param("bias", "bool", True, "Learn an additive bias.", tunable=False)],
    shape=_linear_shape, inferred=("in_features",),
    ctor=lambda p, ins: ("Linear", {"in_features": ins[0].shape[-1], **p}),
    doc_url="https://pytorch.org/docs/stable/generated/torch.nn.Linear.html"))

register(LayerSpec(
    "Identity", "Dense", "Passes its input through unchanged.", shape=_same,
    emit=lambda e, attr, p, ins, types: ins[0], saves="none"))
