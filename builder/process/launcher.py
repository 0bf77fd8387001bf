"""Detached processes: start a command in a session of its own with its output appended to a log, and tell
whether a process id still names a live process.

The one place that starts LayerLab's background processes (a training job, the warm job launcher, a study
runner): each is ``sys.executable`` in a new session (so it outlives the Streamlit server, the page and the
terminal that started it), stdin from ``/dev/null``, stdout and stderr appended to one log file, no inherited
file descriptors, the folder holding this copy of ``builder`` first on ``PYTHONPATH`` (the child imports the
very code that started it), and a daemon thread that waits for it (no zombies). Example::

    >>> import tempfile, time
    >>> from pathlib import Path
    >>> log = Path(tempfile.mkdtemp()) / "help.log"
    >>> proc = spawn_detached(["-c", "print('hello from a detached child')"], log)
    >>> _ = proc.wait(60)
    >>> log.read_text().strip(), pid_alive(proc.pid)
    ('hello from a detached child', False)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

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
        env: the child's environment before :func:`child_env` adds the package root (default: ours).
        cwd: the child's working folder (default: :func:`package_root`).
        name: the name of the thread that reaps the child.
        on_exit: called by that thread with the child's pid and exit code (negative: the signal that killed it).

    Returns:
        The ``Popen`` of the child: a session leader (``os.getsid(pid) == pid``) whose stdin is ``/dev/null``.

    Raises:
        OSError: the log cannot be opened or the interpreter cannot be started.
    """
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=child_env(env), cwd=str(cwd or package_root()),
                                start_new_session=True, close_fds=True)
    t = threading.Thread(target=_reap, args=(proc, on_exit), name=name, daemon=True)  # reaped when it ends: no zombie
    t.start()
    _reapers[:] = [r for r in _reapers if r.is_alive()] + [t]
    return proc


def _reap(proc: subprocess.Popen, on_exit: Callable[[int, int], None] | None) -> None:
    code = proc.wait()
    if on_exit is not None:
        try:
            on_exit(proc.pid, code)
        except Exception as e:  # noqa: BLE001 - a reaper thread must not die loudly; the run store is the record
            print(f"layerlab: after process {proc.pid} ended ({code}): {type(e).__name__}: {e}", file=sys.stderr)


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` names a live process of this host (a zombie, a killed child not reaped yet, is dead).

    This process is alive; a process of another user is alive (we may not signal it, but it exists); anything
    that is not a positive int is not.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that was not reaped yet is a zombie: dead for our purpose
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


__all__ = ["spawn_detached", "pid_alive", "child_env", "package_root"]
