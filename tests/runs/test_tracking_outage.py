"""MLflow outages (issue 34 item 4): against a real tracking server process killed mid-run and started again,
what the tracker missed is written when it answers again (a later epoch, the end of the run), and
``layerlab runs export-mlflow`` repairs a run the tracker holds in part instead of answering "already in MLflow"."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from builder import cli
from builder.access import SYSTEM
from builder.graph.templates import load_template
from builder.runs.store import RunStore
from builder.runs.tracking import tracking_state
from builder.training.callbacks import Callback
from builder.training.pipeline import run_training

SERVER = Path(__file__).with_name("mlflow_http_server.py")
EPOCHS = 25


class TrackingServer:
    """An MLflow tracking server process on a fixed port and database, to kill and start again."""

    def __init__(self, tmp: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, str(SERVER), "--port", str(self.port), "--db", f"sqlite:///{tmp / 'mlflow.db'}",
                     "--artifacts", str(tmp / "artifacts")]
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # wait for it to answer
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the tracking server did not answer within {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """An outage: the process dies at once (SIGKILL) and nothing answers on its port."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def run_of(self, layerlab_id: str):
        client = MlflowClient(self.uri)
        exp = client.get_experiment_by_name("LayerLab")
        runs = client.search_runs([exp.experiment_id], f"tags.`layerlab.run_id` = '{layerlab_id}'")
        assert len(runs) == 1, runs
        return runs[0]

    def steps(self, mlflow_id: str, key: str) -> list[int]:
        return [m.step for m in MlflowClient(self.uri).get_metric_history(mlflow_id, key)]


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    srv = TrackingServer(tmp_path)
    srv.start()
    yield srv
    srv.kill()


class Outage(Callback):
    """Kills the server after epoch ``down`` reached it and, with ``up``, starts it again after epoch ``up``;
    ``probe(epoch)`` runs at each later epoch end (before the tracker's callback)."""

    def __init__(self, srv: TrackingServer, down: int, up: int | None = None, probe=None):
        self.srv, self.down, self.up, self.probe = srv, down, up, probe

    def on_epoch_end(self, trainer, epoch, logs):
        n = int(logs["epoch"])
        if n == self.down + 1:  # epochs 1..down were logged by the tracker's callback after ours
            self.srv.kill()
        if self.up is not None and n == self.up:
            self.srv.start()
        if self.probe is not None:
            self.probe(n)


def _check_complete(srv: TrackingServer, store: RunStore, rid: str) -> None:
    run = srv.run_of(rid)
    assert run.info.status == "FINISHED"
    for key in ("val_loss", "train_loss", "val_accuracy"):
        assert srv.steps(run.info.run_id, key) == list(range(1, EPOCHS + 1))  # every epoch, once
    assert run.data.metrics["test_accuracy"] == pytest.approx(store.get(rid)["test_metrics"]["accuracy"])
    names = {f.path for f in MlflowClient(srv.uri).list_artifacts(run.info.run_id)}
    assert {"project.json", "model_card.md", "model.safetensors", "model.py"} <= names
    st = tracking_state(store, rid, srv.uri)
    assert st.status == "FINISHED" and st.steps == list(range(1, EPOCHS + 1)) and st.test and st.artifacts


@pytest.mark.slow
def test_export_repairs_a_run_cut_off_by_an_outage(server, tmp_path, capsys):
    ws = tmp_path / "ws"
    store = RunStore(ws, actor=SYSTEM)
    res = run_training(load_template("mlp"), "moons", {"epochs": EPOCHS, "early_stopping": None}, store,
                       [Outage(server, down=3)], tracking=server.uri)
    assert res.status == "finished"  # training went on without the tracker
    st = tracking_state(store, res.run_id, server.uri)
    assert st.steps == [1, 2, 3] and st.status is None and st.error  # what reached it, recorded
    server.start()
    run = server.run_of(res.run_id)
    assert run.info.status == "RUNNING" and server.steps(run.info.run_id, "val_loss") == [1, 2, 3]
    assert cli.main(["runs", "export-mlflow", res.run_id, "--mlflow", server.uri, "--workspace", str(ws)]) == 0
    assert f"{res.run_id}: repaired" in capsys.readouterr().out
    _check_complete(server, store, res.run_id)
    assert cli.main(["runs", "export-mlflow", res.run_id, "--mlflow", server.uri, "--workspace", str(ws)]) == 0
    assert f"{res.run_id}: already complete in MLflow" in capsys.readouterr().out
    _check_complete(server, store, res.run_id)  # nothing doubled


@pytest.mark.slow
def test_the_next_write_after_an_outage_backfills_what_was_missed(server, tmp_path):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    seen: dict[int, list[int]] = {}

    def probe(n: int) -> None:
        if n == EPOCHS - 4:  # the tracker is back since epoch 6: epochs 1..n-1 reached it before the end
            seen[n] = server.steps(tracking_state(store, rid[0], server.uri).mlflow_run_id, "val_loss")

    rid: list[str] = []

    class RunId(Callback):
        def on_train_begin(self, trainer):
            rid.append(trainer.run_id)

    res = run_training(load_template("mlp"), "moons", {"epochs": EPOCHS, "early_stopping": None}, store,
                       [RunId(), Outage(server, down=3, up=6, probe=probe)], tracking=server.uri)
    assert res.status == "finished"
    assert seen[EPOCHS - 4] == list(range(1, EPOCHS - 4))
    _check_complete(server, store, res.run_id)


@pytest.mark.slow
def test_the_end_of_the_run_writes_what_an_outage_missed(server, tmp_path):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    res = run_training(load_template("mlp"), "moons", {"epochs": EPOCHS, "early_stopping": None}, store,
                       [Outage(server, down=3, up=EPOCHS)], tracking=server.uri)
    _check_complete(server, store, res.run_id)
    assert json.loads(store.folder(res.run_id).tracking.read_text())[server.uri]["error"] is None
