"""Layer specs of the palette group Normalisation: batch, layer, group, instance and local response norm, dropout.

Batch, layer, group, instance and local response norm take inputs with canonical strides (``contiguous_inputs``):
torch 2.13's GroupNorm backward can crash on a permuted input (also one that ``.contiguous()`` leaves alone because
its moved dimension has size 1), BatchNorm2d's returns wrong input gradients for channels-last-like strides.
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
from builder.graph.spec import Cost, LayerSpec, Param, ShapeError, register

# ----------------------------------------------------------------------------------------- Normalisation

#: the one range of a normalisation's eps (the norm layers' parameter, and an Op node's ``eps`` argument)
EPS = _EPS = Param("eps", "float", 1e-5, "Added to the variance for numerical stability.", min=1e-12, max=1.0)


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
    k = p["normalized_dims"]
    if len(t.shape) < k:
        raise ShapeError(f"normalized_dims counts trailing dimensions of the input; received: normalized_dims={k} for "
                         f"{t} ({len(t.shape)} besides the batch). Fix: use 1..{len(t.shape)}" if t.shape else
                         f"expects at least one feature dimension; received: {t}. Fix: Unsqueeze or Reshape it")
    if math.prod(t.shape[len(t.shape) - k:]) < 2:  # one value: its output is its shift whatever the input
        raise ShapeError(f"layer norm needs more than one value to normalise; received: normalized_dims={k} for "
                         f"{t} (1 value). Fix: "
                         + (f"use normalized_dims={k + 1} or more" if len(t.shape) > k else "leave it out or widen "
                            "the layer before it"))
    return t


def _ln_ctor(p, ins):
    k = p["normalized_dims"]
    shape = ins[0].shape[-1] if k == 1 else list(ins[0].shape[-k:])  # an int for 1: as before the parameter existed
    return "LayerNorm", {"normalized_shape": shape, "eps": p["eps"], "elementwise_affine": p["elementwise_affine"]}


register(LayerSpec(
    "LayerNorm", "Normalisation", "Layer normalisation over the last dimension (or the last few: 3 normalises "
    "each image over C, H, W).",
    params=[_EPS, Param("elementwise_affine", "bool", True, "Learn scale and shift."),
            Param("normalized_dims", "int", 1, "How many trailing dimensions to normalise over (their sizes are "
                  "read from the input).", min=1, max=8)],
    shape=_ln_shape, inferred=("normalized_shape",), ctor=_ln_ctor, contiguous_inputs=True))


def _in_shape(ranks):
    def rule(p, ins):
        (t,) = ins
        _float(t)
        _rank(t, ranks, "")
        if math.prod(t.shape[1:]) < 2:
            raise ShapeError(f"instance norm needs more than one value per channel; received: {t}. Fix: use a larger "
                             "input, or BatchNorm/LayerNorm")
        return t
    return rule


for _dims in (1, 2):
    register(LayerSpec(
        f"InstanceNorm{_dims}d", "Normalisation", "Instance normalisation: each channel of each sample over its "
        + ("length." if _dims == 1 else "height and width (style transfer, GANs)."),
        params=[_EPS, Param("momentum", "float", 0.1, "Running-statistics update rate.", min=0.0, max=1.0),
                Param("affine", "bool", False, "Learn scale and shift per channel."),
                Param("track_running_stats", "bool", False, "Keep running statistics for evaluation (else each "
                      "input's own statistics are used).")],
        shape=_in_shape((_dims + 1,)), inferred=("num_features",), contiguous_inputs=True,
        ctor=lambda p, ins, _d=_dims: (f"InstanceNorm{_d}d", {"num_features": ins[0].shape[0], **p})))


def _lrn_shape(p, ins):
    (t,) = ins
    _float(t)
    _rank(t, (2, 3), "")
    return t


def _lrn_cost(p, ins, outs) -> Cost:
    """torch's local_response_norm pads the squared input with ``size - 1`` channels and average-pools it, keeping
    that padded copy ((C + size - 1) × the rest per sample) for backward, besides the pooled divisor and its power:
    with ``size`` 1024 on 3 channels that is 342 times the input (measured: 1.0 GiB for a 3×64×64 batch of 64 where
    the input and output are 3 MiB each)."""
    (t,) = ins
    c, rest = t.shape[0], math.prod(t.shape[1:])
    return Cost(work=(c + p["size"] - 1) * rest + 2 * c * rest,
                note=f"it pads its squared input with size - 1 = {p['size'] - 1:,} channels")


register(LayerSpec(
    "LocalResponseNorm", "Normalisation", "Normalises each value by its neighbours across channels (AlexNet).",
    params=[_int("size", 5, "Number of neighbouring channels.", hi=1024),
            Param("alpha", "float", 1e-4, "Multiplicative factor.", min=0.0, max=10.0),
            Param("beta", "float", 0.75, "Exponent.", min=0.0, max=10.0),
            Param("k", "float", 1.0, "Additive factor (at least 0.001: with k near 0 the divisor (k + α·Σx²/n)^β "
                  "underflows to 0 where the neighbours are small and the output is inf).", min=1e-3, max=100.0)],
    shape=_lrn_shape, ctor=_mod("LocalResponseNorm"), cost=_lrn_cost))


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
                   shape=_same_float, ctor=_mod("Dropout"), cost=_mask_cost, saves="none"))
register(LayerSpec("Dropout2d", "Normalisation", "Randomly zeroes whole channels of an image during training.",
                   params=[_P], shape=_bn_shape((3,)), ctor=_mod("Dropout2d"), cost=_mask_cost, saves="none"))
