"""Minimal app for the canvas browser test: streamlit run tests/canvas/demo_app.py

Fake annotations are computed here from the graph the browser last sent, in the
same rerun; the returned state is written as JSON into the container with key
``canvas_state`` so the test can read what Python sees.
"""

from __future__ import annotations

import json
import os

import streamlit as st

from builder.canvas import graph_canvas, latest_canvas_state

st.set_page_config(page_title="LayerLab canvas demo", layout="wide")

T = {"name": "in", "kind": "tensor"}
OUT = {"name": "out", "kind": "tensor"}

PALETTE = [
    {
        "type": "Input",
        "category": "Inputs",
        "description": "Model input: a tensor or a batch of token ids",
        "inputs": [],
        "outputs": [OUT],
        "variadic": False,
        "params": [
            {"name": "shape", "kind": "int_list", "default": [4], "min": 1, "max": None, "choices": None, "help": "Shape without batch"},
            {"name": "modality", "kind": "choice", "default": "tensor", "min": None, "max": None, "choices": ["tensor", "tokens"], "help": ""},
        ],
    },
    {
        "type": "Linear",
        "category": "Dense",
        "description": "Fully connected layer y = xWᵀ + b",
        "inputs": [T],
        "outputs": [OUT],
        "variadic": False,
        "params": [
            {"name": "out_features", "kind": "int", "default": 4, "min": 1, "max": None, "choices": None, "help": "Output width"},
            {"name": "bias", "kind": "bool", "default": True, "min": None, "max": None, "choices": None, "help": ""},
        ],
    },
    {
        "type": "ReLU",
        "category": "Activation",
        "description": "Rectified linear unit",
        "inputs": [T],
        "outputs": [OUT],
        "variadic": False,
        "params": [],
    },
    {
        "type": "Embedding",
        "category": "Dense",
        "description": "Lookup table from token ids to vectors",
        "inputs": [{"name": "in", "kind": "tokens"}],
        "outputs": [OUT],
        "variadic": False,
        "params": [
            {"name": "num_embeddings", "kind": "int", "default": 100, "min": 1, "max": None, "choices": None, "help": ""},
            {"name": "embedding_dim", "kind": "int", "default": 4, "min": 1, "max": None, "choices": None, "help": ""},
        ],
    },
    {
        "type": "Add",
        "category": "Merge",
        "description": "Element-wise sum of all inputs",
        "inputs": [T],
        "outputs": [OUT],
        "variadic": True,
        "params": [],
    },
    {
        "type": "LSTM",
        "category": "Recurrent",
        "description": "Long short-term memory",
        "inputs": [T],
        "outputs": [OUT | {"name": "output"}, OUT | {"name": "h_n"}],
        "variadic": False,
        "params": [{"name": "hidden_size", "kind": "int", "default": 4, "min": 1, "max": None, "choices": None, "help": ""}],
    },
    {
        "type": "MLP block",
        "category": "Blocks",
        "description": "Linear → ReLU (user block)",
        "inputs": [T],
        "outputs": [OUT],
        "variadic": False,
        "params": [],
        "block": {
            "nodes": [
                {"id": "a", "type": "Linear", "label": None, "params": {"out_features": 4, "bias": True}},
                {"id": "b", "type": "ReLU", "label": None, "params": {}},
            ],
            "edges": [{"id": "a->b", "source": "a", "target": "b", "source_port": "out", "target_port": "in"}],
        },
    },
]


def initial_graph() -> dict:
    return {
        "nodes": [
            {"id": "input_1", "type": "Input", "label": None, "params": {"shape": [4], "modality": "tensor"}, "position": {"x": 40, "y": 60}},
            {"id": "input_2", "type": "Input", "label": "tokens", "params": {"shape": [8], "modality": "tokens"}, "position": {"x": 40, "y": 260}},
        ],
        "edges": [],
    }


def big_graph(n: int) -> dict:
    nodes = [{"id": "input_1", "type": "Input", "label": None, "params": {"shape": [4], "modality": "tensor"}}]
    edges = []
    for i in range(1, n):
        t = "Linear" if i % 2 else "ReLU"
        nid = f"{t.lower()}_{i}"
        nodes.append({"id": nid, "type": t, "label": None, "params": {"out_features": 4, "bias": True} if t == "Linear" else {}})
        edges.append({"id": f"{nodes[i - 1]['id']}->{nid}", "source": nodes[i - 1]["id"], "target": nid, "source_port": "out", "target_port": "in"})
    return {"nodes": nodes, "edges": edges}


def annotate(graph: dict) -> dict:
    nodes, problems, total = {}, [], 0
    for n in graph.get("nodes", []):
        tokens = n["type"] == "Input" and n.get("params", {}).get("modality") == "tokens"
        params = 0
        if n["type"] == "Linear":
            params = 4 * int(n["params"].get("out_features", 4)) + int(n["params"].get("out_features", 4))
        elif n["type"] == "Embedding":
            params = int(n["params"].get("num_embeddings", 100)) * int(n["params"].get("embedding_dim", 4))
        total += params
        errors = ["This layer is labelled bad"] if n.get("label") == "bad" else []
        problems += [{"node": n["id"], "edge": None, "message": m} for m in errors]
        nodes[n["id"]] = {"shape": "(B, T)" if tokens else "(B, 4)", "params": params, "errors": errors, "out_kind": "tokens" if tokens else "tensor"}
    edges = {e["id"]: {"shape": "(B, 4)"} for e in graph.get("edges", [])}
    return {"nodes": nodes, "edges": edges, "summary": {"total_params": total, "memory": f"{total * 4 / 1024:.1f} KB", "problems": problems}}


ss = st.session_state
if "graph" not in ss:
    n = int(os.environ.get("LAYERLAB_DEMO_NODES", "0"))
    ss.graph = big_graph(n) if n else initial_graph()
    ss.revision = 1
    ss.runs = 0
    ss.events = []
ss.runs += 1

# Read what the browser sent (before rendering) so annotations match it in this rerun.
latest = latest_canvas_state("canvas", ss.revision)
if latest and latest["graph"] is not None:
    ss.graph = latest["graph"]

if st.button("Reset graph (bumps revision)", key="reset"):
    ss.graph = initial_graph()
    ss.revision += 1

result = graph_canvas(
    graph=ss.graph,
    palette=PALETTE,
    annotations=annotate(ss.graph),
    revision=ss.revision,
    selected=(latest or {}).get("selected"),
    height=620,
    key="canvas",
)
if result:
    ss.events.extend(result["events"])

with st.container(key="canvas_state"):
    st.code(
        json.dumps({"runs": ss.runs, "revision": ss.revision, "result": result, "events": ss.events}, sort_keys=True),
        language=None,
    )
