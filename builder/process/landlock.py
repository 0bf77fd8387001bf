"""Landlock: a process confines its own file access to named folders and files, without root (Linux 5.13+).

A sandboxed child runs as the server's user, so file modes cannot keep it from the workspace's secrets
(``identity.key``, ``server.json``) or another person's run folder. Landlock (``landlock_create_ruleset``,
``landlock_add_rule``, ``landlock_restrict_self``: syscalls 444-446 on every architecture) lets it give up, for
itself and everything it starts, every file access but those it names: :func:`restrict` takes the folders it
may read (and execute from) and those it may also write, and the single files it may read and write. What
it already holds open stays open. :func:`abi` says whether this kernel has it (0: no, the caller goes on
unconfined and says so: the other walls, the clean environment, limits and seccomp, still stand).

Where the kernel has Landlock's network rules (ABI 4, Linux 6.7+), a confined process also gives up TCP: it
listens on no port and connects only to the ports it names (a job's MLflow tracker), so it reaches neither the
run database's server (PostgreSQL) nor any other service of the host or its network; from ABI 6 it connects to
no abstract UNIX socket made outside its domain either. UDP and named UNIX sockets are not covered by Landlock
(the seccomp filter of :mod:`builder.process.sandbox` refuses new UNIX sockets, and any network socket to a
process that needs no network).

Example::

    >>> abi() >= 0
    True
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from builder.data.access import LOCAL_OWNER, SYSTEM, Actor
from builder.data.cache import cache_dir
from builder.process.launcher import counted_owner, package_root
from builder.process.server_secrets import (  # noqa: F401  (re-exported: the rules' own lists)
    RUN_SECRETS,
    SECRETS_ENV,
    STREAMLIT_SECRETS,
    keep_secrets,
    kept_secrets,
    server_secrets,
)
from builder.runs import db as _db
from builder.runs.owners import owner_of, owner_path, pin, upload_dir
from builder.training.run_folder import RunFolder

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_VERSION = 1  # LANDLOCK_CREATE_RULESET_VERSION
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = (
    1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12)
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
READ = EXECUTE | READ_FILE | READ_DIR
WRITE = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG
#: handled and granted nowhere: a confined process makes no symbolic link. The server reads what a confined process
#: wrote (a run's weights, model card and reports for its owner, a worker's answer): a link planted there would hand
#: it a file the process itself may not read (identity.key, another owner's run).
NO_LINKS = MAKE_SYM
#: handled and granted nowhere either: a confined process makes no named pipe, socket or device file. Opened by a
#: page reading a run's report (a named pipe renamed over ``report.json``), it would wait for a writer for ever.
NO_SPECIAL_FILES = MAKE_FIFO | MAKE_SOCK | MAKE_CHAR | MAKE_BLOCK
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE  # the rights a rule on a single file may carry
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX = 1 << 0  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _NetPort(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi() -> int:
    """The Landlock ABI version of this kernel (0: none, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    v = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION))
    return int(v) if v > 0 else 0


def handled(version: int) -> int:
    """The file rights this module handles under ABI ``version`` (what is not handled stays allowed)."""
    rights = READ | WRITE | NO_LINKS | NO_SPECIAL_FILES
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    return rights


OWN_PROC = "/proc/self"  # resolved by the process that confines itself (:func:`restrict`): its own /proc/<pid>


def proc_read_paths() -> list[Path]:
    """What of ``/proc`` a confined process reads: the system's entries (``meminfo``, ``cpuinfo``, ``sys``, ...) and
    its own process's folder (:data:`OWN_PROC`), never another process's ``/proc/<pid>``. The server's other
    processes run as the same user: a job read a study runner's ``environ`` (its owner's id, for an anonymous owner
    the browser's cookie), and any job's ``maps``, which names the dataset cache entries it trains on (their names,
    their content's SHA-256, are what lets a confined process open one: :func:`confinement`'s ``named``). Of the
    system's entries, those every user may read (:func:`_others_read`): a job of a server run as root read (and so
    took from the system's log) ``kmsg``, every task's pid and name in ``timer_list``, ``slabinfo`` and
    ``vmallocinfo``, all mode 0400.

    >>> paths = proc_read_paths()
    >>> Path(OWN_PROC) in paths and not any(p.name.isdigit() for p in paths)
    True
    >>> Path("/proc/kmsg") in paths
    False
    """
    try:
        names = os.listdir("/proc")
    except OSError:  # no /proc on this system
        return []
    return [Path("/proc", n) for n in sorted(names) if not n.isdigit() and n not in ("self", "thread-self")
            and _others_read(Path("/proc", n))] + [Path(OWN_PROC)]


def _others_read(path: Path) -> bool:
    """Whether every user of the machine may read ``path`` (a folder: list and enter it); a link, yes (its rule is
    given to what it names)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat.S_ISLNK(mode):
        return True
    return mode & 0o005 == 0o005 if stat.S_ISDIR(mode) else bool(mode & 0o004)


def run_read_paths(etc: str | os.PathLike = "/etc", run: str | os.PathLike = "/run") -> list[Path]:
    """What a confined process reads of ``/run``: the files ``/etc``'s links lead to there (``resolv.conf`` kept by
    systemd-resolved or resolvconf: a job looks up its tracker's host name), nothing else. ``/run`` whole was
    readable: it holds the server user's runtime folder (``/run/user/<uid>``: podman's registry login in
    ``containers/auth.json``, which a confined job read, a keyring's, an agent's), a database server's lock files and
    what services keep for the machine's users.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("run/resolve/stub-resolv.conf", "run/user/1000/containers/auth.json", "etc/hosts"):
    ...     (d / name).parent.mkdir(parents=True, exist_ok=True); (d / name).touch()
    >>> (d / "etc/resolv.conf").symlink_to(d / "run/resolve/stub-resolv.conf")
    >>> [str(p.relative_to(d)) for p in run_read_paths(d / "etc", d / "run")]
    ['run/resolve/stub-resolv.conf']
    """
    run = Path(os.path.realpath(run))
    out: list[Path] = []
    try:
        entries = sorted(Path(etc).iterdir())
    except OSError:
        return out
    for entry in entries:
        if entry.is_symlink():
            target = Path(os.path.realpath(entry))
            if run in target.parents and target.is_file():
                out.append(target)
    return out


PRIVATE_SCAN = ("/etc", "/opt", "/var/lib")
"""The system folders a confined process reads (:func:`system_read_paths`) where some files are for some users only:
the machine's configuration, software installed beside the system's, services' state."""
_SCAN_MAX = 200_000  # entries looked at in all; past it what is left of the walk is shut unlooked (private_paths)


def private_paths(roots: Iterable[str | os.PathLike] | None = None, keep: Iterable[str | os.PathLike] = (),
                  skip: Iterable[str | os.PathLike] = (), limit: int = _SCAN_MAX) -> list[Path]:
    """What of ``roots`` (default :data:`PRIVATE_SCAN`) not every user of the machine may read: a file others may not read, a folder others may
    not list or enter (whole: nothing below it is looked at), links left alone. A confined process runs a person's
    model, so of the system it reads what any user of the machine reads: one of a server run as root (a container's
    default) read ``/etc/shadow``, PostgreSQL's ``pg_hba.conf`` and data folder (``/var/lib/postgresql``: every
    owner's id in the run database), and one of any server user what that user keeps for itself there (an
    ``EnvironmentFile`` with the database's password, an admin's local MLflow store in ``/var/lib``). ``keep``: the
    paths the process is given on purpose (this package, the interpreter, its run folder, a tracker's folder): never
    shut nor looked into (a server's umask of 077 makes every file of its own 0600), and a folder holding one is
    walked into rather than shut; ``skip``: folders shut anyway, not looked into (the workspace). At most ``limit``
    entries are looked at; every entry past them is shut unlooked, but for the folders that hold a kept path (a
    walk cut short left the rest open: an ``/opt`` of more entries than that, and ``/var/lib/postgresql`` after it
    was read whole).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name, mode in (("etc/hosts", 0o644), ("etc/shadow", 0o640), ("etc/ssl/private/k.pem", 0o600),
    ...                    ("lib/pg/main/PG_VERSION", 0o600), ("lib/app/venv/x.py", 0o644)):
    ...     (d / name).parent.mkdir(parents=True, exist_ok=True); (d / name).touch(); (d / name).chmod(mode)
    >>> for folder, mode in (("etc/ssl/private", 0o710), ("lib/pg/main", 0o700), ("lib/app", 0o750)):
    ...     (d / folder).chmod(mode)
    >>> (d / "lib/app/venv/x.py").chmod(0o600)  # kept: the process's own, whatever its mode
    >>> sorted(str(p.relative_to(d)) for p in private_paths([d / "etc", d / "lib"], keep=[d / "lib/app/venv"]))
    ['etc/shadow', 'etc/ssl/private', 'lib/pg/main']
    """
    kept = {os.path.abspath(k) for k in keep}  # named on purpose: neither shut nor looked into
    held = {str(p) for k in kept for p in Path(k).parents}  # folders holding one: walked into, never shut whole
    left = kept | {os.path.abspath(p) for p in skip}
    out: list[Path] = []
    budget = [int(limit)]

    def walk(folder: Path) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not ours to list: the folder's own mode decided above
            return
        for e in entries:
            budget[0] -= 1
            if budget[0] < 0:  # past the budget: shut unlooked, but for the way to what is kept
                if e.path in held and e.is_dir(follow_symlinks=False):
                    walk(Path(e.path))
                elif e.path not in left and not e.is_symlink():
                    out.append(Path(e.path))
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode) or e.path in left:
                continue  # a link's rule is given to what it names, which is looked at where it lies
            if stat.S_ISDIR(st.st_mode):
                if st.st_mode & 0o005 != 0o005 and e.path not in held:
                    out.append(Path(e.path))
                else:
                    walk(Path(e.path))
            elif not st.st_mode & 0o004 and e.path not in held:
                out.append(Path(e.path))

    for root in PRIVATE_SCAN if roots is None else roots:
        if Path(root).is_dir() and os.path.abspath(root) not in left:
            walk(Path(os.path.abspath(root)))
    return out


def system_read_paths() -> list[Path]:
    """What any Python process of this server reads: the interpreter and its libraries (``sys.prefix``, the
    base and exec prefixes, every folder on ``sys.path``), the system's programs and libraries, ``/etc`` (and the
    files its links lead to in ``/run``: :func:`run_read_paths`), ``/sys`` and of ``/proc`` the system's entries
    and the process's own (:func:`proc_read_paths`)."""
    paths = [Path(p) for p in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt", "/sys",
                               "/var/lib")]
    return paths + run_read_paths() + proc_read_paths() + interpreter_paths()


def interpreter_paths() -> list[Path]:
    """The interpreter's folders: ``sys.prefix``, the base and exec prefixes, every folder on ``sys.path`` and the
    folder that holds the executable's."""
    paths = [Path(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path} if p]
    paths.append(Path(sys.executable).resolve().parent.parent)
    return paths


def restrict(read: Iterable[str | os.PathLike], write: Iterable[str | os.PathLike] = (),
             files: Iterable[str | os.PathLike] = (), named: Iterable[str | os.PathLike] = (),
             ports: Iterable[int] | None = None) -> int:
    """Confine this process (and what it starts) to reading and executing beneath ``read``, reading and writing
    beneath ``write``, reading and writing the single ``files``, and reading the files beneath ``named`` whose
    names it knows (no folder there can be listed); a path that does not exist is skipped. It makes no symbolic
    link (:data:`NO_LINKS`), named pipe, socket or device file (:data:`NO_SPECIAL_FILES`) anywhere. Unless
    ``ports`` is None, and where the kernel has network rules (:func:`net_abi`), it binds no TCP port and connects
    only to ``ports`` (and, from ABI 6, to no abstract UNIX socket outside its domain). Returns the ABI applied (0: this kernel has no Landlock, nothing changed).

    Raises:
        OSError: the kernel has Landlock but refused the ruleset (nothing is confined then).
    """
    version = abi()
    if version <= 0:
        return 0
    rights = handled(version)
    libc = _libc()
    net = ports is not None and version >= 4
    attr = _RulesetAttr(rights, NET_BIND_TCP | NET_CONNECT_TCP if net else 0,
                        SCOPE_ABSTRACT_UNIX if net and version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24  # the fields this kernel knows
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        rw = READ | WRITE | (rights & (REFER | TRUNCATE))
        for paths, allowed in ((read, READ), (write, rw), (files, READ_FILE | WRITE_FILE | TRUNCATE),
                               (named, READ_FILE)):
            for p in dict.fromkeys(str(p) for p in paths):
                _add(libc, ruleset, p, allowed & rights)
        for port in sorted({int(p) for p in ports or ()}) if net else ():
            rule = _NetPort(NET_CONNECT_TCP, port)
            if libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_NET_PORT), ctypes.byref(rule),
                            ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for TCP port {port}")
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return version


def net_abi() -> bool:
    """Whether this kernel's Landlock has network rules (ABI 4, Linux 6.7+): :func:`restrict`'s ``ports``."""
    return abi() >= 4


_HELD: list[int] = []
"""O_PATH descriptors of this process's own ``/proc/<pid>`` (:data:`OWN_PROC`), kept open while it lives: procfs
makes a new inode for a pid's folder whenever its dropped dentry is looked up again, and a Landlock rule holds to
the inode it was given, so the folder stays the one the rule names."""


def _add(libc: ctypes.CDLL, ruleset: int, path: str, allowed: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not there: nothing to allow
    if stat.S_ISFIFO(mode := os.fstat(fd).st_mode) or stat.S_ISSOCK(mode):  # Landlock names files and folders
        os.close(fd)  # only: a pipe or socket among the entries of /dev opened around /dev/shm (/dev/initctl)
        return
    if path == OWN_PROC:
        _HELD.append(fd)
        fd = os.dup(fd)
    try:
        if not os.path.isdir(path):
            allowed &= FILE_RIGHTS
        rule = _PathBeneath(allowed, fd)
        if libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {Path(path).name!r}")
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Confinement:
    """The folders a confined process reads, those it also writes, the single files it reads and writes, and the
    folders whose files it reads only by name (``named``: none can be listed; the shared dataset cache, whose
    entries are named by their content's SHA-256, so a process opens only those of data it already has), and the
    TCP ports it may connect to (``ports``: none by default; it listens on none: :func:`restrict`). Its network
    beyond them is the seccomp filter's (:func:`builder.process.sandbox.lock_down`): no socket at all without
    ``ports``, and UDP datagrams only where ``udp`` (a job that looks up its tracker's host name)."""

    read: list = field(default_factory=list)
    write: list = field(default_factory=list)
    files: list = field(default_factory=list)
    named: list = field(default_factory=list)
    ports: list = field(default_factory=list)
    udp: bool = False

    def to_wire(self) -> dict:
        """These rules as plain data, for the start message of a child that confines itself (the model probe);
        :meth:`of_wire` reads them back.

        >>> r = Confinement(["/usr"], ["/tmp/x"], ports=[443], udp=True)
        >>> Confinement.of_wire(r.to_wire()) == r
        True
        """
        return {"read": [str(p) for p in self.read], "write": [str(p) for p in self.write],
                "files": [str(p) for p in self.files], "named": [str(p) for p in self.named],
                "ports": [int(p) for p in self.ports], "udp": bool(self.udp)}

    @classmethod
    def of_wire(cls, data: dict) -> Confinement:
        """The rules :meth:`to_wire` wrote."""
        return cls(*([str(p) for p in data.get(k) or ()] for k in ("read", "write", "files", "named")),
                   ports=[int(p) for p in data.get("ports") or ()], udp=data.get("udp") is True)


def beside(paths: Iterable[str | os.PathLike], shut: str | os.PathLike,
           links: dict[str, str | None] | None = None) -> list[Path]:
    """``paths`` with ``shut`` left out: a path that holds ``shut`` (an ancestor, or ``shut`` itself) is replaced
    by its entries that do not, down to ``shut``'s parent; paths inside ``shut`` are kept (a rule on a run folder
    inside the workspace). Landlock only adds rights, so a rule on ``/var/lib`` would open a workspace in
    ``/var/lib/layerlab`` (``identity.key``, every owner's runs) to the confined process whatever else it says.
    ``links``: what each path's link names, kept between calls (:func:`shut_out` asks for every shut path).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for d in ("srv/ws/runs/a", "srv/other", "usr"):
    ...     (root / d).mkdir(parents=True)
    >>> sorted(str(p.relative_to(root)) for p in beside([root, root / "srv/ws/runs/a"], root / "srv/ws"))
    ['srv/other', 'srv/ws/runs/a', 'usr']
    """
    shut = os.path.abspath(shut)
    links = {} if links is None else links
    out: list[Path] = []
    for p in paths:
        p = os.path.abspath(p)
        if p not in links:  # what a link names (a rule is given to it), looked up once per shut_out
            links[p] = os.path.realpath(p) if os.path.islink(p) else None
        target = links[p]
        if target is not None and _reaches(target, shut):
            if not _inside(shut, target):
                continue  # a link to it or into it: left out
            p = target  # a link to a folder holding it: that folder, opened around it
        if _inside(p, shut):
            out.append(Path(p))  # inside it: named on purpose
        elif p != shut and not _inside(shut, p):
            out.append(Path(p))  # beside it
        elif p != shut:  # holds it: its other entries, then the same one level down
            try:
                entries = list(os.scandir(p))
            except OSError:
                continue
            # a link among them is left out: a rule on it is a rule on what it names, which the folder's own rule
            # never opened (/dev/stderr: the process's log file, wherever it lies; /run/shm: /dev/shm)
            out += beside([e.path for e in entries if not e.is_symlink()], shut, links)
    return out


def _inside(path: str, folder: str) -> bool:
    """Whether absolute ``path`` lies strictly inside absolute ``folder`` (compared as text: ``shut_out`` asks it
    for every rule against every shut path, and ``Path.parents`` made building a job's rules take 0.16 s)."""
    return path != folder and (folder == "/" or path.startswith(folder + "/"))


def _reaches(target: str, shut: str) -> bool:
    """Whether a link to ``target`` reaches ``shut``: it is ``shut``, lies inside it or holds it (a rule is given
    to what a link names: ``/run/shm`` is ``/dev/shm``, ``/var/run`` all of ``/run``)."""
    return target == shut or _inside(target, shut) or _inside(shut, target)


def confinement(store, run_id: str, owner: str, *, read: Iterable = (), write: Iterable = (),
                database: bool = True, tracker: str | None = None) -> Confinement | str:
    """What a process working on ``owner``'s run ``run_id`` (a training job, a quantization) may touch once
    confined: read the interpreter and system (:func:`system_read_paths`), this package, the owner's own folder
    (its uploads), the folders of the runs the owner may read (``store.list_runs`` as the job's actor: an
    ``init_from``, a teacher, a pruned parent), the dataset cache's entries by name and ``read``; read and write
    its own run folder (a job's private HOME is inside, where it builds the cache entries it lacks:
    :func:`builder.data.cache.keep_own`) and ``write``, its device files (:func:`device_paths`); read and write the SQLite run database and its
    WAL files unless ``database`` is False (a job, whose run store is its broker: :mod:`builder.process.broker`),
    not the workspace folder beside them (``identity.key``, ``server.json``, other owners' folders stay shut). The owner's folder name and the server config are read now (:func:`builder.runs.owners.pin`).
    A string says why it is left unconfined: the CLI's local user (its paths are its own), an SQLite database
    without its WAL file (a rollback journal is a new file each write, which no rule can name)."""
    if owner == LOCAL_OWNER:
        return LOCAL_REASON
    refused = _refused(store, write)
    if refused is not None:
        return refused
    readable = store.as_actor(Actor.of_job(owner)).list_runs(limit=100_000)
    # its owner's folder name and the server config (without its secrets, but for its own ``tracker``'s URI),
    # read now: identity.key and server.json close
    pin(Path(store.workspace), owner, [tracker] if tracker else [])
    return _rules(store, owner, [*read, *[p for r in readable for p in _run_files(store, r, owner)]],
                  [store.folder(run_id, actor=SYSTEM).path, *write], database=database)


#: What a job never reads of another owner's run (shared mode): its job spec (the owner's id, for an anonymous one
#: its browser's cookie, and its tracker's URI) and its process output.
_THEIRS_SHUT = (RunFolder.JOB_SPEC, RunFolder.JOB_LOG)


def _run_files(store, run, owner: str) -> list[Path]:
    """The paths of a readable run a job of ``owner`` may read: its own runs' folders whole, another owner's (shared
    mode) entry by entry but its job spec and log (:data:`_THEIRS_SHUT`): a job read every owner's job.json."""
    folder = store.folder(run["id"], actor=SYSTEM).path
    if owner_of(run) == owner:
        return [folder]
    try:
        return [p for p in folder.iterdir() if p.name not in _THEIRS_SHUT and not p.is_symlink()]
    except OSError:  # no folder (yet): nothing of it to read
        return []


def _refused(store, write: Iterable) -> str | None:
    """Why no confinement can be built for ``store``'s database and these ``write`` folders, or None."""
    files = db_files(store)
    return files if isinstance(files, str) else holds_workspace(list(write), store.workspace)


SHARED_MEMORY = ("/dev/shm", "/dev/mqueue")
"""What every process of the host shares under ``/dev`` (POSIX shared memory, message queues), shut to a confined
process, which opens only its device files (:func:`device_paths`) of ``/dev``, also where a link names these
(``/run/shm``): a file one owner's confined process left in ``/dev/shm`` another
owner's confined process read (a model explained in another person's probe, whose rules open that person's
uploads, handed them to its owner's job that way), and a database server of the same user keeps its shared memory
segments there. No confined process needs it (a job trains in one process; torchrun is the command line's)."""
#: The devices every confined process opens, by name under ``/dev``: the null, zero, full and random devices.
STANDARD_DEVICES = ("null", "zero", "full", "random", "urandom")
#: The entries of ``/dev`` an accelerator's runtime opens, by the start of their names: NVIDIA's (``nvidiactl``,
#: ``nvidia0``, ``nvidia-uvm``, ``nvidia-caps/`` of MIG), DRM render nodes (``dri/``: AMD, Intel), ROCm's ``kfd``,
#: the kernel's ``accel/`` class and WSL's ``dxg``.
ACCELERATOR_DEVICES = ("nvidia", "dri", "kfd", "accel", "dxg")


def device_paths(root: str | os.PathLike = "/dev") -> list[Path]:
    """The device files a confined process reads and writes, each by name (:data:`STANDARD_DEVICES`, and every file
    under :data:`ACCELERATOR_DEVICES`' entries of ``root``): never ``/dev`` whole. Whatever else of ``/dev`` the
    server's user may open is a door to another process: a terminal (``/dev/pts/<n>``, an admin's shell in which a
    confined job read the password typed and wrote escape sequences; ``/dev/ptmx``, through which two owners' jobs
    talked), the host's shared memory and message queues (:data:`SHARED_MEMORY`), FUSE, input devices, a folder it
    could make files in (a server run as root). Symbolic links are left out (a rule holds to what a link names).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("null", "ptmx", "nvidia0", "pts/0", "dri/renderD128", "shm/x"):
    ...     (d / name).parent.mkdir(parents=True, exist_ok=True); (d / name).touch()
    >>> sorted(str(p.relative_to(d)) for p in device_paths(d))
    ['dri/renderD128', 'null', 'nvidia0']
    """
    root = Path(root)
    out = [root / n for n in STANDARD_DEVICES]
    try:
        entries = sorted(root.iterdir())
    except OSError:  # no /dev here
        return []
    for entry in entries:
        if entry.name.startswith(ACCELERATOR_DEVICES) and not entry.is_symlink():
            out += [entry] if not entry.is_dir() else _files_below(entry)
    return [p for p in out if p.exists() and not p.is_symlink()]


def _files_below(folder: Path, depth: int = 3) -> list[Path]:
    """The files (no links, no folders) below ``folder``, ``depth`` levels down at most."""
    out: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for p in entries:
        if p.is_symlink():
            continue
        if p.is_dir():
            out += _files_below(p, depth - 1) if depth > 1 else []
        else:
            out.append(p)
    return out


def shut_out(paths: Iterable[str | os.PathLike], shut: Iterable[str | os.PathLike]) -> list[Path]:
    """``paths`` with every one of ``shut`` left out, as :func:`beside` leaves one out, for all of them in one pass:
    a path that is one is dropped, one that holds one is replaced by its entries (links left out), recursively, and
    any other is kept; a link to one, or into one, is dropped, and a link to a folder holding one is that folder.
    :func:`beside` once per shut path went over every rule again for each: with :func:`private_paths` naming
    hundreds (a server's private files), building the rules took seconds (400 shut files: 7.5 s, now ms)."""
    shut_set = {os.path.abspath(s) for s in shut}
    holders = {str(a) for s in shut_set for a in Path(s).parents}
    out: list[Path] = []

    def under_shut(path: str) -> bool:  # it is one, or lies inside one
        return path in shut_set or any(str(a) in shut_set for a in Path(path).parents)

    def place(p: str, top: bool) -> None:
        if top and os.path.islink(p):  # a rule is given to what a link names
            target = os.path.realpath(p)
            if under_shut(target):
                return  # a link to one or into one: left out
            if target in holders:
                p = target  # a link to a folder holding one: that folder, opened around it
        if p in shut_set:
            return
        if p not in holders:
            out.append(Path(p))  # beside every one, or inside one (named on purpose)
            return
        try:  # holds one: its other entries, then the same one level down
            entries = list(os.scandir(p))
        except OSError:
            return
        # a link among them is left out: a rule on it is a rule on what it names, which the folder's own rule
        # never opened (/dev/stderr: the process's log file, wherever it lies; /run/shm: /dev/shm)
        for e in entries:
            if not e.is_symlink():
                place(e.path, False)

    for p in paths:
        place(os.path.abspath(p), True)
    return out


def _rules(store, owner: str, read: list, write: list, *, database: bool = True, own: Path | None = None) -> Confinement:
    """The rules every confined process of ``owner`` shares, with its own ``read`` and ``write``: read the
    interpreter and system, this package and ``own`` (the owner's folder when None); the dataset cache's files by name only (shared
    by every owner: never written by a process that runs a person's model, nor listed, so it opens only the
    entries of data it has, their names being their content's SHA-256); read and write its device files
    (:func:`device_paths`, never ``/dev`` whole) and the SQLite files. The
    workspace and the server's secrets kept beside it (:func:`server_secrets`) stay shut even where they lie inside
    a folder every process reads (a server's /var/lib/layerlab, a checkout, the working directory on sys.path):
    such a folder is opened entry by entry around them (:func:`beside`)."""
    ws = Path(store.workspace)
    upload_dir(ws, owner)  # created now: read-only from here on
    files = db_files(store)
    own = owner_path(ws, owner) if own is None else own
    shut = [ws, *server_secrets(ws, store.db_url), *SHARED_MEMORY,  # Streamlit's secrets, the config and database
            # kept elsewhere, the host's shared memory (a channel between two owners' confined processes) and what
            # of the system not every user may read
            *private_paths(keep=[*interpreter_paths(), package_root(), own, *read, *write], skip=[ws])]
    return Confinement(shut_out([*system_read_paths(), package_root(), own, *read], shut),
                       shut_out(write, shut),
                       [*(files if isinstance(files, list) and database else []), *device_paths()],
                       shut_out([ws / "cache", cache_dir()], shut))


LOCAL_REASON = "the CLI's local user's (its paths are its own)"


def holds_workspace(write: Iterable[str | os.PathLike], ws: str | os.PathLike) -> str | None:
    """Why a process that must create files in one of ``write`` cannot be confined, or None: a folder that holds
    the workspace (a local tracker's ``sqlite:///$HOME/mlflow.db`` beside ``~/.layerlab``). SQLite's journal is a
    new file in that folder at every write, and a rule that lets it be made there opens the workspace below it
    (:func:`beside` serves folders that are only read).

    >>> holds_workspace(["/srv"], "/srv/ws")[:40], holds_workspace(["/srv/mlflow"], "/srv/ws")
    ('a folder it writes holds the workspace (', None)
    """
    shut = Path(os.path.abspath(ws))
    for p in write:
        p = Path(os.path.abspath(p))
        if p == shut or p in shut.parents:
            return ("a folder it writes holds the workspace (a local tracker's folder beside it); the other limits "
                    "stand. Fix: give the tracker a folder of its own, e.g. sqlite:///$HOME/mlflow/mlflow.db")
    return None


def db_files(store) -> list[Path] | str:
    """The SQLite run database and its WAL files a confined process reads and writes (none for a database
    server); a string says why it cannot be confined (no WAL file: a rollback journal is a new file each write)."""
    if not _db.is_sqlite(store.db_url):
        return []
    import sqlalchemy as sa  # lazy: heavy (sqlalchemy)

    db = Path(sa.engine.make_url(store.db_url).database or "")
    if not db.is_absolute() or not Path(f"{db}-wal").is_file():
        return "an SQLite run database without its WAL file (a rollback journal cannot be confined)"
    return [db, Path(f"{db}-wal"), Path(f"{db}-shm")]


@dataclass(frozen=True)
class ReaderRules:
    """:func:`reader_confinement`'s answer: the ``rules`` (or why none), the ids of the runs whose folders they
    open (``runs``; a run outside them needs a process started with fresh rules: Landlock cannot widen them) and
    the ``owners`` whose folder names the process pins (:func:`builder.runs.owners.pin`) before it confines."""

    rules: Confinement | str
    runs: frozenset = frozenset()
    owners: tuple = ()

    def opens(self, run_id: str) -> bool:
        """Whether a process under these rules can open run ``run_id`` (always, unconfined)."""
        return not isinstance(self.rules, Confinement) or run_id in self.runs


def reader_confinement(store, private: str | os.PathLike, *, read: Iterable = (),
                       write: Iterable = (), model_owner: str | None = None) -> ReaderRules:
    """What a long-lived process that runs the models of the runs ``store``'s actor may read (a page session's
    model probe: Explain, Try it, drift, the VAE view, held-out scores) may touch once confined: read the
    interpreter and system (:func:`system_read_paths`), this package, the actor's own upload folder (drift and
    Try it files; not its projects, history nor profile), the folders of the runs the actor may read now (``store.list_runs`` as that actor)
    and the upload folders of their owners (the data those runs trained on), the dataset cache's entries by name
    and ``read``; read and write ``private`` (its home and temporary folder, where it builds the cache entries it
    lacks) and ``write``, its device files (:func:`device_paths`); not the run database (the process reads runs through its broker as the
    actor: :mod:`builder.process.broker`). ``identity.key``, ``server.json`` and other owners' folders stay shut.
    ``model_owner``: only that owner's runs (and upload folder) are opened, for a process that runs their models
    alone (a teacher's held-out scores of each student). Unconfined (a string) for trusted code and the CLI's local user
    (:func:`builder.process.launcher.counted_owner` is None: their paths are their own) and for an SQLite database
    without its WAL file."""
    owner = counted_owner(store.actor)
    if owner is None:
        return ReaderRules(LOCAL_REASON if getattr(store.actor, "owner", None) == LOCAL_OWNER
                           else "trusted code's (no person's actor)")
    ws = Path(store.workspace)
    refused = _refused(store, write)
    if refused is not None:
        return ReaderRules(refused)
    runs: dict[str, Path] = {}
    owners = {owner: None}
    for r in store.list_runs(limit=100_000):  # as the store's actor: the runs it may read, nothing else
        if model_owner is not None and str(r.get("owner") or LOCAL_OWNER) != model_owner:
            continue
        path = store.folder(r["id"], actor=SYSTEM).path
        if path.is_dir():  # a folder made later is not in the rules: that run starts a fresh process
            runs[str(r["id"])] = path
            owners[str(r.get("owner") or LOCAL_OWNER)] = None
    # the upload folders of the runs' owners (a teacher explains a student's run on the student's upload): that
    # folder of theirs only, not their autosaved canvas nor profile
    theirs = [upload_dir(ws, o) for o in owners if o not in (owner, LOCAL_OWNER)]
    # of the actor's own folder, its uploads only (drift and Try it files): a probe that runs another owner's model
    # (a teacher's held-out scores, shared mode's Explain) read the actor's projects, history and profile
    rules = _rules(store, owner, [*read, *runs.values(), *theirs], [Path(private), *write], database=False,
                   own=upload_dir(ws, owner))
    return ReaderRules(rules, frozenset(runs), tuple(owners))


def confine(rules: Confinement | str | None) -> str:
    """Apply :func:`confinement`'s answer to this process; one line for its log: what was applied, or why not (a
    kernel without Landlock: the process runs with its other walls only)."""
    if not isinstance(rules, Confinement):
        return f"files not confined: {rules or 'no rules'}"
    version = restrict(rules.read, rules.write, rules.files, rules.named, rules.ports)
    if not version:
        return "files not confined: this kernel has no Landlock (Linux 5.13+); the other limits stand"
    others = len(os.listdir("/proc/self/task")) - 1 if os.path.isdir("/proc/self/task") else 0
    left = f"; {others} thread(s) started before it are not (Landlock confines the calling thread)" if others else ""
    ports = ", ".join(str(p) for p in sorted(set(rules.ports))) or "none"
    tcp = (f"; TCP: connects to port(s) {ports} only, listens on none" if version >= 4
           else "; TCP not confined (Landlock's network rules need Linux 6.7+)")
    return f"files confined by Landlock (ABI {version}): its own folders and the runs it may read{tcp}{left}"


__all__ = ["abi", "net_abi", "handled", "restrict", "system_read_paths", "run_read_paths", "private_paths", "PRIVATE_SCAN", "interpreter_paths", "proc_read_paths", "OWN_PROC", "beside",
           "server_secrets", "keep_secrets", "kept_secrets", "SECRETS_ENV", "shut_out", "device_paths", "STANDARD_DEVICES", "ACCELERATOR_DEVICES", "STREAMLIT_SECRETS", "RUN_SECRETS", "SHARED_MEMORY", "READ", "WRITE", "NO_LINKS",
           "NO_SPECIAL_FILES", "Confinement", "confinement", "db_files",
           "confine", "ReaderRules", "reader_confinement", "LOCAL_REASON", "holds_workspace"]
