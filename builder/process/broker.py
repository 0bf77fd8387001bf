"""The run store of a confined process, through a broker: a process that runs a person's model (a training job,
the model probe, a quantization's worker) holds no connection to the run database and cannot open it; a broker it
forks before it confines itself holds them, and answers its store calls as its actor (the job's owner, the page
session's actor).

Why: the database holds every person's runs, and their owner ids (an anonymous owner id is the browser's cookie).
A job whose files allowed the SQLite database could read anyone's owner id and rewrite any row with plain SQL,
whatever the store's policy said, since the policy ran inside the job. (On PostgreSQL a job starts with the
database's address and credentials in its environment: :func:`builder.jobs.job_sandbox.enter` takes them out, and
out of the block the process started with, as it confines itself; no tracker may open the database's port.) Now the
policy runs in the broker (:class:`~builder.runs.store.RunStore` as the job's actor: it reads and writes only what
that owner may), and the job's Landlock rules name no database file (:func:`builder.process.landlock.confinement`
with ``database=False``); Landlock also keeps a confined process from tracing the broker, which is not in its
domain, and the seccomp filter from signalling it (:mod:`builder.process.sandbox`).

A job's end is LayerLab's to record, not the job's word: a final status the job writes (and what it writes to that
run after it) is held by the broker until the job's process has ended (:class:`_Ends`), so a job that says it
finished and runs on still counts as running, keeps its GPU slot and uses GPU time.

The wire: one JSON request per call (``{"call": name, "args": [...], "kwargs": {...}}``, at most
:data:`MAX_FRAME` bytes, length-prefixed) and one JSON answer; records travel as their rows, paths as strings, and
an error as its :mod:`builder.errors` class and message. Only the calls of :data:`CALLS` are answered, never with
another actor (an ``actor`` argument other than the broker's own is refused in the job, and never sent). The
broker ends when the job closes its end or dies (``PR_SET_PDEATHSIG``). Example::

    # not a doctest (forks a process): run by tests/process/test_broker.py
    client = start(RunStore(ws, actor=SYSTEM).as_actor(Actor.of_job("anon:...")))
    client.get(run_id)["status"]  # answered by the broker
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import errors as _errors
from builder.data.access import SYSTEM, Actor
from builder.errors import AccessDenied, LayerLabError, RunStoreError
from builder.process.launcher import death_signal
from builder.runs import db as _db
from builder.runs.record import STOPPED_BY, Run
from builder.runs.store import RunStore
from builder.training.run_folder import RunFolder, folder_bytes
from builder.training.run_status import is_final

MAX_FRAME = 64 * 2**20  # a request or answer (a project of thousands of layers, a curve of many steps) fits
CALLS = frozenset({"get", "list_runs", "metrics", "metrics_after", "run_dir", "job_spec", "weights_path",
                   "checkpoint_path", "update_run", "update_status", "set_environment", "take_control", "beat",
                   "log_metrics", "truncate_metrics", "finish", "mark_interrupted"})
"""What a confined process asks of its store (a job's training, prune and resume paths, their callbacks and the
job's own end; the probe's and a quantization's reads and writes); nothing else, so none makes a run (for
another owner, or a class it is not in), deletes one or asks for another's stop."""
_BUILTIN_ERRORS = (ValueError, TypeError, KeyError, IndexError, LookupError, OSError)


def _encode(obj: Any) -> bytes:
    def default(o: Any) -> Any:
        if isinstance(o, Run):
            return {"__run__": dict(o.row)}
        if isinstance(o, Path):
            return {"__path__": str(o)}
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        if hasattr(o, "model_dump"):  # a Project
            return o.model_dump(mode="json")
        if hasattr(o, "tolist"):  # torch tensors, numpy arrays and scalars (a metric's value)
            return o.tolist()
        return str(o)
    return json.dumps(obj, default=default, allow_nan=True).encode("utf-8")


def _decode(data: bytes) -> Any:
    def hook(d: dict) -> Any:
        if "__run__" in d and len(d) == 1:
            return Run(d["__run__"])
        if "__path__" in d and len(d) == 1:
            return Path(d["__path__"])
        return d
    return json.loads(data.decode("utf-8"), object_hook=hook)


def _send(sock: socket.socket, data: bytes) -> None:
    if len(data) > MAX_FRAME:
        raise RunStoreError(f"a run store message is at most {MAX_FRAME // 2**20} MiB; received: "
                            f"{len(data) // 2**20} MiB. Fix: log fewer or smaller values at once")
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _recv(sock: socket.socket) -> bytes | None:
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    if n > MAX_FRAME:
        raise RunStoreError(f"a run store message is at most {MAX_FRAME // 2**20} MiB; received: {n} bytes")
    return _recv_exact(sock, n)


# ------------------------------------------------------------------------------------------------ the broker
def _checked(request: Any) -> tuple[str, list, dict]:
    """``(call, args, kwargs)`` of a request the broker answers; AccessDenied for any other."""
    if not isinstance(request, dict) or request.get("call") not in CALLS:
        raise AccessDenied(f"the run store's broker answers {', '.join(sorted(CALLS))}; received: "
                           f"{str(request.get('call') if isinstance(request, dict) else request)[:60]!r}")
    args, kwargs = request.get("args") or [], request.get("kwargs") or {}
    if (not isinstance(args, list) or not isinstance(kwargs, dict) or "actor" in kwargs
            or not all(isinstance(k, str) and k.isidentifier() for k in kwargs)):
        raise AccessDenied("a job's store calls are answered as its own actor; received: another actor or "
                           "malformed arguments")
    return request["call"], args, kwargs


def _answer(store: RunStore, request: Any, ends: _Ends | None = None) -> dict:
    """One call's answer: ``{"ok": value}`` or ``{"error": [class name, message]}``; with ``ends``, an end the job
    records (and what it writes to that run after it) is held (``{"ok": None, "held": True}``, :class:`_Ends`) and
    reads show it."""
    try:
        call, args, kwargs = _checked(request)
        if ends is not None and (run_id := ends.holds(call, args, kwargs)) is not None:
            _hold(store, ends, run_id, call, args, kwargs)
            return {"ok": None, "held": True}
        value = getattr(store, call)(*args, **kwargs)
        if call in ("get", "list_runs"):
            value = _owners_shown(store, ends.shown(value) if ends is not None else value)
        return {"ok": value}
    except Exception as e:  # noqa: BLE001  every error goes back to the job, named by its class
        return {"error": [type(e).__name__, str(e)]}


def _owners_shown(store: RunStore, answer: Any) -> Any:
    """A read's rows as a confined process gets them: another owner's run (shared mode, a teacher's student) names
    its owner by pseudonym (:func:`builder.runs.owners.pseudonym`), never by id, which for an anonymous owner is its
    browser's cookie: a shared-mode job listed every owner's id, so a model that took its process over could write
    them into its own run for its owner to read. The process's own runs keep their owner (its uploads' folder), as
    do a model probe's child's runs of the one owner it is narrowed to (:meth:`~builder.data.access.Actor.only_of`).
    Another owner's data options are as people see them (:meth:`~builder.data.sources.DatasetSource.shown_options`):
    a command-line run's file path on the server reached every shared-mode job (found by a trust review)."""
    from builder.data.sources import DatasetSource  # lazy: the rows' data only
    from builder.runs.owners import owner_of, pseudonym  # lazy: the rows' owners only

    actor = store.actor if isinstance(store.actor, Actor) else None
    mine = {actor.owner, actor.only} - {None} if actor is not None else set()  # a probe's child: its model's owner

    def shown(name: Any, options: Any) -> Any:
        return DatasetSource(str(name), dict(options)).shown_options() if name and isinstance(options, dict) else options

    def one(run: Any) -> Any:
        if not isinstance(run, Run | dict) or owner_of(run) in mine:
            return run
        row = {**(run.row if isinstance(run, Run) else run), "owner": pseudonym(store.workspace, owner_of(run))}
        row["dataset_options"] = shown(row.get("dataset_name"), row.get("dataset_options"))
        info = row.get("dataset_info")
        if isinstance(info, dict) and isinstance(info.get("options"), dict):
            row["dataset_info"] = {**info, "options": shown(row.get("dataset_name"), info["options"])}
        return Run(row) if isinstance(run, Run) else row
    return [one(r) for r in answer] if isinstance(answer, list) else one(answer)


def _hold(store: RunStore, ends: _Ends, run_id: str, call: str, args: list, kwargs: dict) -> None:
    """Hold a write to ``run_id`` until the job has ended (:class:`_Ends`)."""
    store.folder(run_id, write=True)  # refused now as the write would be: a run of the job's owner
    if run_id not in ends.status:  # from now on the broker is the run's process: a reader that finds the job gone
        # before its end is written leaves the run to it (is_orphaned), never marks it interrupted
        store.as_actor(SYSTEM).update_run(run_id, pid=os.getpid())
    ends.add(run_id, call, args, kwargs)


_ENDING = frozenset({"update_run", "update_status", "set_environment", "log_metrics", "truncate_metrics", "finish"})


class _Ends:
    """The ends a job recorded, held until its process has exited.

    A job's run counts as live (its owner's running jobs, its GPU slot, its GPU time) until its status is final. A
    job that recorded its end and ran on (its model turned against it, or closing its store first) freed all three
    while it still held the host. So a final status a job writes, and every write to that run after it, is held by
    its broker and written, in order, once the job's process has ended; meanwhile the job reads its run as if
    written (:meth:`shown`), so its own code sees the end it recorded.

    >>> ends = _Ends()
    >>> ends.holds("update_status", ["r1", "running"], {}), ends.holds("finish", ["r1", "finished"], {})
    (None, 'r1')
    >>> ends.add("r1", "finish", ["r1", "finished"], {}); ends.holds("update_run", ["r1"], {"message": "x"})
    'r1'
    >>> ends.shown([{"id": "r1", "status": "running"}, {"id": "r2", "status": "running"}])
    [{'id': 'r1', 'status': 'finished'}, {'id': 'r2', 'status': 'running'}]
    """

    def __init__(self) -> None:
        self.held: list[tuple[str, list, dict]] = []
        self.status: dict[str, str] = {}
        self.over: set[str] = set()  # runs whose job took more than its room (:class:`Room`)

    @staticmethod
    def _status(call: str, args: list, kwargs: dict) -> Any:
        """The status a ``finish`` or ``update_status`` call sets (None for other calls)."""
        return (args[1] if len(args) > 1 else kwargs.get("status")) if call in ("finish", "update_status") else None

    def holds(self, call: str, args: list, kwargs: dict) -> str | None:
        """The run id when this call is held: a final status, or a write to a run that has one; else None."""
        run_id = (args[0] if args else kwargs.get("run_id")) if call in _ENDING else None
        if not isinstance(run_id, str):
            return None
        status = self._status(call, args, kwargs)
        return run_id if run_id in self.status or (isinstance(status, str) and is_final(status)) else None

    def add(self, run_id: str, call: str, args: list, kwargs: dict) -> None:
        """Hold the call (:meth:`holds` said so); from now on this broker outlives its job."""
        status = self._status(call, args, kwargs)
        if isinstance(status, str):
            self.status[run_id] = status
        if not self.held:  # the held ends are written after the job, which must not take the broker along
            death_signal(0)
        self.held.append((call, args, kwargs))

    def shown(self, answer: Any) -> Any:
        """A read's answer with the statuses held for its runs."""
        def one(run: Any) -> Any:
            rid = run.get("id") if isinstance(run, (Run, dict)) else None
            if rid not in self.status:
                return run
            row = {**(run.row if isinstance(run, Run) else run), "status": self.status[rid]}
            return Run(row) if isinstance(run, Run) else row
        return [one(r) for r in answer] if isinstance(answer, list) else one(answer)


@dataclass
class Room:
    """What a job may still take of its owner's quotas while it runs, held by its broker, where the job cannot
    reach it (the quotas' other checks are made before a job starts).

    Storage (its owner's ``storage_mb`` quota, :func:`builder.jobs.quotas.room_of`; ``left`` None: no limit):
    ``left`` bytes, counted as the bytes of its store writes (its curves and records in the run database) and the
    growth of its run's folder (checkpoints, logs, its private ``tmp/``) since the job started. With ``total``
    (the bytes its owner stores now, :func:`builder.jobs.quotas.storage_bytes`) and ``cap`` (its limit in bytes),
    looked at every ``total_every_s`` while the job writes, a job that writes while its owner's storage as a whole
    is past the cap is stopped too: jobs of one owner running at once were each admitted with the whole room, and
    between them are held to the cap. A job past it is stopped (SIGKILL: its model may be the one writing) and its
    run failed with ``refusal(taken, False, total)`` (``total``: None when its own room was what it passed); one
    found past it once it has recorded its end keeps that end, with the line ``refusal(taken, True, total)`` as
    its message (its results are there; the quota holds its owner's next jobs back).

    GPU time (its owner's ``gpu_seconds`` quota, :func:`builder.jobs.quotas.gpu_spent`; None: no limit):
    ``gpu_spent(run_id)``, asked every ``gpu_every_s``, is why the job must stop (its owner's GPU-seconds of the
    last day spent while it trains on a GPU) or None. The broker then asks it to stop, as Stop does (a checkpoint,
    resumable), with that reason on its run (``stopped_by``: the Runs and Train pages show who stopped it), and
    kills it if it has not ended ``grace_s`` later."""

    run_id: str
    folder: Path
    left: int | None
    refusal: Callable[[int, bool, int | None], str]
    every_s: float = 0.25  # how often its folder is measured (a walk of its files): what a job writes in that time
    # is how far past its room it may get (its files, each at most its file size limit; its store writes are
    # counted before they are made)
    total: Callable[[], int] | None = None
    cap: int | None = None
    total_every_s: float = 2.0  # a walk of all its owner's folders and a sum over its records: what the jobs of one
    # owner write in that time is how far past the cap they may get between them
    gpu_spent: Callable[[str], str | None] | None = None
    gpu_every_s: float = 5.0  # its owner's records of the last day read: what a GPU does in that time is how far
    # past the GPU-time quota a job may get
    grace_s: float = 90.0  # after its stop was asked: the job's own grace to end (builder.jobs.control), and more


class _Meter:
    """What a job took of its :class:`Room` so far."""

    def __init__(self, room: Room) -> None:
        self.room, self.written, self.grown, self.next = room, 0, 0, 0.0
        self.base = folder_bytes(room.folder) if room.left is not None else 0  # what the run's folder held when
        # the job started (a resume's)
        self.next_total, self.taken_then = time.monotonic() + room.total_every_s, 0
        self.next_gpu, self.stop_asked = time.monotonic() + room.gpu_every_s, None

    def taken(self, written: int = 0, *, now_measured: bool = False) -> int:
        """The bytes taken, with ``written`` more written to the store; the folder measured at most every
        ``every_s``, or now with ``now_measured``."""
        self.written += written
        now = time.monotonic()
        if now >= self.next or now_measured:
            self.grown, self.next = max(0, folder_bytes(self.room.folder) - self.base), now + self.room.every_s
        return self.written + self.grown

    def total_over(self, taken: int) -> int | None:
        """The bytes its owner stores, when that is past the cap and this job wrote since the last look (a job
        that writes nothing is not the one to stop); None otherwise, and between looks (every ``total_every_s``)."""
        room, now = self.room, time.monotonic()
        if room.total is None or room.cap is None or now < self.next_total:
            return None
        self.next_total = now + room.total_every_s
        wrote, self.taken_then = taken > self.taken_then, taken
        if not wrote:
            return None
        try:
            total = room.total()
        except Exception:  # noqa: BLE001  the database busy or a folder gone meanwhile: looked at next time
            return None
        return total if total > room.cap else None


def _stop_over_room(store: RunStore, ends: _Ends, meter: _Meter | None, job_pid: int, written: int = 0) -> bool:
    """Stop the job once it took more than its room, or wrote while its owner's storage is past its cap: its run's
    failure is held (written once it has ended, after any end it recorded) and its process killed; ask it to stop
    once its owner's GPU time is spent (:func:`_stop_past_gpu`). Returns whether it was killed."""
    if meter is None or meter.room.run_id in ends.over:
        return False
    _stop_past_gpu(store, ends, meter, job_pid)
    if meter.room.left is None:
        return False
    taken, total = meter.taken(written), None
    if taken <= meter.room.left and (total := meter.total_over(taken)) is None:
        return False
    if total is not None:  # the total counts the folder as it is now: so does what the job took, measured again,
        # and a job found past its own room by that is stopped for its own writes, not for its owner's other work
        taken = meter.taken(now_measured=True)
        total = None if taken > meter.room.left else total
    run_id = meter.room.run_id
    ended = run_id in ends.status  # its end recorded: kept, and the line says why its owner's next jobs wait
    line = meter.room.refusal(taken, ended, total)
    with contextlib.suppress(LayerLabError):
        _hold(store, ends, run_id, *(("update_run", [run_id], {"message": line}) if ended
                                     else ("update_status", [run_id, "failed", line], {})))
    ends.over.add(run_id)
    if os.getppid() == job_pid:  # still running (else it has ended: its end is overwritten by this one)
        with contextlib.suppress(OSError):
            os.kill(job_pid, signal.SIGKILL)
    return True


def _stop_past_gpu(store: RunStore, ends: _Ends, meter: _Meter, job_pid: int) -> None:
    """Once its owner's GPU time is spent (:attr:`Room.gpu_spent`), ask the job to stop as Stop does, with the
    reason on its run; kill it if it has not ended :attr:`Room.grace_s` after that."""
    room, now = meter.room, time.monotonic()
    if room.gpu_spent is None or room.run_id in ends.status:  # no limit, or its end already recorded
        return
    if meter.stop_asked is not None:
        if now - meter.stop_asked > room.grace_s and os.getppid() == job_pid:
            with contextlib.suppress(OSError):
                os.kill(job_pid, signal.SIGKILL)
        return
    if now < meter.next_gpu:
        return
    meter.next_gpu = now + room.gpu_every_s
    try:
        why = room.gpu_spent(room.run_id)
        if why is None:
            return
        system = store.as_actor(SYSTEM)
        system.update_run(room.run_id, tags={**system.get(room.run_id).tags, STOPPED_BY: why})
        system.set_control(room.run_id, "stop")
        meter.stop_asked = now
    except Exception as e:  # noqa: BLE001  the database busy: asked again next time
        print(f"job: its GPU-time quota was not checked: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def _serve(store: RunStore, sock: socket.socket, job_pid: int, ends: _Ends, meter: _Meter | None = None) -> None:
    """The broker's loop: answer until the job closes its end or its process ends (or took more than its room)."""
    while True:
        with contextlib.suppress(OSError, ValueError):
            if not select.select([sock], [], [], meter.room.every_s if meter else 1.0)[0]:  # the job may have ended
                if os.getppid() != job_pid or _stop_over_room(store, ends, meter, job_pid):
                    return
                continue
        try:
            data = _recv(sock)
        except (OSError, RunStoreError):
            return
        if data is None:
            return
        try:
            request = _decode(data)
        except ValueError:
            request = None
        writes = isinstance(request, dict) and request.get("call") in _ENDING
        if _stop_over_room(store, ends, meter, job_pid, len(data) if writes else 0):
            return  # the write that took it past its room is not made
        _send(sock, _encode(_answer(store, request, ends)))


def _write_ends(store: RunStore, job_pid: int, ends: _Ends) -> None:
    """Once the job's process has ended (its broker is then another's child), write the ends it held."""
    if not ends.held:
        return
    while os.getppid() == job_pid:
        time.sleep(0.02)
    for call, args, kwargs in ends.held:
        try:
            getattr(store, call)(*args, **kwargs)
        except Exception as e:  # noqa: BLE001  the job has ended: its log says what was not written
            print(f"job: its {call} after it recorded its end was not written: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
    for run_id in ends.status:  # a held end that was not written: its record names the job's process again (a
        # written final status did so itself, in its own statement: RunStore.for_pid)
        with contextlib.suppress(LayerLabError):
            store.as_actor(SYSTEM).update_run(run_id, pid=job_pid)


def _broker_main(store: RunStore, sock: socket.socket, job_pid: int, room: Room | None = None) -> None:
    """In the forked broker: die with the job (until it holds the job's end: :class:`_Ends`), open its own database
    connections, record the job's pid where the store records "this process" (a run that starts running), then
    serve, and write the held ends once the job has ended."""
    death_signal(signal.SIGKILL)
    if os.getppid() != job_pid:  # the job ended before the line above
        return
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.SIG_IGN)
    store._engine = _db.engine(store.db_url, store.journal)  # this process's own (engines are per process)
    store.for_pid = job_pid
    ends, meter = _Ends(), (_Meter(room) if room is not None else None)
    _serve(store, sock, job_pid, ends, meter)
    if meter is not None:  # a job that closed its store and runs on is measured until it has gone, and once more
        death_signal(0)  # then (a short job's whole run: its last files)
        while os.getppid() == job_pid and not _stop_over_room(store, ends, meter, job_pid):
            time.sleep(0.02)
        meter.next = meter.next_total = 0.0
        _stop_over_room(store, ends, meter, job_pid)
    _write_ends(store, job_pid, ends)


def wire_actor(actor: Actor) -> dict:
    """A person's actor as plain data, for the start message of a child whose broker answers as it (the model
    probe); :func:`actor_of_wire` reads it back. Never the system's: a broker answers for a person."""
    return {"owner": actor.owner, "admin": actor.admin, "students": sorted(actor.students),
            "teaching": sorted(actor.teaching), "shared": actor.shared, "only": actor.only}


def actor_of_wire(data: Mapping[str, Any]) -> Actor:
    """The actor :func:`wire_actor` wrote (an unnamed one owns nothing and reads nothing).

    >>> a = Actor("user:tea", students=frozenset({"user:ann"}), teaching=frozenset({"c1"}))
    >>> actor_of_wire(wire_actor(a)) == a, actor_of_wire(wire_actor(a.only_of("user:ann"))).only
    (True, 'user:ann')
    """
    only = data.get("only")
    return Actor(str(data.get("owner")), admin=bool(data.get("admin")), students=frozenset(data.get("students") or ()),
                 teaching=frozenset(data.get("teaching") or ()), shared=bool(data.get("shared")),
                 only=str(only) if only is not None else None)


def start(store: RunStore, room: Room | None = None) -> StoreClient:
    """Fork the broker of ``store`` (its actor is the job's) and return the job's client. This process's
    database connections are closed: from here on it reaches the database only through the broker. With ``room``
    the broker stops the job once it took more storage than that (:class:`Room`)."""
    if not isinstance(store.actor, Actor) or store.actor.system:
        raise AccessDenied("a broker answers for a job's owner; received: "
                           f"{'trusted code' if isinstance(store.actor, Actor) else 'no actor'}. Fix: "
                           "store.as_actor(Actor.of_job(owner))")
    job_end, broker_end = socket.socketpair()
    job_pid = os.getpid()
    _db.dispose_engines()  # before the fork: SQLite's connections must not cross it (the broker opens its own)
    pid = os.fork()
    if pid == 0:  # the broker
        code = 0
        try:
            job_end.close()
            _broker_main(store, broker_end, job_pid, room)
        except BaseException:  # noqa: BLE001  the job sees its end closed
            code = 1
        finally:
            os._exit(code)
    broker_end.close()
    return StoreClient(job_end, pid, store.workspace, store.actor)


# ------------------------------------------------------------------------------------------------ the job's side
def _error(name: str, message: str) -> Exception:
    cls = getattr(_errors, name, None)
    if isinstance(cls, type) and issubclass(cls, LayerLabError):
        try:
            return cls(message)
        except TypeError:  # a class with other arguments (GraphError's problems)
            return RunStoreError(message)
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, _BUILTIN_ERRORS):
        return builtin(message)
    return RunStoreError(f"{name}: {message}")


class StoreClient:
    """The job's run store: the :class:`~builder.runs.store.RunStore` calls a job makes, answered by its broker
    as its actor. Thread-safe (the heartbeat thread and the training loop share it)."""

    def __init__(self, sock: socket.socket, broker_pid: int, workspace: Path, actor: Actor):
        self._sock, self.broker_pid, self.workspace, self.actor = sock, broker_pid, Path(workspace), actor
        self._lock = threading.Lock()
        self._held = False  # the broker holds an end this job recorded: it outlives this process (_Ends)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._sock is None:
                raise RunStoreError("the job's run store is closed")
            try:
                _send(self._sock, _encode({"call": name, "args": list(args), "kwargs": kwargs}))
                data = _recv(self._sock)
            except OSError as e:
                data, why = None, str(e)
            else:
                why = "its broker ended"
        if data is None:
            raise RunStoreError(f"the run database cannot be reached from this job: {why}. Fix: start the run again")
        answer = _decode(data)
        if "error" in answer:
            raise _error(*answer["error"])
        self._held = self._held or bool(answer.get("held"))
        return answer["ok"]

    def _own(self, actor: Actor | None) -> None:
        if actor is not None and actor != self.actor:
            raise AccessDenied("a job reads and writes runs as its own owner; received: another actor. Fix: "
                               "leave actor= out")

    def who(self, actor: Actor | None = None) -> Actor:
        self._own(actor)
        return self.actor

    def as_actor(self, actor: Actor) -> StoreClient:
        self._own(actor)
        return self

    def hold(self) -> None:
        """Nothing to hold: the broker keeps its connections."""

    def release(self) -> None:
        """Nothing to release."""

    def close(self) -> None:
        """Close the job's end: the broker ends (one that holds this job's end writes it once this process has
        ended, so it is not waited for)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.broker_pid, os.WNOHANG if self._held else 0)

    # ---- reads
    def get(self, run_id: str, *, actor: Actor | None = None, prefix: bool = False) -> Run:
        self._own(actor)
        return self._call("get", run_id, prefix=prefix)

    def list_runs(self, status: str | None = None, limit: int = 100, *, actor: Actor | None = None,
                  **filters: Any) -> list[Run]:
        self._own(actor)
        return self._call("list_runs", status, limit, **filters)

    def metrics(self, run_id: str, kind: str = "epoch", *, actor: Actor | None = None) -> list[dict]:
        self._own(actor)
        return self._call("metrics", run_id, kind)

    def metrics_after(self, run_id: str, kind: str = "epoch", after: int = 0, *,
                      actor: Actor | None = None) -> tuple[list[dict], int]:
        self._own(actor)
        events, last = self._call("metrics_after", run_id, kind, after)
        return events, last

    def run_dir(self, run_id: str, *, actor: Actor | None = None, write: bool = False) -> Path:
        self._own(actor)
        return self._call("run_dir", run_id, write=write)

    def folder(self, run_id: str, *, actor: Actor | None = None, write: bool = False) -> RunFolder:
        return RunFolder(self.run_dir(run_id, actor=actor, write=write), writable=write)

    def job_spec(self, run_id: str, *, actor: Actor | None = None) -> dict | None:
        self._own(actor)
        return self._call("job_spec", run_id)

    def weights_path(self, run_id: str, *, actor: Actor | None = None) -> Path:
        self._own(actor)
        return self._call("weights_path", run_id)

    def checkpoint_path(self, run_id: str, *, actor: Actor | None = None) -> Path:
        self._own(actor)
        return self._call("checkpoint_path", run_id)

    def mark_interrupted(self) -> list[str]:
        """The store's sweep of live runs whose process is gone (a resumed run's own, first): the broker's."""
        return self._call("mark_interrupted")

    # ---- writes (the broker's store checks each: the job's owner writes its own runs' rows)
    def update_run(self, run_id: str, **fields: Any) -> None:
        self._call("update_run", run_id, **fields)

    def update_status(self, run_id: str, status: str, message: str = "", **fields: Any) -> None:
        self._call("update_status", run_id, status, message, **fields)

    def set_environment(self, run_id: str, **values: Any) -> None:
        self._call("set_environment", run_id, **values)

    def take_control(self, run_id: str, *, peek: bool = False) -> str | None:
        return self._call("take_control", run_id, peek=peek)

    def beat(self, run_ids: Iterable[str]) -> None:
        self._call("beat", list(run_ids))

    def log_metrics(self, run_id: str, events: Mapping | list[Mapping]) -> None:
        self._call("log_metrics", run_id, events)

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        self._call("truncate_metrics", run_id, after_step)

    def finish(self, run_id: str, status: str, *args: Any, project: Any = None, **kwargs: Any) -> None:
        """Record a run's end; its model card describes the project its run row keeps (the broker reads it):
        ``project``, the caller's parsed copy, is not sent (on the wire it would be a dict, and a job's word)."""
        self._call("finish", run_id, status, *args, **kwargs)

__all__ = ["start", "Room", "StoreClient", "CALLS", "MAX_FRAME", "wire_actor", "actor_of_wire"]
