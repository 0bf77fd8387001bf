"""builder.interpret.attributions: same numbers as Captum, availability with reasons, targets, baselines, sample picker."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from captum.attr import (
    DeepLift,
    FeatureAblation,
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerConductance,
    LayerGradCam,
    LayerIntegratedGradients,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from builder.errors import ExplainError, LayerLabError
from builder.interpret.attributions import (
    METHODS,
    Explanation,
    all_zero,
    available_methods,
    explain,
    explain_all,
    explain_many,
    infer_modality,
    layer_nodes,
    make_baseline,
    model_modality,
    pick_samples,
    predict,
    resolve_target,
)

pytestmark = [pytest.mark.filterwarnings("ignore:.*require gradients:UserWarning"),
              pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")]


# ------------------------------------------------------------------------------------------- fixtures


class TinyCNN(nn.Module):
    """1x8x8 -> 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))))


class TinyMLP(nn.Module):
    """4 features -> 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TinyTokens(nn.Module):
    """Embedding + learned positions + TransformerEncoderLayer + Linear, (B, 6) ids -> 3 classes."""

    def __init__(self, vocab: int = 12, d: int = 8, t: int = 6) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, t, d) * 0.1)
        self.enc = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.1, batch_first=True)
        self.fc = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.enc(self.emb(x) + self.pos[:, : x.shape[1]]).mean(1))


@pytest.fixture
def cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture
def mlp() -> TinyMLP:
    torch.manual_seed(0)
    return TinyMLP().eval()


@pytest.fixture
def tok() -> TinyTokens:
    torch.manual_seed(0)
    return TinyTokens().eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def rows() -> torch.Tensor:
    return torch.randn(5, 4, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(1, 12, (2, 6), generator=torch.Generator().manual_seed(3))


def _pred(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


# ------------------------------------------------------------------------------------ same as Captum


def test_saliency_input_x_gradient_match_captum(cnn, images):
    t = _pred(cnn, images)
    torch.testing.assert_close(explain(cnn, images, "saliency").attributions,
                               Saliency(cnn).attribute(images, target=t))
    torch.testing.assert_close(explain(cnn, images, "input_x_gradient").attributions,
                               InputXGradient(cnn).attribute(images, target=t))


def test_integrated_gradients_matches_captum_with_delta(cnn, images):
    t = _pred(cnn, images)
    exp = explain(cnn, images, "integrated_gradients", n_steps=20)
    attr, delta = IntegratedGradients(cnn).attribute(images, baselines=torch.zeros_like(images), target=t,
                                                     n_steps=20, return_convergence_delta=True)
    torch.testing.assert_close(exp.attributions, attr)
    torch.testing.assert_close(exp.delta, delta)
    assert exp.delta.shape == (3,)


def test_deep_lift_matches_captum(cnn, images):
    t = _pred(cnn, images)
    exp = explain(cnn, images, "deep_lift")
    ref = DeepLift(cnn).attribute(images, baselines=torch.zeros_like(images), target=t)
    torch.testing.assert_close(exp.attributions, ref)


def test_gradient_shap_and_noise_tunnel_match_captum_with_seed(cnn, images):
    t = _pred(cnn, images)
    exp = explain(cnn, images, "gradient_shap", seed=7, n_samples=6, stdevs=0.1)
    torch.manual_seed(7)
    np.random.seed(7)
    ref = GradientShap(cnn).attribute(images, baselines=torch.zeros_like(images), target=t, n_samples=6,
                                      stdevs=0.1)
    torch.testing.assert_close(exp.attributions, ref)
    exp = explain(cnn, images, "noise_tunnel", seed=3, nt_samples=4, stdevs=0.2)
    torch.manual_seed(3)
    np.random.seed(3)
    ref = NoiseTunnel(Saliency(cnn)).attribute(images, nt_type="smoothgrad", nt_samples=4, stdevs=0.2, target=t)
    torch.testing.assert_close(exp.attributions, ref)


def test_seeded_methods_are_repeatable_and_leave_global_rng_alone(cnn, images):
    torch.manual_seed(123)
    np.random.seed(123)
    expected_next = torch.rand(1), np.random.rand()
    torch.manual_seed(123)
    np.random.seed(123)
    a = explain(cnn, images, "gradient_shap").attributions
    assert torch.equal(torch.rand(1), expected_next[0]) and np.random.rand() == expected_next[1]
    torch.testing.assert_close(a, explain(cnn, images, "gradient_shap").attributions)


def test_occlusion_matches_captum(cnn, images, tok, ids):
    t = _pred(cnn, images)
    exp = explain(cnn, images, "occlusion", sliding_window_shapes=(1, 3, 3), strides=(1, 2, 2))
    ref = Occlusion(cnn).attribute(images, sliding_window_shapes=(1, 3, 3), strides=(1, 2, 2),
                                   baselines=torch.zeros_like(images), target=t, perturbations_per_eval=16)
    torch.testing.assert_close(exp.attributions, ref)
    # token sequences: each position replaced by the pad token
    t = _pred(tok, ids)
    exp = explain(tok, ids, "occlusion", pad_token=0)
    ref = Occlusion(tok).attribute(ids, sliding_window_shapes=(1,), strides=(1,), baselines=torch.zeros_like(ids),
                                   target=t, perturbations_per_eval=16)
    torch.testing.assert_close(exp.attributions, ref)
    assert exp.attributions.shape == ids.shape


def test_feature_ablation_matches_captum(mlp, rows):
    t = _pred(mlp, rows)
    torch.testing.assert_close(explain(mlp, rows, "feature_ablation").attributions,
                               FeatureAblation(mlp).attribute(rows, baselines=torch.zeros_like(rows), target=t))


def test_grad_cam_matches_captum_and_input_size(cnn, images):
    t = _pred(cnn, images)
    exp = explain(cnn, images, "grad_cam", layer="conv1")
    raw = LayerGradCam(cnn, cnn.conv1).attribute(images, target=t)
    torch.testing.assert_close(exp.layer_attributions, raw)
    torch.testing.assert_close(exp.attributions, LayerAttribution.interpolate(raw, (8, 8), "bilinear"))
    assert exp.attributions.shape == (3, 1, 8, 8)
    # default layer: the last convolution
    assert explain(cnn, images, "grad_cam").layer == "conv2"


def test_grad_cam_upsamples_a_smaller_map(images):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 2))
    exp = explain(model, images, "grad_cam", layer="0")
    assert exp.layer_attributions.shape == (3, 1, 4, 4)
    assert exp.attributions.shape == (3, 1, 8, 8)


def test_layer_integrated_gradients_matches_captum(tok, ids):
    t = _pred(tok, ids)
    exp = explain(tok, ids, "layer_integrated_gradients", n_steps=16)
    attr, delta = LayerIntegratedGradients(tok, tok.emb).attribute(
        ids, baselines=torch.zeros_like(ids), target=t, n_steps=16, return_convergence_delta=True)
    torch.testing.assert_close(exp.layer_attributions, attr)
    torch.testing.assert_close(exp.attributions, attr.sum(-1))
    torch.testing.assert_close(exp.delta, delta)
    assert exp.layer == "emb" and exp.attributions.shape == ids.shape


def test_layer_conductance_matches_captum(cnn, images):
    t = _pred(cnn, images)
    exp = explain(cnn, images, "layer_conductance", layer="conv2", n_steps=10)
    ref = LayerConductance(cnn, cnn.conv2).attribute(images, baselines=torch.zeros_like(images), target=t,
                                                     n_steps=10)
    torch.testing.assert_close(exp.attributions, ref)


def test_every_method_matches_captum_name():
    assert set(METHODS) == {"saliency", "input_x_gradient", "integrated_gradients", "deep_lift", "gradient_shap",
                            "noise_tunnel", "occlusion", "feature_ablation", "grad_cam",
                            "layer_integrated_gradients", "layer_conductance"}


# ------------------------------------------------------------------------------------- availability


def test_available_methods_lists_every_method_with_reasons(mlp, tok, cnn):
    infos = {m.name: m for m in available_methods(mlp, "tabular")}
    assert list(infos) == list(METHODS)
    assert not infos["grad_cam"].available
    assert infos["grad_cam"].reason == "grad_cam: needs a Conv1d or Conv2d node; this graph has none"
    assert infos["feature_ablation"].available and not infos["occlusion"].available
    assert infos["layer_conductance"].layers == ("fc1", "act", "fc2")
    tokens = {m.name: m for m in available_methods(tok, "tokens")}
    assert tokens["saliency"].reason == ("saliency: inputs are token ids; use layer_integrated_gradients on an "
                                         "Embedding node")
    assert tokens["layer_integrated_gradients"].available and tokens["layer_integrated_gradients"].layers == ("emb",)
    images = {m.name: m for m in available_methods(cnn, "image")}
    assert images["grad_cam"].available and images["grad_cam"].layers == ("conv1", "conv2")
    assert not images["layer_integrated_gradients"].available
    points = {m.name: m.available for m in available_methods(mlp, "points2d")}
    assert points == {m.name: m.available for m in available_methods(mlp, "tabular")}


def test_grad_cam_without_convolution_on_images_gives_reason():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    info = {m.name: m for m in available_methods(model, "image")}["grad_cam"]
    assert not info.available and info.reason == "grad_cam: needs a Conv2d node; this graph has none"


def test_inplace_relu_blocks_deep_lift_with_reason():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 2))
    info = {m.name: m for m in available_methods(model, "tabular")}["deep_lift"]
    assert not info.available and "inplace" in info.reason


@pytest.mark.parametrize("method", ["grad_cam", "occlusion", "saliency"])
def test_explain_raises_the_reason_for_inapplicable_methods(mlp, tok, ids, rows, method):
    model, x = (tok, ids) if method == "saliency" else (mlp, rows)
    with pytest.raises(ExplainError) as err:
        explain(model, x, method)
    assert str(err.value).startswith(method + ":")
    assert isinstance(err.value, LayerLabError)


class _Detaching(nn.Module):
    """A model whose output has no gradient with respect to its input (an op node ``aten.detach`` does this)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x.detach())


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "deep_lift", "gradient_shap"])
def test_a_model_whose_output_has_no_gradient_to_its_input_gets_the_rule_and_a_fix(method):
    """Torch's words ('appears to not have been used in the graph. Set allow_unused=True') reached the page;
    the line now says why a gradient method cannot apply and which methods do."""
    with pytest.raises(ExplainError) as err:
        explain(_Detaching(), torch.randn(2, 4), method)
    text = str(err.value)
    assert text.startswith(f"{method} follows the output's gradient back to the input") and "allow_unused" not in text
    assert "received: no gradient path from the output to the input. Fix: use feature_ablation" in text
    assert explain(_Detaching(), torch.randn(2, 4), "feature_ablation").attributions.shape == (2, 4)  # the fix works


def test_a_map_of_zeros_says_why_and_a_perturbation_method_sees_the_model():
    """A model that rounds its input has a gradient of 0 everywhere: saliency's map was blank, unexplained."""
    class Rounding(_Detaching):
        def forward(self, x):
            return self.fc(torch.round(x * 4))

    model, x = Rounding(), torch.randn(2, 4)
    blank = explain(model, x, "saliency")
    assert all_zero(blank).startswith("every attribution is 0 for this sample: the output's gradient is 0 there")
    assert "baseline" in all_zero(explain(model, x, "integrated_gradients"))
    assert all_zero(explain(model, x, "feature_ablation")) is None  # the fix sees what the model does
    assert all_zero(explain(_Detaching(), x, "feature_ablation")) is None


def test_unknown_method_option_modality_and_layer(mlp, rows):
    with pytest.raises(ExplainError, match="known methods"):
        explain(mlp, rows, "lime")
    with pytest.raises(ExplainError, match="unknown option"):
        explain(mlp, rows, "integrated_gradients", n_stepz=3)
    with pytest.raises(ExplainError, match="unknown modality"):
        available_methods(mlp, "audio")
    with pytest.raises(ExplainError, match="no node 'nope'"):
        explain(mlp, rows, "layer_conductance", layer="nope")
    with pytest.raises(ExplainError, match="batched"):
        explain(mlp, rows[0], "saliency")


def test_aliases_and_explain_many(cnn, images):
    assert explain(cnn, images, "layer_grad_cam").method == "grad_cam"
    out = explain_many(cnn, images, ["saliency", "feature_ablation"])
    assert isinstance(out["saliency"], Explanation)
    assert isinstance(out["feature_ablation"], ExplainError)


def test_compiled_graph_node_ids_resolve_through_layerlab_names(cnn, images):
    cnn.layerlab_names = {"c1": "conv1", "c2": "conv2", "head": "fc"}
    cnn.layerlab_types = {"x": "Input", "c1": "Conv2d", "c2": "Conv2d", "head": "Linear"}
    assert layer_nodes(cnn) == {"c1": "Conv2d", "c2": "Conv2d", "head": "Linear"}
    exp = explain(cnn, images, "grad_cam", layer="c1")
    assert exp.layer == "c1"
    cnn.layerlab_inputs, cnn.layerlab_outputs = ["a", "b"], ["head"]
    info = available_methods(cnn, "image")[0]
    assert not info.available and "2 Input" in info.reason


# ----------------------------------------------------------------------------------- target, state


def test_target_defaults_to_prediction_and_is_selectable(cnn, images):
    pred = _pred(cnn, images)
    assert torch.equal(explain(cnn, images, "saliency").target, pred)
    exp = explain(cnn, images, "saliency", target=2)
    assert exp.target.tolist() == [2, 2, 2]
    torch.testing.assert_close(exp.attributions, Saliency(cnn).attribute(images, target=2))
    assert explain(cnn, images, "saliency", target=[0, 1, 2]).target.tolist() == [0, 1, 2]
    with pytest.raises(ExplainError, match=r"\[0, 2\]"):
        explain(cnn, images, "saliency", target=3)
    with pytest.raises(ExplainError, match="one per sample"):
        explain(cnn, images, "saliency", target=[0, 1])


def test_single_output_models_need_no_target(rows):
    torch.manual_seed(0)
    reg = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    assert resolve_target(reg, rows) is None
    exp = explain(reg, rows, "integrated_gradients")
    assert exp.target is None and exp.attributions.shape == rows.shape


def test_explain_restores_training_mode_and_leaves_param_grads(tok, ids):
    tok.train()
    explain(tok, ids, "layer_integrated_gradients", n_steps=4)
    assert all(m.training for m in tok.modules())
    assert all(p.grad is None for p in tok.parameters())


# ------------------------------------------------------------------------------------------ baselines


def test_baselines(images, ids):
    assert torch.equal(make_baseline(images, "zeros"), torch.zeros_like(images))
    data = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 1, 8, 8)
    mean = make_baseline(images, "mean", data=data)
    assert mean.shape == images.shape and torch.allclose(mean[1], data.mean(0))
    blurred = make_baseline(images, "blur", sigma=1.5)
    assert blurred.shape == images.shape
    assert blurred.std() < images.std()  # smoother
    torch.testing.assert_close(make_baseline(torch.ones(1, 1, 8, 8), "blur"), torch.ones(1, 1, 8, 8))
    assert torch.equal(make_baseline(ids, "pad", pad_token=3), torch.full_like(ids, 3))
    assert torch.equal(make_baseline(images, 0.5), torch.full_like(images, 0.5))
    with pytest.raises(ExplainError, match="baseline_data"):
        make_baseline(images, "mean")
    with pytest.raises(ExplainError, match="images"):
        make_baseline(torch.zeros(2, 4), "blur")
    with pytest.raises(ExplainError, match="token"):
        make_baseline(images, "pad")
    with pytest.raises(ExplainError, match="unknown kind"):
        make_baseline(images, "noise")


def test_explain_uses_the_chosen_baseline(cnn, images):
    t = _pred(cnn, images)
    data = torch.rand(10, 1, 8, 8)
    exp = explain(cnn, images, "integrated_gradients", baselines="mean", baseline_data=data, n_steps=8)
    base = data.mean(0, keepdim=True).expand_as(images)
    ref = IntegratedGradients(cnn).attribute(images, baselines=base, target=t, n_steps=8)
    torch.testing.assert_close(exp.attributions, ref)
    torch.testing.assert_close(exp.baselines, base)


# ---------------------------------------------------------------------------------------- modality


def test_modality_inference(images, rows, ids):
    assert infer_modality(images) == "image"
    assert infer_modality(rows) == "tabular"
    assert infer_modality(ids) == "tokens"
    assert infer_modality(torch.randn(2, 5, 3)) == "sequence"
    assert model_modality(nn.Linear(2, 2)) is None


def test_sequence_occlusion_covers_whole_time_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(15, 2))
    x = torch.randn(2, 5, 3)
    exp = explain(model, x, "occlusion")
    assert exp.attributions.shape == x.shape
    # one window per time step: all features of a step share the same score
    assert torch.allclose(exp.attributions, exp.attributions[..., :1].expand_as(x))


# -------------------------------------------------------------------------------------- sample picker


class _Fixed(nn.Module):
    """Returns the stored logits of sample i (the input is its index)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits[idx[:, 0].long()]


def test_pick_samples():
    logits = torch.tensor([[5.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 9.0], [0.2, 0.0]])
    model, x = _Fixed(logits), torch.arange(5.0)[:, None]
    y = torch.tensor([0, 0, 1, 0, 1])  # predictions: 0 1 0 1 0
    assert pick_samples(model, x, y, "index", index=3) == [3]
    assert pick_samples(model, x, y, "index", index=[0, -1]) == [0, 4]
    assert pick_samples(model, x, y, "class", label=1) == [2, 4]
    assert pick_samples(model, x, y, "correct") == [0]
    assert pick_samples(model, x, y, "incorrect") == [1, 2, 3, 4]
    assert pick_samples(model, x, y, "confident_mistakes", k=3) == [3, 2, 1]
    pred, conf = predict(model, x)
    assert pred.tolist() == [0, 1, 0, 1, 0] and conf.shape == (5,)
    with pytest.raises(ExplainError, match="in \\[0, 4\\]"):
        pick_samples(model, x, y, "index", index=5)
    with pytest.raises(ExplainError, match="labels"):
        pick_samples(model, x, None, "correct")
    with pytest.raises(ExplainError, match="unknown picker"):
        pick_samples(model, x, y, "random")
    with pytest.raises(ExplainError, match="label="):
        pick_samples(model, x, y, "class")


# ------------------------------------------------------------------------------------------ templates

TEMPLATES = ("mlp", "cnn", "resnet", "lstm", "transformer", "autoencoder")


def _template_model(name: str):
    compile_mod = importlib.import_module("builder.graph.compile")
    templates = importlib.import_module("builder.graph.templates")
    torch.manual_seed(0)
    gm = compile_mod.compile_graph(templates.load_template(name).graph)
    x = compile_mod.example_inputs(gm, 2, seed=0)[0]
    return gm, x


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_runs_every_applicable_method(name):
    gm, x = _template_model(name)
    modality = model_modality(gm)
    assert modality == infer_modality(x)
    infos = available_methods(gm, modality)
    assert any(i.available for i in infos)
    for info in infos:
        if not info.available:
            assert info.reason.startswith(info.name + ": ")
            with pytest.raises(ExplainError):
                explain(gm, x, info.name)
            continue
        opts = {"n_steps": 8} if info.name in ("integrated_gradients", "layer_integrated_gradients",
                                                "layer_conductance") else {}
        # grad_cam on every convolution; other layer methods on their default and last candidate node
        layers = info.layers if info.name == "grad_cam" else (None, *info.layers[-1:])
        for layer in layers:
            exp = explain(gm, x, info.name, layer=layer, **opts)
            assert torch.isfinite(exp.attributions).all(), (name, info.name, layer)
            if info.name in ("grad_cam",) and modality == "image":
                assert exp.attributions.shape[-2:] == x.shape[-2:]
            elif info.name != "layer_conductance":
                assert exp.attributions.shape == x.shape, (name, info.name)


def test_template_modalities_and_reasons():
    gm, _ = _template_model("transformer")
    infos = {i.name: i for i in available_methods(gm, "tokens")}
    assert infos["layer_integrated_gradients"].layers == ("embed",)
    assert infos["saliency"].reason == "saliency: inputs are token ids; use layer_integrated_gradients on an " \
                                      "Embedding node"
    gm, _ = _template_model("mlp")
    assert {i.name: i for i in available_methods(gm, "points2d")}["grad_cam"].reason == \
        "grad_cam: needs a Conv1d or Conv2d node; this graph has none"


def test_explain_all_in_batches_equals_one_call(mlp, rows):
    whole = explain(mlp, rows, "integrated_gradients", n_steps=8)
    batched = explain_all(mlp, rows, "integrated_gradients", batch_size=2, n_steps=8)
    torch.testing.assert_close(batched.attributions, whole.attributions)
    torch.testing.assert_close(batched.delta, whole.delta)
    assert torch.equal(batched.target, whole.target)
    t = torch.tensor([0, 1, 2, 0, 1])
    torch.testing.assert_close(explain_all(mlp, rows, "saliency", t, batch_size=3).attributions,
                               explain(mlp, rows, "saliency", t).attributions)
    with pytest.raises(ExplainError, match="batch_size"):
        explain_all(mlp, rows, "saliency", batch_size=0)


def test_grad_cam_on_a_token_model_with_conv1d():
    class ConvText(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.conv = nn.Conv1d(4, 3, 3, stride=2, padding=1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(self.emb(x).transpose(1, 2)))  # (B, 3, T/2)
            return self.fc(h.mean(2))

    torch.manual_seed(0)
    ids = torch.randint(0, 10, (2, 8))
    info = {m.name: m for m in available_methods(ConvText(), "tokens")}["grad_cam"]
    assert info.available and info.layers == ("conv",)
    exp = explain(ConvText(), ids, "grad_cam")
    assert exp.layer_attributions.shape == (2, 1, 4) and exp.attributions.shape == (2, 8)
