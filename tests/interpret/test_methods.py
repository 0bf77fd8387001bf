"""The method specs (builder/interpret/methods.py): one table of facts, and a method added in one place.

A throwaway method registered here runs through ``explain``, ``available_methods``, ``METHODS`` and the
Explain page's choices (:class:`builder.interpret.session.ExplainSession`) without touching another file.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import builder
from builder.data import load_dataset
from builder.errors import ExplainError
from builder.interpret import attributions
from builder.interpret.attributions import available_methods, explain
from builder.interpret.methods import (
    Attribution,
    MethodInput,
    MethodSpec,
    get_spec,
    method_label,
    method_names,
    method_specs,
    register,
    registered,
    unregister,
)
from builder.interpret.session import ExplainSession
from tests.fuzz_budget import budget

pytestmark = [pytest.mark.filterwarnings("ignore:.*require gradients:UserWarning")]


def _double_input(c: MethodInput) -> Attribution:
    """A made-up method: twice the input minus the baseline (B, ...)."""
    return Attribution(2 * (c.inputs.float() - c.baselines), torch.zeros(len(c.inputs)))


THROWAWAY = MethodSpec("double_input", "Double input", None, _double_input,
                       frozenset({"tabular", "image"}), "double_input is for tabular inputs and images",
                       needs_baselines=True, has_convergence_delta=True, default_for={"tabular": 2}, global_rank=9)


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", seed=0)


def test_every_spec_states_its_facts():
    names = method_names()
    assert names == tuple(s.name for s in method_specs()) == attributions.METHODS
    for spec in method_specs():
        assert spec.label and spec.modalities and get_spec(spec.name) is spec
        params = inspect.signature(spec.options_signature()).parameters
        if spec.uses_steps:
            assert "n_steps" in params, spec.name
        if spec.needs_baselines:
            assert "baselines" in params, spec.name
        assert spec.is_layer_method == (spec.layer_types is not None)
        assert spec.token_method() in names
        assert spec.space in ("input", "layer")
    assert get_spec("smoothgrad") is get_spec("noise_tunnel") and method_label("layer_grad_cam") == "Grad-CAM"
    stochastic = {s.name for s in method_specs() if s.stochastic}
    assert stochastic == {"gradient_shap", "noise_tunnel"}


def test_unknown_and_taken_names():
    with pytest.raises(ExplainError, match="known methods: saliency"):
        get_spec("lime")
    with pytest.raises(ExplainError, match="already registered"):
        register(dataclasses.replace(THROWAWAY, name="saliency"))
    with pytest.raises(ExplainError, match="already registered"):
        register(THROWAWAY, aliases=("deeplift",))
    assert "double_input" not in method_names()


def test_a_method_registered_in_one_place_runs_everywhere(mlp, iris):
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    with registered(THROWAWAY):
        assert "double_input" in attributions.METHODS and "double_input" in builder.METHODS
        exp = builder.explain(mlp, x, "double_input", baselines=1.0)
        torch.testing.assert_close(exp.attributions, 2 * (x - 1))
        assert exp.delta is not None and exp.method == "double_input"
        info = {m.name: m for m in available_methods(mlp, "tabular")}["double_input"]
        assert info.available and info.label == "Double input"
        blocked = {m.name: m for m in available_methods(mlp, "sequence")}["double_input"]
        assert blocked.reason == "double_input: double_input is for tabular inputs and images"
        with pytest.raises(ExplainError, match="unknown option"):
            explain(mlp, x, "double_input", n_steps=3)
        choices = ExplainSession(mlp, iris, "test").methods()
        assert choices.default == ["integrated_gradients", "feature_ablation", "double_input"]
        assert choices.ranking[-1] == "double_input"
        assert "double_input" in choices.sanity
    assert "double_input" not in method_names()
    with pytest.raises(ExplainError, match="unknown method"):
        explain(mlp, x, "double_input")


def test_unregister_removes_aliases():
    register(THROWAWAY, aliases=("twice",))
    try:
        assert get_spec("twice") is THROWAWAY
    finally:
        unregister("double_input")
    with pytest.raises(ExplainError):
        get_spec("twice")


def test_session_defaults_follow_the_specs(mlp, iris):
    xs = ExplainSession(mlp, iris, "test")
    ms = xs.methods()
    assert xs.modality == "tabular"
    assert ms.default == ["integrated_gradients", "feature_ablation"]
    assert ms.ranking == ["integrated_gradients", "feature_ablation", "saliency", "input_x_gradient", "deep_lift",
                          "gradient_shap"]
    assert "layer_conductance" not in ms.sanity and ms.sanity_default == ["saliency", "integrated_gradients"]
    assert xs.default_layer("layer_conductance", ms.available["layer_conductance"].layers) == "0"
    exp = xs.explain(0, "integrated_gradients", None, baseline="mean", steps=8)
    assert exp.attributions.shape == (1, 4) and xs.deltas({"integrated_gradients": exp})[0][0] == \
        "Integrated Gradients"
    assert xs.about(exp, None).endswith("(the prediction)")
    assert xs.rows({"integrated_gradients": exp}).shape == (1, 4)


def test_session_picks_from_its_predictions(mlp, iris):
    xs = ExplainSession(mlp, iris, "test")
    assert xs.pick_modes() == ["index", "class", "correct", "incorrect", "confident_mistakes"]
    wrong = xs.pick("incorrect")
    right = xs.pick("correct")
    assert set(wrong).isdisjoint(right) and all(int(xs.pred[i]) != int(xs.y[i]) for i in wrong)
    confident = xs.pick("confident_mistakes")
    assert [float(xs.conf[i]) for i in confident] == sorted((float(xs.conf[i]) for i in confident), reverse=True)
    assert all(int(xs.y[i]) == 2 for i in xs.pick("class", 2))
    s = xs.summary(0)
    assert s.kind == "class" and s.true in iris.info.class_names and len(s.runners_up) == 2
    assert xs.target_kind() == "class" and xs.target_choices() == [-1, 0, 1, 2]


@settings(max_examples=budget(60), deadline=None)
@given(n_total=st.integers(1, 40), data=st.data())
def test_trust_window_stays_in_the_split(n_total, data):
    i = data.draw(st.integers(0, n_total - 1))
    n = data.draw(st.integers(1, n_total))
    xs = ExplainSession.__new__(ExplainSession)
    xs.X = torch.zeros(n_total, 2)
    start, stop = xs.window(i, n)
    assert 0 <= start <= i < n_total and stop - start == n and stop <= n_total
    assert start == i or stop == n_total  # moved back only as far as needed


def test_a_drawn_objectives_network_shows_its_outputs_not_the_datasets_labels(tmp_path):
    """Review of issue 29: Explain on a VAE run (its encoder, μ per latent unit) read 'True value 5 · Prediction
    0.2618': the digit's class beside the first latent value, as if one predicted the other. The encoder's
    outputs are no target of the dataset's: the summary gives them, and no true value."""
    from builder.data.access import SYSTEM
    from builder.runs.pipeline import open_run, run_training
    from builder.runs.store import RunStore

    store = RunStore(tmp_path, actor=SYSTEM)
    rid = run_training(builder.load_template("vae"), "digits", {"epochs": 1, "seed": 0}, store=store).run_id
    model, ds = open_run(store, store.get(rid))
    xs = ExplainSession(model, ds, "test", run_id=rid)
    s = xs.summary(0)
    mu = [f"{v:.4g}" for v in xs.prediction.outputs[0].tolist()]
    assert len(mu) == 2 and (s.kind, s.true, s.predicted) == ("output", "—", ", ".join(mu)), s
