"""A graph generator of our own: every registered layer, every parameter edge, any wiring, hostile names.

``project_text()`` draws a whole project file as JSON text. Most graphs are grown so that they have a good
chance to be valid (each new layer is fed from a node whose shape the generator tracks with the layer's own
shape rule, parameters drawn from the schema and kept small); a fraction of nodes get hostile parameters
(0, negative, huge, integers of thousands of digits, NaN, wrong types, Unicode digits), and some graphs get
extra edges (cycles, self loops, dangling ends, duplicate edges, unknown and Unicode ports). Node ids, labels
and the project name are drawn from hostile text (``\"\"\"``, ``\\N``, backslashes, NUL, ANSI escapes, bidi
overrides, surrogates, newlines, reserved Python names).

Running them: :func:`check_graph` takes one project file through load, analysis, compile, forward (eval, batch 1
and 3), forward and backward (train, batch 3, inputs requiring gradients), two optimizer steps each with Adam and
SGD on fresh compiles (inputs of the inferred shapes and dtypes: token ids where the Input says so; one loss,
:func:`_probe_loss`, checked both ways: a finite loss must leave finite parameters, and fresh weights must give a
finite loss unless a layer that can leave the finite numbers is in the graph), the project file saved and loaded
back, and the ``.py`` export (re-imported, same outputs on the same weights); with ``LAYERLAB_FUZZ_DEEP=1`` (``make
fuzz``) also the ONNX export (checked by onnx.checker and run in onnxruntime against PyTorch within export_onnx's
tolerance; refused only for a node validation warned has no ONNX form) imported back. It classifies
what went wrong; :func:`run_in_children` runs a list of project files in child processes (one child per batch;
before each graph the child records its index, so a signal or a hang is attributed to the graph that was
running, and a fresh child goes on with the next one) and counts the failures of :data:`FAILURES`.
``python -m tests.fuzz_graphs N [SEED]`` runs N drawn graphs and prints the counts (``LAYERLAB_FUZZ_OPS=1``: operator
graphs; ``LAYERLAB_FUZZ_KIND=templates``: mutated templates, :func:`template_graph`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from hypothesis import strategies as st

from builder.errors import LayerLabError
from builder.graph.registry import TOKENS, LayerSpec, TensorType, all_specs
from tests.strategies import CAP, op_call, op_case, param_value

SPECS: dict[str, LayerSpec] = {s.type: s for s in all_specs()}
LAYERS = [t for t in SPECS if t != "Input"]
BOGUS_TYPES = ["Conv2D", "linear", "Bogus", "", "Input\n", "__import__"]
SHAPE_ONLY = {"Flatten", "Unflatten", "Reshape", "Permute", "Identity", "Output"}  # accept token ids as they are
HUGE_DIGITS = "__HUGE_DIGITS__"  # replaced in the JSON text by an integer literal of 5,000 digits

HOSTILE_TEXT = ['"""', "'''", "\\N", "\\U", "\\x", "\\", "C:\\Users\\N\\", 'a"""; import os; """', "\x00", "a\nb",
                "a\r\nb", "\x1b[31mred\x1b[0m", "\u202eevil", "\u2028", "²", "١٢", "class", "forward", "torch", "self",
                "nn", "math", "__init__", "_", "__", "1abc", "a b", "a-b", "a.b", "ü", "日本", "\ud800", "\udfff",
                "# coding: latin-1", "-*- coding: rot13 -*-", "${x}", "<script>alert(1)</script>", "|", "`", "**b**",
                "con", "../..", "x" * 150,
                # attributes of nn.Module / fx.GraphModule and LayerLab's own (compile maps them to safe names)
                "meta", "training", "shape_env", "_modules", "graph", "code", "state_dict", "layerlab_names",
                "getattr", "output", "T_destination", "call_super_init", "dump_patches"]


def hostile_text(min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[str]:
    """Text with the characters that break generated code, Markdown and terminals, surrogates included."""
    any_char = st.characters(exclude_categories=())  # every code point, lone surrogates and controls included
    return st.one_of(st.sampled_from(HOSTILE_TEXT),
                     st.text(any_char, min_size=min_size, max_size=max_size),
                     st.lists(st.sampled_from(HOSTILE_TEXT), min_size=1, max_size=3).map("".join))


HOSTILE_ID = hostile_text(1, 10)
HOSTILE_LABEL = hostile_text(0, 30)

EDGE_VALUES = st.sampled_from([0, -1, -7, 1, 2, 10**6, 10**6 + 1, 2**31, 2**63, 10**30, 10**400, -10**400,
                               HUGE_DIGITS, 1e308, -1e308, 0.5, -0.0, math.nan, math.inf, -math.inf, True, False,
                               None, "3", "", "²", "٣", "ten", [], [1], [1, 2, 3], [0, -1], [[1]], {}, {"a": 1},
                               ["²"], [10**400, 1]])


# ------------------------------------------------------------------------------------------- helpers
# Strategies are built once and reused: building a fresh one for every draw costs more than the test itself.

@functools.cache
def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


BOOL = st.booleans()


def _pick(draw, seq):
    """One element of a sequence (drawn as an index, so the strategy is shared)."""
    seq = list(seq)
    return seq[draw(_ints(0, len(seq) - 1))]


def _roll(draw, n: int) -> int:
    """A uniform draw from 0..n-1."""
    return draw(_ints(0, n - 1))


@functools.lru_cache(maxsize=4096)
def _param_strategy(layer: str, name: str, shape: tuple[int, ...]) -> st.SearchStrategy:
    return param_value(SPECS[layer].param(name), shape)


# ------------------------------------------------------------------------------------------- params

def _divisors(n: int, cap: int = 8) -> list[int]:
    return [d for d in range(1, min(n, cap) + 1) if n % d == 0] or [1]


def _valid_params(draw, spec: LayerSpec, t: TensorType | None) -> dict:
    """Parameters from the schema that usually fit an input of type ``t`` (small sizes, valid combinations)."""
    shape = tuple(t.shape) if t is not None and t.shape else (4,)
    if spec.type == "Op":  # its JSON texts only fit together: one whole valid call
        return dict(op_case(draw, shape)[1])
    params: dict = {}
    for p in spec.params:
        if _roll(draw, 6) == 0 and p.name not in ("dims", "unflattened_size"):
            continue  # leave it to the default
        name = p.name
        if p.kind == "int_list":
            params[name] = draw(_int_list(spec.type, shape))
        elif name in ("num_heads", "nhead"):
            params[name] = _pick(draw, _divisors(shape[-1]))
        elif spec.type == "GroupNorm" and name == "num_groups":
            params[name] = _pick(draw, _divisors(shape[0]))
        elif spec.type == "PositionalEncoding" and name == "max_len":
            params[name] = _pick(draw, [shape[0], shape[0] + 1, 64, 100_000])
        elif spec.type == "Embedding" and name == "padding_idx":
            vocab = (t.vocab if t is not None else None) or 2
            params[name] = None if draw(BOOL) else draw(_ints(0, vocab - 1))
        elif name == "kernel_size" and len(shape) >= 2:
            params[name] = draw(_ints(1, max(1, min(4, *shape[1:]))))
        elif name in ("dim", "start_dim", "end_dim"):
            r = len(shape)
            params[name] = draw(_ints(1, r)) if draw(BOOL) else -draw(_ints(1, r))
        else:
            params[name] = draw(_param_strategy(spec.type, name, shape))
    return params


@functools.lru_cache(maxsize=4096)
def _int_list(layer: str, shape: tuple[int, ...]) -> st.SearchStrategy:
    total = math.prod(shape)
    if layer == "Permute":
        return st.permutations(list(range(1, len(shape) + 1))).map(lambda p: [0, *p])
    if layer == "Unflatten":
        n = shape[0]
        return st.sampled_from(_divisors(n, n)).map(lambda d: [d, n // d])
    if layer == "Reshape":
        return st.sampled_from(_divisors(total, total)).flatmap(
            lambda d: st.sampled_from([[d, total // d], [-1, d], [total], [d, -1, 1]]))
    return st.lists(st.integers(-1, 6), min_size=1, max_size=3)


def _hostile_params(draw, spec: LayerSpec) -> dict:
    """A few parameters set to edge values, sometimes an unknown or inferred key."""
    names = [p.name for p in spec.params] + list(spec.inferred) + ["bogus", "²", "out_feature"]
    return {_pick(draw, names): draw(EDGE_VALUES) for _ in range(1 + _roll(draw, 3))}


# ------------------------------------------------------------------------------------------- layers

def _compatible(t: TensorType | None) -> list[str]:
    """Layer types whose shape rule accepts ``t`` for some parameters (a guide, not a rule: the generator also
    draws incompatible ones)."""
    if t is None:
        return LAYERS
    if t.kind == TOKENS:
        return ["Embedding", *sorted(SHAPE_ONLY)]
    return _compatible_with_rank(len(t.shape))


@functools.cache
def _compatible_with_rank(rank: int) -> list[str]:
    return [typ for typ in LAYERS if typ != "Embedding" and rank in _RANKS.get(typ, (rank,))]


_RANKS = {"Conv1d": (2,), "MaxPool1d": (2,), "AvgPool1d": (2,), "AdaptiveAvgPool1d": (2,), "BatchNorm1d": (1, 2),
          "Conv2d": (3,), "ConvTranspose2d": (3,), "MaxPool2d": (3,), "AvgPool2d": (3,), "AdaptiveAvgPool2d": (3,),
          "BatchNorm2d": (3,), "Dropout2d": (3,), "GroupNorm": (2, 3), "RNN": (2,), "LSTM": (2,), "GRU": (2,),
          "MultiheadAttention": (2,), "TransformerEncoderLayer": (2,), "TransformerDecoderLayer": (2,),
          "PositionalEncoding": (2,), "Unflatten": (1, 2), "Permute": (2, 3), "Mean": (1, 2, 3)}  # Mean of a vector: rank 0


# layers drawn after a Permute (a non-contiguous tensor) more often than by chance
AFTER_PERMUTE = ["GroupNorm", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Conv1d", "Conv2d", "MaxPool1d", "LSTM",
                 "GRU", "RNN", "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "Linear",
                 "Flatten", "ReLU"]


def _out_type(spec: LayerSpec, params: dict, ins: list[TensorType | None], source_port: str | None) -> TensorType | None:
    """The output type by the layer's own rule (for the generator's guidance), None when rejected."""
    if any(t is None for t in ins):
        return None
    resolved, errors = spec.resolve_params(params)
    if errors:
        return None
    try:
        out = spec.shape(resolved, list(ins))
    except LayerLabError:
        return None
    if isinstance(out, dict):
        return out.get(source_port or spec.outputs[0])
    return out


def _input_node(draw, nid: str, hostile: bool) -> tuple[dict, TensorType | None]:
    modality = _pick(draw, ["vector", "image", "sequence", "tokens", "auto"])
    if modality == "vector":
        shape = [draw(_ints(1, 8))]
    elif modality == "image":
        shape = [draw(_ints(1, 3)), draw(_ints(1, 8)), draw(_ints(1, 8))]
    elif modality == "sequence":
        shape = [draw(_ints(1, 6)), 2 * draw(_ints(1, 4))]
    elif modality == "tokens":
        shape = [draw(_ints(1, 8))]
    else:
        shape = [draw(_ints(1, 6)) for _ in range(1 + _roll(draw, 3))]
    params: dict = {"shape": shape, "modality": modality}
    if modality == "tokens":
        params["vocab_size"] = draw(_ints(2, 30))
    if hostile and _roll(draw, 5) == 0:
        params.update(_hostile_params(draw, SPECS["Input"]))
    return {"id": nid, "type": "Input", "params": params}, _out_type(SPECS["Input"], params, [], None)


STRAY_PORTS = ["0", "1", "7", "²", "٣", "1" * 40, "", "in", "query", "key", "value", "zz", " 0", "-1", "padding_mask",
               "tgt", "memory", "memory_padding_mask"]


def _mask_edges(draw, spec: LayerSpec | None, nid: str, kind: dict[str, str], types: dict, t: TensorType | None,
                hostile: bool) -> list[dict]:
    """Padding masks from an Input's ``padding_mask`` port: into an attention layer's mask ports most of the
    time (mostly from an Input as long as the layer's input ``t``, else from any), now and then into a port or
    layer that takes no mask."""
    inputs = [n for n, k in kind.items() if k == "Input"]
    if spec is None or not inputs or not (spec.mask_inputs and _roll(draw, 2) or hostile and _roll(draw, 12) == 0):
        return []
    fits = [n for n in inputs if t is not None and types.get(n) is not None and types[n].shape[:1] == t.shape[:1]
            and (types[n].kind == TOKENS or len(types[n].shape) == 2)]
    ports = list(spec.mask_inputs) if spec.mask_inputs and _roll(draw, 8) else list(spec.inputs) or ["in"]
    return [{"source": _pick(draw, fits if fits and _roll(draw, 4) else inputs), "source_port": "padding_mask",
             "target": nid, "target_port": port} for port in ports if draw(BOOL) or port in spec.mask_inputs[:1]]


@st.composite
def graph_dict(draw) -> dict:
    """A graph as a JSON-ready dict (nodes, edges), grown layer by layer with tracked shapes."""
    nodes: list[dict] = []
    edges: list[dict] = []
    types: dict[str, TensorType | None] = {}  # node id -> output type on its first port (None: unknown)
    kind: dict[str, str] = {}  # node id -> layer type
    hostile = _roll(draw, 5) < 2  # 40%: hostile params, bogus types and stray edges; else clean wiring
    hostile_ids = _roll(draw, 4) == 0

    def new_id(i: int) -> str:
        return draw(HOSTILE_ID) if hostile_ids and draw(BOOL) else f"n{i}"

    for i in range(1 + _roll(draw, 2)):
        node, t = _input_node(draw, new_id(i) if i or hostile_ids else "x", hostile)
        nodes.append(node)
        types.setdefault(node["id"], t)
        kind.setdefault(node["id"], "Input")
    # a graph of Inputs alone now and then (refused: no_output); else 1 to 7 layers
    layers = _roll(draw, 8) or (1 if _roll(draw, 4) else 0)
    for i in range(len(nodes), len(nodes) + layers):
        known = [nid for nid, t in types.items() if t is not None]
        last = nodes[-1]["id"]
        after_permute = kind.get(last) == "Permute" and types.get(last) is not None and _roll(draw, 3)
        src = last if after_permute else _pick(draw, known) if known and _roll(draw, 10) else _pick(draw, types)
        t = types[src]
        roll = _roll(draw, 20)
        if after_permute and (fits := [x for x in AFTER_PERMUTE if x in _compatible(t)]):
            typ = _pick(draw, fits)  # non-contiguous inputs: where torch kernels had layout bugs
        else:
            typ = (_pick(draw, BOGUS_TYPES) if roll == 0 and hostile else
                   _pick(draw, LAYERS) if roll < (4 if hostile else 1) else _pick(draw, _compatible(t)))
        spec = SPECS.get(typ)
        nid = new_id(i)
        srcs = [src]
        if spec is not None and spec.variadic:
            same = [n for n, u in types.items() if u is not None and t is not None and u.shape == t.shape]
            pool = same if same and _roll(draw, 4) else list(types)
            srcs += [_pick(draw, pool) for _ in range(1 + _roll(draw, 2))]
        elif spec is not None and spec.type == "MultiheadAttention" and _roll(draw, 3) == 0:
            odd = [n for n, u in types.items() if u is None or len(u.shape) != 2 or u.kind == TOKENS]
            srcs.append(_pick(draw, odd) if odd and draw(BOOL) else _pick(draw, types))  # key of another rank/kind
        elif spec is not None and len(spec.inputs) - len(spec.optional_inputs) > 1 and _roll(draw, 6):
            same = [n for n, u in types.items() if u is not None and t is not None and u.shape == t.shape]
            srcs += [_pick(draw, same if same and _roll(draw, 4) else list(types))
                     for p in spec.inputs[1:] if p not in spec.mask_inputs]  # losses (input, target), MatMul,
            # Reparameterize (mu, logvar), a decoder's memory (its padding masks are drawn below)
        in_types = [types[s] for s in srcs]
        if spec is None:
            params = _hostile_params(draw, SPECS["Linear"])
        elif hostile and _roll(draw, 4) == 0:
            params = {**_valid_params(draw, spec, t), **_hostile_params(draw, spec)}
        else:
            params = _valid_params(draw, spec, t)
        node = {"id": nid, "type": typ, "params": params}
        if _roll(draw, 6) == 0:
            node["label"] = draw(HOSTILE_LABEL)
        if _roll(draw, 6) == 0:
            node["position"] = {"x": _pick(draw, [0.0, -1e308, 1e308, 12.5]), "y": 0}
        nodes.append(node)
        source_port = None
        for k, s in enumerate(srcs):
            edge: dict = {"source": s, "target": nid}
            if kind.get(s) in ("RNN", "LSTM", "GRU") and draw(BOOL):
                edge["source_port"] = source_port = _pick(draw, ["out", "h_n"])
            if spec is not None and spec.variadic and _roll(draw, 4):
                edge["target_port"] = str(k)
            elif spec is not None and spec.type == "MultiheadAttention" and k:
                edge["target_port"] = "key"
            elif spec is not None and not spec.variadic and 0 < k < len(spec.inputs) and _roll(draw, 2):
                edge["target_port"] = spec.inputs[k]
            edges.append(edge)
        edges += _mask_edges(draw, spec, nid, kind, types, t, hostile)
        types.setdefault(nid, _out_type(spec, params, in_types, source_port) if spec is not None else None)
        kind.setdefault(nid, typ)

    ids = [n["id"] for n in nodes]
    for _ in range(_roll(draw, 4) if hostile and draw(BOOL) else 0):
        edge = {"source": _pick(draw, [*ids, "ghost"]), "target": _pick(draw, [*ids, "ghost"])}
        if draw(BOOL):
            edge["target_port"] = _pick(draw, STRAY_PORTS)
        if _roll(draw, 4) == 0:
            edge["source_port"] = _pick(draw, ["out", "h_n", "zz", "", "padding_mask"])
        if _roll(draw, 6) == 0:
            edge["id"] = draw(HOSTILE_ID)
        edges.append(edge)
    if hostile and _roll(draw, 5) == 0 and len(edges) > 1:
        edges.append(dict(_pick(draw, edges)))  # a duplicate edge
    if _roll(draw, 6) == 0:
        last = _pick(draw, ids)
        nodes.append({"id": "out" if "out" not in ids else "out2", "type": "Output"})
        edges.append({"source": last, "target": nodes[-1]["id"]})
    return {"nodes": nodes, "edges": edges}


@st.composite
def project_text(draw) -> str:
    """A whole project file as JSON text (NaN, surrogates and 5,000-digit integers included where drawn)."""
    project = {"format": "layerlab", "version": 1, "graph": draw(graph_dict())}
    if draw(BOOL):
        project["name"] = draw(HOSTILE_LABEL)
    if _roll(draw, 4) == 0:
        project["description"] = draw(HOSTILE_LABEL)
    text = json.dumps(project)  # ensure_ascii: surrogates and controls become \\u escapes, as JSON allows
    return text.replace(json.dumps(HUGE_DIGITS), "9" * 5000)


# ------------------------------------------------------------------------------------------- operator graphs
# The generic operator node with the FULL allow-list (tests.strategies.op_call draws any allow-listed ATen
# operator's call from its schema): inputs of any kind, Op nodes chained and side by side, edges from their extra
# output ports, and the float layers that integers, odd strides or odd dtypes break behind them.
AFTER_OP = ["Linear", "GroupNorm", "BatchNorm1d", "LayerNorm", "Softmax", "PReLU", "ReLU", "Flatten", "Add",
            "Embedding", "Conv1d", "InstanceNorm1d"]


@st.composite
def op_graph(draw) -> dict:
    """Input -> 1-3 ``Op`` nodes of the whole allow-list -> sometimes a layer behind them (JSON-ready dict)."""
    node, t = _input_node(draw, "x", False)
    nodes, edges = [node], []
    types: dict[str, TensorType | None] = {"x": t}
    for i in range(1 + _roll(draw, 3)):
        src = _pick(draw, list(types)) if _roll(draw, 3) == 0 else nodes[-1]["id"]
        shape = tuple(types[src].shape) if types[src] is not None and types[src].shape else (4,)
        n_in, params = op_call(draw, shape)
        nid = f"op{i}"
        nodes.append({"id": nid, "type": "Op", "params": params})
        for k in range(n_in):
            edge = {"source": src if k == 0 else _pick(draw, list(types)), "target": nid, "target_port": str(k)}
            if _roll(draw, 8) == 0 and edge["source"] != "x":
                edge["source_port"] = _pick(draw, ["out1", "out2"])
            edges.append(edge)
        types[nid] = _out_type(SPECS["Op"], params, [types[e["source"]] for e in edges if e["target"] == nid], None)
    if draw(BOOL):
        typ = _pick(draw, AFTER_OP)
        last = nodes[-1]["id"]
        params = _valid_params(draw, SPECS[typ], types[last]) if types[last] is not None else {}
        nodes.append({"id": "after", "type": typ, "params": params})
        edges.append({"source": last, "target": "after"})
        if SPECS[typ].variadic:
            edges.append({"source": last, "target": "after", "target_port": "1"})
    return {"nodes": nodes, "edges": edges}


@st.composite
def op_project_text(draw) -> str:
    """A project file around :func:`op_graph`."""
    return json.dumps({"format": "layerlab", "version": 1, "graph": draw(op_graph())})


# ------------------------------------------------------------------------------------------- template graphs
# The built-in templates (text: Embedding and token ids with padding masks; time series; GPT-style causal
# decoders; LoRA; GAN and VAE with their losses, Noise and Reparameterize) mutated: an Input's sizes and vocabulary
# redrawn, layers' integer sizes redrawn small, the graph cut to the ancestors of one node (a GAN's generator or a
# VAE's encoder alone), and now and then a Permute or Reshape with a normalisation spliced after a node.

@functools.cache
def _templates() -> dict[str, dict]:
    from builder import list_templates, load_template

    return {t["name"]: json.loads(load_template(t["name"]).to_json())["graph"] for t in list_templates()}


SMALL_INT_PARAMS = ("out_features", "hidden_size", "embed_dim", "d_model", "dim_feedforward", "out_channels",
                    "num_embeddings", "embedding_dim", "rank", "max_len", "num_layers", "size")
SPLICE = ["LayerNorm", "GroupNorm", "BatchNorm1d", "InstanceNorm1d", "BatchNorm2d", "InstanceNorm2d", "LSTM",
          "MultiheadAttention", "Linear", "Conv1d"]


@st.composite
def template_graph(draw) -> dict:
    """A built-in template, mutated (see above), as a JSON-ready graph dict."""
    templates = _templates()
    graph = json.loads(json.dumps(templates[_pick(draw, sorted(templates))]))
    nodes, edges = graph["nodes"], graph["edges"]
    for node in nodes:
        params = node.setdefault("params", {})
        if node["type"] == "Input" and _roll(draw, 2):
            shape = params.get("shape") or [4]
            params["shape"] = [draw(_ints(1, 9)) if _roll(draw, 2) else d for d in shape]
            if "vocab_size" in params and draw(BOOL):
                params["vocab_size"] = draw(_ints(2, 40))
        elif _roll(draw, 4) == 0:
            for name in [k for k in params if k in SMALL_INT_PARAMS]:
                params[name] = draw(_ints(1, 9))
    if _roll(draw, 3) == 0:  # the ancestors of one node: a part of the template
        keep = {_pick(draw, [n["id"] for n in nodes])}
        while True:
            more = {e["source"] for e in edges if e["target"] in keep} - keep
            if not more:
                break
            keep |= more
        graph["nodes"] = nodes = [n for n in nodes if n["id"] in keep]
        graph["edges"] = edges = [e for e in edges if e["source"] in keep and e["target"] in keep]
    if _roll(draw, 3) == 0:  # Permute/Reshape then a layer on non-canonical strides
        src = _pick(draw, [n["id"] for n in nodes])
        if draw(BOOL):
            nodes.append({"id": "fz_perm", "type": "Permute", "params": {"dims": [0, 2, 1]}})
        else:
            nodes.append({"id": "fz_perm", "type": "Reshape", "params": {"shape": [-1, draw(_ints(1, 4))]}})
        edges.append({"source": src, "target": "fz_perm"})
        typ = _pick(draw, SPLICE)
        nodes.append({"id": "fz_after", "type": typ, "params": {}})
        edges.append({"source": "fz_perm", "target": "fz_after"})
    return graph


@st.composite
def template_project_text(draw) -> str:
    """A project file around :func:`template_graph`."""
    return json.dumps({"format": "layerlab", "version": 1, "graph": draw(template_graph())})


# ------------------------------------------------------------------------------------------- running

ROOT = Path(__file__).resolve().parents[1]
#: What must never happen (each counted and required to be zero): an exception other than a LayerLabError
#: from loading or analysis; a rejected graph whose problems are unlocated/multi-line or that compile accepts;
#: an accepted graph that fails to compile, run forward/backward or export; an output whose shape differs from
#: the inferred one; a child killed by a signal (a segfault) or hanging.
FAILURES = ("unhandled", "contract", "accepted_fails", "shape_mismatch", "crash")
GRAPH_LEVEL = {"no_input", "too_many_nodes"}


def _budget():
    from builder.graph.shapes import Budget

    # small enough that every accepted graph builds and runs in milliseconds; larger ones must be refused
    return Budget(max_params=2_000_000, max_activation_bytes=64 * 2**20, batch_size=3)


class _Mismatch(Exception):
    pass


def _err(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


def check_graph(text: str) -> tuple[str, str | None, str]:
    """One project file through every stage: ``(outcome, failure or None, detail)``; never raises.

    outcome: ``unreadable``, ``rejected``, ``budget`` or ``accepted``; failure: one of :data:`FAILURES`.
    """
    from builder import compile_graph, infer_shapes, load_project
    from builder.errors import GraphError, LayerLabError
    from builder.escape import terminal_line

    try:
        project = load_project(text)
    except LayerLabError as e:
        return "unreadable", ("contract" if "\n" in terminal_line(str(e)) else None), "multi-line load error"
    except Exception as e:  # noqa: BLE001 - counted
        return "unreadable", "unhandled", "load_project: " + _err(e)
    try:
        report = infer_shapes(project.graph, _budget())
    except Exception as e:  # noqa: BLE001 - counted
        return "rejected", "unhandled", "infer_shapes: " + _err(e)
    if not report.ok:
        outcome = "budget" if all(p.code == "budget" for p in report.problems if p.severity == "error") else "rejected"
        for p in report.problems:
            if not (p.node is not None or p.edge is not None or p.code in GRAPH_LEVEL):
                return outcome, "contract", f"unlocated problem: {terminal_line(str(p))[:200]}"
            if not p.message or "\n" in terminal_line(str(p)):
                return outcome, "contract", f"empty or multi-line problem: {p.code}"
        try:
            compile_graph(project.graph, _budget())
        except GraphError as e:
            return (outcome, None, "") if e.problems else (outcome, "contract", "GraphError without problems")
        except Exception as e:  # noqa: BLE001 - counted
            return outcome, "unhandled", "compile_graph of a rejected graph: " + _err(e)
        return outcome, "contract", "compile_graph accepted a graph that validation rejects"
    stage = ["compile"]  # where _run_accepted is, for the failure's detail
    try:
        _run_accepted(project, report, stage)
    except _Mismatch as e:
        return "accepted", "shape_mismatch", str(e)[:300]
    except Exception as e:  # noqa: BLE001 - counted
        return "accepted", "accepted_fails", f"{stage[0]}: {_err(e)}"
    return "accepted", None, ""


def _run_accepted(project, report, stage: list[str]) -> None:
    """Compile, forward (eval: batch 1 and 3), forward + backward (train, batch 3), export and compare."""
    import torch

    from builder import compile_graph, export_python, load_project
    from builder.graph.compile import example_inputs

    def outputs(out) -> tuple:
        return out if isinstance(out, tuple) else (out,)

    def expect(outs, batch: int) -> None:
        got = [tuple(o.shape) for o in outs]
        want = [(batch, *report.nodes[n].shape) for n in report.output_nodes]
        if got != want:
            raise _Mismatch(f"batch {batch}: inferred {want}, real {got}")

    model = compile_graph(project.graph, report=report)
    model.eval()
    with torch.no_grad():
        for batch in (1, 3):
            stage[0] = f"forward (eval, batch {batch})"
            expect(outputs(model(*example_inputs(model, batch_size=batch))), batch)
    stage[0] = "forward (train, batch 3)"
    model.train()
    xs = [x.requires_grad_() if x.is_floating_point() else x for x in example_inputs(model, batch_size=3, seed=2)]
    outs = outputs(model(*xs))
    expect(outs, 3)
    stage[0] = "backward"
    loss = _probe_loss(project, outs, seed=3, fresh=True)
    if loss is not None:
        loss.backward()
    _optimizer_steps(project, report, stage)
    stage[0] = "project file round trip"
    again = load_project(project.to_json())
    if again.to_json() != project.to_json():
        raise RuntimeError("the saved project file loads as another project")
    stage[0] = "export .py"
    model.eval()
    namespace: dict = {"__name__": "exported_by_layerlab"}
    exec(compile(export_python(project, budget=_budget()), "<exported>", "exec"), namespace)  # noqa: S102
    exported = namespace["Model"]()
    exported.load_state_dict(model.state_dict())
    exported.eval()
    xs = example_inputs(model, batch_size=3, seed=1)
    with torch.no_grad():
        for a, b in zip(outputs(exported(*xs)), outputs(model(*xs)), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, equal_nan=True)  # Log, Sqrt of negatives
    if DEEP:
        _onnx_round_trip(project, model, report, stage)


#: ``LAYERLAB_FUZZ_DEEP=1`` (``make fuzz``): every accepted graph also exported to ONNX, run in onnxruntime against
#: PyTorch (export_onnx's own check, VERIFY_ATOL) and imported back (seconds per graph, so not in CI's sample)
DEEP = os.environ.get("LAYERLAB_FUZZ_DEEP", "") not in ("", "0")


def _optimizer_steps(project, report, stage: list[str]) -> None:
    """A fresh compile per optimizer (Adam, SGD): two training steps on real inputs of the inferred shapes and
    dtypes (token ids where the Input says so); a finite loss (:func:`_probe_loss`) must leave finite parameters
    and outputs of the inferred shapes."""
    import torch

    from builder import compile_graph
    from builder.graph.compile import example_inputs
    from builder.training.nonfinite import diagnose

    for name, make in (("Adam", lambda ps: torch.optim.Adam(ps, lr=1e-3)),
                       ("SGD", lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9))):
        torch.manual_seed(0)
        model = compile_graph(project.graph, report=report)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return
        opt = make(params)
        model.train()
        for step in range(2):
            stage[0] = f"optimizer step ({name}, step {step})"
            opt.zero_grad(set_to_none=True)
            outs = model(*example_inputs(model, batch_size=3, seed=10 + step))
            loss = _probe_loss(project, outs if isinstance(outs, tuple) else (outs,), seed=4, fresh=step == 0)
            if loss is None:
                return
            finite = bool(torch.isfinite(loss))
            loss.backward()
            opt.step()
            if finite and step == 0 and not all(bool(torch.isfinite(p).all()) for p in params):
                if {n.type for n in project.graph.nodes} & MAY_BE_NONFINITE and \
                        diagnose(model).kind == "gradient":  # no finite derivative where the data took it (pow of a
                    return  # negative base to a learned exponent): training names the node (training.nonfinite)
                bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
                raise RuntimeError(f"a finite loss ({float(loss):.3g}) left non-finite parameters after "
                                   f"{name}: {bad[:3]}")


#: Layer types whose output can be non-finite on finite inputs with finite, freshly initialised weights: log, sqrt,
#: power or reciprocal of negatives or zeros, division by zero, exp overflow (Reparameterize's and the Gaussian KL's
#: exp(logvar)), a constant or factor up to 1e6 multiplied up, LocalResponseNorm's 0/0, KL divergence of
#: negative targets, any ATen operator. A graph of none of them gives a finite loss on finite inputs.
MAY_BE_NONFINITE = frozenset({"Arithmetic", "Constant", "Div", "Exp", "Log", "Pow", "Reciprocal", "Sqrt", "Op",
                              "Reparameterize", "GaussianKLLoss", "KLDivLoss", "LocalResponseNorm"})


def _probe_loss(project, outs: tuple, seed: int, fresh: bool):
    """The fuzzer's one loss (backward in :func:`_run_accepted`, the optimizer steps of :func:`_optimizer_steps`):
    every float output that carries a gradient times fixed random weights, averaged and summed in float64 (finite
    outputs never overflow it); None when no output carries a gradient. Checked both ways: a finite loss must leave
    finite parameters (the optimizer steps), and with ``fresh`` weights a graph without a layer of
    :data:`MAY_BE_NONFINITE` must give a finite loss."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    floats = [o for o in outs if o.is_floating_point() and o.requires_grad]
    if not floats:
        return None
    loss = sum((o.double() * torch.randn(o.shape, generator=gen, dtype=torch.float64)).mean() for o in floats)
    types = {n.type for n in project.graph.nodes}
    if fresh and not bool(torch.isfinite(loss)) and not types & MAY_BE_NONFINITE:
        bad = [k for k, o in enumerate(outs) if o.is_floating_point() and not bool(torch.isfinite(o).all())]
        raise RuntimeError(f"a non-finite loss ({float(loss)}) from finite inputs and fresh weights, in a graph of "
                           f"layers that stay finite on finite inputs (outputs {bad} non-finite)")
    return loss


def _onnx_round_trip(project, model, report, stage: list[str]) -> None:
    """ONNX export (checked by onnx.checker and run in onnxruntime against PyTorch by export_onnx itself), then the
    file imported back; an operator the importer does not map is an honest refusal (UnsupportedOpsError), and so is
    an export refused for a node that validation warned has no ONNX form (and only such a node)."""
    from builder import export_onnx, import_model
    from builder.interchange.errors import UnsupportedOpsError
    from builder.interchange.onnx_export import ExportError

    stage[0] = "export ONNX"
    warned = [n for n, info in report.nodes.items() if any("no ONNX form" in w for w in info.warnings)]
    with tempfile.TemporaryDirectory(prefix="layerlab-fuzz-onnx-") as tmp:
        path = Path(tmp, "m.onnx")
        try:
            export_onnx(project, path, weights=model.state_dict())
        except ExportError as e:
            if warned and "cannot be exported to ONNX" in str(e):
                return  # told before the export, and refused naming the node
            raise
        if warned:
            raise RuntimeError(f"validation warned that {warned[:3]} have no ONNX form, but the export succeeded")
        stage[0] = "import ONNX"
        with contextlib.suppress(UnsupportedOpsError):
            import_model(path, name="reimported")


@contextlib.contextmanager
def _no_local_constants():
    """Hypothesis mixes the literals of the project's modules loaded so far into what it draws (its "local
    constants"), so one seed drew other graphs after a worker had imported other modules (seed 21: 58 of 300
    accepted in the whole suite, 95 with the file alone). Drawn without them, a seed names the same graphs in any
    process, and a campaign's failing seed replays."""
    from hypothesis.internal.conjecture import providers

    if not hasattr(providers, "_get_local_constants"):  # another Hypothesis: nothing to pin
        yield
        return
    empty = providers.Constants()
    with mock.patch.object(providers, "_get_local_constants", lambda: empty):
        providers.CONSTANTS_CACHE.cache.clear()
        try:
            yield
        finally:
            providers.CONSTANTS_CACHE.cache.clear()


def draw_projects(n: int, seed: int, strategy=None) -> list[str]:
    """``n`` project files drawn by ``strategy`` (:func:`project_text`), the same ones for the same ``(n, seed)`` in
    any process (:func:`_no_local_constants`)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    out: list[str] = []

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy if strategy is not None else project_text())
    def collect(text):
        out.append(text)

    with _no_local_constants():
        collect()
    return out


@dataclass
class FuzzResult:
    """What :func:`run_in_children` found: ``counts`` (outcomes and failures), ``failures`` (index, failure,
    detail, project text), ``seconds``, ``children`` (processes started)."""

    counts: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    children: int = 0

    def line(self) -> str:
        c = self.counts
        total = sum(c[k] for k in ("unreadable", "rejected", "budget", "accepted"))
        return (f"{total} graphs in {self.seconds:.1f} s ({self.children} child processes): "
                + ", ".join(f"{k} {c[k]}" for k in FAILURES)
                + " | outcomes: " + ", ".join(f"{k} {c[k]}" for k in ("accepted", "rejected", "budget", "unreadable")))


def _child_main(batch_path: str, start: int, log_path: str) -> None:
    """Run the graphs of a batch file from index ``start``; before each, append ``S i`` to the log, after it
    ``R {json}`` (unbuffered writes: what is written survives a segfault)."""
    import faulthandler
    import warnings

    import torch

    faulthandler.enable()  # a native crash prints the Python stack to stderr
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    texts = json.loads(Path(batch_path).read_text())
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    crash_on = os.environ.get("LAYERLAB_FUZZ_CRASH_ON")  # tests of the runner: crash on graphs holding this text
    for i in range(start, len(texts)):
        os.write(fd, f"S {i}\n".encode())
        if crash_on and crash_on in texts[i]:
            import ctypes

            ctypes.string_at(0)  # SIGSEGV
        outcome, failure, detail = check_graph(texts[i])
        os.write(fd, ("R " + json.dumps({"i": i, "outcome": outcome, "failure": failure, "detail": detail})
                      + "\n").encode())
    os.close(fd)


def _read_log(path: Path) -> tuple[list[dict], int | None]:
    """(results, index started but not finished)."""
    results, running = [], None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("S "):
            running = int(line[2:])
        elif line.startswith("R "):
            results.append(json.loads(line[2:]))
            running = None
    return results, running


def run_in_children(texts: list[str], jobs: int = 1, timeout_per_graph: float = 60.0) -> FuzzResult:
    """Run project files in ``jobs`` child processes at a time and count outcomes and failures."""
    t0 = time.perf_counter()
    res = FuzzResult()
    jobs = max(1, min(jobs, len(texts)))
    with tempfile.TemporaryDirectory(prefix="layerlab-fuzz-") as tmp:
        chunks = [texts[k::jobs] for k in range(jobs)]  # interleaved: slow graphs spread over the children
        state = []
        for k, chunk in enumerate(chunks):
            batch = Path(tmp, f"batch{k}.json")
            batch.write_text(json.dumps(chunk))
            state.append({"k": k, "jobs": jobs, "batch": batch, "chunk": chunk, "next": 0, "proc": None, "log": None})
        while True:
            for st_ in state:
                if st_["proc"] is None and st_["next"] < len(st_["chunk"]):
                    st_["log"] = Path(tmp, f"log{st_['k']}-{st_['next']}.txt")
                    st_["log"].touch()
                    st_["err"] = open(Path(tmp, f"err{st_['k']}-{st_['next']}.txt"), "w+b")  # noqa: SIM115
                    code = (f"from tests.fuzz_graphs import _child_main; _child_main({str(st_['batch'])!r}, "
                            f"{st_['next']}, {str(st_['log'])!r})")
                    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
                    st_["proc"] = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                                                   stdout=subprocess.DEVNULL, stderr=st_["err"])
                    st_["started"] = st_["progress_t"] = time.monotonic()
                    st_["seen"] = 0
                    res.children += 1
            live = [s for s in state if s["proc"] is not None]
            if not live:
                break
            time.sleep(0.05)
            for st_ in live:
                _poll(st_, res, timeout_per_graph)
    res.seconds = time.perf_counter() - t0
    return res


def _poll(st_: dict, res: FuzzResult, timeout_per_graph: float) -> None:
    proc = st_["proc"]
    rc = proc.poll()
    size = st_["log"].stat().st_size
    if size != st_["seen"]:
        st_["seen"], st_["progress_t"] = size, time.monotonic()
    hung = rc is None and time.monotonic() - st_["progress_t"] > timeout_per_graph
    if rc is None and not hung:
        return
    if hung:
        proc.kill()
        proc.wait()
        rc = proc.returncode
    results, running = _read_log(st_["log"])
    for r in results:
        res.counts[r["outcome"]] += 1
        if r["failure"]:
            res.counts[r["failure"]] += 1
            res.failures.append({**r, "i": st_["k"] + r["i"] * st_["jobs"], "text": st_["chunk"][r["i"]]})
    st_["next"] = results[-1]["i"] + 1 if results else st_["next"]
    if rc != 0 or running is not None:
        st_["err"].seek(0)
        tail = st_["err"].read().decode(errors="replace").strip().splitlines()[-6:]
        i = running if running is not None else st_["next"]
        why = f"hung > {timeout_per_graph:.0f} s" if hung else (f"signal {-rc}" if rc < 0 else f"exit {rc}")
        res.counts["crash"] += 1
        res.failures.append({"i": st_["k"] + i * st_["jobs"], "outcome": "crash", "failure": "crash", "detail": why + ": " + " | ".join(tail),
                             "text": st_["chunk"][i] if i < len(st_["chunk"]) else ""})
        st_["next"] = i + 1
    st_["err"].close()
    st_["proc"] = None


def save_failures(res: FuzzResult, seed: int) -> Path:
    """Write the failing project files (with index, failure, detail, seed) to test-artifacts/fuzz-failures.jsonl."""
    out = ROOT / "test-artifacts" / "fuzz-failures.jsonl"
    out.parent.mkdir(exist_ok=True)
    out.write_text("".join(json.dumps({**f, "seed": seed}) + "\n" for f in res.failures))
    return out


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 1000
    seed = int(argv[1]) if len(argv) > 1 else int.from_bytes(os.urandom(4), "little")
    jobs = int(os.environ.get("LAYERLAB_FUZZ_JOBS", os.cpu_count() or 1))
    t0 = time.perf_counter()
    which = os.environ.get("LAYERLAB_FUZZ_OPS") and "ops" or os.environ.get("LAYERLAB_FUZZ_KIND", "graphs")
    strategy = {"ops": op_project_text(), "templates": template_project_text()}.get(which)
    texts = draw_projects(n, seed, strategy)
    print(f"seed {seed}: drew {len(texts)} graphs in {time.perf_counter() - t0:.1f} s")
    res = run_in_children(texts, jobs=jobs)
    print(res.line())
    for f in res.failures[:20]:
        print(f"  graph {f['i']}: {f['failure']}: {f['detail']}")
    if res.failures:
        save_failures(res, seed)
    return 1 if any(res.counts[k] for k in FAILURES) else 0


__all__ = ["CAP", "graph_dict", "project_text", "op_graph", "op_project_text", "template_graph",
           "template_project_text", "hostile_text", "HOSTILE_TEXT", "EDGE_VALUES", "SPECS",
           "check_graph", "draw_projects", "run_in_children", "save_failures", "FuzzResult", "FAILURES"]

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
