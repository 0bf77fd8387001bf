"""The GPU time a run used (:mod:`builder.runs.run_time`), through the run store as jobs and resumes write it:
records faked with the system's store (no GPU needed); the GPU host's own check is
tests/jobs/test_gpu_jobs.py::test_a_stopped_gpu_job_resumes_on_the_gpu_within_its_owners_gpu_quota."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.data.access import SYSTEM, Actor
from builder.errors import AccessDenied
from builder.graph.templates import load_template
from builder.jobs import quotas
from builder.runs import run_time
from builder.runs.store import RunStore

ME = "anon:" + "a" * 32
HOUR = 3600.0


@pytest.fixture
def store(tmp_path, monkeypatch):
    for name in (*quotas.ENV.values(), "LAYERLAB_TEACHERS", "LAYERLAB_SERVER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return RunStore(tmp_path / "ws", actor=SYSTEM)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _gpu_job(store: RunStore, rid: str, started: datetime, ended: datetime, status: str = "stopped") -> None:
    """What a job on GPU 0 records between ``started`` and ``ended`` (its times set by the system's store)."""
    store.update_status(rid, "running")
    store.set_environment(rid, device="cuda:0", gpu=0, gpu_need=100)
    store.update_run(rid, started_at=_iso(started), queued_at=started.timestamp() - 1)
    store.update_status(rid, status)
    store.update_run(rid, finished_at=_iso(ended))


def test_a_resumed_run_keeps_counting_the_gpu_time_of_its_earlier_jobs(store):
    """Stop and resume reset a run's GPU time to nothing: its GPU-seconds were counted from its last queueing
    only, and not at all while it waited in the queue again, so stopping and resuming a GPU job ran it past its
    owner's GPU-time quota without end."""
    now = datetime.now(timezone.utc)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    _gpu_job(store, rid, now - timedelta(hours=3), now - timedelta(hours=2))
    assert quotas.usage(store, ME)["gpu_seconds"] == pytest.approx(HOUR, abs=5)
    store.requeue(rid)  # resumed: queued again
    assert quotas.usage(store, ME)["gpu_seconds"] == pytest.approx(HOUR, abs=5)  # waiting: the hour still counts
    env = store.get(rid)["environment"]
    assert "gpu" not in env and "device" not in env  # the next job records where it runs
    store.update_status(rid, "running")
    store.set_environment(rid, device="cuda:0", gpu=0)
    store.update_run(rid, queued_at=(now - timedelta(minutes=30)).timestamp())
    store.update_status(rid, "stopped")
    store.update_run(rid, finished_at=_iso(now))
    assert quotas.usage(store, ME)["gpu_seconds"] == pytest.approx(1.5 * HOUR, abs=5)


def test_a_gpu_run_resumed_on_the_cpu_counts_only_its_gpu_job(store):
    now = datetime.now(timezone.utc)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    _gpu_job(store, rid, now - timedelta(hours=3), now - timedelta(hours=2))
    store.requeue(rid)
    store.update_status(rid, "running")
    store.set_environment(rid, device="cpu")  # the resumed job's own record: it was not placed on a GPU
    assert quotas.usage(store, ME)["gpu_seconds"] == pytest.approx(HOUR, abs=5)
    store.update_status(rid, "finished")
    assert quotas.usage(store, ME)["gpu_seconds"] == pytest.approx(HOUR, abs=5)


def test_a_job_cannot_write_away_the_gpu_time_its_run_used(store):
    """A job reads and writes its own run as its owner (the broker answers it so): what the GPU quota counts is
    LayerLab's, the ledger, the placement on a GPU and the run's times."""
    now = datetime.now(timezone.utc)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    _gpu_job(store, rid, now - timedelta(hours=4), now - timedelta(hours=3))
    store.requeue(rid)
    store.update_status(rid, "running")
    store.set_environment(rid, device="cuda:0", gpu=0)
    store.update_run(rid, queued_at=(now - timedelta(hours=1)).timestamp())
    used = quotas.usage(store, ME)["gpu_seconds"]
    assert used == pytest.approx(2 * HOUR, abs=5)

    job = store.as_actor(Actor.of_job(ME))
    job.set_environment(rid, gpu_used=[], device="cpu", gpu=None, precision="fp32")
    env = store.get(rid)["environment"]
    assert env["device"] == "cuda:0" and env["gpu"] == 0 and env["precision"] == "fp32"  # the rest lands
    job.update_run(rid, environment={"device": "cpu"})
    job.update_status(rid, "running", environment={})
    job.update_run(rid, environment="none")  # not an object: the ledger and the placement stay all the same
    for column in ("started_at", "finished_at", "updated_at", "created_at"):
        with pytest.raises(AccessDenied, match="LayerLab's to set"):
            job.update_run(rid, **{column: _iso(now)})
    env = store.get(rid)["environment"]
    assert env["device"] == "cuda:0" and env["gpu"] == 0 and len(env[run_time.LEDGER]) == 1
    assert quotas.usage(store, ME)["gpu_seconds"] >= used
    job.set_environment(rid, device="cuda:0", world_size=1)  # what a job records of itself still lands
    assert store.get(rid)["environment"]["world_size"] == 1


def test_a_job_that_never_ran_on_a_gpu_records_its_device(store):
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    job = store.as_actor(Actor.of_job(ME))
    job.update_status(rid, "running")
    job.set_environment(rid, device="cpu")
    job.set_environment(rid, device="cuda:0")  # e.g. `auto`, resolved once CUDA answered
    assert store.get(rid)["environment"]["device"] == "cuda:0"


_segments = st.lists(st.tuples(st.floats(0, 2 * HOUR), st.floats(0, HOUR), st.integers(1, 4)), min_size=1,
                     max_size=run_time.MAX_SEGMENTS + 40)


@given(_segments)
def test_closing_a_segment_never_counts_less_nor_more_than_the_run_used(parts):
    """However many stops and resumes a run had, the ledger keeps at least what it used within the window (a
    long ledger folds its oldest segments forward, never back out of the window) and never more than all of it."""
    t, ledger = 1e9, []
    for gap, length, procs in parts:
        t += gap
        ledger.append([t, t + length, procs])
        t += length
    now = t + 1.0
    run = {"status": "stopped", "environment": {"device": "cuda:0", run_time.LEDGER: ledger[:-1]},
           "started_at": datetime.fromtimestamp(ledger[-1][0] - 5, timezone.utc).isoformat(),
           "queued_at": ledger[-1][0], "finished_at": datetime.fromtimestamp(ledger[-1][1], timezone.utc).isoformat()}
    before = run_time.run_gpu_seconds(run, now)
    after = {**run, "status": "queued", "environment": run_time.closed(run, now)}
    assert len(after["environment"][run_time.LEDGER]) <= run_time.MAX_SEGMENTS
    total = sum((e - s) * p for s, e, p in ledger)
    assert before - 1.0 <= run_time.run_gpu_seconds(after, now) <= total + 1e-6


def test_a_job_cannot_make_itself_hold_a_gpu_slot_or_a_clusters_room(store, monkeypatch):
    """The GPU packing reads each running job's GPU and estimate, a cluster's admission its executor and resources,
    from the run's environment: a job that wrote them (its owner's actor, through the broker) held every GPU slot
    of its host, or a cluster's room, from other people. Only LayerLab writes them; the job's own slot claim (made
    before anything of the person's runs) still lands."""
    from builder.jobs import queue as jobs
    from builder.training import gpus as G

    monkeypatch.setattr(jobs, "GPU_USED", lambda: {})
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    other = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="anon:" + "b" * 32)
    job = store.as_actor(Actor.of_job(ME))
    job.update_status(rid, "running")
    job.set_environment(rid, device="cpu", gpu=0, gpu_need=2**60, executor="ray", resources={"num_gpus": 1000})
    env = store.get(rid)["environment"]
    assert not {"gpu", "gpu_need", "executor", "resources"} & set(env) and env["device"] == "cpu"
    job.update_run(rid, environment={"gpu": 0, "gpu_need": 2**60})
    assert not {"gpu", "gpu_need"} & set(store.get(rid)["environment"])
    assert jobs._placements(store) == []
    fake = [G.Gpu(0, free=16 * 2**30, total=16 * 2**30)]
    assert jobs.claim_gpu(store.as_actor(Actor.of_job("anon:" + "b" * 32)), other, 2**30, fake, limit=4) == 0
    assert store.get(other)["environment"]["gpu"] == 0  # claimed as LayerLab's record
    # nor the storage its broker holds it to (builder.jobs.quotas.room_of), recorded when it was admitted
    store.set_environment(rid, storage_room={"left": 2**20}, gpu_quota={"cap": 60})
    job.set_environment(rid, storage_room={"left": 2**60}, gpu_quota=None)
    job.update_run(rid, environment={"storage_room": None, "gpu_quota": {"cap": 2**60}})
    assert store.get(rid)["environment"]["storage_room"] == {"left": 2**20}
    assert store.get(rid)["environment"]["gpu_quota"] == {"cap": 60}  # nor its GPU-time limit (quotas.gpu_limit)
