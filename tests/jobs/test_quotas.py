"""Quotas: limits from config file < environment < class, per-owner usage, and the refusal in jobs.submit."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import quotas
from builder.jobs.queue import JobSpec, submit
from builder.jobs.quotas import QuotaError, check_usage
from builder.runs import classes
from builder.runs.store import RunStore
from tests.fuzz_budget import budget

ME, OTHER, TEACHER = "anon:" + "a" * 32, "anon:" + "b" * 32, "user:t@school.org"


@pytest.fixture
def ws(tmp_path, monkeypatch):
    for name in (*quotas.ENV.values(), "LAYERLAB_TEACHERS", "LAYERLAB_SERVER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _runs(store: RunStore, owner: str, statuses: list[str]) -> list[str]:
    ids = []
    for status in statuses:
        rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=owner)
        if status != "queued":
            store.update_status(rid, status)
        ids.append(rid)
    return ids


def test_limits_layer_config_env_class(ws, monkeypatch):
    assert quotas.limits(ws, ME) == {"running": None, "queued": None, "storage_mb": None, "gpu_seconds": None}
    (ws / "server.json").write_text(json.dumps({"teachers": [TEACHER[5:]],
                                                "quotas": {"running": 2, "queued": 3, "storage_mb": 100}}))
    assert quotas.limits(ws, ME) == {"running": 2, "queued": 3, "storage_mb": 100, "gpu_seconds": None}
    monkeypatch.setenv("LAYERLAB_QUOTA_QUEUED", "1")
    assert quotas.limits(ws, ME)["queued"] == 1
    c = classes.create_class(ws, TEACHER, "ML", load_template("mlp"), quotas={"running": 1, "storage_mb": 0})
    classes.join_class(ws, c["code"], ME)
    # a class lowers the server's limits (running 2 -> 1) and never lifts them: its 0 ("no limit") keeps 100 MB
    assert quotas.limits(ws, ME) == {"running": 1, "queued": 1, "storage_mb": 100, "gpu_seconds": None}
    assert quotas.limit_sources(ws, ME)[1]["running"] == "the class ML"
    classes.update_class(ws, c["id"], TEACHER, quotas={"running": 5, "queued": 0, "storage_mb": 1e9, "gpu_seconds": 60})
    assert quotas.limits(ws, ME) == {"running": 2, "queued": 1, "storage_mb": 100, "gpu_seconds": 60}
    classes.update_class(ws, c["id"], TEACHER, quotas={"running": 1, "storage_mb": 0})
    assert quotas.limits(ws, OTHER)["running"] == 2
    # joining a second class never lifts the first's limits (only the newest class counted: running 1 -> 2,
    # gpu_seconds 60 -> none); each limit is the lowest over every class
    classes.update_class(ws, c["id"], TEACHER, quotas={"running": 1, "gpu_seconds": 60})
    d = classes.create_class(ws, TEACHER, "Stats", load_template("mlp"), quotas={"queued": 50, "running": 3})
    classes.join_class(ws, d["code"], ME)
    assert quotas.limits(ws, ME) == {"running": 1, "queued": 1, "storage_mb": 100, "gpu_seconds": 60}
    assert quotas.limit_sources(ws, ME)[1]["gpu_seconds"] == "the class ML"
    assert quotas.limits(ws, TEACHER) == {"running": None, "queued": None, "storage_mb": None, "gpu_seconds": None}
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "many")
    with pytest.raises(QuotaError, match="received: 'many' in the environment. Fix"):
        quotas.limits(ws, OTHER)


@settings(max_examples=budget(60), deadline=None)
@given(running=st.integers(0, 4), queued=st.integers(0, 4), run_cap=st.none() | st.integers(1, 3),
       queue_cap=st.none() | st.integers(1, 3))
def test_live_jobs_never_exceed_running_plus_queued(running, queued, run_cap, queue_cap):
    used = {"running": running, "queued": queued, "storage_mb": 0.0}
    try:
        check_usage(used, {"running": run_cap, "queued": queue_cap})
    except QuotaError as e:
        assert "received:" in str(e) and "Fix:" in str(e)
        return
    if queue_cap is not None:
        assert queued < queue_cap
    if run_cap is not None:
        assert running + queued < run_cap + (queue_cap or 0)


def test_submit_refuses_over_quota_and_records_nothing(ws, monkeypatch):
    store = RunStore(ws, actor=SYSTEM)
    _runs(store, ME, ["running", "queued"])
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "1")
    monkeypatch.setenv("LAYERLAB_QUOTA_QUEUED", "1")
    before = len(store.list_runs(limit=1000))
    spec = JobSpec(project=load_template("mlp").model_dump(mode="json"), dataset="moons", owner=ME)
    with pytest.raises(QuotaError, match="at most 1 job\\(s\\) waiting; received: 1 queued. Fix:"):
        submit(store, spec)
    assert len(store.list_runs(limit=1000)) == before
    # others are unaffected by ME's usage
    assert quotas.usage(store, OTHER) == {"running": 0, "queued": 0, "storage_mb": 0.0, "gpu_seconds": 0.0}
    quotas.check_quota(store, OTHER)


def test_storage_quota_counts_the_owners_run_folders(ws, monkeypatch):
    store = RunStore(ws, actor=SYSTEM)
    (rid,) = _runs(store, ME, ["finished"])
    (store.run_dir(rid) / "blob.bin").write_bytes(b"\0" * (2 * 2**20))
    used = quotas.usage(store, ME)
    assert used["storage_mb"] >= 2.0 and used["running"] == 0
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "1")
    with pytest.raises(QuotaError, match="at most 1 MiB; received: 2.0 MiB in use. Fix: delete runs"):
        quotas.check_quota(store, ME)
    quotas.check_quota(store, OTHER)


def test_storage_quota_counts_a_runs_records_in_the_run_database(ws, monkeypatch):
    """A job's curve and records live in the run database, not its folder: a person whose jobs logged gigabytes
    there stayed under ``storage_mb`` for ever. Their bytes count now, for their owner only."""
    store = RunStore(ws, actor=SYSTEM)
    (rid,) = _runs(store, ME, ["finished"])
    before = quotas.usage(store, ME)["storage_mb"]
    store.log_metrics(rid, [{"type": "step", "step": i, "note": "x" * 2**18} for i in range(8)])
    assert quotas.usage(store, ME)["storage_mb"] - before >= 2.0
    assert quotas.usage(store, OTHER)["storage_mb"] == 0.0
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "1")
    with pytest.raises(QuotaError, match="at most 1 MiB; received: 2.0 MiB in use. Fix: delete runs"):
        quotas.check_quota(store, ME)
    store.delete_run(rid)  # deleting the run frees them
    quotas.check_quota(store, ME)


def test_storage_quota_counts_uploads_and_studies_and_refuses_an_upload_past_it(ws, monkeypatch):
    """Uploads and study files were outside the quota: a visitor under ``storage_mb`` could fill the disk with
    uploads (each within the uploader's size limit) or with a study's private folder."""
    from builder.data.uploads import UploadFolder
    from builder.runs.owners import upload_dir
    from builder.search.storage import study_files

    store = RunStore(ws, actor=SYSTEM)
    mine = UploadFolder(upload_dir(ws, ME))
    kept = mine.save("big.csv", b"\0" * 2**20)
    tmp = study_files(ws, ME, "sweep")["tmp"]
    tmp.mkdir(parents=True)
    (tmp / "cache.bin").write_bytes(b"\0" * 2**20)
    assert quotas.usage(store, ME)["storage_mb"] >= 2.0
    assert quotas.usage(store, OTHER)["storage_mb"] == 0.0
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "2.5")
    admit = lambda n: quotas.check_upload(store, ME, n)  # noqa: E731  (the Data page's door)
    with pytest.raises(QuotaError, match=r"runs, uploads and studies may take at most 2.5 MiB; received: 2.0 MiB in "
                                         r"use and 1.0 MiB more uploaded\. Fix: delete runs .* \(limit set by "
                                         r"LAYERLAB_QUOTA_STORAGE_MB\)"):
        mine.save("more.csv", b"\1" * 2**20, admit=admit)
    assert sorted(p.name for p in mine.root.iterdir()) == [kept.split(":", 1)[1]]  # nothing written
    assert mine.save("again.csv", b"\0" * 2**20, admit=admit) == kept  # a file already kept costs nothing
    mine.save("small.csv", b"a,b\n1,2\n", admit=admit)  # within the limit
    UploadFolder(upload_dir(ws, OTHER)).save("x.csv", b"\1" * 2**20, admit=lambda n: quotas.check_upload(store, OTHER, n))
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "2")
    with pytest.raises(QuotaError, match="at most 2 MiB; received: 2.0 MiB in use"):  # a job is refused the same way
        quotas.check_quota(store, ME)
