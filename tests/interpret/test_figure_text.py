"""Figures show a hostile name as text: built with a node, class, feature, token, column, attack or search-parameter
name that is HTML and a template placeholder, their JSON holds only its escaped form (plotly.js draws tags, links and
%{...} placeholders in every text of a figure)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.escape import plotly_text, visible
from builder.interpret import figures as figs
from builder.interpret.activations import WeightHistogram
from builder.interpret.robustness import robustness_figure
from builder.interpret.sanity import SanityResult
from builder.training.forecasts import forecast_figure
from tests.test_escape import ANY_TEXT, plotly_drawn

HOSTILE = '<a href="https://x.example">x</a>%{y}'
SHOWN = plotly_text(HOSTILE)  # &lt;a href="https://x.example"&gt;x&lt;/a&gt;%&#123;y}


def _strings(fig) -> list[str]:
    out = []

    def walk(o):
        if isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
        elif isinstance(o, str):
            out.append(o)
    walk(json.loads(fig.to_json()))
    return out


def _assert_escaped(fig, shown: int = 1):
    strings = _strings(fig)
    raw = [s for s in strings if "<a" in s or "x.example\">" in s or "</a>%{y}" in s or "<span" in s]
    assert raw == [], raw
    assert sum(SHOWN in s for s in strings) >= shown  # the name is there, as text


def test_builder_figures_escape_a_hostile_name():
    rng = np.random.default_rng(0)
    _assert_escaped(figs.tabular_attribution_figure(rng.normal(size=(2, 3)), [HOSTILE, "b", "c"],
                                                   sample_names=[HOSTILE, "s"], title=HOSTILE), 4)
    _assert_escaped(figs.global_importance_figure(rng.normal(size=(5, 2)), [HOSTILE, "b"], title=HOSTILE), 2)
    _assert_escaped(figs.token_attribution_figure([HOSTILE, "t"], rng.normal(size=2), title=HOSTILE), 2)
    _assert_escaped(figs.attention_map_figure(rng.random((2, 2)), [HOSTILE, "t"], title=HOSTILE), 3)
    _assert_escaped(figs.attention_heads_figure(rng.random((2, 2, 2)), [HOSTILE, "t"], title=HOSTILE), 3)
    _assert_escaped(figs.activation_figure(rng.normal(size=(2, 4)), kind="strip", row_labels=[HOSTILE, "t"],
                                           title=HOSTILE), 2)
    _assert_escaped(figs.image_attribution_figure(rng.random((8, 8)), {HOSTILE: rng.normal(size=(8, 8))},
                                                  title=HOSTILE), 3)
    hist = WeightHistogram(HOSTILE, "weight", "Linear", np.ones(3), np.arange(4.0), 0.0, 1.0, 3)
    _assert_escaped(figs.weight_histogram_figure([hist], title=HOSTILE), 3)
    sanity = SanityResult(HOSTILE, [HOSTILE, "fc"], [0.5, 0.2], np.zeros((2, 1)), 0.5, True, "m")
    _assert_escaped(figs.sanity_figure(sanity), 3)
    grid = {"xs": [0, 1], "ys": [0, 1], "z": [[0, 1], [1, 0]], "kind": "class", "classes": 2, "epoch": HOSTILE}
    _assert_escaped(figs.boundary_figure(grid, {"x": [0.1], "y": [0.2], "label": [0]}, [HOSTILE]), 2)
    frames = [{"epoch": 1, "attributions": rng.normal(size=(1, 2))}]
    _assert_escaped(figs.live_attribution_figure(frames, feature_names=[HOSTILE, "b"], title=HOSTILE), 2)
    report = {"attack": HOSTILE, "eps": [0.0, 0.1], "accuracy": [0.9, 0.5], "split": HOSTILE,
              "flips": [{"count": HOSTILE}, {"count": 3}]}
    _assert_escaped(robustness_figure(report), 2)  # split and a count; the attack is upper-cased, escaped too
    window = {"inputs": [[1.0], [2.0]], "targets": [[3.0]], "forecast": [[2.5]]}
    _assert_escaped(forecast_figure({"windows": [window], "columns": [HOSTILE]}), 1)


def test_search_figures_escape_parameter_names_and_choices():
    import optuna

    from builder.search.results import study_figures

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        a = trial.suggest_float(HOSTILE + ".out_features", 0, 1)
        c = trial.suggest_categorical("act", [HOSTILE, "relu"])
        for step in range(2):
            trial.report(a * step, step)
        return a + (c == "relu")

    study.optimize(objective, n_trials=6)
    fs = study_figures(study)
    assert {"parallel", "importances"} <= set(fs)
    for fig in fs.values():
        _assert_escaped(fig, 0)
    _assert_escaped(fs["parallel"])
    _assert_escaped(fs["importances"])
    hover = fs["importances"].data[0].hovertemplate
    assert all(h.endswith("<extra></extra>") and "%{" not in h for h in hover)  # optuna's own text, inert


@settings(max_examples=60, deadline=None)
@given(st.lists(ANY_TEXT, min_size=1, max_size=4, unique=True))
def test_feature_names_are_drawn_as_given(names):
    """Each y label of the importance chart, decoded as plotly.js does, is the name as visible() shows it."""
    fig = figs.global_importance_figure(np.ones((2, len(names))), names, top_k=len(names))
    shown = list(fig.data[0].y)
    assert sorted(plotly_drawn(s) for s in shown) == sorted(visible(n, 200) for n in names)
    assert not any("<" in s or "%{" in s for s in shown)
