"""builder.process.broker: a job's run store through its broker. The broker answers only its calls, as the job's
actor (never another, whatever the request says), and a job's client behaves as the store it stands for: records,
folders, curves and errors come back as the store gives them."""

from __future__ import annotations

import json
import os

import pytest

from builder.data.access import SYSTEM, Actor
from builder.errors import AccessDenied, RunStoreError
from builder.graph.templates import load_template
from builder.process import broker
from builder.runs.record import Run
from builder.runs.store import RunStore

ANN, BOB = "anon:" + "a" * 32, "anon:" + "b" * 32


@pytest.fixture
def runs(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    mine = store.create_run(load_template("mlp"), "moons", {}, {}, owner=ANN)
    theirs = store.create_run(load_template("mlp"), "moons", {}, {}, owner=BOB)
    return store, mine, theirs


@pytest.mark.parametrize("request_", [
    {"call": "get", "args": ["THEIRS"], "kwargs": {"actor": {"owner": BOB, "system": True}}},
    {"call": "_write", "args": ["UPDATE runs SET owner = 'x'"], "kwargs": {}},
    {"call": "as_actor", "args": [], "kwargs": {}},
    {"call": "get", "args": "THEIRS", "kwargs": {}},
    {"call": "update_run", "args": ["THEIRS"], "kwargs": {"owner": ANN}},
    {"call": "get", "args": ["THEIRS"], "kwargs": {}},
    ["get", "THEIRS"],
    {"call": "create_run", "args": [{}, "moons", {}, {}], "kwargs": {"owner": BOB}},
    {"call": "update_status", "args": ["MINE", "running", ""],
     "kwargs": {"message = (SELECT group_concat(owner) FROM runs), status": 1}},
    {"call": "update_status", "args": ["MINE", "running", ""], "kwargs": {"owner": BOB}},
    {"call": "update_run", "args": ["MINE"], "kwargs": {"class_id": "c1"}},
], ids=["another actor", "private method", "actor switch", "malformed args", "another's row", "another's run",
        "not a request", "a run for another", "sql in a column name", "give a run away", "join a class"])
def test_the_broker_answers_only_its_calls_as_the_jobs_actor(runs, request_):
    store, mine, theirs = runs
    job = store.as_actor(Actor.of_job(ANN))
    raw = json.loads(json.dumps(request_).replace("THEIRS", theirs).replace("MINE", mine))
    answer = broker._answer(job, raw)
    assert answer["error"][0] in ("AccessDenied", "RunStoreError"), answer
    assert store.get(theirs)["owner"] == BOB and BOB not in (store.get(mine)["message"] or "")
    assert store.get(mine)["owner"] == ANN and store.get(mine)["class_id"] is None
    assert broker._answer(job, {"call": "get", "args": [mine], "kwargs": {}})["ok"]["id"] == mine


def test_a_jobs_client_reads_and_writes_as_the_store_does(runs):
    store, mine, theirs = runs
    client = broker.start(store.as_actor(Actor.of_job(ANN)))
    try:
        assert client.broker_pid != os.getpid()
        run = client.get(mine)
        assert isinstance(run, Run) and run.owner == ANN and run.project.name == load_template("mlp").name
        assert client.folder(mine, write=True).path == store.folder(mine).path
        client.update_status(mine, "running", "")
        assert store.get(mine)["pid"] == os.getpid()  # the job's pid, not its broker's
        client.log_metrics(mine, [{"step": 1, "epoch": 1, "loss": float("nan")}, {"step": 2, "epoch": 1, "loss": 0.5}])
        client.update_run(mine, message="from the job")
        assert store.get(mine)["message"] == "from the job"
        events, last = client.metrics_after(mine, "epoch")
        assert events == store.metrics_after(mine, "epoch")[0] and last == store.metrics_after(mine, "epoch")[1]
        assert [r.id for r in client.list_runs()] == [mine]
        with pytest.raises(AccessDenied, match="no run"):
            client.get(theirs)
        with pytest.raises(AccessDenied):
            client.update_run(theirs, message="x")
        with pytest.raises(RunStoreError, match="no run column"):
            client.update_run(mine, nonsense=1)
    finally:
        client.close()
    with pytest.raises(RunStoreError, match="closed"):
        client.get(mine)
    assert store.get(theirs)["message"] != "x"


_FINISHING_JOB = """
import sys
from builder.data.access import Actor
from builder.graph.project import load_project
from builder.graph.templates import load_template
from builder.process import broker
from builder.runs.store import RunStore

ws, run_id, owner, template = sys.argv[1:5]
client = broker.start(RunStore(ws, actor=Actor.of_job(owner), mark_interrupted=False))
client.update_status(run_id, "running", "")
client.finish(run_id, "finished", {"loss": 0.5}, None, "done", project=load_project(load_template(template)))
client.close()
"""


@pytest.mark.parametrize("template", ["vae", "mlp"])
def test_a_job_that_finishes_through_its_broker_gets_its_model_card(runs, template):
    """A job hands its run's end to its broker with the project it parsed: on the wire that became a dict, and
    every drawn objective's card (GAN, VAE) failed: "model card not written: 'dict' object has no attribute
    'graph'". The card describes the project the run row keeps."""
    import subprocess
    import sys

    from tests.helpers import until

    store, _, _ = runs
    rid = store.create_run(load_template(template), "digits", {}, {}, owner=ANN)
    job = subprocess.run([sys.executable, "-c", _FINISHING_JOB, str(store.workspace), rid, ANN, template],
                         capture_output=True, text=True, timeout=120)
    assert job.returncode == 0, job.stderr
    until(lambda: store.get(rid)["status"] == "finished", "its end written", 30, state=lambda: dict(store.get(rid)))
    assert store.get(rid)["message"] == "done"
    card = store.folder(rid).model_card.read_text()
    assert ("Total loss = " in card) == (template == "vae") and "## Objective" in card


def test_a_broker_whose_job_sends_garbage_or_too_much_answers_nothing_more(runs):
    store, mine, _ = runs
    client = broker.start(store.as_actor(Actor.of_job(ANN)))
    try:
        client._sock.sendall((broker.MAX_FRAME + 1).to_bytes(4, "big"))
        client._sock.settimeout(30)
        assert client._sock.recv(4) == b""  # the broker ended
    finally:
        client._sock.close()
        os.waitpid(client.broker_pid, 0)
    assert store.get(mine)["owner"] == ANN  # and nothing was written


def test_only_a_persons_store_has_a_broker(tmp_path):
    with pytest.raises(AccessDenied, match="job's owner"):
        broker.start(RunStore(tmp_path, actor=SYSTEM))


_JOB = """
import sys
from builder.data.access import Actor
from builder.process import broker
from builder.runs.store import RunStore

ws, run_id, owner = sys.argv[1:4]
client = broker.start(RunStore(ws, actor=Actor.of_job(owner), mark_interrupted=False))
client.update_status(run_id, "running")
client.finish(run_id, "finished", message="done")
client.update_run(run_id, message="done, said the job")
print(client.get(run_id)["status"], [r["status"] for r in client.list_runs()], flush=True)
client.close()
print("closed", flush=True)
sys.stdin.readline()  # runs on, its store closed, until the test lets it end
"""


def test_a_job_that_recorded_its_end_and_runs_on_is_still_live(runs):
    """A job's run counted as ended (its owner's running jobs, its GPU slot and time free) once the job wrote a
    final status, though its process ran on. The broker holds that end, and what the job writes to the run after
    it, until the job's process has ended; the job reads its run as it recorded it."""
    import signal
    import subprocess
    import sys

    from builder.training.run_status import pid_alive
    from tests.helpers import until

    store, mine, _ = runs
    job = subprocess.Popen([sys.executable, "-c", _JOB, str(store.workspace), mine, ANN], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held = None
    try:
        assert job.stdout.readline().split() == ["finished", "['finished']"]  # as the job recorded it
        assert job.stdout.readline().strip() == "closed"
        run = store.get(mine)
        assert run["status"] == "running" and run["message"] == ""
        held = run["pid"]  # the broker that holds the end answers for the run now
        assert held not in (job.pid, os.getpid()) and pid_alive(held)
        assert store.mark_interrupted() == []  # its process lives: not orphaned either
        os.kill(held, signal.SIGSTOP)  # the moment between the job's end and the held end's write, made long
        job.stdin.write("\n")
        job.stdin.close()
        job.wait(timeout=60)  # the job has ended and is reaped (its broker holds its output pipes: no communicate)
        # a reader then saw a dead pid and marked the run interrupted, and a waiter took that for its end
        assert store.mark_interrupted() == [] and store.get(mine)["status"] == "running"
    finally:
        if held:
            os.kill(held, signal.SIGCONT)
        if job.poll() is None:
            job.kill()
            job.wait(timeout=60)
    # both writes, in the order the job wrote them (the end, then its message)
    until(lambda: (store.get(mine)["status"], store.get(mine)["message"], store.get(mine)["pid"])
          == ("finished", "done, said the job", job.pid), "the held end written", 30, state=lambda: dict(store.get(mine)))


_GROWING_JOB = """
import sys, time
from pathlib import Path
from builder.data.access import Actor
from builder.process import broker
from builder.runs.store import RunStore

ws, run_id, owner, how = sys.argv[1:5]
store = RunStore(ws, actor=Actor.of_job(owner), mark_interrupted=False)
room = broker.Room(run_id, store.folder(run_id).path, 2**20,
                   lambda taken, ended, total: f"over its room{' after its end' if ended else ''}: {taken} bytes",
                   every_s=0.05)
client = broker.start(store, room=room)
client.update_status(run_id, "running")
print("started", flush=True)
if how == "small":  # well within its room: nothing stops it
    client.log_metrics(run_id, [{"type": "step", "step": i, "loss": 0.5} for i in range(100)])
    (Path(client.run_dir(run_id)) / "small.bin").write_bytes(b"\\0" * 2**16)
    time.sleep(0.5)
    client.finish(run_id, "finished", message="done")
    client.close()
    print("ended", flush=True)
elif how == "late":  # its end recorded, then 4 MiB written at once, and gone before the broker looks again
    client.finish(run_id, "finished", message="done")
    (Path(client.run_dir(run_id)) / "late.bin").write_bytes(b"\\0" * 2**22)
    client.close()
    print("ended", flush=True)
elif how == "curve":  # a curve of 4 MiB, 256 KiB a call, in the run database
    for i in range(16):
        client.log_metrics(run_id, {"type": "step", "step": i, "blob": "x" * 2**18})
elif how == "folder":  # 4 MiB of files in its run's folder, and no store call at all
    for i in range(16):
        (Path(client.run_dir(run_id)) / f"blob{i}.bin").write_bytes(b"\\0" * 2**18)
        time.sleep(0.2)  # the broker measures its folder every 0.05 s here: what a job writes in that time is over
    time.sleep(60)
elif how == "entries":  # 4 MiB as the quota counts them, as empty files and folders: no bytes written at all
    for i in range(16):
        for k in range(32):
            (Path(client.run_dir(run_id)) / f"e{i}-{k}").touch()
            (Path(client.run_dir(run_id)) / f"d{i}-{k}").mkdir()
        time.sleep(0.2)
    time.sleep(60)
if how not in ("small", "late"):
    print("not stopped", flush=True)
"""


@pytest.mark.parametrize("how", ["curve", "folder", "entries"])
def test_a_job_that_writes_past_its_owners_storage_is_stopped_and_its_run_says_why(runs, how):
    """The storage quota was checked before a job started: a running job (its model turned against it, or just a
    long curve and big checkpoints) could write without end into the run database and its run's folder. Its
    broker now counts both against what its owner may still store (broker.Room) and stops it past that. Empty
    files and folders count too (each at least a block: run_folder.ENTRY_BYTES), else a job could make them by the
    million inside its room."""
    import subprocess
    import sys

    from tests.helpers import until

    store, mine, _ = runs
    job = subprocess.Popen([sys.executable, "-c", _GROWING_JOB, str(store.workspace), mine, ANN, how],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = job.communicate(timeout=120)
    assert job.returncode == -9 and out.split() == ["started"], err  # killed before its end
    until(lambda: store.get(mine)["status"] == "failed", "the run failed", 30, state=lambda: dict(store.get(mine)))
    run = store.get(mine)
    assert run["message"].startswith("over its room: ") and run["pid"] == job.pid
    taken = int(run["message"].split()[3])
    assert 2**20 < taken < 2**20 + 2**19  # stopped at its room (a call or a measurement later), not at the end
    if how == "curve":
        assert store.record_bytes(ANN) < 2 * 2**20  # the write that took it past its room was not made


def test_a_job_found_past_its_owners_storage_after_its_end_keeps_its_end_and_says_why(runs):
    """Past its room only once it had recorded its end (its last files, measured when it has gone): its results
    are there, so it is not failed; its message says why its owner's next jobs wait."""
    import subprocess
    import sys

    from tests.helpers import until

    store, mine, _ = runs
    job = subprocess.run([sys.executable, "-c", _GROWING_JOB, str(store.workspace), mine, ANN, "late"],
                         capture_output=True, text=True, timeout=120)
    # (still exiting when measured, it is stopped: a job that records its end and writes on is stopped so, maybe
    # before it said "ended" under load)
    ended = ["started", "ended"]
    assert job.stdout.split() == ended if job.returncode == 0 else \
        job.returncode == -9 and job.stdout.split() in (ended, ended[:1]), (job.returncode, job.stdout, job.stderr)
    until(lambda: store.get(mine)["message"] != "", "the end written", 30, state=lambda: dict(store.get(mine)))
    run = store.get(mine)
    assert run["status"] == "finished" and run["message"].startswith("over its room after its end: 4"), dict(run)


def test_a_job_whose_own_files_passed_its_room_is_told_so_when_its_owners_total_is_looked_at_first(runs):
    """Its folder is measured every ``every_s`` and its owner's total every ``total_every_s``: a checkpoint written
    between two measurements of its folder was first seen in the total, and the job was stopped with "0.0 MiB of it
    written by this job and the rest by its owner's other work". What it took is measured again then."""
    store, mine, _ = runs
    folder = store.folder(mine, write=True).path
    folder.mkdir(parents=True, exist_ok=True)
    lines: list = []
    room = broker.Room(mine, folder, 2**20, lambda taken, ended, total=None: lines.append((taken, total)) or "past",
                       total=lambda: 3 * 2**20, cap=2 * 2**20, every_s=3600, total_every_s=0)
    meter = broker._Meter(room)
    assert meter.taken() == 0  # its folder measured: not again for an hour
    (folder / "checkpoint.pt").write_bytes(b"x" * 2 * 2**20)  # its checkpoint, written after that measurement
    assert broker._stop_over_room(store, broker._Ends(), meter, job_pid=-1, written=1)
    (taken, total), = lines
    assert total is None and taken > 2 * 2**20  # its own room passed: its own writes are the reason


def test_a_job_within_its_owners_storage_runs_to_its_end(runs):
    import subprocess
    import sys

    store, mine, _ = runs
    job = subprocess.run([sys.executable, "-c", _GROWING_JOB, str(store.workspace), mine, ANN, "small"],
                         capture_output=True, text=True, timeout=120)
    assert job.returncode == 0 and job.stdout.split() == ["started", "ended"], job.stderr
    assert (store.get(mine)["status"], store.get(mine)["message"]) == ("finished", "done")


_SHARING_JOB = """
import sys, time
from dataclasses import replace
from builder.data.access import Actor
from builder.jobs.job_sandbox import job_room
from builder.process import broker
from builder.runs.store import RunStore

ws, run_id, owner = sys.argv[1:4]
store = RunStore(ws, actor=Actor.of_job(owner), mark_interrupted=False)
room = replace(job_room(store, run_id), every_s=0.05, total_every_s=0.1)  # as a job gets it (looked at more often)
client = broker.start(store, room=room)
client.update_status(run_id, "running")
print("started", flush=True)
for i in range(24):  # 3 MiB of curve, 128 KiB a call: within its own room
    client.log_metrics(run_id, {"type": "step", "step": i, "blob": "x" * 2**17})
    time.sleep(0.05)
client.finish(run_id, "finished", message="done")
client.close()
print("ended", flush=True)
"""


def test_jobs_of_one_owner_running_at_once_are_held_to_its_storage_between_them(runs):
    """Each job was admitted with all its owner had left, so two jobs running at once could each take it: an
    owner with a 4 MiB limit stored 6 MiB. A job's broker now also looks at its owner's storage as a whole while the
    job writes (job_room: quotas.storage_bytes under the cap) and stops a job that writes past it."""
    import subprocess
    import sys

    from builder.jobs.quotas import room_of, usage
    from tests.helpers import until

    store, mine, _ = runs
    other = store.create_run(load_template("mlp"), "moons", {}, {}, owner=ANN)
    for run_id in (mine, other):  # as the queue records them, one after the other, each with what is left
        store.set_environment(run_id, storage_room=room_of(usage(store, ANN, gpu=False), {"storage_mb": 4}))
    assert store.get(mine)["environment"]["storage_room"]["left"] > 3 * 2**20  # each alone fits
    jobs = [subprocess.Popen([sys.executable, "-c", _SHARING_JOB, str(store.workspace), run_id, ANN],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for run_id in (mine, other)]
    outs = [job.communicate(timeout=120) for job in jobs]
    assert any(job.returncode == -9 and out.split() == ["started"] for job, (out, _) in zip(jobs, outs)), outs
    until(lambda: all(store.get(r)["status"] in ("failed", "finished") for r in (mine, other)), "both ended", 30,
          state=lambda: [dict(store.get(r)) for r in (mine, other)])
    stopped = [store.get(r) for r in (mine, other) if store.get(r)["status"] == "failed"]
    assert stopped and all(r["message"].startswith("the training job stopped: its owner's storage filled up while "
                                                   "it wrote (one person's runs, uploads and studies may take at "
                                                   "most 4 MiB; received: ") for r in stopped), stopped
    # held to the cap, give or take what two jobs write between two looks (without the look: 6 MiB)
    assert store.record_bytes(ANN) < 4.75 * 2**20


_GPU_JOB = """
import sys, time
from builder.data.access import Actor
from builder.process import broker
from builder.runs.store import RunStore

ws, run_id, owner, how = sys.argv[1:5]
store = RunStore(ws, actor=Actor.of_job(owner), mark_interrupted=False)
start = time.monotonic()
room = broker.Room(run_id, store.folder(run_id).path, None, lambda *a: "no storage limit",
                   gpu_spent=lambda rid: "the GPU-time quota (spent)" if time.monotonic() - start > 0.5 else None,
                   gpu_every_s=0.2, grace_s=1.5)
client = broker.start(store, room=room)
client.update_status(run_id, "running")
print("started", flush=True)
while True:  # training on a GPU
    if how == "obeys" and client.take_control(run_id) == "stop":  # as the job's control thread does
        client.finish(run_id, "stopped", message="stopped by request; resume to continue from the checkpoint")
        client.close()
        print("stopped", flush=True)
        break
    time.sleep(0.05)
"""


@pytest.mark.parametrize("how", ["obeys", "ignores"])
def test_a_job_whose_owner_spends_their_gpu_time_while_it_runs_is_stopped_and_told_why(runs, how):
    """The GPU-time quota was checked when a job was admitted: one admitted with a minute left trained on a GPU for
    hours. Its broker now asks its owner's GPU time every few seconds (broker.Room.gpu_spent: quotas.gpu_spent) and,
    once spent, asks the job to stop as Stop does (it keeps its checkpoint), the reason on its run; a job that does
    not stop is killed after its grace."""
    import subprocess
    import sys

    from tests.helpers import until

    store, mine, _ = runs
    job = subprocess.Popen([sys.executable, "-c", _GPU_JOB, str(store.workspace), mine, ANN, how],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = job.communicate(timeout=120)
    if how == "obeys":
        assert job.returncode == 0 and out.split() == ["started", "stopped"], err
        until(lambda: store.get(mine)["status"] == "stopped", "the run stopped", 30,
              state=lambda: dict(store.get(mine)))
    else:
        assert job.returncode == -9 and out.split() == ["started"], err  # killed after its grace
    assert store.get(mine).stopped_by == "the GPU-time quota (spent)" or how == "ignores"
    assert store.get(mine).tags.get("stopped_by") == "the GPU-time quota (spent)"


def test_a_confined_process_gets_other_owners_by_pseudonym_never_by_id(runs, monkeypatch):
    """Issue 28 (identities): in shared mode a job's broker answers as an actor that reads every run, and each row it
    listed or read named its owner by id, an anonymous owner's browser cookie ('anon:bbbb...' in Ann's job): a model
    that took the job over could write them into its own run, for its owner to read. Another owner's rows name it
    by pseudonym; the process's own rows keep its id (its uploads' folder)."""
    from builder.runs.owners import pseudonym

    store, mine, theirs = runs
    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    client = broker.start(store.as_actor(Actor.of_job(ANN)))
    try:
        listed = {r["id"]: r["owner"] for r in client.list_runs()}
        read = client.get(theirs)["owner"]
        own = client.get(mine)["owner"]
    finally:
        client.close()
    assert listed == {mine: ANN, theirs: pseudonym(store.workspace, BOB)}
    assert read == pseudonym(store.workspace, BOB) and "b" * 32 not in read and own == ANN


def test_a_confined_process_gets_no_file_path_of_another_owners_run(tmp_path, monkeypatch):
    """Shared mode: a command-line run keeps its data file's path on the server (its own runs reload it), and every
    shared-mode job's broker handed it on (dataset_options and dataset_info's options) to whatever the job runs.
    Another owner's data options are as people see them: the file's name, no path."""
    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    store = RunStore(tmp_path, actor=SYSTEM)
    secret = "/home/ops/SECRETDIR/private_people.csv"
    local = store.create_run(load_template("mlp"), "csv", {"path": secret, "target": "y"}, {}, owner="local",
                             dataset_info={"name": "csv:private_people.csv", "options": {"path": secret, "target": "y"}})
    mine = store.create_run(load_template("mlp"), "csv", {"path": "/tmp/mine.csv"}, {}, owner=ANN)
    client = broker.start(store.as_actor(Actor.of_job(ANN)))
    try:
        rows = {r["id"]: r for r in client.list_runs()}
        read = client.get(local)
    finally:
        client.close()
    for row in (rows[local], read):
        assert "SECRETDIR" not in json.dumps(row.row if hasattr(row, "row") else row, default=str), row
        assert row["dataset_options"]["target"] == "y"
    assert rows[mine]["dataset_options"]["path"] == "/tmp/mine.csv"  # the process's own run, as recorded


def test_a_held_end_names_the_jobs_process_in_the_statement_that_makes_it_final(runs, monkeypatch):
    """A job's broker holds its end and stands as the run's process meanwhile (its pid on the run); once the job
    has gone it writes the end, then named the job's process again in a later statement: a reader between the two
    saw a finished run whose process was the broker (CI: ``test_later_jobs_fork_from_the_warm_launcher``)."""
    store, mine, _ = runs
    job_pid, broker_pid = 4_000_001, 4_000_002  # neither this process's parent: the job has ended
    store.as_actor(SYSTEM).update_run(mine, pid=broker_pid)
    job = store.as_actor(Actor.of_job(ANN))
    job.for_pid = job_pid
    ends = broker._Ends()
    ends.add(mine, "finish", [mine, "finished"], {"final": {"loss": 0.5}})
    seen: list = []
    write = RunStore._write

    def spy(self, sql, args=()):
        n = write(self, sql, args)
        row = store.get(mine)
        seen.append((row["status"], row["pid"]))
        return n

    monkeypatch.setattr(RunStore, "_write", spy)
    broker._write_ends(job, job_pid, ends)
    assert ("finished", broker_pid) not in seen and seen[-1] == ("finished", job_pid), seen
