"""Compile a validated graph into a ``torch.fx.GraphModule``.

The forward is generated Python (no per-node interpreter): one line per layer, calling submodules whose
names are derived from node ids. Example::

    >>> import torch
    >>> from builder import load_template
    >>> model = compile_graph(load_template("mlp").graph)
    >>> model(torch.randn(3, 2)).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import builtins
import keyword
import warnings

import torch
import torch.fx as fx
from torch import nn

from builder.errors import BudgetError, GraphError
from builder.escape import py_identifier
from builder.graph.layers import sinusoid_table
from builder.graph.memory import training_memory
from builder.graph.project import as_graph
from builder.graph.registry import PAD_ID, PADDING_MASK, TOKENS, get_spec
from builder.graph.report import Budget, ShapeReport
from builder.graph.shapes import infer_shapes, module_ctor


def _reserved_names() -> frozenset[str]:
    """Names a node's module attribute must not take: Python keywords and builtins, every attribute of an
    ``nn.Module`` and an ``fx.GraphModule`` (class and instance: ``training``, ``meta``, ``shape_env``,
    ``_modules``...), what the generated and exported code imports, and LayerLab's own attributes.

    Only names that cannot work are here: a name added later renames that node's weights in the state dict
    (``output`` or ``nodes``, attributes of ``fx.Graph`` but not of the module, stay as they are)."""
    instances = set(dir(nn.Module())) | set(dir(fx.GraphModule(nn.Module(), fx.Graph())))
    return frozenset(set(keyword.kwlist) | set(dir(builtins)) | set(dir(nn.Module)) | set(dir(fx.GraphModule))
                     | instances | {"torch", "nn", "self", "math", "operator", "inf", "nan", "device", "fx", "model",
                                    "Model", "fx_pytree", "pytree", "NoneType", "meta", "shape_env", "training"})


_RESERVED = _reserved_names()


def module_names(graph) -> dict[str, str]:
    """Deterministic Python identifiers for node ids: ``"conv 1"`` → ``conv_1``; clashes get ``_2``, ``_3``.

    Identifiers that torch or Python reserve (``forward``, ``eval``, ``training``, ``meta``, ``class``, ``torch``
    ...: :data:`_RESERVED`) get a trailing ``_``. The one mapping from node ids to module attributes, state-dict
    prefixes, placeholder and export names: compile, the ``.py`` and ONNX exports use it, and every reader of a
    compiled model goes through ``model.layerlab_names``. ``graph``: a Graph, Project, dict or path.
    """
    graph = as_graph(graph)
    names: dict[str, str] = {}
    used: set[str] = set()
    for n in graph.nodes:
        if n.id in names:
            continue
        base = py_identifier(n.id)[:60]
        if base in _RESERVED or base.startswith(("_", "layerlab")):
            base = base.strip("_") + "_" if base.strip("_") else "node"
            if base[0].isdigit():
                base = "n_" + base
        name, i = base, 2
        while name in used or name in _RESERVED:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        names[n.id] = name
    return names


def build_module(cls: str, kwargs: dict) -> nn.Module:
    """Instantiate ``torch.nn.<cls>(**kwargs)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. RNN dropout with one layer: reported by validation as a warning
        return getattr(nn, cls)(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})


class _Emitter:
    """Thin helper that the layer specs' ``emit`` functions use to add fx nodes."""

    def __init__(self, graph: fx.Graph):
        self.graph = graph
        self.created: set[fx.Node] = set()
        self.prefix = ""

    def _add(self, op: str, target, args, kwargs, as_: str | None) -> fx.Node:
        # explicit names keep the node id itself free for the layer's final output
        name = f"{self.prefix}_{as_ or 'tmp'}"
        node = self.graph.create_node(op, target, tuple(args), dict(kwargs), name=name)
        self.created.add(node)
        return node

    def module(self, attr: str, *args, as_: str | None = None, **kwargs) -> fx.Node:
        """``self.<attr>(*args, **kwargs)``; ``as_`` names the result ``<node>_<as_>``."""
        return self._add("call_module", attr, args, kwargs, as_)

    def fn(self, f, *args, as_: str | None = None, **kwargs) -> fx.Node:
        """``f(*args, **kwargs)`` (operators render as ``a + b``, ``a[i]``)."""
        return self._add("call_function", f, args, kwargs, as_)

    def method(self, name: str, *args, as_: str | None = None, **kwargs) -> fx.Node:
        """``args[0].<name>(*args[1:], **kwargs)``."""
        return self._add("call_method", name, args, kwargs, as_)

    def attr(self, qualname: str, as_: str | None = None) -> fx.Node:
        """``self.<qualname>``."""
        return self._add("get_attr", qualname, (), {}, as_)


def checked_report(graph, budget: Budget | None = None, report: ShapeReport | None = None) -> ShapeReport:
    """The graph's ShapeReport (``report`` when given), or raise when it has problems.

    Raises:
        BudgetError: the only problems are sizes over the budget; GraphError: any other problem.
    """
    report = report or infer_shapes(graph, budget)
    if not report.ok:
        errors = [p for p in report.problems if p.severity == "error"]
        if all(p.code == "budget" for p in errors):
            raise BudgetError(errors)
        raise GraphError(errors)
    return report


def compile_graph(graph, budget: Budget | None = None, report: ShapeReport | None = None) -> fx.GraphModule:
    """Build the PyTorch model of a graph.

    Args:
        graph: a Graph, Project, dict or path.
        budget: size limits checked before anything is allocated.
        report: a report from :func:`infer_shapes` for this very graph, to skip re-analysis.

    Returns:
        A ``torch.fx.GraphModule``; ``forward`` takes one tensor per Input node (graph order) and returns the output
        tensor (or a tuple when the graph has several outputs). The padding mask of each Input whose
        ``padding_mask`` port is connected (``layerlab_padding_masks``) is derived inside from that Input's values
        (:func:`padding_mask_of`), so every caller (trainer, explainers, Try it, exports) feeds the data alone.
        Attributes: ``layerlab_names`` (node id
        → submodule name; a node that shares another's weights maps to that node's submodule), ``layerlab_types`` (node id → layer type), ``layerlab_inputs`` / ``layerlab_outputs``
        (node ids), ``layerlab_input_shapes`` (node id → shape without batch), ``layerlab_input_dtypes``,
        ``layerlab_sample_bytes`` (``cpu``/``cuda`` → activation bytes of one sample's forward and backward:
        :attr:`builder.graph.memory.MemoryEstimate.per_sample`).

    Raises:
        GraphError: the graph has problems (``.problems`` lists them all); BudgetError when it is too large.
    """
    graph = as_graph(graph)
    report = checked_report(graph, budget, report)  # the budget is checked before anything is allocated
    names = module_names(graph)
    root = nn.Module()
    g = fx.Graph()
    emit = _Emitter(g)
    values: dict[str, dict[str, fx.Node]] = {}
    module_of: dict[str, str] = {}
    types: dict[str, str] = {}
    strided: set[str] = set()  # nodes whose output may be non-contiguous (LayerSpec.strides)

    for nid in report.input_nodes:
        ph = g.placeholder(names[nid])
        values[nid] = {"out": ph}
        types[nid] = "Input"
        strided.add(nid)  # a caller hands any layout (a grayscale image permuted from NHWC keeps strides (HW,1,W,1))
    masked = padding_mask_inputs(report)
    for nid in masked:  # derived from the Input's own values: a forward takes the data alone
        emit.prefix = names[nid]
        values[nid][PADDING_MASK] = padding_mask_of(emit, values[nid]["out"],
                                                    report.nodes[nid].type_out.kind == TOKENS)

    for nid in report.order:
        info = report.nodes[nid]
        if info.type == "Input":
            continue
        spec = get_spec(info.type)
        types[nid] = info.type
        ins = info.inputs
        attr = names[nid]
        mod = names[info.shares] if info.shares else attr  # a tied node calls the module of the node it shares
        ctor = None if info.shares else module_ctor(spec, info.params, ins)
        if info.shares:
            module_of[nid] = mod
        elif ctor is not None:
            root.add_module(attr, build_module(*ctor))
            module_of[nid] = attr
        elif spec.make_module is not None:  # a node building its own module (Op constants, LoRA)
            held = spec.make_module(info.params, ins)
            if held is not None:
                root.add_module(attr, held)
                module_of[nid] = attr
        elif info.type == "PositionalEncoding":
            root.register_buffer(attr, sinusoid_table(info.params["max_len"], ins[0].shape[-1]))
        in_edges = report.in_edges.get(nid, [])
        args = [_port_value(values, e) for e, _ in in_edges]
        emit.created = set()
        emit.prefix = attr
        if spec.contiguous_inputs:  # kernels with stride bugs get canonical strides (LayerSpec.contiguous_inputs)
            args = [canonical(emit, a) if e.source in strided else a for a, (e, _) in zip(args, in_edges, strict=True)]
        if spec.strides == "any" or (spec.strides == "follow" and not spec.contiguous_inputs
                                     and any(e.source in strided for e, _ in in_edges)):
            strided.add(nid)
        if spec.emit is None:
            out = emit.module(mod, *args)
        else:
            out = spec.emit(emit, mod, info.params, args, ins)
        outs = out if isinstance(out, dict) else {spec.outputs[0]: out}
        for port, node in outs.items():
            if node in emit.created:
                node._rename(attr if port == spec.outputs[0] else f"{attr}_{port}")
                emit.created.discard(node)
        values[nid] = outs

    results = [next(iter(values[nid].values())) for nid in report.output_nodes]
    g.output(results[0] if len(results) == 1 else tuple(results))
    g.lint()
    gm = fx.GraphModule(root, g, class_name="LayerLabModel")
    if gm.graph.eliminate_dead_code():  # unused parts of multi-output layers (an LSTM's steps when only h_n is used)
        gm.recompile()
    # fx wraps each call in a try/except that only decorates error messages (~2 µs per call); the generated
    # forward stays in linecache for tracebacks, so call it exactly as a hand-written nn.Module is called.
    type(gm).__call__ = nn.Module.__call__
    attrs = {
        "layerlab_names": module_of,
        "layerlab_node_names": names,  # every node's name in the fx graph (its output value's; builder.training.nonfinite)
        "layerlab_types": types,
        "layerlab_inputs": list(report.input_nodes),
        "layerlab_padding_masks": masked,
        "layerlab_outputs": list(report.output_nodes),
        "layerlab_input_shapes": {nid: report.nodes[nid].shape for nid in report.input_nodes},
        "layerlab_input_dtypes": {nid: (torch.long if report.nodes[nid].type_out.kind == TOKENS else torch.float32)
                                  for nid in report.input_nodes},
        "layerlab_vocab": {nid: report.nodes[nid].type_out.vocab for nid in report.input_nodes},
        "layerlab_output_shapes": {nid: report.nodes[nid].shape for nid in report.output_nodes},
        "layerlab_sample_bytes": {d: training_memory(report, 1, device=d).per_sample for d in ("cpu", "cuda")},
    }
    for k, v in attrs.items():
        setattr(gm, k, v)
    gm.meta["_user_preserved_attributes"] = attrs  # torch.fx re-applies these on deepcopy
    return gm


def padding_mask_inputs(report: ShapeReport) -> list[str]:
    """The Input nodes whose ``padding_mask`` port feeds a layer, in the order of ``report.input_nodes``."""
    used = {e.source for edges in report.in_edges.values() for e, _ in edges if e.source_port == PADDING_MASK}
    return [nid for nid in report.input_nodes if nid in used]


def padding_mask_of(emit: _Emitter, x: fx.Node, tokens: bool) -> fx.Node:
    """``(B, T)`` booleans, True = padding, derived from an Input's values ``x``: token id :data:`PAD_ID` for
    token ids (B, T) (Keras ``Embedding(mask_zero=True)``), a step whose features are all 0 for a sequence
    (B, T, F) (Keras ``Masking(mask_value=0.0)``). A row with no real step is not masked at all, so attention
    always has a step to attend to (a fully masked row would give NaN)."""
    if tokens:
        pad = emit.method("eq", x, PAD_ID, as_="is_pad")  # (B, T)
    else:
        size = emit.method("sum", emit.method("abs", x, as_="abs"), -1, as_="step_size")  # (B, T)
        pad = emit.method("eq", size, 0, as_="is_pad")
    real = emit.method("any", emit.method("logical_not", pad, as_="is_real"), 1, keepdim=True, as_="has_real")
    return emit.method("logical_and", pad, real, as_=PADDING_MASK)  # (B, T)


def canonical(emit: _Emitter, value: fx.Node) -> fx.Node:
    """``value.clone(memory_format=torch.contiguous_format)``: a copy with the canonical strides of its shape.

    ``.contiguous()`` is not enough: a tensor that torch counts as contiguous may still have other strides where
    a dimension has size 1 (``randn(2, 5, 1).reshape(-1, 5, 1, 1).permute(0, 2, 1, 3)`` keeps strides
    ``(5, 1, 1, 1)`` for shape ``(2, 1, 5, 1)``, whose canonical strides are ``(5, 5, 1, 1)``), and GroupNorm's
    backward crashes on it. An explicit memory format makes ``clone`` allocate fresh canonical strides.
    """
    return emit.method("clone", value, memory_format=torch.contiguous_format, as_="canonical")


def canonical_strides(shape) -> tuple[int, ...]:
    """The strides of a fresh tensor of ``shape`` (row-major; size-1 dimensions included).

    >>> canonical_strides((2, 1, 5, 1))
    (5, 5, 1, 1)
    """
    out, step = [], 1
    for s in reversed(tuple(shape)):
        out.append(step)
        step *= max(int(s), 1)
    return tuple(reversed(out))


def _port_value(values: dict[str, dict[str, fx.Node]], edge) -> fx.Node:
    outs = values[edge.source]
    if edge.source_port:
        return outs[edge.source_port]
    return next(iter(outs.values()))


def example_inputs(model: fx.GraphModule, batch_size: int = 2, seed: int = 0) -> list[torch.Tensor]:
    """Random inputs matching a compiled model's Input nodes (token ids for token inputs)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for nid in model.layerlab_inputs:
        shape = (batch_size, *model.layerlab_input_shapes[nid])
        if model.layerlab_input_dtypes[nid] == torch.long:
            out.append(torch.randint(0, model.layerlab_vocab[nid] or 2, shape, generator=gen))
        else:
            out.append(torch.randn(shape, generator=gen))
    for i, nid in enumerate(model.layerlab_inputs):  # right padding, at least one real step per row
        if nid in getattr(model, "layerlab_padding_masks", ()):
            steps = model.layerlab_input_shapes[nid][0]
            lengths = torch.randint(1, steps + 1, (batch_size, 1), generator=gen)
            pad = torch.arange(steps).expand(batch_size, steps) >= lengths  # (B, T)
            if out[i].dtype == torch.long:
                out[i] = out[i].clamp(min=PAD_ID + 1).masked_fill(pad, PAD_ID)
            else:
                out[i] = out[i].masked_fill(pad.unsqueeze(-1), 0.0)
    return out
