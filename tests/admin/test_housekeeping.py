"""Housekeeping: disk usage per owner, class and workspace; every job on the server; deleting data with the
rights of builder.runs.owners (an owner its own, a teacher a class's runs, an admin anyone's), never outside the
workspace and never a live job."""

from __future__ import annotations

import pytest

from builder.admin import housekeeping
from builder.admin.housekeeping import HousekeepingError
from builder.data.access import SYSTEM
from builder.errors import AccessDenied, LayerLabError
from builder.graph.templates import load_template
from builder.runs import classes, owners
from builder.runs.classes import ClassError
from builder.runs.store import RunStore

ME, OTHER, THIRD = "anon:" + "a" * 32, "anon:" + "b" * 32, "anon:" + "c" * 32
TEACHER, ADMIN = "user:t@school.org", "user:it@school.org"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("LAYERLAB_SERVER_CONFIG", raising=False)
    monkeypatch.setenv("LAYERLAB_TEACHERS", TEACHER)
    monkeypatch.setenv("LAYERLAB_ADMINS", "it@school.org")
    return RunStore(tmp_path / "ws", actor=SYSTEM)


def _run(store: RunStore, owner: str, status: str = "finished", size: int = 1000, class_id: str | None = None,
         **env) -> str:
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=owner, class_id=class_id)
    (store.run_dir(rid) / "blob.bin").write_bytes(b"\0" * size)
    if status != "queued":
        store.update_status(rid, status)
    if env:
        store.set_environment(rid, **env)
    return rid


def _files(store: RunStore, owner: str) -> None:
    owners.save_project(store.workspace, owner, load_template("mlp"))
    (owners.upload_dir(store.workspace, owner) / "x.csv").write_text("a,b\n1,2\n")


def test_owner_deletes_own_data_only(store):
    mine = [_run(store, ME), _run(store, ME, "failed")]
    live = _run(store, ME, "running")
    theirs = _run(store, OTHER)
    _files(store, ME)
    _files(store, OTHER)
    label = {who: owners.pseudonym(store.workspace, who) for who in (ME, OTHER)}  # messages name no owner id
    with pytest.raises(HousekeepingError, match=f"received: {label[ME]}'s data asked by {label[OTHER]}. Fix"):
        housekeeping.delete_owner_data(store, OTHER, ME)
    with pytest.raises(HousekeepingError, match=f"received: no run .{theirs}. of yours"):
        housekeeping.delete_runs(store, ME, [mine[0], theirs])
    with pytest.raises(AccessDenied, match=f"no run .{theirs}. of yours"):
        housekeeping.stop_job(store, theirs, ME)
    assert len(store.list_runs(owner=ME)) == 3  # checked before anything was deleted
    assert housekeeping.delete_runs(store, ME, [mine[0]]) == {"runs": 1, "kept": []}
    got = housekeeping.delete_owner_data(store, ME, ME)
    assert got == {"runs": 1, "kept": [live], "projects": 1, "studies": 0}
    assert [r["id"] for r in store.list_runs(owner=ME)] == [live]  # a live job is left until stopped
    assert owners.load_autosave(store.workspace, ME) is None
    assert [r["id"] for r in store.list_runs(owner=OTHER)] == [theirs]
    assert owners.load_autosave(store.workspace, OTHER) is not None


def test_admin_deletes_anyones_data_and_stops_any_job(store):
    rid = _run(store, ME)
    live = _run(store, OTHER, "running", device="cuda:0")
    _files(store, ME)
    assert owners.is_admin(store.workspace, ADMIN) and not owners.is_admin(store.workspace, TEACHER)
    jobs = housekeeping.server_jobs(store)
    assert [(j["id"], j["owner"], j["status"], j["device"]) for j in jobs] == [(live, OTHER, "running", "cuda:0")]
    assert jobs[0]["age_s"] is not None and jobs[0]["age_s"] >= 0
    with pytest.raises(AccessDenied, match=f"no run '{live}' of yours"):  # as for an unknown run
        housekeeping.stop_job(store, live, ME)
    housekeeping.stop_job(store, live, ADMIN)
    assert store.take_control(live) == "stop"
    assert housekeeping.delete_owner_data(store, ADMIN, ME)["runs"] == 1
    with pytest.raises(Exception, match="no run"):
        store.get(rid)
    rows = housekeeping.admin_owners(store)
    assert [r["owner"] for r in rows] == [OTHER] and rows[0]["live"] == 1


def test_nothing_outside_the_workspace_is_deleted(store, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    root = store.workspace / "owners"
    root.mkdir(parents=True, exist_ok=True)
    (root / owners.safe_id(store.workspace, ME)).symlink_to(outside, target_is_directory=True)
    with pytest.raises(HousekeepingError, match="a link or a path outside it"):
        housekeeping.delete_owner_data(store, ME, ME)
    assert (outside / "keep.txt").read_text() == "mine"
    assert housekeeping.owner_usage(store, ME)["projects"] == 0  # a link is not counted either


def test_usage_per_owner_class_and_workspace(store):
    c = classes.create_class(store.workspace, TEACHER, "ML", load_template("mlp"))
    for s in (ME, OTHER):
        classes.join_class(store.workspace, c["code"], s)
    _run(store, ME, size=3000)
    _run(store, OTHER, size=5000)
    _files(store, ME)
    mine = housekeeping.owner_usage(store, ME)
    assert mine["runs"] >= 3000 and mine["projects"] > 0 and mine["total"] == mine["runs"] + mine["projects"]
    cu = housekeeping.class_usage(store, classes.get_class(store.workspace, c["id"], SYSTEM))
    assert set(cu["members"]) == {ME, OTHER} and cu["total"] == mine["total"] + cu["members"][OTHER]["total"]
    wu = housekeeping.workspace_usage(store)
    assert set(wu["owners"]) == {ME, OTHER, TEACHER} and wu["database"] > 0
    # an owner's total counts its runs' records in the run database (as its storage quota does): the database's
    # files hold them
    assert mine["records"] == store.record_bytes(ME) > 0 and mine["runs"] >= 3000 + mine["records"]
    parts = (sum(u["total"] - u["records"] for u in wu["owners"].values()) + wu["cache"] + wu["studies"]
             + wu["database"] + wu["other"])
    assert parts == wu["total"]


def test_teacher_deletes_a_class_with_its_members_class_runs(store):
    before = _run(store, ME)  # made before joining: not a class run
    store.update_run(before, created_at="2020-01-01T00:00:00+00:00")
    c = classes.create_class(store.workspace, TEACHER, "ML", load_template("mlp"))
    classes.join_class(store.workspace, c["code"], ME)
    in_class = _run(store, ME, class_id=c["id"])
    for_another = _run(store, ME)  # made after joining, but not for this class: the student's own (issue 28)
    outsider = _run(store, THIRD)  # not a member
    with pytest.raises(ClassError, match="only the class's teacher deletes it"):
        housekeeping.delete_class_data(store, c["id"], ME)
    live = _run(store, ME, "running", class_id=c["id"])
    got = housekeeping.delete_class_data(store, c["id"], TEACHER)
    assert got == {"runs": 1, "kept": [live], "class_deleted": False}  # kept until the live job is stopped
    store.update_status(live, "stopped")
    assert housekeeping.delete_class_data(store, c["id"], TEACHER)["class_deleted"]
    assert classes.list_classes(store.workspace, actor=SYSTEM) == []
    left = {r["id"] for r in store.list_runs(limit=100)}
    assert left == {before, for_another, outsider} and in_class not in left


def test_admins_come_from_env_and_config(store):
    (store.workspace / "server.json").write_text('{"admins": "it@school.org"}')
    with pytest.raises(LayerLabError, match="admins is a list of identities; received: str. Fix"):
        owners.admins(store.workspace)
    (store.workspace / "server.json").write_text('{"admins": ["boss@school.org"]}')
    assert owners.admins(store.workspace) == {"local", ADMIN, "user:boss@school.org"}


def test_an_owners_studies_are_deleted_with_its_data(store):
    import optuna

    from builder.search import storage

    url = storage.default_storage(store.workspace)
    for name, owner in (("mine", ME), ("theirs", OTHER)):
        study = optuna.create_study(study_name=name, storage=storage.open_storage(url))
        study.set_user_attr(storage.SETTINGS_ATTR, {"owner": owner})
    (store.workspace / "studies").mkdir(exist_ok=True)
    (store.workspace / "studies" / "mine.log").write_text("log")
    assert housekeeping.delete_owner_data(store, ME, ME)["studies"] == 1
    assert [s["name"] for s in storage.list_studies(url)] == ["theirs"]
    assert not (store.workspace / "studies" / "mine.log").exists()


def test_an_owners_same_named_study_and_its_files_are_deleted_alone(store):
    """Issue 28: studies are per owner; deleting one owner's data removes its study of a name and that study's
    files, never another owner's study of the same name or its files."""
    from builder.search import storage

    url, ws = storage.default_storage(store.workspace), store.workspace
    for owner in (ME, OTHER):
        storage.claim_study(url, "lr-sweep", owner=owner, workspace=ws)
        for kind, path in storage.study_files(ws, owner, "lr-sweep").items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if kind == "tmp" else path.write_text(owner)
    assert housekeeping.delete_owner_data(store, ME, ME)["studies"] == 1
    assert not any(p.exists() for p in storage.study_files(ws, ME, "lr-sweep").values())
    assert all(p.exists() for p in storage.study_files(ws, OTHER, "lr-sweep").values())
    assert [s["name"] for s in storage.list_studies(url, owner=OTHER, workspace=ws)] == ["lr-sweep"]
    assert storage.list_studies(url, owner=ME, workspace=ws) == []


def test_the_admins_study_list_names_owners_by_pseudonym(store):
    from builder.search import storage

    url, ws = storage.default_storage(store.workspace), store.workspace
    for owner in (ME, OTHER):
        storage.claim_study(url, "lr-sweep", owner=owner, workspace=ws)
    owners.set_display_name(ws, OTHER, "Bea")
    admin = store.as_actor(classes.actor_for(ws, ADMIN))
    rows = housekeeping.admin_studies(admin)
    assert sorted((r["name"], r["owner"]) for r in rows) == sorted(
        [("lr-sweep", owners.pseudonym(ws, ME)), ("lr-sweep", f"Bea ({owners.pseudonym(ws, OTHER)})")])
    assert "a" * 12 not in str(rows) and "b" * 12 not in str(rows)  # never an owner id
    with pytest.raises(AccessDenied):
        housekeeping.admin_studies(store.as_actor(classes.actor_for(ws, ME)))
