"""Cost per node: parameters, multiply-adds and activation memory, read off one analysis pass without torch;
and the canvas annotations that show them (:func:`canvas_annotations`).

Multiply-adds (MACs) count the products of matrix multiplications and convolutions per sample, the work
that dominates a forward pass and the one torch's own ``torch.utils.flop_counter.FlopCounterMode`` counts
(its FLOPs are 2 × MACs). Element-wise layers (activations, norms, pooling, dropout, adds) count 0 here,
as in that counter. Formulas are keyed by the torch.nn class a node builds, so any node that builds one of
these classes is counted; ``tests/graph/test_cost.py`` checks every template against FlopCounterMode.

Example::

    >>> from builder.graph.templates import load_template
    >>> costs = node_costs(load_template("mlp").graph)
    >>> [(c.node, c.macs) for c in costs if c.macs]
    [('fc1', 64), ('fc2', 1024), ('head', 64)]
    >>> total_macs(costs)
    1152
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from builder.graph.lora import node_training
from builder.graph.memory import training_memory
from builder.graph.registry import MASK, get_spec, has_spec
from builder.graph.report import ShapeReport, human_bytes, human_count, kinds_of
from builder.graph.shapes import infer_shapes, module_ctor

__all__ = ["NodeCost", "module_macs", "node_costs", "total_macs", "MAC_COUNTED", "COST_MODES", "cost_overlay",
           "canvas_annotations"]

Shape = Sequence[int]


@dataclass(frozen=True)
class NodeCost:
    """One node's cost per sample: parameters, multiply-adds, and float32 bytes of its outputs."""

    node: str
    type: str
    params: int
    macs: int
    activation_bytes: int


def _taps(k: Any, dims: int) -> int:
    return math.prod(k) if isinstance(k, list | tuple) else int(k) ** dims


def _linear(kw: dict, ins: list[Shape], out: Shape) -> int:
    return kw["in_features"] * kw["out_features"] * math.prod(ins[0][:-1])


def _conv(dims: int, transposed: bool = False) -> Callable[[dict, list[Shape], Shape], int]:
    def macs(kw: dict, ins: list[Shape], out: Shape) -> int:
        i, o, g = kw["in_channels"], kw["out_channels"], kw.get("groups", 1)
        taps = _taps(kw["kernel_size"], dims)
        if transposed:  # every input position scatters into a kernel-sized patch of each output channel
            return i * (o // g) * taps * math.prod(ins[0][1:])
        return o * (i // g) * taps * math.prod(out[1:])
    return macs


def _rnn(gates: int) -> Callable[[dict, list[Shape], Shape], int]:
    def macs(kw: dict, ins: list[Shape], out: Shape) -> int:
        steps = ins[0][0] if len(ins[0]) > 1 else 1  # (T, features) with batch_first
        h, layers = kw["hidden_size"], kw.get("num_layers", 1)
        dirs = 2 if kw.get("bidirectional", False) else 1
        total = 0
        for layer in range(layers):
            i = kw["input_size"] if layer == 0 else h * dirs
            total += dirs * gates * h * (i + h) * steps
        return total
    return macs


def _attention(e: int, lq: int, lk: int) -> int:
    """Projections of query (lq rows), key and value (lk rows), scores, weighted sum, output projection."""
    return lq * e * e + 2 * lk * e * e + 2 * lq * lk * e + lq * e * e


def _mha(kw: dict, ins: list[Shape], out: Shape) -> int:
    q = ins[0]
    k = ins[1] if len(ins) > 1 else q
    return _attention(kw["embed_dim"], q[0] if len(q) > 1 else 1, k[0] if len(k) > 1 else 1)


def _encoder_layer(kw: dict, ins: list[Shape], out: Shape) -> int:
    e, f = kw["d_model"], kw.get("dim_feedforward", 2048)
    n = ins[0][0] if len(ins[0]) > 1 else 1
    return _attention(e, n, n) + 2 * n * e * f


def _decoder_layer(kw: dict, ins: list[Shape], out: Shape) -> int:
    e, f = kw["d_model"], kw.get("dim_feedforward", 2048)
    n = ins[0][0] if len(ins[0]) > 1 else 1
    s = ins[1][0] if len(ins) > 1 and len(ins[1]) > 1 else n
    return _attention(e, n, n) + _attention(e, n, s) + 2 * n * e * f


_MACS: dict[str, Callable[[dict, list[Shape], Shape], int]] = {
    "Linear": _linear, "Conv1d": _conv(1), "Conv2d": _conv(2), "ConvTranspose2d": _conv(2, transposed=True),
    "ConvTranspose1d": _conv(1, transposed=True), "RNN": _rnn(1), "LSTM": _rnn(4), "GRU": _rnn(3), "MultiheadAttention": _mha,
    "TransformerEncoderLayer": _encoder_layer, "TransformerDecoderLayer": _decoder_layer,
}
MAC_COUNTED = frozenset(_MACS)


def module_macs(cls: str, kwargs: dict, ins: list[Shape], out: Shape) -> int:
    """Multiply-adds per sample of ``torch.nn.<cls>(**kwargs)`` on inputs of shapes ``ins`` (batch left out)
    giving ``out``; 0 for classes without matrix products (element-wise layers).

    >>> module_macs("Conv2d", {"in_channels": 1, "out_channels": 8, "kernel_size": 3}, [(1, 8, 8)], (8, 6, 6))
    2592
    """
    rule = _MACS.get(cls)
    return rule(kwargs, [tuple(s) for s in ins], tuple(out)) if rule else 0


def node_costs(graph_or_report: Any) -> list[NodeCost]:
    """The cost of every analysed node in topological order (nodes with problems are left out).

    Takes a graph (analysed here) or the :class:`~builder.graph.report.ShapeReport` of one, so a caller that
    has already analysed the graph does not analyse it twice.
    """
    report = graph_or_report if isinstance(graph_or_report, ShapeReport) else infer_shapes(graph_or_report)
    out: list[NodeCost] = []
    for nid in report.order:
        info = report.nodes[nid]
        if info.status != "ok" or not info.outputs or not has_spec(info.type):
            continue
        macs = 0
        spec = get_spec(info.type)
        ctor = module_ctor(spec, info.params, info.inputs)
        if ctor is not None:
            cls, kwargs = ctor
            first = next(iter(info.outputs.values()))
            macs = module_macs(cls, kwargs, [t.shape for t in info.inputs if t.kind != MASK], first.shape)
        elif spec.macs is not None:  # module-less matrix products (MatMul)
            macs = spec.macs(info.params, info.inputs, info.outputs)
        act = sum(t.numel for t in info.outputs.values()) * 4
        out.append(NodeCost(nid, info.type, info.num_params, macs, act))
    return out


def total_macs(costs: list[NodeCost]) -> int:
    """Multiply-adds per sample of a whole graph."""
    return sum(c.macs for c in costs)


COST_MODES = ("params", "macs", "memory", "latency")  # what the canvas's cost overlay can show, in toolbar order


def _latency_record(latency: Any) -> dict:
    """``{"per_node", "spread", ...}`` from a :class:`~builder.graph.latency.Latency`, a run's ``latency.json``
    record or a plain ``{node: seconds}``."""
    if hasattr(latency, "to_dict"):
        return latency.to_dict()
    if isinstance(latency, dict) and isinstance(latency.get("per_node"), dict):
        return latency
    return {"per_node": latency if isinstance(latency, dict) else {}}


def _latency_s(latency: Any) -> dict[str, float]:
    """Seconds per node (the medians) from what :func:`_latency_record` reads."""
    out = {}
    for nid, s in _latency_record(latency)["per_node"].items():
        try:
            v = float(s)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v) and v >= 0:
            out[str(nid)] = v
    return out


def _latency_text(latency: Any) -> Callable[[str, float], str]:
    """Per node ``"1.2 ms (p10-p90 1.0-1.5)"``; a record without spreads (measured before they were kept) says so."""
    spread = _latency_record(latency).get("spread") or {}

    def text(nid: str, v: float) -> str:
        p = spread.get(nid)
        if isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(x, int | float) for x in p):
            return f"{v * 1e3:.3g} ms (p10-p90 {p[0] * 1e3:.3g}-{p[1] * 1e3:.3g})"
        return f"{v * 1e3:.3g} ms (no spread recorded)"
    return text


def latency_note(latency: Any) -> str | None:
    """The conditions a measured latency was taken under (threads, warm-up, load, repeats, batch), one line; None
    when ``latency`` records none.

    >>> latency_note({"per_node": {}, "threads": 1, "warmup": 2, "load": [0.5, 0.7], "repeats": 10, "batch_size": 32})
    'measured latency: median and p10-p90 of 10 passes at batch 32, 1 thread, 2 warm-up runs, load 0.50 -> 0.70'
    """
    r = _latency_record(latency)
    if not isinstance(r.get("threads"), int):
        return None
    load = r.get("load")
    load_text = (f", load {load[0]:.2f} -> {load[1]:.2f}" if isinstance(load, list) and len(load) == 2
                 and all(isinstance(x, int | float) for x in load) else "")
    return (f"measured latency: median and p10-p90 of {r.get('repeats')} passes at batch {r.get('batch_size')}, "
            f"{r['threads']} thread{'s' if r['threads'] != 1 else ''}, {r.get('warmup')} warm-up runs{load_text}")


def cost_overlay(costs: list[NodeCost], latency: Any = None) -> tuple[dict[str, dict], list[str]]:
    """Per node, per cost mode ``[text, share]`` (share of the graph's total, 0..1; a pair keeps the annotations of
    a big graph small), and the modes
    that have values: parameters, multiply-adds, activation memory per sample (float32 outputs) and, when
    ``latency`` is given (a :class:`~builder.graph.latency.Latency`, a run's ``latency.json`` record or
    ``{node: seconds}``), measured time with its p10-p90 spread.

    >>> per_node, modes = cost_overlay([NodeCost("a", "Linear", 30, 30, 40), NodeCost("b", "ReLU", 0, 0, 40)])
    >>> modes, per_node["a"]["params"], per_node["b"]["memory"][0]
    (['params', 'macs', 'memory'], ['30', 1.0], '40 B')
    """
    values: dict[str, dict[str, float]] = {
        "params": {c.node: c.params for c in costs},
        "macs": {c.node: c.macs for c in costs},
        "memory": {c.node: c.activation_bytes for c in costs},
        "latency": _latency_s(latency) if latency is not None else {},
    }
    lat_text = _latency_text(latency)
    text = {"params": lambda n, v: human_count(int(v)), "macs": lambda n, v: human_count(int(v)),
            "memory": lambda n, v: human_bytes(v), "latency": lat_text}
    per_node: dict[str, dict] = {}
    modes = []
    for mode in COST_MODES:
        vals = values[mode]
        if not vals or (mode == "latency" and not any(vals.values())):
            continue
        modes.append(mode)
        total = sum(vals.values())
        for nid, v in vals.items():
            per_node.setdefault(nid, {})[mode] = [text[mode](nid, v), round(v / total, 4) if total > 0 else 0.0]
    return per_node, modes


def canvas_annotations(graph: Any, report: ShapeReport, health: dict[str, dict] | None = None,
                       latency: Any = None, freeze: list[str] | tuple[str, ...] = ()) -> dict:
    """What the canvas shows for a graph and its analysis (one pass): per node its output shape, parameters,
    multiply-adds, errors, output kind and cost overlay values (:func:`cost_overlay`); per edge its shape; the
    totals, the cost modes available (``summary.cost_modes``) and every problem (the format of
    :func:`builder.canvas.graph_canvas`'s ``annotations``). ``health``: per node ``{"level": "ok" | "warn" | "bad",
    "message"}`` of a training run (:func:`builder.interpret.doctor.health_annotations`), shown as the node's tint
    and badge; nodes it does not name get none. ``latency``: measured time per node (a
    :class:`~builder.graph.latency.Latency` or ``{node: seconds}``), offered as the overlay's latency mode.
    ``freeze``: the nodes a run of this graph freezes; when anything does not train (a frozen node, a LoRA node's
    base), each node with parameters gets ``train`` (:func:`builder.graph.lora.node_training`: shown dimmed with a
    lock, or with its trainable count) and the summary ``trainable`` ``{"trainable", "frozen", "adapter"}``."""
    kinds = kinds_of(report)
    costs = node_costs(report)
    macs = {c.node: c.macs for c in costs}
    overlay, modes = cost_overlay(costs, latency)
    nodes = {}
    for nid, info in report.nodes.items():
        nodes[nid] = {"shape": info.shape_str if info.shape is not None else None, "params": info.num_params,
                      "macs": macs.get(nid), "errors": list(info.errors) if info.status != "upstream" else [],
                      "out_kind": kinds.get(nid, "tensor")}
        if nid in overlay:
            nodes[nid]["cost"] = overlay[nid]
        if health and isinstance(health.get(nid), dict):
            nodes[nid]["health"] = {"level": str(health[nid].get("level", "ok")),
                                    "message": str(health[nid].get("message", ""))}
    training = node_training(report, freeze)
    if any(t["state"] != "trainable" for t in training.values()):
        for nid, t in training.items():
            nodes[nid]["train"] = {k: t[k] for k in ("state", "trainable", "frozen")}
    edges = {}
    for e in graph.edges:
        t = report.edges.get(e.key)
        if t is not None:
            edges[e.key] = {"shape": str(t)}
    problems = [{"node": p.node, "edge": p.edge, "message": p.message} for p in report.problems]
    summary = {"total_params": report.total_params, "memory": human_bytes(training_memory(report, 64).peak),
               "macs": human_count(sum(m for m in macs.values() if m)), "problems": problems, "cost_modes": modes}
    if training and any("train" in nodes[nid] for nid in training):
        summary["trainable"] = {k: sum(t[k] for t in training.values()) for k in ("trainable", "frozen", "adapter")}
    if "latency" in modes and (note := latency_note(latency)):
        summary["latency"] = note
    return {"nodes": nodes, "edges": edges, "summary": summary}
