"""Training-memory estimate (builder.graph.memory): what autograd keeps, the batch that fits, full-size models."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import builder
from builder.graph.architectures import ARCHITECTURES, build
from builder.graph.compile import compile_graph, example_inputs
from builder.graph.memory import CUDA_RUNTIME, device_memory, training_memory
from builder.graph.report import Budget
from builder.graph.shapes import infer_shapes, validate
from tests.fuzz_budget import budget


def _saved_bytes(graph, batch: int) -> int:
    """Bytes of the distinct storages the forward pass saves for backward (weights excluded), measured."""
    model = compile_graph(graph).train()
    xs = example_inputs(model, batch)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in weights:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(*xs)
    return sum(seen.values())


def test_full_size_architectures_validate_with_default_settings():
    """ResNet-18 and VGG-11 at 3×224×224 were refused ("11.2 GiB above the budget of 8.0 GiB")."""
    expected = {"resnet18": 11_689_512, "vgg11": 132_863_336}
    for name, params in expected.items():
        report = infer_shapes(build(name).graph)
        assert report.ok, [p.message for p in report.problems]
        assert report.total_params == params
        assert not [p for p in report.problems if p.code == "budget"]


def test_estimate_follows_what_autograd_keeps():
    """The saved part of the estimate equals the measured saved tensors (within 15 %) for every template and a
    small-image ResNet-18: convolutions keep no im2col copy, ReLU's output is kept once, views keep nothing."""
    graphs = {t["name"]: builder.load_template(t["name"]).graph for t in builder.list_templates()}
    graphs["resnet18@32"] = build("resnet18", input_shape=(3, 32, 32), classes=10).graph
    batch = 4
    for name, graph in graphs.items():
        report = infer_shapes(graph)
        est = training_memory(report, batch).saved_per_sample * batch
        measured = _saved_bytes(graph, batch)
        assert 0.85 * measured <= est <= 1.5 * measured + 64 * 1024, (name, est, measured)


@settings(max_examples=budget(30), deadline=None)
@given(limit_mib=st.integers(1, 64 * 1024), name=st.sampled_from(sorted(ARCHITECTURES)),
       device=st.sampled_from(["cpu", "cuda"]))
def test_fitting_batch_is_the_largest_that_fits(limit_mib, name, device):
    est = training_memory(infer_shapes(build(name).graph), 64, device=device)
    limit = limit_mib * 2**20
    fits = est.fitting_batch(limit)
    if fits == 0:
        assert est.peak_at(1) > limit
    else:
        assert est.peak_at(fits) <= limit < est.peak_at(fits + 1)


def test_devices_and_optimizers():
    report = infer_shapes(build("lstm", seq_len=32, vocab=100, hidden=64).graph)
    cpu, gpu = training_memory(report, 8), training_memory(report, 8, device="cuda:0")
    assert gpu.runtime == CUDA_RUNTIME and cpu.runtime == 0
    assert gpu.device == "cuda"
    # cuDNN keeps fewer values per LSTM step than torch's CPU kernels; the CUDA factor applies on top
    assert gpu.saved_per_sample < cpu.saved_per_sample * 1.6
    sgd = training_memory(report, 8, optimizer="sgd")
    assert sgd.optimizer == cpu.optimizer // 2 and sgd.step_temporaries == 0
    assert device_memory("cpu") > 0 and device_memory("cuda:99") == device_memory("cpu")


def test_budget_follows_the_batch_size_and_device():
    graph = build("resnet18").graph
    small = Budget(max_activation_bytes=2 * 2**30, batch_size=8)
    assert not validate(graph, small)
    (p,) = validate(graph, Budget(max_activation_bytes=2 * 2**30, batch_size=256))
    assert p.severity == "warning" and "batch size of at most" in p.message
