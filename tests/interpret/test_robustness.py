"""Adversarial robustness (issue 19): the module's FGSM equals a direct Captum FGSM call, PGD stays in the ε-ball
and the valid range, token inputs and regression are refused, ``layerlab robustness`` keeps robustness.json."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.access import SYSTEM
from builder.errors import ExplainError, LayerLabError
from builder.interpret.robustness import attack, parse_eps, robustness_curve, robustness_figure


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()


def test_fgsm_matches_a_direct_captum_call():
    from captum.robust import FGSM

    model = _tiny()
    g = torch.Generator().manual_seed(1)
    X, y = torch.rand(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    ours = attack(model, X, y, 0.1, bounds=(0.0, 1.0), batch_size=16)
    loss = lambda out, t: torch.nn.functional.cross_entropy(out, t, reduction="none")  # noqa: E731
    direct = FGSM(model, loss, lower_bound=0.0, upper_bound=1.0).perturb(X.clone().requires_grad_(), 0.1, y)
    torch.testing.assert_close(ours, direct.detach(), rtol=0, atol=1e-6)
    rep = robustness_curve(model, X, y, [0, 0.1], bounds=(0.0, 1.0))
    with torch.no_grad():
        assert rep.accuracy[1] == pytest.approx(float((model(direct).argmax(1) == y).float().mean()))
        assert rep.accuracy[0] == pytest.approx(float((model(X).argmax(1) == y).float().mean()))
    assert rep.flips[0]["count"] == 0 and all(e["original"] != e["adversarial"] for e in rep.flips[1]["examples"])


@settings(max_examples=8, deadline=None)
@given(eps=st.floats(0.0, 0.5), steps=st.integers(1, 5), seed=st.integers(0, 1000))
def test_pgd_stays_in_the_ball_and_the_valid_range(eps, steps, seed):
    model = _tiny(seed)
    g = torch.Generator().manual_seed(seed)
    X, y = torch.rand(10, 6, generator=g), torch.randint(0, 3, (10,), generator=g)
    adv = attack(model, X, y, eps, method="pgd", steps=steps, bounds=(0.0, 1.0))
    assert float((adv - X).abs().max()) <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_token_ids_regression_and_bad_eps_are_refused():
    model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Flatten(), torch.nn.Linear(12, 2))
    with pytest.raises(LayerLabError, match="token ids"):
        attack(model, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2), 0.1)
    with pytest.raises(ExplainError, match="classification"):
        robustness_curve(_tiny(), torch.rand(3, 6), torch.rand(3), [0.1], task="regression")
    with pytest.raises(ExplainError, match="Fix"):
        parse_eps("0,-1")
    assert parse_eps("0, 0.05,0.1") == [0.0, 0.05, 0.1]


def test_layerlab_robustness_keeps_the_curve_with_the_run(tmp_path, capsys):
    from builder.cli.main import main
    from builder.graph.templates import load_template
    from builder.runs.store import RunStore
    from builder.training.pipeline import run_training

    store = RunStore(tmp_path, actor=SYSTEM)
    r = run_training(load_template("mlp"), "moons", {"epochs": 1}, store)  # binary, one logit
    assert main(["robustness", r.run_id, "--eps", "0,0.3", "--workspace", str(tmp_path)]) == 0
    assert "FGSM on the test split" in capsys.readouterr().out
    saved = store.folder(r.run_id).read_robustness()
    assert saved["eps"] == [0.0, 0.3] and saved["accuracy"][0] == pytest.approx(r.test["accuracy"])
    assert saved["accuracy"][1] <= saved["accuracy"][0]
    assert main(["robustness", r.run_id, "--attack", "pgd", "--eps", "0.3", "--steps", "3", "--json",
                 "--workspace", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    fig = robustness_figure(store.folder(r.run_id).read_robustness())
    assert list(fig.data[0].x) == [0.3]
