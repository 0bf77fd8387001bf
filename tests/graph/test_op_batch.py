"""An ``Op`` call whose arguments depend on the batch (builder/graph/layers/op_batch.py): the shape rule tries
batches of 2, 3 and 1, so ``aten.group_norm`` with ``num_groups`` = the batch size over 6 channels, or
``aten.slice`` of the batch to 3, validated and then failed (or dropped samples) at a batch of 4 (graph fuzzer,
``make fuzz``). What validation accepts computes each sample on its own at any batch size."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder import compile_graph, infer_shapes, load_project
from tests.fuzz_budget import budget

T0 = {"t": 0}
T1 = {"t": 1}
B = {"b": 1}

#: (operator, args, input shape without the batch): each validated before, and failed or changed at batch 4+
TIED = {
    "group_norm_groups_of_the_batch": ("aten.group_norm", [T0, B], (6, 4)),
    "roll_by_the_batch": ("aten.roll", [T0, [B], [1]], (6,)),
    "add_the_batch": ("aten.add", [T0, B], (6,)),
    "narrow_length_of_the_batch_along_features": ("aten.narrow", [T0, 1, 0, B], (6,)),
    "view_with_the_batch_second": ("aten.view", [T0, [-1, B]], (6,)),
    "slice_the_batch_to_3": ("aten.slice.Tensor", [T0, 0, 0, 3], (6,)),
    "slice_the_last_3_samples": ("aten.slice.Tensor", [T0, 0, -3], (6,)),
    "split_the_batch_by_3": ("aten.split.Tensor", [T0, 3, 0], (6,)),
    "roll_the_batch": ("aten.roll", [T0, [1], [0]], (6,)),
    "roll_flattened": ("aten.roll", [T0, [1]], (6,)),
    "slice_the_batch_negative_dim": ("aten.slice.Tensor", [T0, -2, -3], (6,)),
    "softmax_over_the_batch": ("aten.softmax.int", [T0, 0], (6,)),
    "cumsum_over_the_batch": ("aten.cumsum", [T0, -2], (6,)),
    "flip_the_batch": ("aten.flip", [T0, [0]], (6,)),
    "one_chunk_of_the_batch": ("aten.chunk", [T0, 1], (6,)),  # its ONNX file took one batch size (deep fuzzer)
    # the batch read as a matrix's rows or a sequence's steps (validated before; sample 0 of a tril kept 1 value,
    # sample 5 all 6; attention and the einsum mixed every sample with the others of its batch)
    "tril_of_the_batch_as_rows": ("aten.tril", [T0], (6,)),
    "triu_of_the_batch_as_rows": ("aten.triu", [T0, 1], (6,)),
    "attention_over_the_batch": ("aten.scaled_dot_product_attention", [T0, T0, T0], (6,)),
    "einsum_summing_over_the_batch": ("aten.einsum", ["bi,ci->bi", [T0, T0]], (6,)),
    "einsum_batch_not_first_in_an_input": ("aten.einsum", ["bi,ib->bi", [T0, T0]], (6, 6)),
    # (B, L, F) queries over (B, F) keys and values: each sample attended to every sample's key (validated before)
    "attention_over_the_batch_as_keys": ("aten.scaled_dot_product_attention", [T0, T1, T1], ((2, 4), (4,))),
}
#: batch-independent calls naming the batch or dim 0 that stay valid
SOUND = {
    "view_batch_first": ("aten.view", [T0, [B, 3, 2]], (6,)),
    "reshape_batch_first": ("aten.reshape", [T0, [B, -1]], (2, 3)),
    "zeros_of_the_batch": ("aten.zeros", [[B, 4]], (6,)),
    "new_full_of_the_batch": ("aten.new_full", [T0, [B, 2], 1.5], (6,)),
    "whole_slice_of_the_batch": ("aten.slice.Tensor", [T0, 0, 0, 1 << 62], (6,)),
    "slice_of_features": ("aten.slice.Tensor", [T0, 1, 1, 4], (6,)),
    "group_norm_fixed_groups": ("aten.group_norm", [T0, 3], (6, 4)),
    "roll_features": ("aten.roll", [T0, [2], [-1]], (6,)),
    "softmax_over_features": ("aten.softmax.int", [T0, 1], (6,)),
    "whole_slice_no_bounds": ("aten.slice.Tensor", [T0], (6,)),
    "narrow_the_whole_batch": ("aten.narrow", [T0, 0, 0, B], (6,)),  # refused before though sound (deep fuzzer)
    "native_group_norm_of_the_batch": ("aten.native_group_norm", [T0, None, None, B, 4, 3, 2, 1e-5], (4, 3), 3),
    "tril_of_each_samples_matrix": ("aten.tril", [T0], (4, 4)),
    "attention_over_each_samples_steps": ("aten.scaled_dot_product_attention", [T0, T0, T0], (5, 4)),
    "einsum_outer_product_per_sample": ("aten.einsum", ["bi,bj->bij", [T0, T0]], (3,)),
    "einsum_ellipsis_dot_per_sample": ("aten.einsum", ["...i,...i->...", [T0, T0]], (2, 3)),
    "einsum_implicit_output_per_sample": ("aten.einsum", ["bij", [T0]], (2, 3)),
    "attention_over_each_samples_keys": ("aten.scaled_dot_product_attention", [T0, T1, T1], ((2, 4), (3, 4))),
}


def _shapes(shape: tuple) -> tuple:
    """A case's input shapes (without the batch): one shape, or a tuple of them for a call of several inputs."""
    return shape if shape and isinstance(shape[0], tuple) else (shape,)


def _project(op: str, args: list, shape: tuple, outputs: int = 1):
    shapes = _shapes(shape)
    nodes = [{"id": f"x{i}" if i else "x", "type": "Input", "params": {"shape": list(s)}} for i, s in enumerate(shapes)]
    nodes.append({"id": "op", "type": "Op", "params": {"op": op, "args": json.dumps(args), "outputs": outputs}})
    edges = [{"source": f"x{i}" if i else "x", "target": "op", "target_port": str(i)} for i in range(len(shapes))]
    return load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {"nodes": nodes, "edges": edges}}))


@pytest.mark.parametrize("case", sorted(TIED))
def test_an_argument_tied_to_the_batch_is_a_located_problem(case):
    report = infer_shapes(_project(*TIED[case]).graph)
    assert not report.ok
    (problem,) = report.problems
    assert problem.node == "op", problem
    assert "batch" in problem.message and "received:" in problem.message and "Fix:" in problem.message, problem


@functools.cache
def _model(case: str):
    op, args, shape, *outputs = {**TIED, **SOUND}[case]
    project = _project(op, args, shape, *outputs)
    report = infer_shapes(project.graph)
    if not report.ok:
        return None, shape
    torch.manual_seed(0)
    return compile_graph(project.graph, report=report).eval(), shape


@pytest.mark.parametrize("case", sorted(SOUND))
def test_the_batch_first_in_a_shape_or_a_whole_batch_stays_valid(case):
    assert _model(case)[0] is not None


@settings(max_examples=budget(40), deadline=None)
@given(case=st.sampled_from(sorted({**TIED, **SOUND})), batch=st.integers(1, 70))
def test_what_validates_computes_each_sample_on_its_own_at_any_batch_size(case, batch):
    """An accepted call runs at any batch size, and each sample's result is the one it has alone."""
    model, shape = _model(case)
    if model is None:
        return
    g = torch.Generator().manual_seed(batch)
    xs = [torch.randn(batch, *s, generator=g) for s in _shapes(shape)]
    with torch.no_grad():
        y = model(*xs)
        assert y.shape[0] == batch, (case, batch, tuple(y.shape))
        for i in {0, batch - 1}:
            torch.testing.assert_close(y[i:i + 1], model(*(x[i:i + 1] for x in xs)))
