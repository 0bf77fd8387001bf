"""Run store: rows and curves, WAL, concurrency, interrupted-run recovery after a kill, transfer learning."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from builder.data.access import SYSTEM
from builder.errors import GraphError, RunStoreError
from builder.graph.templates import load_template
from builder.runs.pipeline import resume_run, run_training
from builder.runs.store import RunStore, default_workspace
from builder.training.checkpoint import read_checkpoint
from builder.training.trainer import TrainingJob
from builder.training.weights import read_weights

ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "ws", actor=SYSTEM)


def test_default_workspace_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("LAYERLAB_WORKSPACE", raising=False)
    assert default_workspace() == Path.home() / ".layerlab"
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(tmp_path / "env"))
    assert default_workspace() == tmp_path / "env"
    assert default_workspace(tmp_path / "flag") == tmp_path / "flag"


def test_a_relative_workspace_is_the_same_for_the_run_store_and_the_caches(monkeypatch, tmp_path):
    """The caches read ``$LAYERLAB_WORKSPACE`` by a rule of their own, relative to each process's working folder: a
    relative workspace put the caches of a process started elsewhere (a job, a trial) in another folder. Both read
    one rule (builder.data.cache.workspace_root): resolved once, written back for the processes started after."""
    from builder.data.cache import cache_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAYERLAB_WORKSPACE", "rel/ws")
    assert cache_dir() == tmp_path / "rel" / "ws" / "cache"  # the caches first: resolved and written back
    monkeypatch.chdir(tmp_path / "..")
    assert default_workspace() == tmp_path / "rel" / "ws" and cache_dir().parent == default_workspace()


def test_rows_curves_and_delete(store):
    assert sqlite3.connect(store.db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rid = store.create_run(load_template("mlp"), "moons", {"n_samples": 100}, {"epochs": 2}, name="first")
    run = store.get(rid)
    assert run["status"] == "queued" and run["project"]["graph"]["nodes"] and run["config"]["epochs"] == 2
    assert store.get(rid[:17], prefix=True)["id"] == rid  # unique prefix (typed on the CLI or a page)
    with pytest.raises(RunStoreError):
        store.get(rid[:17])  # an id in content is exact
    store.update_status(rid, "running")
    store.log_metrics(rid, [{"type": "step", "step": 1, "epoch": 0, "loss": 1.0},
                            {"type": "epoch", "epoch": 1, "step": 1, "train_loss": 1.0, "val_loss": 0.9}])
    assert store.metrics(rid) == [{"epoch": 1, "step": 1, "train_loss": 1.0, "val_loss": 0.9}]
    assert store.metrics(rid, "step") == [{"step": 1, "epoch": 0, "loss": 1.0}]
    store.finish(rid, "finished", {"val_loss": 0.9}, {"accuracy": 0.5})
    run = store.get(rid)
    assert run["status"] == "finished" and run["test_metrics"] == {"accuracy": 0.5} and run["finished_at"]
    assert (store.run_dir(rid) / "model_card.md").is_file()
    assert [r["id"] for r in store.list_runs()] == [rid] and store.list_runs(status="failed") == []
    store.delete_run(rid)
    assert not store.run_dir(rid).exists()
    with pytest.raises(RunStoreError, match="no run"):
        store.get(rid)


def test_run_training_records_everything(store):
    r = run_training(load_template("mlp"), "moons", {"epochs": 3, "log_every": 2}, store,
                     dataset_options={"n_samples": 300})
    run = store.get(r.run_id)
    assert run["status"] == "finished" and run["epochs_done"] == 3
    assert run["test_metrics"]["accuracy"] == r.test["accuracy"] and run["final_metrics"]["epoch"] == 3
    assert len(store.metrics(r.run_id)) == 3 and store.metrics(r.run_id, "step")
    d = store.run_dir(r.run_id)
    for f in ("model.safetensors", "model_card.md", "project.json", "checkpoints/last.safetensors"):
        assert (d / f).is_file(), f
    assert sum(run["dataset_info"]["sizes"].values()) == 300 and run["environment"]["torch"] == torch.__version__


def test_graph_mismatch_is_reported_and_adapt_fixes_it(store):
    with pytest.raises(GraphError) as e:
        run_training(load_template("mlp"), "digits", {"epochs": 1}, store)
    assert {p.node for p in e.value.problems} == {"input", "head"}
    assert store.list_runs() == []  # nothing recorded for a graph that cannot train
    r = run_training(load_template("mlp"), "iris", {"epochs": 1}, store, adapt=True)
    assert r.status == "finished"
    assert store.get(r.run_id)["project"]["graph"]["nodes"][0]["params"]["shape"] == [4]


def test_two_runs_at_once_in_threads(store):
    jobs = [run_training(load_template("mlp"), "moons", {"epochs": 4, "log_every": 1, "seed": s}, store,
                         dataset_options={"n_samples": 600}, background=True) for s in (1, 2)]
    results = [j.join(120) for j in jobs]
    assert all(r.status == "finished" for r in results)
    for j in jobs:
        assert store.get(j.run_id)["status"] == "finished" and len(store.metrics(j.run_id)) == 4


_WRITER = textwrap.dedent("""
    import sys
    from builder.data.access import SYSTEM
    from builder.runs.store import RunStore
    store = RunStore(sys.argv[1], actor=SYSTEM)
    rid = store.create_run({"graph": {"nodes": [], "edges": []}}, "moons", {}, {})
    store.update_status(rid, "running")
    for i in range(150):
        store.log_metrics(rid, {"type": "epoch", "epoch": i + 1, "step": i, "train_loss": 1.0 / (i + 1)})
    store.finish(rid, "finished", {"epoch": 150})
    print(rid)
""")


def test_two_processes_writing_at_once(store):
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(store.workspace)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    ids = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    for rid in ids:
        assert store.get(rid)["status"] == "finished" and len(store.metrics(rid)) == 150


def test_mark_interrupted_leaves_live_runs_alone(store):
    rid = store.create_run(load_template("mlp"), "moons", {}, {})
    store.update_status(rid, "running")  # this process: alive
    assert RunStore(store.workspace, actor=SYSTEM).get(rid)["status"] == "running"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store._write("UPDATE runs SET pid = ? WHERE id = ?", (dead.pid, rid))
    assert store.mark_interrupted() == [rid]
    assert store.get(rid)["status"] == "interrupted"


@pytest.mark.slow
def test_killed_run_is_marked_interrupted_and_resumes(tmp_path):
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "builder.cli.train", "train", "mlp", "--dataset", "moons", "--dataset-option",
           "n_samples=3000", "--batch-size", "8", "--epochs", "200", "--early-stopping", "0", "--checkpoint-every", "1", "--workspace", str(ws), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 180
    store = None
    try:
        while time.time() < deadline:
            if (ws / "layerlab.db").exists():
                store = RunStore(ws, mark_interrupted=False, actor=SYSTEM)
                runs = store.list_runs()
                ckpt = store.checkpoint_path(runs[0]["id"]) if runs else None
                # the epoch is logged before its checkpoint is written: wait for the checkpoint itself
                if ckpt is not None and ckpt.is_file() and read_checkpoint(ckpt)[1]["state"]["epoch"] >= 1:
                    break  # (checkpoints are replaced atomically: the file is never missing or partial)
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        else:
            pytest.fail("the training process did not complete an epoch in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rid = store.list_runs()[0]["id"]
    assert store.get(rid)["status"] == "running"
    store = RunStore(ws, actor=SYSTEM)  # opening marks it
    run = store.get(rid)
    assert run["status"] == "interrupted" and "resume" in run["message"]
    _, meta = read_checkpoint(store.checkpoint_path(rid))
    done = meta["state"]["epoch"]
    assert done >= 1
    result = resume_run(rid, store, overrides={"epochs": done + 1})
    assert result.status == "finished" and result.test["accuracy"] > 0.9
    run = store.get(rid)
    assert run["status"] == "finished" and run["config"]["epochs"] == done + 1
    assert [e["epoch"] for e in store.metrics(rid)] == list(range(1, done + 2))
    with pytest.raises(RunStoreError, match="already finished"):
        resume_run(rid, store)


def test_resume_errors(store):
    with pytest.raises(RunStoreError, match="no run"):
        resume_run("nope", store)
    rid = store.create_run(load_template("mlp"), "moons", {}, {})
    store.update_status(rid, "stopped")
    (store.run_dir(rid) / "checkpoints" / "last.safetensors").unlink(missing_ok=True)
    with pytest.raises(RunStoreError, match="no checkpoint"):
        resume_run(rid, store)


def test_stopped_job_resumes_to_the_same_weights_as_uninterrupted(store):
    cfg = {"epochs": 3, "batch_size": 16, "seed": 3}
    full = run_training(load_template("mlp"), "moons", cfg, store, dataset_options={"n_samples": 300})

    class StopAtTwo:
        def on_train_begin(self, trainer):
            trainer._stop_at_step = 20

        def on_epoch_end(self, trainer, epoch, logs):
            return None

        def on_train_end(self, trainer, result):
            pass

    part = run_training(load_template("mlp"), "moons", cfg, store, [StopAtTwo()], dataset_options={"n_samples": 300})
    assert part.status == "stopped" and store.get(part.run_id)["status"] == "stopped"
    done = resume_run(part.run_id, store)
    assert done.status == "finished" and done.test["accuracy"] == pytest.approx(full.test["accuracy"])
    assert done.test["confusion_matrix"] == full.test["confusion_matrix"]
    a, _ = read_weights(store.weights_path(full.run_id))
    b, _ = read_weights(store.weights_path(part.run_id))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert [e["epoch"] for e in store.metrics(part.run_id)] == [1, 2, 3]


def test_transfer_learning_by_node_id_and_freeze(store):
    src = run_training(load_template("mlp"), "moons", {"epochs": 2}, store)
    src_w, _ = read_weights(store.weights_path(src.run_id))
    dst = run_training(load_template("mlp"), "moons", {"epochs": 2, "lr": 0.05, "init_from": src.run_id,
                                                        "init_nodes": ["fc1", "fc2"], "freeze": ["fc1"]}, store)
    dst_w, _ = read_weights(store.weights_path(dst.run_id))
    assert torch.equal(src_w["fc1.weight"], dst_w["fc1.weight"])  # loaded and frozen
    assert not torch.equal(src_w["fc2.weight"], dst_w["fc2.weight"])  # loaded, then trained
    # a different input width: fc1 is skipped (shape), the rest loads
    import json

    from builder.data import load_dataset
    from builder.data.compat import adapt_graph
    from builder.runs.pipeline import build_model, transfer_weights
    g = adapt_graph(load_template("mlp").graph, load_dataset("iris").info)
    model = build_model(g)
    _, md = read_weights(store.weights_path(src.run_id))
    rep = transfer_weights(model, src_w, json.loads(md["layerlab_names"]))
    assert "fc2" in rep["loaded"] and any(s.startswith("fc1: shapes differ") for s in rep["skipped"])


def test_a_run_started_from_another_says_which_layers_loaded_and_which_started_random(store):
    """Fine-tuning onto other data keeps what fits and starts the rest at random: the run records which (its
    environment), and its Runs view, its model card and the CLI say so (the report was thrown away, so a head
    replaced for a new class count trained from random without a word)."""
    from builder.runs.modelcard import read_model_card
    from builder.training.lineage import init_line

    src = run_training(load_template("mlp"), "moons", {"epochs": 1}, store)
    dst = run_training(load_template("mlp"), "iris", {"epochs": 1, "init_from": src.run_id}, store, adapt=True)
    rec = store.get(dst.run_id).environment["init"]
    assert rec["from"] == src.run_id and rec["loaded"] == 1 and rec["random_count"] == 2, rec
    assert {r.split(":")[0] for r in rec["random"]} == {"fc1", "head"}  # iris: 4 features in, 3 classes out
    line = init_line(store.get(dst.run_id).environment)
    assert line.startswith(f"Started from run {src.run_id}: 1 layer loaded; 2 started random: fc1: shapes differ")
    card = read_model_card(store, dst.run_id)
    assert "## Starting weights" in card and "head: shapes differ" in card
    picked = run_training(load_template("mlp"), "moons", {"epochs": 1, "init_from": src.run_id,
                                                          "init_nodes": ["fc1"]}, store)
    assert init_line(store.get(picked.run_id).environment) == (
        f"Started from run {src.run_id}: 1 layer loaded; 2 started random: fc2: not among the layers to load "
        "(init_nodes); head: not among the layers to load (init_nodes)")
    assert "init" not in store.get(src.run_id).environment


def test_freeze_unknown_node(store):
    """Refused before a run is recorded (tests/training/test_run_settings.py; it was recorded and failed)."""
    from builder.errors import TrainingError
    with pytest.raises(TrainingError, match="freeze must name layers with weights; received: 'nope'"):
        run_training(load_template("mlp"), "moons", {"epochs": 1, "freeze": ["nope"]}, store)
    assert store.list_runs() == []


def test_job_with_store_reports_pause_status(store):
    job = run_training(load_template("mlp"), "moons", {"epochs": 300, "batch_size": 4, "early_stopping": None}, store,
                       dataset_options={"n_samples": 2000}, background=True)
    assert isinstance(job, TrainingJob)
    deadline = time.time() + 30
    while job.status != "running" and time.time() < deadline:
        time.sleep(0.01)
    job.pause()
    while store.get(job.run_id)["status"] != "paused" and time.time() < deadline:
        time.sleep(0.02)
    assert store.get(job.run_id)["status"] == "paused"
    with pytest.raises(RunStoreError, match="cannot run twice"):
        resume_run(job.run_id, store)
    job.stop()
    job.join(30)
    assert store.get(job.run_id)["status"] == "stopped"


def test_uploaded_csv_run_resumes_from_its_data_snapshot(store):
    from builder.data import load_csv
    text = "a,b,kind\n" + "\n".join(f"{i % 7},{(i * 3) % 5},{'x' if i % 7 > 3 else 'y'}" for i in range(120))
    ds = load_csv(text.encode(), "kind", name="upload.csv")
    part = run_training(load_template("mlp"), ds, {"epochs": 3}, store, adapt=True,
                        callbacks=[_StopAfterFirstEpoch()])
    assert part.status == "stopped" and (store.run_dir(part.run_id) / "dataset.safetensors").is_file()
    done = resume_run(part.run_id, store)
    assert done.status == "finished" and done.test["n"] == len(ds.test)


class _StopAfterFirstEpoch:
    def on_train_begin(self, trainer):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        trainer.stop()

    def on_train_end(self, trainer, result):
        pass


# --------------------------------------------------------------------------- id and path safety (issue 9)
CRAFTED_IDS = ["../../x", "../victim", "..", "/tmp/abs", "20261122-000000-abcdef/../../../victim",
               "20261122-000000-abcde/", "2026%", "_", "x\x00y"]


def _victim(tmp_path):
    """A folder outside the workspace that a crafted id could reach, plus one where each id would point."""
    for d in (tmp_path / "victim", tmp_path / "x"):
        d.mkdir(exist_ok=True)
        (d / "keep.txt").write_text("keep")
    return [tmp_path / "victim" / "keep.txt", tmp_path / "x" / "keep.txt"]


@pytest.mark.parametrize("bad", CRAFTED_IDS)
def test_crafted_database_ids_never_reach_the_file_system(tmp_path, bad, capsys):
    from builder import cli

    ws = tmp_path / "a" / "ws"  # ws/runs/../../x is tmp_path/a/x; ../../../victim reaches tmp_path
    store = RunStore(ws, actor=SYSTEM)
    keep = _victim(tmp_path)
    (tmp_path / "a" / "x").mkdir()
    keep.append(tmp_path / "a" / "x" / "keep.txt")
    keep[-1].write_text("keep")
    store._write("INSERT INTO runs (id, status, host, pid) VALUES (?, 'stopped', 'elsewhere', 0)", (bad,))
    for call in (lambda: store.get(bad), lambda: store.delete_run(bad), lambda: store.run_dir(bad),
                 lambda: store.checkpoint_path(bad), lambda: store.weights_path(bad), lambda: resume_run(bad, store),
                 lambda: store.get("2026")):
        with pytest.raises(RunStoreError):
            call()
    for argv in (["runs", "delete", bad], ["runs", "resume", bad], ["runs", "show", bad], ["runs", "delete", "2026"]):
        assert cli.main([*argv, "--workspace", str(ws)]) != 0
        assert "Traceback" not in capsys.readouterr().err
    assert all(k.read_text() == "keep" for k in keep)
    assert [r["id"] for r in store.list_runs()] == [bad]  # still there: nothing was deleted


def test_wildcards_do_not_match_runs(store, capsys):
    from builder import cli

    rid = store.create_run(load_template("mlp"), "moons", {}, {})
    for pattern in ("_", "%", "2026%", rid[:4] + "_", "*", rid[:-1] + "G"):
        with pytest.raises(RunStoreError):
            store.get(pattern, prefix=True)
        assert cli.main(["runs", "delete", pattern, "--workspace", str(store.workspace)]) != 0
    capsys.readouterr()
    assert store.get(rid)["id"] == rid and store.get(rid[:10], prefix=True)["id"] == rid  # exact and prefix
    assert store.run_dir(rid).is_dir()


def test_a_run_folder_linked_outside_the_workspace_is_refused(store, tmp_path):
    keep = _victim(tmp_path)
    rid = store.create_run(load_template("mlp"), "moons", {}, {})
    store.update_status(rid, "stopped")
    import shutil

    shutil.rmtree(store.run_dir(rid))
    (store.workspace / "runs" / rid).symlink_to(tmp_path / "victim", target_is_directory=True)
    with pytest.raises(RunStoreError, match="outside the workspace"):
        store.delete_run(rid)
    with pytest.raises(RunStoreError, match="outside the workspace"):
        store.weights_path(rid)
    assert all(k.read_text() == "keep" for k in keep)
    assert store.get(rid)["status"] == "stopped"  # the refused delete left the row alone


def test_a_runs_message_names_no_server_folder(store):
    """A run's message is shown to its owner, a teacher and an admin: an error quoting a file of the workspace
    (an owner's upload, the run folder) keeps only the file's name, whichever writer records it."""
    rid = store.create_run(load_template("mlp"), "moons", {}, {})
    upload = store.workspace / "owners" / "3fa9c0" / "uploads" / "data.csv"
    store.update_status(rid, "failed", f"cannot read '{upload}': no such file")
    assert store.get(rid)["message"] == "cannot read '.../data.csv': no such file"
    store.update_run(rid, message=f"the training file of this run is gone; received: {upload}")
    assert str(store.workspace) not in store.get(rid)["message"] and "3fa9c0" not in store.get(rid)["message"]
    store.finish(rid, "failed", message=f"stopped at {store.workspace / 'runs' / rid / 'checkpoint.pt'}")
    assert store.get(rid)["message"] == "stopped at .../checkpoint.pt"
    # a row recorded before (or by a writer that skipped the rule) is read without it: as a URI, after a colon
    store._write("UPDATE runs SET message = ? WHERE id = ?", (f"MLflow: file://{upload}; at:{upload}", rid))
    assert store.get(rid)["message"] == "MLflow: file://.../data.csv; at:.../data.csv"
    assert all("3fa9c0" not in r["message"] for r in store.list_runs())


def test_reading_a_run_is_not_writing_into_it(store, monkeypatch):
    """Shared mode reads everyone's runs and a teacher its students' class runs; neither resumes another's run, has
    a job record into it, prunes into it or trains in its owner's name (access.controlled_run, pipeline.acting_owner):
    resume_run asked only to read, and run_training's ``run_id`` and ``owner`` were not asked at all."""
    from builder.data.access import Actor
    from builder.errors import AccessDenied
    from builder.runs.prune_run import prune_run

    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    ann = store.as_actor(Actor("user:ann"))
    mlp = load_template("mlp")
    finished = run_training(mlp, "moons", {"epochs": 1}, ann, owner="user:ann").run_id
    stopped = run_training(mlp, "moons", {"epochs": 3}, ann, owner="user:ann", callbacks=[_StopAfterFirstEpoch()]).run_id
    store.update_run(finished, class_id="c-000000000001")
    before = {r: (store.get(r)["status"], store.weights_path(r).read_bytes() if store.weights_path(r).is_file()
                  else None) for r in (finished, stopped)}
    for who in (Actor("user:bob", shared=True),
                Actor("user:t", students=frozenset({"user:ann"}), teaching=frozenset({"c-000000000001"}))):
        other = store.as_actor(who)
        assert other.get(finished)["id"] == finished  # it reads the run
        attempts = [(resume_run, (stopped, other), {}), (resume_run, (finished, other), {"overrides": {"epochs": 2}}),
                    (run_training, (mlp, "moons", {"epochs": 1}, other), {"owner": who.owner, "run_id": finished}),
                    (run_training, (mlp, "moons", {"epochs": 1}, other), {"owner": "user:ann"}),
                    (prune_run, (other, finished), {"finetune_epochs": 0, "latency_repeats": 1, "new_run": stopped})]
        for call, args, kwargs in attempts:
            with pytest.raises(AccessDenied) as e:
                call(*args, **kwargs)
            assert "user:ann" not in str(e.value)
    after = {r: (store.get(r)["status"], store.weights_path(r).read_bytes() if store.weights_path(r).is_file()
                 else None) for r in (finished, stopped)}
    assert after == before and [r["id"] for r in store.list_runs()] == [stopped, finished]
    resumed = resume_run(stopped, ann)  # its owner still resumes it
    assert resumed.status == "finished"


def test_a_damaged_run_database_is_one_line_with_a_fix(tmp_path):
    """A workspace whose layerlab.db is not a database said "run database error: file is not a database" (the
    driver's words, no fix), on every page and CLI verb."""
    (tmp_path / "layerlab.db").write_bytes(b"not a database " * 100)
    with pytest.raises(RunStoreError, match=r"is damaged or is not a database; received: file is not a database\. "
                                            r"Fix: restore it from a backup"):
        RunStore(tmp_path, actor=SYSTEM).list_runs()


def test_a_jobs_metric_rows_read_back_as_the_trainer_writes_them(tmp_path):
    """A job logs its curve through the broker: its word. Text where a loss or an epoch goes stopped the Runs
    page's charts, the model card (min() of text and numbers) and the run's progress (max() of the epochs)."""
    from builder import load_template
    from builder.data.access import SYSTEM

    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 3})
    store.log_metrics(rid, [{"type": "epoch", "epoch": "2` # x", "train_loss": "low", "val_loss": float("nan"),
                             "metric_name": {"a": 1}, "extras": {"kept": [1]}},
                            {"type": "epoch", "epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "metric_name": "acc"},
                            {"type": "step", "step": [3], "epoch": 0, "loss": True}, 7, ["epoch", 9]])
    first, second = store.metrics(rid)
    assert first["epoch"] is None and first["train_loss"] is None and first["metric_name"] == "metric"
    assert first["val_loss"] != first["val_loss"] and first["extras"] == {"kept": [1]}  # NaN kept: a diverged loss
    assert second == {"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "metric_name": "acc"}
    assert store.metrics(rid, "step") == [{"step": None, "epoch": 0, "loss": None}]
    after = store.metrics_after(rid, "epoch")[0]
    assert [r["epoch"] for r in after] == [None, 1] and after[0]["train_loss"] is None
    assert store.get(rid)["epochs_done"] == 1


def test_a_runs_tracker_credentials_are_its_owners_alone(tmp_path, monkeypatch):
    """A visitor's own allowed tracker may carry a user and password (https://u:pw@host); job.json kept it and
    RunStore.job_spec handed it whole to every reader of the run (a teacher, shared mode, an admin)."""
    from builder.data.access import Actor

    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    ann, bob = "anon:" + "a" * 32, "anon:" + "b" * 32
    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {}, owner=ann,
                           job_spec={"tracking": "https://ann:s3cret@ml.school.org/x", "owner": ann})
    assert RunStore(tmp_path, actor=Actor(ann)).job_spec(rid)["tracking"] == "https://ann:s3cret@ml.school.org/x"
    for other in (Actor(bob, shared=True), Actor("user:admin@school.org", admin=True, shared=True)):
        shown = RunStore(tmp_path, actor=other).job_spec(rid)
        assert "s3cret" not in shown["tracking"] and shown["tracking"].endswith("@ml.school.org/x"), shown
