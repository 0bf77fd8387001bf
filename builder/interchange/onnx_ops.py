"""The importer's fallback: a standard ONNX operator without a LayerLab layer becomes a generic ``Op`` node.

Each ONNX operator here maps to one allow-listed ATen operator plus an attribute adapter (:data:`ADAPTERS`);
its constant inputs become inline literals (scalars, up to 64 values) or constants stored with the node's
weights (learned when made of the module's parameters, fixed otherwise: ``OnnxImporter.learned``). What cannot be
represented is refused by name (:data:`REFUSED`: data-dependent control flow, random sampling, sequences);
operators with no adapter are refused as "no torch equivalent in the allow-list". Recognition of layers stays in :mod:`onnx_import`; this
module only runs when no layer fits.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from builder.interchange.onnx_fold import as_f32, text_of
from builder.interchange.onnx_values import Const, Sym, SymArr, T

REFUSED = {
    "If": "data-dependent control flow (If) cannot be a fixed graph; export the branch the model takes",
    "Loop": "data-dependent control flow (Loop) cannot be a fixed graph; unroll the loop in the model",
    "Scan": "data-dependent control flow (Scan) cannot be a fixed graph; unroll the loop in the model",
    "SequenceConstruct": "tensor sequences have no LayerLab form; return tensors",
    "SplitToSequence": "tensor sequences have no LayerLab form; use torch.split with fixed sizes",
    "RandomNormal": "random sampling inside the model has no LayerLab form",
    "RandomUniform": "random sampling inside the model has no LayerLab form",
    "RandomNormalLike": "random sampling inside the model has no LayerLab form",
    "RandomUniformLike": "random sampling inside the model has no LayerLab form",
    "Multinomial": "random sampling inside the model has no LayerLab form",
    "NonZero": "a data-dependent output size (NonZero) has no LayerLab form",
    "Unique": "a data-dependent output size (Unique) has no LayerLab form",
}
#: an axis added before the batch: the exporter's form of an operator run on an unbatched input (a 2-d pooling of
#: a 3-d tensor, whose batch it took for channels), which a graph of batch-first tensors cannot hold (the import
#: failed 'the imported graph does not validate'; deep operator fuzzer, seed 92002, graph 344)
BATCH_MOVED = ("the model adds an axis before the batch (an operator given an unbatched input, such as a 2-d pooling "
               "of a 3-d tensor); export it with the input that operator treats as batched (e.g. 4-d for a 2-d "
               "pooling), so that the batch stays the first axis")
NO_TORCH = ("this ONNX operator has no torch equivalent in LayerLab's operator allow-list; rebuild that part of "
            "the model from standard layers")

_UNARY = {"Abs": "abs", "Neg": "neg", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
          "Erf": "erf", "Sin": "sin", "Cos": "cos", "Tan": "tan", "Floor": "floor", "Ceil": "ceil",
          "Round": "round", "Sign": "sign", "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu",
          "Softplus": "softplus", "HardSwish": "hardswish", "Mish": "mish", "Not": "logical_not",
          "Selu": "selu", "Identity": "clone"}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "eq", "Less": "lt",
           "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge", "And": "logical_and",
           "Or": "logical_or", "Max": "maximum", "Min": "minimum"}
_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "amax", "ReduceMin": "amin"}
_DTYPES = {1: "float32", 11: "float64", 10: "float16", 16: "bfloat16", 7: "int64", 6: "int32", 3: "int8",
           2: "uint8", 9: "bool"}
INLINE = 64


class Call:
    """Builds one Op node: tensor inputs (deduplicated), stored constants and the JSON call."""

    def __init__(self, imp, n):
        self.imp, self.n = imp, n
        self.tensors: list[T] = []
        self.weights: dict[str, np.ndarray] = {}
        self.learned: dict[str, list[int]] = {}
        self.fixed: dict[str, list[int]] = {}
        self.needs_batch = False

    def arg(self, v: Any) -> Any:
        """The JSON form of one input value (a tensor, a constant, the symbolic batch)."""
        if isinstance(v, T):
            if v not in self.tensors:
                self.tensors.append(v)
            return {"t": self.tensors.index(v)}
        if isinstance(v, Sym):
            self.needs_batch = True
            return {"b": v.coef}
        if isinstance(v, SymArr):
            return [self.arg(x) if isinstance(x, Sym) else int(x) for x in v.items]
        if isinstance(v, Const):
            a = np.asarray(v.value)
            dtype = _np_dtype(a)
            learned = self.imp.learned(v, self.n.input)
            if a.size <= INLINE and dtype is not None and not learned:
                vals = a.reshape(-1).tolist()
                return {"tensor": [float(x) if a.dtype.kind == "f" else int(x) for x in vals], "dtype": dtype,
                        "shape": [int(s) for s in a.shape]}
            name = f"c{len(self.weights)}"
            self.weights[name] = a.astype(np.float32) if a.dtype.kind in "fb" else a
            (self.learned if learned else self.fixed)[name] = [int(s) for s in a.shape]
            # an Op's buffers are float32: a bool constant (DistilBERT's mask at 128 positions, past INLINE values)
            # is kept as 0/1 and read back as bool ("expected predicate to be bool" at validate)
            return {"w": name, "dtype": "bool"} if a.dtype.kind == "b" else {"w": name}
        if isinstance(v, np.generic):
            return v.item()
        return v

    def node(self, op: str, args: list, kwargs: dict | None = None, outputs: int = 1, label: str | None = None):
        """Add the Op node; returns its output value(s), or None when it has no tensor input."""
        imp = self.imp
        if self.needs_batch and not self.tensors:
            first = next((T(nd["id"]) for nd in imp.out.nodes if nd["type"] == "Input"), None)
            if first is None:
                return None
            self.tensors.append(first)
        if not self.tensors:
            return None
        params = {"op": f"aten.{op}", "args": json.dumps(args), "kwargs": json.dumps(kwargs or {}),
                  "weights": json.dumps(self.learned), "buffers": json.dumps(self.fixed), "outputs": outputs}
        nid = imp.add(imp.node_name(self.n), "Op", params, list(self.tensors), self.weights or None,
                      ports=[str(i) for i in range(len(self.tensors))])
        imp.out.nodes[-1]["label"] = label or self.n.op_type
        imp.out.mapped["Op"] += 1
        if outputs == 1:
            return T(nid)
        return [T(nid, "out" if i == 0 else f"out{i}") for i in range(outputs)]


def _np_dtype(a: np.ndarray) -> str | None:
    return {"f": "float32", "i": "int64", "u": "int64", "b": "bool"}.get(a.dtype.kind)


def const_ints(v: Any) -> list[int] | None:
    if isinstance(v, Const):
        return [int(x) for x in np.asarray(v.value).reshape(-1)]
    if isinstance(v, SymArr) and not any(isinstance(x, Sym) for x in v.items):
        return [int(x) for x in v.items]
    return None


def _scalar(v: Any) -> float | None:
    if isinstance(v, Const) and np.asarray(v.value).size == 1:
        x = np.asarray(v.value).reshape(-1)[0]
        return float(x) if np.asarray(v.value).dtype.kind == "f" else int(x)
    return None


def generic(imp, n, ins: list, a: dict):
    """An Op node (or a chain of them) for ONNX node ``n``; None when there is no mapping, False when refused."""
    op = n.op_type
    if op in REFUSED:
        imp.bad(op, n.name or op, REFUSED[op])
        return False
    c = Call(imp, n)
    if op in _UNARY and len(ins) == 1:
        return c.node(_UNARY[op], [c.arg(ins[0])])
    if op in _BINARY and len(ins) == 2:
        x, y = ins
        if op == "Div" and all(isinstance(v, Const) and np.asarray(v.value).dtype.kind in "iu" for v in (x, y)):
            return None
        return c.node(_BINARY[op], [c.arg(x), c.arg(y)])
    if op in ("LeakyRelu", "Elu", "Celu", "HardSigmoid", "Gelu"):
        x = c.arg(ins[0])
        if op == "LeakyRelu":
            return c.node("leaky_relu", [x, float(a.get("alpha", 0.01))])
        if op == "Elu":
            return c.node("elu", [x, float(a.get("alpha", 1.0))])
        if op == "Celu":
            return c.node("celu", [x, float(a.get("alpha", 1.0))])
        if op == "Gelu":
            return c.node("gelu", [x], {"approximate": text_of(a.get("approximate", "none"))})
        alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
        if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
            return None
        return c.node("hardsigmoid", [x])
    if op == "Where" and len(ins) == 3:
        return c.node("where", [c.arg(v) for v in ins])
    if op == "Trilu":  # a causal mask: triu(ones(T, T), 1) or tril(ones(T, T))
        k = _scalar(ins[1]) if len(ins) > 1 and ins[1] is not None else 0
        if not isinstance(k, int):
            return None
        return c.node("triu" if int(a.get("upper", 1)) else "tril", [c.arg(ins[0]), k])
    if op == "Clip":
        lo = _scalar(ins[1]) if len(ins) > 1 and ins[1] is not None else a.get("min")
        hi = _scalar(ins[2]) if len(ins) > 2 and ins[2] is not None else a.get("max")
        return c.node("clamp", [c.arg(ins[0]), lo, hi])
    if op == "MatMul":
        return c.node("matmul", [c.arg(ins[0]), c.arg(ins[1])])
    if op in ("Softmax", "LogSoftmax"):
        return c.node("softmax" if op == "Softmax" else "log_softmax", [c.arg(ins[0]), int(a.get("axis", -1))])
    if op == "Transpose":
        perm = [int(p) for p in a.get("perm", [])]
        r = imp.rank(n.input[0])
        perm = perm or (list(range(r))[::-1] if r else [])
        return c.node("permute", [c.arg(ins[0]), perm]) if perm else None
    if op == "Reshape":
        shape = ins[1]
        items = c.arg(shape) if isinstance(shape, SymArr) else const_ints(shape)
        if items is None:
            return None
        s_in = imp.shape(n.input[0]) or []
        batch = getattr(imp, "static_batch", None)
        if batch and items and items[0] == batch and s_in and s_in[0] == batch:  # a file exported at one batch size
            items, c.needs_batch = [{"b": 1}, *items[1:]], True
        if not a.get("allowzero", 0) and 0 in [x for x in items if isinstance(x, int)]:
            s_in = imp.shape(n.input[0]) or []
            items = [({"b": 1} if i == 0 else s_in[i]) if x == 0 and i < len(s_in) else x
                     for i, x in enumerate(items)]
            if any(x is None for x in items):
                return None
            c.needs_batch = c.needs_batch or {"b": 1} in items
        return c.node("reshape", [c.arg(ins[0]), items])
    if op == "Flatten":
        axis = int(a.get("axis", 1))
        s_in = imp.shape(n.input[0])
        if s_in is None or axis < 1 or any(d is None for d in s_in[1:]):
            return None
        rest = int(np.prod(s_in[axis:])) if axis < len(s_in) else 1
        c.needs_batch = True
        return c.node("reshape", [c.arg(ins[0]), [{"b": 1}, *[int(d) for d in s_in[1:axis]], rest]])
    if op in ("Squeeze", "Unsqueeze"):
        axes = const_ints(ins[1]) if len(ins) > 1 and ins[1] is not None else a.get("axes")
        if op == "Squeeze":
            return c.node("squeeze", [c.arg(ins[0]), [int(x) for x in axes]] if axes else [c.arg(ins[0])])
        if not axes:
            return None
        r = imp.rank(n.input[0])
        if r is not None and any(int(x) % (r + 1) == 0 for x in axes):  # an Op node there never validates
            imp.bad("Unsqueeze before the batch", n.name or op, BATCH_MOVED)
            return False
        out = imp.shape(n.output[0])
        if len(axes) == 1:
            return c.node("unsqueeze", [c.arg(ins[0]), int(axes[0])])
        if out is None or any(d is None for d in out[1:]):
            return None
        c.needs_batch = True
        return c.node("reshape", [c.arg(ins[0]), [{"b": 1}, *[int(d) for d in out[1:]]]])
    if op == "Expand":
        shape = ins[1]
        items = c.arg(shape) if isinstance(shape, SymArr) else const_ints(shape)
        r = imp.rank(n.input[0])
        if items is None or r is None:
            return None
        lead = len(items) - r
        items = [-1 if isinstance(x, int) and x == 1 and i >= lead else x for i, x in enumerate(items)]
        return c.node("expand", [c.arg(ins[0]), items])
    if op == "Concat":
        return c.node("cat", [[c.arg(v) for v in ins], int(a.get("axis", 0))])
    if op == "Gather":
        axis, idx = int(a.get("axis", 0)), ins[1]
        if isinstance(idx, Const) and np.asarray(idx.value).ndim == 0:
            return c.node("select", [c.arg(ins[0]), axis, int(idx.value)])
        if isinstance(idx, Const) and np.asarray(idx.value).ndim == 1:
            return c.node("index_select", [c.arg(ins[0]), axis, c.arg(Const(np.asarray(idx.value, np.int64)))])
        if isinstance(idx, T) and isinstance(ins[0], Const) and axis == 0 and np.asarray(ins[0].value).ndim == 2:
            return c.node("embedding", [c.arg(ins[0]), c.arg(idx)])  # a fixed table's lookup (a buffer's)
        return None
    if op == "Slice":
        return _slice(imp, n, ins)
    if op in _REDUCE:
        axes = const_ints(ins[1]) if len(ins) > 1 and ins[1] is not None else a.get("axes")
        r = imp.rank(n.input[0])
        if not axes:
            if a.get("noop_with_empty_axes", 0) or r is None:
                return None
            axes = list(range(r))
        return c.node(_REDUCE[op], [c.arg(ins[0]), [int(x) for x in axes], bool(a.get("keepdims", 1))])
    if op in ("ArgMax", "ArgMin") and not a.get("select_last_index", 0):
        return c.node(op.lower(), [c.arg(ins[0]), int(a.get("axis", 0)), bool(a.get("keepdims", 1))])
    if op == "Cast":
        dt = _DTYPES.get(int(a.get("to", 1)))
        dt = "float32" if dt in ("float64", "float16", "bfloat16") else dt  # LayerLab computes floats in float32
        return c.node("to", [c.arg(ins[0]), {"dtype": dt}]) if dt else None
    if op == "Pad":
        return _pad(c, imp, n, ins, a)
    if op == "Resize":
        return _resize(c, imp, n, ins, a)
    if op in ("DepthToSpace", "SpaceToDepth"):
        if op == "DepthToSpace" and text_of(a.get("mode", "DCR")) != "CRD":
            return None
        return c.node("pixel_shuffle" if op == "DepthToSpace" else "pixel_unshuffle",
                      [c.arg(ins[0]), int(a["blocksize"])])
    if op == "Tile":
        reps = const_ints(ins[1])
        return c.node("repeat", [c.arg(ins[0]), reps]) if reps else None
    if op == "Split":
        return _split(c, imp, n, ins, a)
    if op == "CumSum":
        ax = _scalar(ins[1])
        if ax is None or a.get("exclusive", 0) or a.get("reverse", 0):
            return None
        return c.node("cumsum", [c.arg(ins[0]), int(ax)])
    if op == "Einsum":
        return c.node("einsum", [text_of(a["equation"]), [c.arg(v) for v in ins]])
    if op == "InstanceNormalization":
        return c.node("instance_norm", [c.arg(ins[0]), c.arg(ins[1]), c.arg(ins[2]), None, None, True, 0.0,
                                        as_f32(a.get("epsilon", 1e-5)), False])  # as written, as the layers
    if op == "LayerNormalization":
        axis = int(a.get("axis", -1))
        r = imp.rank(n.input[0])
        s = imp.shape(n.input[0])
        if r is None or s is None:
            return None
        axis = axis % r
        norm = [int(d) for d in s[axis:]] if all(d is not None for d in s[axis:]) else None
        if norm is None:
            return None
        b = c.arg(ins[2]) if len(ins) > 2 and ins[2] is not None else None
        return c.node("layer_norm", [c.arg(ins[0]), norm, c.arg(ins[1]), b, as_f32(a.get("epsilon", 1e-5))])
    if op == "Gemm" and isinstance(ins[1], Const) and imp.any_fixed(n, *ins[1:3]) and not a.get("transA", 0) \
            and a.get("alpha", 1.0) == 1.0 and a.get("beta", 1.0) == 1.0:  # a buffer: no Linear (which learns it)
        w = ins[1].value if a.get("transB", 0) else ins[1].value.T  # (src: a learned weight beside a fixed bias)
        b = c.arg(ins[2]) if len(ins) > 2 and ins[2] is not None else None
        return c.node("linear", [c.arg(ins[0]), c.arg(Const(np.ascontiguousarray(w), src=ins[1].src)), b])
    if op == "PRelu":  # (ONNX's slope broadcasts over the input as aten's kernel's does)
        slope = ins[1]
        if isinstance(slope, Const):  # (1, C), the exporter's broadcast form: the same slope as (C,), which the
            v = slope.value  # canvas's ONNX export takes (onnxruntime refuses a PRelu broadcast)
            while v.ndim > 1 and v.shape[0] == 1:
                v = v[0]
            slope = Const(v, src=slope.src)
        return c.node("_prelu_kernel", [c.arg(ins[0]), c.arg(slope)])
    if op in ("Conv", "ConvTranspose"):
        return _conv(c, imp, n, ins, a)
    if op in ("AveragePool", "MaxPool"):
        return _pool(c, imp, n, ins, a)
    if op in ("GlobalMaxPool", "GlobalAveragePool"):
        r = imp.rank(n.input[0])
        if r is None:
            return None
        return c.node("amax" if op == "GlobalMaxPool" else "mean", [c.arg(ins[0]), list(range(2, r)), True])
    return None


def _slice(imp, n, ins):
    starts, ends = const_ints(ins[1]), const_ints(ins[2])
    axes = const_ints(ins[3]) if len(ins) > 3 and ins[3] is not None else list(range(len(starts or [])))
    steps = const_ints(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(axes or [])
    if starts is None or ends is None or axes is None or steps is None or any(s < 1 for s in steps):
        return None
    cur = ins[0]
    big = (1 << 62)
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        c = Call(imp, n)
        cur = c.node("slice", [c.arg(cur), int(ax), max(-big, min(big, st)), max(-big, min(big, en)), int(sp)])
        if cur is None:
            return None
    return cur


def _pad(c, imp, n, ins, a):
    pads = const_ints(ins[1]) if len(ins) > 1 else a.get("pads")
    mode = text_of(a.get("mode", "constant"))
    r = imp.rank(n.input[0])
    if pads is None or r is None or len(pads) != 2 * r or (len(ins) > 3 and ins[3] is not None):
        return None
    torch_pads: list[int] = []
    for d in range(r - 1, -1, -1):
        torch_pads += [int(pads[d]), int(pads[d + r])]
    if mode in ("reflect", "edge"):  # torch pads every spatial dimension there: 2·(rank − 2) values, no fewer
        spatial = 2 * max(1, r - 2)
        if any(torch_pads[spatial:]):
            return None  # the batch or channel dimension padded: no such torch pad
        torch_pads = torch_pads[:spatial]
    while mode == "constant" and len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:
        torch_pads = torch_pads[:-2]
    if mode == "constant":
        value = _scalar(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0
        return c.node("constant_pad_nd", [c.arg(ins[0]), torch_pads, float(value or 0.0)])
    if mode in ("reflect", "edge"):
        return c.node("pad", [c.arg(ins[0]), torch_pads, "reflect" if mode == "reflect" else "replicate"])
    return None


def _resize(c, imp, n, ins, a):
    out = imp.shape(n.output[0])
    mode, ctm = text_of(a.get("mode", "nearest")), text_of(a.get("coordinate_transformation_mode", "half_pixel"))
    if out is None or any(d is None for d in out[2:]) or len(out) not in (3, 4):
        return None
    size = [int(d) for d in out[2:]]
    dims = len(size)
    if mode == "nearest" and text_of(a.get("nearest_mode", "round_prefer_floor")) == "floor" and ctm == "asymmetric":
        return c.node(f"upsample_nearest{dims}d", [c.arg(ins[0]), size])
    if mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        name = "upsample_bilinear2d" if dims == 2 else "upsample_linear1d"
        return c.node(name, [c.arg(ins[0]), size, ctm == "align_corners"])
    return None


def _split(c, imp, n, ins, a):
    axis = int(a.get("axis", 0))
    sizes = const_ints(ins[1]) if len(ins) > 1 and ins[1] is not None else a.get("split")
    if sizes is None:
        s = imp.shape(n.input[0])
        if s is None or s[axis] is None:
            return None
        k = len(n.output)
        sizes = [-(-s[axis] // k)] * (k - 1)
        sizes.append(s[axis] - sum(sizes))
    return c.node("split_with_sizes", [c.arg(ins[0]), [int(x) for x in sizes], axis], outputs=len(n.output))


def _pool(c, imp, n, ins, a):
    """AveragePool / MaxPool over 1-3 spatial dims (e.g. the 3-d pooling torch writes for LocalResponseNorm)."""
    k = [int(v) for v in a.get("kernel_shape", [])]
    dims = len(k)
    pads = [int(v) for v in a.get("pads", [0] * 2 * dims)]
    if dims not in (1, 2, 3) or pads[:dims] != pads[dims:] or text_of(a.get("auto_pad", "NOTSET")) != "NOTSET" \
            or (len(n.output) > 1 and n.output[1] and imp.consumers[n.output[1]]):
        return None
    st = [int(v) for v in a.get("strides", [1] * dims)]
    ceil = bool(a.get("ceil_mode", 0))
    if n.op_type == "MaxPool":
        dl = [int(v) for v in a.get("dilations", [1] * dims)]
        return c.node(f"max_pool{dims}d", [c.arg(ins[0]), k, st, pads[:dims], dl, ceil])
    if a.get("dilations") and any(int(v) != 1 for v in a["dilations"]):
        return None
    return c.node(f"avg_pool{dims}d", [c.arg(ins[0]), k, st, pads[:dims], ceil, bool(a.get("count_include_pad", 0))])


def _conv(c, imp, n, ins, a):
    w = ins[1]
    if not isinstance(w, Const) or text_of(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        return None
    dims = np.asarray(w.value).ndim - 2
    pads = list(a.get("pads", [0] * 2 * dims))
    if pads[:dims] != pads[dims:] or dims not in (1, 2, 3):
        return None
    b = c.arg(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    st, dl = list(a.get("strides", [1] * dims)), list(a.get("dilations", [1] * dims))
    g = int(a.get("group", 1))
    if n.op_type == "Conv":
        return c.node(f"conv{dims}d", [c.arg(ins[0]), c.arg(w), b, st, pads[:dims], dl, g])
    if "output_shape" in a:
        return None
    op = list(a.get("output_padding", [0] * dims))
    name = f"conv_transpose{dims}d"
    return c.node(name, [c.arg(ins[0]), c.arg(w), b, st, pads[:dims], op, g, dl])


__all__ = ["generic", "REFUSED", "NO_TORCH", "Call"]
