"""A warm start for sandboxed children: one clean process that has the heavy libraries imported forks them.

A sandboxed child (the model probe, the exchange worker: :func:`builder.interchange.worker.spawn_sandboxed`) used
to be a fresh interpreter that imported torch, ONNX and Captum before it did anything: 2-4 CPU-seconds per
export, import, quantization or page session. The zygote is started once per server process, with the
sandbox's clean environment (:func:`builder.process.sandbox.sandbox_env`, nothing of the server's), imports
those libraries and nothing of anyone's content, and then only forks. Each forked child, before it runs its
entry point:

- starts a session of its own (so ``killpg`` of its pid ends it and anything it left, as before);
- takes the standard input, output and error its server passed over the socket (``SCM_RIGHTS``);
- takes the whole environment and the private folder (working, home and temporary folder) of its request;
- reseeds the random generators it inherited (Python's, NumPy's, torch's);

then calls ``module:function`` of this package, which reads its request and locks itself down
(:func:`builder.process.sandbox.lock_down`: limits measured from its own footprint, seccomp, audit hook), as a
fresh interpreter's child does. The zygote itself never reads a request's content, never locks down (it must
fork) and is single-threaded when it forks. It exits when its server closes the socket (the server ended) or
after :data:`IDLE_S` seconds with no child.

The server's side (:func:`spawn`) returns a :class:`ForkedChild`, which answers as much of ``subprocess.Popen``
as the sandbox's callers use (``pid``, ``stdin``, ``stdout``, ``poll``, ``wait``, ``communicate``,
``returncode``: negative for a signal); the zygote reports each child's end. When the zygote cannot be started
or reached, :func:`spawn` returns None and the caller starts a fresh interpreter; ``LAYERLAB_SANDBOX_ZYGOTE=0``
turns it off.

Example::

    # not a doctest (starts processes): run by tests/process/test_zygote.py
    child = spawn("builder.jobs.probe_child:probe_main", private, worker_env, SANDBOX_PRELOAD, stdin=-1, stdout=-1,
                  stderr=log)
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

ENV_ZYGOTE = "LAYERLAB_SANDBOX_ZYGOTE"  # "0": every sandboxed child is a fresh interpreter
IDLE_S = 600.0  # the zygote exits after this long with no child (the next child starts a new one)
ENV_IDLE = "LAYERLAB_SANDBOX_ZYGOTE_IDLE_S"
START_TIMEOUT_S = 120.0
_MAX_MSG = 1 << 16


def enabled() -> bool:
    """Whether sandboxed children are forked from a zygote (``$LAYERLAB_SANDBOX_ZYGOTE`` is not ``0``)."""
    return os.environ.get(ENV_ZYGOTE, "1").strip() != "0" and hasattr(socket, "send_fds") and sys.platform == "linux"


# ------------------------------------------------------------------------------------------------ server side
class ForkedChild:
    """A child forked by the zygote, seen from the server: the parts of ``subprocess.Popen`` the sandbox uses."""

    def __init__(self, pid: int, stdin: IO[bytes] | None, stdout: IO[bytes] | None, zygote: _Zygote):
        self.pid, self.stdin, self.stdout, self._zygote = pid, stdin, stdout, zygote
        self.args = ["<forked by the sandbox zygote>"]

    @property
    def returncode(self) -> int | None:
        return self._zygote.ended.get(self.pid)

    def poll(self) -> int | None:
        """The exit code (negative: the signal that ended it), or None while it runs."""
        if self.returncode is None and not self._zygote.alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child's end (``subprocess.TimeoutExpired`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._zygote.cond:
            while self.pid not in self._zygote.ended:
                if not self._zygote.alive and not Path(f"/proc/{self.pid}").exists():
                    self._zygote.ended[self.pid] = -signal.SIGKILL  # its zygote died first: how it ended is unknown
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0)
                self._zygote.cond.wait(0.5 if left is None else min(left, 0.5))
        return self._zygote.ended[self.pid]

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[None, None]:
        """Write ``input`` to the child's standard input, close it, and wait (its output goes to files)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.stdin is not None:
            writer = threading.Thread(target=_write_all, args=(self.stdin, input or b""), daemon=True)
            writer.start()
            writer.join(timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return None, None


def _write_all(f: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        f.write(data)
    with contextlib.suppress(OSError, ValueError):
        f.close()


class _Zygote:
    """The server's handle on its zygote: the control socket, the reader thread, the children's ends."""

    def __init__(self, make_env: Callable[[str], Mapping[str, str]], preload: tuple[str, ...]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.private = tempfile.mkdtemp(prefix="layerlab-zygote-")
        env = dict(make_env(self.private))
        try:
            with open(Path(self.private) / "zygote.log", "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", f"from builder.process.zygote import serve; "
                     f"serve({theirs.fileno()}, {_idle_s()!r}, {tuple(preload)!r})"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=self.private,
                    start_new_session=True, pass_fds=[theirs.fileno()])
        finally:
            theirs.close()
        self.sock = ours
        self.cond = threading.Condition()
        self.ended: dict[int, int] = {}
        self.replies: list[dict] = []
        self.alive = True
        self.lock = threading.Lock()  # one request at a time
        self.requests = 0
        threading.Thread(target=self._read, name="layerlab-zygote", daemon=True).start()
        ready = self._reply(time.monotonic() + START_TIMEOUT_S)
        if not (ready and ready.get("ready")):
            self.close()
            raise OSError("the sandbox zygote did not start")

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(_MAX_MSG)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.alive = False
                    self.cond.notify_all()
                    return
                msg = json.loads(data)
                if "exit" in msg:
                    self.ended[int(msg["exit"])] = int(msg["code"])
                else:
                    self.replies.append(msg)
                self.cond.notify_all()

    def _reply(self, deadline: float, rid: int | None = None) -> dict | None:
        """The zygote's next reply (to request ``rid``: a late reply to an earlier, abandoned request is dropped)."""
        with self.cond:
            while True:
                while self.replies:
                    msg = self.replies.pop(0)
                    if rid is None or msg.get("id") == rid:
                        return msg
                if not self.alive or time.monotonic() >= deadline:
                    return None
                self.cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))

    def fork(self, entry: str, private: str, env: Mapping[str, str], fds: list[int]) -> int | None:
        """Ask for a child; its pid, or None when the zygote is gone or refused."""
        with self.lock:
            if not self.alive:
                return None
            self.requests += 1
            req = json.dumps({"id": self.requests, "entry": entry, "private": str(private), "env": dict(env)}).encode()
            try:
                socket.send_fds(self.sock, [req], fds)
            except OSError:
                return None
            reply = self._reply(time.monotonic() + 30, self.requests)
        if not (reply and "pid" in reply):
            return None
        with self.cond:  # a pid the kernel reused: the end recorded for its earlier owner is not this child's
            self.ended.pop(int(reply["pid"]), None)
        return int(reply["pid"])

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.proc.wait(5)
        import shutil  # lazy: only on close

        shutil.rmtree(self.private, ignore_errors=True)


_ZYGOTE: _Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()
_FRESH_LEFT = 1  # children started fresh before the zygote is (none once warm() ran): a one-shot process
# (`layerlab predict`) starts one child, and a zygote would import more than that child does; a server is not one


def shutdown() -> None:
    """End this process's zygote and the children it forked, and reap it (at exit: their CPU time is then
    counted as this process's children's, and nothing is left behind)."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is not None:
            _ZYGOTE.close()
        _ZYGOTE = None


atexit.register(shutdown)


def _zygote(make_env: Callable[[str], Mapping[str, str]], preload: tuple[str, ...]) -> _Zygote | None:
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is not None and _ZYGOTE.alive and _ZYGOTE.proc.poll() is None:
            return _ZYGOTE
        if _ZYGOTE is not None:
            _ZYGOTE.close()
        try:
            _ZYGOTE = _Zygote(make_env, preload)
        except OSError:
            _ZYGOTE = None
        return _ZYGOTE


def warm(make_env: Callable[[str], Mapping[str, str]], preload: tuple[str, ...]) -> bool:
    """Start this process's zygote ahead of the first sandboxed child (a server's warm-up); whether one runs.
    A process that warms its zygote is a server, not a one-shot command: a zygote of its that ended (idle for
    :data:`IDLE_S`, or killed) is started again by the next child, which forks from it (one cold start for whoever
    comes back, not a fresh interpreter first and the zygote's start at the child after it)."""
    global _FRESH_LEFT
    if not enabled():
        return False
    with _ZYGOTE_LOCK:
        _FRESH_LEFT = 0
    return _zygote(make_env, preload) is not None


def _pipe_or(spec: Any, for_child_reading: bool) -> tuple[int, IO[bytes] | None, int | None]:
    """(the fd the child gets, the server's end as a file or None, an fd to close after sending)."""
    if spec == subprocess.PIPE:
        r, w = os.pipe()
        if for_child_reading:
            return r, os.fdopen(w, "wb", buffering=0), r
        return w, os.fdopen(r, "rb", buffering=0), w
    if spec == subprocess.DEVNULL or spec is None:
        fd = os.open(os.devnull, os.O_RDWR)
        return fd, None, fd
    return spec.fileno(), None, None


def spawn(entry: str, private: str | os.PathLike, make_env: Callable[[str], Mapping[str, str]],
          preload: tuple[str, ...], *, stdin: Any, stdout: Any, stderr: Any) -> ForkedChild | None:
    """Fork ``entry`` (``"module:function"``) from this process's zygote with ``make_env(private)`` as its whole
    environment and ``private`` as its folder; ``stdin``/``stdout``/``stderr`` as for ``subprocess.Popen``
    (``PIPE``, ``DEVNULL`` or a file). The zygote itself is started with ``make_env`` of a folder of its own and
    imports ``preload`` (modules that start no thread) before it forks: by :func:`warm`, or at a process's second
    child (its first is a fresh interpreter, unless the process warmed a zygote: then at any child). None when the zygote is off, not started yet, cannot start or
    refused (start a fresh interpreter)."""
    global _FRESH_LEFT
    if not enabled():
        return None
    with _ZYGOTE_LOCK:
        running = _ZYGOTE is not None and _ZYGOTE.alive
        if not running and _FRESH_LEFT > 0:  # a process that may start one child only (a CLI command) pays no
            _FRESH_LEFT -= 1  # zygote: its first child is a fresh interpreter, the zygote comes with the second
            return None
    env = make_env(str(private))
    zyg = _zygote(make_env, preload)
    if zyg is None:
        return None
    specs = [_pipe_or(stdin, True), _pipe_or(stdout, False), _pipe_or(stderr, False)]
    try:
        pid = zyg.fork(entry, str(private), env, [s[0] for s in specs])
    finally:
        for _, _, close in specs:
            if close is not None:
                os.close(close)
    if pid is None:
        for _, f, _ in specs:
            if f is not None:
                f.close()
        return None
    return ForkedChild(pid, specs[0][1], specs[1][1], zyg)


# ------------------------------------------------------------------------------------------------ zygote side
def serve(fd: int, idle_s: float = IDLE_S, preload: tuple[str, ...] = ()) -> None:
    """The zygote's body: import ``preload``, say ready, then fork a child per request and report each child's
    end, until the server closes the socket or ``idle_s`` seconds pass with no child."""
    sock = socket.socket(fileno=fd)
    for m in preload:  # "module", or "module:function" called once imported (a warm-up of its own)
        module, _, fn = m.partition(":")
        with contextlib.suppress(Exception):
            loaded = importlib.import_module(module)
            if fn:
                getattr(loaded, fn)()
    gc.collect()
    gc.freeze()  # the imported objects leave the collector's view: a child's collections do not touch (copy) them
    wake_r, wake_w = os.pipe()  # SIGCHLD wakes the select below (a child's end is reported at once)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sock.send(json.dumps({"ready": True, "pid": os.getpid(), "threads": threading.active_count()}).encode())
    children: set[int] = set()
    idle_since = time.monotonic()
    while True:
        readable, _, _ = select.select([sock, wake_r], [], [], 1.0)
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                idle_since = time.monotonic()
                with contextlib.suppress(OSError):
                    sock.send(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}).encode())
        if sock in readable:
            try:
                data, fds, _, _ = socket.recv_fds(sock, _MAX_MSG, 3)
            except OSError:
                data, fds = b"", []
            if not data:  # the server ended (or shut the zygote down): its children end with it
                for child in children:
                    with contextlib.suppress(OSError):
                        os.killpg(child, signal.SIGKILL)
                for child in children:
                    with contextlib.suppress(OSError):
                        os.waitpid(child, 0)
                return
            req = json.loads(data)
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_r)
                os.close(wake_w)
                _child(sock, req, fds)  # never returns
            for f in fds:
                os.close(f)
            children.add(pid)
            sock.send(json.dumps({"id": req.get("id"), "pid": pid}).encode())
        if not children and time.monotonic() - idle_since > idle_s:
            return


def _idle_s() -> float:
    """``$LAYERLAB_SANDBOX_ZYGOTE_IDLE_S`` of the server (default :data:`IDLE_S`), passed to the zygote, whose
    environment is the sandbox's clean one."""
    try:
        return max(0.0, float(os.environ.get(ENV_IDLE, IDLE_S)))
    except ValueError:
        return IDLE_S


def _child(sock: socket.socket, req: dict, fds: list[int]) -> None:
    """In the forked child: a session, the passed standard streams, the request's environment and folder, new
    random seeds; then the entry point. Exits with its code (1 and a traceback on stderr for an exception)."""
    code = 1
    try:
        sock.close()
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            if fd > 2:
                os.close(fd)
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["private"])
        tempfile.tempdir = None
        _reseed()
        module, _, name = str(req["entry"]).partition(":")
        if not module.startswith("builder.") or not name.isidentifier():
            raise ValueError(f"a sandboxed child runs an entry point of this package; received: {req['entry']!r}")
        getattr(importlib.import_module(module), name)()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001  printed to the child's stderr, as a fresh interpreter would
        import traceback  # lazy: only on failure

        traceback.print_exc()
    finally:
        for f in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                f.flush()
        os._exit(code)


def _reseed() -> None:
    """New random states for a forked child (a fresh interpreter seeds them from the OS)."""

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


__all__ = ["ENV_ZYGOTE", "ForkedChild", "enabled", "serve", "shutdown", "spawn", "warm"]
