"""Graph versus dataset: does a graph's Input and output fit a dataset, and the one-click fix.

``check_compat`` lists every mismatch (Input shape, modality, vocabulary size, output width) on the node to
change; ``adapt_graph`` returns a copy with those set for the dataset.
"""

from __future__ import annotations

import numpy as np

from builder.data.splits import DatasetInfo
from builder.errors import Problem
from builder.graph.project import Graph, as_graph
from builder.graph.shapes import ShapeReport, infer_shapes


def _last_linear(graph, report: ShapeReport, out_id: str) -> str | None:
    """Walk back from an output node through single-input nodes to the nearest Linear (edges from the report)."""
    seen, cur = set(), out_id
    while cur is not None and cur not in seen:
        seen.add(cur)
        if graph.node(cur).type == "Linear":
            return cur
        ps = report.in_edges.get(cur, [])
        cur = ps[0][0].source if len(ps) == 1 else None
    return None


def _output_width(graph, report: ShapeReport, out_id: str) -> int | None:
    info = report.nodes.get(out_id)
    shp = info.shape if info is not None else None
    if shp:
        return int(np.prod(shp)) if len(shp) > 1 else int(shp[-1])
    lin = _last_linear(graph, report, out_id)  # shapes unknown upstream of a problem: read the last Linear
    if lin is not None and "out_features" in graph.node(lin).params:
        return int(graph.node(lin).params["out_features"])
    return None


def check_compat(graph, info: DatasetInfo, report: ShapeReport | None = None) -> list[Problem]:
    """Every mismatch between a graph and a dataset, each on the node to change with the fix.

    Checks the Input node's shape, modality and vocabulary size, and the output width against the number
    of classes (or targets). ``report`` is the graph's analysis when the caller has it (else it is computed
    once). Returns an empty list when they fit.
    """
    graph = as_graph(graph)
    report = report if report is not None else infer_shapes(graph)
    problems: list[Problem] = []
    inputs = [n for n in graph.nodes if n.type == "Input"]
    want = list(info.input_shape)
    if len(inputs) != 1:
        problems.append(Problem("dataset_inputs", f"dataset {info.name!r} feeds exactly one Input node; the "
                                f"graph has {len(inputs)}: keep one Input with shape {want}"))
    for n in inputs[:1]:
        shape = n.params.get("shape")
        if shape is None or list(shape) != want:
            problems.append(Problem("input_shape_mismatch", f"Input shape {shape} does not match dataset "
                                    f"{info.name!r}, which gives samples of shape {want}; set shape to {want}",
                                    node=n.id))
        modality = n.params.get("modality", "vector")
        if info.modality == "tokens":
            if modality != "tokens":
                problems.append(Problem("input_modality_mismatch", f"dataset {info.name!r} gives token ids; "
                                        f"Input modality is {modality!r}: set modality to 'tokens' and "
                                        f"vocab_size to {info.vocab_size}", node=n.id))
            elif int(n.params.get("vocab_size") or 0) < (info.vocab_size or 0):
                problems.append(Problem("vocab_size_mismatch", f"Input vocab_size "
                                        f"{n.params.get('vocab_size')} is smaller than dataset "
                                        f"{info.name!r}'s vocabulary of {info.vocab_size} tokens; set "
                                        f"vocab_size to {info.vocab_size}", node=n.id))
        elif modality == "tokens":
            problems.append(Problem("input_modality_mismatch", f"Input modality is 'tokens' but dataset "
                                    f"{info.name!r} gives float {info.input_modality}s; set modality to "
                                    f"{info.input_modality!r}", node=n.id))
    outs = list(report.output_nodes)
    if len(outs) != 1:
        problems.append(Problem("dataset_outputs", f"training needs exactly one output; the graph has "
                                f"{len(outs)} ({', '.join(outs)}): remove the extra ends"))
        return problems
    width = _output_width(graph, report, outs[0])
    accepted = {info.out_size} | ({1, 2} if info.task == "binary" else set())
    if width is not None and width not in accepted:
        lin = _last_linear(graph, report, outs[0]) or outs[0]
        what = {"multiclass": f"{info.num_classes} classes", "binary": "2 classes (1 logit or 2)",
                "regression": f"{info.out_size} target(s)",
                "reconstruction": f"{info.out_size} values (the flattened input)"}[info.task]
        problems.append(Problem("output_size_mismatch", f"the model outputs {width} values per sample but "
                                f"dataset {info.name!r} has {what}; set out_features of {lin!r} to "
                                f"{info.out_size}", node=lin))
    return problems


def adapt_graph(graph, info: DatasetInfo, report: ShapeReport | None = None) -> Graph:
    """A copy of ``graph`` with the Input shape/modality/vocab_size and the last Linear's width set for ``info``.

    Only the graph's structure is read from ``report`` (outputs, edges), so the report of the graph before
    adapting serves.
    """
    g = as_graph(graph).model_copy(deep=True)
    report = report if report is not None else infer_shapes(g)
    inputs = [n for n in g.nodes if n.type == "Input"]
    if inputs:
        n = inputs[0]
        n.params["shape"] = list(info.input_shape)
        n.params["modality"] = info.input_modality
        if info.modality == "tokens":
            n.params["vocab_size"] = info.vocab_size
        else:
            n.params.pop("vocab_size", None)
    outs = list(report.output_nodes)
    if len(outs) == 1:
        lin = _last_linear(g, report, outs[0])
        if lin is not None:
            params = g.node(lin).params
            cur = params.get("out_features")
            if not (info.task == "binary" and cur in (1, 2)):
                params["out_features"] = info.out_size
    return g


__all__ = ["check_compat", "adapt_graph"]
