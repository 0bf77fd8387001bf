"""Calls of the generic operator node (``Op``) that run in PyTorch but have no ONNX form: torch's exporter refuses
them ("No ONNX function found ... no decompositions registered"), or writes a file that computes something else
(onnxruntime then differs and the export is refused). Each is a warning on its node when the graph is validated
(``Op``'s lint: the model trains and runs, only the ONNX export cannot take it) and the reason
:func:`builder.interchange.onnx_export.export_onnx` names the node with, before it exports anything.

Found by the graph fuzzer's ONNX round trip (``make fuzz``) and measured against torch's exporter at opset 18:

* ``adaptive_max_pool1d`` / ``adaptive_max_pool2d``: exported only when every output size divides its input size
  (then it is a plain max pool); 3 from 5, or 7 from 5, has no ONNX form;
* ``adaptive_avg_pool3d``: only to 1×1×1 (global average pooling); ``adaptive_avg_pool1d``/``2d`` export at any size;
* ``avg_pool2d`` / ``avg_pool3d`` with ``divisor_override``: the exporter drops it (ONNX's AveragePool has none), so
  only a divisor equal to the kernel's size over windows that are always whole computes the same;
* ``view.dtype`` (a bit cast): no ONNX function at all;
* ``rsub.Scalar`` of integer ids with a float ``other`` or ``alpha``: the exporter finds no overload of ``sub``;
* ``scaled_dot_product_attention`` on query, key or value of another rank than 4 (the exporter asserts it);
* ``pow`` of integer ids raised to a float tensor (the file's Pow keeps int64; deep fuzzer);
* ``squeeze.dim`` / ``squeeze.dims`` that squeeze nothing (no dimension, or none of size 1): a no-op in PyTorch, an
  invalid ONNX Squeeze or ``prims.view_of`` in the file (deep fuzzer);
* ``_prelu_kernel`` with a slope of more than one value, unless it is one per feature of a (batch, features)
  input: onnxruntime refuses the file's PRelu broadcast (a slope from a tensor input always carries the batch).

>>> from builder.graph.spec import TensorType
>>> print(no_onnx_form({"op": "aten.adaptive_max_pool1d", "args": '[{"t": 0}, [3]]', "kwargs": "{}",
...                     "weights": "{}", "buffers": "{}", "outputs": 2}, [TensorType((2, 5))]))
aten.adaptive_max_pool1d has no ONNX form when an output size does not divide its input size (ONNX has no adaptive \
max pooling; the exporter needs a plain max pool); received: output size [3] from input size [5]. Fix: pick output \
sizes that divide [5] (e.g. [1] or [5]), or use aten.max_pool1d with a fixed kernel, to export this model to ONNX \
(it trains and runs as it is)
"""

from __future__ import annotations

import math
from typing import Any

from builder.graph.layers.op_call import const_ref, consts, resolve_call
from builder.graph.spec import TOKENS, TensorType

_ADAPTIVE_MAX = {"adaptive_max_pool1d": 1, "adaptive_max_pool2d": 2}
_AVG_DIVISOR = {"avg_pool2d": 2, "avg_pool3d": 3}
_FIX_TAIL = " to export this model to ONNX (it trains and runs as it is)"


def _ints(v: Any, n: int) -> list[int] | None:
    """A size argument as ``n`` ints (one int repeated), None when it is not plain integers."""
    if isinstance(v, int) and not isinstance(v, bool):
        return [v] * n
    if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return list(v) * n if len(v) == 1 and n > 1 else list(v)
    return None


def pool_args(bound: dict, dims: int) -> tuple[list[int], list[int], list[int], list[int]] | None:
    """A pooling call's kernel, stride, padding and dilation, one int per spatial dimension (a stride left empty:
    the kernel's; padding 0 and dilation 1 when not given), or None when any is not plain integers of 1 or ``dims``
    values. One reading for the checks of :mod:`builder.graph.layers.op` and the ONNX rule here.

    >>> pool_args({"kernel_size": [2], "stride": [], "padding": 1}, 2)
    ([2, 2], [2, 2], [1, 1], [1, 1])
    """
    def per_dim(v: Any, default: list[int]) -> list[int] | None:
        v = default if v in (None, []) else v
        v = [v] if type(v) is int else v
        ok = isinstance(v, list) and len(v) in (1, dims) and all(type(i) is int for i in v)
        return (v * dims if len(v) == 1 else list(v)) if ok else None

    k = per_dim(bound.get("kernel_size"), [])
    rest = [per_dim(bound.get(a), d) for a, d in (("stride", k or []), ("padding", [0]), ("dilation", [1]))]
    return None if k is None or None in rest else (k, *rest)


def _input_shape(bound: dict, ins: list[TensorType]) -> tuple[int, ...] | None:
    x = bound.get("self", bound.get("input"))
    if isinstance(x, dict) and set(x) == {"t"} and isinstance(x["t"], int) and 0 <= x["t"] < len(ins):
        return tuple(ins[x["t"]].shape)
    return None


def _is_ids(x: Any, ins: list[TensorType]) -> bool:
    return isinstance(x, dict) and set(x) == {"t"} and isinstance(x["t"], int) and 0 <= x["t"] < len(ins) \
        and ins[x["t"]].kind == TOKENS


def _is_float_tensor(x: Any, ins: list[TensorType]) -> bool:
    """Whether a tensor argument holds float values: a float input, a stored constant, a float inline constant."""
    if isinstance(x, dict) and set(x) == {"t"}:
        return isinstance(x["t"], int) and 0 <= x["t"] < len(ins) and ins[x["t"]].kind != TOKENS
    return (const_ref(x) and x.get("dtype") != "bool") or \
        (isinstance(x, dict) and "tensor" in x and x.get("dtype") in ("float32", "float64", "float16", "bfloat16"))


def _describe(x: Any) -> str:
    """A tensor argument in words: ``a float input``, ``the stored constant c0``, ``an inline float32 constant``."""
    if "t" in x:
        return f"input {x['t']} (float)"
    return f"the stored constant {x['w']}" if "w" in x else f"an inline {x['dtype']} constant"


def _arg_shape(w: Any, p: dict, ins: list[TensorType]) -> tuple[int, ...] | None:
    """The shape of a tensor argument: a tensor input's (with its batch), a stored or inline constant's; None when
    unknown."""
    if isinstance(w, dict) and set(w) == {"t"} and isinstance(w["t"], int) and 0 <= w["t"] < len(ins):
        return (2, *ins[w["t"]].shape)  # the batch (any size but 1 in use) is part of it
    if isinstance(w, dict) and "tensor" in w and isinstance(w.get("shape"), list):
        return tuple(w["shape"])
    if const_ref(w):
        shape = consts(p)[0].get(w["w"]) or consts(p)[1].get(w["w"])
        return tuple(shape) if shape is not None else None
    return None


def no_onnx_form(p: dict, ins: list[TensorType]) -> str | None:
    """Why this Op node's call has no ONNX form (rule; received; fix), or None when it has one, as far as known."""
    try:
        o, _, _, bound = resolve_call(p, len(ins))
    except Exception:  # noqa: BLE001 - an invalid call is validation's to refuse, not this rule's
        return None
    name = o._schema.name.split("::")[-1]
    if name == "scaled_dot_product_attention":
        ranks = [len(s_) if (s_ := _arg_shape(bound.get(k), p, ins)) is not None else 4
                 for k in ("query", "key", "value")]
        if any(r != 4 for r in ranks):
            return (f"aten.scaled_dot_product_attention has no ONNX form but on 4-d query, key and value (batch, "
                    f"heads, length, features); received: ranks {ranks} (batch included). Fix: add a heads axis "
                    f"(aten.unsqueeze at 1) before it and remove it after,{_FIX_TAIL}")
    shape = _input_shape(bound, ins)
    if shape is None:
        return None
    if name == "pow" and _is_ids(bound.get("self"), ins) and _is_float_tensor(bound.get("exponent"), ins):
        return (f"aten.pow of integer ids raised to a float tensor has no ONNX form (the exporter's Pow keeps the "
                f"ids' int64 type, which the checker refuses for a float result); received: exponent "
                f"{_describe(bound['exponent'])}. Fix: convert the ids to float first (aten._to_copy with dtype "
                f"float32),{_FIX_TAIL}")
    if name == "squeeze" and "dim" in bound:  # squeeze.dim / squeeze.dims (plain squeeze: validation's batch check)
        dims = bound["dim"] if isinstance(bound["dim"], list) else [bound["dim"]]
        full = (2, *shape)  # the batch is never squeezed here: validation refuses a squeeze of it at batch 1
        sizes = [full[d] for d in dims if isinstance(d, int) and -len(full) <= d < len(full)]
        if len(sizes) == len(dims) and 1 not in sizes:
            what = "no dimension" if not dims else f"only dimensions whose size is not 1 ({sizes})"
            return (f"aten.squeeze of {what} has no ONNX form (in PyTorch it leaves the tensor as it is; ONNX's "
                    f"Squeeze refuses such a dimension, and the exporter has no function for an empty one); received: "
                    f"dim={bound['dim']} on an input of shape (batch, {', '.join(map(str, shape))}). Fix: remove the "
                    f"node (it changes nothing), or squeeze a dimension of size 1,{_FIX_TAIL}")
    if name == "view" and "dtype" in bound:
        return (f"aten.view with a dtype (a bit cast) has no ONNX form; received: dtype={bound['dtype']}. Fix: use "
                f"aten._to_copy with that dtype (a value conversion),{_FIX_TAIL}")
    if name == "rsub" and any(isinstance(bound.get(k), float) for k in ("other", "alpha")) and \
            _is_ids(bound.get("self"), ins):
        return (f"aten.rsub of integer ids with a float scalar has no ONNX form (the exporter finds no overload of "
                f"sub); received: other={bound.get('other')}, alpha={bound.get('alpha', 1)}. Fix: write integers "
                f"(1, not 1.0), or convert the ids to float first (aten._to_copy),{_FIX_TAIL}")
    if name == "_prelu_kernel" and (w := _arg_shape(bound.get("weight"), p, ins)) is not None and math.prod(w) != 1 \
            and not (len(shape) == 1 and list(w) == [shape[0]]):
        return (f"aten._prelu_kernel with a slope of more than one value has no ONNX form unless the input is "
                f"(batch, features) and the slope one per feature (onnxruntime refuses the PRelu broadcast); "
                f"received: slope of shape {list(w)} for input (batch, {', '.join(map(str, shape))}). Fix: use one "
                f"slope (shape [1]), or aten.prelu (one per channel),{_FIX_TAIL}")
    if name in _ADAPTIVE_MAX or name == "adaptive_avg_pool3d":
        k = _ADAPTIVE_MAX.get(name, 3)
        out, size = _ints(bound.get("output_size"), k), list(shape[-k:])
        if out is None or len(out) != k or len(size) != k:
            return None
        if name == "adaptive_avg_pool3d":
            if out == [1, 1, 1]:
                return None
            return (f"aten.{name} has no ONNX form but to 1×1×1 (global average pooling); received: output size "
                    f"{out} from input size {size}. Fix: pool to [1, 1, 1], or use aten.avg_pool3d with a fixed "
                    f"kernel,{_FIX_TAIL}")
        if all(s % d == 0 for s, d in zip(size, out, strict=True) if d > 0):
            return None
        ok = sorted({d for d in range(1, max(size) + 1) if all(s % d == 0 for s in size)})
        return (f"aten.{name} has no ONNX form when an output size does not divide its input size (ONNX has no "
                f"adaptive max pooling; the exporter needs a plain max pool); received: output size {out} from "
                f"input size {size}. Fix: pick output sizes that divide {size} (e.g. {[ok[0]] * k} or {size}), or "
                f"use aten.max_pool{k}d with a fixed kernel,{_FIX_TAIL}")
    if bound.get("ceil_mode") is True and (why := _ceil_mode_window(name, bound, shape)) is not None:
        return why
    if name in _AVG_DIVISOR and bound.get("divisor_override") is not None:
        k = _AVG_DIVISOR[name]
        kernel = _ints(bound.get("kernel_size"), k)
        pad = _ints(bound.get("padding", 0), k)
        divisor = bound["divisor_override"]
        whole = pad is not None and (not any(pad) or bound.get("count_include_pad", True)) \
            and not bound.get("ceil_mode", False)
        if kernel is not None and divisor == math.prod(kernel) and whole:
            return None
        return (f"aten.{name}'s divisor_override has no ONNX form (ONNX's AveragePool divides by the window's size; "
                f"the exporter drops the override); received: divisor_override={divisor} with kernel {kernel}"
                f"{', padding not counted' if pad and any(pad) and not bound.get('count_include_pad', True) else ''}"
                f"{', ceil_mode' if bound.get('ceil_mode') else ''}. Fix: leave divisor_override out (null), or "
                f"scale the result with aten.mul,{_FIX_TAIL}")
    return None


def _ceil_mode_window(name: str, bound: dict, shape: tuple[int, ...]) -> str | None:
    """A pooling with ``ceil_mode`` whose length ONNX computes otherwise: torch drops a last window that would start
    past the input (:func:`builder.graph.layers.conv.pool_len`), ONNX's pooling keeps it (the checker then finds
    two shapes)."""
    from builder.graph.layers.conv import pool_len  # lazy: conv imports the layer registry

    kind = next((k for k in ("avg_pool", "max_pool") if name.startswith(k)), None)
    if kind is None or not name[len(kind):len(kind) + 1].isdigit():
        return None
    dims = int(name[len(kind)])
    args = pool_args(bound, dims)
    if args is None or len(shape) < dims:
        return None
    k, st, pad, dil = args
    sizes = list(shape[-dims:])
    for i, size in enumerate(sizes):
        span = size + 2 * pad[i] - dil[i] * (k[i] - 1) - 1
        onnx = -(-span // st[i]) + 1 if span >= 0 else 0
        if onnx != pool_len(size, k[i], st[i], pad[i], dil[i], True):
            return (f"aten.{name} with ceil_mode has no ONNX form here: its last window would start past the input, "
                    f"which torch drops and ONNX's pooling keeps (one more output); received: kernel {k}, stride "
                    f"{st}, padding {pad} on sizes {sizes}. Fix: set ceil_mode to false and pad the input (aten.pad), "
                    f"or choose a stride that fits,{_FIX_TAIL}")
    return None


def onnx_lint(p: dict, ins: list[TensorType]) -> list[str]:
    """``Op``'s lint: the warning of :func:`no_onnx_form`, if any."""
    why = no_onnx_form(p, ins)
    return [why] if why else []


__all__ = ["no_onnx_form", "onnx_lint", "pool_args"]
