"""An Op node's call on torch's ``meta`` device (nothing allocated): its outputs, and what autograd saves for
its backward pass, which the training-memory estimate counts (:func:`saved_cost`).

What an operator keeps is read from autograd itself rather than written per operator: the call runs with its float
inputs carrying gradients under ``saved_tensors_hooks``, and every saved tensor that is not an input or a constant
counts (the attention weights of ``aten.scaled_dot_product_attention``, a pooling's indices, ``aten.pow``'s
result). Before, an Op node counted no such tensor: attention over T steps kept T × T values per sample where
the estimate had T × features (measured: 6 to 23 times the estimate at T = 128 to 512).

>>> from builder.graph.spec import TensorType
>>> p = {"op": "aten.scaled_dot_product_attention", "args": '[{"t": 0}, {"t": 1}, {"t": 2}]', "kwargs": "{}",
...      "weights": "{}", "buffers": "{}", "outputs": 1}
>>> saved_cost(p, [TensorType((64, 8))] * 3, {}).work >= 64 * 64  # the (T, T) attention weights
True
"""

from __future__ import annotations

import math
from typing import Any

from builder.graph.layers._common import _torch
from builder.graph.layers.conv import blocked_padding
from builder.graph.layers.op_call import consts, dtype_of, parse_call, resolve_call, walk_call
from builder.graph.spec import TOKENS, Cost, ShapeError, TensorType


def _materialise(v: Any, tensors: list, consts_: dict, batch: int, device: str | None) -> Any:
    torch = _torch()

    def leaf(d):
        if "t" in d:
            return tensors[d["t"]]
        if "w" in d:  # a bool constant kept among the float buffers is read back as bool (op_call.const_ref)
            return consts_[d["w"]].bool() if d.get("dtype") == "bool" else consts_[d["w"]]
        if "b" in d:
            return d["b"] * batch
        if set(d) == {"dtype"}:
            return dtype_of(d["dtype"])
        return torch.tensor(d["tensor"], dtype=dtype_of(d["dtype"]), device=device).reshape(d["shape"])
    return walk_call(v, leaf)


def _in_dtype(t: TensorType, bools: bool):
    torch = _torch()
    if t.kind != TOKENS:
        return torch.float32
    return torch.bool if bools and t.vocab == 2 else torch.int64


def run_call(p: dict, ins: list[TensorType], batch: int, bools: bool = False, saved: dict | None = None) -> list:
    """The operator's outputs on torch's ``meta`` device for inputs of ``ins`` (token inputs as int64, or with
    ``bools`` those of a vocabulary of 2 as bool: an Op's bool output, e.g. ``aten.lt``'s, is typed as tokens of
    vocabulary 2). Nothing is allocated: inputs, constants and every factory operator's result (``aten.full``,
    ``aten.arange`` ...: their ``device`` is set to meta) are meta tensors, whatever sizes the call names. Float
    inputs and learned constants carry gradients, as in training and in Explain's input gradients: an operator
    autograd refuses there (a float input summed into ``dtype=uint8``) is refused here. With ``saved``, the tensors
    autograd saves for the call's backward pass beyond its inputs and constants are put in it (by id)."""
    torch = _torch()
    fn, args, kwargs = parse_call(p, len(ins))
    w, b = consts(p)
    grad = not torch.is_inference_mode_enabled()

    def meta(shape: tuple, dtype: Any, requires_grad: bool) -> Any:
        x = torch.empty(shape, dtype=dtype, device="meta")
        return x.requires_grad_() if grad and requires_grad and x.is_floating_point() else x

    # inputs as a layer's outputs (not leaves), learned constants as parameters (leaves)
    tensors = [meta((batch, *t.shape), _in_dtype(t, bools), True) for t in ins]
    tensors = [x.clone() if x.requires_grad else x for x in tensors]
    cs = {k: meta(s, torch.float32, k in w) for k, s in {**w, **b}.items()}
    kw = {k: _materialise(v, tensors, cs, batch, "meta") for k, v in kwargs.items()}
    if any(a.name == "device" for a in fn._schema.arguments):
        kw["device"] = "meta"  # a factory operator: its result is a meta tensor too
    kept: list = []  # what autograd saves for the backward pass (the memory estimate: saved_cost)
    hooks = torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t)
    try:
        with torch.enable_grad(), hooks:
            call = _as_the_cpu_runs(fn, _materialise(args, tensors, cs, batch, "meta"), kw) if saved is not None \
                else None
            out = call() if call is not None else fn(*_materialise(args, tensors, cs, batch, "meta"), **kw)
    except RuntimeError as ex:
        if "Autograd not support dtype" not in str(ex):
            raise
        raise ShapeError(f"{p['op']} computes on values that carry gradients, so it must return floating-point "
                         f"values; received: a result of dtype {str(ex).rsplit(':', 1)[-1].strip()}. Fix: leave out "
                         "the dtype argument, or cast the result with an Op aten.to after it") from None
    out = list(out) if isinstance(out, tuple | list) else [out]
    if not all(isinstance(o, torch.Tensor) and o.device.type == "meta" for o in out):
        raise ShapeError(f"{p['op']} returns something other than tensors; received: "
                         f"{', '.join(type(o).__name__ for o in out)}. Fix: re-import the model")
    if saved is not None:  # each saved tensor's storage once (a view counts as its base), inputs and constants not
        given = {id(x) for x in (*tensors, *cs.values())}
        for t in kept:
            base = t if t._base is None else t._base
            if id(base) not in given:
                saved[id(base)] = base
    return out


def _as_the_cpu_runs(fn: Any, args: list, kw: dict) -> Any:
    """Attention as the CPU computes it, for what autograd saves, or None for the call as it is: on meta,
    ``aten.scaled_dot_product_attention`` always takes its math backend, which keeps the (T, T) weights, while the
    CPU takes its fused kernel where torch's own choice says so (4-d query, key and value), which keeps a (T,)
    log-sum-exp instead (measured: 0.12-0.21 times the math backend's estimate at T = 128-256). The choice is asked
    with empty CPU tensors of the same sizes past the batch (nothing allocated, no kernel run)."""
    torch = _torch()
    if getattr(fn, "overloadpacket", None) is not torch.ops.aten.scaled_dot_product_attention:
        return None
    a = {**dict(zip([x.name for x in fn._schema.arguments], args, strict=False)), **kw}
    empty = [torch.empty((0, *t.shape[1:]), dtype=t.dtype).requires_grad_(t.requires_grad)
             if isinstance(t, torch.Tensor) else t for t in (a["query"], a["key"], a["value"], a.get("attn_mask"))]
    options = {k: a[k] for k in ("dropout_p", "is_causal") if k in a}
    try:
        fused = torch._fused_sdp_choice(*empty, **options, scale=a.get("scale"), enable_gqa=bool(a.get("enable_gqa")))
    except (RuntimeError, TypeError, ValueError):  # the call itself says why below
        return None
    if int(fused) != int(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
        return None
    return lambda: torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        a["query"], a["key"], a["value"], **options, attn_mask=a.get("attn_mask"), scale=a.get("scale"))[0]


def run_call_any(p: dict, ins: list[TensorType], batch: int, saved: dict | None = None) -> list:
    """:func:`run_call`; token inputs of a vocabulary of 2 are tried as bool when int64 is refused."""
    try:
        return run_call(p, ins, batch, saved=saved)
    except ShapeError:
        raise
    except Exception:  # noqa: BLE001 - retried with bools below, else re-raised
        if not any(t.kind == TOKENS and t.vocab == 2 for t in ins):
            raise
        try:
            return run_call(p, ins, batch, True, saved)
        except Exception:  # noqa: BLE001 - the first refusal is the one to show
            pass
        raise


#: the saved sizes the shape rule measured at batches 2 and 3, by call and inputs, for :func:`saved_cost` to take
#: (the analysis runs the rule, then the cost, of one node: the calls are not run twice)
_MEASURED: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {}


#: the peak bytes of a call's backward on meta (:func:`_backward_peak`) by call, inputs and batch: measured once
_PEAKS: dict[tuple[str, int], int] = {}


def _key(p: dict, ins: list[TensorType]) -> str:
    return repr(([p.get(k) for k in ("op", "args", "kwargs", "weights", "buffers", "outputs")], ins))


class _LiveBytes:
    """A dispatch mode that follows the storages the operators under it create (views and in-place results, which
    reuse an argument's storage, are not new) and records the most bytes alive together (``peak``): C++ keeps a
    formula's temporaries until its statement ends, so ``erf``'s backward holds five tensors of its input's size."""

    _made: Any = None  # the class, made once (torch is imported lazily)

    def __new__(cls):  # a subclass of torch's TorchDispatchMode, made when first needed
        if cls._made is not None:
            return cls._made()
        from torch.multiprocessing.reductions import StorageWeakRef  # lazy: heavy (torch)
        from torch.utils._python_dispatch import TorchDispatchMode  # lazy: heavy (torch)

        class Live(TorchDispatchMode):
            def __init__(self) -> None:
                super().__init__()
                self.live: dict[int, tuple[Any, int]] = {}
                self.peak = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                torch = _torch()
                out = func(*args, **(kwargs or {}))
                given = {a.untyped_storage()._cdata for a in torch.utils._pytree.tree_leaves((args, kwargs))
                         if isinstance(a, torch.Tensor)}
                for o in torch.utils._pytree.tree_leaves(out):
                    if isinstance(o, torch.Tensor) and o.untyped_storage()._cdata not in given:
                        st = o.untyped_storage()
                        known = self.live.get(st._cdata)
                        if known is None or known[0].expired():  # an address freed and reused is a new storage
                            self.live[st._cdata] = (StorageWeakRef(st), st.nbytes())
                for k in [k for k, (ref, _n) in self.live.items() if ref.expired()]:
                    del self.live[k]
                self.peak = max(self.peak, sum(n for _ref, n in self.live.values()))
                return out

        cls._made = Live
        return Live()


def _backward_peak(outs: list) -> int:
    """Bytes of the new tensors alive together at the peak of the call's backward pass on meta (its results
    ``outs`` given gradients), the input and constant gradients it ends with included; 0 without gradients, or
    where a meta kernel of the backward is missing (the saved tensors' gradients then stand alone)."""
    torch = _torch()
    float_outs = [o for o in outs if o.requires_grad]
    if not float_outs:
        return 0
    grads = [torch.empty_like(o) for o in float_outs]  # the gradient of the output: counted as the output's
    mode = _LiveBytes()
    try:
        with mode:
            torch.autograd.backward(float_outs, grads)
    except Exception:  # noqa: BLE001 - an estimate: a backward meta cannot run is measured by its saved tensors
        return 0
    return mode.peak


def saved_sizes(p: dict, ins: list[TensorType], batch: int, outs: list, saved: dict) -> tuple[int, int]:
    """Note what a call at ``batch`` (2 or 3) saved (``saved`` filled by :func:`run_call_any`, ``outs`` its
    results): bytes of every saved tensor, and of what its backward holds beyond the gradients of its inputs (the
    gradients of the saved float intermediates that are not an output, and the backward formula's temporaries);
    returns the two. The backward runs here, on meta, once."""
    results = {id(o if o._base is None else o._base) for o in outs}
    every = sum(math.prod(t.shape) * t.element_size() for t in saved.values())
    # float intermediates (not an output): their gradients are materialised by the call's backward
    between = sum(math.prod(t.shape) * t.element_size() for k, t in saved.items()
                  if k not in results and t.is_floating_point())
    # the backward's own temporaries: its peak of new tensors less the input gradients (the estimate counts those)
    grads_in = sum(math.prod((batch, *t.shape)) * 4 for t in ins if t.kind != TOKENS)
    key = _key(p, ins)
    if (key, batch) not in _PEAKS:  # every analysis pass (the Build page's each render) runs the call again
        if len(_PEAKS) > 4096:
            _PEAKS.clear()
        _PEAKS[key, batch] = _backward_peak(outs)
    between = max(between, _PEAKS[key, batch] - grads_in)
    if len(_MEASURED) > 4096:
        _MEASURED.clear()
    old = _MEASURED.get(key, (None, None))
    _MEASURED[key] = (old[0], (every, between)) if batch == 3 else ((every, between), old[1])
    return every, between


def saved_cost(p: dict, ins: list[TensorType], outs: Any) -> Cost:
    """Values per sample (float32 units: an int64 index counts two) that autograd keeps for the call's backward pass
    beyond its inputs, its output included where the backward reads it: measured on the meta device at batches 2
    and 3 (by the shape rule, else here), the difference. ``backward``: the float ones that are not an output,
    whose gradients its backward pass materialises (attention's (T, T) weights: a training step's peak was 2.0-2.6
    times the estimate without them), or the backward formula's temporaries where they are more (erf's: a CPU
    step's peak was 1.40 times the estimate without them). On meta, attention runs as its math backend, which keeps the T × T weights;
    a fused CPU or CUDA kernel keeps less, so the figure is an upper bound there.

    >>> from builder.graph.spec import TensorType
    >>> p = {"op": "aten.erf", "args": '[{"t": 0}]', "kwargs": "{}", "weights": "{}", "buffers": "{}", "outputs": 1}
    >>> saved_cost(p, [TensorType((3, 4))], {}).work  # erf's backward reads its input only
    0
    """
    key = _key(p, ins)
    padded = _convolution_padding(p, ins, outs)
    two, three = _MEASURED.get(key, (None, None))
    if two is None or three is None:  # not measured by the shape rule (or only half, by another thread)
        two, three = (saved_sizes(p, ins, batch, run_call_any(p, ins, batch, saved), saved)
                      for batch, saved in ((2, {}), (3, {})))
    (every2, between2), (every3, between3) = two, three
    per_sample, grads = max(0, every3 - every2), max(0, between3 - between2)
    return Cost(work=-(-per_sample // 4), backward=-(-grads // 4) + padded,
                cuda_backward=-(-grads // 4) if padded else None,
                note=f"{p.get('op')} keeps intermediates for its backward pass" if per_sample else "")


#: the operators torch's CPU runs as oneDNN convolutions (their first argument, ``input``, channels first)
_CONVOLUTIONS = frozenset({"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
                           "conv_transpose2d", "conv_transpose3d"})


def _convolution_padding(p: dict, ins: list[TensorType], outs: Any) -> int:
    """Values per sample of the channel padding a CPU convolution's backward copies (measured on meta it is
    missing: an Op ``aten.conv2d`` 1→1 at 64×64 held 4.30× the estimate, ``aten.conv1d`` 1→1 at 4,096 steps
    4.50×): :func:`builder.graph.layers.conv.blocked_padding` of its input and output; 0 for other operators."""
    name = str(p.get("op")).split(".")[1] if str(p.get("op")).count(".") else ""
    first = next(iter(outs.values()), None) if isinstance(outs, dict) else None
    if name not in _CONVOLUTIONS or first is None:
        return 0
    x = resolve_call(p, len(ins))[3].get("input")
    given = [ins[x["t"]]] if isinstance(x, dict) and isinstance(x.get("t"), int) and x["t"] < len(ins) else []
    return blocked_padding(*given, first)


__all__ = ["run_call", "run_call_any", "saved_cost", "saved_sizes"]
