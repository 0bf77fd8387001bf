"""Layer specs of the palette group Normalisation: batch, layer and group norm, dropout.

Batch and group norm take contiguous inputs (``contiguous_inputs``): torch 2.13's GroupNorm backward can crash
on a permuted input, BatchNorm2d's returns wrong input gradients for channels-last-like strides.
"""

from __future__ import annotations

import math

from builder.graph.layers._common import (
    _float,
    _int,
    _mask_cost,
    _mod,
    _rank,
    _same_float,
)
from builder.graph.spec import LayerSpec, Param, ShapeError, register

# ----------------------------------------------------------------------------------------- Normalisation

_EPS = Param("eps", "float", 1e-5, "Added to the variance for numerical stability.", min=1e-12, max=1.0)


def _bn_shape(ranks):
    def rule(p, ins):
        (t,) = ins
        _float(t)
        _rank(t, ranks, "")
        return t
    return rule


register(LayerSpec(
    "BatchNorm1d", "Normalisation", "Batch normalisation over features (B, F) or channels (B, C, L).",
    params=[_EPS, Param("momentum", "float", 0.1, "Running-statistics update rate.", min=0.0, max=1.0),
            Param("affine", "bool", True, "Learn scale and shift.")],
    shape=_bn_shape((1, 2)), inferred=("num_features",), contiguous_inputs=True,
    ctor=lambda p, ins: ("BatchNorm1d", {"num_features": ins[0].shape[0], **p})))
register(LayerSpec(
    "BatchNorm2d", "Normalisation", "Batch normalisation over image channels.",
    params=[_EPS, Param("momentum", "float", 0.1, "Running-statistics update rate.", min=0.0, max=1.0),
            Param("affine", "bool", True, "Learn scale and shift.")],
    shape=_bn_shape((3,)), inferred=("num_features",), contiguous_inputs=True,
    ctor=lambda p, ins: ("BatchNorm2d", {"num_features": ins[0].shape[0], **p})))


def _ln_shape(p, ins):
    (t,) = ins
    _float(t)
    if not t.shape:
        raise ShapeError("expects at least one feature dimension")
    return t


register(LayerSpec(
    "LayerNorm", "Normalisation", "Layer normalisation over the last dimension.",
    params=[_EPS, Param("elementwise_affine", "bool", True, "Learn scale and shift.")],
    shape=_ln_shape, inferred=("normalized_shape",),
    ctor=lambda p, ins: ("LayerNorm", {"normalized_shape": ins[0].shape[-1], **p})))


def _gn_shape(p, ins):
    (t,) = ins
    _float(t)
    _rank(t, (2, 3), "")
    c = t.shape[0]
    if c % p["num_groups"]:
        divisors = [d for d in range(1, min(c, 64) + 1) if c % d == 0]
        raise ShapeError(f"num_groups must divide the {c} channels; received: num_groups={p['num_groups']}. "
                         f"Fix: use one of {divisors}")
    if c // p["num_groups"] * math.prod(t.shape[1:]) < 2:  # torch refuses to normalise a single value
        fewer = [d for d in range(1, c) if c % d == 0]
        raise ShapeError(f"each group must hold more than one value per sample; received: num_groups="
                         f"{p['num_groups']} for input {t} (1 value per group). Fix: "
                         + (f"use fewer groups, e.g. {fewer[-1]}" if fewer else "use a larger input or LayerNorm"))
    return t


register(LayerSpec(
    "GroupNorm", "Normalisation", "Group normalisation over channel groups.",
    params=[_int("num_groups", 4, "Number of channel groups (must divide the channels).", hi=65536), _EPS,
            Param("affine", "bool", True, "Learn scale and shift.")],
    shape=_gn_shape, inferred=("num_channels",), contiguous_inputs=True,
    ctor=lambda p, ins: ("GroupNorm", {"num_groups": p["num_groups"], "num_channels": ins[0].shape[0],
                                       "eps": p["eps"], "affine": p["affine"]})))

_P = Param("p", "float", 0.5, "Probability of zeroing an element during training.", min=0.0, max=1.0)
register(LayerSpec("Dropout", "Normalisation", "Randomly zeroes elements during training.", params=[_P],
                   shape=_same_float, ctor=_mod("Dropout"), cost=_mask_cost))
register(LayerSpec("Dropout2d", "Normalisation", "Randomly zeroes whole channels of an image during training.",
                   params=[_P], shape=_bn_shape((3,)), ctor=_mod("Dropout2d"), cost=_mask_cost))
