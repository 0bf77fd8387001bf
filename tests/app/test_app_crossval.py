"""AppTest: the Train page's Cross-validate mode (K folds as grouped jobs, mean ± std of the test metrics).

The folds are jobs (their own sandboxed processes): the page submits them and reads the store, so a fold that
crashes is a failed run with one line and the page's process goes on serving.
"""

from __future__ import annotations

import os

from builder.data.access import SYSTEM
from builder.jobs.job_sandbox import TEST_CRASH_ENV
from builder.jobs.queue import wait
from builder.runs.store import RunStore
from tests.helpers import assert_no_exception, open_app

TIMEOUT = 240


def _submit(monkeypatch, folds: int, epochs: int, *, early_stopping: bool = True):
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    at = open_app("app_pages/train.py", template="mlp")  # MLP on moons (small: offered)
    if not early_stopping:  # the folds must still be training when the test acts on them
        proj = at.session_state["ll_project"]
        at.session_state["ll_project"] = proj.model_copy(
            update={"training": {**(proj.training or {}), "early_stopping": None}})
    at.session_state["ll_train_mode"] = "Cross-validate"
    at.run()
    assert_no_exception(at)
    at.number_input(key="ll_cv_folds").set_value(folds)
    at.number_input(key="ll_cv_epochs").set_value(epochs)
    next(b for b in at.button if b.label == "Run cross-validation").click().run()
    assert_no_exception(at)
    return at


def test_cross_validate_submits_k_fold_jobs_and_shows_mean_and_std(job_workspace, monkeypatch):
    at = _submit(monkeypatch, 3, 2)
    cv = at.session_state["ll_cv_jobs"]
    assert cv["folds"] == 3 and len(cv["run_ids"]) == 3
    store = RunStore(job_workspace, actor=SYSTEM)
    runs = [store.get(rid) for rid in cv["run_ids"]]
    # each fold is a job of this owner in a process of its own, not trained by the page's process
    assert all(r["owner"] == at.session_state["ll_owner"] and r["pid"] != os.getpid() for r in runs)
    assert [r["dataset_options"]["fold"] for r in runs] == [0, 1, 2]
    assert all(store.folder(rid).job_spec.is_file() for rid in cv["run_ids"])
    assert wait(store, cv["run_ids"], TIMEOUT) == {rid: "finished" for rid in cv["run_ids"]}
    at.run()
    assert_no_exception(at)
    table = at.dataframe[0].value
    assert list(table["fold"]) == [1, 2, 3] and "accuracy" in table.columns and set(table["status"]) == {"finished"}
    assert "accuracy" in {m.label for m in at.metric}
    tagged = store.list_runs(tags={"crossval": cv["group"]})
    assert sorted(r["tags"]["fold"] for r in tagged) == [0, 1, 2]


def test_a_crashing_fold_is_a_failed_run_with_one_line_and_the_page_keeps_serving(job_workspace, monkeypatch):
    monkeypatch.setenv(TEST_CRASH_ENV, "fold 2/")  # test hook: fold 2's job process dies by SIGSEGV (read there)
    at = _submit(monkeypatch, 3, 1)
    cv = at.session_state["ll_cv_jobs"]
    store = RunStore(job_workspace, actor=SYSTEM)
    statuses = wait(store, cv["run_ids"], TIMEOUT)
    assert list(statuses.values()) == ["finished", "failed", "finished"], statuses
    crashed = store.get(cv["run_ids"][1])
    assert "SIGSEGV" in crashed["message"] and "\n" not in crashed["message"]
    at.run()  # this process (the server's stand-in) is alive and renders the group
    assert_no_exception(at)
    table = at.dataframe[0].value
    assert list(table["status"]) == ["finished", "failed", "finished"]
    assert any("Fold 2" in e.value and "SIGSEGV" in e.value for e in at.error)
    assert "accuracy" in {m.label for m in at.metric}  # the summary of the two folds that finished


def test_a_group_over_the_owners_queue_quota_records_nothing(job_workspace, monkeypatch):
    monkeypatch.setenv("LAYERLAB_QUOTA_QUEUED", "2")
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "1")
    at = _submit(monkeypatch, 4, 1)
    assert "ll_cv_jobs" not in at.session_state
    assert any("waiting" in e.value and "4 more asked for" in e.value for e in at.error), [e.value for e in at.error]
    assert RunStore(job_workspace, actor=SYSTEM).list_runs() == []


def test_stop_all_folds_stops_every_fold_job_and_leaves_them_resumable(job_workspace, monkeypatch):
    from builder.training.run_status import can_resume
    from tests.helpers import wait_for_status

    at = _submit(monkeypatch, 2, 1000, early_stopping=False)
    cv = at.session_state["ll_cv_jobs"]
    store = RunStore(job_workspace, actor=SYSTEM)
    for rid in cv["run_ids"]:
        wait_for_status(store, rid, {"running"}, TIMEOUT)  # two jobs may run at once (LAYERLAB_MAX_JOBS=2)
    at.run()
    at.button(key="ll_cv_stop").click().run()
    assert_no_exception(at)
    assert wait(store, cv["run_ids"], TIMEOUT) == {rid: "stopped" for rid in cv["run_ids"]}
    assert all(can_resume(store.get(rid), has_checkpoint=store.folder(rid).has_checkpoint) for rid in cv["run_ids"])
    assert all(store.get(rid)["config"]["early_stopping"] is None for rid in cv["run_ids"])
