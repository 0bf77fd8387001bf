"""Graphs that crashed the process in torch 2.13 (found by the graph fuzzer, tests/fuzz_graphs.py): validation
refuses them with a located problem, or compile works around them (contiguous inputs: test_contiguity.py).

- MaxPool with a dilation larger than the input: a window whose taps all fall in the padding gets an argmax
  index outside the input; the backward pass writes there ("double free or corruption", SIGABRT)."""

from __future__ import annotations

import itertools

import pytest
import torch

from builder import infer_shapes
from builder.graph.layers.conv import _conv_len, _padding_only_window, empty_pool_window, pool_len

CRASHED = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [3, 1, 7]}},
                     {"id": "pool", "type": "MaxPool2d", "params": {"padding": 1, "dilation": 2}}],
           "edges": [{"source": "x", "target": "pool"}]}


def test_max_pool_windows_of_padding_only_are_refused_with_a_location():
    (problem,) = infer_shapes(CRASHED).problems
    assert problem.node == "pool" and problem.code == "shape"
    assert "covers only padding" in problem.message and "Fix: use a dilation ≤ 1" in problem.message


def test_padding_only_windows_are_exactly_those_torch_indexes_out_of_bounds():
    for size, k, s, pad, d, ceil in itertools.product(range(1, 7), range(1, 5), range(1, 4), range(3), range(1, 6),
                                                       (False, True)):
        n = pool_len(size, k, s, pad, d, ceil)
        assert n == _conv_len(size, k, s, pad, d) or ceil
        if pad * 2 > k or n < 1:
            continue  # refused by the other checks
        meta = torch.nn.functional.max_pool1d(torch.empty(1, 1, size, device="meta"), k, s, pad, d, ceil_mode=ceil)
        assert meta.shape[-1] == n, (size, k, s, pad, d, ceil)  # torch's own length, ceil_mode's window included
        brute = next((o for o in range(n) if not any(0 <= o * s - pad + j * d < size for j in range(k))), None)
        assert _padding_only_window(size, k, s, pad, d, n) == brute, (size, k, s, pad, d, ceil)
        assert (empty_pool_window([size], [k], [s], [pad], [d], ceil) is None) == (brute is None)
        if brute is None:
            _, idx = torch.nn.functional.max_pool1d(torch.randn(1, 1, size), k, s, pad, d, ceil_mode=ceil,
                                                    return_indices=True)
            assert int(idx.min()) >= 0 and int(idx.max()) < size, (size, k, s, pad, d, ceil)


@pytest.mark.parametrize("args", ['[{"t": 0}, [0, 0]]', '[{"t": 0}, [2, 2], [0, 0]]', '[{"t": 0}, [2, 2], [1, 1], [-1, 0]]',
                                  '[{"t": 0}, [2, 2], [1, 1], [0, 0], [0, 1]]'])
def test_an_op_nodes_max_pooling_with_a_zero_window_is_a_located_problem(args):
    """A kernel or stride of 0 in an Op node's aten.max_pool2d raised ZeroDivisionError out of validate (the
    padding-only window check divided by the stride; found by the deep graph fuzzer)."""
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [3, 6, 6]}},
                       {"id": "pool", "type": "Op", "params": {"op": "aten.max_pool2d", "args": args}}],
             "edges": [{"source": "x", "target": "pool", "target_port": "0"}]}
    problems = [p for p in infer_shapes(graph).problems if p.node == "pool"]
    assert problems and problems[0].message.startswith("aten.max_pool2d"), problems


@pytest.mark.parametrize(("op", "shape", "args", "outputs"), [
    ("aten.max_pool1d", [2, 1], '[{"t": 0}, [2], [1], [1], [2]]', 1),
    ("aten.max_pool2d", [2, 1, 7], '[{"t": 0}, [2, 2], [1, 1], [1, 1], [2, 2], true]', 1),
    ("aten.max_pool2d_with_indices", [3, 1, 7], '[{"t": 0}, [2, 2], [1, 1], [1, 1], [2, 2]]', 2),
    ("aten.max_pool3d", [3, 1, 1, 7], '[{"t": 0}, [2, 2, 2], [1, 1, 1], [1, 1, 1], [2, 2, 2]]', 1),
])
def test_an_op_nodes_max_pooling_with_a_window_of_padding_only_is_refused_as_the_layer_is(op, shape, args, outputs):
    """The MaxPool layers refused these windows; an Op node's aten.max_pool* passed validate, and its backward
    aborted the process (found by an audit: 34 of 3,805 pooling graphs). Both paths now share one check."""
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                       {"id": "lin", "type": "Linear", "params": {"out_features": shape[-1]}},
                       {"id": "pool", "type": "Op", "params": {"op": op, "args": args, "outputs": outputs}}],
             "edges": [{"source": "x", "target": "lin"}, {"source": "lin", "target": "pool", "target_port": "0"}]}
    problems = [p for p in infer_shapes(graph).problems if p.node == "pool"]
    assert problems and "covers only padding" in problems[0].message, problems
    assert problems[0].message.startswith(f"{op}: every pooling window must cover at least one input position")
