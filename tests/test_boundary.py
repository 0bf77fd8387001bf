"""builder.boundary: the decision-boundary grid, its callback and the figure."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.boundary import (
    TOY_DATASETS,
    DecisionBoundary,
    boundary_grid,
    latest_boundary,
    predict_grid,
    sample_points,
    supports,
)
from builder.data import load_dataset
from builder.errors import TrainingError
from builder.train import Trainer


class Linear2(torch.nn.Module):
    """Logit = x0 (class 1 right of the y axis)."""

    def __init__(self, classes: int = 1):
        super().__init__()
        self.fc = torch.nn.Linear(2, classes)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.zero_()
            self.fc.weight[0, 0] = 10.0

    def forward(self, x):
        return self.fc(x)


def test_grid_covers_the_points_with_a_margin():
    X = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    pts, xs, ys = boundary_grid(X, resolution=5, margin=0.1)
    assert pts.shape == (25, 2)
    assert xs[0] < 0 < 1 < xs[-1] and ys[0] < 0 < 2 < ys[-1]
    assert xs[0] == pytest.approx(-0.1) and ys[-1] == pytest.approx(2.2)
    # row-major: the first row has the lowest y, x increasing
    assert pts[0].tolist() == pytest.approx([xs[0], ys[0]]) and pts[4].tolist() == pytest.approx([xs[-1], ys[0]])


@pytest.mark.parametrize("bad", [1, 0, 201, 2.5, "40"])
def test_grid_rejects_bad_resolutions(bad):
    with pytest.raises(TrainingError, match="resolution"):
        boundary_grid(torch.zeros(3, 2), resolution=bad)


def test_grid_needs_two_dimensional_points():
    with pytest.raises(TrainingError, match=r"\(N, 2\)"):
        boundary_grid(torch.zeros(3, 3))


def test_binary_prediction_is_a_probability_per_cell():
    pts, xs, _ = boundary_grid(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), resolution=4)
    out = predict_grid(Linear2(), pts, 4)
    assert out["kind"] == "prob" and len(out["z"]) == 4 and len(out["z"][0]) == 4
    assert out["z"][0][0] < 0.01 and out["z"][0][-1] > 0.99  # left is class 0, right is class 1


def test_multiclass_prediction_gives_class_and_confidence():
    m = Linear2(classes=3)
    pts, _, _ = boundary_grid(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), resolution=3)
    out = predict_grid(m, pts, 3)
    assert out["kind"] == "class" and out["classes"] == 3
    assert {v for row in out["z"] for v in row} <= {0.0, 1.0, 2.0}
    assert all(1 / 3 - 1e-3 <= c <= 1 for row in out["conf"] for c in row)  # 3 decimals


def test_predict_keeps_the_training_mode():
    m = Linear2().train()
    predict_grid(m, torch.zeros(4, 2), 2)
    assert m.training


@given(n=st.integers(1, 50), k=st.integers(1, 60))
@settings(max_examples=25, deadline=None)
def test_sample_points_is_bounded_and_aligned(n, k):
    X = torch.randn(n, 2)
    y = torch.randint(0, 3, (n,))
    p = sample_points(X, y, k)
    assert len(p["x"]) == len(p["y"]) == len(p["label"]) == min(n, k)
    assert set(p["label"]) <= set(y.tolist())


def test_supports_only_two_dimensional_classification():
    assert supports(load_dataset("moons", n_samples=60).info)
    assert supports(load_dataset("blobs", n_samples=60).info)
    assert not supports(load_dataset("digits").info)
    assert set(TOY_DATASETS) == {"moons", "circles", "spirals", "xor", "blobs"}


def test_callback_emits_a_grid_per_epoch_in_the_event_extras():
    ds = load_dataset("moons", n_samples=120, seed=0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    events: list[dict] = []
    cb = DecisionBoundary(resolution=12, budget=None)
    Trainer(model, ds, {"epochs": 3, "early_stopping": None}, callbacks=[cb], on_event=events.append).fit()
    epochs = [e for e in events if e.get("type") == "epoch"]
    grids = [e["extras"]["boundary"] for e in epochs]
    assert [g["epoch"] for g in grids] == [1, 2, 3]
    assert len(grids[-1]["z"]) == 12 and len(grids[-1]["xs"]) == 12
    assert "points" in grids[0] and "points" not in grids[1]  # points travel once
    grid, points = latest_boundary(epochs)
    assert grid["epoch"] == 3 and len(points["x"]) == len(ds.train) < 400  # all training points (n < 400)
    assert cb.seconds > 0 and cb.last is grid


def test_budget_skips_epochs_once_grids_cost_too_much():
    ds = load_dataset("moons", n_samples=120, seed=0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    events: list[dict] = []
    cb = DecisionBoundary(resolution=12, budget=0.0)  # any grid is over a zero budget after the first
    Trainer(model, ds, {"epochs": 4, "early_stopping": None}, callbacks=[cb], on_event=events.append).fit()
    grids = [e["extras"]["boundary"]["epoch"] for e in events if e.get("type") == "epoch" and e.get("extras")]
    assert grids == [1] and cb.skipped == 3


def test_callback_is_silent_for_other_datasets():
    ds = load_dataset("digits")
    cb = DecisionBoundary()

    class T:
        dataset = ds

    cb.on_train_begin(T())
    assert cb.on_epoch_end(T(), 0, {}) is None


def test_latest_boundary_without_grids():
    assert latest_boundary([{"epoch": 1}, {"epoch": 2, "extras": {"live": 1}}]) == (None, None)


def test_boundary_figure_draws_heatmap_and_points():
    from builder.figures import boundary_figure

    pts, _, _ = boundary_grid(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), resolution=5)
    grid = {"epoch": 2, "xs": [0, 1, 2, 3, 4], "ys": [0, 1, 2, 3, 4], **predict_grid(Linear2(), pts, 5)}
    fig = boundary_figure(grid, {"x": [0.5, 3.5], "y": [1, 2], "label": [0, 1]}, ["a", "b"])
    kinds = [t.type for t in fig.data]
    assert kinds[0] == "heatmap" and kinds.count("scattergl") == 2
    assert {t.name for t in fig.data if t.type == "scattergl"} == {"a", "b"}
    assert "epoch 2" in fig.layout.title.text
