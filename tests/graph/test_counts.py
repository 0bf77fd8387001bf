"""builder.graph.counts: parameter and buffer counts without torch equal the real modules' counts."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from builder.graph.counts import COUNTED, module_counts
from builder.graph.registry import all_specs
from builder.graph.shapes import infer_shapes
from tests.fuzz_budget import budget
from tests.graph.test_layers import _graph
from tests.strategies import layer_case

ROOT = Path(__file__).resolve().parents[2]
BUILT = [s for s in all_specs() if s.ctor is not None]


def _torch_counts(cls: str, kwargs: dict) -> tuple[int, int]:
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = getattr(nn, cls)(**kwargs)
    return sum(p.numel() for p in m.parameters()), sum(b.numel() for b in m.buffers())


@pytest.mark.parametrize("spec", BUILT, ids=lambda s: s.type)
@settings(max_examples=budget(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_counts_match_the_module(spec, data):
    """For every drawn valid node, the computed counts are torch's, and its class needs no torch fallback."""
    shapes, params = data.draw(layer_case(spec))
    report = infer_shapes(_graph(spec.type, shapes, params))
    info = report.nodes["layer"]
    if info.status == "error":
        return
    ins = [report.nodes[f"in{i}"].type_out for i in range(len(shapes))]
    ctor = spec.ctor(info.params, ins)
    if ctor is None:
        return
    cls, kwargs = ctor
    assert cls in COUNTED, f"{spec.type} builds nn.{cls}, which builder.graph.counts does not compute"
    want = _torch_counts(cls, kwargs)
    assert module_counts(cls, kwargs) == want, (cls, kwargs)
    outside = spec.cost(info.params, ins, info.outputs).buffers if spec.cost else 0  # e.g. a position table
    assert (info.num_params, info.num_buffers - outside) == want


@pytest.mark.parametrize("cls, kwargs", [
    ("Linear", {"in_features": 7, "out_features": 3, "bias": False}),
    ("Conv2d", {"in_channels": 4, "out_channels": 6, "kernel_size": [3, 5], "groups": 2}),
    ("ConvTranspose2d", {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2, "bias": False}),
    ("BatchNorm2d", {"num_features": 5, "affine": False, "track_running_stats": False}),
    ("LayerNorm", {"normalized_shape": [3, 4], "elementwise_affine": True, "bias": False}),
    ("LSTM", {"input_size": 5, "hidden_size": 7, "num_layers": 3, "bidirectional": True, "bias": False}),
    ("GRU", {"input_size": 5, "hidden_size": 7, "num_layers": 2}),
    ("MultiheadAttention", {"embed_dim": 8, "num_heads": 2, "bias": False}),
    ("MultiheadAttention", {"embed_dim": 8, "num_heads": 2, "kdim": 4, "vdim": 6}),  # torch fallback
    ("TransformerEncoderLayer", {"d_model": 8, "nhead": 2, "dim_feedforward": 16, "bias": False}),
    ("PReLU", {"num_parameters": 3}),  # not in the table: built on the meta device
])
def test_arguments_beyond_the_registered_layers(cls, kwargs):
    assert module_counts(cls, kwargs) == _torch_counts(cls, kwargs)


def test_validation_imports_no_torch():
    """Validating and inferring shapes of every template (what the Build page does) never imports torch."""
    code = ("import sys, builder\n"
            "for t in builder.list_templates():\n"
            "    r = builder.infer_shapes(builder.load_template(t['name']).graph)\n"
            "    assert r.ok, (t['name'], r.problems)\n"
            "builder.palette()\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
