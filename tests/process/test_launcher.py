"""builder/process/launcher.py: detached processes (own session, log, environment, no stdin) and pid liveness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.process.launcher import child_env, package_root, run_attached, spawn_detached
from builder.training.run_status import host_name, is_orphaned, pid_alive, reaping
from tests.helpers import until

# the child reports what a detached process sees: its session, stdin, working folder, import path
_REPORT = ("import builder, json, os, sys; print(json.dumps({'pid': os.getpid(), 'sid': os.getsid(0), "
           "'stdin': sys.stdin.read(), 'cwd': os.getcwd(), 'builder': builder.__file__, "
           "'path': os.environ.get('PYTHONPATH'), 'x': os.environ.get('LAYERLAB_X')}))")



def test_package_root_holds_this_builder():
    import builder

    assert (package_root() / "builder" / "__init__.py").samefile(builder.__file__)


def test_spawn_detached_runs_in_its_own_session_with_its_log(tmp_path):
    log = tmp_path / "child.log"
    log.write_text("earlier output\n")
    proc = spawn_detached(["-c", _REPORT], log, env={**os.environ, "LAYERLAB_X": "1"})
    assert proc.wait(60) == 0
    earlier, line = log.read_text().splitlines()
    seen = json.loads(line)
    assert earlier == "earlier output"  # appended, not truncated
    assert seen["pid"] == proc.pid and seen["sid"] == proc.pid  # a session of its own
    assert seen["stdin"] == ""  # /dev/null: never waits on the caller's terminal
    assert os.path.samefile(seen["cwd"], package_root())
    assert os.path.samefile(seen["builder"], package_root() / "builder" / "__init__.py")  # this very copy
    assert seen["path"].split(os.pathsep)[0] == str(package_root()) and seen["x"] == "1"


def test_a_background_process_started_without_an_env_gets_none_of_the_servers_secrets(tmp_path, monkeypatch):
    """Deny by default: spawn_detached and run_attached without ``env`` passed the server's whole environment
    (its admins, MLflow's credentials) to whatever a new caller started."""
    for k in ("LAYERLAB_ADMINS", "MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "hunter2")
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    proc = spawn_detached(["-c", code], tmp_path / "a.log")
    assert proc.wait(60) == 0
    run_attached(["-c", code], tmp_path / "b.log")
    for log in ("a.log", "b.log"):
        env = json.loads((tmp_path / log).read_text().splitlines()[-1])
        assert "hunter2" not in json.dumps(env) and env["PYTHONPATH"].startswith(str(package_root()))


def test_spawn_detached_output_and_errors_share_the_log(tmp_path):
    log = tmp_path / "err.log"
    proc = spawn_detached(["-c", "import sys; print('out', flush=True); sys.exit('boom')"], log, cwd=tmp_path)
    assert proc.wait(60) == 1
    assert log.read_text().splitlines() == ["out", "boom"]


def test_spawn_detached_missing_log_folder_raises(tmp_path):
    with pytest.raises(OSError):
        spawn_detached(["-c", "pass"], tmp_path / "no" / "such" / "x.log")


@given(st.lists(st.text(alphabet="abc/._", max_size=6), max_size=4))
def test_child_env_puts_the_package_root_first(parts):
    env = child_env({"PYTHONPATH": os.pathsep.join(parts), "A": "b"})
    assert env["A"] == "b"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(package_root()), *[p for p in parts if p]]


def test_pid_alive_for_live_ended_and_zombie_processes():
    assert pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(proc.pid)
        proc.send_signal(signal.SIGKILL)
        until(lambda: not pid_alive(proc.pid), "the killed child to read as dead (a zombie until reaped)", 60)
    finally:
        proc.kill()
        proc.wait(30)
    assert not pid_alive(proc.pid)


def test_a_zombie_whose_parent_lives_is_being_reaped_and_a_job_of_it_is_not_orphaned():
    """A zombie child of a live parent (this process) is dying, not gone: its starter records how it ended before
    it reaps it, so a reader does not mark its run interrupted first (:func:`reaping`, :func:`is_orphaned`)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run = {"status": "running", "host": host_name(), "pid": proc.pid, "beat_at": 0.0}
    try:
        assert not reaping(proc.pid) and not is_orphaned(run, host_name(), 0.0)  # alive
        proc.send_signal(signal.SIGKILL)
        until(lambda: reaping(proc.pid), "the killed child to be a zombie of this live process", 60)
        assert not pid_alive(proc.pid) and not is_orphaned(run, host_name(), 0.0)  # ended, left to its starter
    finally:
        proc.kill()
        proc.wait(30)
    assert not reaping(proc.pid) and is_orphaned(run, host_name(), 0.0)  # reaped with no word: orphaned
    assert not reaping(os.getpid()) and not reaping(None) and not reaping(-3)


@given(st.one_of(st.integers(max_value=0), st.none(), st.booleans(), st.text(max_size=3), st.floats()))
def test_pid_alive_refuses_what_is_not_a_pid(pid):
    assert pid_alive(pid) is False


def test_run_attached_waits_for_its_child_and_the_child_dies_with_its_starter(tmp_path):
    """A Ray task's job process (builder/jobs/ray_task.py) is started by :func:`run_attached`: waited for, its
    output in the log, and killed when the process that started it is (``PR_SET_PDEATHSIG``)."""
    from builder.process.launcher import run_attached

    log = tmp_path / "attached.log"
    pid, code = run_attached(["-c", "print('attached'); raise SystemExit(4)"], log)
    assert code == 4 and log.read_text().splitlines()[-1] == "attached" and not pid_alive(pid)
    child_pid = tmp_path / "child.pid"
    sleeper = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
    starter = subprocess.Popen([sys.executable, "-c", (
        "import sys; from builder.process.launcher import run_attached; "
        f"run_attached(['-c', {sleeper!r}, sys.argv[1]], sys.argv[2])"), str(child_pid),
        str(tmp_path / "starter.log")], cwd=package_root())
    try:
        until(lambda: child_pid.is_file() and child_pid.read_text().strip(), "the child to start", 60)
        child = int(child_pid.read_text())
        assert pid_alive(child)
        starter.kill()
        starter.wait(30)
        until(lambda: not pid_alive(child), "the child to die with its starter", 30)
    finally:
        starter.kill()



def test_one_person_has_at_most_so_many_sandboxed_children_at_once(tmp_path, monkeypatch):
    """Each Explain/Try it page session holds a model probe and each import a worker, each allowed gigabytes: one
    person's many tabs could start any number of them (memory for everyone else). Per owner at most
    ``LAYERLAB_SANDBOX_PER_OWNER`` live at once; a further one is refused in one line; others are unaffected."""
    from builder.errors import LayerLabError
    from builder.process.launcher import spawn_sandboxed
    from builder.process.sandbox import sandbox_env

    monkeypatch.setenv("LAYERLAB_SANDBOX_ZYGOTE", "0")  # fresh interpreters: nothing shared with other tests
    monkeypatch.setenv("LAYERLAB_SANDBOX_PER_OWNER", "1")
    started = []

    def start(owner):  # the worker's entry reads its request to the end: it lives while its stdin is open
        proc = spawn_sandboxed("builder.interchange.worker:_child_main", tmp_path, sandbox_env, owner=owner,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        return proc

    def end(proc):
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)

    try:
        alive = start("anon:a")
        with pytest.raises(LayerLabError, match=r"at most 1 model process\(es\) at once \(Explain.*; received: 1 running\. Fix:"):
            start("anon:a")
        end(start("anon:b"))  # another person is unaffected
        end(start(None))  # a trusted caller's (no owner) is not counted
        end(alive)
        end(start("anon:a"))  # its place is free again
    finally:
        for proc in started:  # only what this test started, by pid
            if proc.poll() is None:
                end(proc)
