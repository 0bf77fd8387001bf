"""The process sandbox: resource limits, a clean environment and no new processes, for every process that reads
an uploaded file or runs a user's model for the server (the import worker and the Explain page's model probe,
:mod:`builder.interchange.worker`; training jobs and study runners, :mod:`builder.jobs.job_sandbox`).

- :class:`WorkerLimits` says how far a process may go: memory (``"address"``: address space over its start-up
  footprint, for workers; ``"data"``: private writable memory, ``RLIMIT_DATA``, for jobs, whose memory-mapped
  image caches and CUDA reservations must not count), CPU seconds, the largest file it may write, no core files;
  the environment variables ``PREFIX_MEMORY_MB``, ``PREFIX_CPU_S`` and ``PREFIX_FILE_MB`` set them;
- :func:`sandbox_env` is a child's whole environment: ``PATH``, the locale, this package on ``PYTHONPATH``, a
  private ``HOME``/``TMPDIR``, and only the variables it is given leave to pass (no secret of the server);
- :func:`lock_down` sets the limits inside the process and forbids new processes: a seccomp filter (Linux x86-64
  and aarch64) refuses ``fork``/``vfork``/``execve``/process ``clone`` in native code, an audit hook every
  ``subprocess``/``os.system``/``os.exec*``/``os.fork``/``os.posix_spawn``;
- :func:`death_message` and :func:`limit_message` word a process's end by a signal or a limit as one line.

Example::

    >>> lim = WorkerLimits(memory_mb=512, cpu_s=60, file_mb=16, prefix="LAYERLAB_JOB")
    >>> print(death_message(-24, lim, what="the training job", outcome="The run failed", fix="train fewer epochs"))
    the training job died from SIGXCPU: its CPU time ran out (limit 60 s; raise LAYERLAB_JOB_CPU_S). The run failed; the app is unaffected. Fix: train fewer epochs
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import platform
import signal
import site
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from builder.process.launcher import package_root

_BLOCKED_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                             "os.forkpty", "pty.spawn", "os.startfile"})


@dataclass(frozen=True)
class WorkerLimits:
    """Limits of one sandboxed process; sizes in MiB, time in seconds, 0 for no limit (memory and CPU).

    ``memory``: ``"address"`` caps the address space at the start-up footprint plus ``memory_mb``;
    ``"data"`` caps private writable memory (``RLIMIT_DATA``) at ``memory_mb`` in all, leaving read-only
    and shared file mappings and reserved-but-inaccessible ranges uncounted. ``prefix`` names the
    environment variables that set the limits (``PREFIX_MEMORY_MB``, ``PREFIX_CPU_S``, ``PREFIX_FILE_MB``).
    ``"resident"`` sets no kernel limit: the process's owner watches its resident memory (a GPU job's, whose
    CUDA runtime maps gigabytes of writable address space it never touches). ``runtime_mb``: the memory a
    runtime held when the limits were set (a GPU job's torch and CUDA runtime, measured), allowed on top of
    ``memory_mb`` and named beside it.
    """

    memory_mb: int
    cpu_s: int
    file_mb: int
    memory: Literal["address", "data", "resident"] = "address"
    prefix: str = "LAYERLAB_WORKER"
    runtime_mb: int = 0


def env_positive(name: str, default: float, kind: type = int, env: Mapping[str, str] | None = None) -> Any:
    """A positive number from the environment variable ``name`` (of ``env``, default: ours) read as ``kind``;
    ``default`` when it is unset, not a number or not above 0 (the sandbox's, the jobs' and the model probe's
    settings)."""
    try:
        v = kind(str((os.environ if env is None else env).get(name, "")).strip())
        return v if v > 0 else default
    except ValueError:
        return default


def passes(name: str, passed: tuple[str, ...]) -> bool:
    """Whether ``passed`` lets the variable ``name`` through: an entry ending in ``_`` is a prefix, any other an
    exact name.

    >>> passes("LAYERLAB_JOB_CPU_S", ("LAYERLAB_JOB_CPU_S",)), passes("LAYERLAB_ADMINS", ("LAYERLAB_JOB_CPU_S",))
    (True, False)
    """
    return any(name.startswith(p) if p.endswith("_") else name == p for p in passed)


def sandbox_env(private: str | os.PathLike, passed: tuple[str, ...] = (),
                source: Mapping[str, str] | None = None) -> dict[str, str]:
    """A sandboxed process's whole environment: nothing of ``source`` (default: ours) but ``PATH``, the locale
    and the variables ``passed`` names (an entry ending in ``_`` is a prefix, any other an exact name: a prefix
    such as ``LAYERLAB_`` or ``MLFLOW_`` would pass the server's secrets); ``HOME`` and the temporary folder are
    ``private``; this package (and the user site, when this interpreter uses it) importable.

    >>> sorted(sandbox_env("/p", ("OMP_NUM_THREADS", "PYTORCH_"), {"OMP_NUM_THREADS_X": "1",
    ...     "OMP_NUM_THREADS": "2", "PYTORCH_CUDA_ALLOC_CONF": "x", "LAYERLAB_ADMINS": "a"}))[:3]
    ['HOME', 'LANG', 'OMP_NUM_THREADS']
    >>> [k for k in sandbox_env("/p", ("PYTORCH_",), {"PYTORCH_CUDA_ALLOC_CONF": "x"}) if k.startswith("PY")][:1]
    ['PYTORCH_CUDA_ALLOC_CONF']
    """
    src = os.environ if source is None else source
    paths = [str(package_root())]
    paths += [p for p in src.get("PYTHONPATH", "").split(os.pathsep) if p]
    try:
        user_site = site.getusersitepackages()
        if user_site in sys.path:
            paths.append(user_site)
    except (AttributeError, ValueError):
        pass
    env = {k: str(v) for k, v in src.items() if passes(k, passed)}
    env.update({"PATH": src.get("PATH", "/usr/bin:/bin"), "HOME": str(private), "TMPDIR": str(private),
                "TMP": str(private), "TEMP": str(private), "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "LANG": src.get("LANG", "C.UTF-8")})
    for k in ("LC_ALL", "LC_CTYPE"):
        if k in src:
            env[k] = src[k]
    return env


def limit_why(kind: str, lim: WorkerLimits, raise_to: str = "") -> str:
    """What a limit of ``lim`` did and the variable that raises it: ``kind`` is ``"cpu"``, ``"file"`` or
    ``"memory"``; ``raise_to`` (memory, file) says how far to raise it and why."""
    if kind == "cpu":
        return f"its CPU time ran out (limit {lim.cpu_s} s; raise {lim.prefix}_CPU_S)"
    to = f" to at least {raise_to}" if raise_to else ""
    if kind == "file":
        return f"it wrote a file over the size limit ({lim.file_mb} MiB; raise {lim.prefix}_FILE_MB{to})"
    over = {"address": " over its start-up footprint", "resident": " of resident memory"}.get(lim.memory, "")
    runtime = f" over the {lim.runtime_mb} MiB torch and its CUDA runtime held at its start" if lim.runtime_mb else ""
    return f"it ran out of memory (limit {lim.memory_mb} MiB{over}{runtime}; raise {lim.prefix}_MEMORY_MB{to})"


def limit_message(kind: str, lim: WorkerLimits, *, what: str, outcome: str, fix: str, raise_to: str = "") -> str:
    """One line for a process that met a limit of ``lim`` (``kind`` and ``raise_to`` as in :func:`limit_why`) and
    said so."""
    return f"{what} stopped: {limit_why(kind, lim, raise_to)}. {outcome}; the app is unaffected. Fix: {fix}"


def death_message(code: int | None, lim: WorkerLimits, *, what: str = "the worker process",
                  outcome: str = "Nothing was imported", fix: str = "check the file, or try a smaller model") -> str:
    """One line for a process that ended without an answer: ``what`` died from which signal and why (``outcome``
    says what that means for the user), or the exit code."""
    if code is not None and code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        why = {signal.SIGSEGV: "a crash in native code (segmentation fault)",
               signal.SIGBUS: "a crash in native code (bus error)",
               signal.SIGABRT: "an abort in native code",
               signal.SIGILL: "a crash in native code (illegal instruction)",
               signal.SIGFPE: "a crash in native code (arithmetic fault)",
               signal.SIGXCPU: limit_why("cpu", lim),
               signal.SIGXFSZ: limit_why("file", lim),
               signal.SIGKILL: "it was killed (out of memory, or stopped)"}.get(sig, "a signal")
        return f"{what} died from {name}: {why}. {outcome}; the app is unaffected. Fix: {fix}"
    return f"{what} ended without an answer (exit code {code}). {outcome}. Fix: {fix}"


def scrub_initial_environment() -> bool:
    """Zero the environment block this process started with: ``os.environ.clear()`` leaves it in memory, where
    ``/proc/self/environ`` (and any code reading the process's memory) still finds each variable. libc lets go of
    it first (``clearenv``), so call this with ``os.environ`` empty, before setting what stays. Returns whether
    it was scrubbed (False without ``/proc``)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            tail = fh.read().rsplit(")", 1)[1].split()
        start, end = int(tail[47]), int(tail[48])  # the fields env_start and env_end (50 and 51 of proc(5))
        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, IndexError, ValueError):
        return False
    if not 0 < start < end:
        return False
    libc.clearenv()
    ctypes.memset(start, 0, end - start)
    return True


def lock_down(lim: WorkerLimits, preload: tuple[str, ...] = (), *, who: str = "the import worker",
              processes: bool = False, network: bool = True, udp: bool = True) -> None:
    """Inside a sandboxed process: import ``preload`` (measured into the start-up footprint), set the limits of
    ``lim`` and, unless ``processes``, forbid new processes (seccomp and an audit hook; ``who`` names the
    process in the refusal). Without ``network`` it makes no network socket at all, without ``udp`` no UDP one
    (:func:`_seccomp`)."""
    _preload(preload)
    _set_limits(lim)
    drop_capabilities()
    if not processes:
        _no_new_processes(who, network=network, udp=udp)
    else:  # its compilers may start; it reaches no process it did not start
        _seccomp(processes=True, network=network, udp=udp)


def cpu_budget(seconds: int, grace: int | None = None) -> None:
    """Inside a long-lived process: allow ``seconds`` more CPU time from now (the soft ``RLIMIT_CPU`` moved to
    the time used so far plus ``seconds``, never over the hard limit); past it the kernel sends SIGXCPU.
    With ``grace``, the hard limit (SIGKILL) is set ``grace`` seconds after the soft one."""
    import resource  # lazy: POSIX only (resource)

    used = resource.getrusage(resource.RUSAGE_SELF)
    total = int(used.ru_utime + used.ru_stime) + max(1, int(seconds))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if grace is not None and (hard == resource.RLIM_INFINITY or total + grace <= hard):
        hard = total + max(1, int(grace))
    value = total if hard == resource.RLIM_INFINITY else min(total, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (value, hard))


def _preload(modules: tuple[str, ...]) -> None:
    """Import the libraries a task needs before the address-space limit is measured and set."""

    for m in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(m)


def _vm_size(field: str = "VmSize") -> int:
    """This process's mapped address space in bytes (0 where /proc is missing); ``field="VmData"``: its private
    writable memory, what ``RLIMIT_DATA`` counts."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def resident_size() -> int:
    """This process's resident memory in bytes (``/proc/self/statm``; 0 where it is missing).

    >>> resident_size() > 0 or not Path("/proc/self/statm").exists()
    True
    """
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def data_size() -> int:
    """This process's private writable memory in bytes, as ``RLIMIT_DATA`` counts it (0 where /proc is missing).

    >>> data_size() > 0 or not Path("/proc/self/status").exists()
    True
    """
    return _vm_size("VmData")


CPU_KILL_AFTER_S = 5
"""Seconds of CPU time past a sandboxed process's CPU limit (SIGXCPU) at which the kernel kills it (SIGKILL)."""


def _set_limits(lim: WorkerLimits) -> None:
    """Soft and hard limits alike: a soft limit alone, the process (a model that took it over) raises again up to
    the hard one, which was the server's (unlimited). The CPU's hard limit comes :data:`CPU_KILL_AFTER_S` later,
    so SIGXCPU still says why it ended. (A long-lived probe moves its CPU limit per question with
    :func:`cpu_budget`; its parent's timeout bounds each question.)"""
    import resource  # lazy: POSIX only (resource)

    def cap(which: int, value: int, kill_after: int = 0) -> None:
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        top = value + kill_after if hard == resource.RLIM_INFINITY else min(value + kill_after, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, top))

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-large write is an OSError (EFBIG), not a kill
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, lim.file_mb * 2**20)
    if lim.cpu_s > 0:
        cap(resource.RLIMIT_CPU, lim.cpu_s, CPU_KILL_AFTER_S)
    if lim.memory_mb > 0 and lim.memory == "data":
        cap(resource.RLIMIT_DATA, (lim.memory_mb + lim.runtime_mb) * 2**20)
    elif lim.memory_mb > 0 and lim.memory == "address":
        cap(resource.RLIMIT_AS, _vm_size() + lim.memory_mb * 2**20)


_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4


def drop_capabilities() -> bool:
    """Give up every capability, for good: the bounding set, the ambient set, then the effective, permitted and
    inheritable ones (``capset``). A server run as root (a container's default) started its sandboxed processes
    with all of root's: a model that took one over could change its user id, raise its own hard limits
    (``CAP_SYS_RESOURCE``), load kernel modules, reboot or set the clock, which neither Landlock nor the seccomp
    filter governs. Without them a process of user id 0 keeps only what the owner of a file may do, within its
    Landlock rules. A process that is not root has none to give up (its bounding set stays: dropping it needs
    ``CAP_SETPCAP``). Per thread, as Landlock: threads started before keep theirs. Returns whether the
    effective and permitted sets are now empty (False where the kernel or architecture is not known). Checked in
    every sandboxed process (a job's and the worker's way) by tests/jobs/test_job_sandbox.py."""
    nr = _PRIVILEGED.get(platform.machine(), {}).get("capset")  # the seccomp filter's table (_seccomp's arch)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    for cap in range(64):  # EINVAL past the kernel's last capability; EPERM without CAP_SETPCAP (not root)
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if nr is None:
        return False
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # two words each of effective, permitted, inheritable: all empty
    return libc.syscall(nr, ctypes.byref(header), ctypes.byref(data)) == 0


def _no_new_processes(who: str = "the import worker", *, network: bool = True, udp: bool = True) -> None:
    """From here on this process starts no process: a seccomp filter (where the kernel and architecture
    allow) refuses fork, vfork, execve and process clones in native code too, and reaching other processes
    (and without ``network`` any network: :func:`_seccomp`); an audit hook refuses Python's ways with a clear
    message."""
    _seccomp(processes=False, network=network, udp=udp)

    def hook(event: str, _args) -> None:
        if event in _BLOCKED_EVENTS:
            raise PermissionError(f"{who} may not start processes (it tried {event})")

    sys.addaudithook(hook)


# Syscalls by which a process reaches another: tracing it, reading or writing its memory, taking its files.
# io_uring: its requests (a socket, a connect) are not system calls a seccomp filter sees.
_REACH = {"x86_64": {"ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
                     "io_uring_setup": 425},
          "aarch64": {"ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438,
                      "io_uring_setup": 425}}
# Changing a file's metadata: its mode, owner, times and extended attributes. Landlock handles none of these calls,
# so a confined process changed them on any file of the server's user it could name, opened or not: the run
# database set to mode 000 (no process of the server opens it again), another owner's weights dated 1970, a note in
# the workspace folder's extended attributes that another owner's confined process read. Answered "done" without
# doing it (errno 0): libraries set modes on the files they make (inductor's compiled .so, filelock's lock files)
# and carry on; the file keeps the mode it was made with.
_METADATA = {"x86_64": {"chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94, "utime": 132,
                        "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
                        "lremovexattr": 198, "fremovexattr": 199, "utimes": 235, "fchownat": 260, "futimesat": 261,
                        "fchmodat": 268, "utimensat": 280, "fchmodat2": 452, "setxattrat": 463,
                        "removexattrat": 466},
             "aarch64": {"setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
                         "fremovexattr": 16, "fchmod": 52, "fchmodat": 53, "fchownat": 54, "fchown": 55,
                         "utimensat": 88, "fchmodat2": 452, "setxattrat": 463, "removexattrat": 466}}
# A new UNIX socket (socketpair's stay: a broker's was made before): a named one is a door Landlock leaves open
# (a database server's local socket, the warm launcher's); without network, any socket but netlink's
_SOCKET, _AF_UNIX, _AF_NETLINK = {"x86_64": 41, "aarch64": 198}, 1, 16
_AF_INET, _AF_INET6, _SOCK_DGRAM = 2, 10, 2
# Signals: to itself only (a process of the server's user could otherwise end the server or another person's job).
_SIGNAL_OTHERS = {"x86_64": {"tkill": 200, "pidfd_open": 434, "pidfd_send_signal": 424},
                  "aarch64": {"tkill": 130, "pidfd_open": 434, "pidfd_send_signal": 424}}
_OWN_GROUP = {"x86_64": {"tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297},
              "aarch64": {"tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240}}
_KILL = {"x86_64": 62, "aarch64": 129}
# Root's powers, refused in every thread (:func:`drop_capabilities` gives the capabilities up in the thread that
# locks down and those it starts; a thread started before, by an import, keeps its own): another user id, kernel
# modules, reboot, the clock, the host's name, swap, raw ports, mounts and new namespaces, BPF programs.
_PRIVILEGED = {"x86_64": {"setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setgroups": 116,
                          "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "capset": 126,
                          "pivot_root": 155, "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164,
                          "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
                          "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175,
                          "delete_module": 176, "clock_settime": 227, "kexec_load": 246, "unshare": 272,
                          "clock_adjtime": 305, "setns": 308, "finit_module": 313, "kexec_file_load": 320,
                          "bpf": 321},
               "aarch64": {"umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "acct": 89, "capset": 91,
                           "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
                           "clock_settime": 112, "reboot": 142, "setregid": 143, "setgid": 144, "setreuid": 145,
                           "setuid": 146, "setresuid": 147, "setresgid": 149, "setfsuid": 151, "setfsgid": 152,
                           "setgroups": 159, "sethostname": 161, "setdomainname": 162, "settimeofday": 170,
                           "adjtimex": 171, "swapon": 224, "swapoff": 225, "clock_adjtime": 266, "setns": 268,
                           "finit_module": 273, "bpf": 280, "kexec_file_load": 294}}
# Limits: set only the CPU's (the model probe moves it per question), and only its own; read any.
_SETRLIMIT, _PRLIMIT = {"x86_64": 160, "aarch64": 164}, {"x86_64": 302, "aarch64": 261}


def _limit_rules(arch: str, pid: int, *, refuse: int, allow: int) -> list[tuple[int, int, int, int]]:
    """The filter's instructions for ``setrlimit`` and ``prlimit64``: a new limit is refused unless it is this
    process's CPU time (``RLIMIT_CPU``); reading one is allowed. Soft limits alone were raised again by the
    process (its hard limits: :func:`_set_limits`), and another process's (the server's) lowered.

    >>> len(_limit_rules("x86_64", 1, refuse=1, allow=2)), _limit_rules("x86_64", 1, refuse=1, allow=2)[0]
    (17, (21, 0, 4, 160))
    """
    ld, jeq, ret = 0x20, 0x15, 0x06
    cpu = 0  # RLIMIT_CPU
    return [(jeq, 0, 4, _SETRLIMIT[arch]), (ld, 0, 0, 16), (jeq, 0, 1, cpu), (ret, 0, 0, allow), (ret, 0, 0, refuse),
            (jeq, 0, 11, _PRLIMIT[arch]),
            (ld, 0, 0, 32), (jeq, 0, 2, 0), (ld, 0, 0, 36), (jeq, 5, 0, 0),  # no new limit (a pointer of 0): allowed
            (ld, 0, 0, 16), (jeq, 1, 0, 0), (jeq, 0, 3, pid),  # its own (pid 0 or its pid), else refused
            (ld, 0, 0, 24), (jeq, 0, 1, cpu), (ret, 0, 0, allow), (ret, 0, 0, refuse)]


def _socket_rules(nr: int, *, network: bool, udp: bool, refuse: int, allow: int) -> list[tuple[int, int, int, int]]:
    """The filter's instructions for ``socket`` (call number ``nr``; any other call goes past them): a UNIX socket
    refused; without ``network`` every domain but netlink refused; without ``udp`` an IPv4 or IPv6 socket whose
    type (its low 4 bits; the rest are flags) is a datagram's refused. Each instruction is ``(code, jump if
    true, jump if false, value)``, jumps counted from the next instruction.

    >>> len(_socket_rules(41, network=True, udp=True, refuse=1, allow=2)), _socket_rules(41, network=False,
    ...     udp=True, refuse=1, allow=2)[0]
    (5, (21, 0, 4, 41))
    """
    ld, jeq, and_k, ret = 0x20, 0x15, 0x54, 0x06
    arg0, arg1 = 16, 24  # the socket's domain and type (seccomp_data's first two arguments, low 32 bits)
    if not network:
        body = [(ld, 0, 0, arg0), (jeq, 1, 0, _AF_NETLINK), (ret, 0, 0, refuse), (ret, 0, 0, allow)]
    elif udp:
        body = [(ld, 0, 0, arg0), (jeq, 0, 1, _AF_UNIX), (ret, 0, 0, refuse), (ret, 0, 0, allow)]
    else:
        body = [(ld, 0, 0, arg0), (jeq, 5, 0, _AF_UNIX), (jeq, 1, 0, _AF_INET), (jeq, 0, 4, _AF_INET6),
                (ld, 0, 0, arg1), (and_k, 0, 0, 0xF), (jeq, 0, 1, _SOCK_DGRAM), (ret, 0, 0, refuse),
                (ret, 0, 0, allow)]
    return [(jeq, 0, len(body), nr), *body]


def _seccomp(*, processes: bool, network: bool = True, udp: bool = True) -> bool:
    """Install a seccomp filter on every thread. Always: ``ptrace``, ``process_vm_readv``/``writev`` and
    ``pidfd_getfd`` fail with EPERM (no other process of the server's user is traced, read, written or robbed of a
    file; Landlock refuses tracing out of its domain too, where the kernel has it), as do ``io_uring_setup``
    (its requests pass no filter) and ``socket`` for a UNIX socket (a named one, such as PostgreSQL's local
    socket or the warm launcher's, is reached whatever Landlock says; ``socketpair`` stays). Without
    ``network`` (a process that needs none: the model probe, a worker, a job without a tracker), ``socket`` of any
    domain but netlink fails too: no TCP whatever the kernel's Landlock, and no UDP, which Landlock does not
    cover; without ``udp`` (a job whose tracker is named by its address) a datagram socket of IPv4 or IPv6 fails.
    Always, a file's mode, owner, times and extended attributes stay as they are: ``chmod``, ``chown``, ``utimensat``,
    ``setxattr`` and their kin return 0 without doing anything (:data:`_METADATA`; Landlock handles none of them).
    Unless ``processes``:
    ``fork``/``vfork``/``execve``/``execveat`` and ``clone`` without ``CLONE_THREAD`` fail with EPERM, ``clone3``
    with ENOSYS (its flags cannot be inspected; libc falls back to ``clone``), and signals reach this process only
    (``kill`` of another pid fails with EPERM unless it is signal 0, the existence probe; ``tgkill`` and the
    queued signals of another thread group, ``tkill`` and pidfd signals likewise). Returns whether it was
    installed (Linux on x86-64 or aarch64 only)."""

    arch = platform.machine()
    if sys.platform != "linux" or arch not in ("x86_64", "aarch64"):
        return False
    if arch == "x86_64":
        audit_arch, sys_seccomp = 0xC000003E, 317
        spawn = {57: 1, 58: 1, 59: 1, 322: 1, 435: 38}  # fork, vfork, execve, execveat: EPERM; clone3: ENOSYS
        clone = 56
    else:
        audit_arch, sys_seccomp = 0xC00000B7, 277
        spawn = {221: 1, 281: 1, 435: 38}  # execve, execveat: EPERM; clone3: ENOSYS
        clone = 220
    deny = {nr: 1 for nr in (*_REACH[arch].values(), *_PRIVILEGED[arch].values())} | \
        {nr: 0 for nr in _METADATA[arch].values()}
    if not processes:
        deny |= spawn | {nr: 1 for nr in _SIGNAL_OTHERS[arch].values()}
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, errno = 0x7FFF0000, 0x00050000
    arg0, arg1, pid = 16, 24, os.getpid()  # the low 32 bits of the first two arguments (a pid_t, a signal)
    # another calling convention (i386's int 0x80 on x86-64) numbers its calls otherwise: refused, as are x32's
    # (bit 30 set): a denied call must not come back in them
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, errno | 1), (ld, 0, 0, 0),
            (jge, 0, 1, 0x40000000), (ret, 0, 0, errno | 1),
            # socket(AF_UNIX, ...): refused; another domain: allowed (Landlock's network rules limit TCP) but
            # without udp a datagram socket of IPv4 or IPv6 (the type's low 4 bits; the rest are flags), or
            # without network netlink alone (the C library asks it for the host's addresses)
            *_socket_rules(_SOCKET[arch], network=network, udp=udp, refuse=errno | 1, allow=allow)]
    for nr, err in deny.items():
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, errno | err)]
    prog += _limit_rules(arch, pid, refuse=errno | 1, allow=allow)
    if processes:
        prog += [(ret, 0, 0, allow)]
    else:
        # kill: its own pid, or signal 0 (is it alive?) to any
        prog += [(jeq, 0, 6, _KILL[arch]), (ld, 0, 0, arg0), (jeq, 2, 0, pid), (ld, 0, 0, arg1), (jeq, 0, 1, 0),
                 (ret, 0, 0, allow), (ret, 0, 0, errno | 1)]
        for nr in _OWN_GROUP[arch].values():  # the first argument is the thread group: its own
            prog += [(jeq, 0, 4, nr), (ld, 0, 0, arg0), (jeq, 0, 1, pid), (ret, 0, 0, allow), (ret, 0, 0, errno | 1)]
        prog += [(jeq, 1, 0, clone), (ret, 0, 0, allow),
                 (ld, 0, 0, 16), (jset, 1, 0, 0x00010000), (ret, 0, 0, errno | 1), (ret, 0, 0, allow)]
    raw = b"".join(struct.pack("<HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Prog(len(prog), ctypes.addressof(buf))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            return False
        # SECCOMP_SET_MODE_FILTER with SECCOMP_FILTER_FLAG_TSYNC: every thread of the process
        return libc.syscall(sys_seccomp, 1, 1, ctypes.byref(fprog)) == 0
    except (OSError, AttributeError):
        return False


TEST_CRASH_ENV = "LAYERLAB_TEST_CRASH_JOB"
"""Test hook (never set in production): a sandboxed process that opens a run (or a project) whose name contains
this variable's value kills itself with SIGSEGV (:func:`crash_hook_for_tests`), as a crash of torch's native code
would: a training, prune or search trial job once it is sandboxed, before it builds the model; the model probe's
child as it opens the run (Explain, Try it, Check new data, the class leaderboard); the exchange worker as it
exports, quantizes or takes one network's weights from a run (Runs, Build). A child whose environment is clean gets
the value from its server in its request; read only inside those sandboxed processes."""


def crash_hook_for_tests(name: str | None) -> None:
    """TEST HOOK, called by sandboxed processes only, after they locked down: when ``$LAYERLAB_TEST_CRASH_JOB``
    is set and ``name`` (the run's or the project's) contains it, the process dies by SIGSEGV (the browser and
    job tests send "a model that crashes torch" through every door this way, without depending on a torch bug).
    Unset, it does nothing."""
    marker = os.environ.get(TEST_CRASH_ENV, "")
    if marker and marker in str(name or ""):
        os.kill(os.getpid(), signal.SIGSEGV)


__all__ = ["scrub_initial_environment", "drop_capabilities", "CPU_KILL_AFTER_S", "WorkerLimits", "env_positive", "sandbox_env", "passes", "lock_down", "cpu_budget", "death_message", "limit_why",
           "limit_message", "TEST_CRASH_ENV", "crash_hook_for_tests"]
