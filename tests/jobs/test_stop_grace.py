"""A stop always stops (builder.jobs.control): a job that has not ended LAYERLAB_STOP_GRACE_S after Stop (its main
thread stuck in native code or on a lock, or still loading its data) is ended by its control thread, its run
recorded ``stopped`` with where it was busy, its threads' stacks in its log. Before, it stayed ``running`` for
ever, holding its slot and its owner's quota, and Stop did nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs.queue import request
from builder.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]

_JOB = """
import os, sys, threading
from pathlib import Path
from builder.data.access import SYSTEM
from builder.jobs.control import StoreControl
from builder.runs.store import RunStore
from builder.training.run_status import host_name
ws, rid, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
store = RunStore(ws, actor=SYSTEM, mark_interrupted=False)
store._write("UPDATE runs SET status = 'running', pid = ?, host = ? WHERE id = ?", (os.getpid(), host_name(), rid))
control = StoreControl(store, rid, poll_s=0.02)
stopped = threading.Event()

class Trainer:
    def stop(self):
        if mode == "prompt":  # a trainer that reaches its next step: it ends the run itself
            stopped.set()

if mode == "loading":
    control.start()  # what a job does before it loads its data
else:
    control.on_train_begin(Trainer())
print("ready", flush=True)
stopped.wait()  # stuck (loading, training) unless the trainer ends
control.on_train_end(None, None)
store.update_status(rid, "stopped", "stopped by itself")
sys.exit(3)
"""


@pytest.mark.parametrize("mode", ["training", "loading"])
def test_a_job_that_does_not_answer_stop_is_ended_and_recorded_stopped(tmp_path, mode):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAYERLAB_STOP_GRACE_S": "1"}
    job = subprocess.Popen([sys.executable, "-c", _JOB, str(store.workspace), rid, mode], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert job.stdout.readline().strip() == "ready"
        request(store, rid, "stop")  # the door the Train and Runs pages and `layerlab runs stop` use
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    run = store.get(rid)
    assert job.returncode == 0 and run["status"] == "stopped", (job.returncode, run["message"], err[-2000:])
    assert run["message"] == ("stopped: the job did not end within 1 s of the stop request (busy in threading.wait), "
                              "so its process was ended; resume it from its last checkpoint")
    assert f"job {rid}: no end 1 s after the stop request (busy in threading.wait); its threads:" in err
    assert "most recent call first" in err  # every thread's stack, for whoever looks into the hang
    assert not store.folder(rid).tmp.exists()


def test_a_job_that_answers_stop_in_time_ends_itself(tmp_path):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAYERLAB_STOP_GRACE_S": "30"}
    job = subprocess.Popen([sys.executable, "-c", _JOB, str(store.workspace), rid, "prompt"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert job.stdout.readline().strip() == "ready"
        request(store, rid, "stop")
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 3 and store.get(rid)["message"] == "stopped by itself", err[-2000:]
