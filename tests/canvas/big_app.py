"""Canvas harness with a big imported-looking graph: streamlit run tests/canvas/big_app.py

LAYERLAB_BIG_NODES (default 500) sets the size. Node ids follow the source's module hierarchy as the
importers write them (``layer1_0_conv1``): a ResNet-style backbone, and above 1,000 nodes a DETR-style
transformer after it. Python's state is written into the container ``canvas_state`` (as demo_app.py does).
Used by tests/canvas/test_big_graph_browser.py and bench/bench_canvas.py.
"""

from __future__ import annotations

import json
import os

import streamlit as st

from builder.canvas import graph_canvas, latest_canvas_state

T = {"name": "in", "kind": "tensor"}
OUT = {"name": "out", "kind": "tensor"}
CATS = {"Input": "Inputs", "Conv2d": "Convolution", "BatchNorm2d": "Normalisation", "ReLU": "Activation",
        "MaxPool2d": "Pooling", "Add": "Merge", "Linear": "Dense", "LayerNorm": "Normalisation",
        "MultiheadAttention": "Attention", "Flatten": "Reshape", "Output": "Inputs"}
PALETTE = [{"type": t, "category": c, "description": t, "inputs": [] if t == "Input" else [T], "outputs": [OUT],
            "variadic": t == "Add", "params": []} for t, c in CATS.items()]


def big_graph(n: int) -> dict:
    """About ``n`` nodes with a module hierarchy, in execution order, without positions."""
    nodes: list[dict] = []
    edges: list[dict] = []

    def add(nid: str, typ: str, *srcs: str) -> str:
        nodes.append({"id": nid, "type": typ, "label": None, "params": {}})
        edges.extend({"id": f"{s}->{nid}", "source": s, "target": nid} for s in srcs)
        return nid

    x = add("input", "Input")
    backbone = n if n <= 1000 else n // 2
    pre = "backbone_body_" if n > 1000 else ""
    x = add(f"{pre}conv1", "Conv2d", x)
    x = add(f"{pre}bn1", "BatchNorm2d", x)
    x = add(f"{pre}relu", "ReLU", x)
    x = add(f"{pre}maxpool", "MaxPool2d", x)
    per_stage = max(1, (backbone - 8) // 4 // 10)
    for s in range(1, 5):
        for b in range(per_stage):
            p = f"{pre}layer{s}_{b}_"
            skip = x
            y = add(p + "conv1", "Conv2d", x)
            y = add(p + "bn1", "BatchNorm2d", y)
            y = add(p + "relu", "ReLU", y)
            y = add(p + "conv2", "Conv2d", y)
            y = add(p + "bn2", "BatchNorm2d", y)
            y = add(p + "relu_1", "ReLU", y)
            y = add(p + "conv3", "Conv2d", y)
            y = add(p + "bn3", "BatchNorm2d", y)
            if b == 0:
                skip = add(p + "downsample_1", "BatchNorm2d", add(p + "downsample_0", "Conv2d", skip))
            y = add(p + "add", "Add", y, skip)
            x = add(p + "relu_2", "ReLU", y)
    if n > 1000:
        x = add("input_proj", "Conv2d", x)
        x = add("flatten", "Flatten", x)
        layers = max(1, (n - len(nodes) - 3) // 2 // 9)
        for part in ("encoder", "decoder"):
            for i in range(layers):
                p = f"transformer_{part}_layers_{i}_"
                skip = x
                y = add(p + "self_attn", "MultiheadAttention", x)
                y = add(p + "add", "Add", y, skip)
                y = add(p + "norm1", "LayerNorm", y)
                z = add(p + "linear1", "Linear", y)
                z = add(p + "activation", "ReLU", z)
                z = add(p + "linear2", "Linear", z)
                z = add(p + "add_1", "Add", z, y)
                z = add(p + "norm2", "LayerNorm", z)
                x = add(p + "dropout", "ReLU", z)
        x = add("class_embed", "Linear", x)
    else:
        x = add("avgpool", "MaxPool2d", x)
        x = add("flatten", "Flatten", x)
        x = add("fc", "Linear", x)
    add("output", "Output", x)
    return {"nodes": nodes, "edges": edges}


def annotate(graph: dict) -> dict:
    """Shapes per node (fake but plausible), so blocks show their input and output shapes."""
    nodes = {}
    for n in graph.get("nodes", []):
        conv = n["type"] in ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Add", "Input")
        nodes[n["id"]] = {"shape": "(B, 256, 56, 56)" if conv else "(B, 100, 256)", "params": 0, "errors": [],
                          "out_kind": "tensor"}
    return {"nodes": nodes, "edges": {}, "summary": {"total_params": 0, "memory": "", "problems": []}}


st.set_page_config(page_title="LayerLab big graph", layout="wide")
ss = st.session_state
if "graph" not in ss:
    ss.graph = big_graph(int(os.environ.get("LAYERLAB_BIG_NODES", "500")))
    ss.revision = 1
    ss.runs = 0
ss.runs += 1
latest = latest_canvas_state("canvas", ss.revision)
if latest and latest["graph"] is not None:
    ss.graph = latest["graph"]
result = graph_canvas(graph=ss.graph, palette=PALETTE, annotations=annotate(ss.graph), revision=ss.revision,
                      selected=(latest or {}).get("selected"), height=700, key="canvas")
with st.container(key="canvas_state"):
    st.code(json.dumps({"runs": ss.runs, "nodes": len(ss.graph["nodes"]),
                        "selected": (result or {}).get("selected")}), language=None)
