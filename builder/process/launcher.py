"""Child processes of LayerLab: a command detached in a session of its own, or attached (waited for, and ended
with its parent), its output appended to a log.

The one place that starts LayerLab's processes: its background processes (a training job, the warm job launcher, a
study runner, a Ray task's job process) and, with :func:`spawn_sandboxed`, the sandboxed children that read an
upload or run a user's model for the server (the exchange worker, the model probe). A background process is ``sys.executable`` in a new session (so it outlives the Streamlit server, the page and the
terminal that started it), stdin from ``/dev/null``, stdout and stderr appended to one log file, no inherited
file descriptors, the folder holding this copy of ``builder`` first on ``PYTHONPATH`` (the child imports the
very code that started it), and a daemon thread that waits for it (no zombies). Example::

    >>> import tempfile, time
    >>> from pathlib import Path
    >>> log = Path(tempfile.mkdtemp()) / "help.log"
    >>> proc = spawn_detached(["-c", "print('hello from a detached child')"], log)
    >>> _ = proc.wait(60)
    >>> from builder.training.run_status import pid_alive
    >>> log.read_text().strip(), pid_alive(proc.pid)
    ('hello from a detached child', False)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from builder._moved import moved_name
from builder.data.access import LOCAL_OWNER
from builder.errors import LayerLabError
from builder.process import zygote

_reapers: list[threading.Thread] = []


def package_root() -> Path:
    """The folder that holds this copy of the ``builder`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parents[2]


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) with :func:`package_root` first on ``PYTHONPATH``."""
    out = dict(os.environ if env is None else env)
    rest = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p]
    out["PYTHONPATH"] = os.pathsep.join([str(package_root()), *rest])
    return out


def spawn_detached(args: Sequence[str], log: str | Path, *, env: Mapping[str, str] | None = None,
                   cwd: str | Path | None = None, name: str = "layerlab-reap",
                   on_exit: Callable[[int, int], None] | None = None) -> subprocess.Popen:
    """Start ``python ARGS`` (this interpreter) detached, its output appended to ``log``.

    Args:
        args: the interpreter's arguments, e.g. ``["-m", "builder.jobs.queue", "run", ...]``.
        log: the file that receives stdout and stderr (appended to; created when missing).
        env: the child's environment before :func:`child_env` adds the package root (default: :data:`BARE_ENV`
            of ours, nothing that could be a secret).
        cwd: the child's working folder (default: :func:`package_root`).
        name: the name of the thread that reaps the child.
        on_exit: called by that thread with the child's pid and exit code (negative: the signal that killed it).

    Returns:
        The ``Popen`` of the child: a session leader (``os.getsid(pid) == pid``) whose stdin is ``/dev/null``.

    Raises:
        OSError: the log cannot be opened or the interpreter cannot be started.
    """
    proc = _start(args, log, env, cwd, start_new_session=True)
    t = threading.Thread(target=_reap, args=(proc, on_exit), name=name, daemon=True)  # reaped when it ends: no zombie
    t.start()
    _reapers[:] = [r for r in _reapers if r.is_alive()] + [t]
    return proc


def ended_code(info: os.waitid_result) -> int:
    """A child's exit code from ``os.waitid``: its exit status, or minus the signal that killed it."""
    return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


def process_token(pid: int) -> str | None:
    """``"PID:START"`` for a live process: its pid and its start time (clock ticks after boot, ``/proc/PID/stat``),
    which a later process given the same pid does not share; None when it is not running (or a zombie).

    >>> token_alive(process_token(os.getpid())), process_token(2**22 + 1)
    (True, None)
    """
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError, TypeError):
        return None
    return None if len(fields) < 20 or fields[0] in ("Z", "X") else f"{int(pid)}:{fields[19]}"


def token_alive(token: str | None) -> bool:
    """Whether the process :func:`process_token` named is still the one running under its pid."""
    pid, _, start = str(token or "").partition(":")
    return pid.isdigit() and bool(start) and process_token(int(pid)) == str(token)


def _reap(proc: subprocess.Popen, on_exit: Callable[[int, int], None] | None) -> None:
    try:  # how it ended is recorded before it is reaped: until then readers see it dying (run_status.reaping)
        code = ended_code(os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT))
    except OSError:  # not ours to wait for (ChildProcessError): the ordinary wait
        code = proc.wait()
    if on_exit is not None:
        try:
            on_exit(proc.pid, code)
        except Exception as e:  # noqa: BLE001 - a reaper thread must not die loudly; the run store is the record
            print(f"layerlab: after process {proc.pid} ended ({code}): {type(e).__name__}: {e}", file=sys.stderr)
    proc.wait()  # reaped now (a no-op when it already was)


def run_attached(args: Sequence[str], log: str | Path, *, env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None) -> tuple[int, int]:
    """Run ``python ARGS`` to its end, its output appended to ``log``, killed (SIGKILL) if the thread that started
    it dies first (``PR_SET_PDEATHSIG``: a Ray task's job process ends with its worker or its node). ``env`` and
    ``cwd`` as :func:`spawn_detached`. Returns (pid, exit code; negative: the signal that killed it).

    >>> import tempfile
    >>> run_attached(["-c", "raise SystemExit(3)"], Path(tempfile.mkdtemp()) / "x.log")[1]
    3
    """
    proc = _start(args, log, env, cwd, preexec_fn=death_signal)
    return proc.pid, proc.wait()


def death_signal(sig: int = signal.SIGKILL) -> None:
    """The signal this process gets when the thread that started it dies (``PR_SET_PDEATHSIG``; 0: none). The one
    place LayerLab sets it: a Ray task's job process, a kept job (:func:`builder.jobs.warm.kept`), a job's broker
    (until it holds the job's end)."""
    with contextlib.suppress(OSError, AttributeError):
        _LIBC.prctl(1, int(sig), 0, 0, 0)


def reap_orphans() -> None:
    """Make this process the reaper of its descendants' orphans (``PR_SET_CHILD_SUBREAPER``): a job's broker that
    outlives it to write its end is then this process's to reap, not a PID 1 that may reap nothing (the warm
    launcher, a kept job)."""
    with contextlib.suppress(OSError, AttributeError):
        _LIBC.prctl(36, 1, 0, 0, 0)


_LIBC = ctypes.CDLL(None, use_errno=True)  # opened before any fork: a preexec function only calls it


PER_OWNER_ENV = "LAYERLAB_SANDBOX_PER_OWNER"  # one person's live sandboxed children at most (default 4)
DEFAULT_PER_OWNER = 4
_live: dict[str, list[Any]] = {}  # owner -> its sandboxed children started by this process
_live_lock = threading.Lock()
_enders: dict[Any, Callable[[], bool]] = {}  # a counted child -> ends it now if it is idle (True: it ended)


def evictable(proc: Any, end_if_idle: Callable[[], bool]) -> None:
    """Let :func:`spawn_sandboxed` end ``proc`` (a counted child) to make room for another child of the same owner
    when the owner is at :func:`per_owner`: ``end_if_idle()`` ends it and returns True when it is waiting for work
    (a page session's model probe between questions), False when it is busy (answering). A tab closed or reloaded
    keeps its session, and that session's probe, for two more minutes: without this its owner's next page met "at
    most N model processes" with nothing to do but wait."""
    with _live_lock:
        _enders[proc] = end_if_idle


def per_owner() -> int:
    """``$LAYERLAB_SANDBOX_PER_OWNER`` (default :data:`DEFAULT_PER_OWNER`; not a positive number: the default)."""
    try:
        n = int(os.environ.get(PER_OWNER_ENV, "").strip())
    except ValueError:
        return DEFAULT_PER_OWNER
    return n if n > 0 else DEFAULT_PER_OWNER


def counted_owner(actor: Any) -> str | None:
    """Whose sandboxed child one started for ``actor`` (a :class:`builder.data.access.Actor`) is: its owner, or None
    (not counted) for trusted code and the CLI's local user, never limited (as in :mod:`builder.jobs.quotas`).

    >>> from builder.data.access import SYSTEM, Actor
    >>> counted_owner(Actor("anon:x")), counted_owner(Actor.local()), counted_owner(SYSTEM), counted_owner(None)
    ('anon:x', None, None, None)
    """
    owner = getattr(actor, "owner", None)
    return None if not owner or getattr(actor, "system", False) or owner == LOCAL_OWNER else str(owner)


def spawn_sandboxed(entry: str, private: str | os.PathLike, make_env: Callable[[str], Mapping[str, str]],
                    preload: tuple[str, ...] = (), *, stdout: Any, stderr: Any,
                    owner: str | None = None) -> subprocess.Popen:
    """Start ``entry`` (``"module:function"`` of this package) with ``make_env(private)`` as its whole environment
    (:func:`builder.process.sandbox.sandbox_env`: nothing of the server's), ``private`` as its working folder, in a
    session of its own (its group is killed with it), its standard input a pipe: forked from this process's sandbox
    zygote (:mod:`builder.process.zygote`, ``preload`` imported), or a fresh interpreter when there is none. The
    entry reads its request and locks itself down (:func:`builder.process.sandbox.lock_down`) before it touches
    anything untrusted. ``owner``: the person it works for; at most :func:`per_owner` of theirs live at once (each
    may hold gigabytes: one person's many tabs must not take the memory of everyone else's); None for a trusted
    caller's, not counted.

    Raises:
        LayerLabError: ``owner`` already has :func:`per_owner` live children (nothing started).
        ValueError: an entry that is not this package's.
        OSError: it cannot start.
    """
    module, _, name = entry.partition(":")
    if not module.startswith("builder.") or not all(p.isidentifier() for p in module.split(".")) \
            or not name.isidentifier():
        raise ValueError(f"a sandboxed child runs an entry point of this package; received: {entry!r}")
    if owner is None:
        return _spawn_sandboxed(module, name, private, make_env, preload, stdout, stderr)
    with _live_lock:  # the count and the child it admits, as one step
        for ended in [p for p in _enders if p.poll() is not None]:
            del _enders[ended]
        live = [p for p in _live.get(owner, []) if p.poll() is None]
        cap = per_owner()
        for idle in [p for p in live if p in _enders]:  # oldest first: room made by ending an idle one
            if len(live) < cap:
                break
            if _enders[idle]():
                live.remove(idle)
                _enders.pop(idle, None)
        if len(live) >= cap:
            raise LayerLabError(f"one person may have at most {cap} model process(es) at once (Explain, Try it, "
                                f"imports and exports), each busy now; received: {len(live)} running. Fix: wait "
                                "for an answer, an import or an export to end, then try again; an admin may raise "
                                f"{PER_OWNER_ENV}")
        proc = _spawn_sandboxed(module, name, private, make_env, preload, stdout, stderr)
        _live[owner] = [*live, proc]
        for other in [o for o, ps in _live.items() if o != owner and all(p.poll() is not None for p in ps)]:
            del _live[other]
        return proc


def _spawn_sandboxed(module: str, name: str, private: str | os.PathLike,
                     make_env: Callable[[str], Mapping[str, str]], preload: tuple[str, ...], stdout: Any,
                     stderr: Any) -> subprocess.Popen:
    forked = zygote.spawn(f"{module}:{name}", private, make_env, preload, stdin=subprocess.PIPE, stdout=stdout,
                          stderr=stderr)
    if forked is not None:  # forked from this server's warm zygote: the same environment, folder and session
        return forked  # type: ignore[return-value]
    return subprocess.Popen([sys.executable, "-c", f"from {module} import {name}; {name}()"], stdin=subprocess.PIPE,
                            stdout=stdout, stderr=stderr, env=dict(make_env(str(private))), cwd=str(private),
                            start_new_session=True, close_fds=True)


BARE_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH")
"""What a background process started without an ``env`` takes from ours: nothing that could be a secret (the
server's roles, MLflow's credentials, its database URL); a caller that means more passes it (a job:
:func:`builder.jobs.job_sandbox.job_env`)."""


def _start(args: Sequence[str], log: str | Path, env: Mapping[str, str] | None, cwd: str | Path | None,
           **popen: Any) -> subprocess.Popen:
    """``python ARGS``: stdin ``/dev/null``, output appended to ``log``, no inherited descriptors, the package root
    first on its path (:func:`child_env`), in ``cwd`` (default: :func:`package_root`); ``env`` None: only
    :data:`BARE_ENV` of ours (deny by default)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k in BARE_ENV}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=child_env(env), cwd=str(cwd or package_root()),
                                close_fds=True, **popen)


__all__ = ["spawn_detached", "run_attached", "death_signal", "reap_orphans", "child_env", "BARE_ENV", "package_root", "ended_code", "process_token", "token_alive",
           "spawn_sandboxed", "evictable", "counted_owner", "per_owner", "PER_OWNER_ENV", "DEFAULT_PER_OWNER"]


def __getattr__(name: str):  # pid_alive moved down to builder.training.run_status (builder/_moved.py)
    return moved_name(__name__, name)
