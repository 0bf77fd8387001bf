import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Streamlit scripts that browser tests serve with `streamlit run`: importing them (as --doctest-modules would) runs
# them in bare mode, where one script's session state leaks into the next.
collect_ignore = ["canvas/demo_app.py", "canvas/big_app.py"]

# Warm job launchers started by tests (builder.runs.jobs) exit 20 s after their last job, not 10 minutes later.
os.environ.setdefault("LAYERLAB_LAUNCHER_IDLE_S", "20")

# Hypothesis profiles. Tests that are slow per example set their own max_examples; the others take it from the
# profile:
#   ci   (selected under CI=true): 200 examples per property, derandomised so a CI failure reproduces (and
#        print_blob, to replay one); CI checks every property, `make fuzz` carries the volume;
#   fuzz (`make fuzz`, or --hypothesis-profile fuzz): 50,000 fresh random examples for every hypothesis test in
#        tests/ (validation-only fuzz, escaping, malformed files, range parsers, ...); the child-process graph
#        fuzzer runs 10,000;
#   dev  (default): 200 fresh random examples.
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("fuzz", max_examples=50_000, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _environment_restored():
    """Every test leaves ``os.environ`` as it found it. Code under test may set variables for the job processes
    it starts (``--threads`` sets LAYERLAB_TORCH_THREADS; tests set MLFLOW_TRACKING_URI, the local user's
    tracker); left behind, they reach every later test of the worker and the app servers it starts (a leaked
    tracking URI turned MLflow on for a browser test's server)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small models train fastest on one thread, and far faster than two when pytest-xdist shares the CPU."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def example_project() -> dict:
    """The hand-written example from the project-file documentation."""
    return {"format": "layerlab", "version": 1,
            "graph": {
                "nodes": [{"id": "x", "type": "Input", "params": {"shape": [1, 8, 8]}},
                          {"id": "c1", "type": "Conv2d", "params": {"out_channels": 16, "kernel_size": 3, "padding": 1}},
                          {"id": "r1", "type": "ReLU"},
                          {"id": "sum", "type": "Add"},
                          {"id": "f", "type": "Flatten"},
                          {"id": "fc", "type": "Linear", "params": {"out_features": 10}}],
                "edges": [{"source": "x", "target": "c1"}, {"source": "c1", "target": "r1"},
                          {"source": "r1", "target": "sum"}, {"source": "c1", "target": "sum"},
                          {"source": "sum", "target": "f"}, {"source": "f", "target": "fc"}]}}


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh LayerLab workspace (``LAYERLAB_WORKSPACE``) for the app and the CLI; runs of others hidden."""
    path = tmp_path / "ws"
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(path))
    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    return path


@pytest.fixture
def job_workspace(workspace, monkeypatch) -> Path:
    """A workspace for tests that start training jobs: one torch thread per job, two jobs at once, and a warm
    launcher that does not outlive the test long."""
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    monkeypatch.setenv("LAYERLAB_MAX_JOBS", "2")
    monkeypatch.setenv("LAYERLAB_LAUNCHER_IDLE_S", "20")
    return workspace
