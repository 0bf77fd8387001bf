"""Graphs that crashed the process in torch 2.13 (found by the graph fuzzer, tests/fuzz_graphs.py): validation
refuses them with a located problem, or compile works around them (contiguous inputs: test_contiguity.py).

- MaxPool with a dilation larger than the input: a window whose taps all fall in the padding gets an argmax
  index outside the input; the backward pass writes there ("double free or corruption", SIGABRT)."""

from __future__ import annotations

import itertools

import torch

from builder import infer_shapes
from builder.graph.layers.conv import _conv_len, _padding_only_window

CRASHED = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [3, 1, 7]}},
                     {"id": "pool", "type": "MaxPool2d", "params": {"padding": 1, "dilation": 2}}],
           "edges": [{"source": "x", "target": "pool"}]}


def test_max_pool_windows_of_padding_only_are_refused_with_a_location():
    (problem,) = infer_shapes(CRASHED).problems
    assert problem.node == "pool" and problem.code == "shape"
    assert "covers only padding" in problem.message and "Fix: use a dilation ≤ 1" in problem.message


def test_padding_only_windows_are_exactly_those_torch_indexes_out_of_bounds():
    for size, k, s, pad, d in itertools.product(range(1, 7), range(1, 5), range(1, 4), range(3), range(1, 6)):
        n = _conv_len(size, k, s, pad, d)
        if pad * 2 > k or n < 1:
            continue  # refused by the other checks
        brute = next((o for o in range(n) if not any(0 <= o * s - pad + j * d < size for j in range(k))), None)
        assert _padding_only_window(size, k, s, pad, d, n) == brute, (size, k, s, pad, d)
        if brute is None:
            _, idx = torch.nn.functional.max_pool1d(torch.randn(1, 1, size), k, s, pad, d, return_indices=True)
            assert int(idx.min()) >= 0 and int(idx.max()) < size, (size, k, s, pad, d)
