"""AppTests of housekeeping: the Server page (everyone's own data; an admin's every job and every owner), and the
Classes page's class disk usage, class deletion with its runs and the teacher's read-only view of a run."""

from __future__ import annotations

import re
from collections.abc import Iterator

import builder
from builder.data.access import SYSTEM
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
    admin.button(key=f"ll_admin_del_{owners.pseudonym(workspace, OTHER)}").click().run()
    assert_no_exception(admin)
    assert store.list_runs(owner=OTHER) == [] and owners.load_autosave(workspace, OTHER) is None


COOKIES = ("9f3ab7e1c4d28f60a5be17c93d4f8e2b", "7e2d4c9b1a8f3e6d5c0b9a8e7f6d5c4b", "e5c3a1f9d7b5e3c1a9f7d5b3e1c9a7f5")
_GENERATED = re.compile(r"\$\$ID-[0-9a-f]{32}-|/media/[0-9a-f]+")  # Streamlit's own element ids and media urls


def _shown(node) -> Iterator[str]:
    """Everything a page sends the browser: each element's and block's key and protobuf (text, help, ids)."""
    if getattr(node, "key", None):
        yield str(node.key)
    if getattr(node, "proto", None) is not None:
        yield _GENERATED.sub("", str(node.proto))
    children = getattr(node, "children", None) or {}
    for child in children.values() if isinstance(children, dict) else children:
        yield from _shown(child)


def test_server_page_names_owners_by_pseudonym_and_nothing_of_a_cookie(workspace, monkeypatch):
    """An admin (itself anonymous, listed by the pseudonym the page showed it) sees two anonymous owners with runs
    and folders: no element key or text holds six digits in a row of anyone's cookie."""
    a, b, admin = (owners.anonymous_owner(c) for c in COOKIES)
    store = RunStore(workspace, actor=SYSTEM)
    for who in (a, b):
        _run(store, who, "running", device="cpu")
        _run(store, who)
        owners.save_project(workspace, who, builder.load_template("mlp"))
        (owners.upload_dir(workspace, who) / "t.csv").write_text("x,y\n1,0\n")
    me = open_app("app_pages/server.py", owner=admin)
    shown_id = owners.pseudonym(workspace, admin)
    assert any(f"`{shown_id}`" in m.value for m in me.markdown)  # the id to give whoever runs the server
    assert not [x for x in me.button if x.key and x.key.startswith("ll_admin_")]
    person = open_app("app_pages/server.py", owner=a)
    person.text_input(key="ll_display_name").input("Ann <b>").run()  # refused: named in an error, nothing kept
    assert any("a display name is" in e.value for e in person.error) and owners.display_name(workspace, a) is None
    person.text_input(key="ll_display_name").input("Ann B.").run()
    assert_no_exception(person)
    assert not person.error and owners.display_name(workspace, a) == "Ann B."
    monkeypatch.setenv("LAYERLAB_ADMINS", shown_id)
    monkeypatch.setenv("LAYERLAB_TEACHERS", owners.pseudonym(workspace, b))
    at = open_app("app_pages/server.py", owner=admin)
    assert_no_exception(at)
    page = "\n".join(_shown(at._tree))
    for who in (a, b):
        label = owners.pseudonym(workspace, who)
        assert f"ll_admin_owner_{label}" in page and f"ll_admin_del_{label}" in page
    assert "teacher" in page and "ll_admin_stop_" in page
    tag = owners.pseudonym(workspace, a)
    assert any("Ann B" in m.value and tag in m.value for m in at.markdown)  # the chosen name, with the id
    for cookie in COOKIES:
        leaked = {cookie[i:i + 6] for i in range(len(cookie) - 5)} & {page[i:i + 6] for i in range(len(page) - 5)}
        assert not leaked, leaked
    at.button(key=f"ll_admin_del_{owners.pseudonym(workspace, a)}").click().run()
    assert_no_exception(at)
    assert [r["status"] for r in store.list_runs(owner=a, limit=10)] == ["running"]  # the live job is kept
    assert owners.load_autosave(workspace, a) is None and owners.load_autosave(workspace, b) is not None


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
    assert any("Accuracy 81.2%" in m.value and "own test split" in m.value for m in teacher.markdown)  # named
    view_keys = {b.key for b in teacher.button if b.key and b.key.startswith("ll_class_view_")}
    assert view_keys >= {"ll_class_view_close"} and "ll_class_view_stop" not in view_keys  # finished: no Stop
    assert len(teacher.get("plotly_chart")) == 2
    teacher.button(key="ll_class_delete").click().run()
    assert_no_exception(teacher)
    assert classes.list_classes(workspace, actor=SYSTEM) == [] and store.list_runs(owner=ME) == []


def test_an_admin_sets_the_run_database_for_the_next_start(workspace, monkeypatch, tmp_path):
    from builder.runs import db

    monkeypatch.setenv("LAYERLAB_ADMINS", "it@school.org")
    monkeypatch.delenv(db.ENV_DB_URL, raising=False)
    monkeypatch.setattr(db, "_PINNED", {})
    RunStore(workspace, actor=SYSTEM)
    me = open_app("app_pages/server.py", owner=ME)
    assert not [t for t in me.text_input if t.key == "ll_database_url"]  # an admin's setting only
    admin = open_app("app_pages/server.py", owner=ADMIN)
    assert any("In use: `sqlite:///" in m.value for m in admin.markdown)
    admin.text_input(key="ll_database_url").set_value("https://mlflow.school.org")
    admin.button(key="FormSubmitter:ll_database_form-Save database URL").click().run()
    assert any("never an MLflow tracking store" in e.value for e in admin.error)
    shared = tmp_path / "shared" / "layerlab.db"
    shared.parent.mkdir()
    admin.text_input(key="ll_database_url").set_value(f"sqlite:///{shared}")
    admin.button(key="FormSubmitter:ll_database_form-Save database URL").click().run()
    assert_no_exception(admin)
    assert owners.server_config(workspace)[db.CONFIG_KEY] == f"sqlite:///{shared}"
    assert any("takes effect when the server restarts" in i.value for i in admin.info)
    assert any(f"In use: `sqlite:///{workspace.absolute()}" in m.value for m in admin.markdown)  # until then


def test_an_admin_sees_every_study_by_its_owners_label_and_nobody_else_does(workspace, monkeypatch):
    from builder.search import storage

    monkeypatch.setenv("LAYERLAB_ADMINS", "it@school.org")
    url = storage.default_storage(workspace)
    for owner in (ME, OTHER):
        storage.claim_study(url, "lr-sweep", owner=owner, workspace=workspace)
    owners.set_display_name(workspace, OTHER, "Bea")
    admin = open_app("app_pages/server.py", owner=ADMIN)
    assert_no_exception(admin)
    assert "Studies" in [h.value for h in admin.subheader]
    (table,) = [d.value for d in admin.dataframe if list(d.value.columns)[:2] == ["Study", "Owner"]]
    assert sorted(zip(table["Study"], table["Owner"], strict=True)) == sorted(
        [("lr-sweep", owners.pseudonym(workspace, ME)), ("lr-sweep", f"Bea ({owners.pseudonym(workspace, OTHER)})")])
    assert list(table["Trials"]) == [0, 0]
    me = open_app("app_pages/server.py", owner=ME)
    assert_no_exception(me)
    assert not [d for d in me.dataframe if "Study" in d.value.columns]
    assert "Studies" not in [h.value for h in me.subheader]


def test_the_server_page_shows_a_persons_quotas_and_what_is_in_use(workspace, monkeypatch):
    """The page says it shows one's quota, and showed none: a student found out their storage limit only when a
    job was stopped for it. Each limit that is set shows with what is in use and who set it; none set, nothing."""
    store = RunStore(workspace, actor=SYSTEM)
    rid = _run(store, ME)
    store.log_metrics(rid, [{"type": "step", "step": i, "note": "x" * 2**17} for i in range(8)])  # 1 MiB of curve
    plain = open_app("app_pages/server.py", owner=ME)
    assert not plain.get("progress") and not any("GPU time" in c.value for c in plain.caption)
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "4")
    monkeypatch.setenv("LAYERLAB_QUOTA_RUNNING", "2")
    monkeypatch.setenv("LAYERLAB_QUOTA_GPU_SECONDS", "3600")
    me = open_app("app_pages/server.py", owner=ME)
    assert_no_exception(me)
    (bar,) = me.get("progress")
    assert bar.proto.text.startswith("Storage: 1.0 of 4 MiB in use (set by LAYERLAB_QUOTA_STORAGE_MB)")
    assert 0.25 <= bar.proto.value / 100 < 0.3
    text = " ".join(c.value for c in me.caption)
    assert "Jobs: at most 2 running (set by LAYERLAB_QUOTA_RUNNING); now 0 running, 0 waiting" in text
    assert "GPU time: 0 of 3600 GPU-seconds used in the last 24 hours" in text
