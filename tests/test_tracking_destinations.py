"""Where a person's runs are logged (issue 28 item 9): each owner's own MLflow setting, carried in their job
specs, limited to the admin's allow-list for web visitors, and never one of LayerLab's own databases."""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.data.access import SYSTEM, Actor
from builder.errors import LayerLabError
from builder.graph.templates import load_template
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from builder.tracking import tracker
from builder.tracking_destinations import (
    allowed_by,
    check_destination,
    owner_setting,
    resolve_tracking,
    save_owner_setting,
)
from tests.fuzz_budget import budget

ANN, BOB = "anon:" + "a" * 32, "anon:" + "b" * 32


def _config(ws, **tracking) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "server.json").write_text(json.dumps({"tracking": tracking}), encoding="utf-8")


def _mlflow_runs(uri: str) -> dict[str, str]:
    """layerlab run id -> MLflow status of every run in the LayerLab experiment at ``uri``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("LayerLab")
    if exp is None:
        return {}
    return {r.data.tags["layerlab.run_id"]: r.info.status for r in client.search_runs([exp.experiment_id])}


def test_a_visitors_setting_is_theirs_alone(workspace, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'ann' / 'mlflow.db'}"
    (tmp_path / "ann").mkdir()
    _config(workspace, allow=[uri])
    assert save_owner_setting(workspace, ANN, uri) == uri
    assert "MLFLOW_TRACKING_URI" not in os.environ  # nothing written into the server process
    assert owner_setting(workspace, ANN) == uri and resolve_tracking(workspace, ANN) == uri
    assert owner_setting(workspace, BOB) is None and resolve_tracking(workspace, BOB) is None
    store = RunStore(workspace, actor=Actor(BOB))
    bob = run_training(load_template("mlp"), "moons", {"epochs": 1}, store, owner=BOB,
                       tracking=tracker()).run_id
    assert store.get(bob)["status"] == "finished"
    ann = run_training(load_template("mlp"), "moons", {"epochs": 1}, store.as_actor(Actor(ANN)), owner=ANN,
                       tracking=tracker()).run_id
    assert _mlflow_runs(uri) == {ann: "FINISHED"}  # Bob's run went nowhere
    save_owner_setting(workspace, ANN, "")
    assert owner_setting(workspace, ANN) is None


def test_visitors_may_log_only_where_the_admin_allows(workspace):
    for uri in ("http://127.0.0.1:5000", "http://169.254.169.254/latest", "https://mlflow.example.org"):
        with pytest.raises(LayerLabError, match="only where its admin allows.*allowed: none"):
            save_owner_setting(workspace, ANN, uri)
    _config(workspace, allow=["https://mlflow.example.org/team"])
    assert save_owner_setting(workspace, ANN, "https://mlflow.example.org/team/a") == "https://mlflow.example.org/team/a"
    for uri in ("https://mlflow.example.org", "https://mlflow.example.org/teams", "http://mlflow.example.org/team",
                "https://mlflow.example.org.evil.net/team", "https://mlflow.example.org:444/team",
                "https://evil.net/?https://mlflow.example.org/team"):
        with pytest.raises(LayerLabError, match="Fix:"):
            check_destination(uri, workspace, BOB)
    assert check_destination("http://127.0.0.1:5000", workspace, "local") == "http://127.0.0.1:5000"  # the shell's user


def test_the_admins_default_applies_to_everyone_and_is_checked(workspace, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _config(workspace, uri="https://mlflow.school.org")
    assert resolve_tracking(workspace, ANN) == resolve_tracking(workspace, "local") == "https://mlflow.school.org"
    _config(workspace, uri=f"sqlite:///{workspace / 'layerlab.db'}")
    with pytest.raises(LayerLabError, match="LayerLab's own files"):
        resolve_tracking(workspace, ANN)


def _forms(path) -> list[str]:
    return [f"sqlite:///{path}", f"sqlite:////{str(path).lstrip('/')}", f"sqlite+pysqlite:///{path}",
            f"sqlite:///file:{path}?mode=rwc&uri=true", f"file://{path}", str(path)]


def test_layerlabs_own_databases_are_never_a_tracking_store(workspace, tmp_path, monkeypatch):
    store = RunStore(workspace, actor=SYSTEM)
    db = store.workspace / "layerlab.db"
    assert db.is_file()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "link.db").symlink_to(db)
    os.link(db, outside / "hard.db")
    (outside / "wsdir").symlink_to(workspace)
    monkeypatch.chdir(workspace)
    cases = [*_forms(db), *_forms(outside / "link.db"), *_forms(outside / "hard.db"),
             *_forms(outside / "wsdir" / "studies.db"), *_forms(workspace / "runs" / "x"), "sqlite:///layerlab.db",
             "sqlite:///./runs/../layerlab.db", f"sqlite:///{str(db).replace('/', '/./')}"]
    for uri in cases:
        for owner in ("local", ANN):
            _config(workspace, allow=[uri])  # not even when the admin lists it
            with pytest.raises(LayerLabError, match="LayerLab's own files"):
                check_destination(uri, workspace, owner)
    (workspace / "server.json").unlink()
    with pytest.raises(LayerLabError, match="LayerLab's own files"):  # a study storage given elsewhere
        check_destination(f"sqlite:///{outside / 'study.db'}", workspace, "local",
                          also=[f"sqlite:///{outside / 'study.db'}"])
    assert check_destination(f"sqlite:///{outside / 'mlflow.db'}", workspace, "local")


def test_the_run_database_on_a_server_is_never_a_tracking_store_however_it_is_written(workspace, monkeypatch):
    """With the run store on PostgreSQL, a tracking URI naming that database in any spelling (another user or
    driver, the default port written out or not, the host's case, a query) is refused, also when the admin
    lists it; another database on the same server is a destination like any other. No connection is made."""
    monkeypatch.setenv("LAYERLAB_DB_URL", "postgresql+psycopg://layerlab:s3cret@db.school.org/layerlab")
    same = ["postgresql+psycopg://layerlab:s3cret@db.school.org/layerlab", "postgresql://mallory@db.school.org/layerlab",
            "postgresql+psycopg2://x:y@DB.School.org:5432/layerlab?sslmode=require", "postgresql://db.school.org/layerlab"]
    for uri in same:
        for owner in ("local", ANN):
            _config(workspace, allow=[uri])  # not even when the admin lists it
            with pytest.raises(LayerLabError, match="LayerLab's own files") as e:
                check_destination(uri, workspace, owner)
            assert "s3cret" not in str(e.value)
    (workspace / "server.json").unlink()
    # another database on the same server: a job's sandbox would open the server's port (to every host, as
    # Landlock opens ports), so a tracker there is refused; another server is a destination like any other
    with pytest.raises(LayerLabError, match="may not use port 5432"):
        check_destination("postgresql://ann@db.school.org/mlflow", workspace, "local")
    assert check_destination("postgresql://ann@db.school.org:5433/layerlab", workspace, "local")  # another server
    study = "postgresql+psycopg://opt:pw@127.0.0.1:5432/studies"  # a study storage given elsewhere, on a server
    with pytest.raises(LayerLabError, match="LayerLab's own files"):
        check_destination("postgresql://someone@localhost/studies", workspace, "local", also=[study])


def test_the_run_database_is_never_the_mlflow_store_however_either_is_written(workspace, monkeypatch):
    from builder.runs.db import check_database_url

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow@LOCALHOST/ml")
    problems = check_database_url("postgresql+psycopg://layerlab:pw@127.0.0.1:5432/ml", workspace, connect=False)
    assert any("never the MLflow tracking store" in p for p in problems), problems
    assert check_database_url("postgresql+psycopg://layerlab:pw@127.0.0.1:5432/layerlab", workspace,
                              connect=False) == []
    db = workspace.parent / "runs.db"  # an SQLite run database and MLflow's store written as an SQLite URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///file:{db}?mode=rwc&uri=true")
    problems = check_database_url(f"sqlite:///{db}", workspace, connect=False)
    assert any("never the MLflow tracking store" in p for p in problems), problems


@settings(max_examples=budget(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(["runs", "owners", "..", ".", "a b", "x", "studies.db", "layerlab.db"]),
                      min_size=1, max_size=5),
       form=st.integers(0, 5))
def test_any_path_that_resolves_into_the_workspace_is_refused(tmp_path, parts, form):
    ws = tmp_path / "ws"
    (ws / "runs").mkdir(parents=True, exist_ok=True)
    path = ws.joinpath(*parts)
    uri = _forms(path)[form]
    inside = path.resolve().is_relative_to(ws.resolve())
    if inside:
        with pytest.raises(LayerLabError, match="LayerLab's own files"):
            check_destination(uri, ws, "local")
    elif path.resolve() != tmp_path.resolve():
        assert check_destination(uri, ws, "local") == uri


def test_allow_list_matching():
    assert allowed_by("https://h.org/a/b", "https://h.org/a") and allowed_by("https://H.org:443/", "https://h.org")
    assert not allowed_by("https://h.org/ab", "https://h.org/a") and not allowed_by("https://u@h.org.x/", "https://h.org")
    assert not allowed_by("sqlite:///x.db", "https://h.org") and not allowed_by("https://h.org", "sqlite:///x.db")


@pytest.mark.slow
def test_jobs_carry_their_owners_tracker_not_the_servers_environment(job_workspace, tmp_path, monkeypatch):
    from builder.jobs.queue import JobSpec, submit, wait

    leaked = f"sqlite:///{tmp_path / 'leak.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", leaked)  # what the old page wrote into the server process
    ann_uri = f"sqlite:///{tmp_path / 'ann.db'}"
    _config(job_workspace, allow=[ann_uri])
    save_owner_setting(job_workspace, ANN, ann_uri)
    store = RunStore(job_workspace, actor=SYSTEM)  # each job runs for the owner its spec names
    project = load_template("mlp").model_dump(mode="json")
    ann = submit(store, JobSpec(project=project, dataset="moons", config={"epochs": 2}, owner=ANN))
    bob = submit(store, JobSpec(project=project, dataset="moons", config={"epochs": 2}, owner=BOB))
    assert store.job_spec(ann)["tracking"] == ann_uri and store.job_spec(bob)["tracking"] is None
    assert wait(store, [ann, bob], timeout=300) == {ann: "finished", bob: "finished"}
    # the store says finished before the job's tracker has sent its artefacts and ended the MLflow run
    deadline = time.monotonic() + 120
    while _mlflow_runs(ann_uri) != {ann: "FINISHED"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _mlflow_runs(ann_uri) == {ann: "FINISHED"}
    assert not (tmp_path / "leak.db").exists() or _mlflow_runs(leaked) == {}
    with pytest.raises(LayerLabError, match="only where its admin allows"):  # a spec naming another tracker
        submit(store.as_actor(Actor(BOB)), JobSpec(project=project, dataset="moons", config={"epochs": 2}, owner=BOB,
                                                   tracking=leaked))


_HOSTS = st.sampled_from(["ml.school.org", "ML.school.org", "ml.school.org.evil.net", "evil.net", "10.0.0.1",
                          "127.0.0.1", "ml.school.org@evil.net", "evil.net#ml.school.org", "[::1]",
                          "evil.net\\@ml.school.org", "evil.net%5C@ml.school.org", "ml.school.org\t",
                          "evil.net\\\\@ml.school.org", "u:p@ml.school.org", "ml.school.org:443@evil.net"])


@settings(max_examples=budget(200), deadline=None)
@given(scheme=st.sampled_from(["http", "https", "HTTPS", "file", "sqlite"]), host=_HOSTS,
       port=st.sampled_from(["", ":443", ":5000", ":80"]), path=st.sampled_from(["", "/", "/team", "/team/a", "/teams",
                                                                                 "/x/../team", "/?q=/team",
                                                                                 "/team/../admin", "/team/%2E%2E/x",
                                                                                 "/team/..%2f..%2fx", "/team/%252e%252e/x",
                                                                                 "/team\\..\\x", "/team/.%2e/x"]))
def test_an_allowed_destination_has_the_entrys_scheme_host_port_and_path(scheme, host, port, path):
    """What is allowed is checked as the HTTP client MLflow sends with reads it (urllib3, under requests), and
    as a proxy that decodes and normalises paths would: the entry's host and port, and its path below it."""
    from urllib.parse import unquote

    from urllib3.util import parse_url

    uri = f"{scheme}://{host}{port}{path}"
    if not allowed_by(uri, "https://ml.school.org/team"):
        return
    sent = parse_url(uri)
    assert sent.scheme.lower() == "https" and sent.host.lower() == "ml.school.org" and (sent.port or 443) == 443
    decoded = unquote(unquote(sent.path or "")).replace("\\", "/")
    assert decoded == "/team" or decoded.startswith("/team/")
    assert not any(seg in (".", "..") for seg in decoded.split("/"))


def test_a_visitor_exports_only_their_own_runs(workspace, tmp_path):
    from builder.tracking import export_runs

    uri = f"sqlite:///{tmp_path / 'bob.db'}"
    _config(workspace, allow=[uri])
    store = RunStore(workspace, actor=Actor(BOB))  # Bob asks
    ann = run_training(load_template("mlp"), "moons", {"epochs": 1}, store.as_actor(Actor(ANN)), owner=ANN,
                       tracking=tracker()).run_id
    bob = run_training(load_template("mlp"), "moons", {"epochs": 1}, store, owner=BOB, tracking=tracker(uri)).run_id
    answers = []
    for rid in (ann, "20990101-000000-abcdef"):  # another's and an unknown id: the same answer
        with pytest.raises(LayerLabError) as e:
            export_runs(store, [rid], uri, owner=BOB)
        answers.append(str(e.value).replace(rid, "ID"))
    assert answers[0] == answers[1] and "of yours" in answers[0]
    assert [r["run_id"] for r in export_runs(store, None, uri, owner=BOB)] == [bob]
    assert _mlflow_runs(uri) == {bob: "FINISHED"}


def test_the_admins_mlflow_credentials_reach_only_the_admins_tracker(workspace):
    """A job inherits the server's MLFLOW_* settings; the credentials among them stay only for the admin's own
    default tracker, never a visitor's allowed one (or a job with none)."""
    from builder.tracking_destinations import CREDENTIAL_ENV, scrub_credentials

    _config(workspace, uri="https://ml.school.org/team", allow=["https://ml.other.org"])
    secrets = {k: "s3cret" for k in CREDENTIAL_ENV}
    env = {**secrets, "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    assert scrub_credentials(workspace, "https://ml.school.org/team", env) == [] and env == {
        **secrets, "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    for uri in ("https://ml.other.org", None, "https://ml.school.org/team/../x"):
        env = {**secrets, "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
        assert sorted(scrub_credentials(workspace, uri, env)) == sorted(CREDENTIAL_ENV)
        assert env == {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def test_the_shells_relative_tracker_is_its_working_folders(tmp_path, monkeypatch):
    """The local user's $MLFLOW_TRACKING_URI with a relative path names a file of the shell's working folder: it is
    made absolute where it is read, since the jobs that log to it run in other folders (the install folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///rel.db")
    assert resolve_tracking(tmp_path / "ws", "local") == f"sqlite:///{tmp_path / 'rel.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "mlruns")
    assert resolve_tracking(tmp_path / "ws", "local") == str(tmp_path / "mlruns")


def test_a_job_spec_names_the_admins_default_tracker_without_its_credentials(workspace, monkeypatch):
    """A visitor without a setting of their own logs to the admin's default tracker, whose URI may carry the admin's
    password: the run folder's job.json records "the server default", and only the job process reads the URI from
    the config (its run folder, exports and resumes never carry the password)."""
    from builder.jobs import queue
    from builder.jobs.queue import JobSpec, submit
    from builder.tracking_destinations import SERVER_DEFAULT, job_destination

    secret = "https://admin:S3CRET-pw@ml.school.org/team"
    _config(workspace, uri=secret)
    monkeypatch.setattr(queue, "_start", lambda store, run_id: None)  # recorded, not launched
    store = RunStore(workspace, actor=Actor(ANN))
    project = load_template("mlp").model_dump(mode="json")
    rid = submit(store, JobSpec(project=project, dataset="moons", config={"epochs": 1}, owner=ANN))
    text = store.folder(rid).job_spec.read_text(encoding="utf-8")
    assert "S3CRET" not in text and store.job_spec(rid)["tracking"] == SERVER_DEFAULT
    assert job_destination(store.job_spec(rid)["tracking"], workspace) == secret  # what the job process logs to
    store.finish(rid, "stopped")
    again = submit(store, JobSpec(project=project, dataset="moons", config={"epochs": 2}, owner=ANN, resume_run=rid))
    assert again == rid and "S3CRET" not in store.folder(rid).job_spec.read_text(encoding="utf-8")
    _config(workspace, uri=None)  # the admin removed the default since: the job logs nowhere
    assert job_destination(SERVER_DEFAULT, workspace) is None
