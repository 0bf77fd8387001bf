"""A study's runner is work a person starts: it counts against their quotas (builder.jobs.quotas.check_study). A
person at their ``running`` limit of live study runners, or whose storage is full, starts no further runner
(each imports torch and holds its memory for hours; before, any number could be started past every limit)."""

from __future__ import annotations

import os
import signal

import pytest

from builder.graph.templates import load_template
from builder.jobs import quotas
from builder.jobs.quotas import QuotaError
from builder.process.launcher import spawn_detached
from builder.search import StudySettings, launch_study
from builder.search import runner as runner_mod
from builder.search.storage import study_files

ME = "anon:" + "c3" * 16


@pytest.fixture
def ws(tmp_path, monkeypatch):
    for name in (*quotas.ENV.values(), "LAYERLAB_TEACHERS", "LAYERLAB_SERVER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    started: list = []

    def sleeper(cmd, log, env, name):  # a live process in the runner's place (no torch import)
        proc = spawn_detached(["-c", "import time; time.sleep(120)"], log, env=env, name=name)
        started.append(proc)
        return proc

    monkeypatch.setattr(runner_mod, "spawn_detached", sleeper)
    monkeypatch.setattr(runner_mod, "limit_study", lambda pid: None)
    yield tmp_path, started
    for proc in started:  # only the processes this test started, by pid
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _launch(ws, name, owner=ME):
    return launch_study(ws, load_template("mlp"), "moons", ["lr=1e-3..1e-1:log"],
                        StudySettings(name=name, n_trials=2, pruner="none", owner=owner), config={"epochs": 1})


def test_a_person_at_their_running_limit_starts_no_further_study_runner(ws, monkeypatch):
    ws, started = ws
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "1")
    first = _launch(ws, "one")
    with pytest.raises(QuotaError, match=r"at most 1 search\(es\) running at once; received: 1 running. Fix:"):
        _launch(ws, "two")
    assert started == [first] and not study_files(ws, ME, "two")["project"].exists()
    with pytest.raises(QuotaError):  # a second runner of the same study counts too (Resume in another tab)
        _launch(ws, "one")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    _launch(ws, "two")  # its runner ended: the place is free again
    assert len(started) == 2
    _launch(ws, "three", owner="local")  # the CLI's local user is never limited
    assert len(started) == 3


def test_a_person_whose_storage_is_full_starts_no_study(ws, monkeypatch):
    ws, started = ws
    from builder.data.access import SYSTEM
    from builder.runs.store import RunStore

    store = RunStore(ws, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    (store.run_dir(rid) / "blob.bin").write_bytes(b"\0" * (2 * 2**20))
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "1")
    with pytest.raises(QuotaError, match="at most 1 MiB; received: 2.0 MiB in use"):
        _launch(ws, "full")
    assert started == [] and not study_files(ws, ME, "full")["project"].exists()


def test_a_file_size_limit_the_run_database_has_outgrown_starts_no_study(ws, monkeypatch):
    """A study runner writes the run database under the jobs' file size limit (as a job does,
    builder.jobs.job_sandbox.check_store_room): past it, it could record nothing; it is refused before it starts."""
    ws, started = ws
    from builder.data.access import SYSTEM
    from builder.jobs.job_sandbox import JobLimitError
    from builder.runs.store import RunStore

    store = RunStore(ws, actor=SYSTEM)
    store._write("CREATE TABLE IF NOT EXISTS test_padding (x BLOB)")
    store._write("INSERT INTO test_padding VALUES (?)", (b"\0" * 1_500_000,))
    monkeypatch.setenv("LAYERLAB_JOB_FILE_MB", "1")
    with pytest.raises(JobLimitError, match=r"raise LAYERLAB_JOB_FILE_MB to at least \d+: the run database"):
        _launch(ws, "cramped")
    assert started == [] and not study_files(ws, ME, "cramped")["project"].exists()
    monkeypatch.setenv("LAYERLAB_JOB_FILE_MB", "64")
    _launch(ws, "roomy")
    assert len(started) == 1
