"""LoRA on a graph: wrap Linear nodes in LoRA nodes, count what trains, merge adapters back, and write adapters as
PEFT reads them.

* :func:`add_lora` turns a Linear node (or every Linear of a block: node ids under a prefix, or the attention
  projections of a block) into a ``LoRA`` node with the same id, so its base weights keep their node;
  :func:`lora_state` moves a Linear's weights under the LoRA node's ``base_layer``.
* :func:`trainable_params` splits a graph's parameters into trainable and frozen, :func:`node_training` per node
  (what the canvas and summaries show).
* :func:`merge_lora` folds each adapter into its base (W + alpha/rank · B A) and gives back plain Linear nodes: the
  merged model exports as plain ``.py`` and ONNX.
* :func:`peft_adapter` writes ``adapter_config.json`` and ``adapter_model.safetensors`` as PEFT saves them, keyed by
  the node labels (the module paths an import from a Hugging Face folder records).

>>> from builder.graph.project import as_graph
>>> g = as_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
...                         {"id": "enc_q", "type": "Linear", "params": {"out_features": 4}},
...                         {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
...               "edges": [{"source": "x", "target": "enc_q"}, {"source": "enc_q", "target": "head"}]})
>>> g2 = add_lora(g, "enc", rank=2)
>>> [n.type for n in g2.nodes], trainable_params(g2)
(['Input', 'LoRA', 'Linear'], {'trainable': 26, 'frozen': 20, 'adapter': 16})
"""

from __future__ import annotations

import json
import re
from typing import Any

from builder.errors import LayerLabError
from builder.graph.layers.lora import PARTS, adapter_params, scaling
from builder.graph.project import Graph, as_graph
from builder.graph.shapes import infer_shapes

#: Node-id endings of attention projections in imported models (BERT, DistilBERT, GPT-2, ViT, nn.MultiheadAttention)
ATTENTION_PROJECTIONS = ("query", "key", "value", "q_lin", "k_lin", "v_lin", "q_proj", "k_proj", "v_proj", "c_attn")
LORA_DEFAULTS = {"rank": 8, "alpha": 16.0, "dropout": 0.0}


def lora_targets(graph, target: str) -> list[str]:
    """The Linear nodes ``target`` names: a Linear node's id; ``attention`` (every attention projection) or
    ``BLOCK:attention`` (those of a block); or a block (every Linear whose id starts with ``BLOCK_`` or
    ``BLOCK.``).

    Raises:
        LayerLabError: nothing matches (the message lists a few Linear nodes).
    """
    graph = as_graph(graph)
    linear = [n for n in graph.nodes if n.type in ("Linear", "LoRA")]
    t = str(target)
    block, attention = ("", True) if t == "attention" else (t[: -len(":attention")], True) \
        if t.endswith(":attention") else (t, False)

    def inside(nid: str) -> bool:
        return not block or nid == block or nid.startswith((block + "_", block + "."))

    if attention:
        out = [n.id for n in linear if inside(n.id) and n.id.endswith(ATTENTION_PROJECTIONS)]
    else:
        out = [n.id for n in linear if n.id == block] or [n.id for n in linear if inside(n.id)]
    if not out:
        shown = ", ".join(n.id for n in linear[:6]) or "none"
        raise LayerLabError(f"LoRA wraps Linear layers; received: target={str(target)[:80]!r}, which names no Linear "
                            f"node. Fix: name a Linear node, a block prefix or 'attention' (Linear nodes: {shown})")
    return out


def add_lora(graph, target: str, *, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> Graph:
    """A copy of the graph whose target Linear nodes (:func:`lora_targets`) are LoRA nodes with these settings
    (nodes already LoRA get the new settings)."""
    graph = as_graph(graph)
    ids = set(lora_targets(graph, target))
    nodes = []
    for n in graph.nodes:
        if n.id in ids:
            params = {"out_features": n.params.get("out_features", 10), "bias": n.params.get("bias", True),
                      "rank": int(rank), "alpha": float(alpha), "dropout": float(dropout),
                      "train_base": bool(n.params.get("train_base", False))}
            n = n.model_copy(update={"type": "LoRA", "params": params})
        nodes.append(n)
    return graph.model_copy(update={"nodes": nodes})


def lora_state(graph, weights: dict[str, Any], module_names: dict[str, str]) -> dict[str, Any]:
    """Weights of the graph before :func:`add_lora` renamed for the LoRA graph: a wrapped Linear's ``weight``/``bias``
    become ``<name>.base_layer.weight``/``.bias`` (the adapter keeps its fresh initialisation)."""
    lora = {module_names[n.id] for n in as_graph(graph).nodes if n.type == "LoRA" and n.id in module_names}
    out = {}
    for k, v in weights.items():
        head, _, leaf = k.rpartition(".")
        out[f"{head}.base_layer.{leaf}" if head in lora and leaf in ("weight", "bias") else k] = v
    return out


def node_training(report: Any, freeze: list[str] | tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Per node with parameters, what trains when the nodes in ``freeze`` are frozen: ``{"state": "trainable" |
    "frozen" | "adapter", "trainable", "frozen", "adapter"}`` (values); ``adapter``: a LoRA node training its
    adapter while its base stays fixed. Read off an analysed graph's ShapeReport (what the canvas badges show).

    >>> from builder.graph.project import as_graph
    >>> g = as_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
    ...                         {"id": "q", "type": "LoRA", "params": {"out_features": 4, "rank": 2}},
    ...                         {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
    ...               "edges": [{"source": "x", "target": "q"}, {"source": "q", "target": "head"}]})
    >>> t = node_training(infer_shapes(g), ["x"])
    >>> t["q"]["state"], t["q"]["trainable"], t["q"]["frozen"], t["head"]["state"]
    ('adapter', 16, 20, 'trainable')
    """
    frozen_ids = set(freeze)
    out: dict[str, dict[str, Any]] = {}
    for nid, info in report.nodes.items():
        n = int(info.num_params or 0)
        if n <= 0:
            continue
        a = adapter_params(info.params, info.inputs[0].shape[-1]) if info.type == "LoRA" and info.inputs else 0
        if nid in frozen_ids:
            trains = 0
        elif a and not info.params.get("train_base"):
            trains = a
        else:
            trains = n
        state = "frozen" if trains == 0 else "trainable" if trains == n else "adapter"
        out[nid] = {"state": state, "trainable": trains, "frozen": n - trains, "adapter": a}
    return out


def trainable_params(graph, freeze: list[str] | tuple[str, ...] = (), *, report: Any = None) -> dict[str, int]:
    """``{"trainable", "frozen", "adapter"}`` parameter values of a graph when the nodes in ``freeze`` are frozen:
    a LoRA node trains its adapter (and its base only with ``train_base``); the sums of :func:`node_training`.
    ``report``: the graph's ShapeReport when the caller has it (the graph is then not analysed again)."""
    if report is None:
        report = infer_shapes(as_graph(graph))
    per_node = node_training(report, freeze).values()
    return {k: sum(v[k] for v in per_node) for k in ("trainable", "frozen", "adapter")}


def merge_lora(graph, weights: dict[str, Any], module_names: dict[str, str]) -> tuple[Graph, dict[str, Any]]:
    """Fold every LoRA node into a plain Linear: W + (alpha / rank) · B A, bias unchanged. Returns the graph with
    Linear nodes and its weights (keys of the merged graph's compiled module)."""
    import torch  # lazy: heavy (torch)

    graph = as_graph(graph)
    out = dict(weights)
    nodes = []
    for n in graph.nodes:
        if n.type == "LoRA":
            m = module_names[n.id]
            a, b = weights[f"{m}.lora_A.weight"], weights[f"{m}.lora_B.weight"]
            with torch.no_grad():
                out[f"{m}.weight"] = weights[f"{m}.base_layer.weight"] + scaling(n.params) * (b.float() @ a.float())
            if f"{m}.base_layer.bias" in weights:
                out[f"{m}.bias"] = weights[f"{m}.base_layer.bias"]
            for part in PARTS:
                for k in [k for k in out if k.startswith(f"{m}.{part}.")]:
                    del out[k]
            n = n.model_copy(update={"type": "Linear", "params": {"out_features": n.params["out_features"],
                                                                   "bias": n.params["bias"]}})
        nodes.append(n)
    return graph.model_copy(update={"nodes": nodes}), out


def _module_path(node) -> str:
    """The module path PEFT names a layer by: the node's label when it is a dotted path, else its id."""
    label = node.label or ""
    return label if re.fullmatch(r"[A-Za-z_][\w.]*", label) else node.id


def merged_project(project: Any, weights: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A project with every LoRA adapter folded into its base (:func:`merge_lora`: plain Linear nodes, exported
    as plain ``.py`` and ONNX) and the weights that go with it; a project without LoRA nodes comes back as is."""
    if not any(n.type == "LoRA" for n in project.graph.nodes):
        return project, weights
    from builder.graph.compile import module_names  # lazy: heavy (torch)

    graph, merged = merge_lora(project.graph, weights, module_names(project.graph))
    return project.model_copy(update={"graph": graph}), merged


def peft_adapter(graph, weights: dict[str, Any], module_names: dict[str, str], *, base_model: str = "",
                 fan_in_fan_out: bool = False) -> dict[str, bytes]:
    """``{"adapter_config.json": bytes, "adapter_model.safetensors": bytes}`` in PEFT's LoRA format: only the
    adapters (``base_model.model.<module path>.lora_A.weight`` / ``.lora_B.weight``), one rank and alpha per
    model as PEFT's config holds them (``rank_pattern``/``alpha_pattern`` for nodes that differ).

    Raises:
        LayerLabError: the graph has no LoRA node.
    """
    from safetensors.torch import save  # lazy: heavy (safetensors)

    lora = [n for n in as_graph(graph).nodes if n.type == "LoRA"]
    if not lora:
        raise LayerLabError("a PEFT adapter needs LoRA nodes; received: a graph without any. Fix: add LoRA to "
                            "Linear layers first")
    tensors, paths = {}, {}
    for n in lora:
        m, path = module_names[n.id], _module_path(n)
        paths[n.id] = path
        for part in ("lora_A", "lora_B"):
            tensors[f"base_model.model.{path}.{part}.weight"] = weights[f"{m}.{part}.weight"].detach().contiguous()
    first = lora[0].params
    config = {"peft_type": "LORA", "task_type": None, "base_model_name_or_path": base_model or None,
              "r": first["rank"], "lora_alpha": first["alpha"], "lora_dropout": first["dropout"],
              "target_modules": sorted({paths[n.id].rsplit(".", 1)[-1] for n in lora}), "bias": "none",
              "fan_in_fan_out": fan_in_fan_out, "inference_mode": True, "init_lora_weights": True,
              "modules_to_save": None, "use_rslora": False, "use_dora": False,
              "rank_pattern": {paths[n.id]: n.params["rank"] for n in lora if n.params["rank"] != first["rank"]},
              "alpha_pattern": {paths[n.id]: n.params["alpha"] for n in lora if n.params["alpha"] != first["alpha"]}}
    return {"adapter_config.json": json.dumps(config, indent=1).encode(),
            "adapter_model.safetensors": save(tensors, metadata={"format": "pt"})}


__all__ = ["add_lora", "lora_targets", "lora_state", "trainable_params", "node_training", "merge_lora", "merged_project", "peft_adapter",
           "ATTENTION_PROJECTIONS", "LORA_DEFAULTS"]
