"""builder.interpret.sanity: model-parameter randomisation check and IG completeness."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from torch import nn

from builder.errors import ExplainError
from builder.interpret.sanity import (
    forward_order,
    ig_completeness,
    randomisation_check,
    spearman,
    weighted_nodes,
)

pytestmark = [pytest.mark.filterwarnings("ignore:.*require gradients:UserWarning"),
              pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")]


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = nn.ReLU()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(256, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.act2(self.conv2(self.act1(self.conv1(x))))))


class Squares(nn.Module):
    """f(x) = w * sum(x**2) + b: |input x gradient| = |2 w x**2| ranks like x**2 whatever the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((x ** 2).sum(1, keepdim=True))


@pytest.fixture
def cnn() -> CNN:
    torch.manual_seed(0)
    return CNN().eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
    assert spearman(np.array([1.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0])) == pytest.approx(1.0)


def test_layers_randomised_from_the_top(cnn, images):
    assert weighted_nodes(cnn) == ["conv1", "conv2", "fc"]
    assert forward_order(cnn, images) == ["conv1", "conv2", "fc"]
    result = randomisation_check(cnn, images, "saliency")
    assert result.layers == ["fc", "conv2", "conv1"]
    assert len(result.correlations) == 3 and result.per_sample.shape == (3, 4)
    assert all(-1.0 <= c <= 1.0 for c in result.correlations)


def test_model_is_not_modified(cnn, images):
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    randomisation_check(cnn, images, "integrated_gradients", n_steps=8)
    for k, v in cnn.state_dict().items():
        assert torch.equal(v, before[k])


def test_maps_that_track_the_weights_are_not_flagged(cnn, images):
    result = randomisation_check(cnn, images, "saliency")
    assert not result.flagged
    assert min(result.correlations) < 0.5
    assert "change" in result.message


def test_maps_that_ignore_the_weights_are_flagged():
    torch.manual_seed(0)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4))
    result = randomisation_check(Squares(), x, "input_x_gradient", target=0)
    assert result.layers == ["head"]
    assert result.correlations[0] == pytest.approx(1.0)
    assert result.flagged and "barely change" in result.message


def test_seeded_and_bounded(cnn, images):
    a = randomisation_check(cnn, images, "saliency", seed=3, max_layers=2)
    b = randomisation_check(cnn, images, "saliency", seed=3, max_layers=2)
    assert a.layers == ["fc", "conv2"] and a.correlations == b.correlations
    with pytest.raises(ExplainError, match="threshold"):
        randomisation_check(cnn, images, "saliency", threshold=0.0)
    with pytest.raises(ExplainError, match="no weights"):
        randomisation_check(nn.Sequential(nn.Flatten()), images, "saliency")


def test_ig_completeness_matches_captum_delta(cnn, images):
    result = ig_completeness(cnn, images, n_steps=50)
    with torch.no_grad():
        t = cnn(images).argmax(1)
    _, delta = IntegratedGradients(cnn).attribute(images, baselines=torch.zeros_like(images), target=t,
                                                  n_steps=50, return_convergence_delta=True)
    np.testing.assert_allclose(result.delta, delta.double().numpy(), atol=1e-5)
    np.testing.assert_allclose(result.attribution_sum - result.output_diff, result.delta, atol=1e-9)
    assert result.ok and result.max_abs_delta < 0.05
    assert result.target.tolist() == t.tolist()


def test_ig_completeness_with_blurred_baseline_and_tolerance(cnn, images):
    result = ig_completeness(cnn, images, baselines="blur", n_steps=50)
    assert result.ok
    strict = ig_completeness(cnn, images, n_steps=2, tolerance=1e-9)
    assert not strict.ok


TEMPLATES = ("mlp", "cnn", "resnet", "lstm", "transformer", "autoencoder")


@pytest.mark.parametrize("name", TEMPLATES)
def test_ig_completeness_on_templates(name):
    compile_mod = importlib.import_module("builder.graph.compile")
    templates = importlib.import_module("builder.graph.templates")
    torch.manual_seed(0)
    gm = compile_mod.compile_graph(templates.load_template(name).graph)
    x = compile_mod.example_inputs(gm, 4, seed=0)[0]
    result = ig_completeness(gm, x, n_steps=50, tolerance=0.05)
    assert result.ok, (name, result.delta, result.output_diff)


def test_sanity_check_on_a_template():
    compile_mod = importlib.import_module("builder.graph.compile")
    templates = importlib.import_module("builder.graph.templates")
    torch.manual_seed(0)
    gm = compile_mod.compile_graph(templates.load_template("transformer").graph)
    x = compile_mod.example_inputs(gm, 2, seed=0)[0]
    result = randomisation_check(gm, x, "layer_integrated_gradients", n_steps=8)
    assert result.layers[0] == "head" and result.layers[-1] == "embed"
