"""Memory layout: every spec's ``strides`` claim holds in torch, and layers with ``contiguous_inputs`` get
contiguous tensors in the compiled forward (and the exported ``.py``) whatever comes before them.

Why: torch 2.13's GroupNorm backward can crash the process on a permuted input (issue 21), and BatchNorm2d's
backward returns wrong input gradients for channels-last-like strides (found by the differential fuzz below:
``x = randn(B, 5, 2, 1).permute(0, 2, 1, 3)``)."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder import compile_graph, export_python, infer_shapes
from builder.graph.registry import all_specs
from tests.strategies import layer_case

SPECS = [s for s in all_specs() if s.type not in ("Input",)]


def _single_layer(spec, shapes, params) -> dict:
    nodes = [{"id": f"x{k}", "type": "Input", "params": {"shape": list(s)}} for k, s in enumerate(shapes)]
    if spec.type == "Embedding":
        nodes[0]["params"].update(modality="tokens", vocab_size=5)
    nodes.append({"id": "L", "type": spec.type, "params": params})
    return {"nodes": nodes, "edges": [{"source": f"x{k}", "target": "L"} for k in range(len(shapes))]}


def _outputs(model, xs):
    out = model(*xs)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
@given(data=st.data())
def test_layout_claims_hold(spec, data):
    """``follow``/``fresh``: contiguous inputs give contiguous outputs; ``fresh``: so do non-contiguous ones."""
    shapes, params = data.draw(layer_case(spec))
    graph = _single_layer(spec, shapes, params)
    report = infer_shapes(graph)
    if not report.ok:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = compile_graph(graph, report=report)
    xs = [torch.randint(0, 5, (3, *s)) if spec.type == "Embedding" else torch.randn(3, *s) for s in shapes]
    outs = _outputs(model, xs)
    if spec.strides in ("follow", "fresh"):
        assert all(o.is_contiguous() for o in outs), (spec.type, [o.stride() for o in outs])
    if spec.strides == "fresh" and spec.type != "Embedding":
        strided = [x.transpose(0, -1).contiguous().transpose(0, -1) for x in xs]  # same values, Fortran order
        assert all(o.is_contiguous() for o in _outputs(model, strided)), spec.type


PERMUTED_INTO = {"GroupNorm": {"num_groups": 1}, "BatchNorm1d": {}, "BatchNorm2d": {}}


@pytest.mark.parametrize("layer", sorted(PERMUTED_INTO))
def test_norms_get_contiguous_inputs_after_a_permute(layer):
    rank3 = layer == "BatchNorm2d"
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [5, 2, 1] if rank3 else [4]}},
                       {"id": "fc", "type": "Linear", "params": {"out_features": 6}},
                       {"id": "u", "type": "Unflatten", "params": {"dim": 1, "unflattened_size": [2, 3]}},
                       {"id": "p", "type": "Permute", "params": {"dims": [0, 2, 1, 3] if rank3 else [0, 2, 1]}},
                       {"id": "n", "type": layer, "params": PERMUTED_INTO[layer]}],
             "edges": [{"source": "x", "target": "p"}, {"source": "p", "target": "n"}] if rank3 else
             [{"source": "x", "target": "fc"}, {"source": "fc", "target": "u"}, {"source": "u", "target": "p"},
              {"source": "p", "target": "n"}]}
    if rank3:
        graph["nodes"] = [n for n in graph["nodes"] if n["id"] not in ("fc", "u")]
    model = compile_graph(graph)
    assert "n_contiguous = p.contiguous()" in model.code
    assert ".contiguous()" in export_python(graph)
    x = torch.randn(3, *model.layerlab_input_shapes["x"], requires_grad=True)
    w = torch.randn(3, *model.layerlab_output_shapes["n"])  # (a plain sum has zero gradient through a norm)
    (model(x) * w).sum().backward()
    grad = x.grad.clone()
    # the same computation on a contiguous copy: the gradients agree (BatchNorm2d's did not without the fix)
    x.grad = None
    n = model.get_submodule(model.layerlab_names["n"])
    pre = x.permute(0, 2, 1, 3) if rank3 else model.get_submodule("fc")(x).unflatten(1, (2, 3)).permute(0, 2, 1)
    (n(pre.contiguous()) * w).sum().backward()
    torch.testing.assert_close(grad, x.grad)


def test_no_contiguous_call_where_nothing_is_strided():
    from builder import load_template

    assert ".contiguous()" not in compile_graph(load_template("cnn").graph).code
