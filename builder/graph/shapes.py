"""Graph analysis: structure checks (networkx), parameter checks, shape inference and the size budget.

One pass runs the phases of :data:`PHASES` over one :class:`Analysis` (node checks, edges, arity, cycles,
reachability, shape propagation, ties, the report, outputs, gradients, the size budget) and produces a :class:`ShapeReport`;
:func:`builder.validate` returns its problems and :func:`infer_shapes` the whole report. Example::

    >>> from builder import load_template
    >>> rep = infer_shapes(load_template("cnn").graph)
    >>> rep.ok, rep.total_params > 0
    (True, True)
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import astuple, dataclass, field

import networkx as nx

from builder.errors import Problem
from builder.graph.counts import module_counts
from builder.graph.memory import device_memory, training_memory
from builder.graph.project import Edge, Graph, as_graph
from builder.graph.registry import get_spec, has_spec, unknown_type_message
from builder.graph.report import (  # noqa: F401  (re-exported: the report types are imported from here too)
    DEFAULT_BUDGET,
    MAX_NODES,
    Budget,
    NodeInfo,
    ShapeReport,
    human_bytes,
    human_count,
    kinds_of,
)
from builder.graph.spec import (
    MASK,
    MAX_VALUES,
    PADDING_MASK,
    SHARES,
    TOKENS,
    Cost,
    Inputs,
    LayerSpec,
    ShapeError,
    TensorType,
    format_shape,
    short_repr,
)


def _bad_port(a, nid: str, e, msg: str) -> None:
    """Mark node ``nid`` in error for edge ``e`` (a located ``bad_port`` problem); None: the edge carries nothing."""
    info = a.nodes[nid]
    info.status = "error"
    info.errors.append(msg)
    _err(a.problems, "bad_port", msg, node=nid, edge=e.key)
    return None

def _err(p: list[Problem], code: str, msg: str, node: str | None = None, edge: str | None = None) -> None:
    p.append(Problem(code, msg, node=node, edge=edge))


@functools.lru_cache(maxsize=4096)
def _count_params(cls: str, items: tuple) -> tuple[int, int]:
    """(parameters, buffer values) of ``nn.<cls>(**items)`` (:func:`builder.graph.counts.module_counts`: computed from
    the arguments, without importing torch)."""
    return module_counts(cls, dict(items))


def _freeze(v):
    return tuple(v) if isinstance(v, list) else v


def module_ctor(spec: LayerSpec, params: dict, ins: list[TensorType]) -> tuple[str, dict] | None:
    """The torch.nn class name and keyword arguments for a node, or None for module-less layers."""
    return spec.ctor(params, ins) if spec.ctor else None


_PORT_INDEX = re.compile(r"[0-9]{1,6}")  # ASCII digits only: '²' or '١' are no port numbers


def port_index(port: str | None) -> int | None:
    """The input index a numeric ``target_port`` names (``"0"``, ``"12"``), else None."""
    return int(port) if port and _PORT_INDEX.fullmatch(port) else None


def _resolve_port(spec: LayerSpec, edge: Edge, taken: Counter) -> tuple[str | None, str | None]:
    """Map an edge's target_port to a port name; returns (port, error)."""
    port = edge.target_port
    if not spec.inputs:
        return None, f"{spec.type} takes no inputs"
    if port is None or port == "":
        if spec.variadic:
            return spec.inputs[0], None
        for name in spec.inputs:
            if not taken[name]:
                return name, None
        return spec.inputs[0], None
    if spec.variadic and (port_index(port) is not None or port in spec.inputs):
        return spec.inputs[0], None
    if port in spec.inputs:
        return port, None
    close = difflib.get_close_matches(port, spec.inputs, n=1)
    hint = f"did you mean `{close[0]}`?" if close else "use one of " + ", ".join(f"`{n}`" for n in spec.inputs)
    if spec.variadic:
        hint = f"number the inputs with ASCII digits `0`, `1`, ... (or use `{spec.inputs[0]}`)"
    return None, f"unknown target_port for {spec.type}; received: target_port={short_repr(port)}. Fix: {hint}"


@dataclass
class Analysis:
    """The state one analysis pass shares between its phases (as torch.fx's ShapeProp writes ``node.meta``).

    Each phase reads what the earlier ones left and adds its own: :func:`check_nodes` fills ``nodes`` and
    ``specs``, :func:`check_edges` the ``dag``, ``in_edges`` and port counts, :func:`check_cycles` ``cyclic``,
    :func:`check_reachability` ``inputs``, :func:`propagate_shapes` ``order`` and every node's outputs,
    :func:`build_report` ``report``, :func:`check_budget` the size problems. ``problems`` collects every
    problem in the order the phases find them.
    """

    graph: Graph
    budget: Budget = field(default_factory=Budget)
    problems: list[Problem] = field(default_factory=list)
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    specs: dict[str, LayerSpec] = field(default_factory=dict)
    dag: nx.DiGraph = field(default_factory=nx.DiGraph)
    in_edges: dict[str, list[tuple[Edge, str]]] = field(default_factory=lambda: defaultdict(list))
    taken: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # node -> port -> edges in
    edge_types: dict[str, TensorType | None] = field(default_factory=dict)
    cyclic: set[str] = field(default_factory=set)
    inputs: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    report: ShapeReport | None = None

    @property
    def position(self) -> dict[str, int]:
        """Node id -> its index in file order (first occurrence)."""
        return {nid: i for i, nid in enumerate(self.nodes)}

    @property
    def acyclic(self) -> nx.DiGraph:
        """The dag without the nodes on cycles."""
        return self.dag.subgraph([n for n in self.nodes if n not in self.cyclic])

    def error(self, nid: str, code: str, msg: str) -> None:
        """Mark node ``nid`` broken with ``msg`` and record the problem."""
        info = self.nodes[nid]
        info.status = "error"
        info.errors.append(msg)
        _err(self.problems, code, msg, node=nid)


def check_nodes(a: Analysis) -> None:
    """Duplicate ids, unknown types, parameters (every value checked against the spec), a missing Input."""
    for n in a.graph.nodes:
        if n.id in a.nodes:
            _err(a.problems, "duplicate_id", f"node ids must be unique; received: a second node with id {n.id!r} "
                 f"(type {n.type}). Fix: rename one of them", node=n.id)
            continue
        info = NodeInfo(n.id, n.type)
        a.nodes[n.id] = info
        if not has_spec(n.type):
            a.error(n.id, "unknown_type", unknown_type_message(n.type))
            continue
        spec = a.specs[n.id] = get_spec(n.type)
        info.params, errs = spec.resolve_params(n.params)
        for msg in errs:
            a.error(n.id, "bad_param", msg)
    if not any(n.type == "Input" for n in a.graph.nodes):
        _err(a.problems, "no_input", "a graph needs at least one Input node; received: none. Fix: drag an Input "
             "from the palette and connect it to the first layer")


def check_edges(a: Analysis) -> None:
    """Duplicate, dangling and self edges, unknown ports; fills ``dag``, ``in_edges`` and the port counts."""
    a.dag.add_nodes_from(a.nodes)
    seen_keys: set[str] = set()
    for e in a.graph.edges:
        key = e.key
        if key in seen_keys:
            _err(a.problems, "duplicate_edge", f"each connection may appear once; received: a second edge {key}. "
                 "Fix: delete the duplicate", edge=key)
            continue
        seen_keys.add(key)
        missing = [end for end in (e.source, e.target) if end not in a.nodes]
        if missing:
            _err(a.problems, "dangling_edge", f"an edge must connect two existing nodes; received: {key} but no node "
                 f"{' or '.join(map(repr, missing))}. Fix: delete the edge or add the node", edge=key)
            continue
        if e.source == e.target:
            _err(a.problems, "self_loop", f"a node cannot feed itself; received: edge {key}. Fix: delete it",
                 node=e.source, edge=key)
            continue
        src_spec, dst_spec = a.specs.get(e.source), a.specs.get(e.target)
        if src_spec is not None and e.source_port and e.source_port not in src_spec.outputs:
            _err(a.problems, "bad_port", f"unknown source_port for {src_spec.type}; received: source_port="
                 f"{e.source_port!r}. Fix: use one of {', '.join(map(repr, src_spec.outputs))}", node=e.source,
                 edge=key)
            continue
        port = "in"
        if dst_spec is not None:
            port, err = _resolve_port(dst_spec, e, a.taken[e.target])
            if err:
                _err(a.problems, "bad_port", err, node=e.target, edge=key)
                a.nodes[e.target].status = "error"
                continue
        a.taken[e.target][port] += 1
        a.in_edges[e.target].append((e, port))
        a.dag.add_edge(e.source, e.target)
        a.edge_types[key] = None


def check_arity(a: Analysis) -> None:
    """Every required input port fed once; variadic merges fed at least ``min_inputs`` times."""
    for nid, spec in a.specs.items():
        count = a.taken[nid]
        n_in = sum(count.values())
        if spec.variadic:
            if n_in < spec.min_inputs:
                a.error(nid, "missing_input", f"{spec.type} needs at least {spec.min_inputs} inputs; received: "
                        f"{n_in}. Fix: connect {spec.min_inputs - n_in} more")
            continue
        for port in spec.inputs:
            if count[port] == 0 and port not in spec.optional_inputs:
                what = f"input `{port}`" if len(spec.inputs) > 1 else "an input"
                a.error(nid, "missing_input", f"{spec.type} needs {what}; received: nothing connected. Fix: connect "
                        "a layer into it (or delete this node)")
            elif count[port] > 1:
                a.error(nid, "extra_input", f"{spec.type} takes one edge into `{port}`; received: {count[port]}. Fix: "
                        "delete the extra edges or merge them first with Add or Concat")
        if not spec.inputs and n_in:
            a.error(nid, "extra_input", f"{spec.type} takes no inputs; received: {n_in}. Fix: delete the incoming edges")


def check_cycles(a: Analysis) -> None:
    """One problem per cycle (on its first node in file order); every node on it is marked."""
    position = a.position
    comps = sorted((c for c in nx.strongly_connected_components(a.dag) if len(c) > 1),
                   key=lambda c: min(position[n] for n in c))
    for comp in comps:
        start = min(comp, key=position.__getitem__)
        cyc = [u for u, _ in nx.find_cycle(a.dag.subgraph(comp), source=start)]
        a.cyclic |= comp
        first = cyc[0]
        msg = (f"the graph must not contain cycles; received: the cycle {' → '.join([*cyc, first])}. Fix: delete "
               "one of its edges (feedback loops are not supported; use an RNN/LSTM/GRU layer for recurrence)")
        for nid in cyc:
            a.nodes[nid].status = "error"
            a.nodes[nid].errors.append(msg)
        _err(a.problems, "cycle", msg, node=first)


def check_reachability(a: Analysis) -> None:
    """Every healthy node is fed from an Input (when the graph has one)."""
    a.inputs = [n for n, i in a.nodes.items() if i.type == "Input"]
    # one search from every Input at once: each node and edge is visited once (a search per Input was inputs x
    # (nodes + edges): 2,500 Inputs into one chain of 2,500 took 22 s)
    acyclic = a.acyclic
    reach = set(a.inputs)
    todo = [s for s in a.inputs if s in acyclic]
    while todo:
        for v in acyclic.successors(todo.pop()):
            if v not in reach:
                reach.add(v)
                todo.append(v)
    for nid, info in a.nodes.items():
        if nid not in reach and nid not in a.cyclic and info.status == "ok" and a.inputs:
            info.status = "unreachable"
            info.errors.append("every layer must be fed from an Input; received: no path from any Input to this "
                               "node. Fix: connect it to the network or delete it")
            _err(a.problems, "unreachable", info.errors[-1], node=nid)


def propagate_shapes(a: Analysis) -> None:
    """In topological order: each healthy node's input types, output types, parameter count, cost and lint."""
    a.order = list(nx.topological_sort(a.acyclic))
    for nid in a.order:
        info, spec = a.nodes[nid], a.specs.get(nid)
        if spec is None or info.status != "ok":
            continue
        preds = a.in_edges[nid] = _ordered_inputs(spec, a.in_edges.get(nid, []))
        ins = _input_types(a, nid, preds)
        if ins is not None:
            _apply_rule(a, nid, spec, ins, preds)
    for e in a.graph.edges:
        if e.key in a.edge_types and e.source in a.nodes:
            src = a.nodes[e.source]
            a.edge_types[e.key] = src.outputs.get(e.source_port) if e.source_port else src.type_out


def _input_types(a: Analysis, nid: str, preds: list[tuple[Edge, str]]) -> list[TensorType] | None:
    """The types flowing into ``nid`` in call order, or None (node marked ``upstream``) when a source is broken."""
    ins: list[TensorType] = []
    for e, _port in preds:
        src = a.nodes[e.source]
        t = src.outputs.get(e.source_port or "", None) if e.source_port else src.type_out
        if src.status == "ok" and t is None and e.source_port:  # a port the spec lists but this node lacks (Op)
            msg = (f"`{e.source}` has no output `{e.source_port}` with these parameters; received: source_port="
                   f"{short_repr(e.source_port)}. Fix: connect one of {', '.join(map(repr, src.outputs)) or 'none'}")
            return _bad_port(a, nid, e, msg)
        if src.type == "Target" and src.params.get("source") == "labels" and _port != "target":
            msg = (f"a Target's labels (class ids as integers for a classification dataset) feed a loss's `target` "
                   f"only; received: an edge into `{_port}` of {a.nodes[nid].type}. Fix: connect `{e.source}` to the "
                   "target port of a loss (e.g. CrossEntropyLoss)")
            return _bad_port(a, nid, e, msg)
        if (a.nodes[nid].type == "CrossEntropyLoss" and _port == "target" and t is not None and t.numel == 1
                and src.type != "Input"
                and not (src.type == "Target" and src.params.get("source", "labels") in ("labels", "ones", "zeros"))):
            msg = (f"a cross-entropy's class ids (one value per sample) come from a Target of the labels (or ones, "
                   f"zeros) or an Input: computed values are no class ids; received: `{e.source}` ({src.type}) into "
                   "`target`. Fix: connect a Target node with source labels, or C probabilities per sample")
            return _bad_port(a, nid, e, msg)
        if src.status != "ok" or t is None:
            info = a.nodes[nid]
            info.status, info.cause = "upstream", src.cause or e.source
            info.errors.append(f"upstream error: fix `{info.cause}` first")
            return None
        msg = _mask_port_problem(a.specs[nid], _port, e, t)
        if msg:
            return _bad_port(a, nid, e, msg)
        ins.append(t)
    return Inputs(ins, [port for _, port in preds])


def _mask_port_problem(spec: LayerSpec, port: str, e: Edge, t: TensorType) -> str | None:
    """A padding mask goes into a layer's mask ports (``LayerSpec.mask_inputs``) only, and they take nothing else."""
    if port in spec.mask_inputs and t.kind != MASK:
        return (f"`{port}` of {spec.type} takes a padding mask (an Input's `{PADDING_MASK}` output); received: "
                f"{t} from `{e.source}`. Fix: connect the `{PADDING_MASK}` port of the token Input")
    if port not in spec.mask_inputs and t.kind == MASK:
        where = (f"connect it to `{spec.mask_inputs[0]}` (set the edge's target_port)" if spec.mask_inputs else
                 "connect it to the padding_mask port of an attention layer")
        return (f"a padding mask feeds only the mask ports of attention layers; received: `{e.source}`'s "
                f"{PADDING_MASK} into `{port}` of {spec.type}. Fix: {where}")
    return None


def _apply_rule(a: Analysis, nid: str, spec: LayerSpec, ins: list[TensorType], preds: list[tuple[Edge, str]]) -> None:
    """Run the spec's shape rule, constructor arguments, cost and lint for one node; record what they say."""
    info = a.nodes[nid]
    info.inputs = ins
    try:
        out = spec.shape(info.params, ins)
        outs = out if isinstance(out, dict) else {spec.outputs[0]: out}
        _check_values(outs)
        ctor = module_ctor(spec, info.params, ins)
        if ctor is not None:
            cls, kwargs = ctor
            info.inferred = {k: kwargs[k] for k in spec.inferred if k in kwargs}
            info.num_params, info.num_buffers = _count_params(
                cls, tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
        elif spec.counts is not None:  # a node building its own module (LayerSpec.make_module)
            info.num_params, info.num_buffers = spec.counts(info.params, ins)
        cost = spec.cost(info.params, ins, outs) if spec.cost else Cost()
        info.num_buffers += cost.buffers
        info.build_values, info.work_values, info.cost_note = cost.build, cost.work, cost.note
        info.cuda_work_values, info.backward_values = cost.cuda_work, cost.backward
        info.cuda_backward_values = cost.cuda_backward
    except ShapeError as ex:
        a.error(nid, "shape", _located(ex, preds))
        return
    except (TypeError, ValueError, RuntimeError) as ex:  # torch rejected the constructor arguments
        a.error(nid, "bad_param", f"invalid parameters: {_short_error(ex)}. Fix: adjust the parameters")
        return
    except Exception as ex:  # noqa: BLE001 - a rule that is not total is a bug, but validation still only locates
        a.error(nid, "shape", _located(ShapeError(
            f"{spec.type} cannot take these inputs; received: {', '.join(map(str, ins)) or 'none'} (the shape rule "
            f"failed with {_short_error(ex)}). Fix: feed the input {spec.type} expects (see its description)"),
            preds))
        return
    info.outputs = outs
    for msg in spec.lint(info.params, ins) if spec.lint else ():
        info.warnings.append(msg)
        a.problems.append(Problem("warning", msg, node=nid, severity="warning"))


def _check_values(outs: dict) -> None:
    """Refuse an output tensor of more than :data:`~builder.graph.spec.MAX_VALUES` values per sample (sizes of a
    million each, multiplied, reach numbers no estimate, no memory and no float can hold)."""
    for t in outs.values():
        if not isinstance(t, TensorType) or t.shape is None or not all(isinstance(d, int) for d in t.shape):
            continue
        if (n := t.numel) > MAX_VALUES:  # its digits, not a float: 10^336 is no float
            raise ShapeError(f"a tensor holds at most {MAX_VALUES:,} values per sample (2^40); received: "
                             f"{format_shape(t.shape)[:120]}, about 10^{len(str(n)) - 1} values. Fix: use smaller "
                             "sizes")


def _short_error(ex: BaseException) -> str:
    """``Type: message`` of an exception on one line, at most 200 characters."""
    text = " ".join(f"{type(ex).__name__}: {ex}".split())
    return text if len(text) <= 200 else text[:197] + "..."


def _located(ex: ShapeError, preds: list[tuple[Edge, str]]) -> str:
    """A shape rule's message prefixed with the input it is about (port, index, or the edges in order)."""
    port = ex.port
    i = port_index(port)
    where = f"input `{port}`: " if port else ""
    if i is not None and i < len(preds):
        where = f"input {i} (edge from `{preds[i][0].source}`): "
    elif port:
        src = next((e.source for e, name in preds if name == port), None)
        where = f"input `{port}`" + (f" (edge from `{src}`)" if src else "") + ": "
    msg = where + str(ex)
    if not port and len(preds) == 1:
        msg = f"{msg} (input from `{preds[0][0].source}`)"
    elif not port and preds:
        msg = f"{msg} (inputs in order: " + ", ".join(f"{i}: `{e.source}`" for i, (e, _) in enumerate(preds)) + ")"
    return msg


def check_ties(a: Analysis) -> None:
    """Nodes whose ``params["shares"]`` names another node call that node's module: the two must build the same
    module (type, parameters and the sizes inferred from their inputs); the sharing node holds no weights of
    its own (its parameters count once, on the node it shares)."""
    raw = {n.id: n.params for n in a.graph.nodes}
    for nid, info in a.nodes.items():
        target = (raw.get(nid) or {}).get(SHARES)
        if target is None or info.status != "ok":
            continue
        fix = f"Fix: name a node of type {info.type} with the same parameters and input size, or remove `{SHARES}`"
        other = a.nodes.get(target) if isinstance(target, str) else None
        if other is None or target == nid:
            a.error(nid, "bad_share", f"`{SHARES}` must name another node of the graph; received: {SHARES}="
                    f"{short_repr(target)}. {fix}")
            continue
        if (raw.get(target) or {}).get(SHARES) is not None:
            a.error(nid, "bad_share", f"a node can share only a node that holds its own weights; received: "
                    f"{SHARES}={target!r}, which shares {short_repr(raw[target][SHARES])}. Fix: name that node instead")
            continue
        if other.status != "ok":
            continue  # its own problem is reported on it
        spec = a.specs[nid]
        mine = module_ctor(spec, info.params, info.inputs)
        theirs = module_ctor(spec, other.params, other.inputs) if other.type == info.type else None
        if other.type != info.type or mine is None or mine != theirs:
            what = (f"a {other.type}" if other.type != info.type else "a layer without weights" if mine is None
                    else "built differently: " + _ctor_diff(theirs, mine))
            a.error(nid, "bad_share", f"a node that shares weights must build the very module of the node it "
                    f"shares; received: {SHARES}={target!r} is {what}. {fix}")
            continue
        info.shares, info.num_params, info.num_buffers = target, 0, 0


def _ctor_diff(theirs: tuple[str, dict], mine: tuple[str, dict]) -> str:
    """``out_features=32 there, 16 here`` for the constructor arguments two nodes differ in."""
    keys = sorted(set(theirs[1]) | set(mine[1]), key=str)
    return "; ".join(f"{k}={short_repr(theirs[1].get(k))} there, {short_repr(mine[1].get(k))} here" for k in keys
                     if theirs[1].get(k) != mine[1].get(k))[:300] or f"{theirs[0]} there, {mine[0]} here"


def build_report(a: Analysis) -> None:
    """The :class:`ShapeReport` of what the phases found: outputs in file order, totals."""
    position = a.position
    acyclic = a.acyclic
    outputs = sorted((n for n in a.order if acyclic.out_degree(n) == 0 and a.nodes[n].type != "Input"),
                     key=position.__getitem__)  # file order
    report = ShapeReport(a.nodes, a.edge_types, a.problems, a.order, a.inputs, outputs, dict(a.in_edges))
    report.total_params = sum(i.num_params for i in a.nodes.values())
    report.total_buffers = sum(i.num_buffers for i in a.nodes.values())
    report.activation_bytes = training_memory(report, 1).per_sample
    a.report = report


def check_outputs(a: Analysis) -> None:
    """A graph needs a layer after its Inputs: the model's outputs are the nodes no other node reads, and an Input is
    never one. A graph of Inputs alone compiled to a forward returning nothing (no loss to train) and failed its ONNX
    export in onnxruntime. (Nodes on cycles are no outputs either; their cycle is the problem reported.)"""
    if a.report is None or a.report.output_nodes or not a.inputs or a.cyclic:
        return
    names = ", ".join(f"`{n}`" for n in a.inputs[:3]) + (" ..." if len(a.inputs) > 3 else "")
    a.error(a.inputs[0], "no_output", f"a graph needs at least one layer after its Input, whose result is the model's "
            f"output; received: Input nodes only ({names}), feeding no layer. Fix: connect a layer to `{a.inputs[0]}` "
            "(e.g. a Linear, or an Output node to return the input as it is)")


def _ordered_inputs(spec: LayerSpec, preds: list[tuple[Edge, str]]) -> list[tuple[Edge, str]]:
    """Inputs in call order: named ports in spec order; variadic ones by numeric target_port, then edge order."""
    if spec.variadic:
        def key(item):
            i = port_index(item[0].target_port)
            return (0, i) if i is not None else (1, 0)
        return sorted(preds, key=key)  # stable: edge order breaks ties
    rank = {p: i for i, p in enumerate(spec.inputs)}
    return sorted(preds, key=lambda item: rank.get(item[1], 99))


def _sample_values(info: NodeInfo) -> int:
    """Values one sample keeps alive at this node: its outputs plus its intermediates."""
    return sum(t.numel for t in info.outputs.values()) + info.work_values


def _model_values(info: NodeInfo) -> int:
    """Values this node needs when the model is built: parameters, buffers and build temporaries."""
    return info.num_params + info.num_buffers + info.build_values


def check_budget(a: Analysis) -> None:
    """Refuse models whose values or activations exceed ``a.budget``; the problem goes on the costliest node."""
    report, budget = a.report, a.budget
    if not report.nodes:
        return
    peak_build = max(i.build_values for i in report.nodes.values())
    held = report.total_params + report.total_buffers + peak_build
    if held > budget.max_params:
        worst = max(report.nodes.values(), key=_model_values)
        what = f"{report.total_params:,} parameters"
        if report.total_buffers or peak_build:
            what += f" and {report.total_buffers + peak_build:,} values in buffers and the temporaries that build them"
        note = f" ({worst.cost_note})" if worst.cost_note else ""
        if worst.type == "PositionalEncoding" and worst.inputs:
            fix = (f"lower max_len to the longest sequence you feed (this graph feeds {worst.inputs[0].shape[0]} "
                   "steps) or shrink the embedding size")
        else:
            fix = "reduce its sizes (e.g. out_features/out_channels) or add pooling before it"
        msg = (f"the model would hold {what}, above the budget of {budget.max_params:,} values; this node alone "
               f"needs {_model_values(worst):,}{note}. Fix: {fix}")
        worst.errors.append(msg)
        report.problems.append(Problem("budget", msg, node=worst.id))
        return  # its training memory would only restate the parameter count
    problem = memory_problem(report, budget)
    if problem is not None:
        info = report.nodes[problem.node]
        (info.warnings if problem.severity == "warning" else info.errors).append(problem.message)
        report.problems.append(problem)


def memory_problem(report: ShapeReport, budget: Budget) -> Problem | None:
    """The training memory of ``report``'s graph at ``budget`` (its batch size, optimizer, device and loss) over the
    budget's limit: a warning naming the batch size that fits, an error when not even one sample fits; None within
    it. On the node that keeps the most per sample. (:func:`check_budget` for the analysis' budget; a run checks its
    own settings on the same report.)"""
    est = training_memory(report, budget.batch_size, budget.optimizer, budget.device, loss=budget.loss)
    limit = budget.max_activation_bytes if budget.max_activation_bytes is not None else device_memory(budget.device)
    if est.peak <= limit or not report.nodes:
        return None
    worst = max(report.nodes.values(), key=_sample_values)
    why = worst.cost_note or "e.g. attention weights, recurrent gates"
    extra = (f" and keeps {worst.work_values:,} intermediate values per sample ({why})"
             if worst.work_values > sum(t.numel for t in worst.outputs.values()) else "")
    fits = est.fitting_batch(limit)
    where = (f"{human_bytes(limit)} available on {budget.device}" if budget.max_activation_bytes is None
             else f"the budget of {human_bytes(limit)}")
    need = (f"one training step would need about {est.describe()}, above {where}; "
            f"this node outputs {worst.shape_str} per sample{extra}")
    if fits >= 1:  # it trains, at a smaller batch: a suggestion, not a refusal
        msg = f"{need}. Fix: use a batch size of at most {fits}, or shrink the input or add pooling/stride earlier"
        return Problem("budget", msg, node=worst.id, severity="warning")
    msg = (f"{need}; not even one sample fits. Fix: shrink the input or add pooling/stride earlier, or "
           "train on a device with more memory")
    return Problem("budget", msg, node=worst.id)


def check_gradient(a: Analysis) -> None:
    """A graph with learned parameters needs one output whose gradient reaches one of them: else the first training
    step fails ("element 0 of tensors does not require grad"). Checked on graphs without other errors."""
    report = a.report
    if report is None or any(p.severity == "error" for p in a.problems) or report.total_params == 0:
        return
    grad: dict[str, bool] = {}  # a node: one of its outputs carries a gradient from the parameters
    ports: dict[str, set] = {}  # which of its outputs do (an aten.max.dim's values do, its indices do not)
    cut: list[str] = []  # nodes where a gradient from the parameters stops
    for nid in report.order:
        info = a.nodes[nid]
        if info.type == "Input":
            grad[nid], ports[nid] = False, set()
            continue
        spec = get_spec(info.type)
        upstream = any(_carries(ports.get(e.source, set()), a.nodes[e.source], e.source_port)
                       for e, _ in report.in_edges.get(nid, []))
        own = info.num_params > 0 or info.shares is not None
        passes = spec.grad is None or spec.grad(info.params, info.inputs)
        ports[nid] = {port for port, t in info.outputs.items() if t.kind != TOKENS} if passes and (own or upstream) \
            else set()
        grad[nid] = bool(ports[nid])
        if not grad[nid] and (own or upstream):
            cut.append(nid)
    if report.output_nodes and not any(grad.get(n) for n in report.output_nodes):
        where = ", ".join(f"`{n}` ({a.nodes[n].type})" for n in cut[:3]) or "none"
        for nid in report.output_nodes:
            _err(a.problems, "no_gradient", "an output's gradient must reach a learned parameter, or training stops "
                 f"at its first step; received: every path from the parameters is cut at {where}. Fix: remove "
                 "the Detach (or the operator that stops gradients), or add a learned layer after it", node=nid)


def _carries(ports: set, source: NodeInfo, port: str | None) -> bool:
    """Whether the edge out of ``source``'s ``port`` (None: its first output) carries a gradient (``ports``: the
    outputs of ``source`` that do)."""
    return (port if port is not None else next(iter(source.outputs), None)) in ports


#: The phases of one analysis pass, in order; each reads what the earlier ones left on the :class:`Analysis`.
PHASES = (check_nodes, check_edges, check_arity, check_cycles, check_reachability, propagate_shapes, check_ties,
          build_report, check_outputs, check_gradient, check_budget)


def analyse(graph: Graph, budget: Budget | None = None) -> Analysis:
    """Run every phase of :data:`PHASES` over a :class:`Graph` and return the analysis (its ``report`` set)."""
    a = Analysis(graph, budget or DEFAULT_BUDGET)
    for phase in PHASES:
        phase(a)
    return a


def infer_shapes(graph, budget: Budget | None = None) -> ShapeReport:
    """Analyse a graph: every problem, every node's output shape and parameter count.

    Args:
        graph: a Graph, Project, dict or path (coerced here: this is a public entry point).
        budget: size limits; :data:`DEFAULT_BUDGET` when omitted.

    Returns:
        A ShapeReport; ``report.problems`` is empty when the graph is valid.
    """
    budget = budget or DEFAULT_BUDGET
    raw = graph.get("graph", graph) if isinstance(graph, dict) else None
    if isinstance(raw, dict) and isinstance(raw.get("nodes"), list) and len(raw["nodes"]) > budget.max_nodes:
        n_raw = len(raw["nodes"])  # answer at once, without validating 10^5 node records
    else:
        graph = as_graph(graph)
        n_raw = len(graph.nodes)
    if n_raw > budget.max_nodes:
        problems: list[Problem] = []
        _err(problems, "too_many_nodes", f"a graph may have at most {budget.max_nodes} nodes; received: "
             f"{n_raw} nodes. Fix: group repeated parts or build a smaller graph")
        return ShapeReport({}, {}, problems, [], [], [], {})
    memo = _MEMO.get()
    if memo is None:
        return analyse(graph, budget).report
    key = hashlib.sha256(f"{graph.model_dump_json()}|{astuple(budget)}".encode()).hexdigest()
    if key not in memo:
        memo[key] = analyse(graph, budget).report
    return memo[key]


_MEMO: ContextVar[dict[str, ShapeReport] | None] = ContextVar("layerlab_analyses", default=None)


@contextmanager
def one_analysis_per_graph() -> Iterator[None]:
    """Within this block :func:`infer_shapes` analyses each graph once: a graph of the same content (SHA-256 of
    its JSON) and budget gets the report of its first analysis, the same object (reports are read, never changed).
    For a pass that asks in several places, such as a job process's GPU estimate and then its training.

    Example::

        >>> from builder import load_template
        >>> with one_analysis_per_graph():
        ...     infer_shapes(load_template("mlp").graph) is infer_shapes(load_template("mlp").graph)
        True
        >>> infer_shapes(load_template("mlp").graph) is infer_shapes(load_template("mlp").graph)
        False
    """
    token = _MEMO.set({} if _MEMO.get() is None else _MEMO.get())  # nested blocks share the outer memo
    try:
        yield
    finally:
        _MEMO.reset(token)


def validate(graph, budget: Budget | None = None) -> list[Problem]:
    """Every problem of a graph at once (empty when valid), each tied to a node or an edge.

    Problems with ``severity == "warning"`` do not stop compilation.

    Example::

        >>> graph = {"nodes": [{"id": "fc", "type": "Linear", "params": {"out_features": 0}}], "edges": []}
        >>> [p.code for p in validate(graph)]  # all at once: the parameter, no Input, nothing feeds fc
        ['bad_param', 'no_input', 'missing_input']
    """
    return infer_shapes(graph, budget).problems
