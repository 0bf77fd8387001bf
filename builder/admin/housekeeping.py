"""Housekeeping of a shared server: disk usage per owner, per class and for the workspace, every job on the
server (the admin's view), and deleting data: an owner's own runs and projects, a class with its members'
class runs (its teacher), anyone's data (an admin).

Who may do what is decided by :mod:`builder.data.access` (``stop``, ``delete``, ``delete_data``,
``delete_class_run``) for the actor :func:`builder.runs.classes.actor_for` resolves; the sums over every owner
(disk use, every job) are an admin's (``oversee``, checked here) and then read as :data:`builder.data.access.SYSTEM`; nothing is
removed outside the workspace (run folders through :meth:`RunStore.run_dir`, owner folders checked to resolve
under ``<workspace>/owners``). A live job is never deleted: it is left, and named, until it is stopped.
Example::

    # not a doctest (needs a workspace): run by tests/admin/test_housekeeping.py::test_owner_deletes_own_data_only
    delete_owner_data(store, "anon:" + "a" * 32, "anon:" + "a" * 32)
    # -> {'runs': 2, 'kept': [], 'projects': 1, 'studies': 0}
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.data.access import (
    DELETE,
    DELETE_CLASS_RUN,
    DELETE_DATA,
    LOCAL_OWNER,
    OVERSEE,
    READ,
    SERVER,
    STOP,
    SYSTEM,
    Resource,
    check,
    check_acting,
    may,
    refusal,
)
from builder.errors import LayerLabError, RunStoreError
from builder.escape import resolves_inside
from builder.jobs.quotas import folder_bytes
from builder.runs import classes as _classes
from builder.runs import owners as _owners
from builder.runs.owners import OWNERS_DIR, check_sees, owner_of, owner_path
from builder.runs.run_time import stamp
from builder.runs.store import DB_NAME, RunStore
from builder.search.settings import valid_study_name
from builder.search.storage import (
    STUDY_DB,
    default_storage,
    list_studies,
    open_storage,
    study_display_name,
    study_files,
)
from builder.training.run_status import LIVE, RunStatus, is_live

CACHE_DIR = "cache"
STUDIES = ("studies", STUDY_DB)  # study logs and the Optuna database (builder.search)


class HousekeepingError(LayerLabError):
    """A deletion the asking owner has no right to, or a path that resolves outside the workspace."""


# ------------------------------------------------------------------------------------------------ disk usage
def _owner_folder(workspace: str | Path, owner: str) -> Path:
    """``<workspace>/owners/<safe id>`` (not created), checked to resolve inside ``<workspace>/owners``."""
    root = Path(workspace) / OWNERS_DIR
    path = owner_path(workspace, owner)
    if path.is_symlink() or (path.exists() and not resolves_inside(path, root)):
        raise HousekeepingError(f"an owner's folder lies inside the workspace; received: {path} (a link or a path "
                                "outside it). Fix: remove the link by hand")
    return path


def _bytes(path: Path) -> int:
    if path.is_file() and not path.is_symlink():
        return path.stat().st_size
    return folder_bytes(path) if path.is_dir() and not path.is_symlink() else 0


def _run_bytes(store: RunStore, run_id: str) -> int:
    try:
        return _bytes(store.run_dir(run_id, actor=SYSTEM))
    except RunStoreError:
        return 0


def owner_usage(store: RunStore, owner: str, runs: list[dict] | None = None) -> dict[str, int]:
    """Bytes ``owner`` keeps: ``runs`` (its run folders and ``records``, their rows and curves in the run
    database, :meth:`~builder.runs.store.RunStore.record_bytes`: what the storage quota counts), ``projects`` (its
    autosave, undo history and uploads: ``owners/<safe id>/``), ``total``, and ``n_runs``; for the owner itself or
    an admin (those who may delete it, ``delete_data``).

    Raises:
        AccessDenied: the store's actor is neither.
    """
    check_sees(store, owner)  # never the owner id
    return _owner_usage(store, owner, runs)


def _owner_usage(store: RunStore, owner: str, runs: list[dict] | None = None) -> dict[str, int]:
    """:func:`owner_usage` for a caller that checked its actor (a class's teacher, an admin's sums)."""
    runs = store.list_runs(owner=owner, limit=100_000, actor=SYSTEM) if runs is None else runs
    records = store.record_bytes(owner, actor=SYSTEM)  # its curves and records in the run database: the storage quota counts them
    run_b = sum(_run_bytes(store, r["id"]) for r in runs) + records
    try:
        proj_b = _bytes(_owner_folder(store.workspace, owner))
    except HousekeepingError:
        proj_b = 0
    return {"runs": run_b, "projects": proj_b, "total": run_b + proj_b, "n_runs": len(runs), "records": records}


def class_usage(store: RunStore, cls: dict) -> dict[str, Any]:
    """Bytes of a class: ``members`` (:func:`owner_usage` of each member) and their sums ``runs``, ``projects``,
    ``total``; for the class's teacher or an admin.

    Raises:
        AccessDenied: the store's actor is neither (worded as an unknown class).
    """
    cls = _check_class(store, cls)
    members = {m: _owner_usage(store, m) for m in cls.get("members", [])}
    sums = {k: sum(u[k] for u in members.values()) for k in ("runs", "projects", "total")}
    return {"members": members, **sums}


def known_owners(store: RunStore) -> list[str]:
    """Every owner the workspace knows: of runs, members and teachers of classes (sorted)."""
    found = {owner_of(r) for r in store.list_runs(limit=1_000_000, actor=SYSTEM)}
    for cls in _classes.list_classes(store.workspace, actor=SYSTEM):
        found.update(cls.get("members", []))
        found.add(cls.get("teacher", ""))
    return sorted(o for o in found if o)


def workspace_usage(store: RunStore) -> dict[str, Any]:
    """Bytes of the whole workspace: ``owners`` (:func:`owner_usage` per known owner; their ``records`` are
    within ``database``), ``cache`` (decoded datasets, shared by everyone), ``studies``, ``database`` (the run
    store), ``other`` (owner folders of no known owner, launcher files, ...) and ``total`` (every file under the
    workspace)."""
    check(store.who(), OVERSEE, SERVER)  # an admin's view (builder.data.access), whoever calls it
    ws = Path(store.workspace)
    by_run_owner: dict[str, list[dict]] = {}
    for r in store.list_runs(limit=1_000_000, actor=SYSTEM):
        by_run_owner.setdefault(owner_of(r), []).append(r)
    owners = {o: _owner_usage(store, o, by_run_owner.get(o, [])) for o in known_owners(store)}
    total = _bytes(ws)
    cache = _bytes(ws / CACHE_DIR)
    studies = sum(_bytes(ws / name) for name in STUDIES)
    database = sum(_bytes(ws / (DB_NAME + suffix)) for suffix in ("", "-wal", "-shm"))
    known = sum(u["total"] - u["records"] for u in owners.values())  # their records are in the database's files
    return {"owners": owners, "cache": cache, "studies": studies, "database": database,
            "other": max(0, total - known - cache - studies - database), "total": total}


# --------------------------------------------------------------------------------------------- every job
def _age_s(run: dict, now: float) -> float | None:
    t = stamp(run.get("created_at"))
    return None if t is None else max(0.0, now - t)


def server_jobs(store: RunStore) -> list[dict]:
    """Every queued, running or paused job on the server, queued last in queue order: ``id``, ``name``,
    ``owner``, ``status``, ``device`` (where it trains; a queued job's setting), ``age_s`` (since it was
    submitted), ``position`` (in the queue) and ``epochs``."""
    check(store.who(), OVERSEE, SERVER)  # an admin's view (builder.data.access), whoever calls it
    store.mark_interrupted()
    now = datetime.now(timezone.utc).timestamp()
    out = []
    for status in sorted(LIVE):
        for r in store.list_runs(status=status.value, limit=10_000, actor=SYSTEM):
            full = r
            if r["status"] != RunStatus.QUEUED:  # where it trains is in its environment (not in the list's columns)
                try:
                    full = store.get(r["id"], actor=SYSTEM)
                except RunStoreError:
                    continue
            env, cfg = full.get("environment") or {}, full.get("config") or {}
            device = env.get("device") or (f"cuda:{env['gpu']}" if isinstance(env.get("gpu"), int) else None)
            out.append({"id": r["id"], "name": r.get("name"), "owner": owner_of(r), "status": r["status"],
                        "device": str(device or cfg.get("device") or "auto"), "age_s": _age_s(r, now),
                        "position": store.queue_position(r["id"]) if r["status"] == RunStatus.QUEUED else None,
                        "epochs": r.get("epochs_done") or 0})
    return sorted(out, key=lambda j: (j["status"] == RunStatus.QUEUED, j["position"] or 0, -(j["age_s"] or 0)))


def _acting(store: RunStore, owner: str) -> RunStore:
    """The store acting for ``owner`` with its rights read afresh (an admin, a teacher's classes): the store's own
    actor, or anyone for trusted code (:func:`builder.data.access.check_acting`); a caller never acts for someone
    it names."""
    return store.as_actor(_classes.actor_for(store.workspace, check_acting(store.who(), owner)))


def stop_job(store: RunStore, run_id: str, owner: str) -> None:
    """Ask a job to stop on behalf of ``owner``: its own, a student's (a teacher) or anyone's (an admin).
    Raises AccessDenied without the right (as for an unknown run), RunStoreError for a job that is not live."""
    from builder.jobs.queue import request  # lazy: heavy (torch)

    request(_acting(store, owner), run_id, STOP)


# ------------------------------------------------------------------------------------------------- deleting
def _delete_runs(store: RunStore, runs: list[dict]) -> tuple[int, list[str]]:
    """Delete runs that are not live; (how many were deleted, ids of the live ones left)."""
    store.mark_interrupted()
    done, kept = 0, []
    for r in runs:
        if is_live(r["status"]):
            kept.append(r["id"])
            continue
        try:
            store.delete_run(r["id"])  # as the store's actor: delete, or delete_class_run for a class's teacher
            done += 1
        except RunStoreError:  # became live, or a crafted row outside the workspace: left as it is
            kept.append(r["id"])
    return done, kept


def delete_runs(store: RunStore, owner: str, run_ids: list[str]) -> dict[str, Any]:
    """Delete these runs on behalf of ``owner`` (its own; anyone's for an admin). Every run is checked before
    any is deleted. Returns ``{"runs": deleted, "kept": [live run ids]}``. Raises HousekeepingError."""
    store = _acting(store, owner)
    rows = {r["id"]: r for r in store.list_runs(limit=1_000_000, actor=SYSTEM)}
    for rid in run_ids:
        if rid not in rows or not may(store.actor, DELETE, rows[rid]):
            raise HousekeepingError(f"only a run's owner or an admin deletes it; received: no run {str(rid)[:40]!r} "
                                    "of yours. Fix: pick one of your runs")
    done, kept = _delete_runs(store, [rows[rid] for rid in run_ids])
    return {"runs": done, "kept": kept}


def _study_owner(settings: object) -> str:
    """The owner a study's LayerLab settings record (``local`` when they record none)."""
    return owner_of(settings if isinstance(settings, dict) else None)


def _remove_study_files(workspace: Path, files: dict[str, Path]) -> None:
    """Delete a study's files (:func:`builder.search.storage.study_files`) that lie inside ``<workspace>/studies``."""
    root = workspace / "studies"
    for kind, path in files.items():
        if path.is_symlink() or not resolves_inside(path, root):
            continue
        if kind == "tmp" and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file():
            path.unlink()


def _delete_studies(workspace: Path, target: str) -> int:
    """Delete ``target``'s studies from the workspace's study database (none when it has none), with their files
    (found by the one naming function, :func:`builder.search.storage.study_files`)."""
    if not (workspace / STUDY_DB).is_file():
        return 0
    import optuna  # lazy: heavy (optuna)

    storage = default_storage(workspace)
    n = 0
    for s in list_studies(storage):
        if _study_owner(s.get("settings")) != target:
            continue
        optuna.delete_study(study_name=s["name"], storage=open_storage(storage))
        name = study_display_name(s["name"])
        if valid_study_name(name):
            _remove_study_files(workspace, study_files(workspace, target, name))
            if s["name"] == name and target != LOCAL_OWNER:  # made before names were per owner: its files were bare
                _remove_study_files(workspace, {"project": workspace / "studies" / f"{name}.project.json",
                                                "log": workspace / "studies" / f"{name}.log",
                                                "tmp": workspace / "studies" / f"{name}.tmp"})
        n += 1
    return n


def admin_studies(store: RunStore) -> list[dict]:
    """Every study of the workspace for the admin's view: ``name`` (as its owner sees it), ``owner`` (a
    :func:`builder.runs.owners.label`, never an owner id), ``n_trials``, ``best_value``, ``created``."""
    check(store.who(), OVERSEE, SERVER)  # an admin's view (builder.data.access), whoever calls it
    ws = Path(store.workspace)
    if not (ws / STUDY_DB).is_file():
        return []
    return [{"name": study_display_name(s["name"]), "owner": _owners.label(ws, _study_owner(s.get("settings"))),
             "n_trials": s["n_trials"], "best_value": s["best_value"], "created": s["created"]}
            for s in list_studies(default_storage(ws))]


def delete_owner_data(store: RunStore, owner: str, target: str, *, studies: bool = True) -> dict[str, Any]:
    """Delete everything ``target`` keeps on behalf of ``owner`` (itself, or an admin): its runs (live jobs are
    left and named in ``kept``: stop them first), its folder (autosaved project, undo history, uploads) and
    its studies. Returns ``{"runs", "kept", "projects" (1 when the folder was removed), "studies"}``.

    Raises:
        HousekeepingError: ``owner`` may not delete ``target``'s data, or its folder is a link.
    """
    store = _acting(store, owner)
    if not may(store.actor, DELETE_DATA, Resource("owner", target)):
        who, asking = (_owners.pseudonym(store.workspace, x) for x in (target, owner))  # never an owner id
        raise HousekeepingError(f"only the owner or an admin deletes an owner's data; received: {who}'s data "
                                f"asked by {asking}. Fix: sign in as that owner or as an admin")
    folder = _owner_folder(store.workspace, target)  # checked before anything is deleted
    done, kept = _delete_runs(store, store.list_runs(owner=target, limit=1_000_000, actor=SYSTEM))
    removed = 0
    if folder.is_dir():
        shutil.rmtree(folder)
        removed = 1
    n_studies = _delete_studies(Path(store.workspace), target) if studies else 0
    return {"runs": done, "kept": kept, "projects": removed, "studies": n_studies}


def _check_class(store: RunStore, cls: Mapping[str, Any]) -> dict:
    """The class as stored, for its teacher or an admin; refused (as an unknown class) for anyone else: the class
    views over every member's runs and folders read as :data:`SYSTEM` after this check. Only ``cls``'s id counts:
    a caller's copy of the record, edited or made up (a class "taught" by the caller, another class's members),
    reaches nothing (it counted another person's storage and listed another class's runs)."""
    stored = _classes.get_class(store.workspace, str(cls.get("id")), SYSTEM)  # unknown: "no class X of yours"
    if not may(store.who(), DELETE, Resource.klass(stored)):
        raise refusal(str(cls.get("id")), "class")
    return stored


def class_run_ids(store: RunStore, cls: dict) -> list[dict]:
    """The class's runs: those recorded for it (``class_id``, set when a member trains the class's starter:
    :func:`builder.runs.classes.class_for`); a member's other runs are not the class's. For the class's teacher or
    an admin (those who delete a class): AccessDenied, worded as an unknown class, otherwise."""
    cls = _check_class(store, cls)
    return store.list_runs(class_id=cls["id"], limit=1_000_000, actor=SYSTEM)


def delete_class_data(store: RunStore, class_id: str, teacher: str) -> dict[str, Any]:
    """Delete a class and the runs recorded for it (:func:`class_run_ids`) on behalf of its ``teacher`` (or an
    admin); members keep their projects and their other runs. Live jobs are left (``kept``) and the class is
    then kept too, so that nothing is orphaned: stop them and delete again.

    Raises:
        AccessDenied: an unknown class, or one ``teacher`` is not in ("no class X of yours").
        ClassError: ``teacher`` is its member, not its teacher nor an admin.
    """
    cls = _classes.get_class(store.workspace, class_id, SYSTEM)  # the actor's check follows
    store = _acting(store, teacher)
    if not may(store.actor, DELETE, Resource.klass(cls)):
        if not may(store.actor, READ, Resource.klass(cls)):  # a stranger: as an unknown class (no oracle)
            raise refusal(class_id, "class")
        raise _classes.ClassError(f"only the class's teacher deletes it; received: "
                                  f"{_owners.pseudonym(store.workspace, teacher)}. Fix: sign in as its teacher")
    runs = [r for r in class_run_ids(store, cls) if may(store.actor, DELETE_CLASS_RUN, r)]
    done, kept = _delete_runs(store, runs)
    if not kept:
        _classes.delete_class(store.workspace, class_id, cls["teacher"])
    return {"runs": done, "kept": kept, "class_deleted": not kept}


def admin_owners(store: RunStore) -> list[dict]:
    """One row per known owner for the admin's view: ``owner``, ``teacher`` (listed as one), ``runs``, ``live``
    (jobs), bytes ``runs_b``, ``projects_b``, ``total_b``."""
    check(store.who(), OVERSEE, SERVER)  # an admin's view (builder.data.access), whoever calls it
    use = workspace_usage(store)["owners"]
    live: dict[str, int] = {}
    for j in server_jobs(store):
        live[j["owner"]] = live.get(j["owner"], 0) + 1
    return [{"owner": o, "teacher": _owners.is_teacher(store.workspace, o), "runs": u["n_runs"], "live": live.get(o, 0),
             "runs_b": u["runs"], "projects_b": u["projects"], "total_b": u["total"]}
            for o, u in sorted(use.items(), key=lambda kv: -kv[1]["total"])]


__all__ = ["HousekeepingError", "owner_usage", "class_usage", "known_owners", "workspace_usage", "server_jobs",
           "stop_job", "delete_runs", "delete_owner_data", "class_run_ids", "delete_class_data", "admin_owners", "admin_studies"]
