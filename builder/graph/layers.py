"""Built-in layer specs. Each ``register(LayerSpec(...))`` call is one palette entry.

Shapes here exclude the batch dimension: an image is ``(C, H, W)``, a sequence ``(T, F)``, token ids
``(T,)``. Params are named as the torch.nn constructor arguments; sizes that flow in from the input
(in_features, in_channels, num_features, embed_dim, ...) are inferred and listed in ``inferred``.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a module is built: validating a graph does not need it
    import torch

from builder.graph.registry import MAX_SIZE, TOKENS, Cost, LayerSpec, Param, ShapeError, TensorType, register


def _torch():
    """torch, imported when a graph is compiled (not when one is validated)."""
    import torch

    return torch

# ----------------------------------------------------------------------------------------- helpers


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


# ----------------------------------------------------------------------------------------- Inputs

def _input_shape(p: dict, ins: list[TensorType]) -> TensorType:
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
    if modality == "tokens":
        return TensorType(shape, TOKENS, p["vocab_size"])
    return TensorType(shape)


register(LayerSpec(
    "Input", "Inputs", "Where data enters: a feature vector, an image C×H×W, a sequence T×F or token ids.",
    params=[
        Param("shape", "int_list", [4], "Size of one sample without the batch dimension: [features], "
              "[channels, height, width], [steps, features] or [steps] for tokens.", min=1, max=MAX_SIZE),
        Param("modality", "choice", "auto", "What the input holds; 'auto' reads it from the shape.",
              choices=("auto", "vector", "image", "sequence", "tokens")),
        _int("vocab_size", 100, "Number of distinct token ids (tokens only); ids run from 0 to vocab_size-1.", lo=2),
    ],
    shape=_input_shape, inputs=(), min_inputs=0))

register(LayerSpec(
    "Output", "Inputs", "Marks a model output (optional: nodes without successors are outputs anyway).",
    shape=_same, emit=lambda e, attr, p, ins, types: ins[0]))

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
            Param("bias", "bool", True, "Learn an additive bias.")],
    shape=_linear_shape, inferred=("in_features",),
    ctor=lambda p, ins: ("Linear", {"in_features": ins[0].shape[-1], **p}),
    doc_url="https://pytorch.org/docs/stable/generated/torch.nn.Linear.html"))

register(LayerSpec(
    "Identity", "Dense", "Passes its input through unchanged.", shape=_same,
    emit=lambda e, attr, p, ins, types: ins[0]))

# ----------------------------------------------------------------------------------------- Convolution

_CONV_PARAMS_1D = [
    _int("out_channels", 16, "Number of filters (output channels)."),
    _int("kernel_size", 3, "Width of each filter.", hi=1024),
    _int("stride", 1, "Step between filter positions.", hi=1024),
    _int("padding", 0, "Zeros added on both sides.", lo=0, hi=1024),
    _int("dilation", 1, "Spacing between filter taps.", hi=1024),
    Param("bias", "bool", True, "Learn an additive bias."),
]
_CONV_PARAMS_2D = [
    _int("out_channels", 16, "Number of filters (output channels)."),
    Param("kernel_size", "int_or_pair", 3, "Filter size: k or [kh, kw].", min=1, max=1024),
    Param("stride", "int_or_pair", 1, "Step between filter positions.", min=1, max=1024),
    Param("padding", "int_or_pair", 0, "Zeros added on each border.", min=0, max=1024),
    Param("dilation", "int_or_pair", 1, "Spacing between filter taps.", min=1, max=1024),
    Param("bias", "bool", True, "Learn an additive bias."),
]


def _conv1d_shape(p, ins):
    (t,) = ins
    _float(t)
    _rank(t, (2,), "sequence")
    c, n = t.shape
    out = _conv_len(n, p["kernel_size"], p["stride"], p["padding"], p["dilation"])
    if out < 1:
        raise ShapeError(f"the effective kernel ({p['dilation'] * (p['kernel_size'] - 1) + 1}) is longer than the "
                         f"padded input ({n + 2 * p['padding']}); received: input {t}. Fix: reduce kernel_size or add padding")
    return TensorType((p["out_channels"], out))


def _conv2d_shape(p, ins):
    (t,) = ins
    _float(t)
    _rank(t, (3,), "image")
    c, h, w = t.shape
    k, s, pad, d = (_pair(p[n]) for n in ("kernel_size", "stride", "padding", "dilation"))
    oh = _conv_len(h, k[0], s[0], pad[0], d[0])
    ow = _conv_len(w, k[1], s[1], pad[1], d[1])
    if oh < 1 or ow < 1:
        raise ShapeError(f"the kernel {list(k)} (dilation {list(d)}) does not fit the padded input "
                         f"{h + 2 * pad[0]}×{w + 2 * pad[1]}; received: input {t}. Fix: reduce kernel_size or add padding")
    return TensorType((p["out_channels"], oh, ow))


def _conv_cost(p, ins, outs) -> Cost:
    """im2col columns: in_channels × kernel taps per output position (CPU convolutions unfold the input)."""
    taps = math.prod(_pair(p["kernel_size"])) if len(ins[0].shape) == 3 else p["kernel_size"]
    return Cost(work=ins[0].shape[0] * taps * math.prod(_out(outs).shape[1:]))


def _convT_cost(p, ins, outs) -> Cost:
    """col2im columns: out_channels × kernel taps per input position."""
    return Cost(work=p["out_channels"] * math.prod(_pair(p["kernel_size"])) * math.prod(ins[0].shape[1:]))


register(LayerSpec(
    "Conv1d", "Convolution", "1-d convolution over (channels, length).", params=list(_CONV_PARAMS_1D),
    shape=_conv1d_shape, inferred=("in_channels",), cost=_conv_cost,
    ctor=lambda p, ins: ("Conv1d", {"in_channels": ins[0].shape[0], **p})))

register(LayerSpec(
    "Conv2d", "Convolution", "2-d convolution over (channels, height, width).", params=list(_CONV_PARAMS_2D),
    shape=_conv2d_shape, inferred=("in_channels",), cost=_conv_cost,
    ctor=lambda p, ins: ("Conv2d", {"in_channels": ins[0].shape[0], **p}),
    doc_url="https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html"))


def _convT2d_shape(p, ins):
    (t,) = ins
    _float(t)
    _rank(t, (3,), "image")
    c, h, w = t.shape
    k, s, pad, d, op = (_pair(p[n]) for n in ("kernel_size", "stride", "padding", "dilation", "output_padding"))
    for i in range(2):
        if op[i] >= max(s[i], d[i]):
            raise ShapeError(f"output_padding must be smaller than stride or dilation; received: output_padding={p['output_padding']}, "
                             f"stride={p['stride']}. Fix: lower output_padding")
    oh = (h - 1) * s[0] - 2 * pad[0] + d[0] * (k[0] - 1) + op[0] + 1
    ow = (w - 1) * s[1] - 2 * pad[1] + d[1] * (k[1] - 1) + op[1] + 1
    if oh < 1 or ow < 1:
        raise ShapeError(f"padding {p['padding']} leaves no output for input {t}. Fix: reduce padding")
    return TensorType((p["out_channels"], oh, ow))


register(LayerSpec(
    "ConvTranspose2d", "Convolution", "Transposed 2-d convolution (learned upsampling).",
    params=[*_CONV_PARAMS_2D[:4],
            Param("output_padding", "int_or_pair", 0, "Extra size added to one side of the output.", min=0, max=1024),
            *_CONV_PARAMS_2D[4:]],
    shape=_convT2d_shape, inferred=("in_channels",), cost=_convT_cost,
    ctor=lambda p, ins: ("ConvTranspose2d", {"in_channels": ins[0].shape[0], **p})))

# ----------------------------------------------------------------------------------------- Pooling


def _pool_shape(dims: int, dilation: bool):
    def rule(p, ins):
        (t,) = ins
        _float(t)
        _rank(t, (dims + 1,), "")
        spatial = t.shape[1:]
        k = _pair(p["kernel_size"]) if dims == 2 else (p["kernel_size"],)
        s = p["stride"] if p["stride"] is not None else p["kernel_size"]
        s = _pair(s) if dims == 2 else (s,)
        pad = _pair(p["padding"]) if dims == 2 else (p["padding"],)
        d = (_pair(p["dilation"]) if dims == 2 else (p["dilation"],)) if dilation else (1,) * dims
        out = []
        for i in range(dims):
            if pad[i] * 2 > k[i]:
                raise ShapeError(f"padding must be at most half the kernel; received: padding={p['padding']}, "
                                 f"kernel_size={p['kernel_size']}. Fix: lower padding")
            n = _conv_len(spatial[i], k[i], s[i], pad[i], d[i])
            if n < 1:
                raise ShapeError(f"the pooling window {p['kernel_size']} is larger than the input {t}. "
                                 "Fix: reduce kernel_size or remove a pooling layer")
            out.append(n)
        return TensorType((t.shape[0], *out))
    return rule


def _pool_params(dims: int, dilation: bool) -> list[Param]:
    kind = "int_or_pair" if dims == 2 else "int"
    ps = [Param("kernel_size", kind, 2, "Window size.", min=1, max=1024),
          Param("stride", kind, None, "Step between windows (default: kernel_size).", min=1, max=1024, nullable=True),
          Param("padding", kind, 0, "Implicit padding on each border (at most half the window).", min=0, max=512)]
    if dilation:
        ps.append(Param("dilation", kind, 1, "Spacing between window taps.", min=1, max=1024))
    return ps


for _dims in (1, 2):
    register(LayerSpec(f"MaxPool{_dims}d", "Pooling", f"{_dims}-d max pooling.", params=_pool_params(_dims, True),
                       shape=_pool_shape(_dims, True), ctor=_mod(f"MaxPool{_dims}d"),
                       cost=lambda p, ins, outs: Cost(work=2 * _out(outs).numel)))  # int64 argmax indices
    register(LayerSpec(f"AvgPool{_dims}d", "Pooling", f"{_dims}-d average pooling.", params=_pool_params(_dims, False),
                       shape=_pool_shape(_dims, False), ctor=_mod(f"AvgPool{_dims}d")))


def _adaptive_shape(dims: int):
    def rule(p, ins):
        (t,) = ins
        _float(t)
        _rank(t, (dims + 1,), "")
        o = _pair(p["output_size"]) if dims == 2 else (p["output_size"],)
        return TensorType((t.shape[0], *o))
    return rule


register(LayerSpec("AdaptiveAvgPool1d", "Pooling", "Average pooling to a fixed length.",
                   params=[_int("output_size", 1, "Output length.", hi=65536)],
                   shape=_adaptive_shape(1), ctor=_mod("AdaptiveAvgPool1d")))
register(LayerSpec("AdaptiveAvgPool2d", "Pooling", "Average pooling to a fixed height×width (1 = global pooling).",
                   params=[Param("output_size", "int_or_pair", 1, "Output size: n or [h, w].", min=1, max=65536)],
                   shape=_adaptive_shape(2), ctor=_mod("AdaptiveAvgPool2d")))

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
    shape=_bn_shape((1, 2)), inferred=("num_features",),
    ctor=lambda p, ins: ("BatchNorm1d", {"num_features": ins[0].shape[0], **p})))
register(LayerSpec(
    "BatchNorm2d", "Normalisation", "Batch normalisation over image channels.",
    params=[_EPS, Param("momentum", "float", 0.1, "Running-statistics update rate.", min=0.0, max=1.0),
            Param("affine", "bool", True, "Learn scale and shift.")],
    shape=_bn_shape((3,)), inferred=("num_features",),
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
    shape=_gn_shape, inferred=("num_channels",),
    ctor=lambda p, ins: ("GroupNorm", {"num_groups": p["num_groups"], "num_channels": ins[0].shape[0],
                                       "eps": p["eps"], "affine": p["affine"]})))

_P = Param("p", "float", 0.5, "Probability of zeroing an element during training.", min=0.0, max=1.0)
register(LayerSpec("Dropout", "Normalisation", "Randomly zeroes elements during training.", params=[_P],
                   shape=_same_float, ctor=_mod("Dropout"), cost=_mask_cost))
register(LayerSpec("Dropout2d", "Normalisation", "Randomly zeroes whole channels of an image during training.",
                   params=[_P], shape=_bn_shape((3,)), ctor=_mod("Dropout2d"), cost=_mask_cost))

# ----------------------------------------------------------------------------------------- Activations

_ACT = [("ReLU", [], "max(0, x)."),
        ("LeakyReLU", [Param("negative_slope", "float", 0.01, "Slope for x < 0.", min=0.0, max=10.0)],
         "x for x > 0, negative_slope·x otherwise."),
        ("ELU", [Param("alpha", "float", 1.0, "Saturation value for negative inputs.", min=0.0, max=100.0)],
         "Exponential linear unit."),
        ("GELU", [Param("approximate", "choice", "none", "Exact or tanh approximation.", choices=("none", "tanh"))],
         "Gaussian error linear unit."),
        ("SiLU", [], "x·sigmoid(x) (swish)."),
        ("Sigmoid", [], "1 / (1 + e^-x)."),
        ("Tanh", [], "Hyperbolic tangent.")]
for _name, _params, _desc in _ACT:
    register(LayerSpec(_name, "Activation", _desc, params=_params, shape=_same_float, ctor=_mod(_name)))


def _dim_shape(p, ins):
    (t,) = ins
    _float(t)
    _check_dim(p["dim"], len(t.shape))
    return t


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


for _name, _desc in (("Softmax", "Normalises to probabilities along `dim`."),
                     ("LogSoftmax", "log(softmax(x)) along `dim`.")):
    register(LayerSpec(_name, "Activation", _desc,
                       params=[Param("dim", "int", -1, "Dimension to normalise over (torch numbering: 0 is the batch).",
                                     min=-8, max=8)],
                       shape=_dim_shape, ctor=_mod(_name)))

# ----------------------------------------------------------------------------------------- Merge


def _broadcast(p, ins):
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


def _merge_cost(p, ins, outs) -> Cost:
    return Cost(work=max(0, len(ins) - 2) * _out(outs).numel)  # the partial results of a + b + c ...


register(LayerSpec("Add", "Merge", "Element-wise sum of all inputs (residual connections).", shape=_broadcast,
                   variadic=True, min_inputs=2, emit=_merge_emit(operator.add), cost=_merge_cost))
register(LayerSpec("Multiply", "Merge", "Element-wise product of all inputs (gating).", shape=_broadcast,
                   variadic=True, min_inputs=2, emit=_merge_emit(operator.mul), cost=_merge_cost))


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
    emit=lambda e, attr, p, ins, types: e.fn(_torch().cat, list(ins), dim=p["dim"])))

# ----------------------------------------------------------------------------------------- Reshape


def _flatten_shape(p, ins):
    (t,) = ins
    r = len(t.shape)
    s = _check_dim(p["start_dim"], r, "start_dim")
    end = _check_dim(p["end_dim"], r, "end_dim")
    if end < s:
        raise ShapeError(f"end_dim must not come before start_dim; received: start_dim={p['start_dim']}, "
                         f"end_dim={p['end_dim']}. Fix: swap them")
    return TensorType((*t.shape[:s], math.prod(t.shape[s:end + 1]), *t.shape[end + 1:]), t.kind, t.vocab)


register(LayerSpec(
    "Flatten", "Reshape", "Flattens dimensions start_dim..end_dim into one (default: all but the batch).",
    params=[Param("start_dim", "int", 1, "First dimension to flatten (0 is the batch).", min=-8, max=8),
            Param("end_dim", "int", -1, "Last dimension to flatten.", min=-8, max=8)],
    shape=_flatten_shape, ctor=_mod("Flatten")))


def _unflatten_shape(p, ins):
    (t,) = ins
    d = _check_dim(p["dim"], len(t.shape))
    sizes = p["unflattened_size"]
    if math.prod(sizes) != t.shape[d]:
        raise ShapeError(f"unflattened_size must multiply to the size of dim {p['dim']} ({t.shape[d]}); received: "
                         f"unflattened_size={sizes} (product {math.prod(sizes)}) for input {t}. Fix: choose sizes whose "
                         f"product is {t.shape[d]}")
    return TensorType((*t.shape[:d], *sizes, *t.shape[d + 1:]), t.kind, t.vocab)


register(LayerSpec(
    "Unflatten", "Reshape", "Splits one dimension into several, e.g. 64 → [1, 8, 8].",
    params=[Param("dim", "int", 1, "Dimension to split (0 is the batch).", min=-8, max=8),
            Param("unflattened_size", "int_list", [1, 8, 8], "Sizes to split it into.", min=1, max=MAX_SIZE)],
    shape=_unflatten_shape, ctor=lambda p, ins: ("Unflatten", {"dim": p["dim"],
                                                               "unflattened_size": tuple(p["unflattened_size"])})))


def _reshape_shape(p, ins):
    (t,) = ins
    target = list(p["shape"])
    total = t.numel
    if target.count(-1) > 1:
        raise ShapeError(f"at most one size may be -1; received: shape={target}. Fix: give all sizes but one")
    known = math.prod(s for s in target if s != -1)
    if -1 in target:
        if known == 0 or total % known:
            raise ShapeError(f"cannot reshape {t} ({total} values) to {target}. Fix: choose sizes that divide {total}")
        target[target.index(-1)] = total // known
    elif known != total:
        raise ShapeError(f"the new shape must hold the same {total} values as the input {t}; received: shape={target} "
                         f"({known} values). Fix: use sizes whose product is {total}, or -1 for one of them")
    return TensorType(tuple(target), t.kind, t.vocab)


register(LayerSpec(
    "Reshape", "Reshape", "Reshapes each sample to `shape` (one size may be -1).",
    params=[Param("shape", "int_list", [-1], "New shape without the batch dimension.", min=-1, max=MAX_SIZE)],
    shape=_reshape_shape,
    emit=lambda e, attr, p, ins, types: e.method("reshape", ins[0], -1, *_reshape_shape(p, types).shape)))


def _permute_shape(p, ins):
    (t,) = ins
    dims = p["dims"]
    full = len(t.shape) + 1
    if sorted(dims) != list(range(full)):
        raise ShapeError(f"`dims` must be a permutation of 0..{full - 1} for a {full}-d input {t}; received: "
                         f"dims={dims}. Fix: e.g. {[0, *range(full - 1, 0, -1)]}")
    if dims[0] != 0:
        raise ShapeError(f"the batch dimension must stay first; received: dims={dims}. Fix: start with 0")
    return TensorType(tuple(t.shape[d - 1] for d in dims[1:]), t.kind, t.vocab)


register(LayerSpec(
    "Permute", "Reshape", "Reorders dimensions (torch numbering; 0, the batch, stays first), e.g. [0, 2, 1].",
    params=[Param("dims", "int_list", [0, 2, 1], "New order of the dimensions.", min=0, max=8)],
    shape=_permute_shape,
    emit=lambda e, attr, p, ins, types: e.method("permute", ins[0], *p["dims"])))


def _mean_shape(p, ins):
    (t,) = ins
    _float(t)
    d = _check_dim(p["dim"], len(t.shape))
    return TensorType(tuple(s for i, s in enumerate(t.shape) if i != d))


register(LayerSpec(
    "Mean", "Reshape", "Averages over one dimension, e.g. over time steps (dim 1) of a sequence.",
    params=[Param("dim", "int", 1, "Dimension to average over (0 is the batch).", min=-8, max=8)],
    shape=_mean_shape, emit=lambda e, attr, p, ins, types: e.method("mean", ins[0], p["dim"])))

# ----------------------------------------------------------------------------------------- Recurrent


def _embedding_shape(p, ins):
    (t,) = ins
    if t.kind != TOKENS:
        raise ShapeError(f"expects token ids from an Input with modality 'tokens'; received: float tensor {t}. "
                         "Fix: set the Input's modality to 'tokens' or remove the Embedding")
    if p["padding_idx"] is not None and p["padding_idx"] >= t.vocab:
        raise ShapeError(f"padding_idx must be a token id below vocab_size {t.vocab}; received: "
                         f"padding_idx={p['padding_idx']}. Fix: use 0..{t.vocab - 1} or leave it empty")
    return TensorType((*t.shape, p["embedding_dim"]))


register(LayerSpec(
    "Embedding", "Recurrent", "Looks up a learned vector for each token id.",
    params=[_int("embedding_dim", 32, "Size of each token vector.", hi=65536),
            Param("padding_idx", "int", None, "Token id whose vector stays zero (optional).", min=0, max=MAX_SIZE,
                  nullable=True)],
    shape=_embedding_shape, inferred=("num_embeddings",), input_kind=TOKENS,
    ctor=lambda p, ins: ("Embedding", {"num_embeddings": ins[0].vocab, **p})))


def _rnn_shape(p, ins):
    (t,) = ins
    _float(t)
    if len(t.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, F); received: {t}. Fix: feed an Embedding, a sequence Input, "
                         "or Permute a (B, C, L) tensor with dims [0, 2, 1]")
    h = p["hidden_size"] * (2 if p["bidirectional"] else 1)
    last = TensorType((h,))
    out = TensorType((t.shape[0], h)) if p["output_mode"] == "all" else last
    return {"out": out, "h_n": last}


def _rnn_ctor(cls: str):
    def ctor(p, ins):
        kw = {"input_size": ins[0].shape[-1], "hidden_size": p["hidden_size"], "num_layers": p["num_layers"]}
        if cls == "RNN":
            kw["nonlinearity"] = p["nonlinearity"]
        kw.update(batch_first=True, dropout=p["dropout"], bidirectional=p["bidirectional"])
        return cls, kw
    return ctor


def _rnn_emit(cls: str):
    def emit(e, attr, p, ins, types):
        res = e.module(attr, ins[0], as_="result")
        seq = e.fn(operator.getitem, res, 0, as_="steps")  # (B, T, H*D)
        h = e.fn(operator.getitem, res, 1, as_="state")
        if cls == "LSTM":
            h = e.fn(operator.getitem, h, 0, as_="hidden")  # (layers*D, B, H)
        if p["bidirectional"]:
            last = e.fn(_torch().cat, [e.fn(operator.getitem, h, -2, as_="fwd"),
                                    e.fn(operator.getitem, h, -1, as_="bwd")], dim=-1)
        else:
            last = e.fn(operator.getitem, h, -1)  # (B, H)
        return {"out": seq if p["output_mode"] == "all" else last, "h_n": last}
    return emit


def _rnn_params(cls: str) -> list[Param]:
    ps = [_int("hidden_size", 64, "Size of the hidden state.", hi=65536),
          _int("num_layers", 1, "Stacked recurrent layers.", hi=16)]
    if cls == "RNN":
        ps.append(Param("nonlinearity", "choice", "tanh", "Activation inside the cell.", choices=("tanh", "relu")))
    ps += [Param("bidirectional", "bool", False, "Also read the sequence backwards (doubles the output size)."),
           Param("dropout", "float", 0.0, "Dropout between stacked layers.", min=0.0, max=1.0),
           Param("output_mode", "choice", "last", "'last': the final hidden state (B, H); 'all': every step (B, T, H).",
                 choices=("last", "all"))]
    return ps


def _rnn_lint(p, ins) -> list[str]:
    if p["dropout"] > 0 and p["num_layers"] == 1:
        return [f"dropout only acts between stacked layers; received: dropout={p['dropout']:g} with num_layers=1. "
                "Fix: set num_layers ≥ 2 or add a Dropout node after this layer"]
    return []


def _rnn_cost(cls: str):
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[cls]

    def cost(p, ins, outs) -> Cost:
        """Per layer and direction: the gate pre-activations and hidden states of every step, kept for backward."""
        d = 2 if p["bidirectional"] else 1
        return Cost(work=p["num_layers"] * d * ins[0].shape[0] * p["hidden_size"] * (gates + 2))
    return cost


for _cls in ("RNN", "LSTM", "GRU"):
    register(LayerSpec(_cls, "Recurrent", f"{_cls} over a sequence (B, T, F). Ports: out (per output_mode), h_n "
                       "(final state).", params=_rnn_params(_cls), shape=_rnn_shape, ctor=_rnn_ctor(_cls), lint=_rnn_lint,
                       cost=_rnn_cost(_cls),
                       inferred=("input_size",), outputs=("out", "h_n"), emit=_rnn_emit(_cls)))

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
    if k.shape[-1] != e or len(k.shape) != 2:
        raise ShapeError(f"key must be (B, S, {e}) like the query {q}; received: key {k}. Fix: project it with a "
                         f"Linear to {e} features", "key")
    if v.shape != k.shape:
        raise ShapeError(f"value must match key {k}; received: value {v}", "value")
    return q


def _mha_emit(e, attr, p, ins, types):
    q = ins[0]
    k = ins[1] if len(ins) > 1 else q
    v = ins[2] if len(ins) > 2 else k
    res = e.module(attr, q, k, v, need_weights=False, as_="result")
    return e.fn(operator.getitem, res, 0)


def _mha_cost(p, ins, outs) -> Cost:
    """Attention weights (heads × T × S) before and after softmax/dropout, plus the q, k, v projections."""
    q = ins[0]
    k = ins[1] if len(ins) > 1 else q
    t, e = q.shape
    s_len = k.shape[0]
    return Cost(work=3 * p["num_heads"] * t * s_len + 2 * t * e + 2 * s_len * e)


register(LayerSpec(
    "MultiheadAttention", "Attention", "Multi-head attention; with only a query edge it is self-attention.",
    params=[_int("num_heads", 4, "Attention heads (must divide the embedding size).", hi=256),
            Param("dropout", "float", 0.0, "Dropout on attention weights.", min=0.0, max=1.0),
            Param("bias", "bool", True, "Learn biases in the projections.")],
    shape=_mha_shape, inferred=("embed_dim",), inputs=("query", "key", "value"), optional_inputs=("key", "value"),
    cost=_mha_cost,
    ctor=lambda p, ins: ("MultiheadAttention", {"embed_dim": ins[0].shape[-1], **p, "batch_first": True}),
    emit=_mha_emit))


def _tel_shape(p, ins):
    (t,) = ins
    _float(t)
    if len(t.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, E); received: {t}. Fix: feed an Embedding or a sequence")
    _heads_check(t.shape[-1], p["nhead"], "nhead")
    return t


def _tel_cost(p, ins, outs) -> Cost:
    """Self-attention weights (nhead × T × T), q/k/v, the feed-forward hidden layer and the residual/norm
    intermediates."""
    t, e = ins[0].shape
    return Cost(work=3 * p["nhead"] * t * t + 8 * t * e + 3 * t * p["dim_feedforward"])


register(LayerSpec(
    "TransformerEncoderLayer", "Attention", "Self-attention plus a feed-forward block, each with residual + LayerNorm.",
    params=[_int("nhead", 4, "Attention heads (must divide d_model).", hi=256),
            _int("dim_feedforward", 128, "Hidden size of the feed-forward block.", hi=65536),
            Param("dropout", "float", 0.1, "Dropout rate.", min=0.0, max=1.0),
            Param("activation", "choice", "relu", "Feed-forward activation.", choices=("relu", "gelu")),
            Param("norm_first", "bool", False, "Pre-norm (LayerNorm before each block).")],
    shape=_tel_shape, inferred=("d_model",), cost=_tel_cost,
    ctor=lambda p, ins: ("TransformerEncoderLayer", {"d_model": ins[0].shape[-1], **p, "batch_first": True})))


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
