"""Measured latency per node: the compiled model run on a device, each node's module timed by hooks.

:mod:`builder.graph.cost` counts what a node must compute; this module measures what it takes on the device a
run will use. Each node that builds a module is timed from its forward pre-hook to its forward hook (on CUDA
with a synchronisation on both sides, so the time is the kernels' and not the launch's), over ``repeats``
forward passes after ``warmup`` ones; the median per node is reported with the whole forward pass's median.
Nodes whose module is not called (merges such as Add or Concat, reshapes written inline, a position table that
is only read) have no time of their own: their work is in the whole pass.

Example::

    >>> from builder.graph.templates import load_template
    >>> t = node_latency(load_template("mlp").graph, batch_size=8, repeats=3, warmup=1)
    >>> sorted(t.per_node) == ["act1", "act2", "fc1", "fc2", "head"] and t.total_s > 0
    True
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from builder.errors import LayerLabError
from builder.graph.compile import compile_graph, example_inputs, module_names

__all__ = ["Latency", "node_latency", "module_latency"]


@dataclass
class Latency:
    """Median seconds per forward pass, per node with a module and in total, at ``batch_size`` on ``device``."""

    device: str
    batch_size: int
    repeats: int
    per_node: dict[str, float] = field(default_factory=dict)
    total_s: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One row per timed node, slowest first, with its share of the whole pass."""
        return [{"node": n, "ms": s * 1e3, "share": s / self.total_s if self.total_s else 0.0}
                for n, s in sorted(self.per_node.items(), key=lambda kv: -kv[1])]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def node_latency(graph: Any, *, batch_size: int = 32, device: str = "cpu", repeats: int = 20,
                 warmup: int = 3) -> Latency:
    """Time every node of ``graph`` (compiled here, random weights, eval mode, no gradients) on ``device``.

    Raises:
        GraphError: the graph has problems (as :func:`~builder.graph.compile.compile_graph`).
        LayerLabError: counts below their minimum.
    """
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise LayerLabError("repeats and batch_size must be at least 1 and warmup at least 0; received: "
                            f"repeats={repeats}, warmup={warmup}, batch_size={batch_size}. Fix: use positive counts")
    dev = torch.device(device)
    model = compile_graph(graph).eval().to(dev)
    xs = [x.to(dev) for x in example_inputs(model, batch_size=batch_size)]
    return module_latency(model, xs, module_names(graph), repeats=repeats, warmup=warmup)


def module_latency(model: torch.nn.Module, inputs: list[torch.Tensor], names: dict[str, str], *,
                   repeats: int = 20, warmup: int = 3) -> Latency:
    """Time the children of a compiled ``model`` named by ``names`` (node id -> attribute) over forward passes
    on ``inputs`` (already on the model's device; eval mode and no gradients while timing, the mode restored)."""
    dev = inputs[0].device if inputs else torch.device("cpu")
    batch_size = int(inputs[0].shape[0]) if inputs and inputs[0].dim() else 1
    by_attr = {attr: nid for nid, attr in names.items()}
    samples: dict[str, list[float]] = {}
    started: dict[str, float] = {}

    def before(name: str):
        def hook(_module, _args):
            _sync(dev)
            started[name] = time.perf_counter()
        return hook

    def after(name: str):
        def hook(_module, _args, _out):
            _sync(dev)
            samples.setdefault(name, []).append(time.perf_counter() - started.pop(name))
        return hook

    handles = []
    for attr, module in model.named_children():
        nid = by_attr.get(attr)
        if nid is not None:
            handles += [module.register_forward_pre_hook(before(nid)), module.register_forward_hook(after(nid))]
    totals: list[float] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                if i == warmup:
                    samples.clear()
                _sync(dev)
                t0 = time.perf_counter()
                model(*inputs)
                _sync(dev)
                if i >= warmup:
                    totals.append(time.perf_counter() - t0)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    per_node = {nid: statistics.median(v) for nid, v in samples.items()}
    return Latency(str(dev), batch_size, repeats, per_node, statistics.median(totals))
