"""A run's memory is checked at its own settings (builder.runs.pipeline.prepare, run_budget): its batch size,
optimizer, device and the loss of its task, not the graph budget's batch of 64 without a loss."""

from __future__ import annotations

import pytest

import builder.graph.shapes as shapes
from builder.errors import BudgetError
from builder.graph.memory import training_memory
from builder.graph.templates import load_template
from builder.runs import pipeline

MOONS = {"n_samples": 100}


def test_prepare_checks_the_runs_own_batch_and_loss(monkeypatch):
    seen = []
    real = pipeline.memory_problem
    monkeypatch.setattr(pipeline, "memory_problem", lambda report, budget: (seen.append(budget), real(report, budget))[1])
    pipeline.prepare(load_template("mlp"), "moons", {"batch_size": 8, "optimizer": "sgd", "device": "cpu"}, dataset_options=MOONS)
    (b,) = seen
    assert (b.batch_size, b.optimizer, b.device, b.loss) == (8, "sgd", "cpu", "ce")


def test_a_batch_too_large_for_the_run_is_a_warning_as_validation_says(monkeypatch):
    """Over the memory at the run's batch of 256 and within it at 32: the run goes on (the warning names the batch
    that fits, as validation's); only a graph of which not even one sample fits is refused. On the CPU (as the limit is computed): ``auto`` is the GPU
    on a GPU host (a lent H200 ran it against CUDA's estimate)."""
    project, ds, cfg = pipeline.prepare(load_template("mlp"), "moons", {"batch_size": 256, "device": "cpu"}, dataset_options=MOONS)
    report = shapes.infer_shapes(project.graph)
    limit = training_memory(report, 32, cfg.optimizer, loss="ce").peak_at(32)
    assert training_memory(report, 256, cfg.optimizer, loss="ce").peak > limit
    monkeypatch.setattr(shapes, "device_memory", lambda device="cpu": limit)
    pipeline.prepare(load_template("mlp"), "moons", {"batch_size": 256, "device": "cpu"}, dataset_options=MOONS)
    warning = shapes.memory_problem(report, pipeline.run_budget(cfg, ds.info.task))
    assert warning.severity == "warning" and "use a batch size of at most 32" in warning.message
    monkeypatch.setattr(shapes, "device_memory", lambda device="cpu": 1)
    with pytest.raises(BudgetError, match="not even one sample fits"):
        pipeline.prepare(load_template("mlp"), "moons", {"batch_size": 256, "device": "cpu"}, dataset_options=MOONS)
