"""Every registered layer's shape rule is total: for inputs of any rank (0..5), any sizes and either kind
(float tensor or token ids) on every input port, and parameters drawn from its schema, it returns a type or
raises a ShapeError (which validation turns into a located problem); what runs after an accepted rule
(constructor arguments, parameter counts, cost, lint) never raises. And ``validate`` itself never raises."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder import infer_shapes
from builder.graph.registry import TOKENS, TensorType, all_specs
from builder.graph.shapes import _count_params, _freeze, module_ctor
from builder.graph.spec import ShapeError
from tests.fuzz_budget import budget
from tests.strategies import layer_case, param_value

SPECS = [s for s in all_specs() if s.inputs]
SIZES = st.integers(1, 6)


@st.composite
def tensor_type(draw, rank: int | None = None) -> TensorType:
    rank = draw(st.integers(0, 5)) if rank is None else rank
    shape = tuple(draw(st.lists(SIZES, min_size=rank, max_size=rank)))
    if draw(st.integers(0, 3)) == 0:
        return TensorType(shape, TOKENS, draw(st.integers(2, 9)))
    return TensorType(shape)


@st.composite
def rule_case(draw, spec):
    """Mostly a layer's valid case (tests/strategies.py) with one input port replaced by a random type (rank
    0..5, tensor or tokens, or the same shape as token ids); else random types and parameters throughout."""
    if spec.type != "Input" and draw(st.integers(0, 3)):
        shapes, raw = draw(layer_case(spec))
        ins = [TensorType(tuple(s)) for s in shapes]
        if not spec.variadic:
            ins += ins[:1] * (len(spec.inputs) - len(ins) - draw(st.integers(0, len(spec.optional_inputs))))
        i = draw(st.integers(0, len(ins) - 1))
        ins[i] = draw(st.just(TensorType(ins[i].shape, TOKENS, 5)) | tensor_type())
        params, _errors = spec.resolve_params(raw)
        return params, ins
    n = draw(st.integers(1, 4)) if spec.variadic else \
        len(spec.inputs) - draw(st.integers(0, len(spec.optional_inputs)))
    ins = [draw(tensor_type()) for _ in range(n)]
    shape = ins[0].shape or (1,)
    raw = {p.name: draw(param_value(p, shape)) for p in spec.params if p.kind != "int_list" and draw(st.booleans())}
    for p in spec.params:
        if p.kind == "int_list" and draw(st.booleans()):
            raw[p.name] = draw(st.lists(st.integers(-2, 6), min_size=1, max_size=6))
    params, _errors = spec.resolve_params(raw)
    return params, ins


def check_rule(spec, params: dict, ins: list[TensorType]) -> None:
    """The rule returns types or raises a one-line ShapeError; what runs after an accepted rule never raises."""
    try:
        out = spec.shape(params, list(ins))
    except ShapeError as e:
        assert str(e) and "\n" not in str(e)
        return
    outs = out if isinstance(out, dict) else {spec.outputs[0]: out}
    assert all(isinstance(t, TensorType) for t in outs.values())
    ctor = module_ctor(spec, params, list(ins))
    if ctor is not None:
        cls, kwargs = ctor
        _count_params(cls, tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
    if spec.cost:
        spec.cost(params, list(ins), outs)
    if spec.lint:
        spec.lint(params, list(ins))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
@settings(max_examples=budget(2), deadline=None, suppress_health_check=[HealthCheck.differing_executors])
@given(data=st.data())
def test_every_rank_and_kind_on_every_port(spec, data):
    """Exhaustive over ports × ranks 0..5 × kinds × port counts, from the defaults and a drawn valid case."""
    bases = [spec.resolve_params({})[0]]
    shapes, raw = data.draw(layer_case(spec)) if spec.type != "Input" else ([(4,)], {})
    bases.append(spec.resolve_params(raw)[0])
    valid = [TensorType(tuple(s)) for s in shapes]
    n = len(valid) if spec.variadic else len(spec.inputs)
    valid = (valid * n)[:n]
    for params in bases:
        for i in range(n):
            for rank in range(6):
                for kind in ("tensor", TOKENS):
                    t = TensorType((valid[i].shape + (3,) * 6)[:rank], kind, 5 if kind == TOKENS else None)
                    for m in range(n - len(spec.optional_inputs) if not spec.variadic else 1, n + 1):
                        ins = [*valid[:i], t, *valid[i + 1:]][:max(m, i + 1)]
                        check_rule(spec, params, ins)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
@settings(max_examples=budget(40), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.differing_executors])
@given(data=st.data())
def test_shape_rules_raise_only_shape_errors(spec, data):
    params, ins = data.draw(rule_case(spec))
    check_rule(spec, params, ins)


# a graph reaching rank 0: Mean over the only feature dimension of a vector
RANK0 = [{"id": "v", "type": "Input", "params": {"shape": [4]}}, {"id": "r0", "type": "Mean", "params": {"dim": 1}}]


@settings(max_examples=budget(200), deadline=None)
@given(st.sampled_from(SPECS), st.integers(0, 2), st.sampled_from(["r0", "v", "t"]))
def test_validate_locates_problems_of_rank_0_and_token_inputs_on_every_port(spec, port_i, src):
    nodes = [*RANK0, {"id": "t", "type": "Input", "params": {"shape": [3], "modality": "tokens", "vocab_size": 5}},
             {"id": "s", "type": "Input", "params": {"shape": [3, 4]}},
             {"id": "L", "type": spec.type, "params": {}}]
    edges = [{"source": "v", "target": "r0"}]
    ports = spec.inputs if not spec.variadic else ("0", "1")
    for i, port in enumerate(ports):
        edges.append({"source": src if i == min(port_i, len(ports) - 1) else "s", "target": "L", "target_port": port})
    report = infer_shapes({"nodes": nodes, "edges": edges})  # never raises
    for p in report.problems:
        assert p.node is not None or p.edge is not None, p


def test_mha_key_of_rank_0_or_token_ids_is_a_located_problem():
    for src, says in (("r0", "key must be (B, S, 4)"), ("t", "tokens must go through an Embedding")):
        graph = {"nodes": [*RANK0, {"id": "t", "type": "Input", "params": {"shape": [3], "modality": "tokens",
                                                                          "vocab_size": 5}},
                           {"id": "s", "type": "Input", "params": {"shape": [3, 4]}},
                           {"id": "mha", "type": "MultiheadAttention", "params": {"num_heads": 2}}],
                 "edges": [{"source": "v", "target": "r0"}, {"source": "s", "target": "mha", "target_port": "query"},
                           {"source": src, "target": "mha", "target_port": "key"}]}
        (problem,) = [p for p in infer_shapes(graph).problems if p.severity == "error"]
        assert problem.node == "mha" and problem.code == "shape" and says in problem.message
        assert f"edge from `{src}`" in problem.message


def test_a_rule_that_raises_anything_else_still_gives_a_located_problem(monkeypatch):
    from builder.graph.registry import get_spec

    def broken(p, ins):
        return ins[5]

    monkeypatch.setattr(get_spec("ReLU"), "shape", broken)
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}}, {"id": "r", "type": "ReLU"}],
             "edges": [{"source": "x", "target": "r"}]}
    (problem,) = infer_shapes(graph).problems
    assert problem.node == "r" and "IndexError" in problem.message and "Fix:" in problem.message
