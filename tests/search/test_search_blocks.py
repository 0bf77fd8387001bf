"""Search a block's repetition: block:FIRST..LAST=0..N repeats a straight run of layers or skips it (issue 23)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import GraphError
from builder.graph.edit import chain_between, repeat_chain
from builder.graph.shapes import infer_shapes
from builder.graph.templates import load_template
from builder.search import SearchSpaceError, parse_space
from tests.fuzz_budget import budget


@pytest.fixture(scope="module")
def mlp():
    return load_template("mlp")  # input -> fc1 -> act1 -> fc2 (32 -> 32) -> act2 -> head


@settings(max_examples=budget(12), deadline=None)
@given(st.integers(0, 5))
def test_repeated_block_keeps_a_valid_graph_with_n_copies(times):
    g = load_template("mlp").graph
    out = repeat_chain(g, "fc2", "act2", times)
    report = infer_shapes(out)
    assert report.ok, [p.message for p in report.problems]
    types = [n.type for n in out.nodes]
    assert types.count("Linear") == 2 + times and types.count("ReLU") == 1 + times
    assert chain_between(out, "input", "head") is not None  # still one straight run from input to head
    assert report.total_params == infer_shapes(g).total_params + (times - 1) * (32 * 32 + 32)


def test_block_dimension_applies_repeats_and_skips(mlp):
    space = parse_space(["block:fc2..act2=0..3", "fc2.out_features={32}", "lr=1e-3..1e-1:log"], mlp)
    (d, *_) = space.dims
    assert (d.kind, d.low, d.high, d.block, d.node, d.param) == ("int", 0, 3, ("fc2", "act2"), "fc2", "repeat")
    skipped, cfg = space.apply(mlp, {}, {"block:fc2..act2": 0, "lr": 0.01})
    assert {n.id for n in skipped.graph.nodes} == {"input", "fc1", "act1", "head"} and cfg == {"lr": 0.01}
    assert [(e.source, e.target) for e in skipped.graph.edges if e.target == "head"] == [("act1", "head")]
    three, _ = space.apply(mlp, {}, {"block:fc2..act2": 3})
    assert {"fc2_r2", "act2_r3"} <= {n.id for n in three.graph.nodes} and infer_shapes(three.graph).ok
    assert space.to_specs()[0] == "block:fc2..act2=0..3"
    assert parse_space(["block:fc2..act2={1,2}"], mlp).dims[0].choices == (1, 2)


def test_bad_blocks_are_located_problems(mlp):
    cases = {"block:fc1..act1=0..2": "search_block_shape",  # (B, 2) in, (B, 32) out
             "block:act2..fc2=0..2": "search_block",  # not a run from first to last
             "block:fc2..act2=0..9": "search_block",  # more than MAX_REPEAT
             "block:fc2..act2={1}": "search_block",  # one count: nothing to search
             "block:fc2..nope=0..2": "search_block"}
    for spec, code in cases.items():
        with pytest.raises(SearchSpaceError) as e:
            parse_space([spec], mlp)
        (p,) = e.value.problems
        assert p.code == code and p.node == spec[6:].split("..")[0], (spec, p)
        assert "; received:" in p.message and "Fix:" in p.message
    with pytest.raises(SearchSpaceError, match="may not share a layer; received: block:act2..act2"):
        parse_space(["block:fc2..act2=0..2", "block:act2..act2={1,2}"], mlp)
    with pytest.raises(GraphError, match="straight run of layers"):
        repeat_chain(mlp.graph, "head", "fc1", 2)
