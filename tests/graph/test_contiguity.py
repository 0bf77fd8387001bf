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
from builder.graph.compile import canonical_strides
from builder.graph.registry import all_specs
from tests.fuzz_budget import budget
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
@settings(max_examples=budget(8), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
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
    if spec.strides in ("follow", "fresh"):  # canonical strides, not only is_contiguous() (size-1 dims count)
        assert all(_canonical(o) for o in outs), (spec.type, [(o.shape, o.stride()) for o in outs])
    if spec.strides == "fresh" and spec.type != "Embedding":
        strided = [x.transpose(0, -1).contiguous().transpose(0, -1) for x in xs]  # same values, Fortran order
        assert all(_canonical(o) for o in _outputs(model, strided)), spec.type


def _canonical(t: torch.Tensor) -> bool:
    return t.numel() == 0 or t.stride() == canonical_strides(t.shape)


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
    assert "n_canonical = p.clone(memory_format = torch.contiguous_format)" in model.code
    assert "clone(memory_format = torch.contiguous_format)" in export_python(graph)
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


def test_no_copy_where_nothing_is_strided():
    from builder import load_template

    assert ".clone(" not in compile_graph(load_template("cnn").graph).code


# ------------------------------------------------------------------ canonical strides into kernels with stride bugs
STRIDE_BUGGY = sorted(s.type for s in all_specs() if s.contiguous_inputs)
_NORM_PARAMS = {"GroupNorm": {"num_groups": 1}}


def test_the_kernels_with_stride_bugs_are_declared():
    assert {"BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d"} <= \
        set(STRIDE_BUGGY)


def _strides_seen(module: torch.nn.Module, name: str, xs: list) -> list[tuple]:
    """(shape, strides) of every input the submodule ``name`` receives in one forward + backward."""
    seen: list[tuple] = []
    hook = module.get_submodule(name).register_forward_pre_hook(
        lambda m, args: seen.extend((tuple(a.shape), a.stride()) for a in args))
    try:
        out = module(*xs)
        (out * torch.randn(out.shape)).sum().backward()
    finally:
        hook.remove()
    return seen


def _permuted_into(layer: str, shape: list[int], perm: list[int]) -> dict:
    return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                      {"id": "p", "type": "Permute", "params": {"dims": [0, *perm]}},
                      {"id": "n", "type": layer, "params": _NORM_PARAMS.get(layer, {})}],
            "edges": [{"source": "x", "target": "p"}, {"source": "p", "target": "n"}]}


def _check_canonical(graph: dict) -> None:
    """The norm ``n`` gets canonical strides in the compiled model and in the exported ``.py``."""
    model = compile_graph(graph)
    name = model.layerlab_names["n"]
    x = torch.randn(2, *model.layerlab_input_shapes["x"], requires_grad=True)
    namespace: dict = {"__name__": "exported"}
    exec(compile(export_python(graph), "<exported>", "exec"), namespace)  # noqa: S102
    exported = namespace["Model"]()
    exported.load_state_dict(model.state_dict())
    for module in (model, exported):
        seen = _strides_seen(module, name, [x])
        assert seen and all(st == canonical_strides(sh) for sh, st in seen), (type(module).__name__, seen)


@pytest.mark.parametrize("layer", ["GroupNorm", "BatchNorm2d", "InstanceNorm2d", "LayerNorm"])
def test_a_size_one_dimension_moved_by_a_permute_gets_canonical_strides(layer):
    """Issue 28.4: ``.contiguous()`` keeps strides (5, 1, 1, 1) for shape (2, 1, 5, 1) (torch counts it as
    contiguous), and GroupNorm's backward crashes on them; the norm must see (5, 5, 1, 1)."""
    # (InstanceNorm and LayerNorm normalise more than one value: a trailing size of 3, 2)
    shape, perm = {"InstanceNorm2d": ([5, 1, 3], [2, 1, 3]), "LayerNorm": ([5, 1, 2], [2, 1, 3])}.get(
        layer, ([5, 1, 1], [2, 1, 3]))
    _check_canonical(_permuted_into(layer, shape, perm))


@pytest.mark.parametrize("layer", ["GroupNorm", "BatchNorm2d", "InstanceNorm2d", "LayerNorm"])
def test_a_norm_right_after_the_input_gets_canonical_strides_whatever_the_caller_hands(layer):
    """A grayscale image batch permuted from NHWC (a data split's pixels) is contiguous to torch with strides
    (HW, 1, W, 1), not (HW, HW, W, 1): a norm fed straight from the Input received it as it came (an outside
    review). The Input's value counts as strided: such a norm gets a canonical copy, in the .py export too."""
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [1, 5, 5]}},
                       {"id": "n", "type": layer, "params": _NORM_PARAMS.get(layer, {})}],
             "edges": [{"source": "x", "target": "n"}]}
    model = compile_graph(graph)
    x = torch.randn(2, 5, 5, 1).permute(0, 3, 1, 2).contiguous().requires_grad_()
    assert x.is_contiguous() and x.stride() != canonical_strides(x.shape)  # what the caller hands
    seen = _strides_seen(model, model.layerlab_names["n"], [x])
    assert seen and all(st == canonical_strides(sh) for sh, st in seen), seen
    assert "clone(memory_format = torch.contiguous_format)" in export_python(graph)


# the Op node calls no module to hook: tests/graph/test_op_checks.py checks the strides its call receives
@pytest.mark.parametrize("layer", [t for t in STRIDE_BUGGY if t != "Op"])
@settings(max_examples=budget(6), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
@given(data=st.data())
def test_every_stride_buggy_kernel_gets_canonical_strides_after_any_permute(layer, data):
    rank = data.draw(st.integers(1, 4))
    shape = data.draw(st.lists(st.sampled_from([1, 1, 2, 3]), min_size=rank, max_size=rank))
    perm = data.draw(st.permutations(list(range(1, rank + 1))))
    graph = _permuted_into(layer, shape, perm)
    if not infer_shapes(graph).ok:  # a rank or size the layer refuses
        return
    _check_canonical(graph)


@pytest.mark.parametrize("layer", ["GroupNorm", "BatchNorm2d", "LayerNorm"])
def test_the_canonical_copy_exports_to_onnx_and_matches_onnxruntime(layer):
    from builder.interchange.onnx_export import export_onnx

    rep = export_onnx(_permuted_into(layer, [5, 1, 2] if layer == "LayerNorm" else [5, 1, 1], [2, 1, 3]), None)
    assert rep.max_abs_diff < 1e-4
