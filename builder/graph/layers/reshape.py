"""Layer specs of the palette group Reshape: Flatten, Unflatten, Reshape, Permute and the reductions Mean, Sum,
Max, Min."""

from __future__ import annotations

import math
import operator

from builder.graph.layers._common import (
    _args,
    _check_dim,
    _float,
    _mask_check,
    _mod,
)
from builder.graph.spec import (
    MAX_SIZE,
    PADDING_MASK,
    Cost,
    LayerSpec,
    Param,
    ShapeError,
    TensorType,
    by_port,
    register,
)

# ----------------------------------------------------------------------------------------- Reshape


def _flatten_shape(p, ins):
    (t,) = ins
    r = len(t.shape)
    s = _check_dim(p["start_dim"], r, "start_dim")
    end = _check_dim(p["end_dim"], r, "end_dim")
    if end < s:
        raise ShapeError(f"end_dim must not come before start_dim; received: start_dim={p['start_dim']}, "
                         f"end_dim={p['end_dim']}. Fix: swap them")
    return TensorType((*t.shape[:s], math.prod(t.shape[s:end + 1]), *t.shape[end + 1:]), t.kind, t.vocab)


register(LayerSpec(
    "Flatten", "Reshape", "Flattens dimensions start_dim..end_dim into one (default: all but the batch).",
    params=[Param("start_dim", "int", 1, "First dimension to flatten (0 is the batch).", min=-8, max=8,
                  tunable=False),
            Param("end_dim", "int", -1, "Last dimension to flatten.", min=-8, max=8, tunable=False)],
    shape=_flatten_shape, ctor=_mod("Flatten"), saves="none"))


def _unflatten_shape(p, ins):
    (t,) = ins
    d = _check_dim(p["dim"], len(t.shape))
    sizes = p["unflattened_size"]
    if math.prod(sizes) != t.shape[d]:
        raise ShapeError(f"unflattened_size must multiply to the size of dim {p['dim']} ({t.shape[d]}); received: "
                         f"unflattened_size={sizes} (product {math.prod(sizes)}) for input {t}. Fix: choose sizes whose "
                         f"product is {t.shape[d]}")
    return TensorType((*t.shape[:d], *sizes, *t.shape[d + 1:]), t.kind, t.vocab)


register(LayerSpec(
    "Unflatten", "Reshape", "Splits one dimension into several, e.g. 64 → [1, 8, 8].",
    params=[Param("dim", "int", 1, "Dimension to split (0 is the batch).", min=-8, max=8),
            Param("unflattened_size", "int_list", [1, 8, 8], "Sizes to split it into.", min=1, max=MAX_SIZE)],
    shape=_unflatten_shape, ctor=lambda p, ins: ("Unflatten", {"dim": p["dim"],
                                                               "unflattened_size": tuple(p["unflattened_size"])}), saves="none"))


def _reshape_shape(p, ins):
    (t,) = ins
    target = list(p["shape"])
    total = t.numel
    known = math.prod(s for s in target if s != -1)
    if -1 in target:
        if known == 0 or total % known:
            raise ShapeError(f"cannot reshape {t} ({total} values) to {target}. Fix: choose sizes that divide {total}")
        target[target.index(-1)] = total // known
    elif known != total:
        raise ShapeError(f"the new shape must hold the same {total} values as the input {t}; received: shape={target} "
                         f"({known} values). Fix: use sizes whose product is {total}, or -1 for one of them")
    return TensorType(tuple(target), t.kind, t.vocab)


register(LayerSpec(
    "Reshape", "Reshape", "Reshapes each sample to `shape` (one size may be -1).",
    params=[Param("shape", "int_list", [-1], "New shape without the batch dimension.", min=-1, max=MAX_SIZE)],
    shape=_reshape_shape, check=lambda p: [f"at most one size may be -1; received: shape={p['shape']}. Fix: give all "
                                           "sizes but one"] if p["shape"].count(-1) > 1 else [],
    emit=lambda e, attr, p, ins, types: e.method("reshape", ins[0], -1, *_reshape_shape(p, types).shape), saves="none"))


def _permute_shape(p, ins):
    (t,) = ins
    dims = p["dims"]
    full = len(t.shape) + 1
    if sorted(dims) != list(range(full)):
        raise ShapeError(f"`dims` must be a permutation of 0..{full - 1} for a {full}-d input {t}; received: "
                         f"dims={dims}. Fix: e.g. {[0, *range(full - 1, 0, -1)]}")
    return TensorType(tuple(t.shape[d - 1] for d in dims[1:]), t.kind, t.vocab)


register(LayerSpec(
    "Permute", "Reshape", "Reorders dimensions (torch numbering; 0, the batch, stays first), e.g. [0, 2, 1].",
    params=[Param("dims", "int_list", [0, 2, 1], "New order of the dimensions.", min=0, max=8)],
    shape=_permute_shape, check=lambda p: [f"the batch dimension must stay first; received: dims={p['dims']}. Fix: "
                                           "start with 0"] if p["dims"][0] != 0 else [],
    emit=lambda e, attr, p, ins, types: e.method("permute", ins[0], *p["dims"]), strides="any", saves="none"))


def _dim_list(p) -> list[int]:
    return list(p["dim"]) if isinstance(p["dim"], list | tuple) else [p["dim"]]


def _reduce_dims(p, t: TensorType) -> list[int]:
    """The non-batch indices of a reduction's ``dim`` list; repeated dims are refused."""
    dims = [_check_dim(d, len(t.shape)) for d in _dim_list(p)]
    if len(set(dims)) != len(dims):
        raise ShapeError(f"each dimension may be reduced once; received: dim={_dim_list(p)} for input {t}. "
                         "Fix: list every dimension once")
    return dims


def _reduce_shape(p, ins):
    (t,) = ins
    _float(t)
    dims = _reduce_dims(p, t)
    if p["keepdim"]:
        return TensorType(tuple(1 if i in dims else s for i, s in enumerate(t.shape)))
    return TensorType(tuple(s for i, s in enumerate(t.shape) if i not in dims))


def _reduce_emit(method: str):
    def emit(e, attr, p, ins, types):
        dims = _dim_list(p)
        dim = dims[0] if len(dims) == 1 else tuple(dims)
        kw = {"keepdim": True} if p["keepdim"] else {}
        return e.method(method, ins[0], dim, **kw)
    return emit


def _mean_shape(p, ins):
    """A Mean with a padding mask averages over the real steps (dim 1) only."""
    a = by_port(_MEAN, ins)
    t, mask = a["in"], a.get(PADDING_MASK)
    if mask is not None:
        _float(t)
        if not t.shape or _reduce_dims(p, t) != [0]:
            raise ShapeError(f"a padding mask averages over the steps only (dim 1 of a sequence); received: dim="
                             f"{_dim_list(p)} for input {t}. Fix: set dim to 1, or disconnect the padding_mask")
        _mask_check(mask, t, PADDING_MASK, "input")
    return _reduce_shape(p, [t])


def _mean_emit(e, attr, p, ins, types):
    """The mean over dim 1 of the steps the mask keeps: sum(x · keep) / max(1, count(keep))."""
    a = _args(_MEAN, ins, types)
    if PADDING_MASK not in a:
        return _reduce_emit("mean")(e, attr, p, [a["in"]], types)
    x = a["in"]
    rank = len(by_port(_MEAN, types)["in"].shape) + 1
    real = e.method("logical_not", a[PADDING_MASK], as_="real")  # (B, T)
    keep = e.fn(operator.getitem, real, (slice(None), slice(None), *[None] * (rank - 2)), as_="keep")  # (B, T, 1…)
    weight = e.method("to", keep, e.fn(getattr, x, "dtype", as_="dtype"), as_="weight")  # x's float type
    kw = {"keepdim": True} if p["keepdim"] else {}
    total = e.method("sum", e.method("mul", x, weight, as_="kept"), 1, **kw, as_="total")
    count = e.method("clamp", e.method("sum", weight, 1, **kw, as_="steps"), min=1.0, as_="count")
    return e.method("div", total, count)


def _mean_cost(p, ins, outs) -> Cost:
    """With a padding mask the mean is a product with the mask's weights, which keeps its input and the (T,) weights
    for the backward pass (measured with saved-tensor hooks: 16,641 values per sample of a (256, 64) input, where
    nothing was counted); without one it keeps nothing."""
    a = by_port(_MEAN, ins)
    if PADDING_MASK not in a:
        return Cost()
    return Cost(work=a["in"].numel + a["in"].shape[0], note="a masked mean keeps its input and the mask's weights")


for _name, _method, _what, _default in (
        ("Mean", "mean", "Averages", [1]), ("Sum", "sum", "Sums", [1]),
        ("Max", "amax", "Takes the maximum", [-1]), ("Min", "amin", "Takes the minimum", [-1])):
    _masked = _name == "Mean"
    _spec = register(LayerSpec(
        _name, "Reshape", f"{_what} over one or more dimensions, e.g. over time steps (dim 1) of a sequence or "
        "over height and width (dim [2, 3]) of an image."
        + (" An optional padding_mask port (from a sequence or token Input) leaves padded steps out of a mean over "
           "the steps." if _masked else ""),
        params=[Param("dim", "int_list", _default, "Dimension(s) to reduce (0 is the batch): 1, or a list such as "
                      "2, 3.", min=-8, max=8, scalar=True),
                Param("keepdim", "bool", False, "Keep each reduced dimension with size 1 (e.g. to broadcast back).")],
        shape=_mean_shape if _masked else _reduce_shape, emit=_mean_emit if _masked else _reduce_emit(_method),
        saves="both" if _name in ("Max", "Min") else "none",
        cost=_mean_cost if _masked else None,
        **({"inputs": ("in", PADDING_MASK), "optional_inputs": (PADDING_MASK,), "mask_inputs": (PADDING_MASK,)}
           if _masked else {})))
    if _masked:
        _MEAN = _spec
