"""Write tests/canvas/connection_cases.json: shared cases for the canvas's connection rules.

    .venv/bin/python tests/canvas/make_connection_cases.py

One case = a small graph, one edge to add (source layer/port -> target layer/port) and the expected answer
(allowed, or refused with a reason code). The answers come from the rules written out below, not from
either implementation: frontend/src/connection.test.js checks the browser's rule (frontend/src/graph.js)
against them and tests/graph/test_connection_rules.py checks Python's (builder.validate / infer_shapes).
The layer types and their ports are read from the registry (``builder.palette()``); the Python test fails
when they change, so a new layer gets cases (and a place in the rules) before it ships.

Reason codes are Python's problem codes (self_loop, dangling_edge, bad_port, duplicate_edge, extra_input,
cycle) plus ``port_kind``: the source's kind (tensor / token ids) is one the target's input refuses.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import builder

OUT = Path(__file__).with_name("connection_cases.json")

# ---- the rules ------------------------------------------------------------------------------------------
TENSOR, TOKENS, MASK = "tensor", "tokens", "mask"
PADDING_MASK = "padding_mask"
# Layers whose input takes either kind and passes it on (shape ops, Identity, Output). Every other input
# takes only the kind its palette port declares: "tokens" for Embedding, "tensor" for the rest.
KIND_AGNOSTIC = {"Output", "Identity", "Flatten", "Unflatten", "Reshape", "Permute"}

# ---- shapes each layer takes (so that an allowed edge gives a valid graph) --------------------------------
SEQ, IMAGE = [6, 8], [4, 8, 8]
SHAPE = {
    **dict.fromkeys(["Conv1d", "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d", "RNN", "LSTM", "GRU",
                     "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "PositionalEncoding",
                     "Permute"], SEQ),
    **dict.fromkeys(["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
                     "GroupNorm", "Dropout2d"], IMAGE),
    "Unflatten": [64],  # its default unflattened_size is [1, 8, 8]
    **dict.fromkeys(["Transpose", "Upsample", "InstanceNorm1d", "LocalResponseNorm", "ConvTranspose1d"], SEQ),
    **dict.fromkeys(["PixelShuffle", "PixelUnshuffle", "InstanceNorm2d"], IMAGE),
    "Squeeze": [1, 8],  # its default dim 1 must have size 1
    "MatMul": [8, 8],  # (n, k) @ (k, m) with both inputs the same shape
}
DEFAULT_SHAPE = [8]


def accepted_kinds(entry: dict, port: dict) -> set[str]:
    return {TENSOR, TOKENS} if entry["type"] in KIND_AGNOSTIC or port["kind"] == "any" else {port["kind"]}
    # (a padding mask goes into mask ports only, kind-agnostic layers included: mask_cases)


def port_label(entry: dict, port: dict) -> str:
    return "any" if entry["type"] in KIND_AGNOSTIC else port["kind"]


# ---- graph helpers --------------------------------------------------------------------------------------
# The Op node's ports and kinds depend on its call: the cases give it one that takes either kind (aten.abs keeps
# integers) and one with all eight output ports (aten.split of 8 values into ones).
OP_PARAMS = {"op": "aten.abs", "args": '[{"t": 0}]'}
OP_OUTPUTS = {"op": "aten.split.Tensor", "args": '[{"t": 0}, 1, -1]', "outputs": 8}


def node(nid, ltype, **params):
    if ltype == "Op" and not params:
        params = dict(OP_PARAMS)
    return {"id": nid, "type": ltype, "params": params}


def edge(source, target, source_port="out", target_port="in"):
    return {"source": source, "source_port": source_port, "target": target, "target_port": target_port}


def feed(prefix: str, kind: str, shape: list[int]):
    """An Input of `kind` whose output has `shape` (an Input then a Reshape when it has several dims).
    Returns (nodes, edges, id of the last node)."""
    n = math.prod(shape)
    params = {"shape": [n], "modality": "tokens", "vocab_size": 50} if kind == TOKENS else {"shape": [n]}
    nodes, edges = [node(prefix, "Input", **params)], []
    if len(shape) > 1:
        nodes.append(node(f"{prefix}_r", "Reshape", shape=list(shape)))
        edges.append(edge(prefix, f"{prefix}_r"))
    return nodes, edges, nodes[-1]["id"]


def case(cid, nodes, edges, connect, out_kinds, allowed, code=None, **extra):
    c = {"id": cid, "graph": {"nodes": nodes, "edges": edges}, "connect": connect, "out_kinds": out_kinds,
         "expect": {"allowed": allowed, **({} if allowed else {"code": code})}}
    c.update(extra)
    return c


# ---- cases ----------------------------------------------------------------------------------------------
def kind_cases(palette: list[dict]) -> list[dict]:
    """Every input port of every layer, fed once with float tensors and once with token ids. The two cases
    of a port differ only in the Input's modality, so a refusal (port_kind) names its allowed twin."""
    out = []
    for entry in palette:
        t = entry["type"]
        shape = SHAPE.get(t, DEFAULT_SHAPE)
        for port in entry["inputs"]:
            pair = {}
            for kind in (TENSOR, TOKENS):
                nodes, edges, src = feed("src", kind, shape)
                nodes.append(node("t", t))
                if entry["variadic"]:  # merges need two inputs: a second one of float tensors
                    n2, e2, other = feed("other", TENSOR, shape)
                    nodes, edges = nodes + n2, edges + e2 + [edge(other, "t", target_port=port["name"])]
                else:  # every other required port (the first one when this one is optional) gets float tensors
                    need = [q["name"] for i, q in enumerate(entry["inputs"]) if q["name"] != port["name"]
                            and (i == 0 or not q.get("optional")) and q["kind"] != MASK]
                    for j, name in enumerate(need):
                        n2, e2, other = feed(f"other{j}" if j else "other", TENSOR, shape)
                        nodes, edges = nodes + n2, edges + e2 + [edge(other, "t", target_port=name)]
                ok = kind in accepted_kinds(entry, port)
                if port["kind"] == MASK:  # neither kind: only a padding mask goes in (mask_cases)
                    out.append(case(f"kind/{kind}->{t}.{port['name']}", nodes, edges,
                                    edge(src, "t", target_port=port["name"]), {src: kind}, False, "port_kind",
                                    kinds={"source": kind, "target": MASK}))
                    continue
                pair[kind] = case(f"kind/{kind}->{t}.{port['name']}", nodes, edges, edge(src, "t", target_port=port["name"]),
                                  {src: kind}, ok, None if ok else "port_kind",
                                  kinds={"source": kind, "target": port_label(entry, port)})
            if not pair:
                continue
            for kind, other in ((TENSOR, TOKENS), (TOKENS, TENSOR)):
                if not pair[kind]["expect"]["allowed"]:
                    pair[kind]["twin"] = pair[other]["id"]
            out += [pair[TENSOR], pair[TOKENS]]
    return out


def mask_cases(palette: list[dict]) -> list[dict]:
    """A sequence Input's padding mask goes into every mask port, and into no port of another kind."""
    out = []
    for entry in palette:
        t = entry["type"]
        for port in entry["inputs"]:
            nodes = [node("src", "Input", shape=SEQ), node("t", t)]
            if port["kind"] == MASK:
                need = [q["name"] for q in entry["inputs"] if not q.get("optional") and q["kind"] != MASK]
                edges = [edge("src", "t", target_port=name) for name in need]
                out.append(case(f"mask/ok->{t}.{port['name']}", nodes, edges,
                                edge("src", "t", source_port=PADDING_MASK, target_port=port["name"]),
                                {"src": TENSOR}, True, kinds={"source": MASK, "target": MASK}))
            elif t in ("Linear", "Identity"):
                out.append(case(f"mask/refused->{t}.{port['name']}", nodes, [],
                                edge("src", "t", source_port=PADDING_MASK, target_port=port["name"]),
                                {"src": TENSOR}, False, "port_kind", kinds={"source": MASK, "target": port_label(
                                    entry, port)}))
    return out


def pass_through_cases() -> list[dict]:
    """A layer that takes either kind passes it on: tokens through it still go only into an Embedding."""
    out = []
    for t in sorted(KIND_AGNOSTIC - {"Output"}):
        shape = SHAPE.get(t, DEFAULT_SHAPE)
        for target, target_kind in (("Embedding", TOKENS), ("Linear", TENSOR)):
            pair = {}
            for kind in (TENSOR, TOKENS):
                nodes, edges, src = feed("src", kind, shape)
                nodes += [node("p", t), node("t", target)]
                edges = edges + [edge(src, "p")]
                ok = kind == target_kind
                pair[kind] = case(f"through/{kind}->{t}->{target}", nodes, edges, edge("p", "t"), {"p": kind}, ok,
                                  None if ok else "port_kind", kinds={"source": kind, "target": target_kind})
            for kind, other in ((TENSOR, TOKENS), (TOKENS, TENSOR)):
                if not pair[kind]["expect"]["allowed"]:
                    pair[kind]["twin"] = pair[other]["id"]
            out += [pair[TENSOR], pair[TOKENS]]
    return out


def output_port_cases(palette: list[dict]) -> list[dict]:
    """Every output port of layers with several (RNN h_n ...) feeds a float input."""
    out = []
    for entry in palette:
        if len(entry["outputs"]) < 2:
            continue
        t = entry["type"]
        for port in entry["outputs"]:
            if t == "Input":  # an Input takes no input; its padding mask: mask_cases
                continue
            nodes, edges, src = feed("src", TENSOR, SHAPE.get(t, DEFAULT_SHAPE))
            nodes += [node("m", t, **(OP_OUTPUTS if t == "Op" else {})), node("t", "Linear")]
            edges = edges + [edge(src, "m")]
            out.append(case(f"port/{t}.{port['name']}->Linear.in", nodes, edges, edge("m", "t", source_port=port["name"]),
                            {"m": TENSOR}, True, kinds={"source": TENSOR, "target": TENSOR}))
    return out


def structure_cases() -> list[dict]:
    x = node("x", "Input", shape=[8])
    y = node("y", "Input", shape=[8])
    q, k, v = (node(n, "Input", shape=[6, 8]) for n in ("q", "k", "v"))
    lin, relu, add = node("lin", "Linear"), node("r", "ReLU"), node("add", "Add")
    mha = node("mha", "MultiheadAttention")
    return [
        case("self_loop", [x, relu], [edge("x", "r")], edge("r", "r"), {"r": TENSOR}, False, "self_loop"),
        case("dangling/unknown target", [x], [], edge("x", "ghost"), {"x": TENSOR}, False, "dangling_edge"),
        case("bad_port/unknown input", [x, lin], [], edge("x", "lin", target_port="bias"), {"x": TENSOR}, False, "bad_port"),
        case("bad_port/unknown output", [x, lin], [], edge("x", "lin", source_port="h_n"), {"x": TENSOR}, False, "bad_port"),
        case("bad_port/into an Input", [x, y], [], edge("x", "y"), {"x": TENSOR}, False, "bad_port"),
        case("duplicate_edge/single input", [x, lin], [edge("x", "lin")], edge("x", "lin"), {"x": TENSOR}, False,
             "duplicate_edge"),
        case("duplicate_edge/merge", [x, y, add], [edge("x", "add"), edge("y", "add")], edge("x", "add"), {"x": TENSOR},
             False, "duplicate_edge"),
        case("extra_input/single input", [x, y, lin], [edge("x", "lin")], edge("y", "lin"), {"y": TENSOR}, False,
             "extra_input"),
        case("extra_input/optional port taken", [q, k, v, mha], [edge("q", "mha", target_port="query"),
             edge("k", "mha", target_port="key")], edge("v", "mha", target_port="key"), {"v": TENSOR}, False,
             "extra_input"),
        case("merge/second input", [x, y, add], [edge("x", "add")], edge("y", "add"), {"y": TENSOR}, True),
        case("merge/numbered input", [x, y, add], [edge("x", "add", target_port="0")], edge("y", "add", target_port="1"),
             {"y": TENSOR}, True),
        case("bad_port/non-ASCII number", [x, y, add], [edge("x", "add")], edge("y", "add", target_port="١"),
             {"y": TENSOR}, False, "bad_port"),
        case("attention/all three ports", [q, k, v, mha], [edge("q", "mha", target_port="query"),
             edge("k", "mha", target_port="key")], edge("v", "mha", target_port="value"), {"v": TENSOR}, True),
        case("cycle/through a merge", [x, add, relu, node("r2", "ReLU")],
             [edge("x", "add"), edge("add", "r"), edge("r", "r2")], edge("r2", "add"), {"r2": TENSOR}, False, "cycle"),
        case("cycle/into an optional port", [q, mha, node("n", "LayerNorm")],
             [edge("q", "mha", target_port="query"), edge("mha", "n")], edge("n", "mha", target_port="key"),
             {"n": TENSOR}, False, "cycle"),
    ]


def palette_ports() -> list[dict]:
    """The registry's ports as the canvas reads them (what the Python test compares)."""
    return [{"type": e["type"], "variadic": e["variadic"],
             "inputs": [{"name": p["name"], "kind": p["kind"]} for p in e["inputs"]],
             "outputs": [{"name": p["name"], "kind": p["kind"]} for p in e["outputs"]]} for e in builder.palette()]


def build() -> dict:
    palette = palette_ports()
    cases = (kind_cases(palette) + pass_through_cases() + output_port_cases(palette) + mask_cases(palette)
             + structure_cases())
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return {"about": "Shared connection-rule cases; written by tests/canvas/make_connection_cases.py (do not edit).",
            "palette": palette, "cases": cases}


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(build()['cases'])} cases)")
