"""builder.graph.cost: multiply-adds per node against torch's own FlopCounterMode (FLOPs = 2 x MACs).

FlopCounterMode sees the matrix products torch dispatches; two CPU kernels hide theirs from it, so the
reference runs the model the way that exposes them: attention with the math backend of
scaled_dot_product_attention (bmm), and recurrent layers unrolled into their per-step F.linear calls.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import builder
from builder.cli.main import main as cli_main
from builder.graph.compile import compile_graph, example_inputs
from builder.graph.cost import module_macs, node_costs, total_macs
from tests.fuzz_budget import budget


def _counted_macs(fn) -> int:
    fc = FlopCounterMode(display=False)
    with fc, sdpa_kernel(SDPBackend.MATH):
        fn()
    return fc.get_total_flops() // 2


def _unrolled_rnn_macs(m: nn.RNNBase, x: torch.Tensor) -> int:
    """An RNN/LSTM/GRU's matrix products, step by step with its own weights (batch_first input)."""
    dirs = 2 if m.bidirectional else 1

    def run() -> None:
        seq = x
        for layer in range(m.num_layers):
            outs = []
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(m, f"weight_ih{sfx}"), getattr(m, f"weight_hh{sfx}")
                h = seq.new_zeros(seq.shape[0], m.hidden_size)
                steps = []
                for t in range(seq.shape[1]):
                    g = F.linear(seq[:, t], w_ih) + F.linear(h, w_hh)
                    h = g[:, : m.hidden_size].tanh()  # the values do not matter, only the products
                    steps.append(h)
                outs.append(torch.stack(steps, 1))
            seq = torch.cat(outs, -1)

    return _counted_macs(run)


@pytest.mark.parametrize("name", [t["name"] for t in builder.list_templates()])
def test_every_template_matches_torchs_flop_counter(name: str):
    graph = builder.load_template(name).graph
    model = compile_graph(graph).train()  # train mode: no fused inference fast path hides the products
    xs = example_inputs(model, batch_size=2)  # 2: BatchNorm1d in train mode (the gan's generator) needs two samples
    rnns = {n: m for n, m in model.named_modules() if isinstance(m, nn.RNNBase)}
    rnn_inputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, n=n: rnn_inputs.__setitem__(n, args[0]))
             for n, m in rnns.items()]
    counted = _counted_macs(lambda: model(*xs))
    for h in hooks:
        h.remove()
    counted += sum(_unrolled_rnn_macs(m, rnn_inputs[n]) for n, m in rnns.items())  # hidden inside aten.lstm
    assert 2 * total_macs(node_costs(graph)) == counted  # node_costs counts one sample


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "vit_tiny"])
def test_standard_architectures_at_224_match_torchs_flop_counter(name: str):
    """ResNet-18 (1.814 G multiply-adds per image), VGG-11 and ViT-tiny at 3x224x224, counted on the meta device."""
    from builder.graph import architectures

    graph = architectures.build(name).graph
    model = compile_graph(graph).train().to("meta")
    xs = [x.to("meta") for x in example_inputs(model, batch_size=2)]
    assert 2 * total_macs(node_costs(graph)) == _counted_macs(lambda: model(*xs))  # two samples


def test_costs_come_from_one_analysis_and_list_analysed_nodes():
    graph = builder.load_template("cnn").graph
    report = builder.infer_shapes(graph)
    costs = node_costs(report)
    assert [c.node for c in costs] == report.order
    assert {c.node: c.params for c in costs} == {n: report.nodes[n].num_params for n in report.order}
    assert all(c.activation_bytes > 0 for c in costs)


@settings(max_examples=budget(25), deadline=None)
@given(cin=st.integers(1, 6), cout_mult=st.integers(1, 3), groups=st.sampled_from([1, 2]), k=st.integers(1, 3),
       stride=st.integers(1, 2), pad=st.integers(0, 1), size=st.integers(3, 9), transposed=st.booleans())
def test_convolutions_match_the_counter(cin, cout_mult, groups, k, stride, pad, size, transposed):
    cin, cout = cin * groups, cout_mult * groups
    kw = {"in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": stride, "padding": pad,
          "groups": groups}
    mod = (nn.ConvTranspose2d if transposed else nn.Conv2d)(**kw)
    x = torch.randn(1, cin, size, size)
    with torch.no_grad():
        out = mod(x)
    cls = "ConvTranspose2d" if transposed else "Conv2d"
    assert module_macs(cls, kw, [x.shape[1:]], out.shape[1:]) == _counted_macs(lambda: mod(x))


def test_summary_prints_and_reports_multiply_adds(tmp_path, capsys):
    path = tmp_path / "cnn.json"
    path.write_text(builder.load_template("cnn").model_dump_json())
    assert cli_main(["summary", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total_macs"] == sum(n["macs"] for n in out["nodes"]) == 91_776
    assert cli_main(["summary", str(path)]) == 0
    assert "multiply-adds per sample: 91,776" in capsys.readouterr().out


def test_canvas_annotations_carry_multiply_adds():
    from builder.graph.cost import canvas_annotations

    graph = builder.load_template("cnn").graph
    ann = canvas_annotations(graph, builder.infer_shapes(graph))
    assert ann["nodes"]["conv1"]["macs"] == 9_216 and ann["nodes"]["relu1"]["macs"] == 0
    assert ann["summary"]["macs"] == "91.8k" and ann["summary"]["total_params"] == 13_706
    assert set(ann["edges"]) == {e.key for e in graph.edges}


def test_cost_overlay_values_and_shares_for_the_canvas():
    from builder.graph.cost import canvas_annotations, node_costs

    graph = builder.load_template("cnn").graph
    report = builder.infer_shapes(graph)
    ann = canvas_annotations(graph, report)
    assert ann["summary"]["cost_modes"] == ["params", "macs", "memory"]  # no latency measured
    conv1 = ann["nodes"]["conv1"]["cost"]
    assert conv1["macs"] == ["9.22k", round(9_216 / 91_776, 4)]
    assert conv1["params"][0] == "160" and ann["nodes"]["relu1"]["cost"]["macs"] == ["0", 0.0]
    costs = node_costs(report)
    for mode, field in (("params", "params"), ("macs", "macs"), ("memory", "activation_bytes")):
        total = sum(getattr(c, field) for c in costs)
        shares = [ann["nodes"][c.node]["cost"][mode][1] for c in costs]
        assert abs(sum(shares) - 1) < 1e-3 and all(0 <= s <= 1 for s in shares)
        biggest = max(costs, key=lambda c: getattr(c, field))
        assert max(shares) == round(getattr(biggest, field) / total, 4)
    # measured latency per node (seconds) adds its mode; a bad value is dropped, not shown
    timed = canvas_annotations(graph, report, latency={"conv1": 0.002, "fc": 0.002, "relu1": float("nan")})
    assert timed["summary"]["cost_modes"][-1] == "latency"
    assert timed["nodes"]["conv1"]["cost"]["latency"] == ["2 ms (no spread recorded)", 0.5]  # a bare {node: s}
    assert "latency" not in timed["nodes"]["relu1"]["cost"]
