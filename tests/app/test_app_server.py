"""AppTests of housekeeping: the Server page (everyone's own data; an admin's every job and every owner), and the
Classes page's class disk usage, class deletion with its runs and the teacher's read-only view of a run."""

from __future__ import annotations

import builder
from builder.access import SYSTEM
from builder.runs import classes, owners
from builder.runs.store import RunStore
from tests.helpers import ME, OTHER, assert_no_exception, open_app

TEACHER, ADMIN = "user:t@school.org", "user:it@school.org"


def _run(store: RunStore, owner: str, status: str = "finished", class_id: str | None = None, **env) -> str:
    rid = store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 2}, owner=owner, name="net",
                           class_id=class_id)
    if status != "queued":
        store.update_status(rid, status)
    if env:
        store.set_environment(rid, **env)
    return rid


def test_server_page_own_data_and_admin_view(workspace, monkeypatch):
    monkeypatch.setenv("LAYERLAB_ADMINS", "it@school.org")
    store = RunStore(workspace, actor=SYSTEM)
    mine = _run(store, ME)
    live = _run(store, OTHER, "running", device="cuda:0")
    owners.save_project(workspace, OTHER, builder.load_template("mlp"))
    me = open_app("app_pages/server.py", owner=ME)
    assert any(m.label == "Runs" and m.value == "1" for m in me.metric)
    assert not [b for b in me.button if b.key and b.key.startswith("ll_admin_")]  # not an admin: no jobs of others
    me.button(key="ll_server_delete_mine").click().run()
    assert_no_exception(me)
    assert store.list_runs(owner=ME) == [] and mine not in {r["id"] for r in store.list_runs(limit=50)}
    admin = open_app("app_pages/server.py", owner=ADMIN)
    assert any("cuda:0" in m.value for m in admin.markdown)
    assert any(m.label == "Workspace" for m in admin.metric)
    admin.button(key=f"ll_admin_stop_{live}").click().run()
    assert_no_exception(admin)
    assert store.take_control(live) == "stop"
    store.update_status(live, "stopped")
    admin.button(key=f"ll_admin_del_{owners.safe_id(OTHER)}").click().run()
    assert_no_exception(admin)
    assert store.list_runs(owner=OTHER) == [] and owners.load_autosave(workspace, OTHER) is None


def test_teacher_views_a_run_read_only_and_deletes_the_class(workspace, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TEACHERS", TEACHER)
    store = RunStore(workspace, actor=SYSTEM)
    c = classes.create_class(workspace, TEACHER, "ML", builder.load_template("mlp"))
    classes.join_class(workspace, c["code"], ME)
    done = _run(store, ME, class_id=c["id"])
    store.log_metrics(done, [{"type": "epoch", "epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e,
                              "train_metric": 0.5 + e / 10, "val_metric": 0.4 + e / 10, "metric_name": "accuracy"}
                             for e in (1, 2)])
    store.finish(done, "finished", final={"val_loss": 0.6}, test={"accuracy": 0.8125})
    teacher = open_app("app_pages/classes.py", owner=TEACHER)
    assert any(c.value.startswith("Disk: ") for c in teacher.caption)
    teacher.button(key=f"ll_class_view_{done}").click().run()
    assert_no_exception(teacher)
    assert any("read-only" in m.value for m in teacher.markdown)
    assert any("0.812" in m.value and "Test split" in m.value for m in teacher.markdown)
    view_keys = {b.key for b in teacher.button if b.key and b.key.startswith("ll_class_view_")}
    assert view_keys >= {"ll_class_view_close"} and "ll_class_view_stop" not in view_keys  # finished: no Stop
    assert len(teacher.get("plotly_chart")) == 2
    teacher.button(key="ll_class_delete").click().run()
    assert_no_exception(teacher)
    assert classes.list_classes(workspace) == [] and store.list_runs(owner=ME) == []
