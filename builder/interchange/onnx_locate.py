"""Which node an ONNX export fails on, and why, in LayerLab's words.

A graph validation accepts can still fail to export: torch's exporter has no ONNX form for some operator calls
(an ``Op`` node's ``adaptive_max_pool1d`` to 3 from 5), or onnxruntime computes something else. Such a failure
named neither the node nor the reason ("torch.onnx.export failed; received: ConversionError: Failed to convert the
exported program to an ONNX model. This is step 3/3 ..."; graph fuzzer, ``make fuzz``). Here:

* :func:`no_onnx_nodes`: the nodes validation warns have no ONNX form (an Op node's call,
  :func:`builder.graph.layers.op_onnx.no_onnx_form`; an Upsample's scale_factor), refused by name before anything
  is exported;
* :func:`locate_failure`: for any other failure, the first node, in topological order, at which the graph cut
  there fails the same check (a bisection over the order: a few exports of parts of the graph, on failure only);
* :func:`exporter_reason`: the innermost cause of torch's exception on one line (what has no ONNX function).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from builder.errors import LayerLabError
from builder.graph.compile import compile_graph
from builder.graph.shapes import infer_shapes

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def node_name(graph, nid: str) -> str:
    """``node <id>`` with its label where it has one (a label is what the canvas shows)."""
    label = next((n.label for n in graph.nodes if n.id == nid and n.label), None)
    return f"node {nid}" + (f" ({label[:60]!r})" if label and label != nid else "")


#: what the validation warning of a node that cannot be exported says (an Op node's call, an Upsample's scale_factor)
NO_ONNX = "has no ONNX form"


def no_onnx_nodes(graph) -> list[str]:
    """``node <id>: <why>`` for every node validation warns has no ONNX form (:data:`NO_ONNX`: an Op node's call,
    :func:`builder.graph.layers.op_onnx.no_onnx_form`; an Upsample's scale_factor), in topological order."""
    report = infer_shapes(graph)
    return [f"{node_name(graph, nid)}: {w}" for nid in report.order for w in report.nodes[nid].warnings if NO_ONNX in w]


def exporter_reason(e: BaseException) -> str:
    """The innermost cause of an exporter's exception, one line without terminal colours (at most 300 chars)."""
    while e.__cause__ is not None and e.__cause__ is not e:
        e = e.__cause__
    text = _ANSI.sub("", str(e)).strip()
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return f"{type(e).__name__}: {line}"[:300]


def _part(graph, keep: set[str]):
    """The graph cut to ``keep`` and the Input nodes they read (edges between them only)."""
    preds: dict[str, set[str]] = {}
    for e in graph.edges:
        preds.setdefault(e.target, set()).add(e.source)
    stack, seen = list(keep), set(keep)
    while stack:
        for p in preds.get(stack.pop(), ()):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    nodes = [n for n in graph.nodes if n.id in seen]
    edges = [e for e in graph.edges if e.source in seen and e.target in seen]
    return graph.model_copy(update={"nodes": nodes, "edges": edges})


def locate_failure(graph, state: dict, check: Callable) -> str | None:
    """The node the export fails at: the first of the topological order whose part of the graph (itself and the
    nodes before it in that order) fails ``check(model)`` (which raises :class:`LayerLabError` as the whole
    graph's export did), with the weights of ``state`` where they fit. None when a part cannot be built or no
    part fails (a failure of the whole alone)."""
    report = infer_shapes(graph)
    order = [n for n in report.order if report.nodes[n].type not in ("Input", "Output")]

    def fails(k: int) -> bool | None:
        try:
            torch.manual_seed(0)
            model = compile_graph(_part(graph, set(order[:k])))
        except LayerLabError:
            return None
        own = model.state_dict()
        model.load_state_dict({k_: v for k_, v in state.items() if k_ in own and own[k_].shape == v.shape},
                              strict=False)
        try:
            check(model.eval())
        except LayerLabError:
            return True
        return False

    lo, hi = 1, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        got = fails(mid)
        if got is None:
            return None
        lo, hi = (lo, mid) if got else (mid + 1, hi)
    if not order or (lo == len(order) and not fails(lo)):  # a part failing was never seen: check the whole
        return None
    return order[lo - 1]


__all__ = ["NO_ONNX", "node_name", "no_onnx_nodes", "exporter_reason", "locate_failure"]
