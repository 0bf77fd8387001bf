"""An ``Op`` node's call (:mod:`builder.graph.layers.op`): its JSON parameters read and bounded, its constants,
and the call bound against the operator's schema before torch sees it."""

from __future__ import annotations

import json
import math
from typing import Any

from builder.escape import is_code_name
from builder.graph.layers._common import _torch
from builder.graph.op_allow import ALLOWED_OPS, PROGRAM_INPLACE_OPS
from builder.graph.spec import ShapeError

MAX_OUTPUTS = 8
MAX_INLINE = 64          # values of an inline constant (more are stored as a buffer)
MAX_JSON = 20_000        # characters of one call description
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool")
OUTPUT_PORTS = ("out", *(f"out{i}" for i in range(1, MAX_OUTPUTS)))


def resolve_op(name: Any):
    """The torch operator an allow-listed ``aten.<name>[.<overload>]`` denotes (ShapeError for anything else)."""
    parts = name.split(".") if isinstance(name, str) and len(name) <= 120 else []
    if len(parts) in (2, 3) and parts[0] == "aten" and f"aten.{parts[1]}" in PROGRAM_INPLACE_OPS:
        raise ShapeError(f"{name} writes into its arguments (in place), which would change a tensor other nodes "
                         f"also read; received: op={name!r}. Fix: use aten.{parts[1][:-1]}, which returns a new one")
    if len(parts) not in (2, 3) or parts[0] != "aten" or f"aten.{parts[1]}" not in ALLOWED_OPS \
            or (len(parts) == 3 and (not parts[2].isidentifier() or parts[2].startswith("_"))):
        raise ShapeError(f"`op` must be an allow-listed ATen operator (aten.<name>[.<overload>]); received: "
                         f"op={str(name)[:60]!r}. Fix: use e.g. 'aten.erf' (docs/reference/import-matrix.md "
                         "lists them)")
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
            if not (is_code_name(name) and not name.startswith("_")) or \
                    not isinstance(shape, list) or len(shape) > 8 or \
                    not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 1 << 24 for s in shape):
                raise ShapeError(f"`{key}` must map names (ASCII Python identifiers, no keyword, no leading _) to "
                                 f"shapes; received: {name!r}: {str(shape)[:40]}. "
                                 "Fix: re-import the model")
        out.append(d)
    if sum(math.prod(s) for d in out for s in d.values()) > 1 << 28:
        raise ShapeError("the Op node's constants hold more than 2^28 values; received: "
                         f"{sum(math.prod(s) for d in out for s in d.values()):,}. Fix: import a smaller model")
    return out[0], out[1]


def walk_call(v: Any, leaf, depth: int = 0) -> Any:
    """Rebuild the JSON call description with ``leaf`` applied to each special object (``{"t": ..}`` ...)."""
    if depth > 8:
        raise ShapeError("the Op node's arguments are nested too deeply; received: more than 8 levels. "
                         "Fix: re-import the model")
    if isinstance(v, dict):
        return leaf(v)
    if isinstance(v, list):
        return [walk_call(x, leaf, depth + 1) for x in v]
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise ShapeError(f"unsupported argument in an Op node; received: {str(v)[:40]}. Fix: re-import the model")


def dtype_of(name: Any):
    if name not in DTYPES:
        raise ShapeError(f"dtype must be one of {', '.join(DTYPES)}; received: {str(name)[:20]!r}. "
                         "Fix: re-import the model")
    return getattr(_torch(), name)


def const_ref(v: Any) -> bool:
    """Whether ``v`` names a stored constant: ``{"w": name}``, or ``{"w": name, "dtype": "bool"}`` for a bool
    constant kept among the float buffers and read back as bool (an attention mask of 128 positions; an Op's
    buffers are float32).

    >>> const_ref({"w": "c0"}), const_ref({"w": "c0", "dtype": "bool"}), const_ref({"t": 0})
    (True, True, False)
    """
    return isinstance(v, dict) and "w" in v and (set(v) == {"w"} or set(v) == {"w", "dtype"})


def _check_leaf(v: dict, n_in: int, names: set[str]) -> None:
    if set(v) == {"t"}:
        if not isinstance(v["t"], int) or not 0 <= v["t"] < n_in:
            raise ShapeError(f"an Op argument names tensor input {v['t']!r}, the node has {n_in} input(s); "
                             "received: {\"t\": ...}. Fix: connect the missing input (ports 0, 1, ...)")
    elif const_ref(v):
        if v.get("dtype", "bool") != "bool":
            raise ShapeError(f"a stored constant is read as itself or as bool; received: dtype "
                             f"{str(v['dtype'])[:20]!r}. Fix: re-import the model")
        if v["w"] not in names:
            raise ShapeError(f"an Op argument names the constant {str(v['w'])[:30]!r}, which the node does not "
                             "store; received: {\"w\": ...}. Fix: re-import the model")
    elif set(v) == {"b"}:
        if not isinstance(v["b"], int) or not 1 <= v["b"] <= 1 << 16:
            raise ShapeError(f"a batch multiple must be a positive integer; received: {v['b']!r}. Fix: re-import")
    elif set(v) == {"dtype"}:
        dtype_of(v["dtype"])
    elif set(v) == {"tensor", "dtype", "shape"}:
        vals, shape = v["tensor"], v["shape"]
        if not isinstance(vals, list) or len(vals) > MAX_INLINE or not isinstance(shape, list) or \
                not all(isinstance(s, int) and s >= 0 for s in shape) or math.prod(shape) != len(vals) or \
                not all(isinstance(x, int | float) for x in vals):
            raise ShapeError(f"an inline constant must hold at most {MAX_INLINE} numbers matching its shape; "
                             f"received: {str(v)[:40]}. Fix: re-import the model")
        dtype = dtype_of(v["dtype"])
        if not dtype.is_floating_point and dtype != _torch().bool:  # torch.tensor refuses these in the forward
            info = _torch().iinfo(dtype)
            bad = [x for x in vals if (isinstance(x, float) and not math.isfinite(x)) or not info.min <= x <= info.max]
            if bad:
                raise ShapeError(f"an inline {v['dtype']} constant's values must lie in {info.min}..{info.max}; "
                                 f"received: {str(bad[0])[:30]}. Fix: use values in that range, or a float32 constant")
    else:
        raise ShapeError(f"unknown Op argument; received: {str(v)[:40]}. Fix: use {{\"t\": i}}, {{\"w\": name}}, "
                         "{\"b\": k}, {\"dtype\": ...} or an inline tensor")


# ----------------------------------------------------------------------------------- the call against the schema
# Every value is checked against the operator's schema before torch sees it: a raw integer where torch expects
# a dtype reaches ATen unchecked (and a later call in the same process can crash), so dtypes, layouts, memory
# formats, devices and generators are only taken in the forms LayerLab writes (``{"dtype": ...}``, or None).

_INT_LIMIT = 1 << 62
_TENSOR_RETURNS = ("Tensor", "List[Tensor]")
_KNOWN = ("ScalarType", "Tensor", "int", "float", "number", "bool", "str", "false")
_ENUM_NAMES = ("dtype", "layout", "memory_format", "device")  # integers there are enum values, never literals


def _is_tensor(v: Any) -> bool:
    return isinstance(v, dict) and (set(v) in ({"t"}, {"tensor", "dtype", "shape"}) or const_ref(v))


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool) and -_INT_LIMIT <= v <= _INT_LIMIT) or \
        (isinstance(v, dict) and set(v) == {"b"})


def _fits(t: str, v: Any, n: int | None = None) -> bool:
    """Whether the JSON value ``v`` is one LayerLab accepts for a schema argument of type ``t``.

    >>> _fits("Optional[ScalarType]", -1), _fits("Optional[ScalarType]", {"dtype": "int64"})
    (False, True)
    """
    if t.startswith("Optional["):
        return v is None or _fits(t[9:-1], v, n)
    if t.startswith("List["):
        inner = t[5:-1]
        if n is not None and inner in ("int", "float", "bool") and _fits(inner, v):  # int[2] takes one int
            return True
        if n is not None and n > 1 and isinstance(v, list) and len(v) != n:  # int[2]: two (meta kernels take any)
            return False
        return isinstance(v, list) and len(v) <= 64 and all(_fits(inner, x) for x in v)
    if t == "Tensor":
        return _is_tensor(v)
    if t == "int":
        return _is_int(v)
    if t == "float":
        return isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _INT_LIMIT)
    if t == "number":
        return isinstance(v, bool | float) or _is_int(v)
    if t == "bool":
        return isinstance(v, bool)
    if t == "str":
        return isinstance(v, str) and len(v) <= 200
    if t == "ScalarType":
        return isinstance(v, dict) and set(v) == {"dtype"}
    if t == "false":
        return v is False
    return False  # Layout, MemoryFormat, Device, Generator, complex ...: only None (where optional)


def _type_name(t: str) -> str:
    return {"ScalarType": 'a dtype such as {"dtype": "float32"}', "Tensor": 'a tensor ({"t": i}, {"w": name} or '
            "an inline constant)", "int": "an integer", "float": "a number", "number": "a number", "bool":
            "true or false", "str": "a string of at most 200 characters", "false": "false"}.get(t, f"null (LayerLab's graphs name no {t})")


def _bind(schema, args: list, kwargs: dict) -> tuple[dict | None, str, int]:
    """(argument name -> value, "" ) when the call fits ``schema``; else (None, why, how far it got)."""
    params = list(schema.arguments)
    positional = [a for a in params if not a.kwarg_only]
    if len(args) > len(positional):
        return None, f"takes at most {len(positional)} positional argument(s); received: {len(args)}", 0
    bound = {a.name: v for a, v in zip(positional, args, strict=False)}
    names = {a.name for a in params}
    for k, v in kwargs.items():
        if k not in names or k in bound:
            return None, f"has no keyword argument `{str(k)[:30]}` here; received: {k}=...", len(bound)
        bound[k] = v
    for k, a in enumerate(params):
        t = str(a.real_type)
        if a.name in _ENUM_NAMES and t.removeprefix("Optional[").rstrip("]") == "int":
            t = "Optional[ScalarType]" if a.name == "dtype" else "Optional[Layout]"  # TorchScript's int-typed enums
        if a.name == "pin_memory":
            t = "Optional[false]"  # pinned memory needs an accelerator: never written by LayerLab
        if a.name not in bound:
            if not a.has_default_value():  # `Tensor? weight` without `=None` too: torch needs a value for it
                return None, f"needs argument `{a.name}`; received: nothing", k
            continue
        if not _fits(t, bound[a.name], a.N):
            inner = t.removeprefix("Optional[").rstrip("]")
            opt = " or null" if t.startswith("Optional[") and inner in _KNOWN else ""
            fixed = f" (a list of {a.N})" if a.N and a.N > 1 and inner.startswith("List[") else ""
            return None, (f"argument `{a.name}` must be {_type_name(inner)}{fixed}{opt}; received: "
                          f"{str(json.dumps(bound[a.name]))[:40]}"), 2 * k + 1 + (inner in _KNOWN)
    return bound, "", 2 * len(params) + 2


def _overloads(name: str, fn) -> list:
    """The overloads a call of ``fn`` may mean: itself for ``aten.x.overload``, else every overload of the packet
    that is functional (never writes into its arguments) and returns tensors."""
    torch = _torch()
    cands = [fn] if isinstance(fn, torch._ops.OpOverload) else [getattr(fn, o) for o in fn.overloads()]
    return [o for o in cands if "Dimname" not in str(o._schema) and not o._overloadname.startswith("prim_")]


def parse_call(p: dict, n_in: int) -> tuple[Any, list, dict]:
    """(operator overload, args, kwargs) of an Op node, every argument checked against the operator's schema.

    The overload is the first whose schema the call fits (LayerLab resolves it, not torch at run time), so the
    compiled model calls exactly what was checked. Raises ShapeError for anything else, e.g. a raw integer
    where a dtype belongs:

    >>> from builder.graph.layers.op import OP
    >>> parse_call({**OP.defaults(), "op": "aten.to", "args": '[{"t": 0}, -1]'}, 1)
    Traceback (most recent call last):
    ...
    builder.graph.spec.ShapeError: aten.to: argument `dtype` must be a dtype such as {"dtype": "float32"}; \
received: -1 (overload to.dtype). Fix: write the call as the operator's schema says (aten::to.dtype(...))
    """
    return resolve_call(p, n_in)[:3]


def resolve_call(p: dict, n_in: int) -> tuple[Any, list, dict, dict]:
    """:func:`parse_call` and the arguments bound by name (what :func:`_check_values` reads)."""
    fn = resolve_op(p.get("op"))
    w, b = consts(p)
    names = set(w) | set(b)
    args, kwargs = _json(p, "args", list), _json(p, "kwargs", dict)

    def leaf(v):
        _check_leaf(v, n_in, names)
        return v
    walk_call(args, leaf)
    walk_call(list(kwargs.values()), leaf)
    used: set = set()
    walk_call([args, list(kwargs.values())], lambda v: used.add(v["w"]) if const_ref(v) else None)
    if names - used:  # the compiled model would drop it, the exported .py keep it: their state dicts would differ
        raise ShapeError(f"the Op node stores constants its call never uses; received: "
                         f"{', '.join(sorted(names - used))[:60]}. Fix: remove them from weights/buffers")
    if not all(is_code_name(k) for k in kwargs):
        raise ShapeError("Op keyword names must be ASCII Python identifiers, no keyword; received: "
                         f"{list(kwargs)[:4]}. Fix: re-import the model")
    best = None
    for o in _overloads(p["op"], fn):
        bound, why, depth = _bind(o._schema, args, kwargs)
        if bound is None:
            if best is None or depth > best[2]:
                best = (o, why, depth)
            continue
        schema = o._schema
        if schema.is_mutable:
            raise ShapeError(f"{p['op']} writes into its arguments (in place), which breaks the backward pass; "
                             f"received: op={p['op']} ({o.name()}). Fix: use the functional operator, e.g. "
                             f"{p['op'].rstrip('_') if p['op'].endswith('_') else 'aten.<name>'}")
        rets = [str(r.real_type) for r in schema.returns]
        if not rets or any(r not in _TENSOR_RETURNS for r in rets):
            if len(_overloads(p["op"], fn)) == 1:
                raise ShapeError(f"{p['op']} returns something other than tensors; received: "
                                 f"{', '.join(rets) or 'nothing'}. Fix: use an operator that returns tensors")
            best = best or (o, "returns no tensor", 0)
            continue
        return o, args, kwargs, bound
    if best is None:
        raise ShapeError(f"{p['op']} has no overload LayerLab can call; received: op={p['op']}. Fix: use another "
                         "operator")
    o, why, _ = best
    raise ShapeError(f"{p['op']}: {why} (overload {o.name().split('::')[-1]}). Fix: write the call as the "
                     f"operator's schema says ({str(o._schema).split('(')[0]}(...))")


__all__ = ["MAX_OUTPUTS", "MAX_INLINE", "MAX_JSON", "DTYPES", "OUTPUT_PORTS", "resolve_op", "const_ref", "consts", "dtype_of",
           "walk_call", "parse_call", "resolve_call"]
