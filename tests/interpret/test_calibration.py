"""Calibration (issue 19): ECE by hand, temperature scaling of an over-confident model, coverage at a target
accuracy, the run's calibration.json and ``layerlab calibrate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from builder.data.access import SYSTEM
from builder.errors import ExplainError
from builder.interpret.calibration import (
    calibration_report,
    coverage_at,
    coverage_curve,
    fit_temperature,
    reliability,
)


def test_ece_equals_a_hand_computation():
    conf = [0.95, 0.85, 0.62, 0.55, 0.15, 0.0]
    ok = [1, 0, 1, 1, 0, 0]
    r = reliability(conf, ok, bins=4)  # bins (0, .25], (.25, .5], (.5, .75], (.75, 1]; 0 goes to the first
    assert r.counts == [2, 0, 2, 2]
    hand = (2 / 6) * abs(0 - 0.075) + (2 / 6) * abs(1 - 0.585) + (2 / 6) * abs(0.5 - 0.9)
    assert r.ece == pytest.approx(hand)
    assert r.accuracy == [0.0, None, 1.0, 0.5] and r.confidence[2] == pytest.approx(0.585)
    with pytest.raises(ExplainError):
        reliability([], [])


def _overconfident(n=3000, scale=4.0, seed=0):
    """Logits whose labels are drawn from softmax(z) (calibrated), reported as scale * z (over-confident)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g) * 1.5
    y = torch.multinomial(z.softmax(1), 1, generator=g)[:, 0]
    return z * scale, y


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    z, y = _overconfident()
    zt, yt = _overconfident(seed=1)
    rep = calibration_report(z, y, zt, yt, "multiclass", target_accuracy=0.9)
    assert rep.temperature == pytest.approx(4.0, rel=0.1)
    assert rep.ece_before > 0.1 and rep.ece_after < 0.03 and rep.nll_after < rep.nll_before
    assert 0 < rep.coverage_at_target < 1 and rep.threshold_at_target is not None


def test_binary_single_logit_temperature():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, generator=g) * 2
    y = torch.bernoulli(torch.sigmoid(z), generator=g).long()
    assert fit_temperature((z * 3)[:, None], y) == pytest.approx(3.0, rel=0.1)
    rep = calibration_report((z * 3)[:, None], y, (z * 3)[:, None], y, "binary")
    assert rep.ece_after < rep.ece_before


def test_coverage_curve_and_the_largest_coverage_at_a_target():
    conf = np.array([0.99, 0.9, 0.9, 0.8, 0.7, 0.6])
    ok = np.array([1, 1, 0, 1, 1, 0])
    c = coverage_curve(conf, ok)
    assert c.thresholds == [0.99, 0.9, 0.8, 0.7, 0.6]  # ties kept together
    assert c.coverage == pytest.approx([1 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])
    assert c.accuracy == pytest.approx([1, 2 / 3, 3 / 4, 4 / 5, 4 / 6])
    assert coverage_at(c, 0.75) == (pytest.approx(5 / 6), 0.7)
    assert coverage_at(c, 1.0) == (pytest.approx(1 / 6), 0.99)
    assert coverage_at(coverage_curve([0.6], [0]), 0.5) == (0.0, None)


def test_regression_is_refused():
    with pytest.raises(ExplainError, match="classification"):
        calibration_report(torch.zeros(3, 1), torch.zeros(3), torch.zeros(3, 1), torch.zeros(3), "regression")


def test_calibrate_a_run_stores_calibration_json_and_the_cli_prints_it(tmp_path, capsys):
    from builder.cli.main import main
    from builder.data import load_dataset, predict
    from builder.graph.templates import load_template
    from builder.runs.pipeline import load_run, run_training
    from builder.runs.store import RunStore

    store = RunStore(tmp_path, actor=SYSTEM)
    r = run_training(load_template("mlp"), "moons", {"epochs": 2}, store, dataset_options={"noise": 0.3})
    assert store.folder(r.run_id).read_calibration() is None
    assert main(["calibrate", r.run_id, "--workspace", str(tmp_path), "--target-accuracy", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "ECE (15 bins)" in out and "temperature" in out and "coverage at 90.00% accuracy" in out
    saved = store.folder(r.run_id).read_calibration()
    model, ds = load_run(store, r.run_id)
    t = fit_temperature(predict(model, ds.val.X, "binary").outputs, ds.val.y)
    assert saved["temperature"] == pytest.approx(t, rel=1e-4) and saved["fit_split"] == "val"
    assert sum(saved["reliability_before"]["counts"]) == len(ds.test) == len(load_dataset("moons", noise=0.3).test)
    assert main(["calibrate", r.run_id, "--workspace", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ece_after"] == pytest.approx(saved["ece_after"])


def test_reliability_figure_draws_non_empty_bins():
    from builder.interpret.figures import reliability_figure

    rel = reliability([0.95, 0.85, 0.62], [1, 0, 1], bins=4).to_dict()
    fig = reliability_figure(rel, rel)
    assert len(fig.data) == 3 and list(fig.data[1].x) == pytest.approx([0.62, 0.9]) and "ECE" in fig.data[1].name


def test_a_reliability_diagrams_bins_are_bounded_before_they_are_allocated():
    """``layerlab calibrate --bins 3000000`` held 275 MiB for two samples (``--bins 1e9``: ~90 GB); the page
    stopped at 50, the library and the CLI at nothing."""
    from builder.interpret.calibration import MAX_BINS

    assert len(reliability([0.9, 0.3], [1, 0], bins=MAX_BINS).counts) == MAX_BINS
    for bins in (0, MAX_BINS + 1, 3_000_000):
        with pytest.raises(ExplainError, match="1 to 50 bins"):
            reliability([0.9, 0.3], [1, 0], bins=bins)
