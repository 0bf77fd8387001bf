"""The warm launcher: one process that has torch, the pipeline and scikit-learn's loaders imported forks one
child per training job, so a job starts in a fraction of a second instead of seconds (a cold job imports them
itself). :func:`launch_warm` asks it for a job (:func:`builder.jobs.queue.start_local` falls back to a cold launch
when it cannot), :func:`warm_launcher` starts it ahead of the first job (the app's warm-up), :func:`launcher` is
its body (``python -m builder.jobs.queue launcher``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket as _socket
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from builder.data import builtin
from builder.data.access import SYSTEM
from builder.errors import RunStoreError
from builder.jobs import job_sandbox
from builder.process.launcher import death_signal, ended_code, reap_orphans, spawn_detached
from builder.process.sandbox import passes
from builder.runs.db import ENV_DB_URL, process_env
from builder.runs.store import RunStore
from builder.tracking_destinations import CREDENTIAL_ENV
from builder.training.run_status import pid_alive

# ---------------------------------------------------------------------------------- the warm launcher
# A fresh Python process spends seconds importing torch before it trains. A launcher process per workspace
# (``python -m builder.jobs.queue launcher``) keeps torch and the pipeline imported and forks one child per job:
# the child is a new process in a session of its own, exactly like a launched one, minus the imports. The
# launcher is started by the first submit (that job is launched the ordinary way), listens on a Unix socket
# in the workspace, reaps its children (recording a death by signal), and exits after LAUNCHER_IDLE_S (or
# $LAYERLAB_LAUNCHER_IDLE_S) seconds without a request once none of its jobs runs. When it cannot be
# reached the job is launched the ordinary way. $LAYERLAB_LAUNCHER_IDLE_S=0 starts no launcher: every job is
# launched the ordinary way (a one-job workspace, e.g. a test's or one `layerlab train`, then pays one import of
# torch instead of two).
#
# The handshake is versioned (LAUNCHER_PROTOCOL): a request is one JSON line ``{"protocol": N, "job": {"workspace",
# "run_id", "log", "env"}}`` and the reply ``{"protocol": N, "pid": PID}`` (or ``{"protocol": N, "error": ...}``).
# Both sides check N, so a launcher left running by another LayerLab version never forks a job with its code: a
# launcher that speaks an older protocol (fails on the request without forking) is retired (SIGTERM to the
# socket's peer) and a new one started; a newer one is left alone. Either way that job is launched the ordinary way.
#
# One launcher for many workspaces: $LAYERLAB_LAUNCHER_DIR names a private folder (created 0700; a folder others may
# write to is refused) that holds the launcher's files instead of the workspace; that launcher forks the jobs of
# every workspace its requests name (each job gets its workspace's run database in the request's env). One user's
# many workspaces on one machine (a test suite's, a teacher's per-class folders) then pay torch's imports once.
LAUNCHER_SOCK = "launcher.sock"  # the warm launcher's files, in the workspace folder
LAUNCHER_PID = "launcher.pid"
LAUNCHER_LOG = "launcher.log"
LAUNCHER_IDLE_S = 600.0
LAUNCHER_PROTOCOL = 3
REAP_S = 0.25  # how often an idle launcher looks for ended jobs
ENV_LAUNCHER_DIR = "LAYERLAB_LAUNCHER_DIR"
_PASSED_ENV = job_sandbox.PASSED_ENV + CREDENTIAL_ENV  # what a request may set in its job (the server chose)
_FORKED: dict[int, tuple[Path, str, str | None]] = {}  # in the launcher: pid -> (workspace, run id, run database) of its children


def _shared_dir() -> str:
    """``$LAYERLAB_LAUNCHER_DIR`` (empty: a launcher per workspace)."""
    return os.environ.get(ENV_LAUNCHER_DIR, "").strip()


def launcher_home(workspace: str | Path) -> Path:
    """The folder of the launcher that forks ``workspace``'s jobs: ``$LAYERLAB_LAUNCHER_DIR`` (one launcher for
    every workspace; created private, refused when another user owns it or others may write to it), else the
    workspace itself."""
    shared = _shared_dir()
    if not shared:
        return Path(workspace)
    home = Path(shared).expanduser().absolute()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = home.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise RunStoreError(f"the shared job launcher's folder must be private to this user; received: "
                            f"{ENV_LAUNCHER_DIR}={home} (mode {st.st_mode & 0o777:o}, owner uid {st.st_uid}). "
                            f"Fix: chmod 700 it, or name a new folder")
    return home


def _launcher_env(workspace: Path, credentials: bool = False) -> dict:
    """What a forked job's environment takes from this server: the settings a job reads
    (:data:`builder.jobs.job_sandbox.PASSED_ENV`), MLflow's credentials only with ``credentials`` (its tracker is
    the admin's: :func:`builder.jobs.job_sandbox.tracking_credentials`), and its run database."""
    passed = _PASSED_ENV if credentials else job_sandbox.PASSED_ENV
    return {**{k: v for k, v in os.environ.items() if passes(k, passed)}, **process_env(workspace)}


def _ask_launcher(path: Path, message: dict) -> tuple[dict, int | None]:
    """Send one request line to the launcher at ``path``; its reply (``{}`` when none) and its pid (None when
    the OS does not tell). Raises OSError or ValueError when it cannot be reached or answers no JSON object."""

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


def launcher_idle_s(env: Mapping[str, str] | None = None) -> float:
    """Seconds a warm launcher waits for work before it exits: ``LAYERLAB_LAUNCHER_IDLE_S`` of ``env`` (default:
    this process's environment), else LAUNCHER_IDLE_S; 0 (or less) means no launcher is started.

    >>> launcher_idle_s({"LAYERLAB_LAUNCHER_IDLE_S": "0"}), launcher_idle_s({})
    (0.0, 600.0)
    """
    return float((os.environ if env is None else env).get("LAYERLAB_LAUNCHER_IDLE_S") or LAUNCHER_IDLE_S)


def launch_warm(workspace: Path, run_id: str, log: Path, credentials: bool = False) -> int | None:
    """Ask the workspace's launcher to fork the job (``credentials``: with the admin's MLflow credentials, for a
    job that logs to the admin's tracker); its pid, or None (then a launcher is started for later, unless one of a
    newer protocol holds the socket or launchers are off: :func:`launcher_idle_s` is 0)."""
    try:
        home = launcher_home(workspace)
    except (RunStoreError, OSError) as e:  # the job still runs, launched the ordinary way
        warnings.warn(str(e), stacklevel=2)
        return None
    path = home / LAUNCHER_SOCK
    if len(str(path)) >= 100:  # longer than a Unix socket address may be
        return None
    if path.exists():
        try:
            reply, peer = _ask_launcher(path, {"protocol": LAUNCHER_PROTOCOL,
                                               "job": {"workspace": str(Path(workspace).absolute()), "run_id": run_id,
                                                       "log": str(log),
                                                       "env": _launcher_env(workspace, credentials)}})
        except (OSError, ValueError):
            reply, peer = {}, None
        version = _reply_protocol(reply)
        if version == LAUNCHER_PROTOCOL and isinstance(reply.get("pid"), int) and reply["pid"] > 0:
            return reply["pid"]
        if reply and version > LAUNCHER_PROTOCOL:
            return None  # a newer LayerLab's launcher: not ours to replace
        if reply and version < LAUNCHER_PROTOCOL:
            _retire(peer)
    if launcher_idle_s() > 0:
        _start_launcher(home)
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
    """Whether the workspace's launcher is being started, or runs (:func:`_launcher_running`)."""
    return _launcher_starting(workspace) or _launcher_running(workspace)


def _launcher_running(workspace: Path) -> bool:
    """Whether the workspace's launcher runs and takes jobs: its pid file names a live process and its socket
    exists."""
    try:
        pid = int((workspace / LAUNCHER_PID).read_text().strip())
    except (OSError, ValueError):
        return False
    return pid_alive(pid) and (workspace / LAUNCHER_SOCK).exists()


def warm_launcher(workspace: str | Path) -> bool:
    """Start the workspace's launcher ahead of the first job (the app does this in its warm-up), so that the
    first Start forks a warm process instead of launching a cold one (first curve point ~0.8 s instead of
    ~10 s on 2 cores). Returns False when one is already up or starting, the socket path is too long, or
    launchers are off (:func:`launcher_idle_s` is 0)."""
    home = launcher_home(workspace)
    if len(str(home / LAUNCHER_SOCK)) >= 100 or launcher_idle_s() <= 0 or _launcher_up(home):
        return False
    _start_launcher(home)
    return True


def _start_launcher(home: Path) -> None:
    """Start the launcher whose files live in ``home`` (a workspace, or the shared folder: :func:`launcher_home`)."""
    if _launcher_starting(home):  # one starter at a time; a stale marker is taken over
        return
    try:
        (home / "launcher.starting").write_text(str(os.getpid()))
    except OSError:
        return
    shared = bool(_shared_dir())  # home is then the shared folder
    spawn_detached(["-m", "builder.jobs.queue", "launcher", "--workspace", str(home), *(["--shared"] if shared else [])],
                   home / LAUNCHER_LOG, env={**job_sandbox.job_env(tempfile.gettempdir()),
                                             **({} if shared else process_env(home))},
                   name="layerlab-reap-launcher")


def launcher(workspace: str | Path, run: Callable[..., int], shared: bool = False) -> int:
    """The warm launcher's body: import once, then fork a job per request until idle. Its files live in
    ``workspace``; it forks that workspace's jobs, or with ``shared`` the jobs of any workspace a request names
    (``workspace`` is then the private folder of :func:`launcher_home`). A forked child calls ``run(workspace,
    run_id, sandboxed=True)`` (the queue's job body) and exits with its code."""

    import torch  # noqa: F401  - the point of this process: imported once, shared by every fork  # lazy: heavy (torch)

    from builder.runs import pipeline  # noqa: F401  # lazy: heavy (safetensors)

    builtin.preload()  # scikit-learn's dataset loaders (~1.1 s to import): imported once here, not by every forked job
    # torch's first optimizer imports torch._dynamo, sympy and mpmath (~1 s, 800 modules): once here too
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    ws = Path(workspace)
    path = ws / LAUNCHER_SOCK
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # retired or killed: clean up (finally below)
    reap_orphans()  # its jobs' brokers that outlive them (:class:`builder.process.broker._Ends`)
    with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as srv:
        path.unlink(missing_ok=True)
        srv.bind(str(path))
        bound = path.stat().st_ino
        srv.listen(16)
        srv.settimeout(REAP_S)  # ended jobs are recorded and reaped between requests (no signal handler)
        idle, since = launcher_idle_s(), time.monotonic()
        (ws / "launcher.starting").unlink(missing_ok=True)
        (ws / LAUNCHER_PID).write_text(str(os.getpid()))
        print(f"launcher {os.getpid()} ready on {path}", flush=True)
        try:
            while True:
                _reap_jobs()
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    if _FORKED or time.monotonic() - since < idle:  # its jobs still run: their ends are recorded here
                        continue
                    return 0
                since = time.monotonic()
                with conn:
                    conn.settimeout(5)  # an asker that sends nothing does not hold the launcher
                    try:
                        job = _job_request(json.loads(conn.makefile().readline() or "{}"))
                        target = Path(str(job.get("workspace") or ""))
                        if not target.is_absolute() or not (shared or target == ws.absolute()):
                            raise ValueError(f"this launcher forks the jobs of {ws}; received: workspace "
                                             f"{str(target)!r}. Fix: launch the job the ordinary way")
                        reply = {"pid": _fork_job(target, str(job["run_id"]), Path(job["log"]),
                                                  dict(job.get("env") or {}), (srv.fileno(), conn.fileno()), run)}
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


def kept(workspace: str | Path, run_id: str, run: Callable[..., int]) -> int:
    """A job started the ordinary way (cold, or by a Ray task) as a launcher of one: this process forks the job
    (``run(workspace, run_id, sandboxed=True)``, killed if this process dies) and reaps it and its orphans (its
    broker, which outlives it to write the end it held) as the warm launcher reaps its own; a job killed by a
    signal is recorded as there (:func:`builder.jobs.job_sandbox.record_death`). Returns the job's exit code
    (128 + the signal that killed it)."""
    reap_orphans()  # its jobs' brokers that outlive them (:class:`builder.process.broker._Ends`)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            death_signal()
            code = run(workspace, run_id, sandboxed=True)
        finally:
            os._exit(code)
    code = _reap({pid: (workspace, run_id, None)}, block=True).get(pid, 1)
    return code if code >= 0 else 128 - code


def _reap_jobs() -> None:
    """In the launcher, between requests: record how every ended child ended, then reap it (:func:`_reap`)."""
    _reap(_FORKED, block=False)


def _reap(forked: dict[int, tuple], *, block: bool) -> dict[int, int]:
    """Record how every ended child of this process ended, then reap it (until then readers see it dying,
    :func:`~builder.training.run_status.reaping`, and leave it to us): a job of ``forked`` (pid → its workspace,
    run id and database URL; taken out as it is reaped) killed by a signal is marked failed with the signal and
    limit named (:func:`builder.jobs.job_sandbox.record_death`), as is its run while it still names this process
    (a job that died before it took its run over). Other children (a job's broker that outlived it) are reaped.
    Returns the codes of the jobs reaped (:func:`~builder.training.run_status.ended_code`); without ``block``
    once no child has ended, with it once no child is left."""
    ended: dict[int, int] = {}
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG))
        except ChildProcessError:
            return ended
        except InterruptedError:
            continue
        if info is None:
            return ended
        pid, code = info.si_pid, ended_code(info)
        ws, run_id, db_url = forked.pop(pid, (None, "", None))
        if ws is not None:
            ended[pid] = code
            try:
                store = RunStore(ws, actor=SYSTEM, mark_interrupted=False, db_url=db_url)
                recorded = (job_sandbox.record_death(store, run_id, pid, code)
                            or job_sandbox.record_death(store, run_id, os.getpid(), code))
                print(f"job {run_id} (pid {pid}) ended: exit {code}{', recorded' if recorded else ''}", flush=True)
            except Exception:  # noqa: BLE001  the launcher keeps serving; its log says why an end went unrecorded
                print(f"job {run_id} (pid {pid}, exit {code}): its end was not recorded", flush=True)
                traceback.print_exc()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _fork_job(ws: Path, run_id: str, log: Path, env: dict, close: tuple[int, ...], run: Callable[..., int]) -> int:
    pid = os.fork()
    if pid:
        _FORKED[pid] = (ws, run_id, env.get(ENV_DB_URL) or None)
        print(f"forked job {run_id} of {ws}: pid {pid}", flush=True)
        return pid
    code = 1
    try:  # the child: a session of its own, output to the job log, the submitter's passed settings (PASSED_ENV)
        for fd in close:
            os.close(fd)
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for k in [k for k in os.environ if passes(k, _PASSED_ENV)]:
            del os.environ[k]
        os.environ.update({k: str(v) for k, v in env.items() if passes(str(k), _PASSED_ENV)})
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        print(f"job {run_id}: forked by the warm launcher {os.getppid()}", flush=True)
        code = run(ws, run_id, sandboxed=True)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


__all__ = ["launch_warm", "warm_launcher", "launcher", "kept", "launcher_home", "launcher_idle_s", "ENV_LAUNCHER_DIR",
           "LAUNCHER_SOCK", "LAUNCHER_PID", "LAUNCHER_LOG", "LAUNCHER_IDLE_S", "LAUNCHER_PROTOCOL", "REAP_S"]
