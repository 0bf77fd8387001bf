"""Element-wise arithmetic and tensor sources: Sub, Div, Pow, Maximum, Minimum, MatMul, Stack (palette group
Merge); Arithmetic (a tensor and a constant) and the unary functions Sqrt, Exp, Log, Erf, Abs, Neg,
Reciprocal, Clamp (Math); Constant and Parameter (Inputs).

Two-tensor ops broadcast as Add does (:func:`builder.graph.layers.merge.broadcast_shape`: same rank, sizes equal or 1,
the batch never broadcasts). Constant and Parameter take one input that only gives the batch size (and the
device): every tensor in a graph has a batch dimension, so a class token (1, D) is repeated over the batch.
"""

from __future__ import annotations

import math
import operator

from builder.graph.layers._common import (
    _check_dim,
    _float,
    _out,
    _same_float,
    _torch,
)
from builder.graph.layers.merge import broadcast_shape, merge_cost
from builder.graph.spec import MAX_SIZE, LayerSpec, Param, ShapeError, TensorType, register

ANY = "any"  # port kind: float tensors and token ids

# ----------------------------------------------------------------------------------------- two tensors


def _binary(fn):
    def emit(e, attr, p, ins, types):
        return e.fn(fn, ins[0], ins[1])
    return emit


def _binary_shape(p, ins):
    return broadcast_shape(p, ins)


for _name, _fn, _desc, _ports in (
        ("Sub", operator.sub, "Element-wise difference input − other (sizes of 1 broadcast).", ("input", "other")),
        ("Div", operator.truediv, "Element-wise quotient input / other (sizes of 1 broadcast).", ("input", "other")),
        ("Pow", operator.pow, "Element-wise power input ** exponent (sizes of 1 broadcast; negative bases give "
                              "NaN for fractional exponents).", ("input", "exponent"))):
    register(LayerSpec(_name, "Merge", _desc, shape=_binary_shape, inputs=_ports, emit=_binary(_fn),
                       saves="none" if _name == "Sub" else "both"))


def _torch_fn(name: str):
    def emit(e, attr, p, ins, types):
        fn = getattr(_torch(), name)
        out = ins[0]
        for other in ins[1:]:
            out = e.fn(fn, out, other)
        return out
    return emit


register(LayerSpec("Maximum", "Merge", "Element-wise maximum of all inputs (sizes of 1 broadcast).",
                   shape=broadcast_shape, variadic=True, min_inputs=2, emit=_torch_fn("maximum"), cost=merge_cost))
register(LayerSpec("Minimum", "Merge", "Element-wise minimum of all inputs (sizes of 1 broadcast).",
                   shape=broadcast_shape, variadic=True, min_inputs=2, emit=_torch_fn("minimum"), cost=merge_cost))


def _matmul_shape(p, ins):
    if len(ins) != 2:
        raise ShapeError(f"MatMul multiplies two inputs; received: {len(ins)}. Fix: connect `input` and `other`")
    a, b = ins
    _float(a, "input")
    _float(b, "other")
    for port, t in (("input", a), ("other", b)):
        if len(t.shape) < 2:
            raise ShapeError(f"each input must be a matrix per sample, (B, …, n, k); received: {port} {t}. Fix: "
                             "Unsqueeze it to (1, k) or (k, 1), or use a Linear for a vector", port)
    if len(a.shape) != len(b.shape):
        raise ShapeError(f"inputs must have the same number of dimensions (the batch never broadcasts); received: "
                         f"input {a}, other {b}. Fix: Unsqueeze the smaller one", "other")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"the last size of input must equal the second-to-last of other (n×k @ k×m); received: "
                         f"input {a}, other {b} ({a.shape[-1]} vs {b.shape[-2]}). Fix: Transpose other (dim0 -2, "
                         "dim1 -1) or project one side with a Linear", "other")
    lead = []
    for j, (x, y) in enumerate(zip(a.shape[:-2], b.shape[:-2])):
        if x != y and 1 not in (x, y):
            raise ShapeError(f"the leading sizes must match or be 1; received: input {a}, other {b}, which differ in "
                             f"dim {j + 1} ({x} vs {y}). Fix: make them equal or 1", "other")
        lead.append(max(x, y))
    return TensorType((*lead, a.shape[-2], b.shape[-1]))


def _matmul_macs(p, ins, outs) -> int:
    return _out(outs).numel * ins[0].shape[-1]


register(LayerSpec(
    "MatMul", "Merge", "Batched matrix product input @ other: (B, …, n, k) @ (B, …, k, m) → (B, …, n, m), "
    "e.g. attention scores Q·Kᵀ.",
    shape=_matmul_shape, inputs=("input", "other"), macs=_matmul_macs,
    emit=lambda e, attr, p, ins, types: e.fn(_torch().matmul, ins[0], ins[1])))


def _stack_shape(p, ins):
    if not ins:
        raise ShapeError("Stack needs inputs; received: none. Fix: connect at least two")
    for i, t in enumerate(ins):
        _float(t, str(i))
        if t.shape != ins[0].shape:
            raise ShapeError(f"all inputs must have the same shape; received: input 0: {ins[0]}, input {i}: {t}. "
                             "Fix: make the branches produce the same shape (or use Concat to join along a dimension)",
                             str(i))
    d = _check_dim(p["dim"], len(ins[0].shape) + 1)
    shape = ins[0].shape
    return TensorType((*shape[:d], len(ins), *shape[d:]))


register(LayerSpec(
    "Stack", "Merge", "Stacks inputs of one shape along a new dimension (ordered by the edges' target_port 0, 1, ...).",
    params=[Param("dim", "int", 1, "Position of the new dimension in the output (0 is the batch).", min=-8, max=8)],
    shape=_stack_shape, variadic=True, min_inputs=2,
    emit=lambda e, attr, p, ins, types: e.fn(_torch().stack, list(ins), dim=p["dim"]), saves="none"))

# ----------------------------------------------------------------------------------------- with a constant

_ARITH = {"add": ("x + c", operator.add, False), "sub": ("x - c", operator.sub, False),
          "mul": ("x * c", operator.mul, False), "div": ("x / c", operator.truediv, False),
          "pow": ("x ** c", operator.pow, False), "rsub": ("c - x", operator.sub, True),
          "rdiv": ("c / x", operator.truediv, True)}


def _arith_check(p: dict) -> list[str]:
    if p["op"] == "div" and p["constant"] == 0:
        return ["dividing by 0 gives inf or NaN; received: op='div', constant=0. Fix: use a non-zero constant"]
    return []


def _arith_emit(e, attr, p, ins, types):
    _, fn, reverse = _ARITH[p["op"]]
    c = p["constant"]
    return e.fn(fn, c, ins[0]) if reverse else e.fn(fn, ins[0], c)


register(LayerSpec(
    "Arithmetic", "Math", "A tensor and a constant, element-wise: " + ", ".join(
        f"{k} {v[0]}" for k, v in _ARITH.items()) + " (e.g. scale by 0.5, add 1).",
    params=[Param("op", "choice", "mul", "The operation: " + ", ".join(f"{k}: {v[0]}" for k, v in _ARITH.items()) + ".",
                  choices=tuple(_ARITH)),
            Param("constant", "float", 1.0, "The constant c.", min=-1e6, max=1e6)],
    shape=_same_float, check=_arith_check, emit=_arith_emit))

# ----------------------------------------------------------------------------------------- unary functions

_UNARY = [("Sqrt", "sqrt", "Square root (NaN for negative inputs)."),
          ("Exp", "exp", "e^x."),
          ("Log", "log", "Natural logarithm (−inf at 0, NaN for negative inputs)."),
          ("Erf", "erf", "Gauss error function."),
          ("Abs", "abs", "|x|."),
          ("Neg", "neg", "−x."),
          ("Reciprocal", "reciprocal", "1 / x (inf at 0).")]


def _method(name: str):
    return lambda e, attr, p, ins, types: e.method(name, ins[0])


for _name, _m, _desc in _UNARY:
    register(LayerSpec(_name, "Math", _desc, shape=_same_float, emit=_method(_m),
                       saves="output" if _m in ("sqrt", "exp", "reciprocal") else "none" if _m == "neg" else "input"))


def _clamp_check(p: dict) -> list[str]:
    if p["min"] is None and p["max"] is None:
        return ["Clamp needs a bound; received: min=None, max=None. Fix: set min, max or both"]
    if p["min"] is not None and p["max"] is not None and p["min"] > p["max"]:
        return [f"`min` must not exceed `max`; received: min={p['min']:g}, max={p['max']:g}. Fix: swap them"]
    return []


register(LayerSpec(
    "Clamp", "Math", "Limits values to [min, max] (either bound may be empty).",
    params=[Param("min", "float", 0.0, "Lower bound (empty: none).", min=-1e6, max=1e6, nullable=True),
            Param("max", "float", 1.0, "Upper bound (empty: none).", min=-1e6, max=1e6, nullable=True)],
    shape=_same_float, check=_clamp_check, emit=lambda e, attr, p, ins, types: e.method("clamp", ins[0], p["min"], p["max"])))

# ----------------------------------------------------------------------------------------- Constant, Parameter

_SOURCE_SHAPE = Param("shape", "int_list", [1, 8], "Size of the tensor without the batch dimension, e.g. [1, 64] "
                      "for a class token.", min=1, max=MAX_SIZE)
_MAX_VALUES = 10_000_000


def _source_check(p: dict) -> list[str]:
    if math.prod(p["shape"]) > _MAX_VALUES:
        return [f"the tensor is too large ({math.prod(p['shape']):,} values); received: shape={list(p['shape'])}. "
                f"Fix: use at most {_MAX_VALUES:,} values"]
    return []


def _source_shape(p, ins):
    return TensorType(tuple(p["shape"]))


def _batch_of(e, x):
    return e.method("size", x, 0, as_="batch")


def _constant_emit(e, attr, p, ins, types):
    x = ins[0]
    return e.method("new_full", x, (_batch_of(e, x), *p["shape"]), p["value"], dtype=_torch().float32)


register(LayerSpec(
    "Constant", "Inputs", "A fixed tensor of `shape` filled with `value`, repeated over the batch of its input "
    "(the input only gives the batch size).",
    params=[_SOURCE_SHAPE, Param("value", "float", 0.0, "The value of every element.", min=-1e6, max=1e6)],
    shape=_source_shape, check=_source_check, inputs=("like",), input_kind=ANY, emit=_constant_emit, saves="none"))


def _param_ctor(p, ins):
    """The table lives in an ``nn.Embedding(1, numel)`` (its weight is the parameter, read as ``shape``): a
    torch.nn class, so compile, counts, the ``.py`` export and state-dict keys need nothing new. ``padding_idx=0``
    makes torch initialise the one row with zeros."""
    kw = {"num_embeddings": 1, "embedding_dim": math.prod(p["shape"])}
    if p["init"] == "zeros":
        kw["padding_idx"] = 0
    return "Embedding", kw


def _param_emit(e, attr, p, ins, types):
    w = e.method("view", e.attr(f"{attr}.weight", as_="weight"), 1, *p["shape"], as_="table")
    return e.method("expand", w, _batch_of(e, ins[0]), *p["shape"])


register(LayerSpec(
    "Parameter", "Inputs", "A learned tensor of `shape` (a class token, a position table), the same for every "
    "sample of the batch of its input (the input only gives the batch size). Counted as model parameters.",
    params=[_SOURCE_SHAPE, Param("init", "choice", "normal", "Initial values: standard normal or zeros.",
                                 choices=("normal", "zeros"))],
    shape=_source_shape, check=_source_check, inputs=("like",), input_kind=ANY, ctor=_param_ctor, emit=_param_emit,
    strides="any", saves="none"))
