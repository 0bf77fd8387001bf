"""Who may do what: the one authorisation policy of LayerLab, asked by the run store, jobs, classes, studies,
uploads and every page or CLI verb (deny by default).

An :class:`Actor` is resolved once at a door (a browser session, the CLI, a job process) with its roles: the
owner id, admin, the students it teaches, the classes it belongs to, shared mode. :func:`may` answers
``may(actor, action, resource)``; :func:`check` raises :class:`~builder.errors.AccessDenied` worded as "no run X
of yours", the same words as for an id that does not exist, so a refusal is no oracle. The rules:

- an owner does everything to its own runs, studies, uploads, projects and classes it teaches;
- shared mode (``LAYERLAB_SHARED_RUNS=1``): everyone reads every run (never controls another's);
- a teacher reads its students' runs and may ``stop`` (only) their jobs (:data:`TEACHER_ACTIONS`), and deletes
  the runs recorded for a class it teaches (``delete_class_run``);
- an admin may ``stop`` or ``delete`` anyone's run and delete anyone's data (:data:`ADMIN_ACTIONS`); it reads
  nobody's runs; the CLI's ``local`` user is an admin;
- a class member trains for the class and opens its starter;
- an actor narrowed to one owner (:meth:`Actor.only_of`: a model probe's child running that person's models)
  reaches that owner's things alone, by the rules above;
- :data:`SYSTEM` (a job process running its own run, a server-wide sweep) is made only in code, never at a door.

>>> ann, bob = Actor("user:ann"), Actor("user:bob")
>>> run = {"id": "20261121-104000-ab12cd", "owner": "user:ann"}
>>> may(ann, "read", run), may(bob, "read", run), may(Actor("user:bob", shared=True), "read", run)
(True, False, True)
>>> teacher = Actor("user:t", students=frozenset({"user:ann"}), teaching=frozenset({"c1"}))
>>> may(teacher, "stop", run), may(teacher, "stop", {**run, "class_id": "c1"})  # only what was made for the class
(False, True)
>>> check(bob, "read", run)
Traceback (most recent call last):
...
builder.errors.AccessDenied: no run '20261121-104000-ab12cd' of yours; received: run id '20261121-104000-ab12cd'. Fix: pick one of your runs (`layerlab runs list` or the Runs page)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from builder.errors import AccessDenied

LOCAL_OWNER = "local"  # the owner of runs and studies recorded by the CLI (and of rows older than owners)
ENV_SHARED = "LAYERLAB_SHARED_RUNS"

READ, CONTROL, STOP, DELETE = "read", "control", "stop", "delete"
DELETE_DATA, DELETE_CLASS_RUN = "delete_data", "delete_class_run"
TRAIN_FOR, TEACH = "train_for", "teach"
OVERSEE = "oversee"  # the server-wide views: every job, every owner's disk use (admins only)
CONFIGURE = "configure"  # the server's settings: the run database, the model library's folder (admins only)
ACTIONS = (READ, CONTROL, STOP, DELETE, DELETE_DATA, DELETE_CLASS_RUN, TRAIN_FOR, TEACH, OVERSEE, CONFIGURE)
"""``read`` a run (its row, curves, files, weights; use it as ``init_from``/``teacher``; export it); ``control``
it (pause, resume, continue; a study: resume, add trials, read by name); ``stop`` or ``delete`` it;
``delete_data`` (all an owner keeps); ``delete_class_run`` (a run recorded for a class); ``train_for`` a class
(record runs for it, open its starter); ``teach`` a class (post starters, change, delete it); ``oversee`` and
``configure`` the server (:data:`SERVER`)."""
TEACHER_ACTIONS = (STOP,)  # what a teacher may do to a student's class run besides reading it
ADMIN_ACTIONS = (STOP, DELETE, DELETE_DATA)  # what an admin may do to anyone's (never pause, resume or continue)
KINDS = ("run", "study", "upload", "project", "class", "owner", "server")


def owner_of(record: Mapping[str, Any] | None) -> str:
    """The owner of a run (or a study's settings): its ``owner``, :data:`LOCAL_OWNER` when none is recorded.

    >>> owner_of({"owner": "user:ann"}), owner_of({}), owner_of(None)
    ('user:ann', 'local', 'local')
    """
    return str((record or {}).get("owner") or LOCAL_OWNER)


def shared_runs() -> bool:
    """``LAYERLAB_SHARED_RUNS=1`` (or true/yes): everyone reads every run, read-only for runs of others."""
    return os.environ.get(ENV_SHARED, "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Actor:
    """Who asks, with the roles resolved at the door (:func:`builder.runs.classes.actor_for` for a server
    session; :meth:`local` for the CLI; :meth:`of_job` in a job process)."""

    owner: str
    admin: bool = False
    students: frozenset[str] = frozenset()  # members of the classes this actor teaches
    teaching: frozenset[str] = frozenset()  # ids of the classes this actor teaches
    shared: bool = False  # shared mode: reads every run
    system: bool = field(default=False, repr=False)  # trusted code (SYSTEM); never made at a door
    only: str | None = None  # reaches this owner's things alone (a model probe's child running that person's models)

    @classmethod
    def local(cls) -> Actor:
        """The CLI's user at the server's shell: owner ``local``, an admin (stops and deletes anyone's runs,
        reads only its own unless shared mode is on)."""
        return cls(LOCAL_OWNER, admin=True, shared=shared_runs())

    @classmethod
    def of_job(cls, spec_owner: str | None) -> Actor:
        """The actor a job process acts for: the owner that submitted it (carried in its job spec), reading
        runs as that owner does (its own; everyone's in shared mode)."""
        return cls(str(spec_owner or LOCAL_OWNER), shared=shared_runs())

    def with_shared(self, shared: bool) -> Actor:
        """A copy in or out of shared mode."""
        return replace(self, shared=shared)

    def only_of(self, owner: str) -> Actor:
        """This actor narrowed to ``owner``'s things: what a process running ``owner``'s models alone answers as (a
        teacher's model probe scoring one student: a model that took its child over reads no other student's runs
        through it). Its own rules still apply within them.

        >>> t = Actor("user:t", students=frozenset({"user:ann", "user:bob"}), teaching=frozenset({"c1"}))
        >>> ann, bob = ({"id": "r", "owner": o, "class_id": "c1"} for o in ("user:ann", "user:bob"))
        >>> may(t.only_of("user:ann"), "read", ann), may(t.only_of("user:ann"), "read", bob), may(t, "read", bob)
        (True, False, True)
        """
        return replace(self, only=owner)


SYSTEM = Actor("<system>", system=True)
"""Trusted library code: the job process writing its own run, mark-interrupted, the admin's server-wide sums.
Pages and CLI verbs never use it (tests/test_access.py checks)."""


@dataclass(frozen=True)
class Resource:
    """A thing an actor asks about: its ``kind`` (:data:`KINDS`), ``owner``, ``id``, for a class its
    ``members``, for a run the class it was recorded for (``class_id``)."""

    kind: str
    owner: str
    id: str = ""
    members: frozenset[str] = frozenset()
    class_id: str | None = None

    @classmethod
    def run(cls, row: Mapping[str, Any]) -> Resource:
        """A run row of the store (its ``id``, ``owner``, ``class_id``)."""
        return cls("run", owner_of(row), str(row.get("id") or ""), class_id=row.get("class_id") or None)

    @classmethod
    def klass(cls, record: Mapping[str, Any]) -> Resource:
        """A class record (:mod:`builder.runs.classes`): owned by its teacher, with its members."""
        return cls("class", str(record.get("teacher") or ""), str(record.get("id") or ""),
                   members=frozenset(record.get("members") or ()))


SERVER = Resource("server", "")
"""The server itself, for the server-wide views (:data:`OVERSEE`)."""


def _resource(resource: Resource | Mapping[str, Any]) -> Resource:
    return resource if isinstance(resource, Resource) else Resource.run(resource)


def may(actor: Actor, action: str, resource: Resource | Mapping[str, Any]) -> bool:
    """Whether ``actor`` may do ``action`` (:data:`ACTIONS`) to ``resource`` (a :class:`Resource` or a run row).
    Anything not allowed by a rule below is refused."""
    r = _resource(resource)
    if actor.system:
        return True
    if actor.only is not None and r.owner != actor.only:  # narrowed to one owner's things (Actor.only_of)
        return False
    if action not in ACTIONS or r.kind not in KINDS:
        return False
    if r.kind == "server" or action in (OVERSEE, CONFIGURE):
        return action in (OVERSEE, CONFIGURE) and r.kind == "server" and actor.admin
    if r.kind == "class":
        if action == TEACH:
            return actor.owner == r.owner
        if action == DELETE:
            return actor.owner == r.owner or actor.admin
        if action in (TRAIN_FOR, READ):
            return actor.owner == r.owner or actor.owner in r.members
        return False
    if action in (TRAIN_FOR, TEACH):
        return False
    if r.owner == actor.owner:
        return True
    if actor.admin and action in ADMIN_ACTIONS:
        return r.kind == ("owner" if action == DELETE_DATA else "run")
    if r.kind != "run":
        return False
    # a teacher reaches the runs its students made for its classes, never their other runs
    class_run = r.class_id is not None and r.class_id in actor.teaching and r.owner in actor.students
    if action == READ:
        return actor.shared or class_run
    if action in TEACHER_ACTIONS:
        return class_run
    if action == DELETE_CLASS_RUN:
        return actor.admin or class_run
    return False


def refusal(resource: Resource | Mapping[str, Any] | str, kind: str = "run") -> AccessDenied:
    """The one refusal message: "no run X of yours", the same for a forbidden and an unknown id.

    >>> str(refusal("2026", "run"))
    "no run '2026' of yours; received: run id '2026'. Fix: pick one of your runs (`layerlab runs list` or the Runs page)"
    """
    if isinstance(resource, str):
        rid = resource
    else:
        r = _resource(resource)
        rid, kind = r.id, r.kind
    rid = str(rid)[:80]
    if kind == "server":
        return AccessDenied("only an admin sees every job and every owner's disk use, or changes the server's "
                            "settings; received: a request by someone who is not an admin. Fix: ask the server's "
                            "admin (LAYERLAB_ADMINS)")
    if kind == "owner":
        return AccessDenied(f"only the owner itself or an admin sees or deletes an owner's data; received: owner "
                            f"{rid!r}. Fix: ask about your own (the Server page), or ask the server's admin")
    where = {"run": " (`layerlab runs list` or the Runs page)", "study": " (the Train page's Search mode lists them)",
             "class": " (the Classes page)"}.get(kind, "")
    return AccessDenied(f"no {kind} {rid!r} of yours; received: {kind} id {rid!r}. Fix: pick one of your "
                        f"{'classes' if kind == 'class' else kind + 's'}{where}")


def check_acting(actor: Actor | None, owner: str) -> str:
    """``owner``, when a call given a store of ``actor`` may act for it: the actor itself, or trusted code
    (:data:`SYSTEM`, or no actor: no store) for anyone. A caller never acts for someone it names: it records runs,
    reads uploads, stops jobs and deletes data as its store's actor.

    >>> check_acting(Actor("user:ann"), "user:ann"), check_acting(SYSTEM, "user:bob")
    ('user:ann', 'user:bob')

    Raises:
        AccessDenied: ``owner`` is someone else.
    """
    if actor is None or actor.system or owner == actor.owner:
        return owner
    raise AccessDenied("a call acts for the actor of the run store it is given; received: another owner than the "
                       "store's actor. Fix: open the store as that owner (RunStore.as_actor)")


def check(actor: Actor, action: str, resource: Resource | Mapping[str, Any]) -> None:
    """:func:`may`, raising :func:`refusal` when it says no."""
    if not may(actor, action, resource):
        raise refusal(resource)


def controlled_run(store: Any, run_id: str) -> Any:
    """The run ``run_id`` of ``store`` (a :class:`~builder.runs.store.RunStore`) if its actor may write into it:
    resume it, record a job's training into it, prune into it, keep a report or an export in its folder. Reading is
    not enough (shared mode reads everyone's runs, a teacher its students' class runs): :data:`CONTROL` is the
    owner's alone, and a job process acts as the owner that submitted it.

    The check is the store's write accessor's (``store.folder(run_id, write=True)``), the one door to a run's folder
    for writers: this is the run row behind it, for callers that also write the row.

    Raises:
        AccessDenied: not a run the actor may read or control, worded as an unknown id ("no run X of yours").
    """
    run = store.get(run_id)  # exact id, a run the actor may read (else "no run X of yours")
    store.folder(run["id"], write=True)  # CONTROL, asked by the accessor
    return run


__all__ = ["Actor", "Resource", "SYSTEM", "may", "check", "controlled_run", "refusal", "owner_of", "shared_runs", "LOCAL_OWNER",
           "ENV_SHARED", "ACTIONS", "TEACHER_ACTIONS", "ADMIN_ACTIONS", "KINDS", "READ", "CONTROL", "STOP", "DELETE",
           "DELETE_DATA", "DELETE_CLASS_RUN", "TRAIN_FOR", "TEACH", "OVERSEE", "CONFIGURE", "SERVER", "check_acting"]
