"""The run store on both of its databases: SQLite (the default) and PostgreSQL (``LAYERLAB_DB_URL``, a real
server started by the tests: tests/conftest.py), its Alembic migrations from a workspace made before them,
and two LayerLab processes sharing one PostgreSQL store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from builder.cli.main import main as cli
from builder.data.access import SYSTEM, Actor
from builder.errors import AccessDenied, RunStoreError
from builder.graph.templates import load_template
from builder.runs import db
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, monkeypatch) -> str:
    """The database URL of the test (SQLite in the workspace, or a fresh PostgreSQL database)."""
    if request.param == "postgresql":
        monkeypatch.setenv(db.ENV_DB_URL, request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    return request.param


def _store(tmp_path: Path, actor: Actor = SYSTEM) -> RunStore:
    return RunStore(tmp_path / "ws", actor=actor)


def test_rows_curves_control_and_access(backend, tmp_path):
    store = _store(tmp_path)
    assert db.is_sqlite(store.db_url) == (backend == "sqlite")
    ann, bob = store.as_actor(Actor("user:ann")), store.as_actor(Actor("user:bob"))
    rid = store.create_run(load_template("mlp"), "moons", {"n_samples": 100}, {"epochs": 2}, owner="user:ann")
    other = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 2}, owner="user:bob")
    assert ann.get(rid[:17], prefix=True)["id"] == rid and [r["id"] for r in ann.list_runs()] == [rid]
    with pytest.raises(AccessDenied):
        bob.get(rid)
    store.log_metrics(rid, [{"type": "step", "step": s, "epoch": 0, "loss": 1.0 / s} for s in range(1, 4)])
    points, cursor = ann.metrics_after(rid, "step")
    assert [p["step"] for p in points] == [1, 2, 3]
    store.log_metrics(rid, [{"type": "step", "step": 4, "epoch": 0, "loss": 0.2},
                            {"type": "epoch", "epoch": 1, "step": 4, "val_loss": 0.5}])
    more, _ = ann.metrics_after(rid, "step", cursor)
    assert [p["step"] for p in more] == [4] and store.get(rid)["epochs_done"] == 1
    assert ann.metrics(rid) == [{"epoch": 1, "step": 4, "val_loss": 0.5}]
    before = store.record_bytes("user:ann")  # what the storage quota counts of its records, on either database
    store.log_metrics(rid, {"type": "step", "step": 5, "epoch": 1, "note": "x" * 10_000})
    assert 10_000 < store.record_bytes("user:ann") - before < 10_100 and store.record_bytes("user:cyd") == 0
    store.set_control(rid, "pause")
    assert store.take_control(rid) == "pause" and store.take_control(rid) is None
    assert store.queue_position(rid) == 1 and store.queue_position(other) == 2
    assert store.claim_slot(other, 1) is False and store.claim_slot(rid, 1) is True  # queue order first
    assert store.get(rid)["status"] == "running" and store.claim_slot(other, 1) is False
    store.finish(rid, "finished", {"val_loss": 0.5}, {"accuracy": 0.9})
    assert store.get(rid)["test_metrics"] == {"accuracy": 0.9} and store.claim_slot(other, 1) is True
    with pytest.raises(AccessDenied):
        bob.delete_run(rid)
    store.update_status(other, "stopped")
    ann.delete_run(rid)
    assert [r["id"] for r in store.list_runs()] == [other]


def test_runs_made_in_one_second_are_listed_newest_first(backend, tmp_path):
    """The Train page shows the newest run of the canvas: a job submitted a moment after another (same second)
    must come first, whatever its id's random part; an old record (created_at to the second) sorts below it."""
    store = _store(tmp_path)
    made = [store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, name=f"r{i}") for i in range(6)]
    old = made[0]
    store.update_run(old, created_at=store.get(made[1])["created_at"][:19] + "+00:00")  # a record before this fix
    assert [r["id"] for r in store.list_runs()] == made[::-1]
    assert store.get(made[5])["created_at"] > store.get(made[4])["created_at"]


def test_concurrent_claims_give_exactly_the_free_slots(backend, tmp_path):
    store = _store(tmp_path)
    ids = [store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}) for _ in range(6)]
    won: list[str] = []
    barrier = threading.Barrier(len(ids))

    def claim(rid: str) -> None:
        barrier.wait()
        for _ in range(30):  # the first queued ones win; the others keep asking
            if store.claim_slot(rid, 2):
                won.append(rid)
                return
            store.log_metrics(rid, {"type": "step", "step": 1, "epoch": 0})

    threads = [threading.Thread(target=claim, args=(rid,)) for rid in ids]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(won) == sorted(ids[:2])
    assert sum(len(store.metrics(r, "step")) for r in ids) > 0


def test_training_records_a_run(backend, tmp_path):
    store = _store(tmp_path)
    rid = run_training(load_template("mlp"), "moons", {"epochs": 2, "batch_size": 64}, store,
                       dataset_options={"n_samples": 200}, adapt=True).run_id
    run = store.get(rid)
    assert run["status"] == "finished" and len(store.metrics(rid)) == 2 and run["final_metrics"]


def test_alembic_head_is_the_stores_revision():
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(db.alembic_config()).get_heads() == [db.HEAD]


# today's schema before migrations (the first release, before owner and the other added columns)
_OLD_SCHEMA = """
CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, created_at TEXT, started_at TEXT,
    updated_at TEXT, finished_at TEXT, pid INTEGER, host TEXT, project TEXT, dataset_name TEXT,
    dataset_options TEXT, dataset_info TEXT, config TEXT, final_metrics TEXT, test_metrics TEXT, message TEXT,
    parent_id TEXT, epochs_done INTEGER DEFAULT 0, environment TEXT);
CREATE TABLE metrics (run_id TEXT NOT NULL, kind TEXT NOT NULL, step INTEGER, epoch INTEGER, data TEXT NOT NULL);
CREATE INDEX metrics_by_run ON metrics (run_id, kind, step);
"""


def test_a_workspace_made_before_migrations_is_upgraded_when_opened(tmp_path, monkeypatch):
    monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    ws = tmp_path / "old"
    (ws / "runs").mkdir(parents=True)
    rid = "20261101-101010-abcdef"
    c = sqlite3.connect(ws / "layerlab.db")
    c.executescript(_OLD_SCHEMA)
    c.execute("INSERT INTO runs (id, name, status, created_at, project, config) VALUES (?, 'old', 'finished', "
              "'2026-11-01T10:10:10+00:00', ?, '{}')", (rid, load_template("mlp").to_json()))
    c.execute("INSERT INTO metrics VALUES (?, 'step', 9, 0, '{}')", ("20261101-101010-000000",))  # rowid 1: other run
    for step in (1, 2, 3):
        c.execute("INSERT INTO metrics VALUES (?, 'step', ?, 0, ?)", (rid, step, json.dumps({"step": step})))
    c.commit()
    c.close()
    store = RunStore(ws, actor=SYSTEM)
    run = store.get(rid)
    assert run["owner"] == "local" and run["class_id"] is None and run["control"] is None
    points, cursor = store.metrics_after(rid, "step")
    assert [p["step"] for p in points] == [1, 2, 3] and cursor == 4  # rowids kept: a page's cursor stays valid
    assert store.metrics_after(rid, "step", 2)[0] == [{"step": 2}, {"step": 3}]
    with sqlite3.connect(ws / "layerlab.db") as c:
        assert c.execute("SELECT version_num FROM alembic_version").fetchone()[0] == db.HEAD
    new = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann", tags={"a": "b"})
    assert store.get(new)["tags"] == {"a": "b"}


def test_runs_stored_before_one_network_hash_are_found_by_their_network_after_the_upgrade(backend, tmp_path):
    """Revision 0005 hashes every stored run's network again, the one way (:func:`builder.graph.edit.graph_hash`):
    a run stored with the canvas's spelling (ports named, defaults written) is the run of the template as loaded,
    on SQLite and on PostgreSQL; going back to 0004 restores the hashes that LayerLab computed."""
    from alembic import command

    from builder.graph.edit import graph_hash
    from builder.runs.summary import current_run

    store = _store(tmp_path)
    mlp = load_template("mlp")
    canvas = mlp.graph.model_copy(update={"edges": [e.model_copy(update={"source_port": "out", "target_port": "in"})
                                                    for e in mlp.graph.edges]})
    rid = store.create_run(mlp.model_copy(update={"graph": canvas}), "moons", {}, {"epochs": 1}, owner="user:ann")
    eng = db.engine(store.db_url)
    with eng.connect() as c, c.begin():
        command.downgrade(db.alembic_config(c), "0004")
    with eng.connect() as c:
        spelled = c.execute(sa.text("SELECT graph_hash FROM runs WHERE id = :i"), {"i": rid}).scalar()
    assert spelled != graph_hash(mlp.graph)  # what 0004 stored: the ports counted
    db._READY.clear()
    if backend == "postgresql":  # a shared database is upgraded by the command, never by a server opening it
        assert cli(["db", "upgrade", "--workspace", str(tmp_path / "ws")]) == 0
    upgraded = _store(tmp_path)
    assert upgraded.get(rid)["graph_hash"] == graph_hash(mlp.graph) == graph_hash(canvas)
    assert current_run(upgraded, mlp.graph, "user:ann")["id"] == rid


def test_a_database_newer_than_this_layerlab_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    ws = tmp_path / "ws"
    RunStore(ws, actor=SYSTEM)
    with sqlite3.connect(ws / "layerlab.db") as c:
        c.execute("UPDATE alembic_version SET version_num = '0999'")
    db._READY.clear()
    with pytest.raises(RunStoreError, match="newer than this LayerLab.*Fix: upgrade LayerLab"):
        RunStore(ws, actor=SYSTEM)


def test_a_shared_database_at_an_older_revision_needs_the_upgrade_command(pg_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(db.ENV_DB_URL, pg_url)
    db.upgrade(pg_url, revision="0001")  # a database an older LayerLab made
    with pytest.raises(RunStoreError, match="revision 0001.*run `layerlab db upgrade` once"):
        RunStore(tmp_path / "ws", actor=SYSTEM)
    assert cli(["db", "current", "--workspace", str(tmp_path / "ws")]) == 0
    assert "revision 0001" in capsys.readouterr().out
    assert cli(["db", "upgrade", "--workspace", str(tmp_path / "ws")]) == 0
    assert f"0001 -> {db.HEAD}" in capsys.readouterr().out
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    assert store.list_runs() == []


def test_an_unreachable_database_server_is_a_message(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(db.ENV_DB_URL, f"postgresql+psycopg://ann:secret@127.0.0.1:{port}/layerlab")
    with pytest.raises(RunStoreError, match="cannot reach the run database") as err:
        RunStore(tmp_path / "ws", actor=SYSTEM)
    assert "secret" not in str(err.value) and "Fix:" in str(err.value)


_SERVER = textwrap.dedent("""
    import json, sys
    from builder.data.access import SYSTEM, Actor
    from builder.graph.templates import load_template
    from builder.runs import classes
    from builder.jobs import quotas
    from builder.runs.store import RunStore
    ws, step = sys.argv[1], sys.argv[2]
    store = RunStore(ws, actor=SYSTEM)
    if step == "make":
        cls = classes.create_class(ws, "user:teacher", "ML 101", load_template("mlp"))
        classes.join_class(ws, cls["code"], "user:ann")
        rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann", class_id=cls["id"])
        store.update_run(rid, pid=1)  # its job waits in a process that lives on (pid 1): still queued for server b
    else:
        ann = store.as_actor(Actor("user:ann"))
        print(json.dumps({"classes": [c["name"] for c in classes.list_classes(ws, member="user:ann")],
                          "runs": [r["owner"] for r in ann.list_runs()],
                          "queued": quotas.usage(store, "user:ann")["queued"]}))
""")


def test_two_servers_sharing_one_postgresql_store_see_each_others_runs_classes_and_quotas(pg_url, tmp_path):
    env = {**os.environ, db.ENV_DB_URL: pg_url, "PYTHONPATH": str(ROOT)}
    config = json.dumps({"teachers": ["user:teacher"]})
    for ws in ("a", "b"):  # two servers, each with its own folder: only the database is shared
        (tmp_path / ws).mkdir()
        (tmp_path / ws / "server.json").write_text(config)

    def server(ws: str, step: str) -> str:
        done = subprocess.run([sys.executable, "-c", _SERVER, str(tmp_path / ws), step], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    server("a", "make")
    seen = json.loads(server("b", "see").strip().splitlines()[-1])
    assert seen == {"classes": ["ML 101"], "runs": ["user:ann"], "queued": 1}
    with sa.create_engine(pg_url).connect() as c:  # the class is a row of the shared database, not a file
        assert c.execute(sa.text("SELECT count(*) FROM documents WHERE kind = 'classes'")).scalar() == 1
    assert not list((tmp_path / "a").glob("classes/c-*.json"))
