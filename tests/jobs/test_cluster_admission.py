"""Servers sharing one store decide through it: which jobs go to the cluster (the room, each owner's running cap,
one fair order: :func:`builder.jobs.executors.place_jobs`, two processes on a real PostgreSQL server; the lock that
makes it one decision at a time, on PostgreSQL and SQLite, through an interleaving that over-fills the cluster
without it), and which live runs of another host have lost their process (their heartbeat:
``RunStore.mark_interrupted``). No Ray: a remote job is a run row of a foreign host."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder.data.access import SYSTEM
from builder.errors import RunStoreError
from builder.graph.templates import load_template
from builder.jobs import executors
from builder.jobs.control import StoreControl
from builder.jobs.executors import Resources, _Job, place_jobs
from builder.runs import db
from builder.runs.store import RunStore
from builder.training.run_status import ENV_BEAT_S, ENV_STALE_S, STALE_S

ROOT = Path(__file__).resolve().parents[2]


def _remote(store: RunStore, status: str, host: str, beat_age: float | None) -> str:
    """A run recorded as a job of another host, its last heartbeat ``beat_age`` seconds ago (None: never)."""
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann")
    beat = None if beat_age is None else time.time() - beat_age
    store._write("UPDATE runs SET status = ?, host = ?, pid = ?, beat_at = ? WHERE id = ?",
                 (status, host, 4242, beat, rid))
    return rid


def test_a_remote_run_whose_heartbeat_stopped_is_interrupted_by_the_next_reader(tmp_path, monkeypatch):
    monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    ws = tmp_path / "ws"
    store = RunStore(ws, actor=SYSTEM)
    dead = _remote(store, "running", "gpu-node-7", STALE_S + 30)  # its node and its server died together
    paused = _remote(store, "paused", "gpu-node-7", STALE_S + 30)
    alive = _remote(store, "running", "gpu-node-8", 2.0)
    waiting = _remote(store, "queued", "head-2", 2.0)  # held in another server's queue, which still beats
    legacy = _remote(store, "running", "gpu-node-9", None)  # recorded before heartbeats: left to its host
    RunStore(ws, actor=SYSTEM)  # any reader, on any server
    status = {rid: store.get(rid) for rid in (dead, paused, alive, waiting, legacy)}
    assert status[dead]["status"] == status[paused]["status"] == "interrupted"
    assert "gpu-node-7 sent no heartbeat" in status[dead]["message"]
    assert f"layerlab runs resume {dead}" in status[dead]["message"]
    assert [status[r]["status"] for r in (alive, waiting, legacy)] == ["running", "queued", "running"]


def test_a_job_beats_from_its_control_thread_before_training_begins(tmp_path, monkeypatch):
    monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    monkeypatch.setenv(ENV_BEAT_S, "0.05")
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    rid = _remote(store, "running", "gpu-node-7", STALE_S + 30)
    control = StoreControl(store, rid, poll_s=0.02)
    control.start()  # what run_job does before loading the data
    try:
        deadline = time.monotonic() + 30
        while time.time() - (store.get(rid)["beat_at"] or 0) > STALE_S and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        control.close()
    assert time.time() - store.get(rid)["beat_at"] < STALE_S
    RunStore(tmp_path / "ws", actor=SYSTEM)
    assert store.get(rid)["status"] == "running"


# the second server: places its own jobs with place_jobs once the test's process says go
_SERVER = """
import json, sys, time
from pathlib import Path
from builder.data.access import SYSTEM
from builder.errors import RunStoreError
from builder.jobs import executors
from builder.jobs.executors import Resources, _Job, place_jobs
from builder.runs.store import RunStore
ws, go, mine = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
store = RunStore(ws, actor=SYSTEM, mark_interrupted=False)
jobs = [_Job(rid, owner, Resources(1.0, 0.25, 2**20), q) for rid, owner, q in mine]
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
placed = []
for _ in range(3):
    placed += [j.run_id for j in place_jobs(store, [j for j in jobs if j.run_id not in placed], CAPACITY)]
print(json.dumps(placed), flush=True)
"""
CAPACITY = {"num_cpus": 64.0, "num_gpus": 1.0}


def test_two_servers_sharing_a_postgresql_store_keep_the_running_cap_and_the_room_together(pg_url, tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setenv(db.ENV_DB_URL, pg_url)
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "2")  # ann may have two jobs on the cluster, on any server
    ws = tmp_path / "ws"
    store = RunStore(ws, actor=SYSTEM)
    res = Resources(1.0, 0.25, 2**20)  # four fit on the cluster's one GPU
    jobs: dict[str, list[_Job]] = {"a": [], "b": []}
    for i, owner in enumerate(["user:ann"] * 4 + ["user:bob"] * 6):
        rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=owner)
        store.requeue(rid)
        store.set_environment(rid, executor="ray", resources=res.__dict__)
        jobs["ab"[i % 2]].append(_Job(rid, owner, res, store.get(rid)["queued_at"]))
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mine = json.dumps([[j.run_id, j.owner, j.queued] for j in jobs["b"]])
    other = subprocess.Popen([sys.executable, "-c", _SERVER.replace("CAPACITY", repr(CAPACITY)), str(ws), str(go),
                              mine], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        go.touch()  # both servers place at once
        placed = []
        for _ in range(3):
            placed += [j.run_id for j in place_jobs(store, [j for j in jobs["a"] if j.run_id not in placed],
                                                    CAPACITY)]
        theirs = json.loads(other.stdout.readline())
        assert other.wait(timeout=120) == 0
    finally:
        if other.poll() is None:
            other.kill()
    rows = {r["id"]: r for r in store.list_runs(limit=100)}
    on_cluster = [rid for rid in rows if store.get(rid)["placed_at"] is not None]
    assert sorted(on_cluster) == sorted(placed + theirs)
    by_owner = {o: sum(rows[r]["owner"] == o for r in on_cluster) for o in ("user:ann", "user:bob")}
    assert by_owner == {"user:ann": 2, "user:bob": 2}  # the cap across both servers; the room shared fairly
    assert set(placed) <= {j.run_id for j in jobs["a"]} and set(theirs) <= {j.run_id for j in jobs["b"]}


# ---- the lock: a job queued on one server while another decides (a deterministic interleaving)
def _queued(store: RunStore, owner: str, res: Resources) -> _Job:
    """A job waiting in front of the cluster, recorded by ``store``'s server."""
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=owner)
    store.requeue(rid)
    store.set_environment(rid, executor="ray", resources=res.__dict__)
    return _Job(rid, owner, res, store.get(rid)["queued_at"])


def _waiting_on_lock(store: RunStore) -> bool:
    """Whether some server waits for the cluster lock: an advisory lock not granted (PostgreSQL), a blocked
    ``flock`` on the lock file (``/proc/locks`` marks a waiter with ``->``)."""
    if db.on_server(store.workspace):
        with db.engine(db.database_url(store.workspace)).connect() as c:
            return bool(c.execute(db.sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
                "database = (SELECT oid FROM pg_database WHERE datname = current_database())")).scalar())
    inode = (Path(store.workspace) / executors.CLUSTER_LOCK).stat().st_ino
    return any(fields[1] == "->" and fields[6].endswith(f":{inode}")  # "N: -> FLOCK ADVISORY WRITE pid dev:inode"
               for fields in map(str.split, Path("/proc/locks").read_text().splitlines()) if len(fields) > 6)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
@pytest.mark.parametrize("locked", [True, False], ids=["with the lock", "without it"])
def test_the_cluster_lock_keeps_a_job_queued_on_another_server_from_overfilling_the_cluster(
        backend, locked, request, tmp_path, monkeypatch):
    """Server 1 has counted the cluster's room (ann: one job on it, one waiting: it fits) and not yet recorded
    its placement when carol's job is queued on server 2, which decides at once: carol has fewer jobs on the
    cluster, so in the one fair order she comes first. Under the lock server 2 decides after server 1 recorded
    ann's job (no room left: carol waits); without it (the check that the interleaving is real) both jobs go to a
    cluster that has room for one."""
    if backend == "postgresql":
        monkeypatch.setenv(db.ENV_DB_URL, request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    if not locked:
        monkeypatch.setattr(db, "workspace_lock", lambda workspace, name: contextlib.nullcontext())
    ws = tmp_path / "ws"
    one, two = RunStore(ws, actor=SYSTEM, mark_interrupted=False), RunStore(ws, actor=SYSTEM, mark_interrupted=False)
    res = Resources(1.0, 1.0, 2**20)  # one GPU each; the cluster has two
    capacity = {"num_cpus": 8.0, "num_gpus": 2.0}
    assert place_jobs(one, [_queued(one, "user:ann", res)], capacity)  # ann's first job is on the cluster
    ann = _queued(one, "user:ann", res)
    carol = _queued(two, "user:carol", res)  # recorded now, queued on server 2 while server 1 decides (below)
    two._write("UPDATE runs SET status = 'stopped' WHERE id = ?", (carol.run_id,))  # not queued yet
    (ws / executors.CLUSTER_LOCK).touch()
    placed_by_two: list[_Job] = []
    record = one.mark_placed

    def two_decides() -> None:
        two.requeue(carol.run_id)
        placed_by_two.extend(place_jobs(two, [carol], capacity))

    def counted_then_recorded(run_ids) -> None:  # server 1, between counting the room and recording its choice
        other = threading.Thread(target=two_decides)
        other.start()
        deadline = time.monotonic() + 120  # bounds a hang; it times nothing
        while other.is_alive() and not _waiting_on_lock(one) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert time.monotonic() < deadline, "server 2 neither decided nor waited for the lock"
        record(run_ids)
        threads.append(other)

    threads: list[threading.Thread] = []
    monkeypatch.setattr(one, "mark_placed", counted_then_recorded)
    placed_by_one = place_jobs(one, [ann], capacity)
    threads[0].join(timeout=120)
    assert [j.run_id for j in placed_by_one] == [ann.run_id]
    on_cluster = [r["id"] for r in one.live_jobs() if r["placed_at"] is not None]
    if locked:
        assert placed_by_two == [] and len(on_cluster) == 2  # carol waits for room
        assert one.get(carol.run_id)["status"] == "queued" and one.get(carol.run_id)["placed_at"] is None
    else:
        assert [j.run_id for j in placed_by_two] == [carol.run_id] and len(on_cluster) == 3  # the race is real


def test_the_heartbeat_intervals_are_settings_of_every_server(tmp_path, monkeypatch):
    monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    ws = tmp_path / "ws"
    store = RunStore(ws, actor=SYSTEM)
    rid = _remote(store, "running", "gpu-node-7", 5.0)  # five seconds without a beat: alive by the defaults
    RunStore(ws, actor=SYSTEM)
    assert store.get(rid)["status"] == "running"
    monkeypatch.setenv(ENV_STALE_S, "2")
    RunStore(ws, actor=SYSTEM)
    assert store.get(rid)["status"] == "interrupted" and "more than 2 s" in store.get(rid)["message"]
    monkeypatch.setenv(ENV_STALE_S, "soon")
    with pytest.raises(RunStoreError, match="LAYERLAB_STALE_S is a number of seconds above 0; received: 'soon'"):
        RunStore(ws, actor=SYSTEM)
