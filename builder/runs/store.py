"""The run store: one database (SQLite in WAL mode by default, PostgreSQL by ``LAYERLAB_DB_URL``: builder.runs.db)
plus one folder per run. It stores; training lives in :mod:`builder.runs.pipeline`.

Layout of a workspace (default ``~/.layerlab``; ``LAYERLAB_WORKSPACE`` or the CLI's ``--workspace``
override it)::

    layerlab.db                      runs and metrics tables
    runs/<run id>/                   one folder per run; its files are named by builder.training.run_folder.RunFolder

Every call takes a connection from the process's pool (:func:`builder.runs.db.engine`), so threads and processes
can write at once (SQLite serialises the writers; WAL lets readers continue; a workspace on a network file system
gets a rollback journal instead, :data:`NETWORK_FILESYSTEMS`); a training loop holds one for its thread while it
runs (:meth:`RunStore.hold`): closing the last connection of a process makes SQLite checkpoint the WAL, 3-20 ms per
write on this machine, more than a small model's epoch spends on its own work. A run left ``running`` by a killed
process is marked ``interrupted`` when a store is opened, and :func:`resume_run` continues it from its last
checkpoint. Example::

    # not a doctest (needs files or training): run by tests/runs/test_runs.py::test_run_training_records_everything
    store = RunStore(tmp_path, actor=Actor("user:ann"))
    result = run_training(load_template("mlp"), "moons", {"epochs": 5}, store=store)
    store.get(result.run_id)["status"]
    # -> 'finished'

Every call that returns a run, its curves, files, weights or checkpoint, lists runs or deletes one asks
:func:`builder.data.access.check` for the store's actor (``RunStore(ws, actor=...)``, or ``actor=`` on the call): a
store opened without one refuses (deny by default). Ids are matched exactly; ``get(..., prefix=True)`` (an id
typed on the command line or a page) also takes a unique prefix among the runs the actor may read. Writing into a
run's folder needs more than reading it: ``folder(run_id, write=True)`` asks for ``control``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.data.access import (
    CONTROL,
    DELETE,
    DELETE_CLASS_RUN,
    LOCAL_OWNER,
    READ,
    STOP,
    SYSTEM,
    Actor,
    check,
    may,
    refusal,
)
from builder.data.cache import ENV_WORKSPACE, workspace_root
from builder.data.disk import on_full_disk, write_atomic
from builder.errors import AccessDenied, RunStoreError
from builder.escape import add_server_folder, hide_paths, resolves_inside, shown_uri
from builder.graph.edit import graph_hash
from builder.graph.project import Project, load_project
from builder.runs import db as _db
from builder.runs import run_time as _run_time
from builder.runs.owners import check_sees
from builder.runs.record import STOPPED_BY, Run
from builder.training.config import TrainConfig
from builder.training.events import typed_event
from builder.training.run_folder import RunFolder
from builder.training.run_status import (
    CREATED,
    LIVE,
    RunStatus,
    host_name,
    is_final,
    is_live,
    is_orphaned,
    pid_alive,
    stale_s,
)

DB_NAME = "layerlab.db"
DB_WHAT = "the run database"  # in a full disk's message (builder.data.disk)
ID_TRIES = 8  # new ids drawn for a run whose first id's folder exists (24 random bits per second)
_LIVE_SQL = ", ".join(f"'{s.value}'" for s in sorted(LIVE))  # for "status IN (...)" in SQL

RUN_ID_RE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # what _new_id makes, e.g. 20261121-104000-ab12cd
_PREFIX_RE = re.compile(r"[0-9a-f-]{1,22}")
_ID_HELP = ("a run id is 8 digits, 6 digits and 6 hex digits joined by dashes (e.g. 20261121-104000-ab12cd). "
            "Fix: copy one from `layerlab runs list`")
_JSON_COLS = ("project", "dataset_options", "dataset_info", "config", "final_metrics", "test_metrics",
              "environment", "tags")
# columns added after the first release (class_id: the class a member trained the run for); migrations add them
_ADDED_COLUMNS = ("owner", "tags", "control", "queued_at", "graph_hash", "class_id", "beat_at", "placed_at")
_SYSTEM_COLUMNS = {"owner", "class_id", "control", "queued_at", "graph_hash", "beat_at", "placed_at", "pid", "host",
                   "id", "created_at", "started_at", "updated_at", "finished_at"}  # times: what GPU time counts
CONTROL_ACTIONS = ("pause", "resume", "stop")


def default_workspace(flag: str | Path | None = None) -> Path:
    """The workspace folder (:func:`builder.data.cache.workspace_root`: ``flag``, else ``$LAYERLAB_WORKSPACE``
    resolved once, else ``~/.layerlab``), named to :func:`hide_paths`."""
    ws = workspace_root(flag)
    add_server_folder(ws)
    return ws


NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "lustre", "gpfs", "afs", "9p",
                                  "beegfs", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "fuse.rclone",
                                  "fuse.cephfs", "fuse.juicefs"})
"""File systems whose files other hosts may open too: SQLite's write-ahead log needs memory shared by every
process that opens the database, which these cannot give across hosts (https://sqlite.org/wal.html), so a run
database on one uses a rollback journal (docs/scale-out.md: how a cluster shares its work)."""


def filesystem_type(path: str | Path, mountinfo: str | None = None) -> str | None:
    r"""The type of the file system that holds ``path`` (the deepest mount point above it in
    ``/proc/self/mountinfo``, or in ``mountinfo``); None where that cannot be read.

    >>> filesystem_type("/data/ws", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    ...                 "40 22 0:50 / /data rw,relatime - nfs4 srv:/export rw\n")
    'nfs4'
    >>> filesystem_type("/home/ann", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 0:50 / /data rw - nfs4 s:/e rw\n")
    'ext4'
    """
    try:
        text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
        target = os.path.realpath(path) if mountinfo is None else os.path.normpath(str(path))
    except OSError:
        return None
    best, kind = -1, None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount = fields[4].replace(r"\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > best:
            best, kind = len(mount), right.split()[0]
    return kind


def _now(precise: bool = False) -> str:
    """Now in UTC as ISO text, to the second; ``precise``: to the microsecond (a run's ``created_at``, which lists
    runs newest first, so that two runs made in one second keep their order)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds" if precise else "seconds")


def _new_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def check_run_id(run_id: Any) -> str:
    """``run_id`` when it has the exact format of an id this store makes; else RunStoreError.

    Every id that becomes part of a path goes through here, whether a user typed it or it was read from
    the database (a crafted row such as ``../../x`` never reaches the file system).
    """
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise RunStoreError(f"invalid run id; received: {str(run_id)[:80]!r}. {_ID_HELP}")
    return run_id


def _dumps(obj: Any) -> str:
    def default(o):
        if isinstance(o, Path):
            return str(o)
        if hasattr(o, "tolist"):  # torch tensors, numpy arrays and scalars
            return o.tolist()
        return str(o)
    return json.dumps(obj, default=default, allow_nan=True)


class RunStore:
    """Runs and their curves in ``<workspace>/layerlab.db``; marks dead runs interrupted on open.

    Raises:
        RunStoreError: the workspace cannot be created or the database cannot be opened.
    """

    def __init__(self, workspace: str | Path | None = None, *, actor: Actor | None = None,
                 mark_interrupted: bool = True, db_url: str | None = None):
        self.workspace = default_workspace(workspace)
        self.actor = actor  # who reads through this store (builder.data.access); None refuses every checked call
        try:
            with on_full_disk(self.workspace, "the workspace"):
                (self.workspace / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunStoreError(f"cannot create workspace {self.workspace}: {e.strerror}") from None
        # given (the warm launcher records a forked job's end in the database its request named), else
        # LAYERLAB_DB_URL, else the server config's, else <workspace>/layerlab.db
        self.db_url = db_url or _db.database_url(self.workspace)
        self.db_path = self.workspace / DB_NAME if _db.is_sqlite(self.db_url) else self.workspace
        self._held = threading.local()  # a connection a thread keeps between calls (hold/release)
        self._writable: set[tuple[str, bool]] = set()  # runs whose row the actor was found to write (_controls)
        self.for_pid: int | None = None  # the process a row records as its own (a job's broker: the job's pid)
        self.filesystem = filesystem_type(self.workspace)
        self.journal = "DELETE" if self.filesystem in NETWORK_FILESYSTEMS else "WAL"  # see NETWORK_FILESYSTEMS
        self._engine = _db.engine(self.db_url, self.journal)
        with on_full_disk(self.db_path, DB_WHAT), self._errors():  # once per database and process
            _db.ensure_schema(self.db_url, self.journal, self.workspace)
        if mark_interrupted:
            self.mark_interrupted()

    def as_actor(self, actor: Actor) -> RunStore:
        """The same workspace read by another actor (no reopening: the schema is ready)."""
        other = object.__new__(RunStore)
        other.__dict__.update(self.__dict__)
        other._held, other.actor, other._writable = threading.local(), actor, set()
        return other

    def who(self, actor: Actor | None = None) -> Actor:
        """The actor of a call: ``actor``, else the store's; AccessDenied when there is none (deny by default)."""
        who = actor if actor is not None else self.actor
        if not isinstance(who, Actor):
            raise AccessDenied("a run store answers only for an actor; received: none. Fix: open it as "
                               "RunStore(workspace, actor=...) or pass actor= (builder.data.access.Actor)")
        return who

    # ---- plumbing
    def _conn(self) -> _db.Closing:
        held = getattr(self._held, "conn", None)
        if held is not None and self._held.pid == os.getpid():
            return _db.Closing(held, close=False)
        with on_full_disk(self.db_path, DB_WHAT):  # on a full disk a WAL database cannot even be opened
            try:
                c = self._engine.connect()
            except _db.sa.exc.DBAPIError as e:
                raise (_db.unreachable(e, self.db_url)
                       or RunStoreError(f"cannot open run database {_db.redact(self.db_url)}: {e.orig}")) from None
        return _db.Closing(c)

    def _errors(self) -> Iterator[None]:
        """Database errors as RunStoreError (a server that cannot be reached says so; a full disk passes)."""
        return _db_errors(self.db_url)

    def hold(self) -> None:
        """Keep one connection open for the calling thread until :meth:`release` (a training loop's store writes,
        :class:`RunLogger`). Not across a fork: a child process opens its own."""
        if getattr(self._held, "conn", None) is None or self._held.pid != os.getpid():
            self._held.conn = self._conn().c
            self._held.pid = os.getpid()

    def release(self) -> None:
        """Close the calling thread's held connection (nothing when none is held)."""
        c, self._held.conn = getattr(self._held, "conn", None), None
        if c is not None and self._held.pid == os.getpid():
            c.close()

    def _write(self, sql: str, args: Iterable = (), many: bool = False) -> int:
        return self._write_all([(sql, args, many)])[0]

    def _write_all(self, statements: list[tuple[str, Iterable, bool]]) -> list[int]:
        """Run ``(sql, args, many)`` statements in one transaction (retried while another process holds the
        lock); their row counts."""
        last: Exception | None = None
        for attempt in range(20):
            try:
                with on_full_disk(self.db_path, DB_WHAT, lambda: _approx_bytes(statements)), self._conn() as c, \
                        _db.write(c):
                    return [(c.execute(_db.statement(sql), [_db.params(a) for a in args]) if many
                             else _exec(c, sql, args)).rowcount for sql, args, many in statements]
            except _db.sa.exc.OperationalError as e:
                if not _db.is_busy(e):
                    raise _db.database_error(e, self.db_url) from None
                last = e
                time.sleep(0.05 * (attempt + 1))
            except _db.sa.exc.DBAPIError as e:
                raise _db.database_error(e, self.db_url) from None
        raise RunStoreError(f"run database stayed locked: {last}")

    def _read(self, sql: str, args: Iterable = ()) -> list[_db.sa.RowMapping]:
        with on_full_disk(self.db_path, DB_WHAT), self._errors(), self._conn() as c:
            try:
                return _exec(c, sql, args).mappings().all()
            finally:
                c.rollback()  # ends the read (a held connection must not keep an old snapshot)

    def _run_dir(self, run_id: str) -> Path:
        return self._safe_path(self.workspace / "runs" / check_run_id(run_id))

    def run_dir(self, run_id: str, *, actor: Actor | None = None, write: bool = False) -> Path:
        """The folder of a run the actor may read, as a path (its files are named by :meth:`folder`); with ``write``
        one it controls (:data:`~builder.data.access.CONTROL`: reading, as shared mode or a teacher does, is not
        enough). The one door to a run's folder for anything that writes into it (tests/runs/test_run_writes.py).

        Raises:
            RunStoreError: an id of the wrong format, a folder that resolves outside the workspace (e.g. a
                symlink); AccessDenied: no such run of the actor's (to read, or with ``write`` to control).
        """
        who = self.who(actor)
        if not who.system:
            run = self.get(run_id, actor=who)
            if write:
                check(who, CONTROL, run)
        return self._run_dir(run_id)

    def folder(self, run_id: str, *, actor: Actor | None = None, write: bool = False) -> RunFolder:
        """The folder of a run the actor may read (with ``write``: control), with its named files (checkpoint,
        weights, job spec, model card, exports, ...); only a ``write`` one is :attr:`RunFolder.writable`. Raises as
        :meth:`run_dir`."""
        return RunFolder(self.run_dir(run_id, actor=actor, write=write), writable=write)

    def job_spec(self, run_id: str, *, actor: Actor | None = None) -> dict | None:
        """The job spec a run was started with (``job.json``), or None for a run without one (a CLI run); its
        tracker's credentials as ``***`` for anyone but the run's owner (a teacher, shared mode, an admin read an
        owner's ``https://user:password@...`` whole)."""
        spec, who = self.folder(run_id, actor=actor).read_job_spec(), actor or self.who()
        if isinstance(spec, dict) and isinstance(spec.get("tracking"), str) and not who.system \
                and str(self._row(run_id).get("owner") or LOCAL_OWNER) != who.owner:
            spec = {**spec, "tracking": shown_uri(spec["tracking"])}
        return spec

    def _safe_path(self, path: Path) -> Path:
        """``path`` after checking that it resolves inside ``<workspace>/runs``. Raises RunStoreError."""
        root = (self.workspace / "runs").resolve()
        if not resolves_inside(path, root):
            raise RunStoreError(f"path outside the workspace; received: {str(path)[:200]!r} (resolves outside "
                                f"{root}). Fix: remove the link or the crafted run")
        return path

    # ---- runs
    def create_run(self, project: Project | dict, dataset_name: str, dataset_options: dict | None,
                   config: TrainConfig | dict, *, name: str | None = None, dataset_info: dict | None = None,
                   parent_id: str | None = None, owner: str = "local", tags: dict | None = None,
                   class_id: str | None = None, job_spec: dict | None = None, status: str = RunStatus.QUEUED,
                   files: Callable[[RunFolder], Any] | None = None) -> str:
        """Insert a ``queued`` run owned by ``owner`` (made for class ``class_id``, already checked by the caller:
        :func:`builder.runs.classes.check_class_for`) and create its folder, with ``job_spec`` as its ``job.json``
        (:func:`builder.jobs.queue.submit`; its digest recorded); returns the run id. An import is inserted ``imported``
        once ``files`` wrote its files into the folder. All or nothing: a full disk leaves neither a folder nor a
        row (an import's failed copy left a queued run, counted against its owner's queue)."""
        import torch  # lazy: heavy (torch)

        project, status = load_project(project), _checked_status(status)
        if status not in CREATED:
            raise RunStoreError(f"a new run is queued or imported; received: {status}")
        cfg = TrainConfig.from_dict(config)
        env = {"torch": torch.__version__, "python": ".".join(map(str, __import__("sys").version_info[:3])),
               "platform": __import__("platform").platform(), "host": host_name()}
        for _ in range(ID_TRIES):  # an id whose folder is there is another run's: never written into nor removed
            run_id = _new_id()
            folder = RunFolder(self._run_dir(run_id), writable=True)  # a new run: the creator's
            try:  # a full disk: one line, and no run folder left without its row (only one made here is removed)
                with on_full_disk(folder.path, "a new run's folder", needed=len(project.to_json()) * 2):
                    if not folder.claim():
                        continue
                    write_atomic(folder.project, project.to_json(), "the run's project")
                    if job_spec is not None:  # its digest: what a resume may trust (builder.jobs.queue.submit)
                        env[_run_time.SPEC_DIGEST] = folder.write_job_spec(job_spec)
                if files is not None:
                    files(folder)
                self._write("INSERT INTO runs (id, name, status, created_at, updated_at, pid, host, project, "
                            "dataset_name, dataset_options, dataset_info, config, parent_id, environment, owner, tags, "
                            "queued_at, graph_hash, class_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                            "?, ?, ?, ?, ?)",
                            (run_id, name or project.name, status, _now(precise=True), _now(), self.for_pid or os.getpid(),
                             host_name(), project.to_json(indent=None), dataset_name, _dumps(dataset_options or {}),
                             _dumps(dataset_info or {}), _dumps(cfg.model_dump()), parent_id, _dumps(env),
                             str(owner), _dumps(dict(tags or {})), time.time(), graph_hash(project.graph), class_id))
            except BaseException:
                shutil.rmtree(folder.path, ignore_errors=True)
                raise
            return run_id
        raise RunStoreError(f"no free run id in {ID_TRIES} tries. Fix: try again in a second")

    def _controls(self, run_ids: str | Iterable[str], *, stop: bool = False) -> None:
        """Refuse a write to a run's row that the store's actor may not make: its owner writes it (``control``);
        with ``stop``, a stop request and its tag also come from who may stop it (the class's teacher, an admin);
        the system writes any. AccessDenied, worded as for an unknown run; checked once per run and store."""
        who = self.who()
        for rid in [run_ids] if isinstance(run_ids, str) else run_ids:
            if who.system or (rid, stop) in self._writable:
                continue
            row = self._row(rid)
            if not (may(who, CONTROL, row) or (stop and may(who, STOP, row))):
                raise refusal(rid)
            self._writable.add((rid, stop))

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run (JSON columns encoded); ``project`` also refreshes ``graph_hash``. Its owner's (or
        the system's); who stops another's run writes only the tag saying so (:data:`~builder.runs.record.STOPPED_BY`)."""
        def others(tags: dict) -> dict:
            return {k: v for k, v in tags.items() if k != STOPPED_BY}

        tags = fields.get("tags")
        self._controls(run_id, stop=set(fields) == {"tags"} and isinstance(tags, dict) and not self.who().system
                       and others(tags) == others(self._row(run_id).tags))
        self._columns(fields)
        if "environment" in fields:
            fields["environment"] = self._environment(self._row(run_id).get("environment") or {}, fields["environment"])
        if "project" in fields:
            project = load_project(fields["project"])
            fields["project"] = project.to_json(indent=None)
            fields["graph_hash"] = graph_hash(project.graph)
        if not fields:
            return
        if isinstance(fields.get("message"), str):  # as update_status: no server folder in a message
            fields["message"] = hide_paths(fields["message"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        args = [_dumps(v) if k in _JSON_COLS and k != "project" else v for k, v in fields.items()]
        if self._write(f"UPDATE runs SET {sets}, updated_at = ? WHERE id = ?", [*args, _now(), run_id]) == 0:
            raise RunStoreError(f"no run {run_id!r}")

    def _columns(self, fields: Mapping[str, Any]) -> None:
        """Refuse names no run column has, and (but for the system) those LayerLab sets: owner, class, process, queue."""
        if unknown := set(fields) - _COLUMNS:
            raise RunStoreError(f"no run column(s) {', '.join(sorted(map(str, unknown)))[:200]}")
        if (kept := set(fields) & _SYSTEM_COLUMNS) and not self.who().system:
            raise AccessDenied(f"a run's {', '.join(sorted(kept))} is LayerLab's to set; received: a change of it")

    # ---- job control and scheduling (see builder.jobs.queue)
    def set_control(self, run_id: str, action: str | None) -> None:
        """Request ``pause``, ``resume`` or ``stop`` of a job (None clears); its process polls this column."""
        if action is not None and action not in CONTROL_ACTIONS:
            raise RunStoreError(f"unknown control action {action!r}; use one of {', '.join(CONTROL_ACTIONS)}")
        self._controls(run_id, stop=action == "stop")
        if self._write("UPDATE runs SET control = ? WHERE id = ?", (action, run_id)) == 0:
            raise RunStoreError(f"no run {run_id!r}")

    def take_control(self, run_id: str, *, peek: bool = False) -> str | None:
        """The pending control action of a run, cleared atomically (None when there is none; ``peek``: left)."""
        self._controls(run_id)
        for _ in range(20):
            rows = self._read("SELECT control FROM runs WHERE id = ?", (run_id,))
            action = rows[0]["control"] if rows else None
            if action is None or peek:
                return action
            if self._write("UPDATE runs SET control = NULL WHERE id = ? AND control = ?", (run_id, action)):
                return action
        return None

    def requeue(self, run_id: str, pid: int | None = None) -> None:
        """Put a run back at the end of the queue (``queued``, control cleared) for a job process ``pid``; the GPU
        time its last job used goes into its ledger (:func:`builder.runs.run_time.closed`), which the resumed run
        keeps counting."""
        self._controls(run_id)
        now = time.time()
        env = _run_time.closed(self._row(run_id), now)
        self._write("UPDATE runs SET status = 'queued', message = '', control = NULL, queued_at = ?, pid = ?,"
                    " host = ?, updated_at = ?, finished_at = NULL, beat_at = ?, placed_at = NULL, environment = ?"
                    " WHERE id = ?", (now, pid or self.for_pid or os.getpid(), host_name(), _now(), now, _dumps(env),
                                      run_id))

    def beat(self, run_ids: Iterable[str]) -> None:
        """Write the heartbeat of live runs (one statement for all): their process, or the server that holds them
        in its queue, is alive (:func:`builder.training.run_status.is_orphaned` reads it)."""
        ids = list(run_ids)
        self._controls(ids)
        if ids:
            self._write(f"UPDATE runs SET beat_at = ? WHERE status IN ({_LIVE_SQL}) AND id IN "
                        f"({', '.join('?' * len(ids))})", [time.time(), *ids])

    def live_jobs(self) -> list[_db.sa.RowMapping]:
        """Every live run of every host (``id``, ``owner``, ``status``, ``environment`` as stored, ``queued_at``,
        ``placed_at``): what a cluster's admission counts (:func:`builder.jobs.executors.place_jobs`)."""
        return self._read(f"SELECT id, owner, status, environment, queued_at, placed_at FROM runs "
                          f"WHERE status IN ({_LIVE_SQL})")

    def mark_placed(self, run_ids: Iterable[str]) -> None:
        """Record that a cluster's scheduler took these queued runs (``runs.placed_at``; cleared by
        :meth:`requeue`)."""
        ids = list(run_ids)
        self._controls(ids)
        if ids:
            self._write(f"UPDATE runs SET placed_at = ? WHERE status = 'queued' AND id IN ({', '.join('?' * len(ids))})",
                        [time.time(), *ids])

    def _live_rows(self, c: _db.Connection) -> tuple[list[_db.sa.RowMapping], list[_db.sa.RowMapping]]:
        """(running or paused rows, queued rows in queue order) of this host whose process is alive."""
        rows = _exec(c, f"SELECT id, pid, status, queued_at FROM runs WHERE host = ? AND status IN ({_LIVE_SQL}) "
                     "ORDER BY queued_at, id", (host_name(),)).mappings().all()
        rows = [r for r in rows if pid_alive(r["pid"])]
        queued = [r for r in rows if r["status"] == RunStatus.QUEUED]
        return [r for r in rows if r["status"] != RunStatus.QUEUED], queued

    def claim_slot(self, run_id: str, limit: int) -> bool:
        """Atomically move a queued run to ``running`` when fewer than ``limit`` jobs of this host run
        and it is among the first queued; returns whether it got the slot."""
        self._controls(run_id)
        for attempt in range(20):
            try:
                with on_full_disk(self.db_path, DB_WHAT), self._errors(), self._conn() as c, \
                        _db.write(c, lock=f"slots:{host_name()}"):
                    active, queue = self._live_rows(c)
                    free = int(limit) - len(active)
                    ok = free > 0 and run_id in [r["id"] for r in queue[:free]]
                    if ok:
                        _exec(c, "UPDATE runs SET status = 'running', message = '', pid = ?, host = ?, "
                              "started_at = COALESCE(started_at, ?), updated_at = ?, beat_at = ? WHERE id = ?",
                              (self.for_pid or os.getpid(), host_name(), _now(), _now(), time.time(), run_id))
                    return ok
            except RunStoreError as e:
                if not _db.is_busy(e):
                    raise
                time.sleep(0.05 * (attempt + 1))
        return False

    def queue_position(self, run_id: str) -> int | None:
        """1-based place of a queued run the actor may read among this host's queued jobs (None: not queued)."""
        run_id = self.get(run_id)["id"]  # AccessDenied for another's run, as for an unknown one
        with self._errors(), self._conn() as c:
            try:
                _, queue = self._live_rows(c)
            finally:
                c.rollback()
        ids = [r["id"] for r in queue]
        return ids.index(run_id) + 1 if run_id in ids else None

    def set_environment(self, run_id: str, **values: Any) -> None:
        """Merge values (e.g. the resolved device) into a run's environment record (but for the system, what the GPU
        quota counts is kept: :func:`builder.runs.run_time.guarded`)."""
        self._controls(run_id)
        old = self._row(run_id).get("environment") or {}
        self._write("UPDATE runs SET environment = ? WHERE id = ?", (_dumps(self._environment(old, {**old, **values})),
                                                                     run_id))

    def _environment(self, old: Mapping[str, Any], new: Any) -> Any:
        """``new`` as the store's actor may write it over ``old`` (:func:`builder.runs.run_time.guarded`)."""
        return new if self.who().system else _run_time.guarded(old, new if isinstance(new, Mapping) else {})

    def update_status(self, run_id: str, status: str, message: str = "", **fields: Any) -> None:
        """Set a run's status (and message); ``running`` records this process's pid and start time."""
        self._controls(run_id)
        self._columns(fields)  # names go into the statement: only columns
        status = _checked_status(status)
        # a run's message is shown to its owner, teachers and admins: no server folder in it (builder.escape)
        sets, args = ["status = ?", "message = ?", "updated_at = ?"], [status, hide_paths(message), _now()]
        try:
            env = self._row(run_id).get("environment") or {}
        except (AccessDenied, RunStoreError):
            env = None  # an unknown run: refused below
        if env is not None and "environment" in fields:
            fields["environment"] = self._environment(env, fields["environment"])
        clock = _run_time.running_clock(env, status) if env is not None and "environment" not in fields else None
        if clock is not None:  # the time it ran, without the time it was paused, stopped or queued
            sets.append("environment = ?")
            args.append(_dumps({**env, **clock}))
        if status == RunStatus.RUNNING:
            sets += ["pid = ?", "host = ?", "started_at = COALESCE(started_at, ?)", "beat_at = ?"]
            args += [self.for_pid or os.getpid(), host_name(), _now(), time.time()]
        if is_final(status):  # a job's broker that held its end (builder.process.broker) names the job's process
            sets.append("finished_at = ?")  # again in the same statement: never a final status with the broker's pid
            args.append(_now())
            if self.for_pid:
                sets.append("pid = ?")
                args.append(self.for_pid)
        for k, v in fields.items():
            sets.append(f"{k} = ?")
            args.append(_dumps(v) if k in _JSON_COLS else v)
        if self._write(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", [*args, run_id]) == 0:
            raise RunStoreError(f"no run {run_id!r}")

    def log_metrics(self, run_id: str, events: dict | list[dict]) -> None:
        """Append step/epoch events (dicts with ``type``) to the metrics table."""
        self._controls(run_id)
        events = [typed_event(ev) for ev in ([events] if isinstance(events, Mapping) else list(events))
                  if isinstance(ev, Mapping)]  # a job's word: an event is a mapping of typed numbers
        # epoch extras (e.g. the decision-boundary grid, builder.interpret.boundary) are stored with the epoch
        # (one transaction: a short epoch's steps, its epoch row and the run's progress cost one commit)
        rows = [(run_id, ev.get("type", "epoch"), ev.get("step"), ev.get("epoch"),
                 _dumps({k: v for k, v in ev.items() if k != "type"})) for ev in events]
        statements: list[tuple[str, Iterable, bool]] = []
        if rows:
            statements.append(("INSERT INTO metrics (run_id, kind, step, epoch, data) VALUES (?, ?, ?, ?, ?)",
                               rows, True))
        epochs = [ev["epoch"] for ev in events if ev.get("type") == "epoch" and ev.get("epoch") is not None]
        if epochs:
            statements.append(("UPDATE runs SET epochs_done = ?, updated_at = ? WHERE id = ?",
                               (max(epochs), _now(), run_id), False))
        if statements:
            self._write_all(statements)

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop curve points logged after ``after_step`` (used when resuming from an older checkpoint)."""
        self._controls(run_id)
        self._write("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, after_step))

    def finish(self, run_id: str, status: str, final: dict | None = None, test: dict | None = None,
               message: str = "", *, project: Project | None = None) -> None:
        """Record the end of a run (final epoch metrics, test metrics) and write its model card (``project``: the
        run's project as the caller stored it, handed on so the card does not parse it again)."""
        self.update_status(run_id, status, message, final_metrics=final or {}, test_metrics=test)
        try:
            from builder.runs.modelcard import write_card  # lazy: heavy (torch)
            run = self._row(run_id)
            run = run.with_project(project) if isinstance(project, Project) else run  # else parsed from the row
            write_card(run, self.metrics(run["id"], actor=SYSTEM), self.folder(run["id"], actor=SYSTEM, write=True))
        except Exception as e:  # a model card is a convenience; never fail a run for it
            self._write("UPDATE runs SET message = ? WHERE id = ?",
                        (hide_paths(message + f" (model card not written: {e})").strip(), run_id))

    def _row(self, run_id: str) -> Run:
        """A run by exact id, unchecked: for the store's own writers (finish, environment)."""
        rows = self._read("SELECT * FROM runs WHERE id = ?", (check_run_id(run_id),))
        if not rows:
            raise refusal(run_id)
        return _record(rows[0])

    def get(self, run_id: str, *, actor: Actor | None = None, prefix: bool = False) -> Run:
        """A run the actor may read (:func:`builder.data.access.may`), as a :class:`~builder.runs.record.Run`, by exact id;
        with ``prefix`` (an id typed on the command line or a page) a prefix unique among the runs the actor may
        read works too, and an ambiguous one lists only those. Ids inside content (``init_from``, ``teacher``, a
        starter, a link) are never prefixes.

        Raises:
            AccessDenied: "no run X of yours", the same for an unknown and another person's run.
        """
        who = self.who(actor)
        if not isinstance(run_id, str) or not (_PREFIX_RE if prefix else RUN_ID_RE).fullmatch(run_id):
            raise RunStoreError(f"no run {str(run_id)[:80]!r}: {_ID_HELP}")
        rows = [r for r in self._read("SELECT * FROM runs WHERE id = ?", (run_id,)) if may(who, READ, dict(r))]
        if not rows and prefix:  # a unique prefix, matched exactly (substr, not LIKE: no wildcards)
            rows = [r for r in self._read("SELECT * FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id",
                                          (len(run_id), run_id)) if may(who, READ, dict(r))]
            if len(rows) > 1:
                raise RunStoreError(f"a run id prefix names one run; received: {run_id!r}, the prefix of "
                                    f"{', '.join(r['id'] for r in rows[:5])}. Fix: type more of the id")
        if not rows:
            raise refusal(run_id)
        check_run_id(rows[0]["id"])  # a crafted database row never reaches a path
        return _record(rows[0])

    def list_runs(self, status: str | None = None, limit: int = 100, *, owner: str | None = None,
                  tags: dict | None = None, class_id: str | None = None, actor: Actor | None = None,
                  not_status: str | None = None) -> list[Run]:
        """The runs the actor may read (:func:`builder.data.access.may`), newest first: id, name, status, owner, tags,
        class, dataset (an upload's with its info, which names the file), timestamps, epochs done, settings, final and
        test metrics (records without their project: read one with :meth:`get`). ``owner`` keeps that owner's runs;
        ``class_id`` those recorded for that class; ``tags`` those whose tags contain these items; ``not_status``
        leaves that status out."""
        who = self.who(actor)
        sql = ("SELECT id, name, status, owner, tags, control, created_at, started_at, finished_at, updated_at, "
               "dataset_name, dataset_options, epochs_done, final_metrics, test_metrics, message, config, "
               "graph_hash, parent_id, class_id, CASE WHEN dataset_options LIKE ? THEN dataset_info END AS "
               "dataset_info FROM runs")  # an upload's run: its info names the file, not the upload id (issue 29)
        where, args = [], ['%"upload"%']
        if not (who.system or who.shared):  # READ as SQL, before LIMIT: its own runs, its classes' (may() again below)
            st, cl = sorted(who.students), sorted(who.teaching)
            where.append(f"(owner = ? OR (owner IN ({','.join('?' * len(st))}) AND class_id IN ({','.join('?' * len(cl))})))"
                         if st and cl else "owner = ?")
            args += [who.owner, *st, *cl] if st and cl else [who.owner]
        for clause, value in (("class_id = ?", class_id), ("status = ?", status or None),
                              ("status != ?", not_status or None), ("owner = ?", owner)):
            if value is not None:
                where.append(clause)
                args.append(str(value))
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC"
        if not tags:
            sql += " LIMIT ?"
            args.append(int(limit))
        runs = [r for r in map(_record, self._read(sql, args)) if may(who, READ, r)]
        if tags:
            runs = [r for r in runs if all((r.get("tags") or {}).get(k, _MISSING) == v for k, v in tags.items())]
        return runs[:int(limit)]

    def metrics(self, run_id: str, kind: str = "epoch", *, actor: Actor | None = None) -> list[dict]:
        """A run's curve: the logged events of one kind (``epoch`` or ``step``) in order. Raises AccessDenied."""
        self._check_read(run_id, actor)
        rows = self._read("SELECT data FROM metrics WHERE run_id = ? AND kind = ? ORDER BY id", (run_id, kind))
        return [typed_event(json.loads(r["data"])) for r in rows]

    def metrics_after(self, run_id: str, kind: str = "epoch", after: int = 0, *,
                      actor: Actor | None = None) -> tuple[list[dict], int]:
        """The events of one kind logged after row ``after`` and the last row number (for incremental reads:
        pass it back as ``after`` next time). Raises AccessDenied."""
        self._check_read(run_id, actor)
        rows = self._read("SELECT id AS rowid, data FROM metrics WHERE run_id = ? AND kind = ? AND id > ? ORDER BY id",
                          (run_id, kind, int(after)))
        return [typed_event(json.loads(r["data"])) for r in rows], (rows[-1]["rowid"] if rows else int(after))

    def record_bytes(self, owner: str, *, actor: Actor | None = None) -> int:
        """About the bytes ``owner``'s runs take in the run database (their rows' texts and their curves, in
        characters): what the storage quota counts beside their folders (:func:`builder.jobs.quotas.usage`); for
        those :func:`check_sees` lets see it."""
        check_sees(self, owner, actor)
        cols = " + ".join(f"COALESCE(LENGTH({c}), 0)" for c in (*_JSON_COLS, "name", "message"))
        rows = self._read(f"SELECT (SELECT COALESCE(SUM({cols}), 0) FROM runs WHERE owner = ?) + (SELECT "
                          "COALESCE(SUM(LENGTH(m.data)), 0) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE "
                          "r.owner = ?) AS n", (owner, owner))
        return int(rows[0]["n"] or 0)

    def _check_read(self, run_id: str, actor: Actor | None) -> None:
        who = self.who(actor)
        if not who.system:
            self.get(run_id, actor=who)

    def delete_run(self, run_id: str, *, actor: Actor | None = None) -> None:
        """Delete a run's rows and folder: the actor's own, anyone's for an admin, a class's run for its teacher
        (:func:`builder.data.access.may` ``delete``/``delete_class_run``). Raises RunStoreError for a run that is
        still live, AccessDenied for one the actor may not delete (worded as for an unknown one)."""
        who = self.who(actor)
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,)) if isinstance(run_id, str) else []
        if not rows or not (may(who, DELETE, dict(rows[0])) or may(who, DELETE_CLASS_RUN, dict(rows[0]))):
            raise refusal(run_id)
        run = _record(rows[0])
        if is_live(run["status"]) and pid_alive(run["pid"]) and run["host"] == host_name():
            raise RunStoreError(f"run {run['id']} is {run['status']} in process {run['pid']}; stop it first")
        folder = self._run_dir(run["id"])  # checked before anything is deleted
        self._write("DELETE FROM metrics WHERE run_id = ?", (run["id"],))
        self._write("DELETE FROM runs WHERE id = ?", (run["id"],))
        shutil.rmtree(folder, ignore_errors=True)

    def mark_interrupted(self) -> list[str]:
        """Mark live runs whose process is gone as ``interrupted`` (resumable); returns their ids. On this host a
        run's process is gone when its pid is; a run of another host (a cluster node, another server sharing the
        store) when its heartbeat is older than :func:`~builder.training.run_status.stale_s`
        (:func:`~builder.training.run_status.is_orphaned`), so a job whose node and server both died does not
        stay ``running`` for ever."""
        host, now, stale = host_name(), time.time(), stale_s()
        rows = self._read(f"SELECT id, pid, host, status, beat_at FROM runs WHERE status IN ({_LIVE_SQL})")
        dead = [r for r in rows if is_orphaned(r, host, now)]
        for r in dead:
            rid = r["id"]
            why = ("the training process ended unexpectedly" if r["host"] == host else
                   f"its host {str(r['host'])[:64]} sent no heartbeat for {now - r['beat_at']:.0f} s (more than "
                   f"{stale:.0f} s: its node or server stopped)")
            # the heartbeat is checked again in the update: a beat written since the read keeps the run live
            self._write(f"UPDATE runs SET status = ?, message = ?, updated_at = ? WHERE id = ? AND status IN "
                        f"({_LIVE_SQL}) AND (host = ? OR beat_at IS NULL OR beat_at < ?)",
                        (RunStatus.INTERRUPTED.value, f"{why}; resume with `layerlab runs resume {rid}`", _now(), rid,
                         host, now - stale))
        return [r["id"] for r in dead]

    def checkpoint_path(self, run_id: str, *, actor: Actor | None = None) -> Path:
        """The last checkpoint file of a run the actor may read (may not exist); ``folder(run_id).checkpoint``."""
        return self.folder(run_id, actor=actor).checkpoint

    def weights_path(self, run_id: str, *, actor: Actor | None = None) -> Path:
        """The final weights file of a run the actor may read (exists once finished); ``folder(run_id).weights``."""
        return self.folder(run_id, actor=actor).weights


def workspace_of(store: RunStore, run_id: str) -> str:
    """The workspace of a run the store's actor may read, for a child process that opens the run again as
    :data:`~builder.data.access.SYSTEM` on the strength of this check (explanations, drift, int8 export).

    Raises:
        AccessDenied: not a RunStore with an actor (a bare path names no one), or no such run of the actor's.
    """
    if not isinstance(store, RunStore):
        raise AccessDenied("a run is opened through the run store of whoever asks; received: a "
                           f"{type(store).__name__}. Fix: pass the RunStore (RunStore(workspace, actor=...))")
    store.get(run_id)
    return str(store.workspace)


_MISSING = object()
_COLUMNS = {"id", "name", "status", "created_at", "started_at", "updated_at", "finished_at", "pid", "host",
            "project", "dataset_name", "dataset_options", "dataset_info", "config", "final_metrics", "test_metrics",
            "message", "parent_id", "epochs_done", "environment", *_ADDED_COLUMNS}


def _record(row: Mapping[str, Any]) -> Run:
    """A database row as a :class:`~builder.runs.record.Run` (its JSON columns decoded, its message without server
    folders, as :meth:`RunStore.update_status` records one, for rows written before): the one place a row becomes a record."""
    d = {**row, **({"message": hide_paths(row["message"])} if isinstance(row.get("message"), str) else {})}
    for k in _JSON_COLS:
        if d.get(k) is not None:
            d[k] = json.loads(d[k])
    return Run(d)


def _checked_status(status: Any) -> str:
    """The stored string of a status; RunStoreError for one that is not a :class:`RunStatus`."""
    try:
        return RunStatus(status).value
    except ValueError:
        raise RunStoreError(f"unknown run status; received: {str(status)[:40]!r}. Fix: use one of "
                            f"{', '.join(s.value for s in RunStatus)}") from None


def _approx_bytes(statements: list[tuple[str, Iterable, bool]]) -> int:
    """About the bytes a transaction adds (its values and a page per statement): what a full disk lacked."""
    def size(v: Any) -> int:
        return sum(size(x) for x in v) if isinstance(v, list | tuple) else len(str(v))

    return sum(4096 + size(list(args)) for _, args, _ in statements)


def _exec(c: _db.Connection, sql: str, args: Iterable = ()) -> _db.sa.CursorResult:
    """Run one of the store's statements (``?`` placeholders) on ``c``."""
    return c.execute(_db.statement(sql), _db.params(args))


@contextmanager
def _db_errors(url: str) -> Iterator[None]:
    try:
        yield
    except _db.sa.exc.DBAPIError as e:
        if _db.is_busy(e):
            raise RunStoreError(f"run database is busy: {e.orig}") from e
        raise _db.database_error(e, url) from e


__all__ = ["RunStore", "Run", "RunFolder", "workspace_of", "RunStatus", "check_run_id", "RUN_ID_RE", "default_workspace",
           "filesystem_type", "NETWORK_FILESYSTEMS", "graph_hash", "ENV_WORKSPACE", "CONTROL_ACTIONS"]
