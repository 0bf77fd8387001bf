"""builder/tracking.py: runs mirrored into MLflow (live and by export), trials nested under their study."""

from __future__ import annotations

import warnings

import mlflow  # the layerlab[mlflow] extra; `make test` installs it (a plain import: CI must not skip these)
import pytest

from builder import cli  # noqa: E402
from builder.data.access import SYSTEM
from builder.graph.templates import load_template  # noqa: E402
from builder.runs.pipeline import resume_run, run_training  # noqa: E402
from builder.runs.store import RunStore  # noqa: E402
from builder.search import StudyRunner, StudySettings, trials_table  # noqa: E402
from builder.tracking import TrackingWarning, run_params, tracker  # noqa: E402


@pytest.fixture
def uri(tmp_path, monkeypatch):
    u = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", u)
    return u


def _runs(uri):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=["LayerLab"])


def _one(df, run_id):
    rows = df[df["tags.layerlab.run_id"] == run_id]
    assert len(rows) == 1
    return rows.iloc[0]


def _check_mirrored(uri, store, run_id, epochs):
    row = _one(_runs(uri), run_id)
    assert row["status"] == "FINISHED"
    assert row["params.node.fc1.out_features"] == "32" and row["params.optimizer"] == "adam"
    assert row["params.dataset"] == "moons" and row["params.epochs"] == str(epochs)
    test = store.get(run_id)["test_metrics"]
    assert row["metrics.test_accuracy"] == pytest.approx(test["accuracy"])
    client = mlflow.MlflowClient(uri)
    hist = client.get_metric_history(row["run_id"], "val_loss")
    curve = store.metrics(run_id)
    assert [m.step for m in hist] == [e["epoch"] for e in curve]
    assert [m.value for m in hist] == pytest.approx([e["val_loss"] for e in curve])
    assert len(client.get_metric_history(row["run_id"], "val_accuracy")) == epochs
    files = {f.path for f in client.list_artifacts(row["run_id"])}
    assert {"project.json", "model_card.md", "model.safetensors", "model.py"} <= files
    return row


def test_training_logs_params_metrics_and_artefacts(tmp_path, uri):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    res = run_training(load_template("mlp"), "moons", {"epochs": 3}, store, tracking=tracker())
    _check_mirrored(uri, store, res.run_id, 3)
    assert not list(tmp_path.glob("mlruns")) and (tmp_path / "mlartifacts").is_dir()  # artefacts beside the db


def test_resume_continues_the_same_mlflow_run(tmp_path, uri):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    res = run_training(load_template("mlp"), "moons", {"epochs": 2}, store, tracking=tracker())
    resume_run(res.run_id, store, overrides={"epochs": 4}, tracking=tracker())
    df = _runs(uri)
    row = _one(df, res.run_id)
    hist = mlflow.MlflowClient(uri).get_metric_history(row["run_id"], "val_loss")
    assert [m.step for m in hist] == [1, 2, 3, 4]


def test_unreachable_tracker_warns_and_training_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_training(load_template("mlp"), "moons", {"epochs": 2}, store, tracking=tracker())
    assert res.status == "finished" and store.get(res.run_id)["status"] == "finished"
    assert any(issubclass(w.category, TrackingWarning) and "kept in LayerLab's store" in str(w.message)
               for w in caught)


def test_export_mlflow_copies_existing_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ws = tmp_path / "ws"
    store = RunStore(ws, actor=SYSTEM)
    a = run_training(load_template("mlp"), "moons", {"epochs": 2}, store, tracking=tracker()).run_id
    b = run_training(load_template("mlp"), "moons", {"epochs": 3}, store, tracking=tracker()).run_id
    uri = f"sqlite:///{tmp_path / 'export.db'}"
    assert cli.main(["runs", "export-mlflow", "--mlflow", uri, "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert f"{a}: exported as" in out and f"{b}: exported as" in out
    _check_mirrored(uri, store, a, 2)
    _check_mirrored(uri, store, b, 3)
    assert cli.main(["runs", "export-mlflow", a, "--mlflow", uri, "--workspace", str(ws)]) == 0
    assert f"{a}: already complete in MLflow" in capsys.readouterr().out
    assert len(_runs(uri)) == 2


def test_export_without_tracker_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli.main(["runs", "export-mlflow", "--workspace", str(tmp_path)]) == 2
    assert "MLFLOW_TRACKING_URI" in capsys.readouterr().err


def test_params_cover_settings_and_every_node():
    run = {"config": {"lr": 0.01, "grad_clip": None}, "dataset_name": "moons", "dataset_options": {"noise": 0.2},
           "project": load_template("mlp").model_dump()}
    p = run_params(run)
    assert p["lr"] == "0.01" and "grad_clip" not in p and p["dataset.noise"] == "0.2"
    assert p["node.head.out_features"] == "2" and p["node.input.shape"] == "[2]" and p["node.act1.type"] == "ReLU"


@pytest.mark.slow
def test_search_trials_are_nested_under_the_study(tmp_path, uri):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    runner = StudyRunner(store, load_template("mlp"), "moons", {"epochs": 2}, space=["lr=1e-3..1e-1:log"],
                         settings=StudySettings(name="nest", n_trials=2, workers=2, pruner="none"))
    res = runner.run()
    df = _runs(uri)
    parent = df[df["tags.layerlab.study_parent"] == "nest"]
    assert len(parent) == 1
    pid = parent.iloc[0]["run_id"]
    assert parent.iloc[0]["tags.best.run_id"] == res.best_run_id
    for r in trials_table(runner.study):
        row = _one(df, r["run_id"])
        assert row["tags.mlflow.parentRunId"] == pid and row["tags.layerlab.trial"] == str(r["trial"])


def test_two_owners_studies_of_one_name_never_share_a_parent_in_one_tracker(tmp_path, uri):
    """Study names are per owner (issue 28): two people's studies of one name mirrored into one tracker (the
    server's default, or one the admin allows both) get a parent run each: the second's trials never nest under
    the first's study (nor would its best result be written onto it), and the parent's key names neither owner's
    id nor its folder."""
    from mlflow.tracking import MlflowClient

    from builder.runs.owners import safe_id
    from builder.tracking import TAG_STUDY_PARENT, Tracker

    ws = tmp_path / "ws"
    ann, bob = "anon:" + "a" * 32, "anon:" + "b" * 32
    tr = Tracker(uri, workspace=ws)
    trial = {"ann": tr.start({"id": "20261125-000000-aaaaaa", "owner": ann, "name": "sweep #0"},
                             {"study": "sweep", "trial": 0}),
             "bob": tr.start({"id": "20261125-000000-bbbbbb", "owner": bob, "name": "sweep #0"},
                             {"study": "sweep", "trial": 0})}
    client = MlflowClient(tracking_uri=uri)
    parent = {who: client.get_run(rid).data.tags["mlflow.parentRunId"] for who, rid in trial.items()}
    assert parent["ann"] != parent["bob"]
    assert tr.study_parent("sweep", owner=ann) == parent["ann"] and tr.study_parent("sweep", owner=bob) == parent["bob"]
    for who, owner in (("ann", ann), ("bob", bob)):
        tags = client.get_run(parent[who]).data.tags
        assert tags["layerlab.study"] == "sweep"
        assert "a" * 8 not in tags[TAG_STUDY_PARENT] and "b" * 8 not in tags[TAG_STUDY_PARENT]
        assert safe_id(ws, owner) not in tags[TAG_STUDY_PARENT]
    assert tr.study_parent("sweep") != parent["ann"]  # the command line's own study of that name: its own


def test_a_trackers_error_never_carries_its_credentials(tmp_path, monkeypatch):
    """MLflow quotes the request's URL in its errors, the tracking URI's password included: a run's tracking
    error (kept in its folder, warned into its log) and an export's refusal name the tracker without it (the
    server's default tracker is the admin's, used by every visitor's runs)."""
    from builder.errors import LayerLabError
    from builder.tracking import MlflowCallback, TrackingState, export_runs

    cb = MlflowCallback.__new__(MlflowCallback)
    cb.uri, cb.run_id, cb.tracker, cb.behind, cb.failures, cb.wait = ("https://admin:S3CRETPW@ml.org", "r1", None,
                                                                       False, 0, 0)
    cb.state = TrackingState()
    with pytest.warns(TrackingWarning) as caught:
        cb._fail(RuntimeError("API request to https://admin:S3CRETPW@ml.org/api/2.0/x failed"))
    assert "ml.org/api" in cb.state.error and "S3CRETPW" not in cb.state.error
    assert not [w for w in caught if "S3CRETPW" in str(w.message)]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(LayerLabError) as e:
        export_runs(RunStore(tmp_path / "ws", actor=SYSTEM), [], "https://admin:S3CRETPW@127.0.0.1:9")
    assert "127.0.0.1" in str(e.value) and "S3CRETPW" not in str(e.value)


def test_train_mlflow_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "restored-after-test")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    uri = f"sqlite:///{tmp_path / 'flag.db'}"
    ws = tmp_path / "ws"
    assert cli.main(["train", "mlp", "--dataset", "moons", "--epochs", "2", "--quiet", "--workspace", str(ws),
                     "--mlflow", uri]) == 0
    rid = capsys.readouterr().out.split("run id ")[1].split()[0]
    _check_mirrored(uri, RunStore(ws, actor=SYSTEM), rid, 2)


def test_the_pipeline_takes_a_tracker_the_caller_attaches_and_refuses_a_uri(tmp_path):
    """The pipeline imports no tracker: a caller attaches one (:func:`builder.tracking.tracker`); a URI (LayerLab
    0.1's ``tracking="sqlite:///..."``) is refused before anything trains, with the fix."""
    from builder.errors import TrainingError
    from builder.runs.pipeline import _tracked
    from builder.tracking import attach_tracking, tracker

    store = RunStore(tmp_path, actor=SYSTEM)
    with pytest.raises(TrainingError, match=r"received: 'sqlite:///m.db'\. Fix: pass builder.tracking.tracker"):
        _tracked("sqlite:///m.db", store, "20261124-000000-abcdef")
    assert _tracked(None, store, "20261124-000000-abcdef") == []
    assert _tracked(tracker("sqlite:///m.db"), None, None) == []  # no stored run: nothing to log
    hook = tracker("sqlite:///m.db")
    assert hook.func is attach_tracking and hook.keywords == {"uri": "sqlite:///m.db"}
