"""Graph versus dataset: does a graph's Input and output fit a dataset, and the one-click fix.

``check_compat`` lists every mismatch (Input shape, modality, vocabulary size, output width) on the node to
change; ``adapt_graph`` returns a copy with those set for the dataset.
"""

from __future__ import annotations

import numpy as np

from .data import DatasetInfo
from .errors import Problem
from .project import Graph


def _successors(graph) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        succ.setdefault(e.source, []).append(e.target)
    return succ


def _predecessors(graph) -> dict[str, list[str]]:
    pred: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        pred.setdefault(e.target, []).append(e.source)
    return pred


def _output_nodes(graph) -> list[str]:
    succ = _successors(graph)
    return [n.id for n in graph.nodes if not succ.get(n.id) and n.type != "Input"]


def _last_linear(graph, out_id: str) -> str | None:
    """Walk back from an output node through single-input nodes to the nearest Linear."""
    pred = _predecessors(graph)
    seen, cur = set(), out_id
    while cur is not None and cur not in seen:
        seen.add(cur)
        if graph.node(cur).type == "Linear":
            return cur
        ps = pred.get(cur, [])
        cur = ps[0] if len(ps) == 1 else None
    return None


def _output_width(graph, out_id: str) -> int | None:
    try:
        from .shapes import infer_shapes
        rep = infer_shapes(graph)
        shp = rep.nodes[out_id].shape
        if shp:
            return int(np.prod(shp)) if len(shp) > 1 else int(shp[-1])
    except Exception:  # shape inference not available or failing: fall back to the last Linear
        pass
    lin = _last_linear(graph, out_id)
    if lin is not None and "out_features" in graph.node(lin).params:
        return int(graph.node(lin).params["out_features"])
    return None


def check_compat(graph, info: DatasetInfo) -> list[Problem]:
    """Every mismatch between a graph and a dataset, each on the node to change with the fix.

    Checks the Input node's shape, modality and vocabulary size, and the output width against the number
    of classes (or targets). Returns an empty list when they fit.
    """
    from .project import as_graph

    graph = as_graph(graph)
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
    outs = _output_nodes(graph)
    if len(outs) != 1:
        problems.append(Problem("dataset_outputs", f"training needs exactly one output; the graph has "
                                f"{len(outs)} ({', '.join(outs)}): remove the extra ends"))
        return problems
    width = _output_width(graph, outs[0])
    accepted = {info.out_size} | ({1, 2} if info.task == "binary" else set())
    if width is not None and width not in accepted:
        lin = _last_linear(graph, outs[0]) or outs[0]
        what = {"multiclass": f"{info.num_classes} classes", "binary": "2 classes (1 logit or 2)",
                "regression": f"{info.out_size} target(s)",
                "reconstruction": f"{info.out_size} values (the flattened input)"}[info.task]
        problems.append(Problem("output_size_mismatch", f"the model outputs {width} values per sample but "
                                f"dataset {info.name!r} has {what}; set out_features of {lin!r} to "
                                f"{info.out_size}", node=lin))
    return problems


def adapt_graph(graph, info: DatasetInfo) -> Graph:
    """A copy of ``graph`` with the Input shape/modality/vocab_size and the last Linear's width set for ``info``."""
    from .project import as_graph

    g = as_graph(graph).model_copy(deep=True)
    inputs = [n for n in g.nodes if n.type == "Input"]
    if inputs:
        n = inputs[0]
        n.params["shape"] = list(info.input_shape)
        n.params["modality"] = info.input_modality
        if info.modality == "tokens":
            n.params["vocab_size"] = info.vocab_size
        else:
            n.params.pop("vocab_size", None)
    outs = _output_nodes(g)
    if len(outs) == 1:
        lin = _last_linear(g, outs[0])
        if lin is not None:
            params = g.node(lin).params
            cur = params.get("out_features")
            if not (info.task == "binary" and cur in (1, 2)):
                params["out_features"] = info.out_size
    return g


__all__ = ["check_compat", "adapt_graph"]
