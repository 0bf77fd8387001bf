"""Classes on one server: a teacher's class with a join code, its members, the starter project they get, the
members' runs side by side and a leaderboard.

A class is a JSON file ``<workspace>/classes/<id>.json``: ``id``, ``name``, ``code`` (what students type to
join), ``teacher`` (an owner the server's configuration marks as teacher: :func:`builder.runs.owners.teachers`),
``members``, ``starter`` (a project with its built-in dataset), ``metric`` (the test metric of the leaderboard),
``quotas`` (overrides of :mod:`builder.jobs.quotas` for members) and timestamps. Writes happen under one lock
file, so thirty students joining at once are all kept. Students see only their own work; the teacher sees
every member's runs read-only and may stop their jobs (:func:`builder.data.access.may`, with the roles
:func:`actor_for` resolves). A member's run of the starter is recorded for the class (:func:`class_for`: the
``class_id`` of the run), and only those runs are the class's. Example::

    # not a doctest (needs a workspace): run by tests/runs/test_classes.py::test_teacher_creates_students_join
    c = create_class(ws, "user:t@school.org", "ML 101", builder.load_template("mlp"))
    join_class(ws, c["code"], "anon:" + "a" * 32)["starter"]["name"]
    # -> 'MLP on two moons'
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from builder._moved import moved_name
from builder.data.access import READ, TEACH, TRAIN_FOR, Actor, Resource, check, may, refusal, shared_runs
from builder.data.disk import write_atomic
from builder.data.sources import content_problems, for_link, option_value_problems, project_problems, travels
from builder.errors import LayerLabError
from builder.escape import hide_paths, terminal_line
from builder.graph.project import Project, load_project
from builder.graph.share import LOCAL_TRAINING_KEYS
from builder.runs import db as _db
from builder.runs.owners import display_name, is_admin, is_teacher, owner_of, pseudonym
from builder.runs.store import RunStore
from builder.runs.summary import best_epoch, duration_s
from builder.training.metrics_units import LOWER_IS_BETTER, SCORED, metric_in_units

CLASSES_DIR = "classes"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: read aloud or from a slide
CODE_LEN = 6
MAX_MEMBERS = 500
_ID_RE = re.compile(r"^c-[0-9a-f]{12}\Z")


class ClassError(LayerLabError):
    """A class cannot be created, joined or changed (not a teacher, unknown code, not the class's teacher)."""


def _dir(workspace: str | Path) -> Path:
    d = Path(workspace) / CLASSES_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def _locked(workspace: str | Path) -> Iterator[None]:
    if _db.on_server(workspace):  # servers sharing a database share its classes (builder.runs.db)
        with _db.workspace_lock(workspace, CLASSES_DIR):
            yield
        return
    with open(_dir(workspace) / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _save(workspace: str | Path, cls: dict) -> None:
    if _db.on_server(workspace):
        _db.save_document(workspace, CLASSES_DIR, cls["id"], json.dumps(cls))
        return
    write_atomic(_dir(workspace) / f"{cls['id']}.json", json.dumps(cls, indent=1), "the class file")


def list_classes(workspace: str | Path, *, teacher: str | None = None, member: str | None = None,
                 actor: Actor | None = None) -> list[dict]:
    """Classes newest first: those ``teacher`` teaches, those ``member`` joined, or (``actor``) every class that
    actor may read (:func:`builder.data.access.may`: its own as teacher or member; :data:`SYSTEM` every class). A
    class holds its join code, so there is no list of every class without an actor.

    Raises:
        ClassError: none of ``teacher``, ``member`` and ``actor`` is given.
    """
    if teacher is None and member is None and actor is None:
        raise ClassError("a list of classes is of the classes one person teaches or joined; received: none. "
                         "Fix: pass teacher=, member= or actor=")
    return [c for c in _all_classes(workspace)
            if (teacher is None or c.get("teacher") == teacher)
            and (member is None or member in c.get("members", []))
            and (actor is None or may(actor, READ, Resource.klass(c)))]


def _all_classes(workspace: str | Path) -> list[dict]:
    """Every class on the server, newest first, join codes included: for the library's own lookups (a join code,
    the owners the workspace knows), never returned to a person."""
    out = []
    for text in _texts(workspace):
        try:
            out.append(json.loads(text))
        except ValueError:
            continue
    return sorted(out, key=lambda c: c.get("created", 0), reverse=True)


def get_class(workspace: str | Path, class_id: str, actor: Actor | str) -> dict:
    """Class ``class_id`` as ``actor`` (an :class:`~builder.data.access.Actor` or an owner id) may read it: its
    teacher's or one of its members' (:func:`builder.data.access.may`). An unknown class and another person's are
    one refusal, "no class X of yours", so the answer tells nothing of which classes exist.

    Raises:
        ClassError: a malformed id.
        AccessDenied: an unknown class, or one ``actor`` neither teaches nor joined.
    """
    try:
        cls = _load_class(workspace, class_id)
    except ClassError:
        if not isinstance(class_id, str) or not _ID_RE.match(class_id):
            raise
        raise refusal(class_id, "class") from None
    who = actor if isinstance(actor, Actor) else Actor(str(actor))
    if not may(who, READ, Resource.klass(cls)):
        raise refusal(class_id, "class")
    return cls


def _load_class(workspace: str | Path, class_id: str) -> dict:
    """One class by id, whoever asks (the library's own lookups; :func:`get_class` asks the policy). Raises
    ClassError for an unknown or malformed id."""
    if not isinstance(class_id, str) or not _ID_RE.match(class_id):
        raise ClassError(f"a class id is c- and 12 hexadecimal characters; received: {str(class_id)[:40]!r}. "
                         "Fix: pick the class from the list")
    found = _texts(workspace, class_id)
    if not found:
        raise ClassError(f"no class {class_id} on this server; received: {class_id}. Fix: pick one from the list")
    return json.loads(found[0])


def _texts(workspace: str | Path, class_id: str | None = None) -> list[str]:
    """The stored JSON of every class (or of ``class_id``): files in ``<workspace>/classes``, or documents in a
    shared database."""
    if _db.on_server(workspace):
        return _db.load_documents(workspace, CLASSES_DIR, class_id)
    folder = Path(workspace) / CLASSES_DIR  # read without creating it (every job submission asks)
    paths = [folder / f"{class_id}.json"] if class_id else (folder.glob("c-*.json") if folder.is_dir() else ())
    out = []
    for path in paths:
        if not _ID_RE.match(path.stem):  # c-<id>.scores.json: the held-out scores
            continue
        try:
            out.append(path.read_text(encoding="utf-8"))
        except OSError:
            continue
    return out


CLASS_KEY = "class_id"  # the key of a project's ``training`` that names the class a member trains for


def actor_for(workspace: str | Path, owner: str, *, shared: bool | None = None) -> Actor:
    """The actor of a server session (a page, a job submitted from one): ``owner`` with its roles here:
    admin (:func:`builder.runs.owners.is_admin`), the classes it teaches and their members, shared mode
    (``LAYERLAB_SHARED_RUNS`` unless ``shared`` says)."""
    teaching = list_classes(workspace, teacher=owner)
    return Actor(owner, admin=is_admin(workspace, owner), teaching=frozenset(c["id"] for c in teaching),
                 students=frozenset(m for c in teaching for m in c.get("members", [])),
                 shared=shared_runs() if shared is None else shared)


def class_for(workspace: str | Path, actor: Actor, project: Project | dict | None) -> str | None:
    """The class a run of ``project`` is recorded for: its ``training.class_id`` (set by :func:`starter_project`)
    when ``actor`` is a member or the teacher of that class; None when it names none.

    Raises:
        AccessDenied: a class that does not exist or that ``actor`` is not in ("no class X of yours").
    """
    training = (load_project(project).training if project is not None else None) or {}
    class_id = training.get(CLASS_KEY)
    if class_id in (None, ""):
        return None
    try:
        cls = _load_class(workspace, str(class_id))
    except ClassError:
        raise refusal(str(class_id), "class") from None
    if not actor.system:
        check(actor, TRAIN_FOR, Resource.klass(cls))
    return cls["id"]


def _starter(project: Project | dict) -> dict:
    """The starter as stored: run ids of the teacher's workspace (``init_from``, ``teacher``: runs no student
    may read) and a class id are left out, as a shared link leaves them out (:mod:`builder.graph.share`)."""
    proj = load_project(project)  # validated as an uploaded file is
    if proj.training:
        proj = proj.model_copy(update={"training": {k: v for k, v in proj.training.items()
                                                    if k not in LOCAL_TRAINING_KEYS}})
    ds = proj.dataset or {}
    problems = project_problems(proj)  # a server path in the dataset or in training.dataset (named by key only)
    if problems:
        raise ClassError("a class's starter names its data as a built-in dataset (every student can load it), "
                         f"never a file on the server; received: {'; '.join(problems)}. Fix: pick a built-in "
                         "dataset on the Data page")
    if ds and not travels(ds):  # the teacher's upload: no student may read it
        raise ClassError(f"a class's starter uses a built-in dataset (every student can load it); received: a "
                         f"{str(ds.get('name') or ds.get('kind'))[:20]} file. Fix: pick a built-in dataset on "
                         "the Data page")
    # what goes to another person, as a link carries it: an upload id in the training settings stays behind too
    return json.loads(for_link(proj)[0].to_json(indent=None))


def _check_metric(metric: object) -> str:
    """A leaderboard's metric: one a test split measures (:data:`~builder.training.metrics_units.SCORED`).

    Raises:
        ClassError: another.
    """
    if metric not in SCORED:
        raise ClassError(f"the leaderboard's metric is one of {', '.join(SCORED)}; received: {str(metric)[:40]!r}. "
                         "Fix: pick one the class's task measures (the Classes page offers those)")
    return str(metric)


def create_class(workspace: str | Path, teacher: str, name: str, starter: Project | dict, *,
                 metric: str = "accuracy", quotas: dict | None = None, holdout: dict | None = None) -> dict:
    """Create a class taught by ``teacher`` with a fresh join code and ``starter`` as its starting project.

    ``holdout`` (``{"dataset": name, "options": {...}}``) is the teacher's test set for the leaderboard: its
    test split scores every finished run (:func:`holdout_score`); students never see it. A generated dataset
    (moons, circles, ...) with another ``seed`` gives samples no student trained on. Without it the leaderboard
    reads the test split each run held out.

    Raises:
        ClassError: ``teacher`` is not listed as a teacher by the server's configuration.
        ProjectFormatError: the starter is not a valid project.
    """
    if not is_teacher(workspace, teacher):
        raise ClassError(f"only a teacher creates a class; received: {pseudonym(workspace, teacher)}. Fix: list "
                         "this id (the Server page shows it) in LAYERLAB_TEACHERS or the server config's "
                         "\"teachers\"")
    name = re.sub(r"\s+", " ", str(name)).strip()[:100] or "class"
    _check_metric(metric)
    with _locked(workspace):
        codes = {c.get("code") for c in _all_classes(workspace)}
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN))
        while code in codes:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN))
        cls = {"id": "c-" + secrets.token_hex(6), "name": name, "code": code, "teacher": teacher, "members": [],
               "joined": {}, "starter": _starter(starter), "metric": str(metric), "quotas": dict(quotas or {}),
               "holdout": _holdout(holdout),
               "created": time.time(), "updated": time.time()}
        _save(workspace, cls)
    return cls


def _holdout(holdout: dict | None) -> dict | None:
    if holdout is None:
        return None
    name, options = holdout.get("dataset"), holdout.get("options") or {}
    if not isinstance(name, str) or not name or not isinstance(options, dict):
        raise ClassError(f"a class's held-out set is {{\"dataset\": name, \"options\": {{...}}}}; received: "
                         f"{terminal_line(str(holdout), 60) if not content_problems((str(name), {})) else 'a path'}. "
                         "Fix: name a built-in dataset")
    spec = {"name": name, "options": dict(options)}
    if travels(spec) and (wrong := option_value_problems(spec)):  # scored for every run: refused here, once
        raise ClassError(f"a class's held-out set takes the options of its dataset; received: {'; '.join(wrong)}. "
                         "Fix: give each option a value of its kind, or leave it out")
    if not travels(spec):  # the leaderboard loads it with no one's uploads (builder.interpret.run_views)
        problems = content_problems(spec) or [f"dataset {terminal_line(name, 40)!r}, a file of the teacher's"]
        raise ClassError("a class's held-out set is a built-in dataset (the leaderboard loads it for every run, "
                         f"with no one's uploads), never a file; received: {'; '.join(problems)}. Fix: name a "
                         "built-in dataset, e.g. moons with another seed")
    return {"dataset": name, "options": dict(options)}


def normal_code(code: str) -> str:
    """A join code as typed (spaces, dashes, lower case) in its canonical form."""
    return re.sub(r"[^A-Z0-9]", "", str(code).upper())


def join_class(workspace: str | Path, code: str, owner: str) -> dict:
    """Add ``owner`` to the class with this join code (joining twice changes nothing) and return the class,
    whose ``starter`` the student opens. Raises ClassError for an unknown code or a full class."""
    want = normal_code(code)
    with _locked(workspace):
        cls = next((c for c in _all_classes(workspace) if c.get("code") == want), None)
        if cls is None or not want:
            raise ClassError(f"a join code is the {CODE_LEN} characters your teacher shows; received: "
                             f"{str(code)[:20]!r}, which no class on this server has. Fix: check it with your teacher")
        if owner == cls["teacher"]:
            return cls
        if owner not in cls["members"]:
            if len(cls["members"]) >= MAX_MEMBERS:
                raise ClassError(f"a class has at most {MAX_MEMBERS} members; received: a join to a full class. "
                                 "Fix: ask the teacher to open a second class")
            cls["members"].append(owner)
            cls.setdefault("joined", {})[owner] = time.time()  # when; a class's runs are those recorded for it
            cls["updated"] = time.time()
            _save(workspace, cls)
    return cls


def _own(workspace: str | Path, class_id: str, teacher: str) -> dict:
    cls = get_class(workspace, class_id, teacher)  # a stranger: "no class X of yours", as for an unknown class
    if not may(Actor(teacher), TEACH, Resource.klass(cls)):
        raise ClassError(f"only the class's teacher changes it; received: {pseudonym(workspace, teacher)}. Fix: "
                         "sign in as its teacher")
    return cls


def post_starter(workspace: str | Path, class_id: str, teacher: str, starter: Project | dict) -> dict:
    """Replace the class's starter project (members open it from the Class page). Raises ClassError."""
    with _locked(workspace):
        cls = _own(workspace, class_id, teacher)
        cls["starter"] = _starter(starter)
        cls["updated"] = time.time()
        _save(workspace, cls)
    return cls


def update_class(workspace: str | Path, class_id: str, teacher: str, *, metric: str | None = None,
                 quotas: dict | None = None) -> dict:
    """Change the leaderboard's metric or the members' quota overrides. Raises ClassError."""
    with _locked(workspace):
        cls = _own(workspace, class_id, teacher)
        if metric is not None:
            cls["metric"] = _check_metric(metric)
        if quotas is not None:
            cls["quotas"] = dict(quotas)
        cls["updated"] = time.time()
        _save(workspace, cls)
    return cls


def delete_class(workspace: str | Path, class_id: str, teacher: str) -> None:
    """Delete the class (members keep their own runs and projects). Raises ClassError."""
    with _locked(workspace):
        cls = _own(workspace, class_id, teacher)
        if _db.on_server(workspace):
            _db.delete_document(workspace, CLASSES_DIR, cls["id"])
        (_dir(workspace) / f"{cls['id']}.json").unlink(missing_ok=True)
        (_dir(workspace) / f"{cls['id']}.scores.json").unlink(missing_ok=True)


def starter_project(cls: dict) -> Project:
    """The class's starter as a project (its dataset in ``dataset``), marked with the class (``training.class_id``)
    so that a member's runs of it are recorded for the class (:func:`class_for`)."""
    proj = load_project(cls["starter"])
    return proj.model_copy(update={"training": {**(proj.training or {}), CLASS_KEY: cls["id"]}})


def students_of(workspace: str | Path, teacher: str) -> frozenset[str]:
    """Every member of the classes ``teacher`` teaches (whose jobs the teacher may stop)."""
    return frozenset(m for c in list_classes(workspace, teacher=teacher) for m in c.get("members", []))


def _metric(run: dict, name: str, value: object = None) -> float | None:
    """The run's own test ``name`` (or ``value``, a held-out score of it) in the target's units (a scaled
    target's errors multiplied back, :func:`builder.training.metrics_units.metric_in_units`), or None."""
    v = (run.get("test_metrics") or {}).get(name) if value is None else value
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    return metric_in_units(name, float(v), run.get("dataset_info"))[0]


def _scores_path(store: RunStore, cls: dict) -> Path:
    return _dir(store.workspace) / f"{cls['id']}.scores.json"


HoldoutScorer = Callable[[str, dict, str], "float | None"]
"""Scores a run on a class's held-out set: ``(run id, holdout, metric) -> value`` (None: the model does not fit
the data); one line (a LayerLabError) when its model crashed, hung or ran out of memory. The app's is
:meth:`builder.jobs.probe.ModelProbe.holdout`: the model runs in the page session's sandboxed child, which
calls :func:`evaluate_holdout`."""


def _score_key(run: Mapping[str, Any], metric: str, holdout: Any) -> str:
    """A run's score's key: the run as it finished (a run continued with more epochs finishes again with other
    weights, scored anew), the metric and the held-out set."""
    return (f"{run['id']}@{run.get('epochs_done')}@{run.get('finished_at')}:{metric}:"
            f"{json.dumps(holdout, sort_keys=True)}")


def _scored_run(store: RunStore, cls: dict, run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The stored run a score is written for, or None: the store's actor teaches the class as it is stored (a
    student's scorer wrote their own leaderboard score into the shared cache) and the run is read through the store
    (a teacher reads its students' class runs; its epochs and end as recorded, not as the caller says)."""
    try:
        stored = _load_class(store.workspace, str(cls.get("id")))
        if store.actor is None or not may(store.actor, TEACH, Resource.klass(stored)):
            return None
        real = store.get(str(run["id"]))
    except LayerLabError:
        return None
    return real if real.get("status") == "finished" else None


def holdout_score(store: RunStore, cls: dict, run: dict, scorer: HoldoutScorer | None = None) -> float | None:
    """The class metric of a finished run on the class's held-out test split (:func:`holdout_result`)."""
    return holdout_result(store, cls, run, scorer)[0]


def holdout_result(store: RunStore, cls: dict, run: dict,
                   scorer: HoldoutScorer | None = None) -> tuple[float | None, str | None]:
    """``(value, error)``: the class metric of a finished run on the class's held-out test split
    (:func:`create_class`) as ``scorer`` measures it, cached per run and finish (its epochs and end) in
    ``classes/<id>.scores.json`` (an error too: a model that crashed the scorer's process is not run again on every
    page view); the run's own test metric when the class has no held-out set. ``value`` is None when the model
    does not fit the held-out data, the run has not finished, or no ``scorer`` was given and nothing is cached
    (nothing runs a model here)."""
    name = cls.get("metric", "accuracy")
    ho = cls.get("holdout")
    if not ho or run.get("status") != "finished":
        return _metric(run, name), None
    path = _scores_path(store, cls)
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    key = _score_key(run, name, ho)
    if key not in cache:
        if scorer is None:
            return None, None
        run = _scored_run(store, cls, run)  # the class's teacher scores, for the shared cache, the run as stored
        if run is None:
            return None, None
        key = _score_key(run, name, ho)
    if key not in cache:  # the stored run's score may be there already
        try:
            cache[key] = scorer(run["id"], ho, name)
        except LayerLabError as e:
            # the teacher reads it: a student's folders on the server are never named (builder.escape.hide_paths)
            cache[key] = {"error": hide_paths(" ".join(str(e).split()))[:300]}
        with contextlib.suppress(LayerLabError, OSError):  # a full disk: scored again next time
            write_atomic(path, json.dumps(cache), "the class's held-out scores")
    value = cache[key]
    if isinstance(value, dict):
        return None, str(value.get("error") or "not scored")
    return _metric(run, name, value), None


_PARAMS: dict[str, int | None] = {}  # parameters per graph hash (a class's runs mostly share the starter's graph)


def _params(store: RunStore, run: dict) -> int | None:
    """A run's parameter count, computed once per graph (:func:`builder.runs.store.graph_hash`) and process."""
    key = run.get("graph_hash")
    if key and key in _PARAMS:
        return _PARAMS[key]
    try:
        value: int | None = store.get(run["id"]).params  # a listed record carries no project or environment
    except LayerLabError:
        value = None
    if key:
        if len(_PARAMS) > 4096:
            _PARAMS.clear()
        _PARAMS[key] = value
    return value


def class_runs(store: RunStore, cls: dict, limit: int = 200, *, scorer: HoldoutScorer | None = None) -> list[dict]:
    """The runs recorded for the class (:func:`class_for`) that the store's actor may read (its teacher: every
    member's), newest first: ``owner``, ``member`` (its number in the class), ``id``, ``name``,
    ``status``, ``epochs``, ``best`` (best validation metric), ``test`` (the class metric on the held-out
    split as ``scorer`` measures it: :func:`holdout_result`), ``test_error`` (its one line when scoring failed),
    ``params`` and ``time_s`` (the time it ran: :func:`builder.runs.summary.duration_s` of its record). One query
    per member and two per run (its record, its epochs); parameters are counted once per graph."""
    members = {m: i + 1 for i, m in enumerate(cls.get("members", []))}
    rows = []
    # by member: a scorer runs one person's models per child process (builder.jobs.probe), so each starts once
    for run in sorted(store.list_runs(class_id=cls["id"], limit=limit * max(1, len(members))), key=owner_of):
        owner = owner_of(run)
        if owner not in members:
            continue
        try:
            best = best_epoch(store.metrics(run["id"], "epoch"))
        except LayerLabError:
            best = {}
        # the record: its running clock (a list row has no environment, and its start and finish stamps are whole
        # seconds with stopped time in them: a 0.3 s run read "0.0s", a 1.1 s one "2.0s") and a scaled target's
        # std (to show its errors in its units)
        with contextlib.suppress(LayerLabError):
            full = store.get(run["id"])
            run = {**run, "dataset_info": full.dataset_info, "environment": full.environment}
        test, error = holdout_result(store, cls, run, scorer)
        rows.append({"owner": owner, "member": members[owner], "id": run["id"], "name": run.get("name"),
                     "status": run["status"], "epochs": run.get("epochs_done"),
                     "best": None if best.get("val_metric") is None else
                     _metric(run, str(best.get("metric_name")), best["val_metric"]),
                     "metric_name": best.get("metric_name"),
                     "test": test, "test_error": error, "params": _params(store, run),
                     "time_s": duration_s(run), "created_at": run.get("created_at")})
    return sorted(rows, key=lambda r: str(r.get("created_at") or ""), reverse=True)


def leaderboard(store: RunStore, cls: dict, rows: list[dict] | None = None, *,
                scorer: HoldoutScorer | None = None) -> list[dict]:
    """Each member's best finished run by the class metric on the held-out test split (one row per member,
    best first; lower is better for a loss or an error, :data:`~builder.training.metrics_units.LOWER_IS_BETTER`),
    with its ``rank``. ``rows``: :func:`class_runs` when
    the caller has them already (else they are read with ``scorer``)."""
    name = cls.get("metric", "accuracy")
    sign = 1.0 if name in LOWER_IS_BETTER else -1.0
    best: dict[str, dict] = {}
    for row in class_runs(store, cls, scorer=scorer) if rows is None else rows:
        if row["status"] != "finished" or row["test"] is None:
            continue
        cur = best.get(row["owner"])
        if cur is None or sign * row["test"] < sign * cur["test"]:
            best[row["owner"]] = row
    ranked = sorted(best.values(), key=lambda r: sign * r["test"])
    return [{**r, "rank": i + 1} for i, r in enumerate(ranked)]


def member_label(cls: dict, owner: str, workspace: str | Path | None = None) -> str:
    """How the teacher's page names a member: a signed-in user's name, else ``student N`` (with ``workspace``,
    after the display name the member chose: ``Ann B. (student 3)``); someone no longer a member is ``a former
    member`` (an anonymous id is a key: it is never shown)."""
    if owner.startswith("user:"):
        return owner.split(":", 1)[1]
    members = cls.get("members", [])
    if owner not in members:
        return "a former member"
    chosen = display_name(workspace, owner) if workspace is not None else None
    return f"{chosen} (student {members.index(owner) + 1})" if chosen else f"student {members.index(owner) + 1}"


__all__ = ["ClassError", "list_classes", "get_class", "create_class", "normal_code", "join_class", "post_starter",
           "update_class", "delete_class", "holdout_score", "holdout_result", "HoldoutScorer", "starter_project", "students_of", "class_runs",
           "actor_for", "class_for", "CLASS_KEY",
           "leaderboard", "member_label"]


def __getattr__(name: str):  # evaluate_holdout moved up to builder.interpret.run_views (builder/_moved.py)
    return moved_name(__name__, name)
