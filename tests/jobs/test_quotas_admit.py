"""Quotas under concurrency (the check and the recording are one step under the workspace's quota lock) and the
GPU-time quota counted from the run store's records (faked: no GPU needed)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import queue as jobs
from builder.jobs import quotas
from builder.jobs.queue import JobSpec, submit
from builder.jobs.quotas import QuotaError
from builder.runs.store import RunStore
from tests.fuzz_budget import budget

ME, OTHER = "anon:" + "a" * 32, "anon:" + "b" * 32
NOW = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    for name in (*quotas.ENV.values(), "LAYERLAB_TEACHERS", "LAYERLAB_SERVER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _no_launch(monkeypatch):
    """submit records the run but starts no process (its pid: this live process, so it stays queued)."""
    import os

    monkeypatch.setattr(jobs, "launch_warm", lambda *a: os.getpid())


def _spec(owner: str, **config) -> JobSpec:
    return JobSpec(project=load_template("mlp").model_dump(mode="json"), dataset="moons", owner=owner,
                   config={"epochs": 1, **config})


def test_concurrent_submits_cannot_both_pass_a_limit_of_one(ws, monkeypatch):
    _no_launch(monkeypatch)
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "1")
    store = RunStore(ws, actor=SYSTEM)
    ok, refused = [], []
    barrier = threading.Barrier(4)

    def go(owner: str) -> None:
        barrier.wait()
        try:
            ok.append((owner, submit(RunStore(ws, actor=SYSTEM), _spec(owner))))
        except QuotaError as e:
            refused.append((owner, str(e)))

    threads = [threading.Thread(target=go, args=(o,)) for o in (ME, ME, ME, OTHER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o for o, _ in ok) == [ME, OTHER]  # one each: the other two of ME were refused
    assert [o for o, _ in refused] == [ME, ME]
    assert all("at most 1 job(s) running and 0 waiting; received: 0 running, 1 queued. Fix:" in m for _, m in refused)
    assert len(store.list_runs(owner=ME)) == 1


def _record(status: str, start: datetime | None, end: datetime | None, device: str = "cuda:0", **env) -> dict:
    return {"status": status, "environment": {"device": device, **env},
            "started_at": start.isoformat() if start else None, "finished_at": end.isoformat() if end else None,
            "updated_at": (end or NOW).isoformat()}


def test_gpu_seconds_from_faked_records():
    h = timedelta(hours=1)
    runs = [_record("finished", NOW - 2 * h, NOW - h),                      # 3600 s
            _record("running", NOW - 0.5 * h, None),                        # 1800 s so far
            _record("stopped", NOW - 30 * h, NOW - 23 * h),                 # only the last hour of it is in the window
            _record("finished", NOW - 3 * h, NOW - 2 * h, device="cpu"),    # CPU: nothing
            _record("finished", NOW - 3 * h, NOW - 2 * h, device="cpu", gpu=1),  # placed on GPU 1 by the packing
            _record("finished", NOW - 5 * h, NOW - 4 * h, world_size=2),    # two processes: 7200 s
            _record("queued", None, None),
            _record("finished", NOW - 40 * h, NOW - 30 * h)]                # a day and more ago
    assert quotas.gpu_seconds(runs, now=NOW.timestamp()) == pytest.approx(3600 + 1800 + 3600 + 3600 + 7200)
    resumed = {**_record("running", NOW - 10 * h, None), "queued_at": (NOW - h).timestamp()}
    assert quotas.gpu_seconds([resumed], now=NOW.timestamp()) == pytest.approx(3600)  # from its resume


@settings(max_examples=budget(25), deadline=None)
@given(st.lists(st.tuples(st.floats(0, 60), st.floats(0, 60)), max_size=6))
def test_gpu_seconds_never_exceed_the_window(spans):
    runs = [_record("finished", NOW - timedelta(hours=a + b), NOW - timedelta(hours=a)) for a, b in spans]
    used = quotas.gpu_seconds(runs, now=NOW.timestamp())
    assert 0.0 <= used <= quotas.GPU_WINDOW_S * len(runs) + 1e-6


def test_gpu_quota_refuses_gpu_jobs_not_cpu_jobs(ws, monkeypatch):
    _no_launch(monkeypatch)
    store = RunStore(ws, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    store.update_status(rid, "running")
    store.set_environment(rid, device="cuda:0")
    past = datetime.now(timezone.utc) - timedelta(hours=2)  # a faked record: queued and started two hours ago
    store.update_run(rid, started_at=past.isoformat(timespec="seconds"), queued_at=past.timestamp() - 1)
    store.finish(rid, "finished")
    assert quotas.usage(store, ME)["gpu_seconds"] == pytest.approx(7200, abs=5)
    monkeypatch.setenv("LAYERLAB_QUOTA_GPU_SECONDS", "3600")
    assert quotas.limits(ws, ME)["gpu_seconds"] == 3600
    before = len(store.list_runs(limit=100))
    with pytest.raises(QuotaError, match=r"at most 3600 GPU-seconds in 24 hours; received: 72\d\d GPU-seconds used "
                                         r"in the last 24 hours. Fix: set the device to CPU"):
        submit(store, _spec(ME))
    with pytest.raises(QuotaError, match=r"or ask your teacher \(limit set by LAYERLAB_QUOTA_GPU_SECONDS\)$"):
        submit(store, _spec(ME))
    assert len(store.list_runs(limit=100)) == before  # nothing recorded
    submit(store, _spec(ME, device="cpu"))  # a CPU job uses no GPU time: admitted
    submit(store, _spec(OTHER))  # others are unaffected
    assert quotas.wants_gpu("cuda:1") and quotas.wants_gpu(None) and not quotas.wants_gpu("mps")


def test_a_running_job_is_held_to_the_gpu_time_its_admission_recorded(ws, monkeypatch):
    """Admission records the owner's GPU-time limit on the run (quotas.gpu_limit: the server knows the teachers and
    the environment's limits, a job's clean environment neither); the job's broker checks it while the job runs
    (quotas.gpu_spent): None while the run is not on a GPU or its owner is under the limit, else the line it is
    stopped with (tests/process/test_broker.py: the stop itself)."""
    _no_launch(monkeypatch)
    monkeypatch.setenv("LAYERLAB_QUOTA_GPU_SECONDS", "3600")
    store = RunStore(ws, actor=SYSTEM)
    rid = submit(store, _spec(ME))
    limit = store.get(rid)["environment"]["gpu_quota"]
    assert limit == {"cap": 3600, "where": "LAYERLAB_QUOTA_GPU_SECONDS"}
    spent = quotas.gpu_spent(store, ME, limit)
    assert spent(rid) is None  # queued: not on a GPU
    store.update_status(rid, "running")
    store.set_environment(rid, device="cuda:0")
    assert spent(rid) is None  # on a GPU, and under the limit
    past = datetime.now(timezone.utc) - timedelta(hours=2)  # it has trained on a GPU for two hours
    store.update_run(rid, started_at=past.isoformat(timespec="seconds"), queued_at=past.timestamp() - 1)
    assert spent(rid).startswith("the GPU-time quota (one person may use at most 3600 GPU-seconds in 24 hours; "
                                 "received: 72") and spent(rid).endswith("limit set by LAYERLAB_QUOTA_GPU_SECONDS)")
    store.set_environment(rid, device="cpu")
    assert spent(rid) is None  # the same usage, but this run is on the CPU now
    assert quotas.gpu_spent(store, ME, None) is None
    monkeypatch.setenv("LAYERLAB_TEACHERS", ME)  # a teacher has no limit, whatever the job's environment says
    assert quotas.gpu_limit(store, ME) is None


def test_a_job_that_rewrote_its_job_file_for_a_gpu_is_held_to_the_gpu_quota_on_resume(ws, monkeypatch):
    """A job writes its own run folder, job.json included. One on the CPU that rewrote the device its run was first
    started with (job.json's origin, which the resumed job trains with) to ``cuda`` was resumed onto a GPU past its
    owner's GPU-time quota: the quota was checked for the run's recorded CPU setting. It is checked for the device
    the resumed job will take; a job file grown past any report's size is not read into the server either."""
    import json

    from builder.errors import RunStoreError
    from builder.runs.run_time import SPEC_DIGEST

    _no_launch(monkeypatch)
    store = RunStore(ws, actor=SYSTEM)
    used = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    store.update_status(used, "running")
    store.set_environment(used, device="cuda:0")
    past = datetime.now(timezone.utc) - timedelta(hours=2)
    store.update_run(used, started_at=past.isoformat(timespec="seconds"), queued_at=past.timestamp() - 1)
    store.finish(used, "finished")
    monkeypatch.setenv("LAYERLAB_QUOTA_GPU_SECONDS", "3600")
    rid = submit(store, _spec(ME, device="cpu"))  # a CPU job uses no GPU time: admitted
    store.finish(rid, "stopped")
    job = store.folder(rid).job_spec
    first = json.loads(job.read_text())
    jobs.submit(store, JobSpec(project={}, dataset="", owner=ME, resume_run=rid))  # untouched: admitted again
    store.finish(rid, "stopped")
    job.write_text(json.dumps({**first, "config": {**first["config"], "device": "cuda"}}))  # what the job wrote
    with pytest.raises(RunStoreError, match="was changed after LayerLab wrote it"):  # its digest: not resumed
        jobs.submit(store, JobSpec(project={}, dataset="", owner=ME, resume_run=rid))
    store.set_environment(rid, **{SPEC_DIGEST: None})  # a run recorded before the digest: the quota still holds
    with pytest.raises(QuotaError, match="GPU-seconds"):
        jobs.submit(store, JobSpec(project={}, dataset="", owner=ME, resume_run=rid))
    job.write_text(json.dumps(first) + " " * (2**20 * 17))  # past any report's size: not read, nothing carried
    jobs.submit(store, JobSpec(project={}, dataset="", owner=ME, resume_run=rid))
    assert "origin" not in json.loads(job.read_text())


def test_a_refusal_names_where_its_limit_was_set(ws, monkeypatch):
    import json

    from builder.runs import classes

    teacher = "user:t@school.org"
    (ws / "server.json").write_text(json.dumps({"teachers": [teacher], "quotas": {"storage_mb": 100}}))
    monkeypatch.setenv("LAYERLAB_QUOTA_QUEUED", "3")
    c = classes.create_class(ws, teacher, "ML 101", load_template("mlp"), quotas={"gpu_seconds": 60})
    classes.join_class(ws, c["code"], ME)
    got, where = quotas.limit_sources(ws, ME)
    assert got == {"running": None, "queued": 3, "storage_mb": 100, "gpu_seconds": 60}
    assert where == {"queued": "LAYERLAB_QUOTA_QUEUED", "storage_mb": "the server config",
                     "gpu_seconds": "the class ML 101"}
    used = {"running": 0, "queued": 0, "storage_mb": 0.0, "gpu_seconds": 61.0}
    with pytest.raises(QuotaError, match=r"received: 61 GPU-seconds .* \(limit set by the class ML 101\)$"):
        quotas.check_usage(used, got, where=where)
    quotas.check_usage(used, got, gpu=False, where=where)  # a CPU job


def test_each_admitted_job_records_the_storage_its_owner_has_left_shared_among_a_group(ws, monkeypatch):
    """A job's broker holds it to the storage its owner had left when it was admitted (builder.process.broker.Room,
    recorded by the system); a group admitted together (a cross-validation's folds) shares it, so the folds
    together stay within the quota, not each of them."""
    from builder.jobs.specs import crossval_job_specs

    _no_launch(monkeypatch)
    owner = "anon:" + "c" * 32
    store = RunStore(ws, actor=SYSTEM)
    assert store.get(submit(store, _spec(owner)))["environment"]["storage_room"] is None  # no storage limit
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "10")
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "8")
    alone = store.get(submit(store, _spec(owner)))["environment"]["storage_room"]
    assert alone["cap_mb"] == 10 and 9.9 * 2**20 < alone["left"] <= 10 * 2**20
    _, specs = crossval_job_specs(load_template("mlp"), "moons", {"epochs": 1}, folds=4, owner=owner)
    rooms = [store.get(r)["environment"]["storage_room"]["left"] for r in jobs.submit_group(store, specs)]
    assert all(alone["left"] // 4 - 2**16 < left <= alone["left"] // 4 for left in rooms)
