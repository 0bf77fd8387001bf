"""The run database as a server-wide setting (``builder.runs.db.set_database_url``): an admin's alone, checked
(every problem at once: a PostgreSQL or SQLite URL that answers, never an MLflow store), saved readable by the
server only, shown without its password, and used from the next start on."""

from __future__ import annotations

import stat

import pytest
import sqlalchemy as sa

from builder.data.access import SYSTEM, Actor
from builder.errors import AccessDenied, RunStoreError
from builder.runs import db, owners
from builder.runs.store import RunStore


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    monkeypatch.delenv(owners.ENV_SERVER_CONFIG, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(db, "_PINNED", {})  # this test's process starts afresh
    return tmp_path / "ws"


def test_only_an_admin_sets_the_database(ws):
    RunStore(ws, actor=SYSTEM)
    with pytest.raises(AccessDenied, match="only an admin sets the run database"):
        db.set_database_url(ws, Actor("user:ann"), "sqlite:////tmp/x.db")
    assert owners.server_config(ws) == {}


def test_every_problem_is_said_and_nothing_is_saved(ws, pg_url):
    RunStore(ws, actor=SYSTEM)
    owners.set_server_config(ws, tracking={"uri": pg_url.replace("+psycopg", "")})  # MLflow on this database
    admin = Actor("local", admin=True)
    for url, said in [("https://mlflow.school.org", "never an MLflow tracking store"),
                      ("sqlite:///layerlab.db", "an SQLite run database is an absolute file path"),
                      ("mysql://u:pw@h/db", "the run database is PostgreSQL or SQLite"),
                      ("postgresql+psycopg://u:pw@/db", "names its host and database"),
                      (pg_url, "the server's MLflow destination"),
                      ("postgresql+psycopg://u:s3cret@127.0.0.1:1/none", "the run database answers")]:
        with pytest.raises(RunStoreError, match=said) as e:
            db.set_database_url(ws, admin, url)
        assert "s3cret" not in str(e.value) and "pw@" not in str(e.value)
    problems = db.check_database_url("postgresql+psycopg://u:pw@/db", ws, connect=False)
    assert problems == [p for p in problems if "received:" in p and "Fix:" in p]
    owners.set_server_config(ws, tracking=None)
    eng = sa.create_engine(pg_url)
    with eng.begin() as c:  # a database MLflow made
        c.execute(sa.text("CREATE TABLE experiments (experiment_id INTEGER)"))
    eng.dispose()
    with pytest.raises(RunStoreError, match=r"holds MLflow's tables \(experiments\)"):
        db.set_database_url(ws, admin, pg_url)
    assert db.CONFIG_KEY not in owners.server_config(ws)


def test_a_saved_database_is_used_from_the_next_start(ws, pg_url):
    store = RunStore(ws, actor=SYSTEM)
    url = pg_url.replace("postgres@", "postgres:s3cret@")  # the test server trusts any password
    note = db.set_database_url(ws, Actor("local", admin=True), url)
    assert "when the server restarts" in note and "s3cret" not in note
    path = owners.server_config_path(ws)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and owners.server_config(ws)[db.CONFIG_KEY] == url
    shown = db.database_setting(ws)
    assert shown["restart"] and shown["source"] == "the workspace's SQLite file"
    assert "s3cret" not in repr(shown) and shown["configured"].endswith(pg_url.rsplit("@", 1)[1])
    assert db.is_sqlite(RunStore(ws, actor=SYSTEM).db_url)  # this server keeps its database until it restarts
    assert db.process_env(ws) == {db.ENV_DB_URL: store.db_url}  # and so do the jobs it starts meanwhile
    db._PINNED.clear()  # the restart
    assert RunStore(ws, actor=SYSTEM).db_url == url
    shown = db.database_setting(ws)
    assert shown["source"] == "the server config" and not shown["restart"]
    db.set_database_url(ws, Actor("local", admin=True), "")  # back to the workspace's file, at the next start
    assert db.CONFIG_KEY not in owners.server_config(ws) and db.database_setting(ws)["restart"]
