"""Training-memory estimate (builder.graph.memory): what autograd keeps, the batch that fits, full-size models."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import builder
from builder.graph.architectures import ARCHITECTURES, build
from builder.graph.compile import compile_graph, example_inputs
from builder.graph.memory import CUDA_RUNTIME, device_memory, training_memory
from builder.graph.registry import all_specs
from builder.graph.report import Budget
from builder.graph.shapes import infer_shapes, validate
from tests.fuzz_budget import budget
from tests.graph.test_layers import _graph
from tests.strategies import layer_case


def _saved_bytes(graph, batch: int, grad_inputs: bool = False) -> int:
    """Bytes of the distinct storages the forward pass saves for backward (weights excluded), measured;
    ``grad_inputs``: float inputs require gradients (as a layer inside a network sees them)."""
    model = compile_graph(graph).train()
    xs = example_inputs(model, batch)
    if grad_inputs:
        xs = [x.requires_grad_() if x.is_floating_point() else x for x in xs]
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


def _kept_per_sample(graph) -> float:
    """Bytes per sample a training forward keeps for backward (inputs that need gradients, weights excluded), from
    batches 3 and 6: a kernel's fixed workspace (oneDNN's LSTM) cancels out."""
    return (_saved_bytes(graph, 6, grad_inputs=True) - _saved_bytes(graph, 3, grad_inputs=True)) / 3


@pytest.mark.parametrize("spec", [s for s in all_specs() if s.type != "Input"], ids=lambda s: s.type)
@settings(max_examples=budget(5), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_no_layer_keeps_more_than_its_estimate(spec, data):
    """Every layer, drawn parameters (local response norm's size up to 1,024 included): what autograd keeps per
    sample is at most 1.5 times the estimate's saved part (plus 256 bytes of per-sample statistics). Before, local
    response norm kept its input padded with size - 1 channels (342 times a 3-channel input at size 1,024) and
    was counted as one input; Softsign, reflection padding, LoRA's dropout, the CPU LSTM's workspace at small
    hidden sizes (138 values per step at hidden size 1 where 20 were counted) and a recurrent layer's packed copy
    of its input under a padding mask kept more than counted too."""
    shapes, params = data.draw(layer_case(spec))
    graph = _graph(spec.type, shapes, params, masks=bool(spec.mask_inputs) and data.draw(st.booleans()))
    report = infer_shapes(graph)
    assume(report.ok)
    estimate = training_memory(report, 1).saved_per_sample
    measured = _kept_per_sample(graph)
    assert measured <= 1.5 * estimate + 256, (spec.type, shapes, params, estimate, measured)


_SDPA = {"op": "aten.scaled_dot_product_attention", "args": '[{"t": 0}, {"t": 1}, {"t": 2}]'}


@pytest.mark.parametrize(("params", "shapes"), [
    (_SDPA, [(128, 8)] * 3),  # the (T, T) attention weights: 16,384 values per sample, 3,456 were counted
    (_SDPA, [(64, 4), (256, 4), (256, 4)]),  # query 64 steps, key and value 256: (64, 256) weights
    ({"op": "aten.pow.Tensor_Tensor", "args": '[{"t": 0}, {"t": 1}]'}, [(256,), (256,)]),  # its result too
    ({"op": "aten.prod.dim_int", "args": '[{"t": 0}, -1]'}, [(16, 32)]),
    ({"op": "aten.max_pool2d_with_indices", "args": '[{"t": 0}, [2, 2]]', "outputs": 2}, [(4, 16, 16)]),
])
def test_what_an_operator_node_keeps_is_counted(params, shapes):
    """The generic Op node's estimate is what autograd saves when its call runs on meta tensors (before: only its
    input, so attention over 128 steps kept 5.6 times the estimate, over 512 steps 20 times, and a training step's
    peak per sample was 6 to 23 times the estimate's). Now within 0.6-1.5x of what a real CPU step keeps."""
    graph = _graph("Op", shapes, params)
    report = infer_shapes(graph)
    assert report.ok, report.problems
    estimate = training_memory(report, 1).saved_per_sample
    measured = _kept_per_sample(graph)
    assert 0.6 * estimate <= measured <= 1.5 * estimate, (estimate, measured)


def _step_peak_per_sample(graph, report, tmp, small: int = 16, large: int = 32) -> float:
    """Bytes per sample of a CPU training step's peak (forward, backward, Adam), from the allocator's events that
    torch's profiler records at two batch sizes (the weights and fixed workspaces cancel out)."""
    from torch.profiler import ProfilerActivity, profile

    peaks = []
    for batch in (small, large):
        torch.manual_seed(0)
        model = compile_graph(graph, report=report).train()
        xs = example_inputs(model, batch)
        opt = torch.optim.Adam([*model.parameters(), torch.nn.Parameter(torch.zeros(1))])
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(*xs).square().mean().backward()
            opt.step()
        trace = tmp / f"trace{batch}.json"
        prof.export_chrome_trace(str(trace))
        mem = [e["args"] for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"]
        # the allocator's running total (it includes what was allocated before: subtracted)
        peaks.append(max(m["Total Allocated"] for m in mem) - (mem[0]["Total Allocated"] - mem[0]["Bytes"]))
    return (peaks[1] - peaks[0]) / (large - small)


@pytest.mark.parametrize("shape", [[128, 8], [2, 128, 8]], ids=["3d", "4d"])
def test_an_operator_nodes_backward_is_counted_in_the_peak(tmp_path, shape):
    """Attention as an Op node (T = 128 steps of 8 features, after a Linear so that the step has weights).
    3-d: its backward materialises the gradient of the (T, T) weights beside them; a CPU training step's peak per
    sample was 2.03 times the estimate's per-sample part (after counting what it saves), 6.2 times before that.
    4-d (2 heads): the CPU takes its fused kernel, which keeps no (T, T) weights; measured on meta's math backend the
    estimate was 4.7 times the peak. Now within 0.7-1.5x (Cost.backward; op_meta asks torch which kernel the CPU
    takes)."""
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                       {"id": "lin", "type": "Linear", "params": {"out_features": 8}},
                       {"id": "att", "type": "Op", "params": _SDPA}],
             "edges": [{"source": "x", "target": "lin"},
                       *({"source": "lin", "target": "att", "target_port": str(i)} for i in range(3))]}
    report = infer_shapes(graph)
    assert report.ok, report.problems
    estimate = training_memory(report, 1, loss="reg").per_sample
    measured = _step_peak_per_sample(graph, report, tmp_path)
    assert 0.7 * estimate <= measured <= 1.5 * estimate, (estimate, measured)


@pytest.mark.parametrize("params", [
    {"op": "aten.erf", "args": '[{"t": 0}]'},  # exp(-x²): pow, neg, exp and two products alive together
    {"op": "aten.pow.Tensor_Scalar", "args": '[{"t": 0}, 3]'},  # 3 x²: pow and two products
], ids=["erf", "pow"])
def test_an_operator_backwards_temporaries_are_counted_in_the_peak(tmp_path, params):
    """An Op node's backward formula keeps its temporaries until the formula ends (erf's: five tensors of its
    input's size). The estimate counted none of them: a CPU training step's peak per sample was 1.40 (erf) and 1.20
    (pow) times the estimate's per-sample part, under. Now the backward runs on meta under a dispatch mode that
    follows the storages it creates (op_meta._backward_peak), and the estimate is an upper bound within 1.3x."""
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [16, 64]}},
                       {"id": "lin", "type": "Linear", "params": {"out_features": 64}},
                       {"id": "op", "type": "Op", "params": {"kwargs": "{}", **params}}],
             "edges": [{"source": "x", "target": "lin"}, {"source": "lin", "target": "op"}]}
    report = infer_shapes(graph)
    assert report.ok, report.problems
    estimate = training_memory(report, 1, loss="reg").per_sample
    measured = _step_peak_per_sample(graph, report, tmp_path)
    assert estimate / 1.3 <= measured <= estimate, (estimate, measured)


def _conv_chain(kind: str, shape: list[int], channels: list[int], **params) -> dict:
    """Input → convolution → ReLU → convolution … with the given output channels."""
    nodes, edges, prev = [{"id": "x", "type": "Input", "params": {"shape": shape}}], [], "x"
    for i, c in enumerate(channels):
        if i:
            nodes.append({"id": f"r{i}", "type": "ReLU", "params": {}})
            edges.append({"source": prev, "target": f"r{i}"})
            prev = f"r{i}"
        nodes.append({"id": f"c{i}", "type": kind, "params": {"out_channels": c, **params}})
        edges.append({"source": prev, "target": f"c{i}"})
        prev = f"c{i}"
    return {"nodes": nodes, "edges": edges}


@pytest.mark.parametrize(("kind", "shape", "channels", "params"), [
    ("Conv2d", [1, 64, 64], [1], {"kernel_size": 3}),
    ("Conv1d", [1, 4096], [1], {"kernel_size": 3}),
    ("Conv2d", [1, 32, 32], [4, 4], {"kernel_size": 3, "padding": 1}),
    ("Conv2d", [3, 32, 32], [5, 17], {"kernel_size": 3, "padding": 1}),
    ("Conv2d", [2, 32, 32], [2, 2], {"kernel_size": 3, "padding": 1, "groups": 2}),
    ("ConvTranspose2d", [4, 16, 16], [4, 4], {"kernel_size": 2, "stride": 2}),
    ("Conv2d", [16, 32, 32], [16], {"kernel_size": 3, "padding": 1}),
], ids=["conv2d-1", "conv1d-1", "chain-1-4-4", "chain-3-5-17", "grouped", "transposed", "conv2d-16"])
def test_a_cpu_convolutions_padded_channels_are_counted(tmp_path, kind, shape, channels, params):
    """oneDNN (torch's CPU convolution for training batches) pads the channels of its backward's copies to a
    multiple of 16. The estimate counted none of it: a CPU step's peak per sample was 4.36× the estimate for a 1→1
    Conv2d at 64×64, 4.50× for a 1→1 Conv1d at 4,096 steps, 2.20-2.59× for chains of 4 channels, under the ×1.5
    the budget allows. Now counted on the convolution's spec (Cost.backward): at most 1.5× under, and an upper
    bound that over-counts no more than 4× (a transposed convolution with few channels copies less)."""
    graph = _conv_chain(kind, shape, channels, **params)
    report = infer_shapes(graph)
    assert report.ok, report.problems
    estimate = training_memory(report, 1, loss="reg").per_sample
    measured = _step_peak_per_sample(graph, report, tmp_path)
    assert estimate / 4 <= measured <= 1.5 * estimate, (estimate, measured)


@pytest.mark.parametrize(("op", "shape", "kernel"), [
    ("aten.conv2d", [1, 64, 64], [1, 1, 3, 3]), ("aten.conv1d", [1, 4096], [1, 1, 3]),
    ("aten.conv2d", [4, 32, 32], [4, 4, 3, 3]), ("aten.conv_transpose2d.input", [4, 16, 16], [4, 4, 2, 2]),
], ids=["conv2d", "conv1d", "conv2d-4", "transposed"])
def test_an_operator_convolutions_padded_channels_are_counted(tmp_path, op, shape, kernel):
    """The same padding for an Op node's convolution, whose backward the estimate measures on meta (no oneDNN
    there): a CPU step's peak per sample was 4.30× the estimate for ``aten.conv2d`` 1→1 at 64×64, 4.50× for
    ``aten.conv1d`` 1→1 at 4,096 steps. Now within 1.5× under (an upper bound where oneDNN copies less)."""
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                       {"id": "t", "type": "Tanh", "params": {}},
                       {"id": "o", "type": "Op", "params": {"op": op, "args": '[{"t": 0}, {"w": "k"}]', "kwargs": "{}",
                                                            "weights": json.dumps({"k": kernel}), "buffers": "{}",
                                                            "outputs": 1}}],
             "edges": [{"source": "x", "target": "t"}, {"source": "t", "target": "o"}]}
    report = infer_shapes(graph)
    assert report.ok, report.problems
    estimate = training_memory(report, 1, loss="reg").per_sample
    measured = _step_peak_per_sample(graph, report, tmp_path)
    assert estimate / 4 <= measured <= 1.5 * estimate, (estimate, measured)


@pytest.mark.parametrize(("layer", "shape", "params", "masks"), [
    ("LocalResponseNorm", (3, 8, 8), {"size": 1024}, False),  # the squared input padded to 1,026 channels
    ("LSTM", (20, 256), {"hidden_size": 1}, False),  # oneDNN's workspace as wide as the input: 1,944 values per step
    ("GRU", (20, 256), {"hidden_size": 1}, True),  # under a padding mask: the packed copy of the input
    ("LoRA", (16, 64), {"out_features": 8, "rank": 4, "dropout": 0.1, "train_base": True}, False),
    ("Mean", (256, 64), {"dim": 1}, True),  # under a padding mask: its input and the mask's weights (nothing counted)
])
def test_what_a_layer_keeps_beyond_its_input_is_counted(layer, shape, params, masks):
    """Measured cases the drawn sizes rarely reach, each far under the old estimate: local response norm (size 1,024
    on a 3×64×64 batch of 64: estimated 12 MiB, the training step raised the process's peak by 1.0 GiB), the CPU
    LSTM with a wide input and a small hidden size (counted 20 values per step), a GRU with a padding mask (2 inputs
    kept, 1 counted), LoRA with dropout and a trained base (3 inputs kept, 1 counted). Now within 0.8-1.5x."""
    graph = _graph(layer, [shape], params, masks=masks)
    report = infer_shapes(graph)
    assert report.ok, report.problems
    estimate = training_memory(report, 1).saved_per_sample
    measured = _kept_per_sample(graph)
    assert 0.8 * measured <= estimate <= 1.5 * measured, (estimate, measured)


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


def _cpu_peak(fn) -> int:
    """Peak bytes torch's CPU allocator held beyond what was held before, while ``fn`` runs (profiler events)."""
    import json
    import tempfile
    from pathlib import Path

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as d:
        prof.export_chrome_trace(str(Path(d) / "t.json"))
        mem = [e["args"] for e in json.loads((Path(d) / "t.json").read_text())["traceEvents"]
               if e.get("name") == "[memory]"]
    return max(m["Total Allocated"] for m in mem) - (mem[0]["Total Allocated"] - mem[0]["Bytes"])


def _gpt(seq: int, vocab: int):
    g = builder.load_template("gpt").graph
    for n in g.nodes:
        if n.id == "tokens":
            n.params.update(shape=[seq], vocab_size=vocab)
        elif n.id == "pos":
            n.params["max_len"] = seq
        elif n.id == "lm_head":
            n.params["out_features"] = vocab
    return g


def _measured_step(model, xs, loss_fn, teacher=None) -> int:
    """Bytes of one AdamW step as the trainer takes it (the optimizer's state made first, then measured)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        if teacher is not None:
            with torch.no_grad():
                target = teacher(*xs)
        out = model(*xs)
        loss_fn(out, target if teacher is not None else None).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    held = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if teacher is not None:
        held += sum(t.numel() * t.element_size() for t in (*teacher.parameters(), *teacher.buffers()))
    return _cpu_peak(step) + held + 2 * sum(p.numel() * 4 for p in model.parameters())  # + AdamW's two states


@settings(max_examples=budget(4), deadline=None)
@given(seq=st.integers(16, 64), vocab=st.integers(2000, 8000), batch=st.integers(2, 4))
def test_a_language_models_loss_is_counted(seq, vocab, batch):
    """Cross-entropy over (B·T, V) logits keeps a log-softmax and two gradients of that size beside the logits:
    gpt at 256 tokens, vocabulary 50,000, batch 8: estimated 458 MiB, measured 1,655 MiB; with the loss 1,630."""
    from builder.training.metrics import make_loss

    graph = _gpt(seq, vocab)
    report = infer_shapes(graph)
    torch.manual_seed(0)
    model = compile_graph(graph, report=report).train()
    x = torch.randint(0, vocab, (batch, seq))
    y = torch.randint(0, vocab, (batch, seq))
    tok = make_loss("tok", "next_token")
    measured = _measured_step(model, [x], lambda out, _t: tok(out, x, y))
    est = training_memory(report, batch, "adamw", loss="tok").peak
    # within 15 % and 2 MiB: a small step's fixed costs (the allocator's, autograd's) are no part of a size rule
    # (seq 23, vocabulary 2,000, batch 4: 7.19 MB estimated of 8.64 measured)
    assert 0.85 * measured - 2 * 2**20 <= est <= 1.3 * measured, (est, measured)


def test_a_distillation_teacher_is_counted():
    """The teacher's weights stay on the device and its forward runs each step without gradients: a ResNet-18
    teacher (11.2 M parameters, 45 MiB) beside the cnn template's student was left out of a job's estimate."""
    from builder.training.metrics import make_loss

    graph = builder.load_template("cnn").graph
    graph.nodes[0].params["shape"] = [3, 32, 32]
    teacher_graph = build("resnet18", input_shape=(3, 32, 32), classes=10).graph
    student, teacher = infer_shapes(graph), infer_shapes(teacher_graph)
    torch.manual_seed(0)
    model = compile_graph(graph, report=student).train()
    frozen = compile_graph(teacher_graph, report=teacher).eval()
    x = torch.rand(16, 3, 32, 32)
    mse = make_loss("reg", "regression")
    measured = _measured_step(model, [x], lambda out, t: mse(out, x, t), teacher=frozen)
    alone = training_memory(student, 16, "adamw", loss="reg").peak
    est = training_memory(student, 16, "adamw", loss="reg", frozen=teacher).peak
    assert alone < 0.5 * measured and 0.85 * measured <= est <= 1.3 * measured, (alone, est, measured)
