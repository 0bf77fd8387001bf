"""Hypothesis strategies shared by the core tests: parameters from a layer's schema, inputs by rank."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from builder.graph.registry import LayerSpec, Param

RANK = {  # input rank (without batch) each layer type expects
    "Conv1d": (2,), "MaxPool1d": (2,), "AvgPool1d": (2,), "AdaptiveAvgPool1d": (2,), "BatchNorm1d": (1, 2),
    "Conv2d": (3,), "ConvTranspose2d": (3,), "MaxPool2d": (3,), "AvgPool2d": (3,), "AdaptiveAvgPool2d": (3,),
    "BatchNorm2d": (3,), "Dropout2d": (3,), "GroupNorm": (2, 3), "RNN": (2,), "LSTM": (2,), "GRU": (2,),
    "MultiheadAttention": (2,), "TransformerEncoderLayer": (2,), "TransformerDecoderLayer": (2,),
    "PositionalEncoding": (2,), "Embedding": (1,),
    "Unflatten": (1, 2), "Permute": (2, 3), "Mean": (2, 3), "Sum": (2, 3), "Max": (2, 3), "Min": (2, 3),
    "Transpose": (2, 3), "InstanceNorm1d": (2,), "InstanceNorm2d": (3,), "LocalResponseNorm": (2, 3),
    "PixelShuffle": (3,), "PixelUnshuffle": (3,), "Upsample": (2, 3), "MatMul": (2, 3), "ConvTranspose1d": (2,),
}
# drawn values where the schema's range is mostly invalid for small inputs
_SMALL = {"Arithmetic.constant": (-2.0, -0.5, 0.5, 2.0, 3.0), "Upsample.scale_factor": (None, 0.5, 1.5, 2.0, 3.0),
          "Pad.value": (0.0, -1.0, 2.5), "Clamp.min": (None, -1.0, 0.0), "Clamp.max": (None, 0.5, 2.0),
          "LocalResponseNorm.size": (1, 2, 5, 64, 1024)}  # the size pads a copy of the input (memory estimate)
CAP = {"out_features": 12, "out_channels": 8, "hidden_size": 8, "embedding_dim": 8, "dim_feedforward": 16,
       "kernel_size": 4, "stride": 3, "padding": 2, "dilation": 2, "output_padding": 1, "num_layers": 2,
       "output_size": 4, "max_len": 40, "num_groups": 4, "vocab_size": 20}


def param_value(p: Param, in_shape: tuple[int, ...]) -> st.SearchStrategy:
    """A valid value for one parameter, kept small so modules build fast."""
    if p.kind == "bool":
        return st.booleans()
    if p.kind == "choice":
        return st.sampled_from(p.choices)
    if p.kind == "float":
        lo = p.min if p.min is not None else -5.0
        hi = p.max if p.max is not None else 5.0
        if p.name in ("p", "dropout"):
            hi = min(hi, 0.9)
        # float32 holds it (builder.graph.spec.float_problem): no nonzero magnitude below 1e-38
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(lambda v: 0.0 if abs(v) < 1e-38 else v)
    if p.kind in ("int", "int_or_pair"):
        lo = int(p.min) if p.min is not None else -3
        hi = min(int(p.max) if p.max is not None else 3, max(lo, CAP.get(p.name, 6)))
        if p.name in ("dim", "dim0", "dim1"):
            r = len(in_shape)
            ints = st.integers(1, r) | st.integers(-r, -1)
        else:
            ints = st.integers(lo, hi)
        base = ints if p.kind == "int" else ints | st.lists(ints, min_size=2, max_size=2)
        return st.none() | base if p.nullable else base
    if p.kind == "str":  # Op's JSON texts: each drawn from the valid cases' values (mixed, they may not fit)
        return st.sampled_from(_STR_VALUES[p.name]) if p.name in _STR_VALUES else st.text(max_size=8)
    raise ValueError(p.kind)


def _t(i: int) -> dict:
    return {"t": i}


def op_cases(shape: tuple[int, ...]) -> list[tuple[int, dict]]:
    """(tensor inputs, params) of valid ``Op`` nodes for inputs of ``shape`` (cheap ops, each argument form)."""
    last = list(shape[-1:])
    cases = [
        (1, {"op": "aten.erf", "args": [_t(0)]}),
        (1, {"op": "aten.hardswish", "args": [_t(0)]}),
        (2, {"op": "aten.add.Tensor", "args": [_t(0), _t(1)], "kwargs": {"alpha": 2}}),
        (1, {"op": "aten.mul.Tensor", "args": [_t(0), {"w": "scale"}], "weights": {"scale": last}}),
        (1, {"op": "aten.add.Tensor", "args": [_t(0), {"w": "shift"}], "buffers": {"shift": last}}),
        (1, {"op": "aten.mul.Tensor", "args": [_t(0), {"tensor": [2.0], "dtype": "float32", "shape": [1]}]}),
        (1, {"op": "aten.reshape", "args": [_t(0), [{"b": 1}, -1]]}),
        (1, {"op": "aten.sum.dim_IntList", "args": [_t(0), [-1], True], "kwargs": {"dtype": {"dtype": "float32"}}}),
        (1, {"op": "aten.softmax.int", "args": [_t(0), -1]}),
        (1, {"op": "aten.transpose.int", "args": [_t(0), 1, -1]}),
        (1, {"op": "aten.max.dim", "args": [_t(0), -1], "outputs": 2}),
        (1, {"op": "aten.var_mean.correction", "args": [_t(0), [-1]], "kwargs": {"correction": 0, "keepdim": True},
                 "outputs": 2}),
    ]
    return [(n, {"args": json.dumps(p.pop("args")), "kwargs": json.dumps(p.pop("kwargs", {})),
                 "weights": json.dumps(p.pop("weights", {})), "buffers": json.dumps(p.pop("buffers", {})),
                 "outputs": p.pop("outputs", 1), **p}) for n, p in cases]


_STR_VALUES = {k: sorted({c[1][k] for c in op_cases((3, 4))}) for k in ("op", "args", "kwargs", "weights", "buffers")}


def op_case(draw, shape: tuple[int, ...]) -> tuple[int, dict]:
    """An ``Op`` node (tensor inputs, params): half the time one of :func:`op_cases`, else a call of any operator
    of the allow-list drawn from its schema (:func:`op_call`)."""
    if draw(st.booleans()):
        return op_call(draw, shape)
    cases = op_cases(shape)
    return cases[draw(st.integers(0, len(cases) - 1))]


# ------------------------------------------------------------------ any allow-listed operator, from its schema
_DTYPE_NAMES = ("float32", "float32", "float32", "int64", "bool", "float64", "float16", "bfloat16", "int32", "uint8")
_STRINGS = ("none", "tanh", "floor", "trunc", "constant", "reflect", "replicate", "circular", "i,i->i",
            "bi,bi->b", "bij,bjk->bik", "ij->ji", "sum", "mean", "", "x" * 300)
_SIZE_NAMES = ("size", "shape", "sizes", "repeats", "output_size", "split_size", "split_sizes", "pad")
# hostile literals, drawn now and then in any slot: raw enum integers, wrong types, huge and negative sizes
_HOSTILE = (-1, 3, 2 ** 40, 2 ** 70, -2 ** 40, 1.5, float("nan"), float("inf"), "float32", "cpu", "meta", True, [],
            [2 ** 31, 2 ** 31], {"dtype": "complex64"}, {"t": 7}, {"w": "nope"}, {"b": 0})


def _aten_names() -> list[str]:
    from builder.interchange.pt2_read import ALLOWED_OPS

    return sorted(n for n in ALLOWED_OPS if n.startswith("aten."))


ATEN_OPS = _aten_names()


def _inline(draw, dims: int) -> dict:
    """A small inline constant (0-d, empty or a few values), float or integer."""
    shape = draw(st.sampled_from([[], [1], [dims], [0], [2, 1], [1, dims]]))
    n = 1
    for d in shape:
        n *= d
    dtype = draw(st.sampled_from(("float32", "float32", "int64", "bool")))
    vals = [draw(st.integers(0, 2)) if dtype != "float32" else draw(st.sampled_from([0.0, 1.0, -0.5, 2.0]))
            for _ in range(n)]
    if dtype == "bool":
        vals = [v % 2 for v in vals]
    return {"tensor": vals, "dtype": dtype, "shape": shape}


def _value(draw, t: str, name: str, shape: tuple[int, ...], n_in: int, consts: dict):
    """A JSON value for a schema argument of type ``t`` (usually well typed and small)."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from(_HOSTILE))
    if t.startswith("Optional["):
        return None if draw(st.integers(0, 2)) == 0 else _value(draw, t[9:-1], name, shape, n_in, consts)
    rank = len(shape) + 1
    if t == "Tensor":
        k = draw(st.integers(0, 9))
        if k < 6:
            return {"t": draw(st.integers(0, n_in - 1))}
        if k < 8:
            return _inline(draw, shape[-1] if shape else 1)
        cname = f"c{len(consts)}"
        consts[cname] = draw(st.sampled_from([list(shape[-1:]), list(shape), [], [0]]))
        return {"w": cname}
    if t == "List[Tensor]":
        return [{"t": draw(st.integers(0, n_in - 1))} for _ in range(draw(st.integers(1, 3)))]
    if t == "List[Optional[Tensor]]":
        return [None if draw(st.booleans()) else _inline(draw, 1) for _ in range(draw(st.integers(1, 2)))]
    if t == "List[int]":
        if name in _SIZE_NAMES or draw(st.booleans()):
            sizes = [draw(st.sampled_from([1, 2, 3, -1, 0, 4] + list(shape))) for _ in range(draw(st.integers(0, 3)))]
            return [{"b": 1}, *sizes] if name in ("size", "shape") and draw(st.booleans()) else sizes
        return [draw(st.integers(-rank, rank - 1)) for _ in range(draw(st.integers(0, 2)))]
    if t == "int":
        if name in ("dim", "dim0", "dim1", "start_dim", "end_dim", "axis"):
            if rank < 2 or draw(st.integers(0, 3)) == 0:  # the batch dimension now and then: refused on the node
                return draw(st.integers(-rank, rank - 1))  # (op_batch.py) for most operators
            return draw(st.integers(1, rank - 1) | st.integers(-rank + 1, -1))
        return draw(st.sampled_from([0, 1, 2, 3, -1, {"b": 1}] + list(shape)))
    if t in ("float", "number"):
        return draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, 1e-5, 3]))
    if t == "List[float]":
        return [draw(st.sampled_from([0.5, 1.0, 2.0])) for _ in range(draw(st.integers(1, 2)))]
    if t == "bool":
        return draw(st.booleans())
    if t == "List[bool]":
        return [draw(st.booleans()) for _ in range(draw(st.integers(1, 3)))]
    if t == "str":
        return draw(st.sampled_from(_STRINGS))
    if t == "ScalarType":
        return {"dtype": draw(st.sampled_from(_DTYPE_NAMES))}
    return None  # Layout, MemoryFormat, Device, Generator ...: LayerLab writes none


def _is_input(v) -> bool:
    return isinstance(v, dict) and set(v) == {"t"}


def op_call(draw, shape: tuple[int, ...], n_in: int | None = None) -> tuple[int, dict]:
    """(tensor inputs, params) of an ``Op`` node calling any operator of the allow-list, overload and arguments
    drawn from its schema: mostly well typed and small, sometimes hostile (raw enum integers, huge sizes, unknown
    constants), sometimes with the wrong number of outputs."""
    import torch

    name = draw(st.sampled_from(ATEN_OPS))
    packet = getattr(torch.ops.aten, name[5:])
    overloads = [o for o in packet.overloads() if not o.startswith("prim_")]
    functional = [o for o in overloads if "out" not in o.split("_")] or overloads
    overload = draw(st.sampled_from(functional if draw(st.integers(0, 9)) else overloads))
    schema = getattr(packet, overload)._schema
    n_in = n_in or draw(st.integers(1, 2))
    consts: dict = {}
    args, kwargs = [], {}
    for a in schema.arguments:
        t = str(a.real_type)
        if a.has_default_value() and draw(st.integers(0, 2)):
            if not a.kwarg_only:
                break  # positional defaults: stop here (later ones keep theirs)
            continue
        first = t == "Tensor" and not any(_is_input(x) for x in [*args, *kwargs.values()])
        v = {"t": 0} if first and draw(st.integers(0, 9)) else _value(draw, t, a.name, shape, n_in, consts)
        if a.kwarg_only:
            kwargs[a.name] = v
        else:
            args.append(v)
    rets = len(schema.returns)
    outputs = rets if rets > 1 else 1
    if draw(st.integers(0, 9)) == 0:
        outputs = draw(st.integers(1, 3))
    op = name if draw(st.booleans()) or overload == "default" else f"{name}.{overload}"
    weights = {k: v for i, (k, v) in enumerate(consts.items()) if i % 2 == 0}
    buffers = {k: v for k, v in consts.items() if k not in weights}
    return n_in, {"op": op, "args": json.dumps(args), "kwargs": json.dumps(kwargs), "weights": json.dumps(weights),
                  "buffers": json.dumps(buffers), "outputs": outputs}


@st.composite
def layer_case(draw, spec: LayerSpec) -> tuple[list[tuple[int, ...]], dict]:
    """(input shapes, params) for one layer; merge layers get 2-3 inputs."""
    rank = draw(st.sampled_from(RANK.get(spec.type, (1, 2, 3))))
    if spec.type in ("MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer"):
        heads = draw(st.sampled_from([1, 2, 4]))
        shape = (draw(st.integers(1, 6)), heads * draw(st.integers(1, 4)))
    elif spec.type == "PositionalEncoding":
        shape = (draw(st.integers(1, 8)), 2 * draw(st.integers(1, 6)))
    elif spec.type == "GroupNorm":
        groups = draw(st.integers(1, 4))
        shape = (groups * draw(st.integers(1, 3)), *draw(st.lists(st.integers(1, 6), min_size=rank - 1, max_size=rank - 1)))
    else:
        lo = 4 if spec.category in ("Convolution", "Pooling") else 1
        shape = tuple(draw(st.lists(st.integers(lo, 9), min_size=rank, max_size=rank)))
    params = {}
    for p in spec.params:
        if spec.type in ("Input", "Op"):  # Op: a whole valid call below
            continue
        key = f"{spec.type}.{p.name}"
        if key in _SMALL:
            params[p.name] = draw(st.sampled_from(_SMALL[key]))
        elif p.kind == "int_list":
            params[p.name] = draw(_int_list(spec.type, p.name, shape))
        elif spec.type == "MultiheadAttention" and p.name == "num_heads" or spec.type in (
                "TransformerEncoderLayer", "TransformerDecoderLayer") and p.name == "nhead":
            params[p.name] = draw(st.sampled_from([d for d in (1, 2, 4) if shape[-1] % d == 0]))
        elif spec.type == "GroupNorm" and p.name == "num_groups":
            params[p.name] = draw(st.sampled_from([d for d in range(1, 5) if shape[0] % d == 0]))
        elif spec.type == "PositionalEncoding" and p.name == "max_len":
            params[p.name] = draw(st.integers(shape[0], 40))
        elif spec.type == "Embedding" and p.name == "padding_idx":
            params[p.name] = draw(st.none() | st.integers(0, 4))
        else:
            params[p.name] = draw(param_value(p, shape))
    shape, params = _fit(draw, spec.type, shape, params)
    n_inputs = spec.min_inputs if spec.variadic else len(spec.inputs) - len(spec.optional_inputs)
    if spec.variadic:
        n_inputs = draw(st.integers(spec.min_inputs, 3))
    if spec.type == "Op":
        n_inputs, params = op_case(draw, shape)
    shapes = [shape] * n_inputs
    if spec.type == "Concat":
        d = params["dim"] - 1 if params["dim"] > 0 else len(shape) + params["dim"]
        shapes = [tuple(s if i != d else draw(st.integers(1, 5)) for i, s in enumerate(shape)) for _ in shapes]
    if spec.type == "MatMul":  # (…, n, k) @ (…, k, m)
        shapes = [shape, (*shape[:-2], shape[-1], draw(st.integers(1, 5)))]
    if spec.type == "Arithmetic" and params["op"] == "pow":
        params["constant"] = draw(st.sampled_from([2.0, 3.0]))  # fractional powers of negatives are NaN
    return shapes, params


def _fit(draw, layer: str, shape: tuple[int, ...], params: dict) -> tuple[tuple[int, ...], dict]:
    """Make drawn sizes and parameters fit each other for layers whose rule refuses most random pairs."""
    n = len(shape)
    if layer == "Squeeze":
        d = params["dim"] - 1 if params["dim"] > 0 else n + params["dim"]
        shape = tuple(1 if i == d else s for i, s in enumerate(shape))
    elif layer == "Select":
        d = params["dim"] - 1 if params["dim"] > 0 else n + params["dim"]
        params["index"] = draw(st.integers(-shape[d], shape[d] - 1))
    elif layer == "Slice":
        d = params["dim"] - 1 if params["dim"] > 0 else n + params["dim"]
        params["start"] = draw(st.integers(-shape[d], shape[d] - 1))
        params["end"] = draw(st.none() | st.integers(-shape[d], shape[d]))
        params["step"] = draw(st.integers(1, 3))
    elif layer == "Chunk":
        d = params["dim"] - 1 if params["dim"] > 0 else n + params["dim"]
        params["chunks"] = draw(st.integers(1, 4))
        params["index"] = draw(st.integers(0, max(0, min(params["chunks"], shape[d]) - 1)))
    elif layer == "PixelShuffle":
        r = params["upscale_factor"] = draw(st.integers(1, 3))
        shape = (r * r * draw(st.integers(1, 2)), *shape[1:])
    elif layer == "PixelUnshuffle":
        r = params["downscale_factor"] = draw(st.integers(1, 3))
        shape = (shape[0], r * draw(st.integers(1, 3)), r * draw(st.integers(1, 3)))
    elif layer == "Upsample":
        params["mode"] = draw(st.sampled_from(["nearest", "linear" if n == 2 else "bilinear"]))
        if params["scale_factor"] is None:
            params["size"] = draw(st.integers(1, 12)) if n == 2 else draw(st.integers(1, 12) | st.lists(
                st.integers(1, 12), min_size=2, max_size=2))
        else:
            params["size"] = None
    elif layer == "LayerNorm":
        params["normalized_dims"] = draw(st.integers(1, max(1, n)))
    elif layer == "Hardtanh":
        params["min_val"], params["max_val"] = draw(st.sampled_from([(-1.0, 1.0), (0.0, 6.0), (-2.5, 0.5)]))
    elif layer in ("Constant", "Parameter"):
        params["shape"] = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    elif "groups" in params:  # a common divisor of the input and output channels (depthwise now and then)
        common = [d for d in range(1, min(shape[0], params["out_channels"]) + 1)
                  if shape[0] % d == 0 and params["out_channels"] % d == 0]
        params["groups"] = draw(st.sampled_from(common))
    elif layer == "MatMul" and n < 2:
        shape = (*shape, draw(st.integers(1, 5)))
    return shape, params


def _int_list(layer: str, name: str, shape: tuple[int, ...]) -> st.SearchStrategy:
    if layer == "Permute":
        return st.permutations(list(range(1, len(shape) + 1))).map(lambda p: [0, *p])
    if layer == "Unflatten":
        n = shape[0]
        divs = [d for d in range(1, n + 1) if n % d == 0]
        return st.sampled_from(divs).map(lambda d: [d, n // d])
    if layer == "Reshape":
        total = 1
        for s in shape:
            total *= s
        divs = [d for d in range(1, total + 1) if total % d == 0]
        return st.sampled_from(divs).flatmap(lambda d: st.sampled_from([[d, total // d], [-1, d], [total]]))
    if layer in ("Mean", "Sum", "Max", "Min"):
        dims = list(range(1, len(shape) + 1))
        one = st.sampled_from(dims) | st.sampled_from([-d for d in dims])
        return one | st.lists(st.sampled_from(dims), min_size=1, max_size=len(dims), unique=True)
    if layer == "Expand":
        return st.tuples(*(st.sampled_from([-1, 1, 3]) if s == 1 else st.sampled_from([-1, s]) for s in shape)).map(list)
    if layer == "Pad":
        return st.integers(1, min(3, len(shape))).flatmap(
            lambda k: st.lists(st.integers(0, 2), min_size=2 * k, max_size=2 * k))
    if layer in ("Constant", "Parameter"):
        return st.lists(st.integers(1, 5), min_size=1, max_size=3)
    raise ValueError(name)
