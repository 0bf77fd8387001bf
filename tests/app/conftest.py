"""Fixtures shared by the app tests of the after-training checks (Explain › Robustness/Calibration, Runs ›
Prune/Check new data): two small finished runs trained once per module into their own workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

import builder
from builder.data.access import SYSTEM
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from tests.helpers import ME


@pytest.fixture(scope="module")
def checks_runs(tmp_path_factory) -> tuple[Path, str, str]:
    """``(workspace, cnn run, iris run)``: the CNN on digits (2 epochs) and the MLP on iris (15 epochs), owner ME."""
    ws = tmp_path_factory.mktemp("checks_ws")
    store = RunStore(ws, actor=SYSTEM)
    cnn = run_training(builder.load_template("cnn"), "digits", {"epochs": 2, "seed": 0}, store, owner=ME).run_id
    iris = run_training(builder.load_template("mlp"), "iris", {"epochs": 15, "seed": 0}, store, adapt=True,
                        owner=ME).run_id
    return ws, cnn, iris


@pytest.fixture
def checks_ws(checks_runs, monkeypatch) -> tuple[Path, str, str]:
    """:func:`checks_runs` as the app's workspace (one torch thread)."""
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(checks_runs[0]))
    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    return checks_runs
