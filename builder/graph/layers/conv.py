"""Layer specs of the palette groups Convolution (Conv1d, Conv2d, ConvTranspose1d/2d, all with ``groups``) and
Pooling."""

from __future__ import annotations

from builder.graph.layers._common import (
    _conv_len,
    _float,
    _int,
    _mod,
    _out,
    _pair,
    _rank,
)
from builder.graph.spec import Cost, LayerSpec, Param, ShapeError, TensorType, register

# ----------------------------------------------------------------------------------------- Convolution

_CONV_PARAMS_1D = [
    _int("out_channels", 16, "Number of filters (output channels)."),
    _int("kernel_size", 3, "Width of each filter.", hi=1024),
    _int("stride", 1, "Step between filter positions.", hi=1024),
    _int("padding", 0, "Zeros added on both sides.", lo=0, hi=1024),
    _int("dilation", 1, "Spacing between filter taps.", hi=1024),
    _int("groups", 1, "Channel groups convolved separately (must divide in and out channels); depthwise: "
         "groups = input channels.", hi=65536, tunable=False),
    Param("bias", "bool", True, "Learn an additive bias.", tunable=False),
]
_CONV_PARAMS_2D = [
    _int("out_channels", 16, "Number of filters (output channels)."),
    Param("kernel_size", "int_or_pair", 3, "Filter size: k or [kh, kw].", min=1, max=1024),
    Param("stride", "int_or_pair", 1, "Step between filter positions.", min=1, max=1024),
    Param("padding", "int_or_pair", 0, "Zeros added on each border.", min=0, max=1024),
    Param("dilation", "int_or_pair", 1, "Spacing between filter taps.", min=1, max=1024),
    _int("groups", 1, "Channel groups convolved separately (must divide in and out channels); depthwise: "
         "groups = input channels.", hi=65536, tunable=False),
    Param("bias", "bool", True, "Learn an additive bias.", tunable=False),
]


def _groups_check(p, t: TensorType) -> None:
    """``groups`` divides the input channels and out_channels (torch's rule), with the divisors that fit."""
    c, o, g = t.shape[0], p["out_channels"], p["groups"]
    if c % g or o % g:
        fits = [d for d in range(1, min(c, o) + 1) if c % d == 0 and o % d == 0][-6:]
        raise ShapeError(f"groups must divide both the {c} input channels and out_channels={o}; received: groups={g} "
                         f"for input {t}. Fix: use one of {fits}" + (f" (depthwise: groups={c} with out_channels a "
                                                                     f"multiple of {c})" if g == c else ""))



def _conv_input(p, ins, rank: int, kind: str):
    """The one input of a convolution, checked: floating point, (C, L) or (C, H, W), groups dividing C."""
    (t,) = ins
    _float(t)
    _rank(t, (rank,), kind)
    _groups_check(p, t)
    return t


def _conv1d_shape(p, ins):
    t = _conv_input(p, ins, 2, "sequence")
    c, n = t.shape
    out = _conv_len(n, p["kernel_size"], p["stride"], p["padding"], p["dilation"])
    if out < 1:
        raise ShapeError(f"the effective kernel ({p['dilation'] * (p['kernel_size'] - 1) + 1}) is longer than the "
                         f"padded input ({n + 2 * p['padding']}); received: input {t}. Fix: reduce kernel_size or add padding")
    return TensorType((p["out_channels"], out))


def _conv2d_shape(p, ins):
    t = _conv_input(p, ins, 3, "image")
    c, h, w = t.shape
    k, s, pad, d = (_pair(p[n]) for n in ("kernel_size", "stride", "padding", "dilation"))
    oh = _conv_len(h, k[0], s[0], pad[0], d[0])
    ow = _conv_len(w, k[1], s[1], pad[1], d[1])
    if oh < 1 or ow < 1:
        raise ShapeError(f"the kernel {list(k)} (dilation {list(d)}) does not fit the padded input "
                         f"{h + 2 * pad[0]}×{w + 2 * pad[1]}; received: input {t}. Fix: reduce kernel_size or add padding")
    return TensorType((p["out_channels"], oh, ow))


# Convolutions keep only their input for the backward pass (the spec default ``saves="input"``): cuDNN and oneDNN
# do not materialise unfolded (im2col) inputs (builder.graph.memory, measured). What they do hold is below.

#: oneDNN's blocked layouts (nChw16c, nCw16c) pad the channels to a multiple of this in a convolution's backward
ONEDNN_BLOCK = 16


def blocked_padding(*tensors: TensorType) -> int:
    """Values per sample that padding the channels (the first dimension) of ``tensors`` to a multiple of
    :data:`ONEDNN_BLOCK` adds: what a CPU convolution's backward copies beyond them (:func:`_conv_cost`; an Op
    node's ``aten.conv2d`` too).

    >>> blocked_padding(TensorType((3, 8, 8)), TensorType((16, 8, 8)), TensorType((17, 4)))
    892
    """
    return sum((-t.shape[0] % ONEDNN_BLOCK) * (t.numel // t.shape[0]) for t in tensors if t.shape and t.shape[0])


def _conv_cost(p, ins, outs) -> Cost:
    """A CPU convolution's backward beyond its gradients. Torch takes oneDNN for float32 training batches
    (``torch._C._select_conv_backend``: ``Mkldnn`` from batch 2 on; 16 for a 1×1 kernel on one thread), which works
    on copies of the output's gradient and of the input side (its gradient, or the input itself for the weights'
    gradient) in blocked layouts whose channels are padded to a multiple of 16: the padding is counted here. With
    few channels it is most of the step: a CPU step's peak per sample was 4.36× the estimate for a 1→1 Conv2d at
    64×64, 4.50× for a 1→1 Conv1d at 4,096 steps, 2.20× for a 4→4→4 chain; now 1.00-1.05× for stride-1 chains of
    1-8 channels, and 1.15-1.20× from 16 channels on as before. An upper bound: a strided or transposed convolution
    with 1 channel copies less (the estimate 2.3-3.3× its peak). Not counted on CUDA (cuDNN's workspaces are in
    :data:`builder.graph.memory.CUDA_ACTIVATION_FACTOR`, measured on an H100).

    >>> _conv_cost({}, [TensorType((1, 64, 64))], {"out": TensorType((1, 62, 62))}).backward  # 15 pad channels
    119100
    """
    padded = blocked_padding(ins[0], _out(outs))
    return Cost(backward=padded, cuda_backward=0,
                note="oneDNN pads the channels to a multiple of 16 in the backward pass" if padded else "")


register(LayerSpec(
    "Conv1d", "Convolution", "1-d convolution over (channels, length).", params=list(_CONV_PARAMS_1D),
    shape=_conv1d_shape, inferred=("in_channels",), cost=_conv_cost,
    ctor=lambda p, ins: ("Conv1d", {"in_channels": ins[0].shape[0], **p})))

register(LayerSpec(
    "Conv2d", "Convolution", "2-d convolution over (channels, height, width).", params=list(_CONV_PARAMS_2D),
    shape=_conv2d_shape, inferred=("in_channels",), cost=_conv_cost,
    ctor=lambda p, ins: ("Conv2d", {"in_channels": ins[0].shape[0], **p}),
    doc_url="https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html"))


def _output_padding_check(p: dict) -> list[str]:
    """A transposed convolution's output padding lies below its stride in every dimension: torch takes up to
    max(stride, dilation) - 1, onnxruntime only stride - 1 (its ConvTranspose failed the ONNX export beyond)."""
    for op, s in zip(_pair(p["output_padding"]), _pair(p["stride"]), strict=True):
        if op >= s:
            return [f"`output_padding` must be smaller than the stride in every dimension (ONNX Runtime's rule; "
                    f"torch would take it up to the dilation, and the ONNX export then fails); received: "
                    f"output_padding={p['output_padding']}, stride={p['stride']}. Fix: use output_padding ≤ {s - 1} "
                    "there, or a larger stride"]
    return []


def _convT2d_shape(p, ins):
    t = _conv_input(p, ins, 3, "image")
    c, h, w = t.shape
    k, s, pad, d, op = (_pair(p[n]) for n in ("kernel_size", "stride", "padding", "dilation", "output_padding"))
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
    shape=_convT2d_shape, inferred=("in_channels",), cost=_conv_cost, check=_output_padding_check,
    ctor=lambda p, ins: ("ConvTranspose2d", {"in_channels": ins[0].shape[0], **p})))



def _convT1d_shape(p, ins):
    t = _conv_input(p, ins, 2, "sequence")
    c, n = t.shape
    k, s, pad, d, op = (p[n_] for n_ in ("kernel_size", "stride", "padding", "dilation", "output_padding"))
    out = (n - 1) * s - 2 * pad + d * (k - 1) + op + 1
    if out < 1:
        raise ShapeError(f"padding {pad} leaves no output for input {t}; received: padding={pad}. Fix: reduce padding")
    return TensorType((p["out_channels"], out))


register(LayerSpec(
    "ConvTranspose1d", "Convolution", "Transposed 1-d convolution (learned upsampling of a sequence).",
    params=[*_CONV_PARAMS_1D[:4],
            _int("output_padding", 0, "Extra length added to one side of the output.", lo=0, hi=1024),
            *_CONV_PARAMS_1D[4:]],
    shape=_convT1d_shape, inferred=("in_channels",), cost=_conv_cost, check=_output_padding_check,
    ctor=lambda p, ins: ("ConvTranspose1d", {"in_channels": ins[0].shape[0], **p})))

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
            n = _conv_len(spatial[i], k[i], s[i], pad[i], d[i])
            if n < 1:
                raise ShapeError(f"the pooling window {p['kernel_size']} is larger than the input {t}. "
                                 "Fix: reduce kernel_size or remove a pooling layer")
            out.append(n)
        if (why := empty_pool_window(list(spatial), list(k), list(s), list(pad), list(d))) is not None:
            raise ShapeError(why)
        return TensorType((t.shape[0], *out))
    return rule


def _pool_check(p: dict) -> list[str]:
    """A pooling window's padding is at most half the window, in every dimension (torch's rule)."""
    if any(pad * 2 > k for pad, k in zip(_pair(p["padding"]), _pair(p["kernel_size"]), strict=True)):
        return [f"`padding` must be at most half the kernel; received: padding={p['padding']}, kernel_size="
                f"{p['kernel_size']}. Fix: lower padding"]
    return []


def _padding_only_window(size: int, k: int, s: int, pad: int, d: int, n: int) -> int | None:
    """The first of ``n`` windows whose taps all fall in the padding, else None. With padding ≤ half the kernel
    that needs a dilation larger than the input (taps stepping over it), so only then are windows checked."""
    if d <= size:
        return None
    for o in range(n):
        start = o * s - pad
        j = 0 if start >= 0 else (-start + d - 1) // d  # the first tap at or after position 0
        if j >= k or start + j * d >= size:
            return o
    return None


def pool_len(size: int, k: int, s: int, pad: int, d: int, ceil_mode: bool = False) -> int:
    """A pooling's output length as torch computes it (``pooling_output_shape``): with ``ceil_mode`` one more
    window where the last would start inside the input or its left padding.

    >>> pool_len(7, 2, 2, 0, 1), pool_len(7, 2, 2, 0, 1, True)
    (3, 4)
    """
    n = (size + 2 * pad - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    return n - 1 if ceil_mode and (n - 1) * s >= size + pad else n


def empty_pool_window(sizes: list[int], kernel: list[int], stride: list[int], padding: list[int],
                      dilation: list[int], ceil_mode: bool = False) -> str | None:
    """Why a max pooling cannot run, when one of its windows covers only padding (torch 2.13 then writes out of
    bounds in backward: the process aborts): the rule, what was received and the fix; None otherwise. One check for
    the MaxPool layers and an Op node's ``aten.max_pool*`` (``sizes``: the spatial sizes, the rest per dimension).

    >>> empty_pool_window([1], [2], [1], [1], [2]) is not None, empty_pool_window([7], [2], [1], [1], [2]) is None
    (True, True)
    """
    for i, size in enumerate(sizes):
        k, s, pad, d = kernel[i], stride[i], padding[i], dilation[i]
        if min(k, s, d) < 1 or pad < 0:  # no window to place (torch's own check refuses it: a kernel or stride of
            continue                      # 0 divided by zero here, in validate)
        n = pool_len(size, k, s, pad, d, ceil_mode)
        if n >= 1 and (o := _padding_only_window(size, k, s, pad, d, n)) is not None:
            return (f"every pooling window must cover at least one input position; received: dilation={dilation}, "
                    f"padding={padding} on spatial sizes {list(sizes)}: window {o} of spatial dimension {i + 1} "
                    f"covers only padding (torch 2.13 then writes out of bounds in backward). Fix: use a dilation "
                    f"≤ {size} or padding 0")
    return None


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
                       shape=_pool_shape(_dims, True), ctor=_mod(f"MaxPool{_dims}d"), check=_pool_check,
                       cost=lambda p, ins, outs: Cost(work=2 * _out(outs).numel)))  # int64 argmax indices
    register(LayerSpec(f"AvgPool{_dims}d", "Pooling", f"{_dims}-d average pooling.", params=_pool_params(_dims, False),
                       shape=_pool_shape(_dims, False), ctor=_mod(f"AvgPool{_dims}d"), check=_pool_check))


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
