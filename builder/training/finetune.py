"""Fine-tuning modes, one setting of a run (``TrainConfig.finetune``): what trains when a run starts from a
pretrained model.

* ``full``: every layer trains (the default);
* ``linear_probe``: only the head trains: the layers with weights that no other layer with weights follows; the
  rest (the backbone) is frozen through the config's ``freeze`` list (:class:`builder.training.callbacks.Freeze`);
* ``lora``: the head and the LoRA adapters train; a graph without LoRA nodes gets them on every attention
  projection (:func:`builder.graph.lora.add_lora` with ``target="attention"``, rank 8, alpha 16); the LoRA
  nodes' base weights are frozen by the layer itself.

>>> from builder.graph.project import as_graph
>>> g = as_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
...                         {"id": "body", "type": "Linear", "params": {"out_features": 4}},
...                         {"id": "act", "type": "ReLU"},
...                         {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
...               "edges": [{"source": "x", "target": "body"}, {"source": "body", "target": "act"},
...                         {"source": "act", "target": "head"}]})
>>> head_nodes(g), finetune_freeze(g, "linear_probe")
(['head'], ['body'])
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from builder.errors import LayerLabError, Problem, TrainingError
from builder.graph.lora import ATTENTION_PROJECTIONS, LORA_DEFAULTS, add_lora, trainable_params
from builder.graph.project import Graph, as_graph
from builder.graph.shapes import infer_shapes

MODES = ("full", "linear_probe", "lora")


def _weighted(graph: Graph, report: Any = None) -> list[str]:

    report = report if report is not None else infer_shapes(graph)
    return [nid for nid, info in report.nodes.items() if (info.num_params or 0) > 0]


def head_nodes(graph, *, report: Any = None) -> list[str]:
    """The layers with weights that no other layer with weights follows (a classifier's last Linear); ``report``:
    the graph's ShapeReport when the caller has it."""
    graph = as_graph(graph)
    weighted = _weighted(graph, report)
    g = nx.DiGraph([(e.source, e.target) for e in graph.edges])
    g.add_nodes_from(n.id for n in graph.nodes)
    keep = set(weighted)
    return [n for n in weighted if not (nx.descendants(g, n) & keep)]


def finetune_freeze(graph, mode: str, *, report: Any = None) -> list[str]:
    """The node ids a mode freezes (sorted): none for ``full``; every layer with weights but the head (and, for
    ``lora``, but the LoRA nodes) otherwise. ``report``: the graph's ShapeReport when the caller has it (the
    canvas's pass), so the graph is not analysed again.

    Raises:
        TrainingError: an unknown mode.
    """
    if mode not in MODES:
        raise TrainingError(f"the fine-tuning mode is one of {', '.join(MODES)}; received: {str(mode)[:40]!r}. "
                            "Fix: pick one of them")
    if mode == "full":
        return []
    graph = as_graph(graph)
    types = {n.id: n.type for n in graph.nodes}
    head = set(head_nodes(graph, report=report))
    return sorted(n for n in _weighted(graph, report) if n not in head and not (mode == "lora" and types[n] == "LoRA"))


def lora_added(graph) -> int:
    """The adapter parameters a ``lora`` run adds to ``graph`` (:func:`apply_finetune`): none where the canvas has
    LoRA nodes already, or no attention projection to adapt. The Build page counts them before it trains.

    >>> from builder.graph.templates import load_template
    >>> g = as_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [16]}},
    ...                         {"id": "att.query", "type": "Linear", "params": {"out_features": 16}},
    ...                         {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
    ...               "edges": [{"source": "x", "target": "att.query"}, {"source": "att.query", "target": "head"}]})
    >>> lora_added(g), lora_added(load_template("cnn").graph)  # rank 8: 8 x 16 + 16 x 8; a CNN has no projection
    (256, 0)
    """
    graph = as_graph(graph)
    if any(n.type == "LoRA" for n in graph.nodes):
        return 0
    try:
        return trainable_params(add_lora(graph, "attention", **LORA_DEFAULTS))["adapter"]
    except LayerLabError:  # nothing to adapt: the Train page says so when it starts
        return 0


def apply_finetune(graph, cfg: Any) -> tuple[Graph, Any]:
    """The graph and config a run trains with under ``cfg.finetune``: LoRA added where the mode needs it, the
    mode's frozen nodes added to ``cfg.freeze``."""

    graph = as_graph(graph)
    mode = getattr(cfg, "finetune", "full")
    if mode == "lora" and not any(n.type == "LoRA" for n in graph.nodes):
        graph = add_lora(graph, "attention", **LORA_DEFAULTS)
    frozen = finetune_freeze(graph, mode)
    if frozen:
        cfg = cfg.model_copy(update={"freeze": sorted(set(cfg.freeze) | set(frozen))})
    return graph, cfg


def settings_problems(graph, cfg: Any, *, report: Any = None) -> list[Problem]:
    """Every way a run's settings that name or need layers do not fit ``graph``: ``freeze`` or ``init_nodes`` naming
    a node that is not a layer with weights (the run was recorded and failed: "cannot freeze 'x': no such node",
    "no weights of run R fit this graph"; or trained with the name ignored),
    ``finetune`` ``lora`` on a graph with no LoRA node and no attention projection to add one to, and settings
    that freeze every layer with weights (nothing would train). ``layerlab validate`` reports them and a run is
    refused with them before it is recorded (:func:`builder.runs.pipeline.prepare`).

    >>> g = as_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
    ...                         {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
    ...               "edges": [{"source": "x", "target": "head"}]})
    >>> [p.node for p in settings_problems(g, {"freeze": ["x", "nope"]})]
    ['x', None]
    """
    graph = as_graph(graph)
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    report = report if report is not None else infer_shapes(graph)
    weighted = _weighted(graph, report)
    ids = {n.id for n in graph.nodes}
    some = ", ".join(weighted[:8]) + (", ..." if len(weighted) > 8 else "")
    problems = []
    freeze = [str(n) for n in get("freeze") or []]
    for key, named in (("freeze", freeze), ("init_nodes", [str(n) for n in get("init_nodes") or []])):
        for nid in named:
            if nid not in weighted:
                what = "a node without weights" if nid in ids else "no node of this graph"
                problems.append(Problem("training", f"training.{key} must name layers with weights; received: "
                                        f"{nid[:60]!r}, {what}. Fix: remove it"
                                        + (f" (layers with weights: {some})" if weighted else ""),
                                        node=nid if nid in ids else None))
    mode = get("finetune", "full") or "full"
    if mode == "lora" and not any(n.type == "LoRA" for n in graph.nodes):
        try:
            graph = add_lora(graph, "attention", **LORA_DEFAULTS)
        except LayerLabError:
            linear = [n.id for n in graph.nodes if n.type == "Linear"][:8]
            problems.append(Problem("training", "finetune 'lora' adds LoRA adapters to the attention projections "
                                    f"(Linear nodes whose ids end in {', '.join(ATTENTION_PROJECTIONS)}); received: "
                                    f"a graph with none (Linear nodes: {', '.join(linear) or 'none'}). Fix: use "
                                    "finetune 'full' or 'linear_probe', or put LoRA nodes on the canvas"))
            return problems
        report = None
    if problems or not weighted or mode not in MODES:
        return problems  # a graph without weights is the trainer's own message (and an unknown mode the config's)
    frozen = set(freeze) | set(finetune_freeze(graph, mode, report=report))
    trained = [n for n in _weighted(graph, report) if n not in frozen]
    if not trained:
        problems.append(Problem("training", f"a run needs a layer that trains; received: freeze {sorted(frozen)[:8]} "
                                f"with finetune {mode!r}, which freeze every layer with weights. Fix: unfreeze at "
                                "least one (the head, for a pretrained backbone)"))
    return problems


__all__ = ["MODES", "head_nodes", "finetune_freeze", "apply_finetune", "lora_added", "settings_problems"]
