"""MLflow outages (issue 34 item 4): against a real ``mlflow server`` process killed (SIGKILL) mid-run and started
again on the same port and database, what the tracker missed is written when it answers again (a later epoch,
the end of the run), and ``layerlab runs export-mlflow`` repairs a run the tracker holds in part instead of
answering "already in MLflow"."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from builder import cli
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from builder.tracking import tracker, tracking_state
from builder.training.callbacks import Callback
from tests.serving import free_port, missing, wait_healthy

EPOCHS = 25


class TrackingServer:
    """``mlflow server`` (the full ``mlflow`` package: the ``layerlab[mlflow-server]`` extra) on 127.0.0.1, one
    port, one SQLite database and artefact folder, to kill and start again. Its artefacts go through it (MLflow's
    proxied artefacts, ``mlflow-artifacts:/``), as a confined job cannot write a tracker's local folder. Each start is a new process group
    (the ``mlflow`` command and its uvicorn worker), killed as a whole by its own id."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                     "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
                     "--port", str(self.port), "--workers", "1"]
        # the tracking store only: no job runner (huey consumers for LLM evaluation jobs), no tracker of its own
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen | None = None

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def start(self, timeout: float = 240) -> None:
        """Start the server and wait until ``/health`` answers 200 (RuntimeError after ``timeout`` seconds or
        when the process exits first)."""
        if self.proc is not None:
            raise RuntimeError(f"mlflow server is already running on port {self.port}")
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.args, cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        code, last = wait_healthy(f"{self.uri}/health", self.proc, timeout)
        if code is not None:
            self.proc = None
            raise RuntimeError(f"mlflow server exited with code {code} before answering; log:\n{self._tail()}")
        if last is not None:
            self.kill()
            raise RuntimeError(f"mlflow server did not answer {self.uri}/health within {timeout:.0f} s (last: "
                               f"{last}); log:\n{self._tail()}")

    def kill(self, timeout: float = 30) -> None:
        """An outage: SIGKILL to the server's own process group (the ``mlflow`` command and its workers), then
        wait until nothing accepts connections on its port (RuntimeError after ``timeout`` seconds)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):  # the whole group gone already
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout)
        self.proc = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {self.port} still accepts connections {timeout:.0f} s after the kill")
            time.sleep(0.1)  # the kernel closes a killed worker's socket when it exits

    def run_of(self, layerlab_id: str):
        client = MlflowClient(self.uri)
        exp = client.get_experiment_by_name("LayerLab")
        runs = client.search_runs([exp.experiment_id], f"tags.`layerlab.run_id` = '{layerlab_id}'")
        assert len(runs) == 1, runs
        return runs[0]

    def steps(self, mlflow_id: str, key: str) -> list[int]:
        return [m.step for m in MlflowClient(self.uri).get_metric_history(mlflow_id, key)]


@pytest.fixture(scope="module")
def _mlflow_server(tmp_path_factory):
    """One server process (and database) for this file's tests, killed at the end: each start costs seconds."""
    try:
        importlib.metadata.version("mlflow")
    except importlib.metadata.PackageNotFoundError:
        missing("`mlflow server` (the full mlflow package: pip install -e '.[mlflow-server]'; mlflow-skinny has "
                "no server)", "MLflow outage tests")
    srv = TrackingServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
def server(_mlflow_server, monkeypatch):
    """The server, answering (started again when an earlier test left it down)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if _mlflow_server.proc is None:
        _mlflow_server.start()
    return _mlflow_server


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
                       [Outage(server, down=3)], tracking=tracker(server.uri))
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
                       [RunId(), Outage(server, down=3, up=6, probe=probe)], tracking=tracker(server.uri))
    assert res.status == "finished"
    assert seen[EPOCHS - 4] == list(range(1, EPOCHS - 4))
    _check_complete(server, store, res.run_id)


@pytest.mark.slow
def test_the_end_of_the_run_writes_what_an_outage_missed(server, tmp_path):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    res = run_training(load_template("mlp"), "moons", {"epochs": EPOCHS, "early_stopping": None}, store,
                       [Outage(server, down=3, up=EPOCHS)], tracking=tracker(server.uri))
    _check_complete(server, store, res.run_id)
    assert json.loads(store.folder(res.run_id).tracking.read_text())[server.uri]["error"] is None


def test_a_sandboxed_job_reaches_its_http_tracker_through_its_network_rules(server, job_workspace):
    """A web visitor's job is confined to its tracker's TCP port (builder.tracking_destinations.tcp_ports: every
    other port of the host and its network, a database server's included, is shut where the kernel has Landlock's
    network rules): it logs its curves and sends its artefacts to the admin-allowed ``mlflow server`` all the
    same."""
    from builder.jobs.queue import JobSpec, submit, wait
    from builder.process import landlock
    from builder.tracking_destinations import save_owner_setting

    owner = "anon:" + "a" * 32
    job_workspace.mkdir(parents=True, exist_ok=True)
    (job_workspace / "server.json").write_text(json.dumps({"tracking": {"allow": [server.uri]}}), encoding="utf-8")
    save_owner_setting(job_workspace, owner, server.uri)
    store = RunStore(job_workspace, actor=SYSTEM)
    rid = submit(store, JobSpec(project=load_template("mlp").model_dump(mode="json"), dataset="moons",
                                config={"epochs": 2}, owner=owner))
    assert wait(store, [rid], timeout=300) == {rid: "finished"}
    log = store.folder(rid).job_log.read_text(errors="replace")
    if landlock.net_abi():
        assert f"TCP: connects to port(s) {server.port} only, listens on none" in log, log[-2000:]
    deadline = time.monotonic() + 120  # the store says finished before the tracker has sent the artefacts
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):
            if server.run_of(rid).info.status == "FINISHED":
                break
        time.sleep(0.2)
    run = server.run_of(rid)
    assert run.info.status == "FINISHED" and server.steps(run.info.run_id, "val_loss") == [1, 2], log[-2000:]
    names = {f.path for f in MlflowClient(server.uri).list_artifacts(run.info.run_id)}
    assert {"project.json", "model.safetensors"} <= names, names
