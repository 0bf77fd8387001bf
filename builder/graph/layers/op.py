"""The generic operator node ``Op``: one ATen operator from a closed allow-list, for what has no LayerLab layer.

An imported model keeps every operator: those with a layer become that layer, any other allow-listed ATen
operator (``aten.erf``, ``aten.hardswish``, ``aten.where`` ...) becomes an ``Op`` node that carries

* ``op``: the operator, ``aten.<name>`` or ``aten.<name>.<overload>``, looked up in
  :data:`builder.graph.op_allow.ALLOWED_OPS` (the one allow-list; never ``eval``, never an import);
* ``args`` / ``kwargs``: the call as JSON: ``{"t": i}`` is tensor input ``i`` (edges into ports ``0``, ``1``...),
  ``{"w": name}`` a stored constant (``{"w": name, "dtype": "bool"}``: a bool one, kept as 0/1 among the float32
  buffers), ``{"b": k}`` ``k`` × the batch size (first in a shape only:
  :mod:`builder.graph.layers.op_batch`), ``{"tensor": [...], "dtype": ...,
  "shape": [...]}`` a small inline constant, ``{"dtype": "float32"}`` a dtype, anything else a literal;
* ``weights`` / ``buffers``: the stored constants as JSON ``{name: shape}`` (learned parameters and fixed
  buffers of the node; their values are the node's weights, like any layer's);
* ``outputs``: how many tensors the operator returns (ports ``out``, ``out1``, ...).

The shape rule runs the operator on torch's ``meta`` device (nothing allocated) at two batch sizes and checks
that the result keeps the batch first. Compiled, the node is one ``torch.ops.aten.<name>(...)`` call in the fx
code, so the ``.py`` and ONNX exports need nothing special. Example::

    >>> from builder.graph.spec import TensorType
    >>> OP.shape({**OP.defaults(), "op": "aten.erf"}, [TensorType((3, 4))])
    TensorType(shape=(3, 4), kind='tensor', vocab=None)
"""

from __future__ import annotations

import json
import math
import operator
from typing import Any

from builder.graph.layers._common import _torch
from builder.graph.layers.conv import empty_pool_window
from builder.graph.layers.norm import EPS
from builder.graph.layers.op_batch import batch_problem
from builder.graph.layers.op_call import (  # the call's reading and binding; re-exported: DTYPES, resolve_op
    DTYPES,
    MAX_OUTPUTS,
    OUTPUT_PORTS,
    const_ref,
    consts,
    dtype_of,
    parse_call,
    resolve_call,
    resolve_op,
    walk_call,
)
from builder.graph.layers.op_meta import (  # the call on meta: outputs, what autograd saves
    run_call,
    run_call_any,
    saved_cost,
    saved_sizes,
)
from builder.graph.layers.op_onnx import onnx_lint, pool_args
from builder.graph.layers.tensor import ANY
from builder.graph.spec import (
    TOKENS,
    LayerSpec,
    Param,
    ShapeError,
    TensorType,
    float_problem,
    register,
    short_repr,
)

#: Operators whose CPU kernels take integer (and bool) tensors: views, indexing, comparisons, integer arithmetic,
#: reductions. Meta kernels do not check dtypes (``aten.hardswish`` of int64 runs on meta, not on the CPU), so token
#: ids and other integers reach only these; every other operator computes on float values.
_INTEGER_OPS = """view _unsafe_view reshape permute flatten unflatten transpose t unsqueeze squeeze select
slice narrow cat stack split split_with_sizes chunk unbind expand expand_as repeat contiguous clone alias detach to
_to_copy type_as flip roll constant_pad_nd index_select gather index embedding one_hot amax amin max min argmax argmin
sum prod cumsum add sub rsub mul neg abs sign clamp clamp_min clamp_max maximum minimum where eq ne lt le gt ge
logical_not logical_and logical_or bitwise_not masked_fill zeros_like ones_like full_like new_zeros new_ones new_full
lift_fresh_copy square div floor ceil round pow exp log sqrt rsqrt reciprocal sigmoid tanh relu"""
INTEGER_OPS = frozenset(_INTEGER_OPS.split())


#: Operators that refuse a bool operand on the CPU or in their derivative, where meta kernels take it (make fuzz,
#: seed 424242: ``aten.pow`` of a bool exponent failed in backward; ``sub``/``rsub`` refuse bools, ``lerp`` a bool
#: weight).
BOOL_REFUSED_OPS = frozenset({"pow", "sub", "rsub", "lerp"})
#: Operators whose CPU kernels take only integer or bool tensors (meta kernels take floats too).
INTEGER_ONLY_OPS = frozenset({"bitwise_not"})
#: Value ranges the CPU kernels check and the meta kernels do not: (operators, argument) -> (low, high).
_RANGES = {("dropout", "native_dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"): ("p", 0.0, 1.0)}
_NONZERO = {("celu", "alpha")}  # divisors the CPU kernels refuse as 0, or as too small for 1/x to fit float32
_F32_TINY = 1 / 3.4028234663852886e38
#: Index arguments checked against the sizes they index (meta kernels never see index values):
#: operator -> (indexed tensor, dimension argument or a fixed dimension, index argument, negative indices allowed).
_INDEXING = {"index_select": ("self", "dim", "index", False), "gather": ("self", "dim", "index", False),
             "embedding": ("weight", 0, "indices", False)}


def _check_integer_inputs(p: dict, ins: list[TensorType]) -> None:
    name = str(p.get("op")).split(".")[1] if str(p.get("op")).count(".") else ""
    for i, t in enumerate(ins):
        if t.kind == TOKENS and name not in INTEGER_OPS:
            raise ShapeError(f"{p['op']} computes on float values; received: integers (token ids) {t} on input {i}. "
                             "Fix: cast them first (an Op aten.to with {\"dtype\": \"float32\"}, or a Cast "
                             "layer), or feed token ids through an Embedding", str(i))
        if t.kind != TOKENS and name in INTEGER_ONLY_OPS:
            raise ShapeError(f"{p['op']} takes integer or bool tensors only; received: float values {t} on input "
                             f"{i}. Fix: use it on token ids or comparison results", str(i))


def _check_constant_dtypes(p: dict, name: str, bound: dict) -> None:
    """Each inline constant's dtype against the operator ``name``, looked at once and named by its argument.

    Constants nested in lists count (``aten.einsum``'s ``tensors``). The first rule of three (in this order) that a
    constant breaks is the problem: a bool constant into :data:`BOOL_REFUSED_OPS` (``aten.pow``'s derivative
    subtracts 1 from its exponent); outside :data:`INTEGER_OPS`, an integer constant (``aten._prelu_kernel`` of an
    int64 weight: "Found dtype Long"), or a bool one other than a mask (``aten.matmul`` of one: "addmv ... got Bool,
    Float").

    >>> _check_constant_dtypes({"op": "aten.einsum"}, "einsum",
    ...                        {"tensors": [{"t": 0}, {"tensor": [True], "dtype": "bool", "shape": [1]}]})
    Traceback (most recent call last):
    ...
    builder.graph.spec.ShapeError: aten.einsum computes on float values; received: a bool constant as `tensors`. \
Fix: write the constant as float32 (bool constants are masks: attn_mask, mask)
    """
    found: list[tuple[str, str]] = []  # (argument, dtype) of each inline constant, in argument order
    for arg, v in bound.items():
        walk_call(v, lambda d, arg=arg: found.append((arg, d["dtype"])) if "tensor" in d else None)
    floats = name not in INTEGER_OPS  # the operator's CPU kernel computes on float values only
    problems = []  # (rule, message): the first rule listed wins, then the first argument
    for arg, dtype in found:
        if dtype == "bool" and name in BOOL_REFUSED_OPS:
            problems.append((0, f"{p['op']} cannot compute with bool values (its CPU kernel or its derivative "
                                f"subtracts from them); received: a bool constant as `{arg}`. Fix: write the "
                                "constant as float32"))
        elif floats and dtype != "bool" and not dtype_of(dtype).is_floating_point:
            problems.append((1, f"{p['op']} computes on float values; received: an inline constant of dtype {dtype} "
                                f"as `{arg}`. Fix: write the constant as float32"))
        elif floats and dtype == "bool" and "mask" not in arg:  # bool constants are masks (attn_mask, mask) only
            problems.append((2, f"{p['op']} computes on float values; received: a bool constant as `{arg}`. Fix: "
                                "write the constant as float32 (bool constants are masks: attn_mask, mask)"))
    if problems:
        raise ShapeError(min(problems, key=lambda r: r[0])[1])


def _shape_of(v: Any, ins: list[TensorType], consts_: dict) -> tuple[int, ...] | None:
    """The shape (batch as -1) of a tensor argument, None for anything else."""
    if isinstance(v, dict) and set(v) == {"t"}:
        return (-1, *ins[v["t"]].shape)
    if const_ref(v):
        return tuple(consts_[v["w"]])
    if isinstance(v, dict) and "tensor" in v:
        return tuple(v["shape"])
    return None


def _index_range(v: Any, ins: list[TensorType]) -> tuple[int, int] | None:
    """(lowest, highest) value an index argument can hold; None when unknown."""
    if isinstance(v, dict) and "tensor" in v:  # an index constant is int64 or int32 (a float or bool one is no index)
        if str(v.get("dtype") or "int64") not in ("int64", "int32", "long", "int") or \
                not all(isinstance(x, int) and not isinstance(x, bool) for x in v["tensor"]):
            return None
        vals = [int(x) for x in v["tensor"]]
        return (min(vals), max(vals)) if vals else (0, 0)
    if isinstance(v, dict) and set(v) == {"t"} and ins[v["t"]].kind == TOKENS and ins[v["t"]].vocab:
        return 0, ins[v["t"]].vocab - 1
    return None


#: Internal operators whose meta kernels accept calls their CPU kernels refuse in ways no argument check covers
#: (found by the graph fuzzer); their layers (MultiheadAttention) are the way to use them.
OP_NODE_REFUSED = frozenset({"_native_multi_head_attention", "_scaled_dot_product_flash_attention_for_cpu"})
#: Factory operators whose result is uninitialised memory (whatever it held: another value on every run, in
#: training, Explain and the exported ``.py``); an Op node has no in-place operator that would fill it.
UNINITIALISED_OPS = frozenset({"empty", "new_empty", "empty_like", "empty_strided"})
_DROPOUTS = ("dropout", "native_dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout")
#: Arguments of other operators that drop values at random while their ``train`` is not false (attention's
#: ``dropout_p`` always): an Op node has no training mode, so they must be 0.
_DROP_ARGS = {"scaled_dot_product_attention": "dropout_p", "lstm": "dropout", "gru": "dropout",
              "rnn_tanh": "dropout", "rnn_relu": "dropout"}
#: Arguments asking for sparse gradients, which Adam and AdamW refuse at their first step ("Adam does not support
#: sparse gradients"); an Op's gradients are dense, as every layer's.
_SPARSE_ARGS = ("sparse", "sparse_grad")
#: Operators that write a number into their result, and its argument: the number must fit the result's dtype (the
#: CPU kernel refuses 1e30 into int64, "value cannot be converted to type int64_t without overflow"; meta does not).
_FILLS = {"full": "fill_value", "full_like": "fill_value", "new_full": "fill_value", "masked_fill": "value"}


def _integer_tensor(v: Any, ins: list[TensorType]) -> bool:
    """Whether a tensor argument holds integers or bools (token ids, an integer or bool inline constant)."""
    if isinstance(v, dict) and set(v) == {"t"}:
        return ins[v["t"]].kind == TOKENS
    return isinstance(v, dict) and "tensor" in v and not dtype_of(v["dtype"]).is_floating_point


def _integer_values(v: Any, ins: list[TensorType]) -> tuple[int, int] | None:
    """(lowest, highest) of an integer argument: a literal, token ids of a vocabulary, an integer constant."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v, v
    return _index_range(v, ins)


def _check_integer_values(p: dict, fn, name: str, bound: dict, ins: list[TensorType]) -> None:
    """Values the CPU kernels of integer arithmetic refuse and their meta kernels take: a division with a rounding
    mode by an integer that may be 0 ("ZeroDivisionError"), an integer raised to a negative integer ("Integers to
    negative integer powers are not allowed"), decimals of integers ("round_cpu" not implemented for 'Long')."""
    mode, other = bound.get("rounding_mode"), bound.get("other")
    if name == "div" and mode is not None and _integer_tensor(bound.get("self"), ins) and \
            (_integer_tensor(other, ins) or (isinstance(other, int) and not isinstance(other, bool))):
        seen = _integer_values(other, ins)
        if seen is None or seen[0] <= 0 <= seen[1]:
            got = "divisor values of unknown range" if seen is None else f"divisor values {seen[0]}..{seen[1]}"
            raise ShapeError(f"{p['op']}: an integer division (rounding_mode={mode!r}) needs a divisor that is never "
                             f"0; received: {got}. Fix: divide by a nonzero number, or cast to float32 first (an Op "
                             "aten.to), where x / 0 is inf")
    exponent = bound.get("exponent")
    if name == "pow" and _integer_tensor(bound.get("self"), ins) and isinstance(exponent, int) and \
            not isinstance(exponent, bool) and exponent < 0:
        raise ShapeError(f"{p['op']}: integers cannot be raised to a negative integer power; received: integer input, "
                         f"exponent={exponent}. Fix: use a float exponent (e.g. {float(exponent)}) or cast the input to "
                         "float32 first")
    if name == "round" and fn._overloadname == "decimals" and _integer_tensor(bound.get("self"), ins):
        raise ShapeError(f"{p['op']}: decimals round float values only; received: integers (token ids) with "
                         f"decimals={bound.get('decimals')}. Fix: leave out decimals (integers are already round), or "
                         "cast to float32 first")


_BIG = 1 << 1000  # a finite float64, far beyond float32's range


def _check_floats(p: dict, fn, bound: dict) -> None:
    """Every number in a ``Scalar`` (``number``), ``float`` or ``float[]`` argument, and every value of an inline
    float constant, is one its dtype can hold (:func:`builder.graph.spec.float_problem`, float32 for the numbers:
    LayerLab computes in it). Beyond its range, the CPU kernels refuse the number ("value cannot be converted to
    type float without overflow": aten.threshold, clamp, full_like ...; meta kernels do not) or the constant is inf;
    below its smallest, the exported file holds 0 where PyTorch's kernel may not (``aten.pow`` of -5.4e-159)."""
    for a in fn._schema.arguments:
        t = str(a.real_type).removeprefix("Optional[").rstrip("]")
        v = bound.get(a.name)
        for x in (v if t == "List[float]" and isinstance(v, list) else [v] if t in ("number", "float") else []):
            if (why := float_problem(a.name, x)) is not None:
                raise ShapeError(f"{p['op']}: {why}")
    for arg, v in bound.items():
        found: list[dict] = []
        walk_call(v, lambda d, found=found: found.append(d) if "tensor" in d and d["dtype"] in
                  ("float32", "float16", "bfloat16") else None)
        for d in found:  # an integer of 400 digits is no float: clipped to 2^1000, which float32 cannot hold either
            why = next((w for x in d["tensor"] if (w := float_problem(
                arg, float(max(-_BIG, min(_BIG, x))) if isinstance(x, int) else x, d["dtype"])) is not None), None)
            if why is not None:
                raise ShapeError(f"{p['op']}: an inline {d['dtype']} constant as {why}")


def _check_fill(p: dict, name: str, bound: dict, ins: list[TensorType]) -> None:
    """A number written into an integer result must fit its dtype (:data:`_FILLS`)."""
    torch = _torch()
    value = bound.get(_FILLS.get(name, ""))
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    dtype = bound.get("dtype")
    if isinstance(dtype, dict) and set(dtype) == {"dtype"}:
        dtype = dtype_of(dtype["dtype"])
    elif name == "full":
        dtype = torch.int64 if isinstance(value, int) else torch.float32  # torch.full's own default
    else:
        src = bound.get("self")
        dtype = torch.int64 if _integer_tensor(src, ins) else torch.float32
        if isinstance(src, dict) and "tensor" in src:
            dtype = dtype_of(src["dtype"])
    if dtype.is_floating_point or dtype == torch.bool:
        return
    info = torch.iinfo(dtype)
    if not (math.isfinite(value) and info.min <= value <= info.max):
        raise ShapeError(f"{p['op']} writes {_FILLS[name]} into a {str(dtype).removeprefix('torch.')} result, whose "
                         f"values lie in {info.min}..{info.max}; received: {_FILLS[name]}={value}. Fix: use a value in "
                         "that range, or a float result (cast to float32 first)")


#: The operators that return a list of tensors as long as their arguments say, and the argument that says it:
#: their length is computed before they run (:func:`list_length`); every allow-listed overload that returns a
#: ``Tensor[]`` is here (``tests/graph/test_op_checks.py`` checks it).
LIST_OPS = frozenset({"chunk", "split", "split_with_sizes", "unbind", "where"})


def list_length(name: str, bound: dict, ins: list[TensorType], shapes: dict) -> int | None:
    """How many tensors the list-returning operator ``name`` (:data:`LIST_OPS`) returns for the ``bound`` call,
    from the arguments and the input's shape alone (None when it depends on the batch or on values, or when the
    meta kernel refuses the call itself). ``aten.unbind`` of a dimension of 10^6 made 10^6 meta tensors three
    times over: 2 GiB and 13 s of the server's for one node of a graph that validates."""
    shape = _shape_of(bound.get("self"), ins, shapes)
    dim = bound.get("dim", 0)
    if shape is None or not isinstance(dim, int) or not -len(shape) <= dim < len(shape) or shape[dim] < 0:
        return None
    size, count = shape[dim], None
    if name == "unbind":
        count = size
    elif name == "chunk" and isinstance(bound.get("chunks"), int) and bound["chunks"] > 0:
        per = -(-size // bound["chunks"])
        count = -(-size // per) if per else 1
    elif name in ("split", "split_with_sizes"):
        sizes = bound.get("split_size", bound.get("split_sizes"))
        if isinstance(sizes, list):
            count = len(sizes)
        elif isinstance(sizes, int) and sizes > 0:
            count = max(1, -(-size // sizes))
    return count


def _check_list_length(p: dict, name: str, bound: dict, ins: list[TensorType], shapes: dict) -> None:
    """Refuse a list-returning operator whose list would outnumber the output ports, before it runs."""
    count = list_length(name, bound, ins, shapes) if name in LIST_OPS else None
    if count is not None and count > MAX_OUTPUTS:
        raise ShapeError(f"{p['op']} would return {count:,} tensors, one per output port, and an Op node has at most "
                         f"{MAX_OUTPUTS}; received: op={p['op']} with args {short_repr(p.get('args'))}. Fix: "
                         f"split into at most {MAX_OUTPUTS} parts (larger split sizes, fewer chunks), or use "
                         "Select/Slice layers for the parts you need")


def _check_output_padding(p: dict, bound: dict) -> None:
    """A transposed convolution's output padding, per dimension, must lie below its stride or its dilation ("output
    padding must be smaller than either stride or dilation", which the CPU kernel checks and meta does not)."""
    def per_dim(key: str, default: int) -> list:
        v = bound.get(key, [default])
        return v if isinstance(v, list) and v else [v]
    out, stride, dilation = per_dim("output_padding", 0), per_dim("stride", 1), per_dim("dilation", 1)
    for k in range(max(len(out), len(stride), len(dilation))):
        o, s, d = (v[k] if k < len(v) else v[-1] for v in (out, stride, dilation))
        if isinstance(o, int) and isinstance(s, int) and isinstance(d, int) and (o < 0 or o >= max(s, d)):
            raise ShapeError(f"{p['op']}: output_padding must lie in 0..max(stride, dilation) - 1 in every dimension; "
                             f"received: output_padding={bound.get('output_padding')}, stride={bound.get('stride')}, "
                             f"dilation={bound.get('dilation')}. Fix: use an output padding of at most {max(s, d) - 1}")


def _check_convolution(p: dict, name: str, bound: dict, ins: list[TensorType], shapes: dict) -> None:
    """A convolution's arguments the CPU kernel checks and the meta kernel does not: padding, stride, dilation and
    output padding; channels, groups and bias against the weight ("Given groups=2, expected weight to be divisible by
    2 at dimension 0", "expected bias to be 1-dimensional with 4 elements")."""
    transposed = name.startswith("conv_transpose") or (name in ("convolution", "_convolution")
                                                       and bool(bound.get("transposed")))
    x, weight, bias = (_shape_of(bound.get(k), ins, shapes) for k in ("input", "weight", "bias"))
    if transposed and x and weight and len(x) > 1 and x[1] != weight[0]:
        raise ShapeError(f"{p['op']}: the input's channels must equal the weight's first size; received: input "
                         f"{list(x[1:])}, weight {list(weight)}. Fix: feed {weight[0]} channels")
    if transposed:
        _check_output_padding(p, bound)
    pad = bound.get("padding")
    if any(isinstance(v, int) and v < 0 for v in (pad if isinstance(pad, list) else [pad])):
        raise ShapeError(f"{p['op']}: padding must not be negative (the CPU kernel refuses it); received: "
                         f"padding={pad}. Fix: use 0 or more, and crop with aten.slice (or a Slice layer) after it")
    for arg in ("stride", "dilation"):
        v = bound.get(arg)
        if any(isinstance(x, int) and x < 1 for x in (v if isinstance(v, list) else [v])):
            raise ShapeError(f"{p['op']}: `{arg}` must be at least 1 in every dimension (the CPU kernel refuses "
                             f"less); received: {arg}={v}. Fix: use 1 or more")
    groups = bound.get("groups", 1)
    if not weight or len(weight) < 2 or min(weight) < 0 or not isinstance(groups, int) or isinstance(groups, bool) \
            or groups < 1:
        return  # the meta kernel refuses these itself (a weight from a batched input: its own shape problem)
    what = "input" if transposed else "output"
    if weight[0] % groups:
        fits = [d for d in range(1, min(weight[0], 64) + 1) if weight[0] % d == 0]
        raise ShapeError(f"{p['op']}: groups must divide the weight's first size (its {weight[0]} {what} channels); "
                         f"received: groups={groups}, weight {list(weight)}. Fix: use one of {fits}")
    out = weight[1] * groups if transposed else weight[0]
    if bias is not None and bias != (out,):
        raise ShapeError(f"{p['op']}: the bias holds one value per output channel, {out} here (weight "
                         f"{list(weight)}{f', groups={groups}' if transposed and groups > 1 else ''}); received: bias "
                         f"of shape {list(bias)}. Fix: give a bias of shape [{out}], or none")


def _empty_pool_window(name: str, bound: dict, ins: list[TensorType], shapes: dict) -> str | None:
    """A max pooling call's window that covers only padding (:func:`builder.graph.layers.conv.empty_pool_window`,
    the MaxPool layers' check: its backward aborts the process)."""
    dims, x = int(name[len("max_pool")]), _shape_of(bound.get("self"), ins, shapes)
    args = pool_args(bound, dims)
    if x is None or len(x) < dims or args is None or min(x[-dims:]) < 1:
        return None  # the meta kernel refuses these itself
    return empty_pool_window(list(x[-dims:]), *args, ceil_mode=bool(bound.get("ceil_mode")))


_NORMS = ("group_norm", "native_group_norm", "instance_norm", "layer_norm", "native_layer_norm")


def _check_statistics(p: dict, name: str, bound: dict, ins: list[TensorType], shapes: dict) -> None:
    """A variance that is NaN or inf: a normalisation's ``eps`` outside the norm layers' range (a negative one makes
    the root of a negative number where the variance is below it, a constant feature; zero divides by zero there),
    a var/std whose degrees of freedom (values reduced less the correction) are none (whatever the input)."""
    eps = bound.get("eps")
    if isinstance(eps, int | float) and not isinstance(eps, bool) and not EPS.min <= eps <= EPS.max:
        raise ShapeError(f"{p['op']}: `eps` is added to the variance before its square root, so it must lie in "
                         f"[{EPS.min:g}, {EPS.max:g}] as the norm layers' eps does (at 0 or below, a constant feature "
                         f"gives NaN or inf); received: eps={eps}. Fix: use e.g. 1e-5")
    if name not in ("var", "std", "var_mean", "std_mean"):
        return
    x, dims = _shape_of(bound.get("self", bound.get("input")), ins, shapes), bound.get("dim")
    dims = [dims] if type(dims) is int else dims
    if x is None or not isinstance(dims, list) or not all(type(d) is int and -len(x) <= d < len(x) for d in dims):
        return  # the whole tensor, the batch included, or a bad dim: the shape rule says what is wrong
    reduced = {d % len(x) for d in dims}
    correction = bound.get("correction")
    correction = (0 if bound.get("unbiased") is False else 1) if correction is None else correction
    count = math.prod(x[d] for d in reduced if d > 0 and isinstance(x[d], int))
    if 0 not in reduced and isinstance(correction, int | float) and count - correction <= 0:
        raise ShapeError(f"{p['op']} divides by the number of values reduced less the correction, which must be "
                         f"positive (else the result is NaN or inf whatever the input); received: {count} value(s) "
                         f"reduced over dim={bound.get('dim')} of input {list(x)}, correction={correction}. Fix: "
                         "reduce over more values, or set correction to 0 (unbiased=false)")


def _check_norm(p: dict, name: str, bound: dict, ins: list[TensorType], shapes: dict) -> None:
    """A normalisation over a single value (a group of one, a channel of one element, a normalized shape of one)
    gives its shift whatever its input: its kernels agree there only up to rounding noise, which 1/sqrt(eps)
    multiplies (torch's group norm and onnxruntime's differ by 1e-5), and torch refuses an instance norm of one
    element in training. Refused, as the GroupNorm and InstanceNorm layers refuse it."""
    if name not in _NORMS:
        return
    x = _shape_of(bound.get("input"), ins, shapes)
    if x is None or len(x) < 2 or any(not isinstance(d, int) or d < 1 for d in x[1:]):
        return
    if name in ("group_norm", "native_group_norm"):
        groups = bound.get("num_groups", bound.get("group"))
        if type(groups) is not int or groups < 1 or x[1] % groups:
            return  # torch's own check says what is wrong
        per, what, fix = x[1] // groups * math.prod(x[2:]), f"num_groups={groups} for input {list(x)}", "fewer groups"
    elif name == "instance_norm":
        if bound.get("use_input_stats") is False:
            return
        per, what, fix = math.prod(x[2:]), f"input {list(x)}", "an input with more than one value per channel"
    else:
        norm = bound.get("normalized_shape")
        if not isinstance(norm, list) or not all(type(d) is int for d in norm):
            return
        per, what, fix = math.prod(norm), f"normalized_shape={norm}", "a normalized shape of more than one value"
    if per < 2:
        raise ShapeError(f"{p['op']} normalises single values, which gives its shift whatever the input (and torch "
                         f"refuses it in training for an instance norm); received: {what} (1 value each). Fix: use "
                         f"{fix}, or leave the node out")


def _check_upsample_scales(p: dict, dims: int, x: tuple[int, ...] | None, bound: dict) -> None:
    """An upsample's optional scales (``scales``, ``scales_h``, ``scales_w``), when given beside its output size,
    are that size over the input's: torch maps output coordinates back with the scale and clamps what falls outside,
    onnxruntime's export gathers there and fails ("invalid index found", ``make fuzz``, seed 301375524: scales_h
    1e-05 for 3 rows to 4)."""
    out = bound.get("output_size")
    if x is None or not isinstance(out, list) or len(out) != dims:
        return
    names = ("scales",) if dims == 1 else ("scales_h", "scales_w")
    for name, size, got in zip(names, x[2:], out, strict=False):
        scale = bound.get(name)
        if scale is None or type(size) is not int or size < 1 or type(got) is not int:
            continue
        if not isinstance(scale, int | float) or not math.isclose(scale, got / size, rel_tol=1e-3):
            raise ShapeError(f"{p['op']}: `{name}`, when given, is the output size over the input's ({got} / {size}"
                             f" = {got / size:.4g}); received: {name}={scale}. Fix: leave it out (null), or give "
                             f"{got / size:.4g}")


def _check_values(p: dict, fn, bound: dict, ins: list[TensorType]) -> None:
    """Argument values the CPU kernel checks and the meta kernel does not: ranges, index values, channels
    (``bound``: the call's arguments by name, as :func:`resolve_call` bound them)."""
    name = fn._schema.name.split("::")[-1]
    _check_list_length(p, name, bound, ins, {**consts(p)[0], **consts(p)[1]})
    x = bound.get("self", bound.get("input"))
    rank = len(ins[x["t"]].shape) + 1 if isinstance(x, dict) and set(x) == {"t"} else None
    ranks = {k: len(ins[v["t"]].shape) + 1 for k, v in bound.items() if isinstance(v, dict) and set(v) == {"t"}}
    if (why := batch_problem(p, fn, bound, rank, ranks)) is not None:  # the shape rule tries batches of 2, 3 and 1 only
        raise ShapeError(why)
    if name in OP_NODE_REFUSED:
        raise ShapeError(f"{p['op']} is an internal operator whose inputs LayerLab cannot check; received: "
                         f"op={p['op']}. Fix: use the MultiheadAttention layer")
    _check_constant_dtypes(p, name, bound)
    dim, x = bound.get("dim"), bound.get("self", bound.get("input"))
    if type(dim) is int and name != "unsqueeze" and isinstance(x, dict) and set(x) == {"t"} \
            and isinstance(x["t"], int) and 0 <= x["t"] < len(ins) and not -(r := len(ins[x["t"]].shape) + 1) <= dim < r:
        raise ShapeError(f"{p['op']}: `dim` must lie in -{r}..{r - 1} for an input of {r} dimensions (batch "  # meta
                         f"included); received: dim={dim}. Fix: pick a dimension of the input")  # softmax takes any
    if name in UNINITIALISED_OPS:
        raise ShapeError(f"{p['op']} leaves its values uninitialised (whatever the memory held: other values on every "
                         f"run and in the exported .py); received: op={p['op']}. Fix: use aten.zeros or aten.full")
    dtype = bound.get("dtype")
    if (name not in INTEGER_OPS and isinstance(dtype, dict) and set(dtype) == {"dtype"}
            and any(str(a.type) == "Tensor" for a in fn._schema.arguments)
            and not dtype_of(dtype["dtype"]).is_floating_point):  # a factory (no tensor argument) may make integers
        raise ShapeError(f"{p['op']} computes on float values (its CPU kernel has no integer version); received: "
                         f"dtype={dtype['dtype']}. Fix: leave out the dtype argument (or give a float one) and cast "
                         "the result with an Op aten.to after it")
    if name == "one_hot":  # class values against num_classes (-1, inferred from the values, is refused by meta)
        seen, classes = _index_range(bound.get("self"), ins), bound.get("num_classes", -1)
        if isinstance(classes, int) and classes > 0 and (seen is None or seen[0] < 0 or seen[1] >= classes):
            got = "values of unknown range (integers without a vocabulary)" if seen is None else \
                f"values {seen[0]}..{seen[1]}"
            raise ShapeError(f"{p['op']}: class values must lie in 0..{classes - 1} (num_classes={classes}); "
                             f"received: {got}. Fix: set num_classes to the vocabulary size, or feed token ids with a "
                             "vocabulary")
    for arg in _SPARSE_ARGS:
        if bound.get(arg) is True:
            raise ShapeError(f"{p['op']} with {arg}=true makes sparse gradients, which the optimizers (Adam, AdamW) "
                             f"refuse at the first training step; received: {arg}=true. Fix: leave out {arg} (false)")
    _check_integer_values(p, fn, name, bound, ins)
    _check_fill(p, name, bound, ins)
    _check_floats(p, fn, bound)
    if name in _DROPOUTS and bound.get("train") is not False:  # an Op knows no train/eval mode
        raise ShapeError(f"{p['op']} would drop values in evaluation too (an Op node has no training mode); "
                         f"received: train={bound.get('train')}. Fix: use a Dropout layer, or train=false")
    w, b = consts(p)
    shapes = {**w, **b}
    if name.startswith("conv") or name == "_convolution":
        _check_convolution(p, name, bound, ins, shapes)
    _check_norm(p, name, bound, ins, shapes)
    _check_statistics(p, name, bound, ins, shapes)
    if name.startswith("max_pool") and (why := _empty_pool_window(name, bound, ins, shapes)) is not None:
        raise ShapeError(f"{p['op']}: {why}")
    arg = _DROP_ARGS.get(name)
    if arg and bound.get(arg) not in (None, 0) and bound.get("train") is not False:
        raise ShapeError(f"{p['op']} would drop values in evaluation too (an Op node has no training mode), and the "
                         f"CPU kernel refuses a negative one; received: {arg}={bound.get(arg)}. Fix: set {arg} to 0 "
                         "(and add a Dropout layer after the node)")
    for ops, (arg, lo, hi) in _RANGES.items():
        v = bound.get(arg)
        if name in ops and isinstance(v, int | float) and not lo <= v <= hi:
            raise ShapeError(f"{p['op']}: `{arg}` must lie in [{lo}, {hi}]; received: {arg}={v}. Fix: use a value "
                             "in that range")
    alpha = bound.get("alpha")
    if (name, "alpha") in _NONZERO and isinstance(alpha, int | float) and (alpha == 0 or abs(alpha) < _F32_TINY):
        raise ShapeError(f"{p['op']}: `alpha` divides, so it must be at least {_F32_TINY:.1e} in size (1/alpha fits "
                         f"float32); received: alpha={alpha}. Fix: use e.g. 1.0")
    if name.startswith("upsample_") and name[-2:] in ("1d", "2d"):  # output_size / scales: one per spatial dim
        dims = int(name[-2])
        x = _shape_of(bound.get("input", bound.get("self")), ins, shapes)
        sizes = [v for v in (bound.get("output_size"), bound.get("scale_factors")) if isinstance(v, list)]
        if (x is not None and len(x) != dims + 2) or any(len(v) != dims for v in sizes):
            raise ShapeError(f"{p['op']} takes a ({dims + 2})-d input and {dims} output size(s) or scale(s); "
                             f"received: input {list(x or ())}, sizes {sizes}. Fix: match them")
        _check_upsample_scales(p, dims, x, bound)
    if name == "index":  # self[indices[0], indices[1], ...]: each index against its dimension
        if isinstance(bound.get("indices"), list) and all(i is None for i in bound["indices"]):
            raise ShapeError(f"{p['op']} needs at least one index tensor (the CPU kernel fails on none: \"ntensor >= 3 "
                             f"INTERNAL ASSERT FAILED\"); received: indices={json.dumps(bound['indices'])}. Fix: give "
                             "an index tensor, or leave the node out (null indices select everything)")
        for k, index in enumerate(bound.get("indices") or []):
            if index is not None:
                _check_index(p, "self", _shape_of(bound.get("self"), ins, shapes), k, index, ins, shapes, True)
        return
    if name not in _INDEXING:
        return
    src, dim_arg, idx_arg, negative = _INDEXING[name]
    dim = bound.get(dim_arg, 0) if isinstance(dim_arg, str) else dim_arg
    _check_index(p, src, _shape_of(bound.get(src), ins, shapes), dim, bound.get(idx_arg), ins, shapes, negative,
                 vector=name == "index_select")


def _check_index(p: dict, src: str, shape, dim, index, ins: list[TensorType], shapes: dict, negative: bool,
                 vector: bool = False) -> None:
    """Index values against the size of dimension ``dim`` of ``shape`` (the batch, -1, is never indexable)."""
    if shape is None or not isinstance(dim, int) or not -len(shape) <= dim < max(len(shape), 1):
        return  # the meta kernel refuses these itself
    size = shape[dim] if shape else 1
    if vector and len(_shape_of(index, ins, shapes) or ()) > 1:
        raise ShapeError(f"{p['op']}: the index must be a vector; received: an index of shape "
                         f"{list(_shape_of(index, ins, shapes) or ())}. Fix: flatten it first")
    seen = _index_range(index, ins)
    if size == -1:
        raise ShapeError(f"{p['op']} indexes the batch dimension, whose size changes from batch to batch; received: "
                         f"{src} of shape (B, ...), dimension {dim}. Fix: index another dimension")
    if seen is None:
        raise ShapeError(f"{p['op']}: the index values must be known to lie within the indexed size {size}; "
                         "received: an index of unknown range (a float constant or integers without a vocabulary). "
                         "Fix: use token ids with a vocabulary, or an inline integer constant")
    if seen[0] < (-size if negative else 0) or seen[1] >= size:
        raise ShapeError(f"{p['op']}: index values must lie in 0..{size - 1} (the size they index); received: "
                         f"values {seen[0]}..{seen[1]}. Fix: lower the vocabulary or the constant's values")


def _op_shape(p: dict, ins: list[TensorType]):
    n_out = p["outputs"]
    fn, _, _, bound = resolve_call(p, len(ins))  # every argument checked against the schema before torch sees it
    _check_integer_inputs(p, ins)
    _check_values(p, fn, bound, ins)
    results = []
    for batch in (2, 3, 1):  # batch 1 too: aten.squeeze drops every size-1 dimension, the batch's included
        saved: dict = {}
        try:
            out = run_call_any(p, ins, batch, saved)
            if batch > 1:  # what autograd saved, for the memory estimate (saved_cost)
                saved_sizes(p, ins, batch, out, saved)
        except ShapeError:
            raise
        except Exception as ex:  # noqa: BLE001 - torch's own refusal of these inputs, shown as a shape problem
            msg = " ".join(str(ex).split())[:160]
            raise ShapeError(f"{p.get('op')} cannot take these inputs; received: "
                             f"{', '.join(map(str, ins)) or 'none'} ({type(ex).__name__}: {msg}). Fix: feed the "
                             "shapes the operator had in the imported model") from None
        results.append(out)
    a, b, one = results
    if len(a) != n_out or len(b) != n_out:
        raise ShapeError(f"{p['op']} returns {len(a)} tensor(s), one per output port; received: outputs={n_out}. "
                         f"Fix: set outputs to {len(a)}")
    types = {}
    for i in range(n_out):
        sa, sb, s1 = tuple(a[i].shape), tuple(b[i].shape), tuple(one[i].shape)
        if not sa or sa[0] != 2 or sb[0] != 3 or sa[1:] != sb[1:] or len(one) != n_out or s1 != (1, *sa[1:]):
            raise ShapeError(f"{p['op']}'s output {i} does not keep the batch dimension first; received: output "
                             f"shapes {list(sa)}, {list(sb)} and {list(s1)} for batches of 2, 3 and 1. Fix: LayerLab "
                             "graphs carry batch-first tensors; rebuild this part with batch-first layers")
        if 0 in sa[1:]:  # no layer takes an empty dimension (adaptive pools' backward refuses one)
            raise ShapeError(f"{p['op']}'s output {i} has an empty dimension; received: output shape {list(sa)} for a "
                             "batch of 2. Fix: change the sizes so that every dimension keeps at least one value")
        dtype = a[i].dtype
        if dtype.is_floating_point and dtype != _torch().float32:  # every analysis of a float edge assumes float32
            raise ShapeError(f"{p['op']}'s output {i} must be float32 (the layers and operators after it compute in "
                             f"float32); received: dtype {str(dtype).removeprefix('torch.')}. Fix: leave out the dtype "
                             "argument, or cast to float32")
        types[OUTPUT_PORTS[i]] = TensorType(sa[1:]) if dtype.is_floating_point else \
            TensorType(sa[1:], TOKENS, 2 if dtype == _torch().bool else None)
    return types if n_out > 1 else types["out"]


def _takes_bools(p: dict, types: list[TensorType]) -> bool:
    """Whether the analysis ran the call with its vocabulary-2 token inputs as bool (:func:`run_call_any`: int64 was
    refused, e.g. ``aten.masked_fill``'s mask); the compiled call casts them so, as analysed."""
    if not any(t.kind == TOKENS and t.vocab == 2 for t in types):
        return False
    try:
        run_call(p, types, 2)
    except Exception:  # noqa: BLE001 - the analysis then ran it with bools (it passed validation so)
        return True
    return False


def _op_emit(e, attr, p, ins, types):
    """The call, as analysed: token inputs as int64 (bool where :func:`_takes_bools`), and bool results as int64
    token ids (a comparison's result is typed as tokens of vocabulary 2, which an Embedding or a loss's target
    reads as ids: a bool tensor failed there at run time, found by ``make fuzz``, seed 3065547435)."""
    torch = _torch()
    fn, args, kwargs = parse_call(p, len(ins))
    batch: dict = {}
    bools = _takes_bools(p, types)
    out_bool = [o.dtype == torch.bool for o in run_call_any(p, types, 2)]

    def leaf(d):
        if "t" in d:
            t = types[d["t"]]
            return e.method("bool", ins[d["t"]]) if bools and t.kind == TOKENS and t.vocab == 2 else ins[d["t"]]
        if "w" in d:
            stored = e.attr(f"{attr}.{d['w']}", as_=d["w"])
            return e.method("bool", stored) if d.get("dtype") == "bool" else stored
        if "b" in d:
            if "size" not in batch:
                batch["size"] = e.method("size", ins[0], 0, as_="batch")
            return batch["size"] if d["b"] == 1 else e.fn(operator.mul, batch["size"], d["b"])
        if set(d) == {"dtype"}:
            return dtype_of(d["dtype"])
        if "device" not in batch:  # inline constants follow the first input's device
            batch["device"] = e.fn(getattr, ins[0], "device", as_="device")
        t = e.fn(torch.tensor, d["tensor"], dtype=dtype_of(d["dtype"]), device=batch["device"], as_="const")
        return e.method("reshape", t, list(d["shape"])) if len(d["shape"]) != 1 else t
    call_args = walk_call(args, leaf)
    call_kwargs = {k: walk_call(v, leaf) for k, v in kwargs.items()}
    out = e.fn(fn, *call_args, **call_kwargs)
    if not _returns_sequence(fn):  # one tensor (validation matched ``outputs`` to what the operator returns)
        return e.method("long", out) if out_bool[0] else out
    items = [e.fn(operator.getitem, out, i, as_=f"out{i}") for i in range(p["outputs"])]
    items = [e.method("long", x) if is_bool else x for x, is_bool in zip(items, out_bool, strict=False)]
    return items[0] if p["outputs"] == 1 else dict(zip(OUTPUT_PORTS[:len(items)], items, strict=True))


def _returns_sequence(fn: Any) -> bool:
    """Whether an operator returns a tuple or a list of tensors (``aten.split`` returns a list even of one).

    >>> import torch
    >>> _returns_sequence(torch.ops.aten.split.Tensor), _returns_sequence(torch.ops.aten.erf.default)
    (True, False)
    """
    returns = fn._schema.returns
    return len(returns) != 1 or isinstance(returns[0].type, _torch()._C.ListType)


def _op_grad(p: dict, ins: list[TensorType]) -> bool:
    """Whether any result of the call carries a gradient from its float inputs or learned constants (:func:`run_call`
    gives them ``requires_grad``): ``aten.detach`` and factories such as ``aten.zeros_like`` carry none."""
    return any(o.requires_grad for o in run_call_any(p, ins, 2))


def make_module(p: dict, ins: list[TensorType]):
    """The module holding an Op node's stored constants (None when it stores none)."""
    w, b = consts(p)
    if not w and not b:
        return None
    torch = _torch()
    m = torch.nn.Module()
    for k, s in w.items():
        m.register_parameter(k, torch.nn.Parameter(torch.zeros(s)))
    for k, s in b.items():
        m.register_buffer(k, torch.zeros(s))
    return m


def counts(p: dict, ins: list[TensorType] | None = None) -> tuple[int, int]:
    """(parameter values, buffer values) an Op node stores (its inputs do not change them)."""
    w, b = consts(p)
    return sum(math.prod(s) for s in w.values()), sum(math.prod(s) for s in b.values())


def _export_init(name: str, p: dict, ins: list[TensorType]) -> list[str]:
    w, b = consts(p)
    if not w and not b:
        return []
    lines = [f"self.{name} = nn.Module()  # constants of {p['op']}"]
    # a shape as a list: torch.zeros([]) is 0-d, torch.zeros([0, 3]) empty (torch.zeros() would not run)
    lines += [f"self.{name}.{k} = nn.Parameter(torch.zeros({list(s)!r}))" for k, s in w.items()]
    lines += [f"self.{name}.register_buffer({k!r}, torch.zeros({list(s)!r}))" for k, s in b.items()]
    return lines


OP = register(LayerSpec(
    "Op", "Operator", "A torch operator without a LayerLab layer (imported models): calls `op` from LayerLab's "
    "allow-list of ATen operators on its inputs (ports 0, 1, ...).",
    params=[Param("op", "str", "aten.erf", "The ATen operator, e.g. aten.erf or aten.add.Tensor (allow-listed)."),
            Param("args", "str", '[{"t": 0}]', 'Arguments as JSON: {"t": i} input i, {"w": name} a stored '
                  'constant, {"b": k} k × batch size (first in a shape), or a literal.'),
            Param("kwargs", "str", "{}", "Keyword arguments as JSON."),
            Param("weights", "str", "{}", "Learned constants as JSON {name: shape} (values in the weights)."),
            Param("buffers", "str", "{}", "Fixed constants as JSON {name: shape} (values in the weights)."),
            Param("outputs", "int", 1, "Number of tensors the operator returns (ports out, out1, ...).", min=1,
                  max=MAX_OUTPUTS)],
    shape=_op_shape, emit=_op_emit, export_init=_export_init, variadic=True, min_inputs=1, input_kind=ANY,
    outputs=OUTPUT_PORTS, output_count="outputs", strides="any", make_module=make_module, counts=counts, grad=_op_grad,
    cost=saved_cost,
    lint=onnx_lint,
    # its shape rule ran the call on fresh (canonical) meta inputs: a transpose before aten.view failed in the
    # forward only ("view size is not compatible with input tensor's size and stride"), and an allow-listed norm
    # kernel (aten.group_norm ...) has the stride bugs of the norm layers
    contiguous_inputs=True))

__all__ = ["OP", "INTEGER_OPS", "resolve_op", "parse_call", "consts", "counts", "make_module", "DTYPES", "OUTPUT_PORTS"]
