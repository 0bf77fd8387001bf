"""Disk space: the one check before a large write, and the one error when a write meets a full disk.

Every write that can fill a disk (the run database, run folders, checkpoints, uploads, caches) reports a full
disk the same way: :class:`~builder.errors.DiskFullError`, one line naming the file system (its mount point),
the path written, the space free and the space needed, never a traceback or SQLite's "cannot rollback". A
write that fails leaves what was there before (each writer writes a temporary file and renames it, or writes
in one SQLite transaction). :func:`check_free` refuses a large write before it starts; :func:`on_full_disk`
turns a full disk met while writing (``ENOSPC``, ``EDQUOT``, SQLite's "database or disk is full", a library's
"No space left on device") into the one error. Example::

    >>> import errno
    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device")), is_disk_full(OSError(errno.EACCES, "x"))
    (True, False)
    >>> with on_full_disk("/", "a test write", needed=10):
    ...     raise OSError(errno.ENOSPC, "No space left on device")
    Traceback (most recent call last):
    builder.errors.DiskFullError: the disk is full: a test write needs at least 10 B on / (at /), which has ...
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.errors import DiskFullError
from builder.graph.report import human_bytes

SPARE_BYTES = 2**28  # kept free by check_free: a large write must leave the rest of the server room to work
_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_FULL_TEXT = ("no space left on device", "database or disk is full", "disk quota exceeded", "os error 28")
_SQLITE_FULL = 13
NEARLY_FULL = 2**20  # free bytes under which SQLite's "disk I/O error" is taken for a full disk


def _existing(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the file system that holds ``path`` (or would hold it: its nearest existing folder)."""
    p = _existing(path).resolve()
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes free (for this user) on the file system that holds ``path``; 0 where that cannot be read."""
    try:
        return shutil.disk_usage(_existing(path)).free
    except OSError:
        return 0


def human(n: int | float) -> str:
    """A byte count for a message, in KiB, MiB, ... (:func:`builder.graph.report.human_bytes`, the one rule: it
    read 1,048,575 bytes as '1024.0 KiB' and 3 TiB as '3072.00 GiB', the defect b20a218 mended there).

    >>> human(10), human(3 * 2**20), human(2.5 * 2**30), human(2**20 - 1), human(3 * 2**40)
    ('10 B', '3.0 MiB', '2.5 GiB', '1.0 MiB', '3.0 TiB')
    """
    return human_bytes(n, iec=True)


def is_disk_full(exc: BaseException | None, path: str | os.PathLike | None = None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a full disk or an exhausted disk quota. With
    ``path`` (what was written), SQLite's "disk I/O error" counts too when that disk has less than
    :data:`NEARLY_FULL` free: a database in WAL mode cannot even be opened on a full disk (its shared-memory
    file cannot grow), and SQLite says only that."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if path is not None and "disk i/o error" in str(exc).lower() and free_bytes(path) < NEARLY_FULL:
            return True
        if any(t in str(exc).lower() for t in _FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(path: str | os.PathLike, what: str, needed: int | None = None, fix: str = "") -> DiskFullError:
    """The one error of a full disk: ``what`` (e.g. "the run database") at ``path`` needs ``needed`` bytes (or
    more than is free) on the file system mounted at :func:`mount_point`."""
    mount, free = mount_point(path), free_bytes(path)
    need = f"at least {human(needed)}" if needed else "more space"
    err = DiskFullError(f"the disk is full: {what} needs {need} on {mount} (at {path}), which has {human(free)} "
                         f"free; received: a write that did not fit, nothing was replaced. Fix: free space on "
                         f"{mount} (delete old runs or uploads) or move the workspace to a larger disk{fix}")
    err.needed = needed
    return err


def check_free(path: str | os.PathLike, nbytes: int, what: str, fix: str = "", spare: int = SPARE_BYTES) -> None:
    """Refuse a write of ``nbytes`` at ``path`` before it starts when its file system has less free than that
    plus ``spare``. Raises :class:`~builder.errors.DiskFullError`."""
    if nbytes + spare > free_bytes(path):
        raise disk_full_error(path, what, nbytes + spare, fix)


@contextmanager
def on_full_disk(path: str | os.PathLike, what: str, needed: int | Callable[[], int] | None = None,
                 fix: str = "") -> Iterator[None]:
    """Turn a full disk met inside the block into :func:`disk_full_error`; other errors pass unchanged.
    ``needed``: the bytes the write needs, or a function computing them (called only on a full disk)."""
    try:
        yield
    except DiskFullError as e:  # met by an inner write (opening the database): said with what this write needs
        if needed is None or getattr(e, "needed", None):
            raise
        raise disk_full_error(path, what, needed() if callable(needed) else needed, fix) from None
    except Exception as e:
        if is_disk_full(e, path):
            raise disk_full_error(path, what, needed() if callable(needed) else needed, fix) from None
        raise


@contextmanager
def atomic_file(path: str | os.PathLike, what: str, needed: int | Callable[[], int] | None = None) -> Iterator[Path]:
    """The temporary path to write ``path``'s new content to (a name of its own: two writers, threads or
    processes, never share one), renamed to ``path`` when the block ends without an error, removed otherwise: a
    reader sees the old file or the whole new one, never half. A full disk met inside is :func:`disk_full_error`
    (``needed``: as :func:`on_full_disk`), the file there before kept. For writers that take a file name
    (safetensors' ``save_file``, ``np.savez``); bytes and text go through :func:`write_atomic`.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_file(Path(d) / "b.bin", "a test file") as tmp:
    ...         _ = tmp.write_bytes(b"xy")
    ...     sorted(f.name for f in Path(d).iterdir())
    ['b.bin']
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        with on_full_disk(path, what, needed=needed):
            yield tmp
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str, what: str, *, mode: int | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all (:func:`atomic_file`), with room for it
    checked first: the one atomic write of bytes or text in LayerLab. A full disk is :func:`disk_full_error` and
    leaves no partial file under ``path``'s name, the file there before kept. ``mode`` (e.g. ``0o600`` for a file
    that holds a password): the file's permissions from its first byte.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_atomic(Path(d) / "a.json", '{"x": 1}', "a test file")
    ...     p.read_text(), sorted(f.name for f in Path(d).iterdir())
    ('{"x": 1}', ['a.json'])
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    check_free(path.parent, len(raw), what, spare=0)
    with atomic_file(path, what, needed=len(raw)) as tmp:
        if mode is None:
            tmp.write_bytes(raw)
        else:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as f:
                f.write(raw)
    return path


__all__ = ["write_atomic", "atomic_file", "SPARE_BYTES", "mount_point", "free_bytes", "human", "is_disk_full", "disk_full_error", "check_free",
           "on_full_disk", "NEARLY_FULL"]
