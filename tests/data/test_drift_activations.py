"""Drift of images and sequences on the model's penultimate activations (MMD with a permutation test)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import builder
from builder.data.drift import check_drift, load_new_inputs, mmd_test, penultimate_activations
from builder.errors import DatasetError
from builder.runs.pipeline import build_model, prepare
from builder.training.trainer import Trainer
from tests.fuzz_budget import budget


@pytest.fixture(scope="module")
def cnn():
    proj, ds, cfg = prepare(builder.load_template("cnn"), "digits", {"epochs": 1, "seed": 0, "device": "cpu"})
    torch.manual_seed(0)
    model = build_model(proj.graph, 0)
    Trainer(model, ds, cfg, []).fit()
    return model, ds


def test_penultimate_activations_are_the_input_of_the_last_linear(cnn):
    model, ds = cnn
    acts = penultimate_activations(model, ds.test.X[:5])
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert acts.shape == (5, head.in_features)
    with torch.no_grad():
        assert torch.allclose(head(acts), model.eval()(ds.test.X[:5]), atol=1e-5)


def test_held_out_images_pass_and_dimmed_images_are_flagged(cnn):
    model, ds = cnn
    same = check_drift(ds, ds.test.X, model=model)
    assert same.features[0].test == "mmd" and not same.moved
    dim = check_drift(ds, (ds.test.X * 0.6).clamp(0, 1), model=model)
    assert dim.moved and dim.features[0].p_value < 0.05
    assert dim.prediction["confidence_new"] < dim.prediction["confidence_reference"]
    assert abs(sum(dim.prediction["class_mix_new"].values()) - 1) < 1e-6
    with pytest.raises(DatasetError, match="shape"):
        check_drift(ds, ds.test.X[:, :, :4], model=model)
    with pytest.raises(DatasetError, match="image folder"):
        load_new_inputs(ds, "new.zip")  # digits is a built-in, not a folder


@settings(max_examples=budget(8), deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.05))
def test_mmd_p_value_is_a_permutation_p_value(seed, shift):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(40, 3, generator=g), torch.randn(30, 3, generator=g) + shift
    stat, p = mmd_test(a, b, permutations=49, seed=seed)
    assert 1 / 50 <= p <= 1 and stat >= -1e-9
    assert mmd_test(a, b + 3.0, permutations=49, seed=seed)[1] == pytest.approx(1 / 50)


def test_token_sequences_compare_on_activations_too():
    proj, ds, cfg = prepare(builder.load_template("lstm"), "sequence", {"epochs": 1, "seed": 0},
                            dataset_options={"n_samples": 300}, adapt=True)
    model = build_model(proj.graph, 0)
    rep = check_drift(ds, ds.test.X, model=model)  # an untrained LSTM: only the mechanics
    assert ds.info.modality == "tokens" and rep.features[0].test == "mmd" and "activations" in rep.features[0].name
    assert rep.prediction["class_mix_new"]


def test_new_texts_are_compared_by_length_unknown_words_and_predictions(tmp_path):
    """A text run's drift reads new texts with its tokenizer: reviews like the training ones pass; long texts of
    words it never saw move the length and the out-of-vocabulary rate."""
    from builder.data.text_builtin import sentiment_reviews

    proj, ds, cfg = prepare(builder.load_template("text_encoder"), "text_sentiment", {"epochs": 1, "seed": 0},
                            dataset_options={"n_samples": 400}, adapt=True)
    model = build_model(proj.graph, 0)
    Trainer(model, ds, cfg, []).fit()
    alike = tmp_path / "alike.txt"
    alike.write_text("\n".join(sentiment_reviews(150, seed=7)[0]))
    rep = check_drift(ds, alike, model=model)
    names = [f.name for f in rep.features]
    assert names[:2] == ["tokens per text", "out-of-vocabulary rate"] and rep.features[2].test == "mmd"
    assert rep.threshold == pytest.approx(0.05 / 3) and rep.n_new == 150
    assert "tokens per text" not in rep.moved and "out-of-vocabulary rate" not in rep.moved
    assert rep.prediction["class_mix_new"]

    strange = tmp_path / "strange.csv"
    rows = [" ".join(f"qq{i}x{j}" for j in range(30)) for i in range(120)]
    strange.write_text("text,extra\n" + "\n".join(f"{r},1" for r in rows) + "\n")
    rep = check_drift(ds, strange, model=model)
    assert {"tokens per text", "out-of-vocabulary rate"} <= set(rep.moved)
    assert rep.features[1].new == "100.00%"
    with pytest.raises(DatasetError, match="text column 'text'"):
        (tmp_path / "bad.csv").write_text("words\nhello\n")
        check_drift(ds, tmp_path / "bad.csv", model=model)
