"""Tensor plumbing (palette group Reshape): Transpose, Squeeze, Unsqueeze, Select, Slice, Expand, Chunk, Cast, Pad,
PixelShuffle, PixelUnshuffle; Upsample (Pooling).

The pure indexing ops (Transpose ... Chunk) take float tensors and token ids alike and pass the kind on
(their port kind is ``any``); the others compute on values and refuse token ids.
"""

from __future__ import annotations

import math
import operator

from builder.graph.layers._common import (
    _check_dim,
    _float,
    _int,
    _pair,
    _torch,
)
from builder.graph.spec import MAX_SIZE, TOKENS, Cost, LayerSpec, Param, ShapeError, TensorType, register

ANY = "any"  # port kind: float tensors and token ids


def _dim(name: str, default: int, help: str) -> Param:
    return Param(name, "int", default, help, min=-8, max=8)


def _like(t: TensorType, shape) -> TensorType:
    """``shape`` with the kind (and vocabulary) of ``t``."""
    return TensorType(tuple(shape), t.kind, t.vocab)


# ----------------------------------------------------------------------------------------- Transpose, Squeeze


def _transpose_shape(p, ins):
    (t,) = ins
    a = _check_dim(p["dim0"], len(t.shape), "dim0")
    b = _check_dim(p["dim1"], len(t.shape), "dim1")
    shape = list(t.shape)
    shape[a], shape[b] = shape[b], shape[a]
    return _like(t, shape)


register(LayerSpec(
    "Transpose", "Reshape", "Swaps two dimensions, e.g. (B, C, L) ↔ (B, L, C) with dim0 1, dim1 2.",
    params=[_dim("dim0", 1, "First dimension to swap (torch numbering: 0 is the batch)."),
            _dim("dim1", 2, "Second dimension to swap.")],
    shape=_transpose_shape, input_kind=ANY, strides="any",
    emit=lambda e, attr, p, ins, types: e.method("transpose", ins[0], p["dim0"], p["dim1"]), saves="none"))


def _squeeze_shape(p, ins):
    (t,) = ins
    d = _check_dim(p["dim"], len(t.shape))
    if t.shape[d] != 1:
        ones = [i + 1 for i, s in enumerate(t.shape) if s == 1]
        raise ShapeError(f"only a dimension of size 1 can be removed; received: dim={p['dim']} of size {t.shape[d]} "
                         f"in {t}. Fix: " + (f"use dim {' or '.join(map(str, ones))}" if ones else
                                            "use Select to pick one entry, or a reduction (Mean, Sum) to combine them"))
    return _like(t, t.shape[:d] + t.shape[d + 1:])


register(LayerSpec(
    "Squeeze", "Reshape", "Removes a dimension of size 1, e.g. (B, 1, F) → (B, F).",
    params=[_dim("dim", 1, "Dimension of size 1 to remove (0 is the batch).")],
    shape=_squeeze_shape, input_kind=ANY,
    emit=lambda e, attr, p, ins, types: e.method("squeeze", ins[0], p["dim"]), saves="none"))


def _unsqueeze_shape(p, ins):
    (t,) = ins
    d = _check_dim(p["dim"], len(t.shape) + 1)  # a new dimension may go after the last one
    return _like(t, (*t.shape[:d], 1, *t.shape[d:]))


register(LayerSpec(
    "Unsqueeze", "Reshape", "Inserts a dimension of size 1, e.g. (B, F) → (B, 1, F) with dim 1.",
    params=[_dim("dim", 1, "Position of the new dimension in the output (0 is the batch; -1 appends).")],
    shape=_unsqueeze_shape, input_kind=ANY,
    emit=lambda e, attr, p, ins, types: e.method("unsqueeze", ins[0], p["dim"]), saves="none"))

# ----------------------------------------------------------------------------------------- Select, Slice


def _select_shape(p, ins):
    (t,) = ins
    d = _check_dim(p["dim"], len(t.shape))
    n, i = t.shape[d], p["index"]
    if not -n <= i < n:
        raise ShapeError(f"index must be within the {n} entries of dim {p['dim']}; received: index={i} for input {t}. "
                         f"Fix: use 0..{n - 1}, or -1 for the last entry")
    return _like(t, t.shape[:d] + t.shape[d + 1:])


register(LayerSpec(
    "Select", "Reshape", "Picks one entry along a dimension and drops that dimension, e.g. the last time step "
    "(dim 1, index -1) or a class token (dim 1, index 0).",
    params=[_dim("dim", 1, "Dimension to index (0 is the batch)."),
            Param("index", "int", -1, "Entry to keep; negative counts from the end (-1: the last).",
                  min=-MAX_SIZE, max=MAX_SIZE)],
    shape=_select_shape, input_kind=ANY, strides="any",
    emit=lambda e, attr, p, ins, types: e.method("select", ins[0], p["dim"], p["index"]), saves="none"))


def _slice_range(p, t: TensorType) -> tuple[int, range]:
    d = _check_dim(p["dim"], len(t.shape))
    return d, range(*slice(p["start"], p["end"], p["step"]).indices(t.shape[d]))


def _slice_shape(p, ins):
    (t,) = ins
    d, r = _slice_range(p, t)
    if not len(r):
        raise ShapeError(f"the slice keeps no entry of dim {p['dim']} ({t.shape[d]} entries); received: start="
                         f"{p['start']}, end={p['end']} for input {t}. Fix: choose start < end within "
                         f"-{t.shape[d]}..{t.shape[d]}")
    shape = list(t.shape)
    shape[d] = len(r)
    return _like(t, shape)


def _slice_emit(e, attr, p, ins, types):
    d = _check_dim(p["dim"], len(types[0].shape))
    index = (slice(None),) * (d + 1) + (slice(p["start"], p["end"], p["step"] if p["step"] != 1 else None),)
    return e.fn(operator.getitem, ins[0], index)


register(LayerSpec(
    "Slice", "Reshape", "Keeps entries start..end (every step-th) along a dimension, as x[:, start:end:step].",
    params=[_dim("dim", 1, "Dimension to slice (0 is the batch)."),
            Param("start", "int", 0, "First entry kept; negative counts from the end.", min=-MAX_SIZE, max=MAX_SIZE),
            Param("end", "int", None, "Entry after the last one kept (empty: to the end); negative counts from the end.",
                  min=-MAX_SIZE, max=MAX_SIZE, nullable=True),
            _int("step", 1, "Keep every step-th entry.", hi=MAX_SIZE)],
    shape=_slice_shape, input_kind=ANY, strides="any", emit=_slice_emit, saves="none"))

# ----------------------------------------------------------------------------------------- Expand, Chunk, Cast


def _expand_shape(p, ins):
    (t,) = ins
    sizes = p["sizes"]
    if len(sizes) != len(t.shape):
        raise ShapeError(f"sizes must give one size per dimension of the input {t} (the batch is kept); received: "
                         f"sizes={sizes}. Fix: give {len(t.shape)} sizes, -1 to keep one, e.g. {[-1] * len(t.shape)}")
    out = []
    for i, (have, want) in enumerate(zip(t.shape, sizes)):
        if want == -1 or want == have:
            out.append(have)
        elif have == 1 and want >= 1:
            out.append(want)
        else:
            raise ShapeError(f"only dimensions of size 1 can be expanded; received: sizes={sizes} but dim {i + 1} of "
                             f"{t} has size {have}. Fix: use -1 or {have} there (Unsqueeze first to add a size-1 dim)")
    return _like(t, out)


register(LayerSpec(
    "Expand", "Reshape", "Repeats dimensions of size 1 (without copying), e.g. (B, 1, D) → (B, 10, D).",
    params=[Param("sizes", "int_list", [-1], "New size per dimension (batch left out); -1 keeps a size.",
                  min=-1, max=MAX_SIZE)],
    shape=_expand_shape, input_kind=ANY, strides="any",
    emit=lambda e, attr, p, ins, types: e.method("expand", ins[0], -1, *p["sizes"]), saves="none"))


def _chunk_sizes(n: int, chunks: int) -> list[int]:
    """The sizes torch.chunk gives: pieces of ceil(n / chunks), the last one smaller (maybe fewer pieces)."""
    size = -(-n // chunks)
    return [min(size, n - s) for s in range(0, n, size)]


def _chunk_shape(p, ins):
    (t,) = ins
    d = _check_dim(p["dim"], len(t.shape))
    sizes = _chunk_sizes(t.shape[d], p["chunks"])
    if p["index"] >= len(sizes):
        raise ShapeError(f"index must name one of the {len(sizes)} pieces (dim {p['dim']} of {t} splits into "
                         f"{sizes}); received: index={p['index']}. Fix: use 0..{len(sizes) - 1}")
    shape = list(t.shape)
    shape[d] = sizes[p["index"]]
    return _like(t, shape)


register(LayerSpec(
    "Chunk", "Reshape", "Splits a dimension into `chunks` pieces and outputs piece `index` (one Chunk per piece "
    "used), as x.chunk(chunks, dim)[index]: e.g. the two halves of a gated unit.",
    params=[_int("chunks", 2, "Number of pieces (the last is smaller when the size does not divide).", hi=4096),
            _dim("dim", 1, "Dimension to split (0 is the batch)."),
            _int("index", 0, "Which piece to output (0 is the first).", lo=0, hi=4095)],
    shape=_chunk_shape, input_kind=ANY, strides="any",
    emit=lambda e, attr, p, ins, types: e.fn(
        operator.getitem, e.method("chunk", ins[0], p["chunks"], p["dim"], as_="pieces"), p["index"]), saves="none"))


def _cast_shape(p, ins):
    (t,) = ins
    if p["dtype"] == "float32":
        return TensorType(t.shape)
    vocab = t.vocab if t.kind == TOKENS and t.vocab is not None else p["vocab_size"]
    return TensorType(t.shape, TOKENS, vocab)


def _cast_emit(e, attr, p, ins, types):
    out = e.method("to", ins[0], getattr(_torch(), p["dtype"]))
    if p["dtype"] == "int64" and (types[0].kind != TOKENS or types[0].vocab is None):  # the promised 0..vocab_size-1
        return e.method("clamp", out, 0, p["vocab_size"] - 1)
    return out


register(LayerSpec(
    "Cast", "Reshape", "Converts the element type: token ids to float32 numbers, or float values (or integers "
    "without a known vocabulary) to int64 ids (truncated toward zero, then clamped into 0..vocab_size-1) for an "
    "Embedding.",
    params=[Param("dtype", "choice", "float32", "Element type of the output.", choices=("float32", "int64")),
            _int("vocab_size", 100, "For int64 from floats: how many ids the next Embedding takes (0..vocab_size-1).",
                 lo=2)],
    shape=_cast_shape, input_kind=ANY, emit=_cast_emit, saves="none"))

# ----------------------------------------------------------------------------------------- Pad


def _pad_shape(p, ins):
    (t,) = ins
    _float(t)
    pads, mode, r = p["pad"], p["mode"], len(t.shape)
    k = len(pads) // 2
    if k > r:
        raise ShapeError(f"pad names {k} dimensions but the input {t} has {r} besides the batch; received: pad={pads}. "
                         f"Fix: give at most {2 * r} values")
    if mode != "constant" and (k > 3 or r > k + 1):
        fix = (f"pad the last {r - 1} or {r} dimensions ({2 * (r - 1)} or {2 * r} values)" if r <= 3 else
               "use mode 'constant'")
        raise ShapeError(f"mode {mode!r} pads the last 1 to 3 dimensions of inputs with at most one more leading "
                         f"dimension; received: pad={pads} ({k} dims) for input {t}. Fix: {fix}")
    shape = list(t.shape)
    for j in range(k):
        i = r - 1 - j
        before, after = pads[2 * j], pads[2 * j + 1]
        if mode == "reflect" and max(before, after) >= shape[i]:
            raise ShapeError(f"reflect padding must be smaller than the size it pads; received: pad {before, after} "
                             f"on dim {i + 1} of size {shape[i]} in {t}. Fix: pad at most {shape[i] - 1} or use mode "
                             "'replicate'")
        if mode == "circular" and max(before, after) > shape[i]:
            raise ShapeError(f"circular padding can wrap at most once; received: pad {before, after} on dim {i + 1} of "
                             f"size {shape[i]} in {t}. Fix: pad at most {shape[i]}")
        shape[i] += before + after
    return TensorType(tuple(shape))


def _pad_cost(p, ins, outs) -> Cost:
    """Reflection and replication padding keep their input for backward (measured with saved-tensor hooks: one
    input per sample); constant and circular padding keep nothing."""
    return Cost(work=ins[0].numel if p["mode"] in ("reflect", "replicate") else 0)


def _pad_emit(e, attr, p, ins, types):
    kw = {"value": p["value"]} if p["mode"] == "constant" else {}
    return e.fn(_torch().nn.functional.pad, ins[0], tuple(p["pad"]), mode=p["mode"], **kw)


register(LayerSpec(
    "Pad", "Reshape", "Pads the last dimensions: pad = [left, right] for the last one, then [top, bottom] for the "
    "one before, as torch.nn.functional.pad.",
    params=[Param("pad", "int_list", [1, 1], "Sizes (before, after) per dimension, last dimension first.",
                  min=0, max=1024),
            Param("mode", "choice", "constant", "Fill with `value`, mirror the border (reflect), repeat the edge "
                  "(replicate) or wrap around (circular).", choices=("constant", "reflect", "replicate", "circular")),
            Param("value", "float", 0.0, "Fill value for mode 'constant'.", min=-1e6, max=1e6)],
    shape=_pad_shape, emit=_pad_emit, saves="none", cost=_pad_cost,
    check=lambda p: [f"pad needs a pair (before, after) per dimension, last dimension first; received: pad={p['pad']}. "
                     f"Fix: e.g. {[*p['pad'], 0]}"] if len(p["pad"]) % 2 else []))

# ----------------------------------------------------------------------------------------- PixelShuffle


def _pixel_shuffle_shape(p, ins):
    (t,) = ins
    _float(t)
    r = p["upscale_factor"]
    if len(t.shape) != 3:
        raise ShapeError(f"expects an image (B, C, H, W); received: {t}. Fix: Reshape/Unflatten to (C, H, W) first")
    c, h, w = t.shape
    if c % (r * r):
        raise ShapeError(f"the channels must be a multiple of upscale_factor² = {r * r}; received: {c} channels in {t}. "
                         f"Fix: give the layer before {c // (r * r) * (r * r) or r * r} or {(c // (r * r) + 1) * r * r} "
                         "output channels")
    return TensorType((c // (r * r), h * r, w * r))


register(LayerSpec(
    "PixelShuffle", "Reshape", "Moves channels into space: (C·r², H, W) → (C, H·r, W·r) (sub-pixel upsampling).",
    params=[_int("upscale_factor", 2, "Upscaling factor r.", hi=64)],
    shape=_pixel_shuffle_shape, ctor=lambda p, ins: ("PixelShuffle", dict(p)), saves="none"))


def _pixel_unshuffle_shape(p, ins):
    (t,) = ins
    _float(t)
    r = p["downscale_factor"]
    if len(t.shape) != 3:
        raise ShapeError(f"expects an image (B, C, H, W); received: {t}. Fix: Reshape/Unflatten to (C, H, W) first")
    c, h, w = t.shape
    if h % r or w % r:
        raise ShapeError(f"height and width must be multiples of downscale_factor; received: downscale_factor={r} for "
                         f"input {t}. Fix: use a factor that divides {h} and {w} (e.g. "
                         f"{math.gcd(h, w)}) or Pad the image")
    return TensorType((c * r * r, h // r, w // r))


register(LayerSpec(
    "PixelUnshuffle", "Reshape", "Moves space into channels: (C, H·r, W·r) → (C·r², H, W).",
    params=[_int("downscale_factor", 2, "Downscaling factor r.", hi=64)],
    shape=_pixel_unshuffle_shape, ctor=lambda p, ins: ("PixelUnshuffle", dict(p)), saves="none"))

# ----------------------------------------------------------------------------------------- Upsample

_MODE_RANK = {"nearest": (2, 3), "linear": (2,), "bilinear": (3,), "bicubic": (3,)}


def _upsample_shape(p, ins):
    (t,) = ins
    _float(t)
    mode, r = p["mode"], len(t.shape)
    if r not in _MODE_RANK[mode]:
        want = " or ".join({2: "a sequence (B, C, L)", 3: "an image (B, C, H, W)"}[k] for k in _MODE_RANK[mode])
        other = {2: "linear", 3: "bilinear"}.get(r)
        raise ShapeError(f"mode {mode!r} resizes {want}; received: {t}. Fix: "
                         + (f"use mode 'nearest' or {other!r}" if other else "Reshape to (C, L) or (C, H, W) first"))
    if (p["size"] is None) == (p["scale_factor"] is None):
        raise ShapeError(f"give exactly one of size and scale_factor; received: size={p['size']}, scale_factor="
                         f"{p['scale_factor']}. Fix: clear one of them (e.g. scale_factor 2)")
    spatial = t.shape[1:]
    if p["size"] is not None:
        if r == 2 and isinstance(p["size"], list):
            raise ShapeError(f"a sequence has one length; received: size={p['size']} for input {t}. Fix: give one "
                             "number")
        out = _pair(p["size"])[: r - 1]
    else:
        out = tuple(math.floor(n * p["scale_factor"]) for n in spatial)
        if min(out) < 1:
            raise ShapeError(f"scale_factor {p['scale_factor']} leaves no output for input {t}. Fix: use a "
                             f"scale_factor ≥ {1 / min(spatial):.3g}")
    return TensorType((t.shape[0], *out))


def _upsample_lint(p, ins) -> list[str]:
    """A scale_factor other than 1 that leaves a spatial size as it is (2 × 1.4 → 2) has no ONNX form: the exported
    file is refused by onnx.checker or computes other numbers in onnxruntime (graph fuzzer's ONNX round trip, seed
    92002, graph 778: 2 × 5 by 1.4457 → 2 × 7, off by 2.49; measured with torch's exporter at opset 18)."""
    s, spatial = p["scale_factor"], ins[0].shape[1:] if ins and ins[0].shape else ()
    if p["size"] is not None or s is None or s == 1 or not any(math.floor(n * s) == n for n in spatial):
        return []
    out = [math.floor(n * s) for n in spatial]
    return [f"a scale_factor that leaves a size unchanged has no ONNX form (the exported file fails onnx.checker or "
            f"differs in onnxruntime); received: scale_factor={s:g} from {list(spatial)} to {out}. Fix: give the "
            f"output `size` {out} instead, to export this model to ONNX (it trains and runs as it is)"]


def _upsample_ctor(p, ins):
    kw = {"size": p["size"], "scale_factor": p["scale_factor"], "mode": p["mode"]}
    if p["mode"] != "nearest":
        kw["align_corners"] = p["align_corners"]
    return "Upsample", kw


register(LayerSpec(
    "Upsample", "Pooling", "Resizes a sequence or an image to `size` or by `scale_factor` (nearest or linear "
    "interpolation), as torch.nn.Upsample / F.interpolate.",
    params=[Param("size", "int_or_pair", None, "Output length, or [height, width] (leave empty to use scale_factor).",
                  min=1, max=65536, nullable=True),
            Param("scale_factor", "float", 2.0, "Multiplier of each spatial size (output size rounded down).",
                  min=0.01, max=64.0, nullable=True),
            Param("mode", "choice", "nearest", "Interpolation: nearest, linear (sequences), bilinear or bicubic "
                  "(images).", choices=tuple(_MODE_RANK)),
            Param("align_corners", "bool", False, "Linear modes: align the corner pixels of input and output.")],
    shape=_upsample_shape, ctor=_upsample_ctor, lint=_upsample_lint, saves="none"))
