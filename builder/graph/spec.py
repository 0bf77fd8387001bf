"""What a layer type is: :class:`LayerSpec` (parameter schema, ports, shape rule, constructor), the
:class:`TensorType` flowing along edges, and :func:`register`, which the layer families in
:mod:`builder.graph.layers` call. Lookups (``get_spec``, ``all_specs``) are in :mod:`builder.graph.registry`;
this module imports nothing of the graph package, so the layer modules can import it without a cycle.
"""

from __future__ import annotations

import difflib
import math
import reprlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from builder.errors import LayerLabError

TENSOR = "tensor"
TOKENS = "tokens"
MASK = "mask"  # a padding mask: (B, T) booleans, True = padding (the data's ``padding_mask``)

#: The port name of a padding mask, on the Input node that gives it and on the layers that take it; also the batch
#: key under which a dataset hands it over.
PADDING_MASK = "padding_mask"
#: The token id of padding: a token Input's padding mask is ``ids == PAD_ID`` (derived inside the compiled model).
PAD_ID = 0

CATEGORIES = ("Inputs", "Dense", "Convolution", "Pooling", "Normalisation", "Recurrent", "Attention",
              "Activation", "Merge", "Reshape", "Math")

MAX_SIZE = 1_000_000  # largest single size (features, channels, vocabulary) a parameter may take
MAX_VALUES = 1 << 40  # most values one tensor of one sample may hold (sizes past it overflow the estimates: a
# 560-character link chained Expands to 10^336 values and the Build page raised OverflowError on every visit)

#: The tied-weights marker: ``params["shares"] = "enc_fc"`` makes a node call the module of node ``enc_fc`` (one set of
#: weights used twice, as a module called from two places in PyTorch). Checked by
#: :func:`builder.graph.shapes.check_ties`; kept in ``params`` so every reader of a graph (canvas included) keeps it.
SHARES = "shares"


class ShapeError(LayerLabError):
    """Raised by a shape rule: ``message`` says what is wrong and how to fix it; ``port`` where."""

    def __init__(self, message: str, port: str | None = None):
        super().__init__(message)
        self.port = port


@dataclass(frozen=True)
class TensorType:
    """What flows along an edge: the shape without the batch dimension, and the kind (tensor or tokens)."""

    shape: tuple[int, ...]
    kind: str = TENSOR  # TENSOR, TOKENS or MASK
    vocab: int | None = None  # number of token ids, for kind == TOKENS

    def __str__(self) -> str:
        return format_shape(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def format_shape(shape: Sequence[int] | None) -> str:
    """``(B, 16, 8, 8)`` for a shape without its batch dimension; ``?`` when unknown."""
    if shape is None:
        return "?"
    return "(" + ", ".join(["B", *(str(int(s)) for s in shape)]) + ")"


@dataclass(frozen=True)
class Param:
    """One constructor argument of a layer, as shown in the inspector and checked by the validator.

    kind: ``int``, ``float``, ``bool``, ``choice``, ``str``, ``int_list`` or ``int_or_pair``
    (an int or a list of two ints, as torch's 2-d kernel sizes).
    scalar: for ``int_list``, a single integer is accepted too and read as a list of one (torch's
    ``dim=1`` or ``dim=(2, 3)``; a parameter that was an ``int`` can become a list and old files still load).
    tunable: whether a hyper-parameter search may vary it (False for what says how the network is wired rather
    than how well it learns: a Flatten's dims, a convolution's groups, a bias switch).
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    required: bool = False
    scalar: bool = False
    tunable: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help,
                "min": self.min, "max": self.max, "choices": list(self.choices) if self.choices else None,
                "nullable": self.nullable, "required": self.required}

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return (normalised value, None) or (None, message worded as rule, value, fix)."""
        value = _tame(value)
        if value is None:
            if self.nullable:
                return None, None
            return None, f"`{self.name}` must be set ({self._expect()}); received: null. Fix: set it, e.g. {self.default!r}"
        k = self.kind
        if k == "int":
            v = _as_int(value)
            if v is None:
                return None, self._out_of_range(value) or \
                    f"`{self.name}` must be an integer; received: {short_repr(value)}. Fix: use e.g. {self.default!r}"
            return self._range(v)
        if k == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return None, f"`{self.name}` must be a finite number; received: {short_repr(value)}. Fix: use e.g. {self.default!r}"
            v, err = self._range(float(value))
            return (None, err) if err else (v, float_problem(self.name, v))
        if k == "bool":
            if not isinstance(value, bool):
                return None, f"`{self.name}` must be true or false; received: {short_repr(value)}"
            return value, None
        if k == "choice":
            if value not in self.choices:
                close = difflib.get_close_matches(str(value)[:100], [str(c) for c in self.choices], n=1)
                hint = f"did you mean {close[0]!r}?" if close else "use one of " + ", ".join(map(repr, self.choices))
                return None, f"`{self.name}` must be one of {', '.join(map(repr, self.choices))}; received: {short_repr(value)}. Fix: {hint}"
            return value, None
        if k == "str":
            if not isinstance(value, str):
                return None, f"`{self.name}` must be text; received: {short_repr(value)}"
            return value, None
        if k == "int_list":
            if self.scalar and (_as_int(value) is not None or isinstance(value, float) and math.isinf(value)):
                value = [value]
            if not isinstance(value, list | tuple) or not value or len(value) > 8:
                return None, f"`{self.name}` must be a list of 1 to 8 integers; received: {short_repr(value)}. Fix: e.g. {self.default!r}"
            return self._ints(value, f"`{self.name}` must hold integers; received: {short_repr(value)}")
        if k == "int_or_pair":
            if isinstance(value, list | tuple):
                if len(value) != 2:
                    return None, f"`{self.name}` must be an integer or a pair of integers; received: {short_repr(value)}"
                out, err = self._ints(value, f"`{self.name}` must be an integer or a pair of integers; received: "
                                             f"{short_repr(value)}")
                if err:
                    return None, err
                return (out[0] if out[0] == out[1] else out), None
            v = _as_int(value)
            if v is None:
                return None, self._out_of_range(value) or \
                    f"`{self.name}` must be an integer or a pair of integers; received: {short_repr(value)}"
            return self._range(v)
        raise ValueError(f"unknown parameter kind {k}")  # programming error in a spec

    def _ints(self, items, not_int: str) -> tuple[list[int] | None, str | None]:
        """Each item an integer within the range; ``not_int`` is the message for a non-integer."""
        out = []
        for item in items:
            v = _as_int(item)
            if v is None:
                return None, self._out_of_range(item) or not_int
            v, err = self._range(v)
            if err:
                return None, err
            out.append(v)
        return out, None

    def _out_of_range(self, v: Any) -> str | None:
        """The range message for ±inf (also what integers of hundreds of digits become), else None."""
        if isinstance(v, float) and math.isinf(v):
            return self._range(v)[1]
        return None

    def _range(self, v: float) -> tuple[Any, str | None]:
        if self.min is not None and v < self.min:
            return None, f"`{self.name}` must be ≥ {_num(self.min)}; received: {self.name}={_num(v)}. Fix: use a value from {self._expect()}"
        if self.max is not None and v > self.max:
            return None, f"`{self.name}` must be ≤ {_num(self.max)}; received: {self.name}={_num(v)}. Fix: use a value from {self._expect()}"
        return v, None

    def _expect(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(repr, self.choices))
        lo = "-∞" if self.min is None else _num(self.min)
        hi = "∞" if self.max is None else _num(self.max)
        return f"[{lo}, {hi}]"


_HUGE_BITS = 64  # integers beyond ±2**64 are no sizes: treated as ±inf without any bignum arithmetic


def _tame(v: Any, depth: int = 1) -> Any:
    """An integer beyond ±2**64 becomes the float nearest it (no bignum arithmetic follows; a message shows 1e+25,
    as written), or ±inf where no float holds it (thousands of digits); either is rejected by every range. One level
    of a short list likewise (deeper nesting is left alone: it is no valid value anyway)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > _HUGE_BITS:
        return float(v) if v.bit_length() <= 1023 else math.inf if v > 0 else -math.inf
    if depth and isinstance(v, list | tuple) and len(v) <= 16:
        return [_tame(x, depth - 1) for x in v]
    return v


#: The largest finite float32.
FLOAT32_MAX = 3.4028234663852886e38
_PACK = {"float32": "f", "bfloat16": "f", "float16": "e"}  # bfloat16 has float32's range (fewer digits)


def float_problem(name: str, value: Any, dtype: str = "float32") -> str | None:
    """Why ``value`` cannot be a number of ``dtype`` (float32: LayerLab computes in it), worded as rule, received
    value, fix; None when it can (or is no float). A finite number beyond the range becomes inf, a nonzero one
    below the smallest becomes 0, and PyTorch and the exported file then compute different things (``aten.pow``
    of exponent -5.4e-159: 0 in the ONNX file, a NaN for negative inputs in PyTorch's kernel). The one rule for a
    layer's float parameters (:meth:`Param.check`) and an ``Op`` node's numbers and inline constants.

    >>> float_problem("exponent", -5.4e-159)
    '`exponent` must be a number float32 can hold (LayerLab computes in float32: magnitudes from 1.4e-45 to \
3.403e+38, or 0); received: exponent=-5.4e-159, which float32 rounds to 0. Fix: use 0, or a magnitude of at least \
1e-38'
    >>> float_problem("value", 1e39), float_problem("value", 1e-30), float_problem("value", 1e5, "float16") is None
    ('`value` must be a number float32 can hold (LayerLab computes in float32: magnitudes from 1.4e-45 to \
3.403e+38, or 0); received: value=1e+39, which float32 turns into inf. Fix: use a smaller magnitude, or inf (-inf)', \
None, False)
    """
    fmt = _PACK.get(dtype)
    if fmt is None or not isinstance(value, float) or not math.isfinite(value) or value == 0:
        return None
    try:
        held = struct.unpack(fmt, struct.pack(fmt, value))[0]
    except OverflowError:  # the float16 format refuses; float32's packs inf
        held = math.inf
    if held != 0 and math.isfinite(held):
        return None
    became, fix = ("rounds to 0", "use 0, or a magnitude of at least " + ("1e-38" if fmt == "f" else "1e-7")) \
        if held == 0 else ("turns into inf", "use a smaller magnitude, or inf (-inf)")
    low, high = ("1.4e-45", f"{FLOAT32_MAX:.4g}") if fmt == "f" else ("6e-08", "6.55e+04")
    return (f"`{name}` must be a number {dtype} can hold (LayerLab computes in {dtype}: magnitudes from {low} to "
            f"{high}, or 0); received: {name}={value:.4g}, which {dtype} {became}. Fix: {fix}")


def _num(v: float) -> str:
    v = _tame(v)
    if isinstance(v, int) or (isinstance(v, float) and math.isfinite(v) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:g}"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 8, 8, 4, 40, 40


def short_repr(v: Any) -> str:
    """A repr of at most 40 characters, whatever the value (huge integers, deep nesting, long text)."""
    try:
        s = _REPR.repr(_tame(v))
    except (ValueError, RecursionError):  # e.g. an integer too long to print
        s = f"<{type(v).__name__} too large to show>"
    return s if len(s) <= 40 else s[:37] + "..."


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return None


#: What a layer's backward keeps (:attr:`LayerSpec.saves`).
SAVES = ("input", "output", "both", "none")


@dataclass(frozen=True)
class Cost:
    """Memory a layer needs beyond its parameters and its outputs, counted in float32 values.

    ``buffers``: allocated once with the model (a fixed table such as sinusoidal positions);
    ``build``: extra temporaries while constructing the module (freed afterwards);
    ``work``: per sample, intermediates of one forward pass that stay alive for the backward pass beyond the
    input or output the layer saves (:attr:`LayerSpec.saves`): attention weights, pooling indices, recurrent
    gates, dropout masks;
    ``note``: what the buffer or the kept intermediates are, for budget messages;
    ``cuda_work``: ``work`` where CUDA's kernels keep a different amount (cuDNN's recurrent layers); None: the same;
    ``backward``: per sample, values alive during the layer's own backward beyond the gradients of its output and
    inputs (the gradients of the intermediates it saved: an Op node's attention weights; the channel-padded copies
    of a CPU convolution's backward);
    ``cuda_backward``: ``backward`` where CUDA's kernels hold a different amount; None: the same.
    """

    buffers: int = 0
    build: int = 0
    work: int = 0
    note: str = ""
    cuda_work: int | None = None
    backward: int = 0
    cuda_backward: int | None = None


class Inputs(list):
    """A node's input types in call order, with the port each came in on (``ports``, parallel to the items).

    Shape rules and ``emit`` functions of layers with optional ports of the same kind (a decoder's two padding
    masks) read :func:`by_port`; the others use it as the plain list it is.
    """

    def __init__(self, items, ports):
        super().__init__(items)
        self.ports = tuple(ports)


def by_port(spec: LayerSpec, ins: list) -> dict:
    """``{port: input}`` for a node's inputs (types, or fx values in the same order as ``types``).

    ``ins`` may be an :class:`Inputs` (ports known) or a plain list: then masks (kind MASK) fill the spec's
    ``mask_inputs`` and the other inputs its other ports, in order.

    >>> spec = LayerSpec("X", "Attention", "", inputs=("query", "key", "padding_mask"),
    ...                  optional_inputs=("key", "padding_mask"), mask_inputs=("padding_mask",))
    >>> sorted(by_port(spec, [TensorType((3, 4)), TensorType((3,), MASK)]))
    ['padding_mask', 'query']
    """
    ports = getattr(ins, "ports", None)
    if ports is not None and len(ports) == len(ins):
        return dict(zip(ports, ins, strict=True))
    free = {True: [p for p in spec.inputs if p in spec.mask_inputs],
            False: [p for p in spec.inputs if p not in spec.mask_inputs]}
    out = {}
    for t in ins:
        slots = free[getattr(t, "kind", TENSOR) == MASK]
        if slots:
            out[slots.pop(0)] = t
    return out


ShapeRule = Callable[[dict, list[TensorType]], "TensorType | dict[str, TensorType]"]
Ctor = Callable[[dict, list[TensorType]], "tuple[str, dict] | None"]


@dataclass
class LayerSpec:
    """Everything LayerLab knows about one layer type.

    Attributes:
        type: the torch.nn class name where one exists (``Conv2d``), else a LayerLab name (``Add``).
        category: palette group.
        params: the user-set constructor arguments.
        inputs / outputs: port names; ``variadic`` means any number (≥ ``min_inputs``) of edges into the
            first input port (Add, Concat); optional ports are listed in ``optional_inputs``.
        shape: rule mapping (params, input types) to the output type (or a dict port -> type).
        ctor: (params, input types) -> (torch.nn class name, keyword arguments) or None for module-less ops.
        inferred: keyword arguments of ``ctor`` that flow in from the input and are never typed by users.
        emit: adds the layer's call to the fx graph; the default calls the module on the first input.
        lint: returns warnings (settings that work but probably do not do what the user wants).
        input_kind: the kind of tensor every input port accepts.
        cost: (params, input types, output types) -> :class:`Cost`: buffers and intermediates the layer
            creates beyond its parameters and outputs; counted by the size budget.
        contiguous_inputs: torch's kernel mishandles inputs whose strides are not the canonical ones for their
            shape (GroupNorm's backward crashes on a permuted input in torch 2.13, also one whose moved dimension
            has size 1, which ``.contiguous()`` leaves as it is; BatchNorm2d's returns wrong gradients for
            channels-last-like strides): the compiled forward (and so the exported ``.py``) copies every input that
            may be strided with ``clone(memory_format=torch.contiguous_format)``, which gives canonical strides
            (size-1 dimensions included).
        strides: what the output's memory layout is: ``"follow"`` (contiguous when every input is: elementwise
            ops, convolutions, pooling), ``"fresh"`` (always contiguous, whatever the inputs) or ``"any"``
            (may be non-contiguous even for contiguous inputs: Permute, batch-first RNN and attention outputs).
            ``tests/graph/test_contiguity.py`` checks every spec's claim against torch.
        mask_inputs: the input ports that take a padding mask (kind MASK, from an Input's ``padding_mask`` port)
            and nothing else; a mask goes into no other port (checked in :mod:`builder.graph.shapes`).
        macs: (params, input types, output types) -> multiply-adds per sample, for layers without a torch.nn
            module that do matrix products (MatMul); layers that build a module are counted by its class in
            :mod:`builder.graph.cost`.
        make_module: (params, input types) -> the ``torch.nn.Module`` a node builds itself, or None (nodes whose
            module no torch.nn class describes: an Op's stored constants, a LoRA adapter around its base Linear);
            given with ``counts``.
        counts: (params, input types) -> (parameter values, buffer values) of ``make_module``'s module, counted
            without torch.
        saves: which of its tensors the layer's backward needs and autograd therefore keeps alive until the
            backward pass: ``"input"`` (convolutions, Linear, norms, GELU: the default), ``"output"`` (ReLU,
            Sigmoid, Tanh, Softmax compute their gradient from their result), ``"both"`` or ``"none"`` (views,
            sums, concatenation). Anything else they keep (pooling indices, dropout masks, attention weights,
            recurrent gates) is the ``work`` of their :class:`Cost`. Read by :mod:`builder.graph.memory`.
        check: params -> messages for rules between the node's own parameters that need no input (Hardtanh's
            min_val below max_val, a transposed convolution's output padding below its stride or dilation); read by
            :meth:`resolve_params` once every value is within its own range, so validation reports them on the
            node whatever feeds it (a shape rule runs only on a healthy input).
        grad: (params, input types) -> whether a gradient flows from the node's float inputs (and its own
            parameters) to its output; None means it does. ``Detach`` never; an ``Op`` as its call on meta tensors
            says (``aten.detach``, ``aten.zeros_like``: no). Read by :func:`builder.graph.shapes.check_gradient`.
    """

    type: str
    category: str
    description: str
    params: list[Param] = field(default_factory=list)
    shape: ShapeRule | None = None
    ctor: Ctor | None = None
    inferred: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ("in",)
    optional_inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ("out",)
    output_count: str | None = None  # an int parameter saying how many of ``outputs`` the node has (Op: outputs)
    variadic: bool = False
    min_inputs: int = 1
    input_kind: str = TENSOR
    emit: Callable | None = None
    export_init: Callable | None = None
    lint: Callable[[dict, list[TensorType]], list[str]] | None = None  # non-blocking warnings
    cost: Callable[[dict, list[TensorType], dict], Cost] | None = None
    doc_url: str | None = None
    contiguous_inputs: bool = False
    strides: str = "follow"
    macs: Callable[[dict, list[TensorType], dict], int] | None = None
    saves: str = "input"
    mask_inputs: tuple[str, ...] = ()
    make_module: Callable[[dict, list[TensorType]], Any] | None = None
    counts: Callable[[dict, list[TensorType]], tuple[int, int]] | None = None
    grad: Callable[[dict, list[TensorType]], bool] | None = None
    check: Callable[[dict], list[str]] | None = None

    def __post_init__(self) -> None:
        if self.saves not in SAVES:
            raise ValueError(f"saves must be one of {SAVES}; received: {self.saves!r}")
        if (self.make_module is None) != (self.counts is None):
            raise ValueError(f"{self.type}: make_module and counts come together (what a node builds itself is "
                             "counted without torch); received: only one of them")

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict:
        """Default parameters, as a dropped node gets them."""
        return {p.name: p.default for p in self.params}

    def resolve_params(self, params: dict | None) -> tuple[dict, list[str]]:
        """Fill defaults and check every value. Returns (normalised params, messages)."""
        params = params or {}
        out: dict = {}
        errors: list[str] = []
        names = self.param_names
        for key in params:
            if key == SHARES:  # not a constructor argument: the graph-level tie (shapes.check_ties)
                continue
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1) if len(str(key)) <= 100 else []
                shown = key if isinstance(key, str) and len(key) <= 40 else short_repr(key)
                if key in self.inferred:
                    errors.append(f"`{shown}` is inferred from the input and cannot be set; received: {shown}={short_repr(params[key])}. Fix: remove it")
                else:
                    hint = f"did you mean `{close[0]}`?" if close else (
                        "known: " + ", ".join(names) if names else f"{self.type} takes no parameters")
                    errors.append(f"unknown parameter `{shown}` for {self.type}; received: {shown}={short_repr(params[key])}. Fix: {hint}")
        for p in self.params:
            if p.name in params:
                v, err = p.check(params[p.name])
                if err:
                    errors.append(err)
                    v = p.default
            else:
                if p.required:
                    errors.append(f"`{p.name}` is required for {self.type}. Fix: set it, e.g. {p.default!r}")
                v = p.default
            out[p.name] = list(v) if isinstance(v, tuple) else v
        if not errors and self.check is not None:  # between values that each passed their own range
            errors += self.check(out)
        return out, errors

    def port_info(self) -> dict:
        """Ports and schema as the canvas palette wants them."""
        ins = [{"name": n, "kind": MASK if n in self.mask_inputs else self.input_kind,
                "optional": n in self.optional_inputs} for n in self.inputs]
        outs = [{"name": n, "kind": MASK if n == PADDING_MASK else TENSOR} for n in self.outputs]
        return {"type": self.type, "category": self.category, "description": self.description,
                "inputs": ins, "outputs": outs, "output_count": self.output_count, "variadic": self.variadic,
                "params": [p.to_dict() for p in self.params], "inferred": list(self.inferred),
                "doc_url": self.doc_url}


LAYER_REGISTRY: dict[str, LayerSpec] = {}


def register(spec: LayerSpec) -> LayerSpec:
    """Add a spec to the registry (its type must be new)."""
    if spec.type in LAYER_REGISTRY:
        raise ValueError(f"layer type {spec.type} is already registered")
    LAYER_REGISTRY[spec.type] = spec
    return spec
