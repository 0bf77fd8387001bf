"""The search space: dimensions (ranges and choices), their parsing and their checks against a project.

:func:`parse_space` reads specs such as ``"lr=1e-4..1e-1:log"``, ``"fc1.out_features=16..256:log"``,
``"rnn.num_layers={1,2,3}"``, ``"optimizer={adam,sgd}"`` or ``"block:fc2..act2=0..3"`` (the straight run of layers
fc2..act2 appears 1-3 times, or is skipped for 0, so the drawn structure itself is searched) and checks them against the project (node ids, the
layer spec's parameter schema and ranges) before any trial starts; every problem is reported at once as
"rule; received: value. Fix: ...". :meth:`SearchSpace.apply` turns one trial's parameters into a project and
training settings; :func:`searchable_params` lists what a project offers to search. Example::

    >>> from builder.graph.templates import load_template
    >>> project = load_template("mlp")
    >>> space = parse_space(["lr=1e-3..1e-1:log", "fc1.out_features={8,32}"], project)
    >>> p, cfg = space.apply(project, {}, {"lr": 0.01, "fc1.out_features": 32})
    >>> cfg, next(n.params["out_features"] for n in p.graph.nodes if n.id == "fc1")
    ({'lr': 0.01}, 32)
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from builder.data import records
from builder.errors import GraphError, Problem
from builder.graph.edit import chain_between, repeat_chain
from builder.graph.project import Project, load_project
from builder.graph.registry import Param, get_spec, has_spec
from builder.graph.shapes import infer_shapes

MAX_CHOICES = 64


# ------------------------------------------------------------------------------------------ problems
@dataclass(frozen=True)
class SearchProblem(Problem):
    """A problem of one search dimension: located at its node, else at its training setting ``key``."""

    key: str = ""

    @property
    def where(self) -> str:
        if self.node is not None:
            return f"node {self.node}"
        return f"search {self.key}" if self.key else "search"

    def to_dict(self) -> dict:
        return {**super().to_dict(), "key": self.key}


class SearchSpaceError(GraphError):
    """The search space has problems (syntax, unknown nodes or parameters, empty or inverted ranges)."""


# --------------------------------------------------------------------------------------- search space
# training settings that may be searched: kind, lower bound, upper bound (inclusive), choices
TRAINING_DIMS: dict[str, tuple[str, float | None, float | None, tuple | None]] = {
    "lr": ("float", 1e-8, 10.0, None),
    "batch_size": ("int", 1, 65_536, None),
    "weight_decay": ("float", 0.0, 1.0, None),
    "epochs": ("int", 1, 10_000, None),
    "momentum": ("float", 0.0, 0.999, None),
    "optimizer": ("choice", None, None, ("sgd", "adam", "adamw", "rmsprop")),
    "scheduler": ("choice", None, None, ("none", "step", "cosine", "onecycle", "plateau")),
    "dropout": ("float", 0.0, 0.95, None),  # every Dropout node's p and every layer's dropout parameter
}
_SPEC_RE = re.compile(r"^\s*(block:[\w\-]+\.\.[\w\-]+|[A-Za-z_][\w\-]*(?:\.[A-Za-z_]\w*)?)\s*=\s*(.+?)\s*$")
BLOCK_PREFIX = "block:"  # block:FIRST..LAST=0..3: the run of layers FIRST..LAST repeated 1-3 times or skipped (0)
MAX_REPEAT = 8
_RANGE_RE = re.compile(r"^(.+?)\.\.(.+?)(?::(log|linear))?$")


@dataclass(frozen=True)
class Dimension:
    """One searched value.

    Attributes:
        key: ``lr`` (a training setting) or ``node_id.param`` (a node parameter).
        kind: ``float``, ``int`` (a range from ``low`` to ``high``, inclusive, ``log`` scale optional) or
            ``choice`` (``choices``).
    """

    key: str
    kind: Literal["float", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    @property
    def block(self) -> tuple[str, str] | None:
        """(first, last) node ids of a repeated block (``block:FIRST..LAST``), else None."""
        if not self.key.startswith(BLOCK_PREFIX):
            return None
        first, _, last = self.key[len(BLOCK_PREFIX):].partition("..")
        return first, last

    @property
    def node(self) -> str | None:
        """The node id for a node parameter (a block's first node), else None."""
        if self.block:
            return self.block[0]
        return self.key.split(".", 1)[0] if "." in self.key else None

    @property
    def param(self) -> str:
        """The parameter (or training setting) name; ``repeat`` for a block."""
        if self.block:
            return "repeat"
        return self.key.split(".", 1)[1] if "." in self.key else self.key

    def distribution(self):
        """The Optuna distribution of this dimension."""
        import optuna.distributions as d  # lazy: heavy (optuna)

        if self.kind == "choice":
            return d.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def to_text(self) -> str:
        """The spec this dimension parses from (``lr=0.0001..0.1:log``)."""
        if self.kind == "choice":
            return f"{self.key}={{{','.join(_fmt_value(c) for c in self.choices)}}}"
        return f"{self.key}={_fmt_value(self.low)}..{_fmt_value(self.high)}" + (":log" if self.log else "")


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v)) if abs(v) >= 1 or v == 0 else repr(v)
    if isinstance(v, list | tuple):
        return json.dumps(list(v))
    return str(v)


def _parse_value(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        v = float(t)
        return v if math.isfinite(v) else t
    except ValueError:
        pass
    if t.startswith("["):
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads(t)
    return t


def _split_choices(body: str) -> list[str]:
    """Split ``a,b,[1,2]`` at top-level commas (lists such as kernel sizes stay whole)."""
    out, depth, cur = [], 0, ""
    for ch in body:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out]


def _syntax(text: str, why: str) -> SearchProblem:
    shown = text if len(text) <= 60 else text[:57] + "..."
    key = text.split("=", 1)[0].strip()[:60] if "=" in text else ""
    return SearchProblem("search_syntax", f"a search spec must read NAME=LOW..HIGH[:log] or NAME={{A,B,...}} "
                         f"({why}); received: {shown!r}. Fix: e.g. lr=1e-4..1e-1:log, fc1.out_features=16..256:log "
                         "or optimizer={adam,sgd}", key=key)


def parse_dimension(text: str) -> Dimension:
    """Parse one spec without looking at a project (syntax only). Raises SearchSpaceError."""
    if not isinstance(text, str) or len(text) > 2000:
        raise SearchSpaceError([_syntax(str(text)[:60], "text of at most 2000 characters")])
    m = _SPEC_RE.match(text)
    if not m:
        raise SearchSpaceError([_syntax(text, "NAME is a training setting or node_id.param")])
    key, body = m.group(1), m.group(2)
    if body.startswith("{"):
        if not body.endswith("}"):
            raise SearchSpaceError([_syntax(text, "a choice list ends with }")])
        inner = body[1:-1].strip()
        items = [_parse_value(s) for s in _split_choices(inner)] if inner else []
        return Dimension(key, "choice", choices=tuple(tuple(v) if isinstance(v, list) else v for v in items))
    r = _RANGE_RE.match(body)
    if not r:
        raise SearchSpaceError([_syntax(text, "a range is LOW..HIGH, a choice list {A,B}")])
    lo, hi = _parse_value(r.group(1)), _parse_value(r.group(2))
    if any(records.number(v) is None for v in (lo, hi)):
        raise SearchSpaceError([_syntax(text, "range bounds are numbers")])
    kind = "int" if isinstance(lo, int) and isinstance(hi, int) else "float"
    return Dimension(key, kind, low=lo, high=hi, log=r.group(3) == "log")


@dataclass
class SearchSpace:
    """Checked dimensions plus the node ids each ``dropout`` setting reaches."""

    dims: list[Dimension]
    dropout_targets: list[tuple[str, str]] = field(default_factory=list)  # (node id, param)

    def distributions(self) -> dict:
        """``{key: optuna distribution}`` for ``study.ask``."""
        return {d.key: d.distribution() for d in self.dims}

    def to_specs(self) -> list[str]:
        """The specs this space parses from."""
        return [d.to_text() for d in self.dims]

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dims]

    def apply(self, project: Project | dict, config: dict | None, params: dict) -> tuple[Project, dict]:
        """One trial's ``params`` applied: a project copy with node parameters set and the settings dict.

        ``dropout`` sets the ``p`` of every Dropout node and the ``dropout`` parameter of every layer that
        has one. Keys outside the space are ignored.
        """
        project = load_project(project).model_copy(deep=True)
        cfg = dict(config or {})
        nodes = {n.id: n for n in project.graph.nodes}
        for d in self.dims:
            if d.key not in params or d.block:
                continue
            v = params[d.key]
            v = list(v) if isinstance(v, tuple) else v
            if d.node is not None:
                nodes[d.node].params = {**nodes[d.node].params, d.param: v}
            elif d.key == "dropout":
                for nid, p in self.dropout_targets:
                    nodes[nid].params = {**nodes[nid].params, p: v}
            else:
                cfg[d.key] = v
        for d in self.dims:  # blocks last: their copies take the parameters just set
            if d.block and d.key in params:
                project.graph = repeat_chain(project.graph, *d.block, int(params[d.key]))
        return project, cfg


def parse_space(specs: Iterable[str | Dimension], project: Project | dict) -> SearchSpace:
    """Parse and check a search space against a project, reporting every problem at once.

    Args:
        specs: spec strings (``"lr=1e-4..1e-1:log"``, ``"fc1.out_features=16..256:log"``,
            ``"rnn.num_layers={1,2,3}"``) or :class:`Dimension` objects.
        project: the project whose nodes are searched.

    Returns:
        A :class:`SearchSpace`.

    Raises:
        SearchSpaceError: each problem located at its node (or training setting) as "rule; received:
            value. Fix: ...": syntax, unknown nodes or parameters, inferred sizes, empty or inverted
            ranges, bounds outside the layer's schema, log scale with a bound ≤ 0, bad choices, repeats.
    """
    project = load_project(project)
    problems: list[Problem] = []
    dims: list[Dimension] = []
    seen: set[str] = set()
    targets: list[tuple[str, str]] = []
    specs = list(specs)
    if len(specs) > 200:
        raise SearchSpaceError([SearchProblem("search_size", f"a search space may have at most 200 dimensions; "
                                              f"received: {len(specs)}. Fix: search fewer values")])
    for s in specs:
        try:
            d = s if isinstance(s, Dimension) else parse_dimension(s)
        except SearchSpaceError as e:
            problems += e.problems
            continue
        if d.key in seen:
            problems.append(SearchProblem("search_repeat", f"each value may be searched once; received: `{d.key}` "
                                          f"twice. Fix: keep one spec for {d.key}", node=d.node, key=d.key))
            continue
        seen.add(d.key)
        found, d2, extra = _check_dimension(d, project)
        problems += found
        if not found:
            dims.append(d2)
            targets += extra
    problems += _overlapping_blocks(dims, project)
    if not specs:
        problems.append(SearchProblem("search_empty", "a search needs at least one searched value; received: none. "
                                      "Fix: e.g. --search 'lr=1e-4..1e-1:log'"))
    if problems:
        raise SearchSpaceError(problems)
    return SearchSpace(dims, targets)


def _overlapping_blocks(dims: list[Dimension], project: Project) -> list[Problem]:
    """Searched blocks may not share a layer (one's copies would hold half of the other)."""
    owner: dict[str, str] = {}
    out: list[Problem] = []
    for d in dims:
        if not d.block:
            continue
        for nid in chain_between(project.graph, *d.block) or []:
            if nid in owner:
                out.append(SearchProblem("search_block", f"searched blocks may not share a layer; received: {d.key} "
                                         f"and {owner[nid]} both hold {nid}. Fix: search blocks that do not overlap",
                                         node=nid, key=d.key))
                break
            owner[nid] = d.key
    return out


def _check_block(d: Dimension, project: Project) -> tuple[list[Problem], Dimension]:
    """A repeated block: a straight run of layers with one input, counts 0..MAX_REPEAT, and (unless every count is
    1) an output shape equal to its input shape, so that a copy or a skip fits where the block was."""
    first, last = d.block

    def prob(code: str, msg: str) -> list[Problem]:
        return [SearchProblem(code, msg, node=first, key=d.key)]

    chain = chain_between(project.graph, first, last)
    into = [e for e in project.graph.edges if e.target == first]
    if chain is None or len(into) != 1:
        return prob("search_block", f"a searched block is a straight run of layers from its first to its last, "
                    f"with one input; received: {d.key}. Fix: name the first and last layer of such a run, e.g. "
                    "block:conv2..relu2"), d
    counts = [int(c) for c in d.choices if isinstance(c, int) and not isinstance(c, bool)] if d.kind == "choice" \
        else list(range(int(d.low), int(d.high) + 1)) if float(d.low).is_integer() and float(d.high).is_integer() \
        else []
    if not counts or (d.kind == "choice" and len(counts) != len(d.choices)) or min(counts) < 0 \
            or max(counts) > MAX_REPEAT or len(set(counts)) < 2:
        return prob("search_block", f"a block repeats 0..{MAX_REPEAT} times (0 skips it), with at least two "
                    f"counts; received: {d.to_text()}. Fix: e.g. {d.key}=0..3 or {d.key}={{1,2}}"), d
    if counts != [1] * len(counts):
        report = infer_shapes(project.graph)
        shape_in, shape_out = report.edges.get(into[0].key), report.nodes[last].shape_str if last in report.nodes else None
        if shape_in is None or shape_out is None or str(shape_in) != str(shape_out):
            return prob("search_block_shape", f"a repeated or skipped block must give back its input shape; "
                        f"received: {first}..{last} takes {shape_in} and gives {shape_out}. Fix: pick a run whose "
                        "output shape is its input shape (a residual or same-padding block)"), d
    if d.kind == "choice":
        return [], Dimension(d.key, "choice", choices=tuple(counts))
    return [], Dimension(d.key, "int", low=int(d.low), high=int(d.high))


def _check_dimension(d: Dimension, project: Project) -> tuple[list[Problem], Dimension, list[tuple[str, str]]]:
    if d.block:
        probs, d2 = _check_block(d, project)
        return probs, d2, []
    if d.node is None:
        if d.key not in TRAINING_DIMS:
            close = difflib.get_close_matches(d.key, list(TRAINING_DIMS), n=1)
            hint = f"did you mean `{close[0]}`?" if close else (
                "search a training setting (" + ", ".join(TRAINING_DIMS) + ") or a node parameter as node_id.param")
            return [SearchProblem("search_unknown", f"unknown search setting; received: `{d.key}`. Fix: {hint}",
                                  key=d.key)], d, []
        kind, lo, hi, choices = TRAINING_DIMS[d.key]
        param = Param(d.key, kind, None, min=lo, max=hi, choices=choices)
        targets: list[tuple[str, str]] = []
        if d.key == "dropout":
            targets = _dropout_targets(project)
            if not targets:
                return [SearchProblem("search_no_dropout", "`dropout` sets the rate of Dropout nodes and of layers "
                                      "with a dropout parameter; received: a graph with none. Fix: add a Dropout "
                                      "node, or search a node parameter instead", key=d.key)], d, []
        probs, d2 = _check_against(d, param, node=None)
        return probs, d2, targets
    nid, pname = d.node, d.param
    node = next((n for n in project.graph.nodes if n.id == nid), None)
    if node is None:
        ids = [n.id for n in project.graph.nodes]
        close = difflib.get_close_matches(nid, ids, n=1)
        hint = f"did you mean `{close[0]}`?" if close else "node ids are " + ", ".join(ids[:20])
        return [SearchProblem("search_unknown_node", f"a searched parameter must belong to a node of the graph; "
                              f"received: `{d.key}` but there is no node {nid!r}. Fix: {hint}", key=d.key)], d, []
    if not has_spec(node.type):
        return [SearchProblem("search_unknown_node", f"node {nid!r} has an unknown layer type; received: "
                              f"type={node.type!r}. Fix: correct the graph first", node=nid, key=d.key)], d, []
    spec = get_spec(node.type)
    if pname in spec.inferred:
        return [SearchProblem("search_inferred", f"`{pname}` is inferred from the input and cannot be searched; "
                              f"received: {d.key}. Fix: search the size of the layer before it", node=nid,
                              key=d.key)], d, []
    if pname not in spec.param_names:
        close = difflib.get_close_matches(pname, spec.param_names, n=1)
        hint = f"did you mean `{close[0]}`?" if close else (
            "it takes " + ", ".join(spec.param_names) if spec.param_names else f"{spec.type} takes no parameters")
        return [SearchProblem("search_unknown_param", f"unknown parameter `{pname}` for {spec.type}; received: "
                              f"{d.key}. Fix: {hint}", node=nid, key=d.key)], d, []
    probs, d2 = _check_against(d, spec.param(pname), node=nid)
    return probs, d2, []


def _dropout_targets(project: Project) -> list[tuple[str, str]]:
    out = []
    for n in project.graph.nodes:
        if n.type in ("Dropout", "Dropout2d"):
            out.append((n.id, "p"))
        elif has_spec(n.type) and "dropout" in get_spec(n.type).param_names:
            out.append((n.id, "dropout"))
    return out


def _check_against(d: Dimension, p: Param, node: str | None) -> tuple[list[Problem], Dimension]:
    """Check a dimension against a parameter's kind, range and choices; returns (problems, normalised)."""

    def prob(code: str, msg: str) -> list[Problem]:
        return [SearchProblem(code, msg, node=node, key=d.key)]

    if d.kind == "choice":
        if not d.choices:
            return prob("search_empty", f"a choice list needs at least one value; received: {d.key}={{}}. Fix: "
                        f"list values, e.g. {d.key}={{{_fmt_value(p.default) if p.default is not None else 'a,b'}}}"), d
        if len(d.choices) > MAX_CHOICES:
            return prob("search_size", f"a choice list may hold at most {MAX_CHOICES} values; received: "
                        f"{len(d.choices)}. Fix: use a range"), d
        if len(set(map(repr, d.choices))) != len(d.choices):
            return prob("search_repeat", f"choices must differ; received: {d.to_text()}. Fix: list each value once"), d
        out = []
        for c in d.choices:
            v = list(c) if isinstance(c, tuple) else c
            if p.kind == "float" and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            norm, err = p.check(v)
            if err:
                return prob("search_choice", f"every choice must be a valid `{d.param}`: {err}"), d
            out.append(tuple(norm) if isinstance(norm, list) else norm)
        return [], Dimension(d.key, "choice", choices=tuple(out))
    if p.kind not in ("int", "float", "int_or_pair"):
        what = f"one of {', '.join(map(repr, p.choices))}" if p.choices else f"a {p.kind}"
        return prob("search_kind", f"a range needs a numeric parameter; received: {d.to_text()} but `{d.param}` is "
                    f"{what}. Fix: list the values as {d.key}={{A,B}}"), d
    lo, hi = d.low, d.high
    kind = "int" if p.kind in ("int", "int_or_pair") else "float"
    if kind == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
        return prob("search_kind", f"`{d.param}` takes integers, so its range needs integer bounds; received: "
                    f"{d.to_text()}. Fix: e.g. {d.key}={math.ceil(lo)}..{math.floor(hi)}"), d
    if lo > hi:
        return prob("search_inverted", f"a range must run from low to high; received: {d.to_text()}. Fix: "
                    f"{d.key}={_fmt_value(hi)}..{_fmt_value(lo)}" + (":log" if d.log else "")), d
    if lo == hi:
        return prob("search_empty", f"a range must hold more than one value; received: {d.to_text()}. Fix: widen it, "
                    f"or set {d.param} to {_fmt_value(lo)} without searching it"), d
    if d.log and lo <= 0:
        return prob("search_log", f"a log-scale range needs bounds > 0; received: {d.to_text()}. Fix: start above 0, "
                    f"e.g. {d.key}={_fmt_value(hi / 1000 if kind == 'float' else 1)}..{_fmt_value(hi)}:log"), d
    for v in (lo, hi):
        norm, err = p.check(int(v) if kind == "int" else float(v))
        if err:
            return prob("search_bounds", f"the range must stay within `{d.param}`'s allowed values: {err}"), d
    return [], Dimension(d.key, kind, low=int(lo) if kind == "int" else float(lo),
                         high=int(hi) if kind == "int" else float(hi), log=d.log)


def searchable_params(project: Project | dict) -> list[dict]:
    """The canvas nodes' parameters that can be searched: numbers (a range) and choices (a list).

    Returns one dict per parameter: ``node``, ``type``, ``param``, ``kind``, ``value`` (current), ``min``,
    ``max``, ``choices``, ``help``, ``key`` (``node.param``, the spec name). Left out: inferred sizes, what the
    data fixes (the output width: :func:`builder.data.compat.fixed_by_data`) and what wires the network rather
    than tunes it (``Param.tunable`` False: a Flatten's dims, groups, bias).
    """
    from builder.data.compat import fixed_by_data  # lazy: heavy (numpy)

    out = []
    graph = load_project(project).graph
    fixed = fixed_by_data(graph)
    for n in graph.nodes:
        if n.type == "Input" or not has_spec(n.type):
            continue
        spec = get_spec(n.type)
        for p in spec.params:
            if (p.kind not in ("int", "float", "choice", "bool") or p.name in spec.inferred or not p.tunable
                    or f"{n.id}.{p.name}" in fixed):
                continue
            out.append({"node": n.id, "type": n.type, "param": p.name, "kind": p.kind,
                        "value": n.params.get(p.name, p.default), "min": p.min, "max": p.max,
                        "choices": list(p.choices) if p.choices else ([True, False] if p.kind == "bool" else None),
                        "help": p.help, "key": f"{n.id}.{p.name}"})
    return out


__all__ = ["Dimension", "SearchSpace", "SearchProblem", "SearchSpaceError", "parse_dimension", "parse_space",
           "searchable_params", "TRAINING_DIMS", "MAX_CHOICES", "BLOCK_PREFIX", "MAX_REPEAT"]
