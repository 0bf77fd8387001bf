"""Training jobs as OS processes: submit, control through the store, death, queueing, owners (real subprocesses)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.data.access import SYSTEM, Actor
from builder.errors import AccessDenied, DatasetError, RunStoreError, TrainingError
from builder.graph.templates import load_template
from builder.interpret.live import live_frames
from builder.jobs import queue as jobs
from builder.jobs import warm
from builder.jobs.queue import JobSpec, queue_position, request, submit, wait
from builder.runs.pipeline import load_run, run_training
from builder.runs.store import RunStore
from tests.helpers import until

# long enough (~0.25 s an epoch on one core) that a stop or a kill lands mid-run
LONG = {"epochs": 30, "batch_size": 8, "seed": 3, "early_stopping": None}  # all 30 epochs: resume is compared whole
DATA = {"n_samples": 1000}
# a job the test itself ends (stop, crash): far longer than any wait (500 epochs finished in ~4 s on an idle machine)
UNENDING = 20_000
TIMEOUT = 180



@pytest.fixture(autouse=True)
def _job_env(monkeypatch, request):
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")  # the job trains like the in-process reference
    monkeypatch.setenv("LAYERLAB_MAX_JOBS", "2")
    monkeypatch.setenv("LAYERLAB_LAUNCHER_IDLE_S", "20")
    if "shared_launcher" not in request.fixturenames:  # the launcher's own tests: the workspace's own launcher
        monkeypatch.delenv("LAYERLAB_LAUNCHER_DIR", raising=False)


@pytest.fixture
def shared_launcher():
    """The test process's warm launcher (tests/conftest.py) forks this test's jobs, as a server's one launcher
    forks every workspace's: the queue's tests then pay no cold launcher each (the launcher's own tests, below,
    start their workspace's own)."""


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "ws", actor=SYSTEM)
    yield s
    pidfile = s.workspace / warm.LAUNCHER_PID  # the warm launcher this test's submits started
    if pidfile.is_file():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


@pytest.fixture(scope="module")
def reference():
    """The final epoch of the LONG run trained uninterrupted in this process."""
    return run_training(load_template("mlp"), "moons", LONG, dataset_options=DATA).final


def _spec(**kw) -> JobSpec:
    base = dict(project=load_template("mlp").model_dump(), dataset="moons", dataset_options=dict(DATA),
                config={"epochs": 3}, owner="alice")
    return JobSpec(**{**base, **kw})


def _resume(rid: str, owner: str = "alice") -> JobSpec:
    return JobSpec(project={}, dataset="", owner=owner, resume_run=rid)


def _epochs_done(store, rid, n):
    return lambda: (store.get(rid)["epochs_done"] or 0) >= n


@pytest.mark.usefixtures("shared_launcher")
def test_submit_runs_in_its_own_process_to_finished(store):
    rid = submit(store, _spec(name="first", tags={"study": "s1", "trial": 0}, callbacks=["live_attributions"]))
    run = store.get(rid)
    assert run["status"] in ("queued", "running") and run["owner"] == "alice" and run["pid"] != os.getpid()
    assert "alice" not in store.folder(rid).job_spec.read_text()  # an owner id is a key: only the run row has it
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    run = store.get(rid)
    assert run["name"] == "first" and run["tags"] == {"study": "s1", "trial": 0} and run["epochs_done"] == 3
    assert run["test_metrics"]["accuracy"] > 0.5 and len(store.metrics(rid, "epoch")) == 3
    assert "val_loss" in store.metrics(rid, "epoch")[-1]
    assert (store.run_dir(rid) / "job.log").read_text().strip()
    frames = live_frames(store, rid)
    assert frames["epochs"] == [1, 2, 3] and frames["attributions"].shape[:2] == (3, 4)
    model, ds = load_run(store, rid)
    assert model(ds.test.X[:5]).shape == (5, 2)


@pytest.mark.usefixtures("shared_launcher")
def test_stop_then_resume_reaches_the_uninterrupted_loss(store, reference):
    rid = submit(store, _spec(config=LONG))
    until(_epochs_done(store, rid, 2), "two epochs", TIMEOUT)
    request(store, rid, "stop")
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    run = store.get(rid)
    assert run["epochs_done"] < LONG["epochs"] and store.checkpoint_path(rid).is_file()
    with pytest.raises(RunStoreError, match="stopped"):
        request(store, rid, "pause")
    assert submit(store, _resume(rid)) == rid
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    final = store.get(rid)["final_metrics"]
    assert final["epoch"] == LONG["epochs"]
    assert final["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-6)
    assert final["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-6)
    assert [e["epoch"] for e in store.metrics(rid)] == list(range(1, LONG["epochs"] + 1))


@pytest.mark.usefixtures("shared_launcher")
def test_a_job_spec_its_job_rewrote_is_not_what_a_resume_sizes_or_starts(store):
    """A job may write its run folder, job.json too: a resume copied what the first start was from that file, so
    a job that swapped in a small model and ``device: cpu`` was sized for 664 MiB where it trained at 2.7 GiB,
    and waited for no GPU slot. The spec's digest is the server's record (a key no job writes): a resume trusts
    the file only as written."""
    import json

    from builder.data.access import Actor
    from builder.runs.run_time import SPEC_DIGEST

    rid = submit(store, _spec(config={**LONG, "epochs": UNENDING}))
    until(_epochs_done(store, rid, 1), "an epoch", TIMEOUT)
    request(store, rid, "stop")
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    recorded = store.get(rid).environment[SPEC_DIGEST]
    assert recorded == store.folder(rid).job_spec_digest()
    owner = store.get(rid)["owner"]
    store.as_actor(Actor.of_job(owner)).set_environment(rid, **{SPEC_DIGEST: "0" * 64})  # as its job would
    assert store.get(rid).environment[SPEC_DIGEST] == recorded
    path = store.folder(rid).job_spec
    spec = json.loads(path.read_text())
    path.write_text(json.dumps({**spec, "config": {**spec["config"], "device": "cpu", "batch_size": 1}}))
    with pytest.raises(RunStoreError, match="was changed after LayerLab wrote it"):
        submit(store, _resume(rid))
    assert store.get(rid)["status"] == "stopped"
    path.write_text(json.dumps(spec))  # as LayerLab wrote it: resumed, and the new spec recorded
    assert submit(store, _resume(rid)) == rid
    assert store.get(rid).environment[SPEC_DIGEST] == store.folder(rid).job_spec_digest() != recorded
    until(_epochs_done(store, rid, 2), "an epoch after the resume", TIMEOUT)
    request(store, rid, "stop")
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}


@pytest.mark.usefixtures("shared_launcher")
def test_pause_and_resume_through_the_store(store):
    rid = submit(store, _spec(config=LONG))
    until(_epochs_done(store, rid, 1), "an epoch", TIMEOUT)
    request(store, rid, "pause")
    until(lambda: store.get(rid)["status"] == "paused", "paused", TIMEOUT)
    done = store.get(rid)["epochs_done"]
    request(store, rid, "resume")
    until(lambda: store.get(rid)["epochs_done"] > done, "training after resume", TIMEOUT)
    request(store, rid, "stop")
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}


@pytest.mark.usefixtures("shared_launcher")
def test_kill_9_is_marked_interrupted_and_resumes(store, reference):
    rid = submit(store, _spec(config=LONG))
    until(_epochs_done(store, rid, 2), "two epochs", TIMEOUT)
    os.kill(store.get(rid)["pid"], signal.SIGKILL)
    assert wait(store, [rid], 30) == {rid: "interrupted"}
    assert "ended unexpectedly" in store.get(rid)["message"]
    submit(store, _resume(rid))
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    final = store.get(rid)["final_metrics"]
    assert final["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-6)


@pytest.mark.usefixtures("shared_launcher")
def test_an_exception_in_the_job_marks_it_failed_with_the_message(store):
    # the MLP template's Input (2 features) does not fit digits (64): the job process fails in prepare
    rid = submit(store, _spec(dataset="digits", dataset_options={}))
    assert wait(store, [rid], TIMEOUT) == {rid: "failed"}
    run = store.get(rid)
    assert "node input" in run["message"] and "does not match dataset 'digits'" in run["message"]
    until(lambda: "GraphError" in (store.run_dir(rid) / "job.log").read_text(), "the traceback in job.log", TIMEOUT)


@pytest.mark.usefixtures("shared_launcher")
def test_queue_with_one_slot(store, monkeypatch):
    monkeypatch.setenv("LAYERLAB_MAX_JOBS", "1")
    first = submit(store, _spec(config=LONG))
    until(lambda: store.get(first)["status"] == "running", "first running", TIMEOUT)
    second = submit(store, _spec(config={"epochs": 2}))
    until(_epochs_done(store, first, 2), "first trains while the second waits", TIMEOUT)
    assert store.get(second)["status"] == "queued" and queue_position(store, second) == 1
    assert queue_position(store, first) is None
    request(store, first, "stop")
    assert wait(store, [first, second], TIMEOUT) == {first: "stopped", second: "finished"}
    assert store.get(second)["started_at"] >= store.get(first)["finished_at"]


@pytest.mark.usefixtures("shared_launcher")
def test_stop_while_queued(store, monkeypatch):
    monkeypatch.setenv("LAYERLAB_MAX_JOBS", "1")
    first = submit(store, _spec(config=LONG))
    second = submit(store, _spec(config={"epochs": 2}))
    until(lambda: queue_position(store, second) == 1 and store.get(first)["status"] == "running", "second queued behind the first", TIMEOUT)
    request(store, second, "stop")
    assert wait(store, [second], TIMEOUT) == {second: "stopped"}
    assert "queued" in store.get(second)["message"]
    request(store, first, "stop")
    wait(store, [first], TIMEOUT)
    submit(store, _resume(second))  # never started: trains from the beginning
    assert wait(store, [second], TIMEOUT) == {second: "finished"}
    assert store.get(second)["epochs_done"] == 2


def test_later_jobs_fork_from_the_warm_launcher(store):
    first = submit(store, _spec(config={"epochs": 1}))
    until(lambda: (store.workspace / warm.LAUNCHER_PID).is_file(), "the launcher", TIMEOUT)
    launcher = int((store.workspace / warm.LAUNCHER_PID).read_text())
    second = submit(store, _spec(config={"epochs": 1}))
    assert wait(store, [first, second], TIMEOUT) == {first: "finished", second: "finished"}
    pid = store.get(second)["pid"]
    assert pid not in (os.getpid(), launcher) and f"job {second}: pid {pid}" in (
        store.run_dir(second) / "job.log").read_text()
    assert os.getsid(launcher) == launcher  # the launcher is a session of its own, detached from us


def _stat(pid: int) -> list[str]:
    """Fields of ``/proc/PID/stat`` after the name: state, ppid, pgrp, session, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def test_a_forked_jobs_broker_that_outlives_it_is_the_launchers_to_reap(store):
    """A job's broker outlives the job to write the end it held (builder.process.broker), and was then an orphan
    of PID 1: in a container whose init reaps nothing (the app as PID 1), a zombie per job. The warm launcher is
    the reaper of its jobs' orphans now (a job started cold is kept by a launcher of one: the test below)."""
    import signal

    assert warm.warm_launcher(store.workspace) is True
    until(lambda: (store.workspace / warm.LAUNCHER_SOCK).exists() and (store.workspace / warm.LAUNCHER_PID).is_file(),
          "the launcher", TIMEOUT)
    launcher = int((store.workspace / warm.LAUNCHER_PID).read_text())
    rid = submit(store, _spec(config={"epochs": UNENDING, "early_stopping": None}))
    until(lambda: store.get(rid)["status"] == "running", "the job running", TIMEOUT)
    job = store.get(rid)["pid"]
    kids = Path(f"/proc/{job}/task/{job}/children")
    until(lambda: kids.read_text().split(), "its broker (forked once it holds its slot)", TIMEOUT)
    (broker,) = map(int, kids.read_text().split())
    os.kill(broker, signal.SIGSTOP)  # held past the job's end
    try:
        os.kill(job, signal.SIGKILL)  # (a stop would wait for the stopped broker)
        until(lambda: not Path(f"/proc/{job}").exists() or _stat(job)[0] == "Z", "the job to end", TIMEOUT)
        until(lambda: int(_stat(broker)[1]) != job, "the broker to be an orphan", TIMEOUT)
        assert int(_stat(broker)[1]) == launcher
    finally:
        os.kill(broker, signal.SIGCONT)
    assert wait(store, [rid], TIMEOUT) == {rid: "interrupted"}
    until(lambda: not Path(f"/proc/{broker}").exists(), "the broker reaped", TIMEOUT)


_KEPT = """
import os, sys, time
from builder.jobs import warm

def run(workspace, run_id, sandboxed):  # a job whose broker outlives it
    if os.fork() == 0:
        time.sleep(1.0)
        print("broker", os.getpid(), os.getppid(), flush=True)  # its parent once its job has ended
        os._exit(0)
    return 3

print("code", warm.kept(sys.argv[1], "20261127-000000-abcdef", run), os.getpid(), flush=True)
"""


def test_a_cold_jobs_broker_that_outlives_it_is_its_keepers_to_reap(tmp_path):
    """A job started the ordinary way (cold, or by a Ray task) is kept by a launcher of one (warm.kept): the job
    is its fork, and the broker it leaves is the keeper's to reap, not PID 1's; the keeper ends after both, with
    the job's exit code."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _KEPT, str(tmp_path)], capture_output=True, text=True, timeout=60)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert out.returncode == 0 and set(lines) == {"job", "broker", "code"}, out.stderr
    assert lines["job"].endswith("ended: exit 3")  # said in its log, as the warm launcher says it in its own
    code, keeper = lines["code"].split()
    assert code == "3" and lines["broker"].split()[1] == keeper  # reparented to the keeper, which waited for it


def test_idle_zero_starts_no_launcher_and_every_job_is_launched_the_ordinary_way(store, monkeypatch):
    """``LAYERLAB_LAUNCHER_IDLE_S=0``: no warm launcher (the test suite's default: a one-job workspace pays one
    import of torch, not two); jobs still run, each a process of its own started the ordinary way."""
    monkeypatch.setenv("LAYERLAB_LAUNCHER_IDLE_S", "0")
    assert warm.warm_launcher(store.workspace) is False
    first = submit(store, _spec(config={"epochs": 1}))
    second = submit(store, _spec(config={"epochs": 1}))
    assert wait(store, [first, second], TIMEOUT) == {first: "finished", second: "finished"}
    for name in (warm.LAUNCHER_LOG, warm.LAUNCHER_PID, warm.LAUNCHER_SOCK, "launcher.starting"):
        assert not (store.workspace / name).exists(), name
    assert len({store.get(first)["pid"], store.get(second)["pid"], os.getpid()}) == 3


def test_warm_launcher_makes_the_first_job_a_fork(store):
    """The app starts the launcher in its warm-up: the very first job is then forked from it (no cold start),
    and asking again while it runs starts no second one."""
    assert warm.warm_launcher(store.workspace) is True
    assert warm.warm_launcher(store.workspace) is False  # being started
    until(lambda: (store.workspace / warm.LAUNCHER_PID).is_file() and (store.workspace / warm.LAUNCHER_SOCK).exists(), "the launcher", TIMEOUT)
    assert warm.warm_launcher(store.workspace) is False  # up
    launcher = int((store.workspace / warm.LAUNCHER_PID).read_text())
    rid = submit(store, _spec(config={"epochs": UNENDING, "early_stopping": None}))
    until(lambda: store.get(rid)["status"] == "running", "the job running", TIMEOUT)
    pid = store.get(rid)["pid"]
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    request(store, rid, "stop")
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    assert ppid == launcher


@pytest.mark.usefixtures("shared_launcher")
def test_owners_and_tags_in_list_runs(store):
    p = load_template("mlp")
    a = store.create_run(p, "moons", {}, {"epochs": 1}, owner="alice", tags={"study": "s1", "trial": 1})
    b = store.create_run(p, "moons", {}, {"epochs": 1}, owner="bob", tags={"study": "s1", "trial": 2})
    c = store.create_run(p, "moons", {}, {"epochs": 1})
    assert [r["id"] for r in store.list_runs(owner="alice")] == [a]
    assert {r["id"] for r in store.list_runs(owner="bob")} == {b}
    assert {r["id"] for r in store.list_runs()} == {a, b, c} and store.get(c)["owner"] == "local"
    assert {r["id"] for r in store.list_runs(tags={"study": "s1"})} == {a, b}
    assert [r["id"] for r in store.list_runs(tags={"study": "s1", "trial": 2})] == [b]
    assert store.list_runs(owner="alice", tags={"trial": 2}) == []
    with pytest.raises(RunStoreError, match=f"no run '{a}' of yours"):  # as for an unknown run
        submit(store, _resume(a, owner="bob"))


@pytest.mark.usefixtures("shared_launcher")
def test_bad_requests_are_refused(store, monkeypatch):
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1})
    store.finish(rid, "finished")
    with pytest.raises(RunStoreError, match="unknown job action"):
        request(store, rid, "explode")  # type: ignore[arg-type]
    with pytest.raises(RunStoreError, match="finished"):
        request(store, rid, "stop")
    with pytest.raises(TrainingError, match="unknown job callback"):
        submit(store, _spec(callbacks=["nope"]))
    with pytest.raises(TrainingError, match="invalid training settings"):
        submit(store, _spec(config={"epochs": 0}))
    monkeypatch.setenv("LAYERLAB_MAX_JOBS", "zero")
    with pytest.raises(TrainingError, match="LAYERLAB_MAX_JOBS"):
        jobs.max_jobs()
    monkeypatch.setenv("LAYERLAB_MAX_JOBS", "3")
    assert jobs.max_jobs() == 3
    monkeypatch.delenv("LAYERLAB_MAX_JOBS")
    assert jobs.max_jobs() >= 1


@pytest.mark.parametrize("dataset, options, project_dataset", [
    ("csv", {"path": "/etc/passwd", "target": "y"}, None),  # a built-in user-file kind with a server path
    ("moons", {"cache_dir": "../../owners/x"}, None),  # a path under any key
    ("/srv/ws/owners/x/uploads/a.csv", {}, None),  # a path as the name
    ("moons", {}, {"kind": "csv", "file": "/etc/passwd", "target": "y"}),  # the project's own data choice
])
def test_a_visitors_job_naming_a_server_path_is_refused_before_anything_is_recorded(store, dataset, options,
                                                                                    project_dataset):
    project = load_template("mlp").model_dump()
    if project_dataset is not None:
        project["dataset"] = project_dataset
    me = store.as_actor(Actor("user:bob"))
    with pytest.raises(DatasetError, match="never a file on the server") as e:
        submit(me, _spec(project=project, dataset=dataset, dataset_options=options, owner="user:bob"))
    assert "/etc/passwd" not in str(e.value) and "owners/x" not in str(e.value)  # keys only, never a value
    assert store.list_runs() == []


def test_a_prune_job_of_another_owners_run_is_refused_as_an_unknown_one(store):
    theirs = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann")
    store.finish(theirs, "finished")
    me = store.as_actor(Actor("user:bob"))
    spec = _spec(owner="user:bob", kind="prune", prune={"parent": theirs})
    other = theirs[:-6] + ("ffffff" if theirs[-6:] != "ffffff" else "000000")
    with pytest.raises(AccessDenied) as forbidden:
        submit(me, spec)
    with pytest.raises(AccessDenied) as unknown:
        submit(me, _spec(owner="user:bob", kind="prune", prune={"parent": other}))
    assert str(forbidden.value).replace(theirs, "X") == str(unknown.value).replace(other, "X")
    assert [r["id"] for r in store.list_runs()] == [theirs]  # nothing recorded for bob


def test_an_old_database_gains_the_new_columns(tmp_path):
    ws = tmp_path / "old"
    ws.mkdir()
    con = sqlite3.connect(ws / "layerlab.db")
    con.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, created_at TEXT, "
                "started_at TEXT, updated_at TEXT, finished_at TEXT, pid INTEGER, host TEXT, project TEXT, "
                "dataset_name TEXT, dataset_options TEXT, dataset_info TEXT, config TEXT, final_metrics TEXT, "
                "test_metrics TEXT, message TEXT, parent_id TEXT, epochs_done INTEGER DEFAULT 0, environment TEXT)")
    con.execute("INSERT INTO runs (id, status, created_at) VALUES ('20260101-000000-0a0b0c', 'finished', '2026-01-01')")
    con.commit()
    con.close()
    store = RunStore(ws, actor=SYSTEM)
    assert store.get("20260101-000000-0a0b0c")["owner"] == "local" and store.list_runs(owner="local")[0]["id"] == "20260101-000000-0a0b0c"
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="alice")
    assert store.list_runs(owner="alice")[0]["id"] == rid


# ------------------------------------------------------------------------- the warm launcher's protocol
# A stand-in for a launcher left running by another LayerLab version: it answers every request line with
# REPLY (plus its own pid as the "pid" it claims to have forked), forks nothing, and logs what it was sent.
# (a script of its own: the pid file name, warm.LAUNCHER_PID, is written out)
_FAKE_LAUNCHER = r"""
import json, os, socket, sys
path, reply, log = sys.argv[1], json.loads(sys.argv[2]), open(sys.argv[3], "a")
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
    srv.bind(path)
    srv.listen(16)
    with open(os.path.join(os.path.dirname(path), "launcher.pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        conn, _ = srv.accept()
        with conn:
            log.write(conn.makefile().readline())
            log.flush()
            conn.sendall((json.dumps({**reply, "pid": os.getpid()}) + "\n").encode())
"""


@pytest.fixture
def fake_launcher(store):
    """Start a stand-in launcher on the store's socket answering ``reply``; yields its Popen."""
    import json
    import subprocess
    import sys

    procs = []

    def start(reply: dict):
        sock = store.workspace / warm.LAUNCHER_SOCK
        p = subprocess.Popen([sys.executable, "-c", _FAKE_LAUNCHER, str(sock), json.dumps(reply),
                              str(store.workspace / "fake.log")], start_new_session=True)
        procs.append(p)
        until(lambda: sock.exists() and (store.workspace / warm.LAUNCHER_PID).is_file(), "the fake launcher", 30)
        return p

    yield start
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.kill()
        p.wait(10)


def _real_launcher_up(store) -> int:
    """The pid of a launcher of this version once it answers on the socket (fails loudly on timeout)."""
    def up():
        try:
            reply, peer = warm._ask_launcher(store.workspace / warm.LAUNCHER_SOCK, {"protocol": 0})
        except (OSError, ValueError):
            return None
        return peer if reply.get("protocol") == warm.LAUNCHER_PROTOCOL else None
    return until(up, "a launcher of this version", TIMEOUT)


@pytest.mark.parametrize("reply", [{}, {"protocol": 1}, {"error": "'run_id'"}], ids=["unversioned", "v1", "v1-error"])
def test_an_older_launcher_is_not_handed_the_job_and_is_retired(store, fake_launcher, reply):
    """A launcher of an older version (no or a lower protocol) gets no job even when it claims to have forked one:
    the job is launched the ordinary way, the old launcher is told to end and one of this version takes over."""
    old = fake_launcher(reply)
    rid = submit(store, _spec(config={"epochs": 1}))
    assert store.get(rid)["pid"] != old.pid
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    assert f"job {rid}: pid" in (store.run_dir(rid) / "job.log").read_text()
    assert old.wait(30) == -signal.SIGTERM  # retired
    sent = (store.workspace / "fake.log").read_text()
    assert f'"protocol": {warm.LAUNCHER_PROTOCOL}' in sent and rid in sent
    new = _real_launcher_up(store)
    assert new != old.pid and int((store.workspace / warm.LAUNCHER_PID).read_text()) == new


def test_a_newer_launcher_is_not_handed_the_job_nor_replaced(store, fake_launcher):
    newer = fake_launcher({"protocol": warm.LAUNCHER_PROTOCOL + 1})
    rid = submit(store, _spec(config={"epochs": 1}))
    assert store.get(rid)["pid"] != newer.pid
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    assert newer.poll() is None  # still serving its own version's clients
    assert not (store.workspace / "launcher.starting").exists()  # no launcher of ours started beside it
    assert int((store.workspace / warm.LAUNCHER_PID).read_text()) == newer.pid


def test_the_launcher_forks_nothing_for_a_request_of_another_protocol(store):
    assert warm.warm_launcher(store.workspace) is True
    pid = _real_launcher_up(store)
    sock = store.workspace / warm.LAUNCHER_SOCK
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1})
    log = store.workspace / "never.log"  # a forked job would open it first thing
    job = {"run_id": rid, "log": str(log), "env": {}}
    for req in [job, {"protocol": 1, "job": job}, {"protocol": warm.LAUNCHER_PROTOCOL + 1, "job": job},
                {"protocol": warm.LAUNCHER_PROTOCOL}, [1, 2]]:
        reply, peer = warm._ask_launcher(sock, req)
        assert peer == pid and "pid" not in reply and "protocol" in reply["error"], req
        assert reply["protocol"] == warm.LAUNCHER_PROTOCOL
    assert not log.exists()
    assert warm._launcher_up(store.workspace)  # still serving


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=8)


@given(req=_json | st.fixed_dictionaries({"protocol": _json, "job": _json}))
def test_job_request_accepts_only_this_protocol_with_a_job(req):
    ok = isinstance(req, dict) and req.get("protocol") == warm.LAUNCHER_PROTOCOL and isinstance(req.get("job"), dict)
    if ok:
        assert warm._job_request(req) is req["job"]
    else:
        with pytest.raises(ValueError, match="protocol"):
            warm._job_request(req)


@given(reply=st.dictionaries(st.sampled_from(["protocol", "pid", "error"]), _json, max_size=3))
def test_reply_protocol_is_1_unless_an_int_is_given(reply):
    v = reply.get("protocol", 1)
    want = v if type(v) is int else 1
    assert warm._reply_protocol(reply) == want


@pytest.mark.parametrize("module", ["builder.jobs.queue", "builder.jobs"])
def test_the_job_command_line_answers_help(module):
    """``python -m builder.runs.jobs --help`` and the old ``python -m builder.jobs --help`` both keep working."""
    import subprocess
    import sys

    from builder.process.launcher import child_env

    out = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-m", module, "--help"],
                         capture_output=True, text=True, timeout=120, env=child_env())
    assert out.returncode == 0, out.stderr
    assert "{run,launcher}" in out.stdout and "run one LayerLab training job" in out.stdout


def test_one_shared_launcher_forks_every_workspaces_jobs_and_records_a_crash_in_the_right_store(tmp_path, monkeypatch):
    """``$LAYERLAB_LAUNCHER_DIR``: one launcher, its files in that private folder (none in the workspaces), forks
    the jobs of two workspaces with two run databases; a forked job killed by a signal is recorded in its own
    workspace's store (the launcher's request carries the database), not in the workspace that started it."""
    from builder.jobs.job_sandbox import TEST_CRASH_ENV

    home = Path(tempfile.mkdtemp(prefix="ll-test-"))  # short: a Unix socket path has < 100 characters
    monkeypatch.setenv("LAYERLAB_LAUNCHER_DIR", str(home))
    monkeypatch.setenv(TEST_CRASH_ENV, "crash-me")
    a, b = RunStore(tmp_path / "a", actor=SYSTEM), RunStore(tmp_path / "b", actor=SYSTEM)
    try:
        assert warm.warm_launcher(a.workspace) is True
        until(lambda: (home / warm.LAUNCHER_PID).is_file() and (home / warm.LAUNCHER_SOCK).exists(), "the launcher",
              TIMEOUT)
        assert warm.warm_launcher(b.workspace) is False  # the same launcher serves b
        launcher = int((home / warm.LAUNCHER_PID).read_text())
        ra, rb = submit(a, _spec(config={"epochs": 1})), submit(b, _spec(config={"epochs": 1}))
        crash = submit(b, _spec(config={"epochs": 1}, name="crash-me"))
        assert wait(a, [ra], TIMEOUT) == {ra: "finished"}
        assert wait(b, [rb, crash], TIMEOUT) == {rb: "finished", crash: "failed"}
        for store, rid in ((a, ra), (b, rb), (b, crash)):
            pid = store.get(rid)["pid"]
            log = (store.run_dir(rid) / "job.log").read_text()
            assert pid not in (os.getpid(), launcher) and f"job {rid}: forked by the warm launcher {launcher}" in log
        assert "SIGSEGV" in b.get(crash)["message"]
        with pytest.raises(RunStoreError):  # unknown in a's store: the death was recorded in b's
            a.get(crash)
        for ws in (a.workspace, b.workspace):
            assert not any((ws / n).exists() for n in (warm.LAUNCHER_PID, warm.LAUNCHER_SOCK, warm.LAUNCHER_LOG))
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((home / warm.LAUNCHER_PID).read_text()), signal.SIGTERM)


def test_a_workspaces_launcher_forks_no_other_workspaces_job_and_a_shared_folder_must_be_private(store, tmp_path,
                                                                                                   monkeypatch):
    """A launcher without ``--shared`` answers a request for another workspace with an error (the job is then
    launched the ordinary way); a shared folder others may write to is refused with the fix, and jobs still run."""
    assert warm.warm_launcher(store.workspace) is True
    until(lambda: warm._launcher_running(store.workspace), "the launcher",
          TIMEOUT)
    other = tmp_path / "other"
    reply, _ = warm._ask_launcher(store.workspace / warm.LAUNCHER_SOCK, {"protocol": warm.LAUNCHER_PROTOCOL, "job": {
        "workspace": str(other), "run_id": "x", "log": str(tmp_path / "x.log"), "env": {}}})
    assert "pid" not in reply and "forks the jobs of" in reply["error"] and str(other) in reply["error"]

    home = Path(tempfile.mkdtemp(prefix="ll-test-"))
    home.chmod(0o777)
    monkeypatch.setenv("LAYERLAB_LAUNCHER_DIR", str(home))
    with pytest.raises(RunStoreError, match="private to this user.*Fix: chmod 700"):
        warm.launcher_home(store.workspace)
    with pytest.warns(UserWarning, match="private to this user"):
        rid = submit(store, _spec(config={"epochs": 1}))
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    assert not any(home.iterdir())  # nothing started there
    shutil.rmtree(home)


def test_an_idle_launcher_stays_while_its_jobs_run_and_records_how_they_end(store, monkeypatch):
    """The launcher's idle time counts only once none of its jobs runs: one that left while a forked job trained
    orphaned it, and that job's crash was then only 'interrupted' (the e2e crash journey under load)."""
    monkeypatch.setenv("LAYERLAB_LAUNCHER_IDLE_S", "1")
    assert warm.warm_launcher(store.workspace) is True
    until(lambda: warm._launcher_running(store.workspace), "the launcher",
          TIMEOUT)
    launcher = int((store.workspace / warm.LAUNCHER_PID).read_text())
    rid = submit(store, _spec(config={"epochs": UNENDING, "early_stopping": None}))
    until(lambda: (store.get(rid)["epochs_done"] or 0) >= 1, "the job training", TIMEOUT)
    pid = store.get(rid)["pid"]
    assert f"forked by the warm launcher {launcher}" in (store.run_dir(rid) / "job.log").read_text()
    deadline = time.monotonic() + 3  # three idle periods without a request
    until(lambda: time.monotonic() > deadline, "three idle periods", 10)
    assert warm.pid_alive(launcher), "the launcher left while its job ran"
    os.kill(pid, signal.SIGSEGV)  # a crash in native code, after the idle time
    assert wait(store, [rid], TIMEOUT) == {rid: "failed"}
    assert "SIGSEGV" in store.get(rid)["message"]
    until(lambda: not warm.pid_alive(launcher), "the launcher to leave once idle", TIMEOUT)
