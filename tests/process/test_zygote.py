"""The sandbox's zygote (builder.process.zygote): a forked sandboxed child is what a fresh interpreter's was (its
own session, the clean environment and private folder of its request, its own random seeds, the limits and the
lock-down it sets itself), the zygote holds nothing of the server's and ends with it; the fresh interpreter
stays the fallback. The hostile-task tests of tests/interchange/test_worker.py run through the zygote too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder.interchange import worker
from builder.process import zygote
from tests.helpers import until


def _task_identity() -> dict:
    import random

    import numpy as np
    import torch

    return {"pid": os.getpid(), "sid": os.getsid(0), "ppid": os.getppid(), "env": dict(os.environ),
            "cwd": os.getcwd(), "random": random.random(), "numpy": float(np.random.random()),
            "torch": int(torch.initial_seed()), "stdin_closed": sys.stdin.buffer.read() == b""}


def _task_sleep(seconds: float) -> None:
    time.sleep(seconds)


@pytest.fixture
def tasks(monkeypatch):
    """``run_isolated`` with this module's tasks, the zygote started as a server's warm-up starts it."""
    for name in ("identity", "sleep"):
        monkeypatch.setitem(worker.TEST_TASKS, name, f"{__name__}:_task_{name}")
    assert worker.warm_sandbox()
    return worker.run_isolated


def test_a_process_first_child_is_fresh_and_the_zygote_comes_with_the_second(tasks, monkeypatch):
    """A one-shot process (``layerlab predict``) starts one child: a zygote would import more than it does."""
    zygote.shutdown()
    monkeypatch.setattr(zygote, "_FRESH_LEFT", 1)
    first = tasks("identity", 60)
    assert first["ppid"] == os.getpid() and zygote._ZYGOTE is None
    second = tasks("identity", 60)
    assert second["ppid"] == zygote._ZYGOTE.proc.pid


def test_forked_children_are_fresh_sessions_with_the_requests_environment_and_their_own_seeds(tasks, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TEST_SECRET", "hunter2")
    first, second = tasks("identity", 60), tasks("identity", 60)
    zyg = zygote._ZYGOTE
    assert zyg is not None and zyg.alive, "the children were not forked from a zygote"
    for seen in (first, second):
        assert seen["ppid"] == zyg.proc.pid  # forked by the zygote, not started by this process
        assert seen["sid"] == seen["pid"]  # a session of its own: killpg(pid) ends it and what it left
        assert "hunter2" not in json.dumps(seen["env"])
        assert seen["env"]["HOME"] == seen["env"]["TMPDIR"] == seen["cwd"]
        assert Path(seen["cwd"]).name.startswith("layerlab-worker-")
        assert seen["stdin_closed"]  # it read its whole request: the pipe is its own
    assert first["cwd"] != second["cwd"]
    assert (first["random"], first["numpy"], first["torch"]) != (second["random"], second["numpy"], second["torch"])
    assert first["random"] != second["random"] and first["numpy"] != second["numpy"] and first["torch"] != second["torch"]


def test_the_zygote_holds_nothing_of_the_server_and_forks_from_one_python_thread(tasks, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TEST_SECRET", "hunter2")
    zygote.shutdown()  # a zygote started while the secret is set
    assert worker.warm_sandbox()
    tasks("identity", 60)
    pid = zygote._ZYGOTE.proc.pid
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"hunter2" not in environ and b"LAYERLAB_TEST_SECRET" not in environ
    assert Path(f"/proc/{pid}/cwd").resolve().name.startswith("layerlab-zygote-")
    # torch's import starts one native thread of its own (the warm job launcher forks with it as well);
    # onnxruntime's would be a second, so the zygote leaves onnxruntime to its children
    assert len(os.listdir(f"/proc/{pid}/task")) <= 2
    assert "onnxruntime" not in worker.SANDBOX_PRELOAD


def test_a_child_still_running_is_killed_with_its_session_and_its_end_reported(tasks, tmp_path):
    with open(tmp_path / "log", "wb") as log:
        child = worker.spawn_sandboxed("builder.interchange.worker:_child_main", tmp_path, stdout=log, stderr=log)
    assert isinstance(child, zygote.ForkedChild) and child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.2)  # it waits for its request on stdin
    worker.kill_group(child)
    assert child.returncode == -signal.SIGKILL


def test_off_the_sandbox_starts_a_fresh_interpreter(tasks, monkeypatch):
    monkeypatch.setenv(zygote.ENV_ZYGOTE, "0")
    monkeypatch.setenv("LAYERLAB_TEST_SECRET", "hunter2")
    seen = tasks("identity", 60)
    assert seen["ppid"] == os.getpid() and seen["sid"] == seen["pid"]
    assert "hunter2" not in json.dumps(seen["env"])
    monkeypatch.setitem(worker.TEST_TASKS, "segfault", "tests.interchange.test_worker:_task_segfault")
    with pytest.raises(worker.ModelImportError, match="SIGSEGV"):
        tasks("segfault", 60)


SERVER = textwrap.dedent("""
    import sys, time
    from builder.interchange import worker
    from builder.process import zygote
    log = open(sys.argv[1], "wb")
    worker.warm_sandbox()  # as the app's warm-up
    child = worker.spawn_sandboxed("builder.interchange.worker:_child_main", sys.argv[2], stdout=log, stderr=log)
    print(zygote._ZYGOTE.proc.pid, child.pid, flush=True)
    time.sleep(600)
""")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # ended, not yet reaped by whoever adopted it


def test_the_zygote_and_its_children_end_when_the_server_dies(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "log"), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        zyg, child = (int(p) for p in server.stdout.readline().split())
        assert not _gone(zyg) and not _gone(child)
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        until(lambda: _gone(zyg) and _gone(child), "the zygote and its child to end", timeout=30)
    finally:
        server.kill()
        server.wait(30)


def test_an_idle_zygote_ends_and_a_servers_next_child_forks_from_another(monkeypatch):
    """A server (it warmed its zygote) whose zygote ended idle starts another for its next child: that child was a
    fresh interpreter (a one-shot process's first), and only the child after it restarted the zygote, so whoever
    came back to an idle server waited for two cold starts in a row."""
    monkeypatch.setitem(worker.TEST_TASKS, "identity", f"{__name__}:_task_identity")
    monkeypatch.setenv(zygote.ENV_IDLE, "0.5")
    monkeypatch.setattr(zygote, "_FRESH_LEFT", 1)  # as a process that has started no child yet
    zygote.shutdown()
    assert worker.warm_sandbox()  # the app's warm-up
    first = zygote._ZYGOTE.proc
    until(lambda: first.poll() is not None, "the idle zygote to end", timeout=30)
    seen = worker.run_isolated("identity", 60)
    assert zygote._ZYGOTE.proc.pid != first.pid and seen["ppid"] == zygote._ZYGOTE.proc.pid


def test_a_late_reply_to_an_abandoned_request_is_not_taken_for_the_next_child(tasks):
    """A request the server gave up on (no reply within its wait) may still be answered later: that pid must not
    be handed to the next caller as its child."""
    zyg = zygote._ZYGOTE
    with zyg.cond:
        zyg.replies.append({"id": -1, "pid": 1})  # as if an earlier request's reply came late
    seen = tasks("identity", 60)
    assert seen["ppid"] == zyg.proc.pid and seen["pid"] != 1


def test_a_reused_pid_is_not_taken_for_an_ended_child(tasks, tmp_path):
    """The kernel reuses pids: the end recorded for a pid's earlier child must not end its next one."""
    zyg = zygote._ZYGOTE
    with open(tmp_path / "log", "wb") as log:
        child = worker.spawn_sandboxed("builder.interchange.worker:_child_main", tmp_path, stdout=log, stderr=log)
    stale = range(child.pid + 1, child.pid + 5000)  # the pids the next child may get (allocated upwards)
    with zyg.cond:
        zyg.ended.update(dict.fromkeys(stale, 0))  # as if earlier children with those pids had ended
    with open(tmp_path / "log2", "wb") as log:
        later = worker.spawn_sandboxed("builder.interchange.worker:_child_main", tmp_path, stdout=log, stderr=log)
    assert later.pid in stale and later.poll() is None  # running: its pid's earlier end was dropped
    with zyg.cond:  # the made-up ends go; the two real children's stay to be recorded
        for pid in set(stale) - {later.pid}:
            zyg.ended.pop(pid, None)
    for c in (child, later):
        worker.kill_group(c)  # waits 5 s for the zygote's word of the end: a loaded fresh-clone run took longer
        assert c.wait(120) == -signal.SIGKILL
