"""Landlock: a process confines its own file access to named folders and files, without root (Linux 5.13+).

A sandboxed child runs as the server's user, so file modes cannot keep it from the workspace's secrets
(``identity.key``, ``server.json``) or another person's run folder. Landlock (``landlock_create_ruleset``,
``landlock_add_rule``, ``landlock_restrict_self``: syscalls 444-446 on every architecture) lets it give up, for
itself and everything it starts, every file access but those it names: :func:`restrict` takes the folders it
may read (and execute from) and those it may also write, and the single files it may read and write. What
it already holds open stays open. :func:`abi` says whether this kernel has it (0: no, the caller goes on
unconfined and says so: the other walls, the clean environment, limits and seccomp, still stand).

Example::

    >>> abi() >= 0
    True
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable
from pathlib import Path

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_VERSION = 1  # LANDLOCK_CREATE_RULESET_VERSION
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = (
    1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12)
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
READ = EXECUTE | READ_FILE | READ_DIR
WRITE = (WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_BLOCK
         | MAKE_SYM)
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE  # the rights a rule on a single file may carry


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


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
    rights = READ | WRITE
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    return rights


def system_read_paths() -> list[Path]:
    """What any Python process of this server reads: the interpreter and its libraries (``sys.prefix``, the
    base and exec prefixes, every folder on ``sys.path``), the system's programs and libraries, ``/etc``,
    ``/proc`` and ``/sys``."""
    paths = [Path(p) for p in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys",
                               "/run", "/var/lib")]
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path}:
        if p:
            paths.append(Path(p))
    paths.append(Path(sys.executable).resolve().parent.parent)
    return paths


def restrict(read: Iterable[str | os.PathLike], write: Iterable[str | os.PathLike] = (),
             files: Iterable[str | os.PathLike] = ()) -> int:
    """Confine this process (and what it starts) to reading and executing beneath ``read``, reading and writing
    beneath ``write``, and reading and writing the single ``files``; a path that does not exist is skipped.
    Returns the ABI applied (0: this kernel has no Landlock, nothing changed).

    Raises:
        OSError: the kernel has Landlock but refused the ruleset (nothing is confined then).
    """
    version = abi()
    if version <= 0:
        return 0
    rights = handled(version)
    libc = _libc()
    attr = _RulesetAttr(rights)
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        rw = READ | WRITE | (rights & (REFER | TRUNCATE))
        for paths, allowed in ((read, READ), (write, rw), (files, READ_FILE | WRITE_FILE | TRUNCATE)):
            for p in dict.fromkeys(str(p) for p in paths):
                _add(libc, ruleset, p, allowed & rights)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return version


def _add(libc: ctypes.CDLL, ruleset: int, path: str, allowed: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not there: nothing to allow
    try:
        if not os.path.isdir(path):
            allowed &= FILE_RIGHTS
        rule = _PathBeneath(allowed, fd)
        if libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {Path(path).name!r}")
    finally:
        os.close(fd)


__all__ = ["abi", "handled", "restrict", "system_read_paths", "READ", "WRITE"]
