"""Constant folding for the ONNX importer: shape arithmetic (Shape/Gather/Unsqueeze/Concat/Constant/Cast/Slice
chains) evaluated on :class:`~builder.interchange.onnx_values.Const` and symbolic batch sizes, never
materialising more than ``MAX_FOLD_ELEMENTS`` values."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
from numpy.lib.array_utils import byte_bounds

from builder.interchange.errors import ModelImportError
from builder.interchange.onnx_read import node_attributes, to_array
from builder.interchange.onnx_values import (
    MAX_FOLD_ELEMENTS,
    MAX_SHAPE_ITEMS,
    Const,
    ConstSeq,
    Sym,
    SymArr,
    T,
    shape_items,
)


class NoFold(Exception):
    pass


def as_f32(v) -> float:
    """A float32 attribute as the decimal it was written as (1e-12 stays 1e-12, not 9.99999996e-13)."""
    return float(f"{float(v):.7g}")


def text_of(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def const_array(items: list):
    if any(isinstance(v, Sym) for v in items):
        return SymArr([v if isinstance(v, Sym) else int(v) for v in items])
    return Const(np.array(items, dtype=np.int64))


def _as_list(v) -> list:
    if isinstance(v, SymArr):
        return list(v.items)
    if isinstance(v, Sym):
        return [v]
    return [int(x) for x in v.value.reshape(-1)]


def _scalar(v):
    if isinstance(v, Sym):
        return v
    if isinstance(v, SymArr) and len(v.items) == 1:
        return v.items[0]
    if isinstance(v, Const) and v.value.size == 1:
        return v.value.reshape(()).item()
    raise NoFold


def slice_rows(ins, src: np.ndarray, res: np.ndarray) -> int | None:
    return int(res.shape[0]) if res.ndim == src.ndim and res.shape[1:] == src.shape[1:] else None


def _items(v) -> int:
    """How many items ``v`` holds (a symbolic shape's, a constant's), nothing built."""
    return len(v.items) if isinstance(v, SymArr) else 1 if isinstance(v, Sym) else v.value.size if isinstance(v, Const) \
        else 0


def _listed(op: str, ins: list) -> int:
    """How many items the Python list folding symbolic ``op`` builds holds (0: it builds none, e.g. a Gather of a
    weight table by the batch, which is not folded and stays an op)."""
    if op == "Concat":
        return sum(_items(v) for v in ins)
    if op == "Gather" and len(ins) == 2 and isinstance(ins[0], SymArr) and isinstance(ins[1], Const):
        return int(ins[1].value.size)
    if op in ("Equal", "Where") and all(isinstance(v, SymArr | Const) for v in ins):
        return sum(_items(v) for v in ins)
    return 0


def fold_op(op: str, ins: list, a: dict):
    """Numpy/symbolic evaluation of shape-arithmetic ops; None when ``op`` is not foldable here.

    A symbolic shape is a Python list: its Concat, Gather, Where or Equal is refused before the list is built when
    its inputs hold more than :data:`MAX_SHAPE_ITEMS` items (a Concat of a list with itself doubles it: 20 such
    nodes, 300 bytes of file, were 2^20 times the list).

    >>> from builder.interchange.onnx_values import Sym
    >>> fold_op("Concat", [SymArr([Sym(1)] * 600)] * 2, {})
    Traceback (most recent call last):
    builder.interchange.errors.ModelImportError: Concat of a shape would hold 1,200 items, more than 1,024; received: \
a computed shape that large. Fix: import models whose shape arithmetic stays below 1,024 items
    """
    sym = any(isinstance(v, SymArr | Sym) for v in ins)
    if sym and (n := _listed(op, ins)) > MAX_SHAPE_ITEMS:
        raise ModelImportError(f"{op} of a shape would hold {n:,} items, more than {MAX_SHAPE_ITEMS:,}; received: a "
                               f"computed shape that large. Fix: import models whose shape arithmetic stays below "
                               f"{MAX_SHAPE_ITEMS:,} items")
    if op in ("Identity", "Cast"):
        v = ins[0]
        if isinstance(v, Const) and op == "Cast":
            from onnx import helper  # lazy: heavy (onnx)
            return Const(v.value.astype(helper.tensor_dtype_to_np_dtype(a["to"]), copy=False))  # same type: itself
        return v
    if op == "Unsqueeze":
        axes = a.get("axes") or _as_list(ins[1])
        if sym:
            if isinstance(ins[0], Sym) and axes in ([0], [-1]):
                return SymArr([ins[0]])
            raise NoFold
        return Const(np.expand_dims(ins[0].value, tuple(int(x) for x in axes)))
    if op == "Squeeze":
        if sym:
            if isinstance(ins[0], SymArr) and len(ins[0].items) == 1:
                return ins[0].items[0]
            raise NoFold
        axes = a.get("axes") or (_as_list(ins[1]) if len(ins) > 1 and ins[1] is not None else None)
        return Const(np.squeeze(ins[0].value, axis=tuple(axes) if axes else None))
    if op == "Concat":
        if sym or all(v.value.ndim == 1 and v.value.dtype.kind in "iu" for v in ins):  # a shape, not weights
            items = [x for v in ins for x in _as_list(v)]
            return const_array(items)
        return Const(np.concatenate([v.value for v in ins], axis=int(a.get("axis", 0))))
    if op == "Gather":
        data, idx = ins
        if isinstance(data, SymArr):
            if not isinstance(idx, Const):
                raise NoFold
            picked = [data.items[int(i)] for i in idx.value.reshape(-1)]
            return picked[0] if idx.value.ndim == 0 and isinstance(picked[0], Sym) else \
                (Const(np.array(picked[0], dtype=np.int64)) if idx.value.ndim == 0 else const_array(picked))
        if sym:
            raise NoFold
        return Const(np.take(data.value, idx.value, axis=int(a.get("axis", 0))))
    if op == "Slice":
        data = ins[0]
        starts, ends = _as_list(ins[1]), _as_list(ins[2])
        axes = _as_list(ins[3]) if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
        steps = _as_list(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        if any(isinstance(v, Sym) for v in starts + ends):
            raise NoFold
        if isinstance(data, SymArr):
            if axes != [0]:
                raise NoFold
            return const_array(data.items[slice(starts[0], ends[0], steps[0])])
        sl = [slice(None)] * data.value.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            sl[ax] = slice(s, e, st)
        return Const(data.value[tuple(sl)])
    if op in ("Mul", "Add", "Sub", "Div"):
        if sym:
            x, y = _scalar(ins[0]), _scalar(ins[1])
            if op == "Mul" and isinstance(x, Sym) and isinstance(y, int | float) and float(y).is_integer():
                return Sym(x.coef * int(y))
            if op == "Mul" and isinstance(y, Sym) and isinstance(x, int | float) and float(x).is_integer():
                return Sym(y.coef * int(x))
            if op == "Div" and isinstance(x, Sym) and isinstance(y, int) and y and x.coef % y == 0:
                return Sym(x.coef // y)
            raise NoFold
        x, y = ins[0].value, ins[1].value  # its size was checked before (fold_size: the broadcast's)
        f = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract}.get(op)
        if f is not None:
            return Const(f(x, y).astype(np.result_type(x, y)))
        return Const((x // y) if np.issubdtype(x.dtype, np.integer) else (x / y))
    if sym:
        if op == "Reshape" and isinstance(ins[0], Sym | SymArr):
            items = _as_list(ins[0])
            return SymArr(items) if len(items) == 1 else ins[0]
        if op == "Expand" and isinstance(ins[0], Const) and isinstance(ins[1], SymArr):
            items, v = ins[1].items, ins[0].value  # a constant repeated over the batch: kept with batch 1
            if len(items) == v.ndim and v.ndim and v.shape[0] == 1 and isinstance(items[0], Sym) and \
                    all(isinstance(d, int) and d in (1, -1, v.shape[k]) for k, d in enumerate(items) if k):
                return ins[0]
            raise NoFold
        if op == "Shape" and isinstance(ins[0], SymArr):
            return Const(np.array([len(ins[0].items)], dtype=np.int64))
        if op == "Equal" and all(isinstance(v, SymArr | Const) for v in ins):  # expand(x.shape[0], -1, -1)
            x, y = (_as_list(v) for v in ins)
            if len(x) != len(y):
                raise NoFold
            return Const(np.array([p == q for p, q in zip(x, y)]))
        if op == "Where" and isinstance(ins[0], Const) and all(isinstance(v, SymArr | Const) for v in ins[1:]):
            c, x, y = ins[0].value.reshape(-1), _as_list(ins[1]), _as_list(ins[2])
            if not (len(c) == len(x) == len(y)):
                raise NoFold
            return const_array([p if k else q for k, p, q in zip(c, x, y)])
        raise NoFold
    if op == "Reshape":
        shape = [int(v) for v in ins[1].value.reshape(-1)]
        shape = [ins[0].value.shape[i] if v == 0 and not a.get("allowzero", 0) else v for i, v in enumerate(shape)]
        return Const(ins[0].value.reshape(shape))
    if op == "Transpose":
        return Const(np.transpose(ins[0].value, a.get("perm")))
    if op == "Trilu" and not sym and ins[0].value.ndim >= 2:  # a causal mask of a fixed length: no larger than its input
        k = int(ins[1].value.reshape(-1)[0]) if len(ins) > 1 and ins[1] is not None else 0
        return Const((np.triu if int(a.get("upper", 1)) else np.tril)(ins[0].value, k))
    if op in ("ConstantOfShape", "Expand", "Range", "Equal", "Where", "Neg", "Sqrt", "Pow"):
        if op == "ConstantOfShape":
            shape = [int(v) for v in ins[0].value.reshape(-1)]
            if math.prod(shape) > MAX_FOLD_ELEMENTS:
                raise ModelImportError(f"ConstantOfShape would allocate {math.prod(shape):,} values; received: "
                                       f"shape={shape}. Fix: import a smaller model")
            fill = to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            return Const(np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype))
        if op == "Expand":
            shape = [int(v) for v in ins[1].value.reshape(-1)]
            if math.prod(shape) > MAX_FOLD_ELEMENTS:
                raise NoFold
            return Const(ins[0].value * np.ones(shape, dtype=ins[0].value.dtype))
        if op == "Range":
            s, e, d = (v.value.item() for v in ins)
            if d == 0 or abs((e - s) / d) > MAX_FOLD_ELEMENTS:
                raise NoFold
            return Const(np.arange(s, e, d, dtype=ins[0].value.dtype))
        if op == "Equal":
            return Const(np.equal(ins[0].value, ins[1].value))
        if op == "Where":
            return Const(np.where(ins[0].value, ins[1].value, ins[2].value))
        if op == "Neg":
            return Const(-ins[0].value)
        if op == "Sqrt":
            return Const(np.sqrt(ins[0].value))
        if op == "Pow":
            return Const(np.power(ins[0].value, ins[1].value))
    if op in _ELEMENTWISE and all(isinstance(v, Const) and (v.src is None or v.value.dtype.kind != "f" or not v.value.ndim)
                                  for v in ins if v is not None):
        # index arithmetic on computed constants (interpolation and adaptive pooling windows); a learned
        # initializer is never folded (it would stop being trainable)
        vals = [None if v is None else v.value for v in ins]
        if op == "Clip":
            lo = vals[1] if len(vals) > 1 and vals[1] is not None else a.get("min")
            hi = vals[2] if len(vals) > 2 and vals[2] is not None else a.get("max")
            return Const(np.asarray(np.clip(vals[0], lo, hi), dtype=vals[0].dtype))
        if op in ("Max", "Min"):  # variadic
            return Const(np.asarray(functools.reduce(_ELEMENTWISE[op], vals)))
        return Const(np.asarray(_ELEMENTWISE[op](*vals)))
    return None


def fold_sequence(op: str, ins: list, a: dict) -> ConstSeq | Const | None:
    """SplitToSequence of a constant by constant sizes (no more values than it holds) and SequenceAt of the
    result; None for other ops and inputs.

    >>> seq = fold_sequence("SplitToSequence", [Const(np.arange(6)), Const(np.array([2, 4]))], {})
    >>> fold_sequence("SequenceAt", [seq, Const(np.array(1))], {}).value.tolist()
    [2, 3, 4, 5]
    >>> [p.value.tolist() for p in fold_sequence("SplitToSequence", [Const(np.arange(5)), Const(np.array(2))], {}).parts]
    [[0, 1], [2, 3], [4]]
    """
    if op == "SplitToSequence" and len(ins) == 2 and isinstance(ins[0], Const) and isinstance(ins[1], Const) \
            and ins[1].value.ndim <= 1 and ins[0].value.ndim and a.get("keepdims", 1):
        v, axis = ins[0].value, int(a.get("axis", 0)) % ins[0].value.ndim
        sizes = [int(x) for x in ins[1].value.reshape(-1)]
        if ins[1].value.ndim == 0 and sizes[0] > 0:  # torch.chunk: pieces of that size, the last smaller
            sizes = [min(sizes[0], v.shape[axis] - i) for i in range(0, v.shape[axis], sizes[0])]
        if all(x >= 0 for x in sizes) and sum(sizes) == v.shape[axis]:
            return ConstSeq(tuple(Const(p) for p in np.split(v, np.cumsum(sizes)[:-1], axis=axis)))
    if op == "SequenceAt" and len(ins) == 2 and isinstance(ins[0], ConstSeq) and isinstance(ins[1], Const) \
            and ins[1].value.size == 1 and -len(ins[0].parts) <= int(ins[1].value.reshape(-1)[0]) < len(ins[0].parts):
        return ins[0].parts[int(ins[1].value.reshape(-1)[0])]
    return None


def batch_shape(imp, name: str, depth: int = 8) -> list | None:
    """The shape of a tensor with its batch as ``Sym(1)``: a mapped tensor's (batch first, every other size known),
    a Transpose's of one (``x.transpose(0, 1)`` inside a module the importer maps as a whole, where the batch
    is no longer first), or a Reshape's to a shape whose every item is known (the heads' split inside attention,
    whose sizes SDPA's ``is_causal`` mask is made from); None otherwise."""
    n = imp.producer.get(name)
    if n is not None and n.op_type == "Reshape" and len(n.input) > 1:
        to = imp.value(n.input[1])
        items = shape_items(to) if isinstance(to, Const | SymArr) else None
        zero_kept = node_attributes(n).get("allowzero", 0)  # else 0 copies the input's size
        if items is not None and all(isinstance(x, Sym) or x > 0 or x == 0 and zero_kept for x in items):
            return items
    s = imp.shape(name)
    if s is None:
        return None
    if isinstance(imp.value(name), T):
        return [Sym(1), *s[1:]] if all(d is not None for d in s[1:]) else None
    perm = list(node_attributes(n).get("perm", [])) if n is not None and n.op_type == "Transpose" else []
    src = batch_shape(imp, n.input[0], depth - 1) if perm and depth else None
    if src is None or len(src) != len(s) or sorted(perm) != list(range(len(s))):
        return stated_shape(s, imp.vparam.get(name), imp.batch_param)
    return [src[p] for p in perm]


def stated_shape(dims: list | None, params: list | None, batch: str | None) -> list | None:
    """A shape as the exporter stated it (value_info), each size an int or a multiple of the batch (``batch``,
    ``2*batch``: a :class:`Sym`), as the optimised dynamo export states the heads' split it reshapes to ``-1``;
    None when a size is unknown or another symbol.

    >>> stated_shape([None, 2, 5], [None, None, None], "batch"), stated_shape([None, 4], ["2*batch", None], "batch")
    (None, [Sym(coef=2), 4])
    """
    if dims is None or params is None or not batch or len(params) != len(dims):
        return None
    out: list = []
    for d, p in zip(dims, params, strict=True):
        m = None if d is not None else re.fullmatch(rf"(?:(\d+)\*)?{re.escape(batch)}", p or "")
        if d is None and m is None:
            return None
        out.append(int(d) if d is not None else Sym(int(m.group(1) or 1)))
    return out


_BROADCAST = {"Mul", "Add", "Sub", "Div", "Equal", "Where", "Pow", "Neg", "Sqrt"}


def distinct_values(arrays: list[np.ndarray]) -> int:
    """How many values ``arrays`` hold between them, counting memory they share once: views of one weight (its
    reshapes, its slices, a broadcast) count by the span of memory they cover, so a Concat of many views of one
    value is no larger than that value, while q, k and v weights (or slices) side by side are their sum.

    >>> w = np.zeros((4, 6), np.float32)
    >>> distinct_values([w, w.reshape(6, 4), w.T]), distinct_values([w[:2], w[2:]]), distinct_values([w, w.copy()])
    (24, 24, 48)
    >>> distinct_values([np.broadcast_to(w[0], (100, 6))] * 3)
    6
    """
    spans = sorted((*byte_bounds(x), x.nbytes) for x in arrays if x.size)
    total, lo, hi, held = 0, None, None, 0
    for start, end, nbytes in spans:
        if hi is not None and start < hi:  # overlaps the group so far: one weight's memory
            hi, held = max(hi, end), held + nbytes
            continue
        if hi is not None:
            total += min(held, hi - lo)
        lo, hi, held = start, end, nbytes
    if hi is not None:
        total += min(held, hi - lo)
    itemsize = max((x.itemsize for x in arrays), default=1)
    return total // itemsize


def fold_size(op: str, ins: list, a: dict) -> int | None:
    """How many values folding ``op`` would materialise, estimated from its inputs' shapes before anything is
    computed (None: not a constant result, or no more than its largest input). Broadcasting (``Equal`` of a
    (30000, 1) and a (1, 30000) constant: 9 x 10^8), ``Gather``, ``Concat``, ``Expand`` and ``ConstantOfShape`` can
    outgrow their inputs by far.

    >>> fold_size("Equal", [Const(np.zeros((3000, 1))), Const(np.zeros((1, 3000)))], {})
    9000000
    """
    if not ins or not all(isinstance(v, Const) for v in ins if v is not None):
        return None
    shapes = [tuple(int(d) for d in v.value.shape) for v in ins if v is not None]
    if op in _BROADCAST or op in _ELEMENTWISE:
        out: list[int] = []
        for sh in shapes:  # numpy's broadcasting rule on Python integers (no overflow, nothing allocated)
            out = [1] * (len(sh) - len(out)) + out
            sh = (1,) * (len(out) - len(sh)) + sh
            out = [max(x, y) if min(x, y) == 1 else (x if x == y else max(x, y)) for x, y in zip(out, sh)]
        return math.prod(out)
    if op == "Concat":
        return sum(math.prod(sh) for sh in shapes)
    if op == "Gather" and len(shapes) == 2 and shapes[0]:
        axis = int(a.get("axis", 0)) % len(shapes[0])
        return math.prod(shapes[0]) // max(shapes[0][axis], 1) * math.prod(shapes[1])
    if op == "Expand" and len(ins) == 2:
        target = [int(v) for v in ins[1].value.reshape(-1)[:64]]
        data = shapes[0]
        n = max(len(target), len(data))
        t = [1] * (n - len(target)) + target
        d = [1] * (n - len(data)) + list(data)
        return math.prod(max(abs(x), y) for x, y in zip(t, d))
    if op == "ConstantOfShape":
        return math.prod(abs(int(v)) for v in ins[0].value.reshape(-1)[:64])
    return None


_ELEMENTWISE = {"Clip": None, "Abs": np.abs, "Sign": np.sign, "Floor": np.floor, "Ceil": np.ceil,
                "Max": np.maximum, "Min": np.minimum, "Less": np.less, "Greater": np.greater,
                "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal, "Not": np.logical_not}


__all__ = ["fold_size", "distinct_values", "fold_sequence", "batch_shape"]  # used by builder.interchange.onnx_import
