"""Activations of any node for chosen samples, and weight histograms per layer.

Example::

    >>> import builder, torch
    >>> model = builder.compile_graph(builder.load_template("cnn").graph)
    >>> acts = capture_activations(model, torch.rand(1, 1, 8, 8), ["conv1", "head"])
    >>> {name: tuple(a.shape) for name, a in acts.items()}
    {'conv1': (1, 16, 8, 8), 'head': (1, 10)}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, fx, nn

from builder.errors import ExplainError
from builder.graph.compile import module_names
from builder.interpret.model import eval_mode, layer_nodes, resolve_layer


@dataclass(frozen=True)
class WeightHistogram:
    """Histogram of one parameter tensor of one node."""

    node: str
    param: str
    layer_type: str
    counts: np.ndarray  # (bins,)
    edges: np.ndarray  # (bins + 1,)
    mean: float
    std: float
    numel: int


def _first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for o in output:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def _fx_names(model: nn.Module, graph: Any = None) -> dict[str, str]:
    """node id -> fx node name for every node of a compiled graph (modules and functions alike)."""
    types = getattr(model, "layerlab_types", None)
    if types is None or not isinstance(model, fx.GraphModule):
        return {}
    if graph is not None:
        names = module_names(graph)
    else:  # same identifiers as builder.graph.compile.module_names for ids that do not clash
        names = {nid: _identifier(nid) for nid in types}
    present = {n.name for n in model.graph.nodes}
    return {nid: name for nid, name in names.items() if name in present}


def _identifier(nid: str) -> str:
    base = re.sub(r"\W", "_", nid.strip(), flags=re.ASCII) or "node"
    return "n_" + base if base[0].isdigit() else base


def activation_nodes(model: nn.Module, graph: Any = None) -> dict[str, str]:
    """Node id -> type of every node whose output :func:`capture_activations` can return."""
    out = dict(layer_nodes(model))
    types = getattr(model, "layerlab_types", None) or {}
    for nid in _fx_names(model, graph):
        out.setdefault(nid, types.get(nid, "?"))
    order = list(types) or list(out)
    return {n: out[n] for n in sorted(out, key=lambda n: order.index(n) if n in order else len(order))}


def capture_activations(model: nn.Module, inputs: Tensor, nodes: Sequence[str] | None = None, *,
                        graph: Any = None) -> dict[str, Tensor]:
    """Run the model once (eval mode, no grad) and return each node's output, detached on CPU.

    Nodes whose module returns a tuple (LSTM, MultiheadAttention) give their first tensor. For a
    compiled graph, nodes without a module (Add, Mean, Input ...) are read from the fx graph; pass the
    project's ``graph`` when node ids could clash once made identifiers.

    Args:
        nodes: node ids (default: every node that owns a module).
    Raises:
        ExplainError: unknown node id.
    """
    nodes = list(layer_nodes(model)) if nodes is None else list(nodes)
    modules = layer_nodes(model)
    fx_names = _fx_names(model, graph)
    by_fx = {fx_names[n]: n for n in nodes if n not in modules and n in fx_names}
    acts: dict[str, Tensor] = {}
    handles = []

    def hook_for(node: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            t = _first_tensor(output)
            if t is not None:
                acts[node] = t.detach().cpu()
        return hook

    try:
        for node in nodes:
            if node not in by_fx.values():
                handles.append(resolve_layer(model, node)[1].register_forward_hook(hook_for(node)))
        with torch.no_grad(), eval_mode(model):
            if by_fx:
                _Recorder(model, by_fx, acts).run(inputs)
            else:
                model(inputs)
    finally:
        for h in handles:
            h.remove()
    return {n: acts[n] for n in nodes if n in acts}


class _Recorder(fx.Interpreter):
    """Runs a GraphModule node by node and keeps the outputs of the fx nodes asked for."""

    def __init__(self, gm: fx.GraphModule, wanted: dict[str, str], acts: dict[str, Tensor]):
        super().__init__(gm)
        self.wanted, self.acts = wanted, acts

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if n.name in self.wanted:
            t = _first_tensor(out)
            if t is not None:
                self.acts[self.wanted[n.name]] = t.detach().cpu()
        return out


def activation_kind(activation: Tensor) -> str:
    """How to show one sample's activation: ``grid`` (C, H, W), ``sequence`` (T, D) or ``strip`` (F,)."""
    return {3: "grid", 2: "sequence"}.get(activation.dim(), "strip")


def weight_histograms(model: nn.Module, bins: int = 40, nodes: Sequence[str] | None = None,
                      ) -> list[WeightHistogram]:
    """One histogram per parameter tensor of each node with weights, in node order.

    Raises:
        ExplainError: ``bins`` below 1 or an unknown node id.
    """
    if not isinstance(bins, int) or bins < 1:
        raise ExplainError(f"bins must be a positive integer; received {bins!r}")
    types = layer_nodes(model)
    nodes = list(types) if nodes is None else list(nodes)
    out: list[WeightHistogram] = []
    seen: set[int] = set()
    for node in nodes:
        module = resolve_layer(model, node)[1]
        for pname, p in module.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            v = p.detach().float().cpu().flatten().numpy()
            if v.size == 0:
                continue
            counts, edges = np.histogram(v, bins=bins)
            out.append(WeightHistogram(node, pname, types.get(node, type(module).__name__), counts, edges,
                                       float(v.mean()), float(v.std()), int(v.size)))
    return out


__all__ = ["WeightHistogram", "activation_nodes", "capture_activations", "activation_kind", "weight_histograms"]
