"""Training jobs: each run started from the app (and each resume, each search trial) is its own OS process.

:func:`submit` records the run (``queued``, with its owner and tags) and launches
``python -m builder.runs.jobs run --workspace W RUN_ID`` in a new session, detached from the caller, with its
output in ``runs/<id>/job.log``. The process waits for a slot (at most :func:`max_jobs` running per
workspace and host; the claim is one SQLite transaction), then trains through :mod:`builder.training.pipeline`,
writing status, curves, checkpoints and live attributions to the run store. Nothing is shared with the
caller but the store: :func:`request` writes ``pause``/``resume``/``stop`` into the run's ``control``
column, which the process polls (:class:`StoreControl`). A stopped job writes a checkpoint and ends
``stopped``; a process that dies (exception outside training, kill -9, out of memory) is marked
``interrupted`` by the next :meth:`RunStore.mark_interrupted` (any reader calls it; :func:`wait` does every
poll), and :func:`submit` with ``resume_run`` continues it from its last checkpoint. A job runs under limits,
in a clean environment, starting no process (:mod:`builder.runs.job_sandbox`, entered before the model is
built); one that meets a limit or crashes ends ``failed`` with a line naming it. Example::

    # not a doctest (needs files or training): run by tests/runs/test_jobs.py::test_submit_runs_in_its_own_process_to_finished
    store = RunStore(tmp_path)
    rid = submit(store, JobSpec(project=load_template("mlp").model_dump(), dataset="moons",
                                config={"epochs": 5}, owner="alice"))
    wait(store, [rid], timeout=120)
    # -> {'20261122-113000-ab12cd': 'finished'}
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from builder.access import CONTROL, STOP, SYSTEM, Actor, check, refusal
from builder.data import builtin
from builder.entities.run_status import RunStatus, is_final, is_live, resume_refusal
from builder.errors import DiskFullError, RunStoreError, TrainingError
from builder.graph.memory import training_memory
from builder.graph.project import load_project
from builder.graph.shapes import infer_shapes
from builder.interpret.boundary import DecisionBoundary
from builder.jobs import job_sandbox
from builder.jobs.quotas import admit, check_quota
from builder.process import gpus as _gpus
from builder.process.launcher import pid_alive, spawn_detached
from builder.process.threads import (  # noqa: F401  (their home moved; these names stay importable from here)
    ENV_MAX_JOBS,
    ENV_TORCH_THREADS,
    THREADS_MACS_PER_CORE,
    explicit_threads,
    max_jobs,
    torch_threads,
)
from builder.runs.classes import class_for
from builder.runs.db import is_sqlite
from builder.runs.owners import owner_of
from builder.runs.store import CONTROL_ACTIONS, RunStore
from builder.runs.summary import run_source
from builder.tracking import (  # mlflow itself stays unimported here
    check_destination,
    resolve_tracking,
    scrub_credentials,
    tracker,
)
from builder.training.callbacks import Callback
from builder.training.config import TrainConfig

POLL_S = 0.2  # how often a job reads its control column and a queued job tries to claim a slot
SHARED_POLL_S = 1.0  # how often a job reads its control column in a shared PostgreSQL store (bench_cluster.py)
GPU_QUERY: _gpus.GpuQuery = _gpus.query_gpus  # what the GPUs have free (tests fake it: builder.runs.gpus.Gpu lists)
GPU_USED = _gpus.query_used  # GPU bytes per process id (jobs placed but not allocated yet count at their estimate)
GPU_LOCK = "gpu.lock"  # in the workspace: one job at a time decides its GPU and claims its slot
_CALLBACKS = ("live_attributions", "decision_boundary")


@dataclass
class JobSpec:
    """What a job trains: the arguments of :func:`builder.training.pipeline.run_training`, as plain JSON data.

    ``callbacks`` names callbacks the job process builds: ``live_attributions`` (or
    ``live_attributions:METHOD``) records attributions each epoch into the run folder
    (:func:`builder.interpret.live.live_frames` reads them); ``decision_boundary`` stores a prediction grid with an epoch's
    metrics for 2-D toy datasets (the first and last epoch and, within 3.5 % of the training time, those between) (:func:`builder.interpret.boundary.latest_boundary` reads it). ``resume_run`` resumes that run instead of creating one; ``config``
    then holds the overrides. ``kind`` ``"prune"``: the job prunes run ``prune["parent"]`` into the recorded run
    and fine-tunes it (:func:`builder.training.prune.run_prune_job`; ``prune`` holds the arguments of
    :func:`~builder.training.prune.prune_run`, the spec is made by :func:`~builder.training.prune.prune_job_spec`).
    A cross-validation fold is a ``"train"`` job whose ``dataset_options`` carry ``fold``/``folds`` and whose tags
    name its group (:func:`builder.training.crossval.crossval_job_specs`, submitted by :func:`submit_group`).
    ``tracking``: the MLflow tracker the submitter chose for this run (:func:`builder.runs.tracking.resolve_tracking`
    at submission; checked again by the job), never a setting of the server process.
    """

    project: dict
    dataset: str
    dataset_options: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    owner: str = "local"
    name: str | None = None
    tags: dict = field(default_factory=dict)
    adapt: bool = False
    resume_run: str | None = None
    callbacks: list[str] = field(default_factory=list)
    kind: Literal["train", "prune"] = "train"
    prune: dict = field(default_factory=dict)
    tracking: str | None = None


JOB_KINDS = ("train", "prune")


def _check_callbacks(names: list[str]) -> None:
    for n in names:
        if str(n).split(":", 1)[0] not in _CALLBACKS:
            raise TrainingError(f"unknown job callback; received: {n!r}. Fix: use one of {', '.join(_CALLBACKS)}")


def submit(store: RunStore, spec: JobSpec) -> str:
    """Record the run (``queued``) and launch its own process; returns the run id.

    A new run is created from ``spec.project``; with ``spec.resume_run`` that run (interrupted, stopped,
    failed, or finished when ``config`` raises ``epochs``) is queued again under its own id. Nothing heavy
    happens here: the dataset is loaded and the graph compiled in the job process.

    Raises:
        RunStoreError: unknown run to resume, a run still live, or another owner's run.
        TrainingError, ProjectFormatError: bad settings or project (checked before anything is recorded).
        QuotaError: the owner is over a quota (:mod:`builder.runs.quotas`; checked under its lock).
    """
    _check_spec(store, spec)
    with admit(store):  # the quota check and the recording of the run as one step (builder.runs.quotas)
        run_id = _record(store, spec)
    _start(store, run_id)
    return run_id


def submit_group(store: RunStore, specs: list[JobSpec]) -> list[str]:
    """Submit jobs that belong together (the folds of a cross-validation:
    :func:`builder.training.crossval.crossval_job_specs`) all or none: the owner's quotas are checked for all of
    them at once (each counts as a job; the storage of each as it grows), then each is recorded and launched as
    :func:`submit` does; their run ids in order.

    Raises:
        TrainingError: an empty group, jobs of more than one owner, or a bad spec (nothing recorded).
        QuotaError: the owner cannot take this many more jobs (nothing recorded).
        RunStoreError, ProjectFormatError: as :func:`submit`.
    """
    owners = {s.owner for s in specs}
    if len(owners) != 1:
        raise TrainingError(f"a group of jobs has one owner; received: {len(specs)} job(s) of {len(owners)} "
                            "owner(s). Fix: submit each owner's jobs on their own")
    for spec in specs:
        _check_spec(store, spec)
    device = str((specs[0].config or {}).get("device")
                 or ((specs[0].project or {}).get("training") or {}).get("device") or "auto")
    with admit(store):
        check_quota(store, specs[0].owner, device=device, jobs=len(specs))
        run_ids = [_record(store, spec) for spec in specs]
    for run_id in run_ids:
        _start(store, run_id)
    return run_ids


def _check_spec(store: RunStore, spec: JobSpec) -> None:
    _check_callbacks(list(spec.callbacks))
    if store.actor is None or not (store.actor.system or store.actor.owner == spec.owner):
        raise refusal(str(spec.resume_run or spec.owner))  # a job runs for the actor that submits it
    if spec.kind not in JOB_KINDS or (spec.kind == "prune" and not spec.prune.get("parent")):
        raise TrainingError(f"a job trains or prunes (a prune job names its parent run); received: kind "
                            f"{spec.kind!r}. Fix: make prune jobs with builder.training.prune.prune_job_spec")


def _start(store: RunStore, run_id: str) -> None:
    """Start a recorded job where this server runs jobs (:func:`builder.jobs.executors.executor_for`: here, or on
    a Ray cluster); a cluster that cannot be reached leaves the run interrupted, resumable, and says why."""
    # the executors (this server, a Ray cluster) are backends built on this module (they import it): loaded by
    # name on first start, as SQLAlchemy loads a dialect, so the queue does not import what imports it
    executors = importlib.import_module("builder.jobs.executors")
    try:
        executor = executors.executor_for(store.workspace)
    except RunStoreError as e:
        store.update_status(run_id, RunStatus.INTERRUPTED, f"not started: {e}")
        raise
    executor.start(store, run_id)


def start_local(store: RunStore, run_id: str) -> None:
    """Launch a recorded job's process on this server (warm when the launcher answers) and record its pid."""
    folder = store.folder(run_id, actor=SYSTEM)  # the run just recorded
    pid = _launch_warm(store.workspace, run_id, folder.job_log)
    if pid is None:
        pid = _launch(store.workspace, run_id, folder.job_log).pid
    store.update_run(run_id, pid=pid)


def _record(store: RunStore, spec: JobSpec) -> str:
    """Check the owner's quotas (QuotaError over a limit; nothing recorded), then record the run as queued with
    its job spec; its id. :func:`submit` calls it under :func:`builder.runs.quotas.admit`."""
    tracking = _tracking(store, spec)  # a destination the owner may not use is refused before anything is recorded
    if spec.resume_run:
        store.mark_interrupted()
        run = store.get(spec.resume_run, actor=Actor.of_job(spec.owner))
        run_id = run.id
        check(Actor(spec.owner), CONTROL, run)  # resuming is the owner's alone (not a reader's in shared mode)
        if why := resume_refusal(run, more_epochs=bool((spec.config or {}).get("epochs"))):
            raise RunStoreError(why)
        cfg = TrainConfig.from_dict(run.config, **dict(spec.config or {}))  # the changed settings, checked
        check_quota(store, spec.owner, device=str(cfg.device))
    else:
        project = load_project(spec.project)
        # resolved again in the job once its dataset is loaded (task and training-split size known)
        cfg = TrainConfig.resolve((project.training or {}).get("task"), None, project.training, spec.config)
        class_id = class_for(store.workspace, store.actor, project)  # AccessDenied for a class not the owner's
        check_quota(store, spec.owner, device=str(cfg.device))
        run_id = store.create_run(project, spec.dataset, spec.dataset_options, cfg, name=spec.name,
                                  owner=spec.owner, tags=spec.tags, class_id=class_id,
                                  parent_id=spec.prune.get("parent") if spec.kind == "prune" else None)
    folder = store.folder(run_id, actor=SYSTEM)  # the run just recorded or resumed (checked above)
    folder.path.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in asdict(spec).items() if k != "owner"}  # an owner id is a key: the run row keeps it
    data["tracking"] = tracking
    if spec.resume_run and folder.job_spec.is_file():  # keep what the run was first started with
        old = json.loads(folder.job_spec.read_text(encoding="utf-8"))
        data["origin"] = {k: v for k, v in (old.get("origin") or old).items() if k != "owner"}
        if not spec.callbacks:
            data["callbacks"] = list(data["origin"].get("callbacks") or [])
    _write_json(folder.job_spec, data)
    store.requeue(run_id)  # queued at the back, pid = this process until the job process takes over
    return run_id


def _tracking(store: RunStore, spec: JobSpec) -> str | None:
    """The MLflow tracker of a job: the spec's, else its owner's choice (:func:`builder.runs.tracking.resolve_tracking`),
    checked for its owner. Raises LayerLabError for a destination the owner may not use."""
    if spec.tracking:
        return check_destination(spec.tracking, store.workspace, spec.owner)
    return resolve_tracking(store.workspace, spec.owner)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _launch(workspace: Path, run_id: str, log: Path) -> subprocess.Popen:
    """Start the job process detached (own session), output appended to ``log``, in a clean environment
    (:func:`builder.runs.job_sandbox.job_env`); reaped by a thread, which records a death by signal."""
    tmp = RunStore(workspace, actor=SYSTEM, mark_interrupted=False).folder(run_id).tmp
    tmp.mkdir(parents=True, exist_ok=True)

    def died(pid: int, code: int) -> None:
        job_sandbox.record_death(RunStore(workspace, actor=SYSTEM, mark_interrupted=False), run_id, pid, code)

    return spawn_detached(["-m", "builder.jobs.queue", "run", "--workspace", str(workspace), run_id], log,
                          env=job_sandbox.job_env(tmp), name=f"layerlab-reap-{run_id}", on_exit=died)


# ---------------------------------------------------------------------------------- the warm launcher
# A fresh Python process spends seconds importing torch before it trains. A launcher process per workspace
# (``python -m builder.runs.jobs launcher``) keeps torch and the pipeline imported and forks one child per job:
# the child is a new process in a session of its own, exactly like a launched one, minus the imports. The
# launcher is started by the first submit (that job is launched the ordinary way), listens on a Unix socket
# in the workspace, reaps its children, and exits after LAUNCHER_IDLE_S (or $LAYERLAB_LAUNCHER_IDLE_S)
# seconds without a request. When it cannot be
# reached the job is launched the ordinary way.
#
# The handshake is versioned (LAUNCHER_PROTOCOL): a request is one JSON line ``{"protocol": N, "job": {"run_id",
# "log", "env"}}`` and the reply ``{"protocol": N, "pid": PID}`` (or ``{"protocol": N, "error": ...}``). Both sides
# check N, so a launcher left running by another LayerLab version never forks a job with its code: a launcher
# that speaks an older protocol (version 1, the unversioned ``{"run_id", ...}`` line, fails on the "job" key
# without forking) is retired (SIGTERM to the socket's peer) and a new one started; a newer one is left alone.
# Either way that job is launched the ordinary way.
LAUNCHER_SOCK = "launcher.sock"  # the warm launcher's files, in the workspace folder
LAUNCHER_PID = "launcher.pid"
LAUNCHER_LOG = "launcher.log"
LAUNCHER_IDLE_S = 600.0
LAUNCHER_PROTOCOL = 2
_PASSED_ENV = job_sandbox.PASSED_ENV
_FORKED: dict[int, tuple[Path, str]] = {}  # in the launcher: pid -> (workspace, run id) of its live children


def _launcher_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(_PASSED_ENV)}


def _ask_launcher(path: Path, message: dict) -> tuple[dict, int | None]:
    """Send one request line to the launcher at ``path``; its reply (``{}`` when none) and its pid (None when
    the OS does not tell). Raises OSError or ValueError when it cannot be reached or answers no JSON object."""
    import socket as _socket
    import struct

    with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as c:
        c.settimeout(5)
        c.connect(str(path))
        peer = None
        with contextlib.suppress(AttributeError, OSError):  # Linux: the pid of the process that listens
            peer = struct.unpack("3i", c.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED,
                                                    struct.calcsize("3i")))[0]
        c.sendall(json.dumps(message).encode() + b"\n")
        reply = json.loads(c.makefile().readline() or "{}")
    if not isinstance(reply, dict):
        raise ValueError(f"launcher reply is not an object: {reply!r}")
    return reply, peer


def _reply_protocol(reply: dict) -> int:
    """The protocol a reply speaks: 1 for the unversioned launcher of earlier versions."""
    v = reply.get("protocol", 1)
    return v if isinstance(v, int) and not isinstance(v, bool) else 1


def _launch_warm(workspace: Path, run_id: str, log: Path) -> int | None:
    """Ask the workspace's launcher to fork the job; its pid, or None (then a launcher is started for later,
    unless one of a newer protocol holds the socket)."""
    path = Path(workspace) / LAUNCHER_SOCK
    if len(str(path)) >= 100:  # longer than a Unix socket address may be
        return None
    if path.exists():
        try:
            reply, peer = _ask_launcher(path, {"protocol": LAUNCHER_PROTOCOL,
                                               "job": {"run_id": run_id, "log": str(log), "env": _launcher_env()}})
        except (OSError, ValueError):
            reply, peer = {}, None
        version = _reply_protocol(reply)
        if version == LAUNCHER_PROTOCOL and isinstance(reply.get("pid"), int) and reply["pid"] > 0:
            return reply["pid"]
        if reply and version > LAUNCHER_PROTOCOL:
            return None  # a newer LayerLab's launcher: not ours to replace
        if reply and version < LAUNCHER_PROTOCOL:
            _retire(peer)
    _start_launcher(Path(workspace))
    return None


def _retire(pid: int | None) -> None:
    """Ask an older version's launcher to end (SIGTERM; its forked jobs live in sessions of their own)."""
    if isinstance(pid, int) and pid > 1 and pid != os.getpid() and pid_alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def _launcher_starting(workspace: Path) -> bool:
    """Whether a launcher is being started (its marker is younger than a minute; an older one is stale)."""
    lock = workspace / "launcher.starting"
    try:
        return lock.exists() and time.time() - lock.stat().st_mtime < 60
    except OSError:
        return False


def _launcher_up(workspace: Path) -> bool:
    """Whether the workspace's launcher is being started, or runs (its pid file names a live process and its
    socket exists)."""
    if _launcher_starting(workspace):
        return True
    try:
        pid = int((workspace / LAUNCHER_PID).read_text().strip())
    except (OSError, ValueError):
        return False
    return pid_alive(pid) and (workspace / LAUNCHER_SOCK).exists()


def warm_launcher(workspace: str | Path) -> bool:
    """Start the workspace's launcher ahead of the first job (the app does this in its warm-up), so that the
    first Start forks a warm process instead of launching a cold one (first curve point ~0.8 s instead of
    ~10 s on 2 cores). Returns False when one is already up or starting, or the socket path is too long."""
    ws = Path(workspace)
    if len(str(ws / LAUNCHER_SOCK)) >= 100 or _launcher_up(ws):
        return False
    _start_launcher(ws)
    return True


def _start_launcher(workspace: Path) -> None:
    if _launcher_starting(workspace):  # one starter at a time; a stale marker is taken over
        return
    try:
        (workspace / "launcher.starting").write_text(str(os.getpid()))
    except OSError:
        return
    import tempfile

    spawn_detached(["-m", "builder.jobs.queue", "launcher", "--workspace", str(workspace)],
                   workspace / LAUNCHER_LOG, env=job_sandbox.job_env(tempfile.gettempdir()),
                   name="layerlab-reap-launcher")


def launcher(workspace: str | Path) -> int:
    """The warm launcher's body: import once, then fork a job per request until idle."""
    import socket as _socket

    import torch  # noqa: F401  - the point of this process: imported once, shared by every fork

    from builder.runs import pipeline  # noqa: F401  # lazy: heavy (safetensors)

    builtin.preload()  # scikit-learn's dataset loaders (~1.1 s to import): imported once here, not by every forked job
    # torch's first optimizer imports torch._dynamo, sympy and mpmath (~1 s, 800 modules): once here too
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    ws = Path(workspace)
    path = ws / LAUNCHER_SOCK
    signal.signal(signal.SIGCHLD, _reap_jobs)  # children are reaped here; a death by signal is recorded
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # retired or killed: clean up (finally below)
    with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as srv:
        path.unlink(missing_ok=True)
        srv.bind(str(path))
        bound = path.stat().st_ino
        srv.listen(16)
        srv.settimeout(float(os.environ.get("LAYERLAB_LAUNCHER_IDLE_S") or LAUNCHER_IDLE_S))
        (ws / "launcher.starting").unlink(missing_ok=True)
        (ws / LAUNCHER_PID).write_text(str(os.getpid()))
        print(f"launcher {os.getpid()} ready on {path}", flush=True)
        try:
            while True:
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    return 0
                with conn:
                    try:
                        job = _job_request(json.loads(conn.makefile().readline() or "{}"))
                        reply = {"pid": _fork_job(ws, str(job["run_id"]), Path(job["log"]),
                                                  dict(job.get("env") or {}), (srv.fileno(), conn.fileno()))}
                    except Exception as e:  # a bad request or another protocol: answer it, fork nothing, keep serving
                        reply = {"error": str(e)}
                    with contextlib.suppress(OSError):  # the asker may be gone
                        conn.sendall(json.dumps({"protocol": LAUNCHER_PROTOCOL, **reply}).encode() + b"\n")
        finally:  # a newer launcher may have taken the socket and pid file over: remove only our own
            with contextlib.suppress(OSError):
                if path.stat().st_ino == bound:
                    path.unlink()
            with contextlib.suppress(OSError, ValueError):
                if int((ws / LAUNCHER_PID).read_text().strip()) == os.getpid():
                    (ws / LAUNCHER_PID).unlink()


def _job_request(req: Any) -> dict:
    """The job of a launcher request; ValueError for a request of another protocol (nothing is forked)."""
    version = req.get("protocol") if isinstance(req, dict) else None
    if version != LAUNCHER_PROTOCOL or not isinstance(req.get("job"), dict):
        raise ValueError(f"this launcher speaks protocol {LAUNCHER_PROTOCOL}; received: protocol {version!r}. "
                         "Fix: launch the job the ordinary way")
    return req["job"]


def _reap_jobs(*_: Any) -> None:
    """In the launcher, on SIGCHLD: reap every ended child; a job killed by a signal is marked failed with the
    signal and limit named (:func:`builder.runs.job_sandbox.record_death`)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ws, run_id = _FORKED.pop(pid, (None, ""))
        if ws is not None:
            with contextlib.suppress(Exception):
                job_sandbox.record_death(RunStore(ws, actor=SYSTEM, mark_interrupted=False), run_id, pid,
                                         -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _fork_job(ws: Path, run_id: str, log: Path, env: dict, close: tuple[int, ...]) -> int:
    pid = os.fork()
    if pid:
        _FORKED[pid] = (ws, run_id)
        return pid
    code = 1
    try:  # the child: a session of its own, output to the job log, the submitter's passed settings (PASSED_ENV)
        for fd in close:
            os.close(fd)
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for k in [k for k in os.environ if k.startswith(_PASSED_ENV)]:
            del os.environ[k]
        os.environ.update({k: str(v) for k, v in env.items() if str(k).startswith(_PASSED_ENV)})
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        code = run_job(ws, run_id, sandboxed=True)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def request(store: RunStore, run_id: str, action: Literal["pause", "resume", "stop"]) -> None:
    """Ask a job to pause, resume or stop on behalf of the store's actor (:func:`builder.access.may`: ``stop``
    for stop, ``control`` for pause and resume); its process acts within a step of reading it (~0.2 s;
    ~1 s in a shared PostgreSQL store: :data:`SHARED_POLL_S`).

    Raises:
        AccessDenied: a run the actor may not control, worded as an unknown one.
        RunStoreError: unknown action, or a run that is not queued, running or paused.
    """
    if action not in CONTROL_ACTIONS:
        raise RunStoreError(f"unknown job action; received: {action!r}. Fix: use one of {', '.join(CONTROL_ACTIONS)}")
    who = store.who()
    store.mark_interrupted()
    try:
        run = store.get(run_id, actor=SYSTEM)  # an admin stops jobs it may not read
    except RunStoreError:
        raise refusal(run_id) from None
    check(who, STOP if action == "stop" else CONTROL, run)
    if not is_live(run["status"]):
        raise RunStoreError(f"run {run['id']} is {run['status']}; only a queued, running or paused job can {action}")
    store.set_control(run["id"], action)


def queue_position(store: RunStore, run_id: str) -> int | None:
    """1-based place of a queued job (one the store's actor may read) among this host's waiting jobs; None when it
    is not queued. Raises AccessDenied."""
    return store.queue_position(store.get(run_id)["id"])


def wait(store: RunStore, run_ids: list[str], timeout: float | None = None) -> dict[str, str]:
    """Wait until every run has a final status (finished, stopped, failed, interrupted).

    Returns ``{run id: status}``; when ``timeout`` seconds pass first, the statuses as they stand.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        store.mark_interrupted()
        out = {rid: store.get(rid)["status"] for rid in run_ids}
        if all(is_final(s) for s in out.values()):
            return out
        if deadline is not None and time.monotonic() >= deadline:
            return out
        time.sleep(POLL_S)


# ------------------------------------------------------------------------------------------ the process
class StoreControl(Callback):
    """Trainer callback polling the run's ``control`` column in a thread and pausing/resuming/stopping."""

    def __init__(self, store: RunStore, run_id: str, poll_s: float | None = None):
        shared = not is_sqlite(getattr(store, "db_url", "sqlite:"))  # hundreds of jobs on one server: poll less
        self.store, self.run_id, self.poll_s = store, run_id, poll_s or (SHARED_POLL_S if shared else POLL_S)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.trainer: Any = None

    def apply(self, action: str) -> None:
        """Forward one action to the trainer."""
        getattr(self.trainer, action)()

    def _poll(self) -> None:
        while not self._done.wait(self.poll_s):
            try:
                action = self.store.take_control(self.run_id)
            except RunStoreError:
                continue
            if action:
                self.apply(action)

    def on_train_begin(self, trainer: Any) -> None:
        """Start polling."""
        self.trainer = trainer
        action = self.store.take_control(self.run_id)  # a request made while the job was queued
        if action in ("pause", "stop"):
            self.apply(action)
        self._thread = threading.Thread(target=self._poll, name="layerlab-control", daemon=True)
        self._thread.start()

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        """Nothing per epoch."""
        return None

    def on_train_end(self, trainer: Any, result: Any) -> None:
        """Stop polling."""
        self._done.set()


def _callbacks(names: list[str], store: RunStore, run_id: str) -> list:
    class _SaveLive(Callback):  # writes the frames to the run folder after every recorded epoch
        def __init__(self, live: Any, path: Path):
            self.live, self.path, self._n = live, path, 0

        def on_epoch_end(self, trainer, epoch, logs):
            if len(self.live.frames) != self._n:
                self._n = len(self.live.frames)
                self.live.save(self.path)

    out: list = [StoreControl(store, run_id)]
    for n in names:
        kind, _, method = str(n).partition(":")
        if kind == "live_attributions":  # Captum (and matplotlib) imported only by a job that records them
            from builder.interpret.live import LiveAttributions  # lazy: heavy (captum)

            live = LiveAttributions(method or "integrated_gradients")
            out += [live, _SaveLive(live, store.folder(run_id).live_attributions)]
        elif kind == "decision_boundary":  # grid per epoch in the epoch metrics (2-D toy data; else silent)

            out.append(DecisionBoundary())
    return out


# Forward multiply-adds per batch that keep one more core busy: below this a step is too short for a second
# thread to pay for its hand-offs (bench/cpu_speed.py --threads-rule; bench/RESULTS.md "Threads per job").
def job_need(spec: JobSpec) -> int:
    """GPU bytes a job is estimated to need: its graph's training memory at its batch size
    (:func:`builder.graph.memory.training_memory` on CUDA) plus a CUDA context."""
    project = load_project(spec.project)
    batch = (spec.config or {}).get("batch_size") or (project.training or {}).get("batch_size") or 64
    return training_memory(infer_shapes(project.graph), int(batch), device="cuda").peak + _gpus.CUDA_CONTEXT_BYTES


def _placements(store: RunStore) -> list[_gpus.Placed]:
    """The GPUs of this host's running jobs (recorded in their environment when they claimed their slot)."""
    import socket

    out, used = [], None
    for r in store.list_runs(status=RunStatus.RUNNING, limit=10_000, actor=SYSTEM):  # every job of the host
        run = store.get(r["id"], actor=SYSTEM)
        env = run.get("environment") or {}
        if run.get("host") in (None, socket.gethostname()) and isinstance(env.get("gpu"), int):
            used = GPU_USED() if used is None else used
            out.append(_gpus.Placed(run["id"], env["gpu"], int(env.get("gpu_need") or 0), used.get(run.get("pid"), 0)))
    return out


def claim_gpu(store: RunStore, run_id: str, need: int, gpus: list[_gpus.Gpu], limit: int,
              per_gpu: int | None = None) -> int | None:
    """Claim a slot on the GPU where the job fits (:func:`builder.runs.gpus.place`); its index, or None when it
    must wait. One job of the workspace decides at a time (a lock file), and its GPU and estimate are recorded
    in its run's environment, where the next job reads them."""
    import fcntl

    per_gpu = per_gpu or _gpus.jobs_per_gpu()
    with open(store.workspace / GPU_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            gpu = _gpus.place(need, gpus, _placements(store), per_gpu)
            if gpu is None or not store.claim_slot(run_id, limit):
                return None
            store.set_environment(run_id, gpu=gpu, gpu_need=need)
            return gpu
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_for_slot(store: RunStore, run_id: str, need: int = 0,
                   gpus: list[_gpus.Gpu] | None = None) -> tuple[bool, int | None]:
    """Claim a slot (with ``gpus``: on one where the job's ``need`` bytes fit); ``(False, None)`` when a stop was
    requested while queued (the run is then ``stopped``), else ``(True, GPU index or None)``."""
    limit, n = max_jobs(len(gpus) if gpus else None), 0
    while True:
        if gpus:
            gpu = claim_gpu(store, run_id, need, gpus, limit)
            if gpu is not None:
                return True, gpu
        elif store.claim_slot(run_id, limit):
            return True, None
        if store.get(run_id).get("control") == "stop":
            store.take_control(run_id)
            store.update_status(run_id, RunStatus.STOPPED, "stopped while queued; resume to start it")
            return False, None
        n += 1
        if n % 5 == 0:  # a dead job's slot is freed by marking it; the GPUs are asked again
            store.mark_interrupted()
            if gpus:
                gpus = GPU_QUERY() or gpus
        time.sleep(POLL_S)


def _gpu_device(spec: JobSpec, origin: dict | None) -> str | None:
    """The device setting of a job when it may go to a GPU (``auto`` or ``cuda``), else None (CPU, MPS, or a
    numbered GPU the user chose)."""
    first = origin or {}
    dev = str({**(first.get("config") or {}), **(spec.config or {})}.get("device")
              or ((first.get("project") or spec.project or {}).get("training") or {}).get("device") or "auto")
    return dev if dev in ("auto", "cuda") else None


def run_job(workspace: str | Path, run_id: str, *, sandboxed: bool = False) -> int:
    """The job process body: wait for a slot, train, record; returns the exit code. ``sandboxed`` (the job
    processes' entries): once the slot is claimed, enter :mod:`builder.runs.job_sandbox` for good (limits, clean
    environment, no new processes); a caller that runs a job in its own process leaves it False."""
    import torch

    from builder.runs.pipeline import run_training  # lazy: heavy (safetensors)

    store = RunStore(workspace, actor=SYSTEM, mark_interrupted=False)
    data = json.loads(store.folder(run_id).job_spec.read_text(encoding="utf-8"))
    owner = owner_of(store.get(run_id))  # job.json names no owner: the run row does
    origin = data.pop("origin", None)
    origin = {**origin, "owner": owner} if origin else None
    spec = JobSpec(**{**data, "owner": owner})
    store = store.as_actor(Actor.of_job(spec.owner))  # ids in its project (init_from, teacher) are its owner's
    torch.set_num_threads(torch_threads())
    placed = os.environ.get("LAYERLAB_JOB_PLACED") == run_id  # a cluster's scheduler placed it (executors.py)
    gpus = GPU_QUERY() if _gpu_device(spec, origin) and not placed else []
    need = job_need(JobSpec(**origin) if origin else spec) if gpus else 0
    if placed:  # its node and GPU share are the scheduler's: no slot of this host to wait for
        store.update_status(run_id, RunStatus.RUNNING)
    ok, gpu = (True, None) if placed else _wait_for_slot(store, run_id, need, gpus)
    if not ok:
        return 0
    tmp = store.folder(run_id).tmp  # limits, clean environment, no new processes, before the model is built
    config = {**(store.get(run_id).get("config") or {}), **(origin or {}).get("config", {}), **(spec.config or {})}
    lim = job_sandbox.job_limits(cuda=torch.cuda.is_available())  # a CPU host caps private memory by default
    if sandboxed:
        lim = job_sandbox.enter(tmp, lim, processes=job_sandbox.compiles(config))
        job_sandbox.crash_hook_for_tests(store.get(run_id).get("name"))  # tests only: unset in production

    scrub_credentials(workspace, spec.tracking)  # the admin's MLflow credentials go to the admin's tracker only
    if gpu is not None:  # the GPU the packing chose (builder.runs.gpus), as the job's device
        spec.config = {**(spec.config or {}), "device": f"cuda:{gpu}"}
    print(f"job {run_id}: pid {os.getpid()}, {torch.get_num_threads()} torch threads"
          + (f", GPU {gpu} (estimate {need / 2**30:.2f} GiB)" if gpu is not None else ""), flush=True)
    try:  # from here on a failure (a limit met while importing, too) is recorded with the run
        callbacks = _callbacks(list(spec.callbacks), store, run_id)
        signal.signal(signal.SIGTERM, lambda *_: callbacks[0].trainer and callbacks[0].trainer.stop())
        first = JobSpec(**origin) if (spec.resume_run and origin) else spec
        if spec.resume_run and store.folder(run_id).has_checkpoint:
            from builder.runs.prune_run import resume_pruned  # lazy: heavy (safetensors)

            # resume_run, and for an unstructured pruned run its mask re-installed first
            result = resume_pruned(store, run_id, callbacks=callbacks, overrides=dict(spec.config or {}) or None,
                                   claimed=True, tracking=tracker(spec.tracking))
        elif first.kind == "prune":  # a prune job (or one stopped before its first checkpoint): prune, fine-tune
            from builder.runs.prune_run import run_prune_job  # lazy: heavy (safetensors)

            rep = run_prune_job(store, run_id, first.prune, callbacks, tracking=tracker(spec.tracking))
            print(f"job {run_id}: pruned run {rep.parent_id}, {store.get(run_id)['status']}", flush=True)
            return 0
        else:  # a new run, or one stopped before its first checkpoint: train from the start
            config = {**first.config, **spec.config} if first is not spec else dict(spec.config or {})
            # the submitter's uploads resolve in its own folder; a path only in a job of the CLI's local user
            src = run_source(store.workspace, {"dataset_name": first.dataset, "dataset_options": first.dataset_options,
                                    "owner": first.owner})
            result = run_training(first.project, first.dataset, config, store, callbacks,
                                  dataset_options=src.options if src is not None else first.dataset_options,
                                  adapt=first.adapt, run_id=run_id, owner=first.owner, tracking=tracker(spec.tracking))
    except Exception as e:
        if isinstance(e, DiskFullError):  # one line, as everywhere (builder.disk)
            print(f"job {run_id}: {e}", flush=True)
        else:
            traceback.print_exc()
        try:
            run, limit = store.get(run_id), job_sandbox.failure_message(e, lim)
            if not is_final(run["status"]):  # failed before the trainer could record it
                store.finish(run_id, RunStatus.FAILED, message=limit or str(e) or type(e).__name__)
            elif limit and run["status"] == RunStatus.FAILED:  # the trainer recorded it; name the limit it met
                store.update_run(run_id, message=limit)
        except DiskFullError as full:  # not even the failure fits: the run is marked interrupted, resumable
            print(f"job {run_id}: {full}", flush=True)
        return 1
    finally:
        job_sandbox.leave(tmp)
    print(f"job {run_id}: {result.status} {result.message}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m builder.runs.jobs run --workspace W RUN_ID``."""
    p = argparse.ArgumentParser(prog="python -m builder.jobs.queue", description="run one LayerLab training job")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a queued job (started by builder.runs.jobs.submit)")
    r.add_argument("--workspace", required=True)
    r.add_argument("run_id")
    w = sub.add_parser("launcher", help="fork jobs from a process that has torch imported (started by submit)")
    w.add_argument("--workspace", required=True)
    args = p.parse_args(argv)
    if args.cmd == "launcher":
        return launcher(args.workspace)
    return run_job(args.workspace, args.run_id, sandboxed=True)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["JobSpec", "JOB_KINDS", "submit", "submit_group", "request", "queue_position", "max_jobs", "wait", "run_job",
           "StoreControl", "ENV_MAX_JOBS", "torch_threads", "explicit_threads", "THREADS_MACS_PER_CORE", "claim_gpu",
           "job_need", "GPU_QUERY"]
