"""A graph generator of our own: every registered layer, every parameter edge, any wiring, hostile names.

``project_text()`` draws a whole project file as JSON text. Most graphs are grown so that they have a good
chance to be valid (each new layer is fed from a node whose shape the generator tracks with the layer's own
shape rule, parameters drawn from the schema and kept small); a fraction of nodes get hostile parameters
(0, negative, huge, integers of thousands of digits, NaN, wrong types, Unicode digits), and some graphs get
extra edges (cycles, self loops, dangling ends, duplicate edges, unknown and Unicode ports). Node ids, labels
and the project name are drawn from hostile text (``\"\"\"``, ``\\N``, backslashes, NUL, ANSI escapes, bidi
overrides, surrogates, newlines, reserved Python names).
"""

from __future__ import annotations

import functools
import json
import math

from hypothesis import strategies as st

from builder.errors import LayerLabError
from builder.graph.registry import TOKENS, LayerSpec, TensorType, all_specs
from tests.strategies import CAP, param_value

SPECS: dict[str, LayerSpec] = {s.type: s for s in all_specs()}
LAYERS = [t for t in SPECS if t != "Input"]
BOGUS_TYPES = ["Conv2D", "linear", "Bogus", "", "Input\n", "__import__"]
SHAPE_ONLY = {"Flatten", "Unflatten", "Reshape", "Permute", "Identity", "Output"}  # accept token ids as they are
HUGE_DIGITS = "__HUGE_DIGITS__"  # replaced in the JSON text by an integer literal of 5,000 digits

HOSTILE_TEXT = ['"""', "'''", "\\N", "\\U", "\\x", "\\", "C:\\Users\\N\\", 'a"""; import os; """', "\x00", "a\nb",
                "a\r\nb", "\x1b[31mred\x1b[0m", "\u202eevil", "\u2028", "²", "١٢", "class", "forward", "torch", "self",
                "nn", "math", "__init__", "_", "__", "1abc", "a b", "a-b", "a.b", "ü", "日本", "\ud800", "\udfff",
                "# coding: latin-1", "-*- coding: rot13 -*-", "${x}", "<script>alert(1)</script>", "|", "`", "**b**",
                "con", "../..", "x" * 150]


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
          "MultiheadAttention": (2,), "TransformerEncoderLayer": (2,), "PositionalEncoding": (2,),
          "Unflatten": (1, 2), "Permute": (2, 3), "Mean": (2, 3)}


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


STRAY_PORTS = ["0", "1", "7", "²", "٣", "1" * 40, "", "in", "query", "key", "value", "zz", " 0", "-1"]


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
    for i in range(len(nodes), len(nodes) + _roll(draw, 8)):
        known = [nid for nid, t in types.items() if t is not None]
        src = _pick(draw, known) if known and _roll(draw, 10) else _pick(draw, types)
        t = types[src]
        roll = _roll(draw, 20)
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
            srcs.append(_pick(draw, types))
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
            edges.append(edge)
        types.setdefault(nid, _out_type(spec, params, in_types, source_port) if spec is not None else None)
        kind.setdefault(nid, typ)

    ids = [n["id"] for n in nodes]
    for _ in range(_roll(draw, 4) if hostile and draw(BOOL) else 0):
        edge = {"source": _pick(draw, [*ids, "ghost"]), "target": _pick(draw, [*ids, "ghost"])}
        if draw(BOOL):
            edge["target_port"] = _pick(draw, STRAY_PORTS)
        if _roll(draw, 4) == 0:
            edge["source_port"] = _pick(draw, ["out", "h_n", "zz", ""])
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


__all__ = ["CAP", "graph_dict", "project_text", "hostile_text", "HOSTILE_TEXT", "EDGE_VALUES", "SPECS"]
