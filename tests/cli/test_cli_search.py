"""builder/cli_search.py: `layerlab tune` (JSON output, located errors, two processes sharing one study)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from builder import cli
from builder.data.access import SYSTEM
from builder.runs.store import RunStore
from builder.search import default_storage, load_study, trials_table

ROOT = Path(__file__).resolve().parents[2]


def test_bad_search_specs_are_located_errors_before_any_trial(tmp_path, capsys):
    rc = cli.main(["tune", "mlp", "--dataset", "moons", "--trials", "3", "--workspace", str(tmp_path),
                   "--search", "lr=1e-1..1e-4:log", "--search", "fc9.out_features=8..64", "--search", "fc1.units=1..2"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[0].startswith("search lr: a range must run from low to high; received: lr=0.1..0.0001:log. Fix:")
    assert out[1].startswith("search fc9.out_features: a searched parameter must belong to a node")
    assert out[2].startswith("node fc1: unknown parameter `units` for Linear")
    assert RunStore(tmp_path, actor=SYSTEM).list_runs() == []  # nothing started


def test_tune_needs_a_search_and_a_valid_metric(tmp_path, capsys):
    assert cli.main(["tune", "mlp", "--dataset", "moons", "--workspace", str(tmp_path)]) == 2
    assert "--search" in capsys.readouterr().err
    assert cli.main(["tune", "mlp", "--dataset", "moons", "--workspace", str(tmp_path), "--metric", "r2",
                     "--search", "lr=1e-3..1e-1"]) == 2
    assert "objective must suit" in capsys.readouterr().err


def test_tune_cost_limits_fail_trials_before_any_run(tmp_path, capsys):
    rc = cli.main(["tune", "mlp", "--dataset", "moons", "--trials", "2", "--workspace", str(tmp_path),
                   "--search", "lr=1e-3..1e-1:log", "--max-macs", "100", "--max-params", "10", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["states"] == {"fail": 2} and res["pareto"] == []
    assert RunStore(tmp_path, actor=SYSTEM).list_runs() == []  # nothing trained: the MLP needs 1,152 MACs and 1,218 params


def test_tune_json_holds_best_value_params_and_run_id(tmp_path, capsys):
    rc = cli.main(["tune", "mlp", "--dataset", "moons", "--trials", "2", "--epochs", "2", "--workspace", str(tmp_path),
                   "--search", "lr=1e-3..1e-1:log", "--search", "fc1.out_features={8,16}", "--study", "j",
                   "--metric", "accuracy", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["study"] == "j" and res["n_trials"] == 2 and res["direction"] == "maximize"
    assert set(res["best_params"]) == {"lr", "fc1.out_features"}
    run = RunStore(tmp_path, actor=SYSTEM).get(res["best_run_id"])
    assert run["status"] == "finished" and run["name"] == f"MLP for tabular data · trial {res['best_trial']} of j"
    assert run["final_metrics"]["val_metric"] == pytest.approx(res["best_value"])


@pytest.mark.slow
def test_two_processes_share_one_study_without_duplicates(tmp_path):
    storage = default_storage(tmp_path)
    cmd = [sys.executable, "-m", "builder", "tune", "mlp", "--dataset", "moons", "--trials", "4", "--epochs", "2",
           "--search", "lr=1e-3..1e-1:log", "--study", "shared", "--storage", storage, "--workers", "1", "--pruner", "none",
           "--workspace", str(tmp_path), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAYERLAB_LAUNCHER_IDLE_S": "20"}  # trials in a row: forked
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    study = load_study(storage, "shared")
    rows = trials_table(study)
    ran = [r for r in rows if r["run_id"]]
    assert sorted(r["trial"] for r in ran) == [0, 1, 2, 3]  # every requested trial ran once
    assert len({r["run_id"] for r in ran}) == 4
    assert all(r["state"] == "complete" for r in ran)
    extra = [r for r in rows if not r["run_id"]]  # a surplus ask, if both processes asked at once
    assert all("already holds 4 trials" in r["message"] for r in extra)
    assert len(RunStore(tmp_path, actor=SYSTEM).list_runs()) == 4
    owners = {t.user_attrs["runner"] for t in study.trials if t.user_attrs.get("run_id")}
    assert len(owners) == 2  # both processes ran trials
    for out, _ in outs:
        assert json.loads(out)["study"] == "shared"


def test_a_relative_workspace_is_resolved_once_at_the_door_for_a_search_with_trials(tmp_path, monkeypatch, capsys):
    """``--workspace ws`` names ``./ws`` of where the command ran: the trials' jobs (other processes, other working
    folders) record into it, and nothing is written into the install folder."""
    before = {p.name for p in ROOT.iterdir()}
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    rc = cli.main(["tune", "mlp", "--dataset", "moons", "--trials", "2", "--epochs", "1", "--workspace", "ws",
                   "--search", "lr=1e-3..1e-1:log", "--study", "rel", "--json", "--mlflow", "sqlite:///track.db"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["states"] == {"complete": 2}
    runs = RunStore(here / "ws", actor=SYSTEM).list_runs()
    assert len(runs) == 2 and all(r["status"] == "finished" for r in runs)
    # the relative tracker too: the trials logged into ./track.db (they wrote track.db and mlartifacts/ into
    # the install folder, their working folder)
    assert {p.name for p in ROOT.iterdir()} == before and not (ROOT / "ws").exists(), \
        {p.name for p in ROOT.iterdir()} - before
    assert not (here / "ws" / "ws").exists() and (here / "track.db").is_file()


def test_a_relative_workspace_variable_is_resolved_once_too(tmp_path, monkeypatch, capsys):
    """``LAYERLAB_WORKSPACE=ws`` (the variable, not the flag) was left relative: the trial's job, started in another
    working folder, failed with "No such file or directory: 'ws/runs/<id>/job.json'" and the launcher wrote a second
    workspace ``ws/`` into the install folder; ``LAYERLAB_DB_URL=sqlite:///runs.db`` ended the trial's job and wrote
    runs.db there. Now each names the file of where the command ran, for every process."""
    before = {p.name for p in ROOT.iterdir()}
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("LAYERLAB_WORKSPACE", "ws")
    monkeypatch.setenv("LAYERLAB_DB_URL", "sqlite:///runs.db")  # a relative run database too: the same
    # and a relative server config, whose default tracker the trial's job reads again ("'cfg.json', which is not a
    # file" failed the trial)
    (here / "cfg.json").write_text(json.dumps({"tracking": {"uri": f"sqlite:///{here / 'track.db'}"}}))
    monkeypatch.setenv("LAYERLAB_SERVER_CONFIG", "cfg.json")
    rc = cli.main(["tune", "mlp", "--dataset", "moons", "--trials", "1", "--epochs", "1",
                   "--search", "lr=1e-3..1e-1:log", "--study", "relenv", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["states"] == {"complete": 1}, res
    runs = RunStore(here / "ws", actor=SYSTEM, db_url=f"sqlite:///{here / 'runs.db'}").list_runs()
    assert len(runs) == 1 and runs[0]["status"] == "finished"
    assert {p.name for p in ROOT.iterdir()} == before and not (ROOT / "ws").exists(), \
        {p.name for p in ROOT.iterdir()} - before
    assert (here / "track.db").is_file()


def test_tune_keeps_the_local_users_bare_names_beside_an_app_owners_older_study(tmp_path, capsys):
    """Issue 28: an app owner's study made before names were per owner held a bare name; `layerlab tune --study x`
    then answered "taken by another person's study". Now the local user gets its own study "x", and the owner's
    study keeps its trials and is still found by its owner."""
    import optuna

    storage = default_storage(tmp_path)
    ann = "anon:" + "d4" * 16
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    old = optuna.create_study(study_name="x", storage=storage)
    old.set_user_attr("layerlab", {"owner": ann})
    rc = cli.main(["tune", "mlp", "--dataset", "moons", "--trials", "1", "--workspace", str(tmp_path),
                   "--search", "lr=1e-3..1e-1:log", "--study", "x", "--max-params", "10", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert json.loads(captured.out)["study"] == "x" and "another person" not in captured.err
    mine = load_study(storage, "x")
    assert mine._study_id != old._study_id and len(mine.trials) == 1
    theirs = load_study(storage, "x", owner=ann, workspace=tmp_path)
    assert theirs._study_id == old._study_id and theirs.trials == []


def test_tune_trains_on_the_local_users_file(tmp_path, monkeypatch, capsys):
    """`layerlab tune --data-path data.csv` searches on the command line's own file (it was refused as "a study of
    another owner" whenever no hidden --owner was given: the check read the flag, not the owner it resolves to);
    an app owner's study runner still may not name a file."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 2))
    (tmp_path / "data.csv").write_text("a,b,y\n" + "".join(f"{a},{b},{int(a > 0)}\n" for a, b in x))
    monkeypatch.chdir(tmp_path)
    args = ["tune", "mlp", "--dataset", "csv", "--data-path", "data.csv", "--dataset-option", "target=y",
            "--trials", "1", "--epochs", "1", "--workspace", "ws", "--search", "lr=1e-3..1e-1:log", "--json"]
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out)["states"] == {"complete": 1}
    monkeypatch.setenv("LAYERLAB_STUDY_OWNER", "anon:" + "e5" * 16)
    assert cli.main(args) == 2
    assert "--data-path names a file of the local user" in capsys.readouterr().err
