"""builder.interpret.activations: node outputs for a sample, weight histograms."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch import nn

from builder.errors import ExplainError
from builder.interpret.activations import (
    activation_kind,
    activation_nodes,
    capture_activations,
    weight_histograms,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.act = nn.ReLU()
        self.flat = nn.Flatten()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(48, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.flat(self.act(self.conv(x)))))


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(x))
        return self.fc(out[:, -1])


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net().train()


def test_capture_shapes_values_and_cleanup(net):
    x = torch.randn(2, 1, 4, 4)
    acts = capture_activations(net, x)
    assert list(acts) == ["conv", "act", "flat", "drop", "fc"]
    assert acts["conv"].shape == (2, 3, 4, 4) and acts["fc"].shape == (2, 2)
    with torch.no_grad():
        torch.testing.assert_close(acts["conv"], net.conv(x))
        net.eval()
        torch.testing.assert_close(acts["fc"], net(x))  # eval mode: dropout off
    net.train()
    assert (acts["act"] >= 0).all()
    assert all(not m._forward_hooks for m in net.modules())


def test_capture_restores_mode_and_selects_nodes(net):
    acts = capture_activations(net, torch.randn(1, 1, 4, 4), ["conv"])
    assert list(acts) == ["conv"] and net.training
    with pytest.raises(ExplainError, match="no node"):
        capture_activations(net, torch.randn(1, 1, 4, 4), ["nope"])


def test_tuple_outputs_give_the_first_tensor():
    torch.manual_seed(0)
    acts = capture_activations(Recurrent(), torch.randint(0, 10, (2, 5)), ["lstm", "emb"])
    assert acts["lstm"].shape == (2, 5, 6) and acts["emb"].shape == (2, 5, 4)


def test_activation_kind():
    assert activation_kind(torch.zeros(3, 4, 4)) == "grid"
    assert activation_kind(torch.zeros(5, 4)) == "sequence"
    assert activation_kind(torch.zeros(7)) == "strip"


def test_weight_histograms(net):
    hists = weight_histograms(net, bins=10)
    assert [(h.node, h.param) for h in hists] == [("conv", "weight"), ("conv", "bias"), ("fc", "weight"),
                                                  ("fc", "bias")]
    for h in hists:
        p = net.get_submodule(h.node).get_parameter(h.param).detach().numpy()
        assert h.counts.sum() == p.size == h.numel and len(h.edges) == 11
        assert h.mean == pytest.approx(float(p.mean()), abs=1e-6)
        assert h.layer_type == type(net.get_submodule(h.node)).__name__
        assert np.isclose(h.edges[0], p.min()) and np.isclose(h.edges[-1], p.max())
    assert [h.node for h in weight_histograms(net, nodes=["fc"])] == ["fc", "fc"]
    with pytest.raises(ExplainError, match="bins"):
        weight_histograms(net, bins=0)


def test_template_activations():
    compile_mod = importlib.import_module("builder.graph.compile")
    templates = importlib.import_module("builder.graph.templates")
    torch.manual_seed(0)
    gm = compile_mod.compile_graph(templates.load_template("cnn").graph)
    x = compile_mod.example_inputs(gm, 1, seed=0)[0]
    acts = capture_activations(gm, x)
    assert acts["conv1"].shape[:2] == (1, 16) and activation_kind(acts["conv1"][0]) == "grid"
    assert acts["head"].shape == (1, 10)
    assert {h.node for h in weight_histograms(gm)} == {"conv1", "conv2", "fc", "head"}


def test_function_nodes_of_a_compiled_graph():
    compile_mod = importlib.import_module("builder.graph.compile")
    templates = importlib.import_module("builder.graph.templates")
    torch.manual_seed(0)
    project = templates.load_template("resnet")
    gm = compile_mod.compile_graph(project.graph)
    x = compile_mod.example_inputs(gm, 1, seed=0)[0]
    nodes = activation_nodes(gm)
    assert "b1_add" in nodes and nodes["b1_add"] == "Add" and "stem" in nodes
    acts = capture_activations(gm, x, ["image", "b1_add", "b1_relu2", "head"])
    assert set(acts) == {"image", "b1_add", "b1_relu2", "head"}
    torch.testing.assert_close(acts["image"], x)
    torch.testing.assert_close(acts["b1_relu2"], acts["b1_add"].clamp(min=0))
    with torch.no_grad():
        torch.testing.assert_close(acts["head"], gm.eval()(x))
    assert capture_activations(gm, x, ["b1_add"], graph=project.graph)["b1_add"].shape == (1, 16, 8, 8)
