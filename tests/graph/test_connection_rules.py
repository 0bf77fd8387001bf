"""Python's side of the shared connection-rule cases (tests/canvas/connection_cases.json).

The canvas refuses some edges in the browser before Python sees them (frontend/src/graph.js
``connectionCheck``); frontend/src/connection.test.js checks that rule on the same cases. Here each case's
edge is added to its graph and ``builder.infer_shapes`` must give the expected answer:

- allowed: the graph with the edge has no error at all (the case's graph is built to be valid then);
- refused with a code: a new problem with that code (Python's problem codes);
- refused with ``port_kind``: a shape error on the target, while the case's twin (the same graph with the
  source Input of the other kind) is valid, so the refusal is about the kind of tensor alone.

Regenerate the cases with ``.venv/bin/python tests/canvas/make_connection_cases.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import builder
from builder.graph.registry import MASK

DATA = json.loads((Path(__file__).resolve().parents[1] / "canvas" / "connection_cases.json").read_text())
CASES = {c["id"]: c for c in DATA["cases"]}

# Cases where Python gives the wrong answer today (the browser's is right). Strict: the test fails as soon as
# Python is fixed, so the entry is removed then.
PYTHON_WRONG: dict[str, str] = {}


def _with_edge(case: dict) -> dict:
    g = case["graph"]
    return {"nodes": g["nodes"], "edges": [*g["edges"], case["connect"]]}


def _out_kind(report, nid: str) -> str:
    """The kind the canvas is told for a node's output (the annotation ``out_kind``)."""
    info = report.nodes[nid]
    t = info.type_out
    if t is not None:
        return t.kind
    return "tokens" if info.params.get("modality") == "tokens" else "tensor"


def _errors(report) -> list:
    return [p for p in report.problems if p.severity == "error"]


def _show(problems) -> str:
    return "\n".join(f"{p.code} node={p.node} edge={p.edge}: {p.message}" for p in problems) or "(none)"


def test_the_cases_use_the_registry_ports():
    registry = {e["type"]: e for e in builder.palette()}
    fixture = {e["type"]: e for e in DATA["palette"]}
    assert set(fixture) == set(registry), "layer types changed: run tests/canvas/make_connection_cases.py"
    for t, e in registry.items():
        want = {"type": t, "variadic": e["variadic"],
                "inputs": [{"name": p["name"], "kind": p["kind"]} for p in e["inputs"]],
                "outputs": [{"name": p["name"], "kind": p["kind"]} for p in e["outputs"]]}
        assert fixture[t] == want, f"ports of {t} changed: run tests/canvas/make_connection_cases.py"


def test_every_input_port_is_fed_both_kinds_and_every_kind_pair_is_covered():
    for e in DATA["palette"]:
        for p in e["inputs"]:
            for kind in ("tensor", "tokens"):
                assert f"kind/{kind}->{e['type']}.{p['name']}" in CASES
    pairs = {(c["kinds"]["source"], c["kinds"]["target"], c["expect"]["allowed"]) for c in CASES.values() if "kinds" in c}
    assert pairs >= {("tensor", "tensor", True), ("tokens", "tensor", False), ("tensor", "tokens", False),
                     ("tokens", "tokens", True), ("tensor", "any", True), ("tokens", "any", True)}
    codes = {c["expect"].get("code") for c in CASES.values()}
    assert codes >= {"port_kind", "self_loop", "dangling_edge", "bad_port", "duplicate_edge", "extra_input", "cycle"}


@pytest.mark.parametrize("cid", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=PYTHON_WRONG[c]))
                                 if c in PYTHON_WRONG else c for c in CASES])
def test_python_gives_the_expected_answer(cid):
    case = CASES[cid]
    before = builder.infer_shapes(case["graph"])
    for nid, kind in case["out_kinds"].items():
        assert _out_kind(before, nid) == kind, f"{nid}: the canvas would be told {_out_kind(before, nid)}"
    after = builder.infer_shapes(_with_edge(case))
    errors = _errors(after)
    expect = case["expect"]
    if expect["allowed"]:
        assert errors == [], f"Python refuses an edge the canvas allows:\n{_show(errors)}"
        return
    code = expect["code"]
    if code == "port_kind" and MASK in case["kinds"].values():  # a padding mask where none goes, or none where one
        target = case["connect"]["target"]
        assert any(p.code == "bad_port" and p.node == target for p in errors), _show(errors)
        return
    if code == "port_kind":
        target = case["connect"]["target"]
        assert any(p.code == "shape" and p.node == target for p in errors), _show(errors)
        twin = CASES[case["twin"]]
        strip = lambda g: ([(n["id"], n["type"]) for n in g["nodes"]], g["edges"])  # noqa: E731
        assert strip(twin["graph"]) == strip(case["graph"]) and twin["connect"] == case["connect"]
        assert twin["expect"]["allowed"] and _errors(builder.infer_shapes(_with_edge(twin))) == []
        return
    seen = {(p.code, p.node, p.edge, p.message) for p in before.problems}
    new = [p for p in errors if (p.code, p.node, p.edge, p.message) not in seen]
    assert code in {p.code for p in new}, f"expected {code}; Python found:\n{_show(new)}"
