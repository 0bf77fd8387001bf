"""builder.interpret.boundary: the decision-boundary grid, its callback and the figure."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data import load_dataset
from builder.errors import TrainingError
from builder.interpret.boundary import (
    TOY_DATASETS,
    DecisionBoundary,
    boundary_grid,
    latest_boundary,
    predict_grid,
    sample_points,
    supports,
)
from builder.training.trainer import Trainer
from tests.fuzz_budget import budget


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
@settings(max_examples=budget(25), deadline=None)
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
    assert cb.seconds > 0 and cb.last == grid  # (read back typed: a copy)


def test_budget_skips_epochs_once_grids_cost_too_much():
    ds = load_dataset("moons", n_samples=120, seed=0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    events: list[dict] = []
    cb = DecisionBoundary(resolution=12, budget=0.0)  # only the grids that are always drawn: first and last
    Trainer(model, ds, {"epochs": 5, "early_stopping": None}, callbacks=[cb], on_event=events.append).fit()
    grids = [e["extras"]["boundary"]["epoch"] for e in events if e.get("type") == "epoch" and e.get("extras")]
    assert grids == [1, 5] and cb.skipped == 3 and cb.drawn == 2


# ---- the budget, with a fake clock: each epoch takes `epoch_s`, each grid `grid_s` (no wall-clock timings)
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowModel(torch.nn.Module):
    """One logit per point; each forward advances the fake clock by the next of ``costs`` (cycled)."""

    def __init__(self, clock: FakeClock, costs: list[float]):
        super().__init__()
        self.clock, self.costs, self.calls = clock, costs, 0
        self.fc = torch.nn.Linear(2, 1)

    def forward(self, x):
        self.clock.now += self.costs[self.calls % len(self.costs)]
        self.calls += 1
        return self.fc(x)


_MOONS = load_dataset("moons", n_samples=60, seed=0)


def _run_budget(epoch_s: float, grid_costs: list[float], epochs: int, budget: float | None = 0.05,
                planned: bool = True):
    """Drive the callback through ``epochs`` fake epochs (``planned``: the trainer says how many, so the last
    one gets a grid); returns (callback, epochs with a grid, (grid seconds, training seconds without grids)
    after each epoch end)."""
    clock = FakeClock()
    trainer = SimpleNamespace(dataset=_MOONS, model=SlowModel(clock, grid_costs))
    if planned:
        trainer.config = SimpleNamespace(epochs=epochs)
    cb = DecisionBoundary(resolution=4, budget=budget, clock=clock)
    cb.on_train_begin(trainer)
    start, drawn, trace = clock.now, [], []
    for e in range(epochs):
        clock.now += epoch_s  # the epoch's training
        if cb.on_epoch_end(trainer, e, {}) is not None:
            drawn.append(e + 1)
        trace.append((cb.seconds, clock.now - start - cb.seconds))
    assert cb.drawn == len(drawn) == trainer.model.calls and cb.skipped == epochs - len(drawn)
    return cb, drawn, trace


_EPS = 1 + 1e-9  # floating-point slack on "<=" (the fake clock sums floats)


@pytest.mark.parametrize("epoch_ms, grid_ms", [(15.0, 1.5), (3.0, 0.3), (2.7, 0.15), (10.0, 0.1), (1.0, 0.6),
                                               (1.0, 2.0), (1.0, 20.0)])
@pytest.mark.parametrize("planned", [True, False])
def test_budget_holds_with_the_first_grid_counted(epoch_ms, grid_ms, planned):
    X, Y, budget, n = epoch_ms / 1e3, grid_ms / 1e3, 0.05, 20
    cb, drawn, trace = _run_budget(X, [Y], n, budget, planned)
    assert drawn[0] == 1  # the first epoch always has a grid
    assert (drawn[-1] == n) is planned or drawn[-1] == n  # ... and the last planned one
    assert cb.seconds == pytest.approx(len(drawn) * Y)
    for grid_s, train_s in trace[:-1]:  # at every epoch end: within budget, or the first grid alone is over it
        assert grid_s <= max(Y, budget * train_s) * _EPS
    always = 2 * Y if planned else Y  # the grids drawn whatever the budget
    if always <= budget * n * X:  # paid back within the run: the whole run is within budget
        assert cb.seconds <= budget * n * X * _EPS
    else:  # grids dearer than the run's budget (e.g. 2 ms grids on 1 ms epochs): only those
        assert drawn == ([1, n] if planned else [1])
    # not starved: a grid whenever the budget has room for one (planned: and for one more in reserve, so the
    # budget of the epochs before the last counts); at most one an epoch; a tie with the budget may go
    # either way in floating point
    room = budget * ((n - 1) if planned else n) * X / Y * (1 - 1e-6)
    assert len(drawn) >= min(n, int(room))


def test_second_grid_waits_until_the_first_is_paid_back():
    # 10 ms epochs, 4.1 ms grids, 5 % (0.5 ms an epoch): grid n+1 needs (n + 1) x 4.1 <= 0.5 x epochs, i.e.
    # epochs 17, 25, 33 (a check of the grids so far against the time so far, grids included, would draw the
    # second at epoch 9 and end the run over budget)
    cb, drawn, trace = _run_budget(0.010, [0.0041], 40, planned=False)
    assert drawn == [1, 17, 25, 33]
    assert trace[-1][0] == pytest.approx(4 * 0.0041) and trace[-1][0] <= 0.05 * trace[-1][1]


def test_the_last_planned_epoch_has_a_grid_paid_for_in_advance():
    # the same with 40 epochs planned: one grid's cost stays in reserve for epoch 40, so the in-between
    # grids need (n + 2) x 4.1 ms: epochs 25 and 33; epoch 40 always gets one, and the run ends within budget
    cb, drawn, trace = _run_budget(0.010, [0.0041], 40)
    assert drawn == [1, 25, 33, 40]
    assert trace[-1][0] <= 0.05 * trace[-1][1]
    # a run too short to pay for them still shows the first and the last epoch (2 epochs, as in the app)
    assert _run_budget(0.010, [0.0041], 2)[1] == [1, 2]
    assert _run_budget(0.010, [0.0041], 1)[1] == [1]


def test_budget_none_draws_every_epoch_and_zero_only_the_first_and_last():
    assert _run_budget(0.001, [0.01], 8, budget=None)[1] == list(range(1, 9))
    assert _run_budget(0.010, [0.0001], 8, budget=0.0)[1] == [1, 8]
    assert _run_budget(0.010, [0.0001], 8, budget=0.0, planned=False)[1] == [1]


def test_a_slow_first_grid_is_predicted_and_paid_for():
    # a cold first grid (5 ms) then 0.2 ms ones on 3.9 ms epochs: the prediction starts at 5 ms, so the second
    # grid waits until 5 + 5 ms fit 5 % of the epochs (epoch 52; a check without the prediction and with the
    # grids in the elapsed time would draw it at epoch 24), then the cheap grids come
    cb, drawn, trace = _run_budget(0.0039, [0.005] + [0.0002] * 200, 200, planned=False)
    grid_s, train_s = trace[-1]
    assert drawn[:2] == [1, 52] and grid_s <= 0.05 * train_s
    assert len(drawn) >= 30  # 780 ms of epochs: 39 ms of budget, 34 ms of it for 0.2 ms grids (one an epoch)
    assert cb.predicted() == pytest.approx(0.0002)


def test_the_setup_counts_as_grid_time_not_training_time():
    class Ticking(FakeClock):
        step = 0.010  # each reading 10 ms later: on_train_begin reads twice, 10 ms of setup

        def __call__(self):
            self.now += self.step
            return self.now

    clock = Ticking()
    trainer = SimpleNamespace(dataset=_MOONS, model=SlowModel(clock, [0.0011]))
    cb = DecisionBoundary(resolution=4, clock=clock, budget=0.05)
    cb.on_train_begin(trainer)
    assert cb.seconds == pytest.approx(0.010) and cb.drawn == 0
    clock.step, drawn = 0.0, []
    for e in range(50):
        clock.now += 0.010
        if cb.on_epoch_end(trainer, e, {}):
            drawn.append(e + 1)
    # 10 ms setup + 2 x 1.1 ms grids <= 5 % of 10 ms epochs from epoch 25 (24.4); the setup counted as
    # training time too would give 24 (23.4), subtracted from the training time 26 (25.4)
    assert drawn[:2] == [1, 25]


@given(epoch_ms=st.floats(0.5, 50.0), grid_ms=st.floats(0.01, 60.0), jitter=st.floats(0.0, 1.0),
       epochs=st.integers(1, 80), budget=st.sampled_from([0.01, 0.05, 0.2]), planned=st.booleans())
@settings(max_examples=budget(150), deadline=None)
def test_budget_property(epoch_ms, grid_ms, jitter, epochs, budget, planned):
    """Grid costs vary in [Y, Y * (1 + jitter)]: at every epoch end the grids cost at most the budget plus a
    grid's misprediction (at most the spread of the costs; twice at the end, for the grid in reserve), unless
    the first grid (at the end: the first and the last) alone is over it."""
    X, Y = epoch_ms / 1e3, grid_ms / 1e3
    costs = [Y * (1 + jitter * ((7 * i) % 11) / 10) for i in range(11)]
    cb, drawn, trace = _run_budget(X, costs, epochs, budget, planned)
    assert drawn[:1] == [1] and (not planned or drawn[-1] == epochs)
    spread = max(costs) - min(costs)
    for grid_s, train_s in trace[:-1]:
        assert grid_s <= max(costs[0], budget * train_s + spread) * _EPS + 1e-12
    grid_s, train_s = trace[-1]
    first_and_last = costs[0] + (max(costs) if planned and epochs > 1 else 0.0)
    assert grid_s <= max(first_and_last, budget * train_s + 2 * spread) * _EPS + 1e-12
    if not jitter:  # exact predictions: within the budget once the grids always drawn are paid back
        assert grid_s <= max(first_and_last, budget * epochs * X) * _EPS
        # not starved (less one grid: a tie with the budget at some epoch may go either way in floating point)
        room = budget * ((epochs - 1) if planned else epochs) * X / Y
        assert len(drawn) >= min(epochs, int(room)) - 1


@pytest.mark.parametrize("kw, match", [({"every": 0}, "every"), ({"budget": -0.1}, "budget"),
                                       ({"budget": float("nan")}, "budget")])
def test_callback_rejects_bad_settings(kw, match):
    with pytest.raises(TrainingError, match=match):
        DecisionBoundary(**kw)


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
    from builder.interpret.figures import boundary_figure

    pts, _, _ = boundary_grid(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), resolution=5)
    grid = {"epoch": 2, "xs": [0, 1, 2, 3, 4], "ys": [0, 1, 2, 3, 4], **predict_grid(Linear2(), pts, 5)}
    fig = boundary_figure(grid, {"x": [0.5, 3.5], "y": [1, 2], "label": [0, 1]}, ["a", "b"])
    kinds = [t.type for t in fig.data]
    assert kinds[0] == "heatmap" and kinds.count("scattergl") == 2
    assert {t.name for t in fig.data if t.type == "scattergl"} == {"a", "b"}
    assert "epoch 2" in fig.layout.title.text


def test_a_distilled_run_draws_its_boundary_and_records_attributions(tmp_path):
    """A drawn objective (distillation: the graph also takes the labels and the teacher's logits) gives the
    callbacks its prediction as a model of the inputs; the boundary callback called the whole training graph
    with the data alone and failed the run ("forward() missing 2 required positional arguments")."""
    from builder import load_template
    from builder.data.access import SYSTEM
    from builder.interpret.boundary import DecisionBoundary
    from builder.interpret.live import LiveAttributions
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore
    from builder.training.objectives import with_teacher

    store = RunStore(tmp_path, actor=SYSTEM)
    teacher = run_training(load_template("mlp"), "moons", {"epochs": 1}, store).run_id
    student = with_teacher(load_template("mlp"), teacher)
    boundary, live = DecisionBoundary(budget=None), LiveAttributions(n_samples=2)
    result = run_training(student, "moons", {"epochs": 2}, store, [boundary, live])
    assert store.get(result.run_id)["status"] == "finished"
    assert boundary.drawn == 2 and boundary.last["kind"] == "prob" and len(boundary.last["z"]) == 40
    assert len(live.frames) == 2 and live.error is None and live.frames[0]["attributions"].shape == (2, 2)
