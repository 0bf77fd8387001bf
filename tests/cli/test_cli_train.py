"""Headless CLI: train with progress and test metrics, runs list/show/resume/delete, export --run, errors."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from builder import cli
from builder.data.access import SYSTEM
from builder.errors import TrainingError
from builder.graph.templates import load_template
from builder.jobs import warm
from builder.runs.pipeline import build_model


def _train(capsys, ws, *extra):
    rc = cli.main(["train", "mlp", "--dataset", "moons", "--epochs", "3", "--workspace", str(ws), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_train_prints_progress_test_metrics_and_run_id(tmp_path, capsys):
    rc, out, err = _train(capsys, tmp_path)
    assert rc == 0, err
    assert re.search(r"^test accuracy 0\.\d{3}$", out, re.M)
    run_id = re.search(r"^run id (\S+)$", out, re.M).group(1)
    assert "epoch 3/3 [####################] loss" in err and "val_accuracy" in err and "ETA" in err
    assert (tmp_path / "runs" / run_id / "model.safetensors").is_file()


def test_early_stopping_is_on_by_default_and_zero_turns_it_off(tmp_path, capsys):
    from builder.runs.store import RunStore

    default = load_template("mlp").training["early_stopping"]  # templates carry their patience
    assert default
    for flag, want in (((), default), (("--early-stopping", "0"), None), (("--early-stopping", "2"), 2)):
        rc, out, err = _train(capsys, tmp_path, *flag)
        assert rc == 0, err
        run_id = re.search(r"^run id (\S+)$", out, re.M).group(1)
        assert RunStore(tmp_path, actor=SYSTEM).get(run_id)["config"]["early_stopping"] == want


def test_a_project_files_early_stopping_0_means_off_as_the_flag_does(tmp_path, capsys):
    """Issue 34: ``"early_stopping": 0`` in a project file was refused ("greater than or equal to 1") although
    ``--early-stopping 0`` meant off; both are off now, and a negative patience is still refused."""
    from builder.runs.store import RunStore
    from builder.training.config import TrainConfig

    project = load_template("mlp")
    project.training = {**(project.training or {}), "early_stopping": 0}
    path = tmp_path / "p.json"
    path.write_text(project.model_dump_json())
    rc = cli.main(["train", str(path), "--dataset", "moons", "--epochs", "2", "--workspace", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    run_id = re.search(r"^run id (\S+)$", out, re.M).group(1)
    assert RunStore(tmp_path, actor=SYSTEM).get(run_id)["config"]["early_stopping"] is None
    assert TrainConfig.resolve("binary", 100, {"early_stopping": 0}).early_stopping is None
    for bad in (-1, False):
        with pytest.raises(TrainingError, match="early_stopping"):
            TrainConfig.from_dict({"early_stopping": bad})


def test_runs_list_show_resume_delete_and_export(tmp_path, capsys):
    _, out, _ = _train(capsys, tmp_path, "--quiet", "--lr", "0.02", "--optimizer", "sgd", "--seed", "4")
    rid = re.search(r"^run id (\S+)$", out, re.M).group(1)
    assert cli.main(["runs", "list", "--workspace", str(tmp_path)]) == 0
    assert rid in capsys.readouterr().out
    assert cli.main(["runs", "show", rid, "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "status      finished" in out and "optimizer=sgd" in out and "test accuracy" in out
    assert cli.main(["runs", "show", rid, "--json", "--workspace", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["lr"] == 0.02 and len(data["curve"]) == 3
    assert cli.main(["runs", "show", rid, "--card", "--workspace", str(tmp_path)]) == 0
    assert "## Test metrics" in capsys.readouterr().out

    assert cli.main(["runs", "resume", rid, "--workspace", str(tmp_path)]) == 2
    assert "already finished" in capsys.readouterr().err
    assert cli.main(["runs", "resume", rid, "--epochs", "5", "--quiet", "--workspace", str(tmp_path)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert cli.main(["runs", "show", rid, "--json", "--workspace", str(tmp_path)]) == 0
    assert [e["epoch"] for e in json.loads(capsys.readouterr().out)["curve"]] == [1, 2, 3, 4, 5]

    w = tmp_path / "w.safetensors"
    assert cli.main(["export", "--run", rid, "--format", "safetensors", "-o", str(w), "--workspace", str(tmp_path)]) == 0
    model = build_model(load_template("mlp").graph)
    model.load_state_dict(load_file(str(w)))
    assert cli.main(["export", "--run", rid, "--workspace", str(tmp_path)]) == 0  # default: source + weights
    exports = tmp_path / "runs" / rid / "exports"
    assert (exports / "model.py").is_file() and (exports / "model.safetensors").is_file()
    capsys.readouterr()
    assert cli.main(["runs", "delete", rid, "--workspace", str(tmp_path)]) == 0
    assert not (tmp_path / "runs" / rid).exists()


def test_errors_have_exit_codes(tmp_path, capsys):
    assert cli.main(["train", "mlp", "--dataset", "nope", "--workspace", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert cli.main(["train", "mlp", "--dataset", "digits", "--workspace", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "node input: Input shape [2]" in out and "node head:" in out
    assert cli.main(["train", "mlp", "--dataset", "moons", "--lr", "-1", "--workspace", str(tmp_path)]) == 2
    assert "lr" in capsys.readouterr().err
    assert cli.main(["runs", "show", "missing", "--workspace", str(tmp_path)]) == 2
    assert cli.main(["train", str(tmp_path / "none.json"), "--workspace", str(tmp_path)]) == 2


def test_a_numeric_column_name_given_as_a_dataset_option_names_that_column(tmp_path, capsys):
    """A header's names are text: --dataset-option target=2020 was read as the number 2020, which names no column
    ("target column 2020 not found"; since column options must be text, "a column name, as text"). A column
    option keeps the text typed; other options are still read as JSON."""
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,2020\n" + "\n".join(f"{i % 7},{(i * 3) % 5},{'x' if i % 7 > 3 else 'y'}" for i in range(120)))
    rc = cli.main(["train", "mlp", "--data-path", str(csv), "--dataset-option", "target=2020", "--adapt",
                   "--epochs", "1", "--quiet", "--workspace", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert json.loads(out)["status"] == "finished"


def test_csv_adapt_and_standalone_entry(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,kind\n" + "\n".join(f"{i % 7},{(i * 3) % 5},{'x' if i % 7 > 3 else 'y'}" for i in range(120)))
    rc = cli.main(["train", "mlp", "--data-path", str(csv), "--target", "kind", "--adapt", "--epochs", "2",
                         "--quiet", "--workspace", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    res = json.loads(out)
    assert res["status"] == "finished" and res["test"]["n"] == 18
    assert cli.main(["runs", "list", "--json", "--workspace", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["dataset_name"] == "csv"
    # the table and the run's page name the upload as every page does ('csv: t.csv'), never bare 'csv'
    assert cli.main(["runs", "list", "--workspace", str(tmp_path)]) == 0
    assert "csv: t.csv" in capsys.readouterr().out
    assert cli.main(["runs", "show", res["run_id"], "--workspace", str(tmp_path)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("dataset"))
    assert line.startswith("dataset     csv: t.csv {") and "'file'" not in line, line


def test_describe_names_an_upload_as_the_pages_do():
    from builder.data import DatasetInfo, describe

    info = DatasetInfo("csv:students.csv", "binary", "tabular", (2,), sizes={"train": 84, "val": 18, "test": 18})
    assert describe(info) == "csv: students.csv: binary, input [2] (float32), split 84/18/18"


def test_nan_run_reports_failure(tmp_path, capsys):
    rc = cli.main(["train", "mlp", "--dataset", "diabetes", "--adapt", "--epochs", "20", "--lr", "9", "--optimizer",
                   "sgd", "--momentum", "0.99", "--quiet", "--workspace", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1 and "NaN/Inf" in err and "learning rate (9) is probably too high" in err and "run id" in out
    assert cli.main(["runs", "list", "--workspace", str(tmp_path)]) == 0
    assert "failed" in capsys.readouterr().out


def test_transfer_learning_flags(tmp_path, capsys):
    _, out, _ = _train(capsys, tmp_path, "--quiet")
    src = re.search(r"^run id (\S+)$", out, re.M).group(1)
    rc, out, err = _train(capsys, tmp_path, "--quiet", "--init-from", src, "--init-nodes", "fc1,fc2",
                          "--freeze", "fc1")
    assert rc == 0, err
    dst = re.search(r"^run id (\S+)$", out, re.M).group(1)
    assert f"Started from run {src}: 2 layers loaded; 1 started random: head: not among the layers to load" in out
    a = load_file(str(tmp_path / "runs" / src / "model.safetensors"))
    b = load_file(str(tmp_path / "runs" / dst / "model.safetensors"))
    assert torch.equal(a["fc1.weight"], b["fc1.weight"]) and not torch.equal(a["head.weight"], b["head.weight"])


def test_ctrl_c_stops_cleanly_checkpoints_and_resumes(tmp_path):
    """SIGINT to a real `layerlab train`: exit 130, run `stopped` with a checkpoint, how to resume printed;
    `runs resume` then finishes it. Waits for a state (an epoch logged), never a fixed sleep."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from builder.runs.store import RunStore

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "builder", "train", "mlp", "--dataset", "moons", "--dataset-option",
           "n_samples=4000", "--batch-size", "8", "--epochs", "500", "--early-stopping", "0", "--workspace", str(ws), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            if (ws / "layerlab.db").exists():
                runs = RunStore(ws, mark_interrupted=False, actor=SYSTEM).list_runs()
                if runs and (runs[0]["epochs_done"] or 0) >= 1:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "AttributeError" not in err
    store = RunStore(ws, actor=SYSTEM)
    run = store.list_runs()[0]
    rid = run["id"]
    assert run["status"] == "stopped"
    assert f"layerlab runs resume {rid}" in err
    assert store.checkpoint_path(rid).is_file()
    done = run["epochs_done"]
    r = subprocess.run([sys.executable, "-m", "builder", "runs", "resume", rid, "--epochs", str(done + 1), "--quiet",
                        "--workspace", str(ws)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert store.get(rid)["status"] == "finished"
    assert [e["epoch"] for e in store.metrics(rid)] == list(range(1, done + 2))


def test_cli_and_jobs_resolve_the_same_settings(tmp_path, capsys, monkeypatch):
    """One project without epochs or batch size: the CLI and a job start from TrainConfig's defaults for its task
    and training-split size, under the project's own settings; the Train page's form is checked against the same
    resolution in tests/app/test_app_train.py."""
    import contextlib
    import os
    import signal

    from builder.data import load_dataset
    from builder.jobs.queue import JobSpec, submit, wait
    from builder.runs.store import RunStore
    from builder.training.config import TrainConfig

    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    monkeypatch.setenv("LAYERLAB_LAUNCHER_IDLE_S", "0")  # one job: no warm launcher for it
    project = load_template("mlp")
    project.training = {"dataset": "moons", "lr": 0.02, "early_stopping": 2}
    path = tmp_path / "p.json"
    path.write_text(project.model_dump_json())
    ws = tmp_path / "ws"
    rc = cli.main(["train", str(path), "--dataset-option", "n_samples=300", "--workspace", str(ws), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    store = RunStore(ws, actor=SYSTEM)
    by_cli = store.get(re.search(r"^run id (\S+)$", out, re.M).group(1))["config"]
    rid = submit(store, JobSpec(project=project.model_dump(), dataset="moons", dataset_options={"n_samples": 300}))
    try:
        assert wait(store, [rid], 180) == {rid: "finished"}
    finally:
        pidfile = store.workspace / warm.LAUNCHER_PID
        if pidfile.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
    by_job = store.get(rid)["config"]
    n_train = len(load_dataset("moons", n_samples=300).train)
    expected = TrainConfig.resolve("binary", n_train, project.training).model_dump()
    assert by_cli == by_job == expected
    assert (expected["epochs"], expected["batch_size"], expected["lr"]) == (50, 32, 0.02)


def test_a_reader_exports_a_checkpoint_only_run_without_writing_into_it(tmp_path, capsys, monkeypatch):
    """A run with only a checkpoint (stopped before its final weights) was exported by turning the checkpoint into a
    weights file inside the run's ``exports/``, so a reader (the CLI's local user in shared mode, reading another
    owner's run) was refused even with ``-o``. The reader now gets the file; the run's folder is unchanged."""
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    ann = RunStore(tmp_path, actor=SYSTEM)
    rid = run_training(load_template("mlp"), "moons", {"epochs": 1}, ann, owner="anon:someone-else").run_id
    folder = ann.folder(rid)
    folder.weights.unlink()  # as a run stopped before its final weights: the checkpoint alone
    assert folder.checkpoint.is_file()
    before = sorted(p.relative_to(folder.path) for p in folder.path.rglob("*"))
    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    out = tmp_path / "w.safetensors"
    assert cli.main(["export", "--run", rid, "-o", str(out), "--workspace", str(tmp_path)]) == 0, capsys.readouterr()
    model = build_model(load_template("mlp").graph)
    model.load_state_dict(load_file(str(out)))  # the checkpoint's weights
    assert sorted(p.relative_to(folder.path) for p in folder.path.rglob("*")) == before
    capsys.readouterr()
    assert cli.main(["export", "--run", rid, "--workspace", str(tmp_path)]) == 2  # into its exports/: refused
    assert f"no run '{rid}' of yours" in capsys.readouterr().err


def test_runs_json_names_other_owners_by_pseudonym_never_by_their_id(tmp_path, capsys, monkeypatch):
    """Issue 28 (identities): in shared mode the command line lists every owner's runs, and ``--json`` printed each
    row whole, its ``owner`` an anonymous visitor's id, which is that browser's cookie (a review found
    ``"owner": "anon:c0ffee..."`` in ``runs list --json`` and ``runs show ID --json``): whoever read the output could
    sign in as that visitor. Owners are shown by pseudonym, as every other view shows them."""
    from builder.data.access import Actor
    from builder.runs.owners import pseudonym
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    anon = "anon:" + "c0ffee" * 5 + "ab"
    rid = run_training(load_template("mlp"), "moons", {"epochs": 1}, RunStore(tmp_path, actor=Actor(anon)),
                       owner=anon).run_id
    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    capsys.readouterr()
    assert cli.main(["runs", "list", "--json", "--workspace", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert cli.main(["runs", "show", rid, "--json", "--workspace", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    for out in (listed, shown):
        assert "c0ffee" not in out  # no part of the id
    assert [r["owner"] for r in json.loads(listed) if r["id"] == rid] == [pseudonym(tmp_path, anon)]
    assert json.loads(shown)["owner"] == pseudonym(tmp_path, anon) and json.loads(shown)["id"] == rid
