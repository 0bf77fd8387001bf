"""The generic operator node ``Op``: one ATen operator from a closed allow-list, for what has no LayerLab layer.

An imported model keeps every operator: those with a layer become that layer, any other allow-listed ATen
operator (``aten.erf``, ``aten.hardswish``, ``aten.where`` ...) becomes an ``Op`` node that carries

* ``op``: the operator, ``aten.<name>`` or ``aten.<name>.<overload>``, looked up in
  :data:`builder.interchange.pt2_read.ALLOWED_OPS` (the one allow-list; never ``eval``, never an import);
* ``args`` / ``kwargs``: the call as JSON: ``{"t": i}`` is tensor input ``i`` (edges into ports ``0``, ``1``...),
  ``{"w": name}`` a stored constant, ``{"b": k}`` ``k`` × the batch size, ``{"tensor": [...], "dtype": ...,
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

from builder.graph.layers.tensor import ANY
from builder.graph.spec import TOKENS, LayerSpec, Param, ShapeError, TensorType, register

MAX_OUTPUTS = 8
MAX_INLINE = 64          # values of an inline constant (more are stored as a buffer)
MAX_JSON = 20_000        # characters of one call description
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool")
OUTPUT_PORTS = ("out", *(f"out{i}" for i in range(1, MAX_OUTPUTS)))


def _torch():
    import torch

    return torch


def resolve_op(name: Any):
    """The torch operator an allow-listed ``aten.<name>[.<overload>]`` denotes (ShapeError for anything else)."""
    from builder.interchange.pt2_read import ALLOWED_OPS

    parts = name.split(".") if isinstance(name, str) and len(name) <= 120 else []
    if len(parts) not in (2, 3) or parts[0] != "aten" or f"aten.{parts[1]}" not in ALLOWED_OPS \
            or (len(parts) == 3 and (not parts[2].isidentifier() or parts[2].startswith("_"))):
        raise ShapeError(f"`op` must be an allow-listed ATen operator (aten.<name>[.<overload>]); received: "
                         f"op={str(name)[:60]!r}. Fix: use e.g. 'aten.erf' (the README's import matrix lists them)")
    packet = getattr(_torch().ops.aten, parts[1], None)
    if packet is None or (len(parts) == 3 and parts[2] not in packet.overloads()):
        raise ShapeError(f"this torch build has no operator {name}; received: op={name!r}. Fix: use another "
                         "overload or the operator's name alone")
    return getattr(packet, parts[2]) if len(parts) == 3 else packet


def _json(p: dict, key: str, kind: type) -> Any:
    text = p.get(key)
    if not isinstance(text, str) or len(text) > MAX_JSON:
        raise ShapeError(f"`{key}` must be JSON text of at most {MAX_JSON:,} characters; received: "
                         f"{str(text)[:40]!r}. Fix: re-import the model")
    try:
        v = json.loads(text)
    except ValueError:
        raise ShapeError(f"`{key}` is not valid JSON; received: {text[:40]!r}. Fix: re-import the model") from None
    if not isinstance(v, kind):
        raise ShapeError(f"`{key}` must be a JSON {kind.__name__}; received: {text[:40]!r}. Fix: re-import the model")
    return v


def consts(p: dict) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(learned weights, fixed buffers) of an Op node: name -> shape."""
    out = []
    for key in ("weights", "buffers"):
        d = _json(p, key, dict)
        for name, shape in d.items():
            if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_")) or \
                    not isinstance(shape, list) or len(shape) > 8 or \
                    not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 1 << 24 for s in shape):
                raise ShapeError(f"`{key}` must map identifiers to shapes; received: {name!r}: {str(shape)[:40]}. "
                                 "Fix: re-import the model")
        out.append(d)
    if sum(math.prod(s) for d in out for s in d.values()) > 1 << 28:
        raise ShapeError("the Op node's constants hold more than 2^28 values; received: "
                         f"{sum(math.prod(s) for d in out for s in d.values()):,}. Fix: import a smaller model")
    return out[0], out[1]


def _walk(v: Any, leaf, depth: int = 0) -> Any:
    """Rebuild the JSON call description with ``leaf`` applied to each special object (``{"t": ..}`` ...)."""
    if depth > 8:
        raise ShapeError("the Op node's arguments are nested too deeply; received: more than 8 levels. "
                         "Fix: re-import the model")
    if isinstance(v, dict):
        return leaf(v)
    if isinstance(v, list):
        return [_walk(x, leaf, depth + 1) for x in v]
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise ShapeError(f"unsupported argument in an Op node; received: {str(v)[:40]}. Fix: re-import the model")


def _dtype(name: Any):
    if name not in DTYPES:
        raise ShapeError(f"dtype must be one of {', '.join(DTYPES)}; received: {str(name)[:20]!r}. "
                         "Fix: re-import the model")
    return getattr(_torch(), name)


def _check_leaf(v: dict, n_in: int, names: set[str]) -> None:
    if set(v) == {"t"}:
        if not isinstance(v["t"], int) or not 0 <= v["t"] < n_in:
            raise ShapeError(f"an Op argument names tensor input {v['t']!r}, the node has {n_in} input(s); "
                             "received: {\"t\": ...}. Fix: connect the missing input (ports 0, 1, ...)")
    elif set(v) == {"w"}:
        if v["w"] not in names:
            raise ShapeError(f"an Op argument names the constant {str(v['w'])[:30]!r}, which the node does not "
                             "store; received: {\"w\": ...}. Fix: re-import the model")
    elif set(v) == {"b"}:
        if not isinstance(v["b"], int) or not 1 <= v["b"] <= 1 << 16:
            raise ShapeError(f"a batch multiple must be a positive integer; received: {v['b']!r}. Fix: re-import")
    elif set(v) == {"dtype"}:
        _dtype(v["dtype"])
    elif set(v) == {"tensor", "dtype", "shape"}:
        vals, shape = v["tensor"], v["shape"]
        if not isinstance(vals, list) or len(vals) > MAX_INLINE or not isinstance(shape, list) or \
                not all(isinstance(s, int) and s >= 0 for s in shape) or math.prod(shape) != len(vals) or \
                not all(isinstance(x, int | float) for x in vals):
            raise ShapeError(f"an inline constant must hold at most {MAX_INLINE} numbers matching its shape; "
                             f"received: {str(v)[:40]}. Fix: re-import the model")
        _dtype(v["dtype"])
    else:
        raise ShapeError(f"unknown Op argument; received: {str(v)[:40]}. Fix: use {{\"t\": i}}, {{\"w\": name}}, "
                         "{\"b\": k}, {\"dtype\": ...} or an inline tensor")


def parse_call(p: dict, n_in: int) -> tuple[Any, list, dict]:
    """(operator, args, kwargs) of an Op node, every special argument checked."""
    fn = resolve_op(p.get("op"))
    w, b = consts(p)
    names = set(w) | set(b)
    args, kwargs = _json(p, "args", list), _json(p, "kwargs", dict)

    def leaf(v):
        _check_leaf(v, n_in, names)
        return v
    _walk(args, leaf)
    _walk(list(kwargs.values()), leaf)
    if not all(isinstance(k, str) and k.isidentifier() for k in kwargs):
        raise ShapeError("Op keyword names must be identifiers; received: "
                         f"{list(kwargs)[:4]}. Fix: re-import the model")
    return fn, args, kwargs


def _materialise(v: Any, tensors: list, consts_: dict, batch: int, device: str | None) -> Any:
    torch = _torch()

    def leaf(d):
        if "t" in d:
            return tensors[d["t"]]
        if "w" in d:
            return consts_[d["w"]]
        if "b" in d:
            return d["b"] * batch
        if set(d) == {"dtype"}:
            return _dtype(d["dtype"])
        return torch.tensor(d["tensor"], dtype=_dtype(d["dtype"]), device=device).reshape(d["shape"])
    return _walk(v, leaf)


def _in_dtype(t: TensorType, bools: bool):
    torch = _torch()
    if t.kind != TOKENS:
        return torch.float32
    return torch.bool if bools and t.vocab == 2 else torch.int64


def _run(p: dict, ins: list[TensorType], batch: int, device: str, bools: bool = False) -> list:
    """The operator's outputs for zero inputs of ``ins`` (token inputs as int64, or with ``bools`` those of a
    vocabulary of 2 as bool: an Op's bool output, e.g. ``aten.lt``'s, is typed as tokens of vocabulary 2)."""
    torch = _torch()
    fn, args, kwargs = parse_call(p, len(ins))
    w, b = consts(p)
    tensors = [torch.zeros((batch, *t.shape), dtype=_in_dtype(t, bools), device=device) for t in ins]
    cs = {k: torch.zeros(s, device=device) for k, s in {**w, **b}.items()}
    out = fn(*_materialise(args, tensors, cs, batch, device),
             **{k: _materialise(v, tensors, cs, batch, device) for k, v in kwargs.items()})
    out = list(out) if isinstance(out, tuple | list) else [out]
    if not all(isinstance(o, torch.Tensor) for o in out):
        raise ShapeError(f"{p['op']} returns something other than tensors; received: "
                         f"{', '.join(type(o).__name__ for o in out)}. Fix: re-import the model")
    return out


def _run_any(p: dict, ins: list[TensorType], batch: int) -> list:
    """:func:`_run` on the meta device (on small real tensors where the operator has no meta kernel); token
    inputs of a vocabulary of 2 are tried as bool when int64 is refused."""
    def run(bools: bool) -> list:
        try:
            return _run(p, ins, batch, "meta", bools)
        except NotImplementedError:  # no meta kernel: small real tensors
            if sum(math.prod(t.shape) for t in ins) * batch > 1 << 20:
                raise
            return _run(p, ins, batch, "cpu", bools)
    try:
        return run(False)
    except ShapeError:
        raise
    except Exception:  # noqa: BLE001 - retried with bools below, else re-raised
        if not any(t.kind == TOKENS and t.vocab == 2 for t in ins):
            raise
        try:
            return run(True)
        except Exception:  # noqa: BLE001 - the first refusal is the one to show
            pass
        raise


def _op_shape(p: dict, ins: list[TensorType]):
    n_out = p["outputs"]
    results = []
    for batch in (2, 3):
        try:
            out = _run_any(p, ins, batch)
        except ShapeError:
            raise
        except Exception as ex:  # noqa: BLE001 - torch's own refusal of these inputs, shown as a shape problem
            msg = " ".join(str(ex).split())[:160]
            raise ShapeError(f"{p.get('op')} cannot take these inputs; received: "
                             f"{', '.join(map(str, ins)) or 'none'} ({type(ex).__name__}: {msg}). Fix: feed the "
                             "shapes the operator had in the imported model") from None
        results.append(out)
    a, b = results
    if len(a) < n_out:
        raise ShapeError(f"{p['op']} returns {len(a)} tensor(s); received: outputs={n_out}. Fix: set outputs to "
                         f"{len(a)}")
    types = {}
    for i in range(n_out):
        sa, sb = tuple(a[i].shape), tuple(b[i].shape)
        if not sa or sa[0] != 2 or sb[0] != 3 or sa[1:] != sb[1:]:
            raise ShapeError(f"{p['op']}'s output {i} does not keep the batch dimension first; received: output "
                             f"shapes {list(sa)} and {list(sb)} for batches of 2 and 3. Fix: LayerLab graphs carry "
                             "batch-first tensors; rebuild this part with batch-first layers")
        dtype = a[i].dtype
        types[OUTPUT_PORTS[i]] = TensorType(sa[1:]) if dtype.is_floating_point else \
            TensorType(sa[1:], TOKENS, 2 if dtype == _torch().bool else None)
    return types if n_out > 1 else types["out"]


def _op_emit(e, attr, p, ins, types):
    torch = _torch()
    fn, args, kwargs = parse_call(p, len(ins))
    batch: dict = {}

    def leaf(d):
        if "t" in d:
            return ins[d["t"]]
        if "w" in d:
            return e.attr(f"{attr}.{d['w']}", as_=d["w"])
        if "b" in d:
            if "size" not in batch:
                batch["size"] = e.method("size", ins[0], 0, as_="batch")
            return batch["size"] if d["b"] == 1 else e.fn(operator.mul, batch["size"], d["b"])
        if set(d) == {"dtype"}:
            return _dtype(d["dtype"])
        if "device" not in batch:  # inline constants follow the first input's device
            batch["device"] = e.fn(getattr, ins[0], "device", as_="device")
        t = e.fn(torch.tensor, d["tensor"], dtype=_dtype(d["dtype"]), device=batch["device"], as_="const")
        return e.method("reshape", t, list(d["shape"])) if len(d["shape"]) != 1 else t
    call_args = _walk(args, leaf)
    call_kwargs = {k: _walk(v, leaf) for k, v in kwargs.items()}
    out = e.fn(fn, *call_args, **call_kwargs)
    if p["outputs"] == 1:
        return out
    return {OUTPUT_PORTS[i]: e.fn(operator.getitem, out, i, as_=f"out{i}") for i in range(p["outputs"])}


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


def counts(p: dict) -> tuple[int, int]:
    """(parameter values, buffer values) an Op node stores."""
    w, b = consts(p)
    return sum(math.prod(s) for s in w.values()), sum(math.prod(s) for s in b.values())


def _export_init(name: str, p: dict, ins: list[TensorType]) -> list[str]:
    w, b = consts(p)
    if not w and not b:
        return []
    lines = [f"self.{name} = nn.Module()  # constants of {p['op']}"]
    lines += [f"self.{name}.{k} = nn.Parameter(torch.zeros({', '.join(map(str, s))}{',' if len(s) == 1 else ''}))"
              for k, s in w.items()]
    lines += [f"self.{name}.register_buffer({k!r}, torch.zeros({', '.join(map(str, s))}{',' if len(s) == 1 else ''}))"
              for k, s in b.items()]
    return lines


class OpSpec(LayerSpec):
    """A LayerSpec whose node may store constants (``make_module``) counted without a torch.nn class."""

    make_module = staticmethod(make_module)
    counts = staticmethod(counts)


OP = register(OpSpec(
    "Op", "Operator", "A torch operator without a LayerLab layer (imported models): calls `op` from LayerLab's "
    "allow-list of ATen operators on its inputs (ports 0, 1, ...).",
    params=[Param("op", "str", "aten.erf", "The ATen operator, e.g. aten.erf or aten.add.Tensor (allow-listed)."),
            Param("args", "str", '[{"t": 0}]', 'Arguments as JSON: {"t": i} input i, {"w": name} a stored '
                  'constant, {"b": k} k × batch size, or a literal.'),
            Param("kwargs", "str", "{}", "Keyword arguments as JSON."),
            Param("weights", "str", "{}", "Learned constants as JSON {name: shape} (values in the weights)."),
            Param("buffers", "str", "{}", "Fixed constants as JSON {name: shape} (values in the weights)."),
            Param("outputs", "int", 1, "Number of tensors the operator returns (ports out, out1, ...).", min=1,
                  max=MAX_OUTPUTS)],
    shape=_op_shape, emit=_op_emit, export_init=_export_init, variadic=True, min_inputs=1, input_kind=ANY,
    outputs=OUTPUT_PORTS, strides="any"))

__all__ = ["OP", "OpSpec", "resolve_op", "parse_call", "consts", "counts", "make_module", "DTYPES", "OUTPUT_PORTS"]
