"""Reading user files with hard caps: a file's reported size is never trusted; natural sort order of names."""

from __future__ import annotations

from pathlib import Path

from builder.errors import DatasetError


def natural_key(s: str) -> tuple[int, float, str]:
    """Sort key putting numeric names in numeric order before text names ("2" < "10" < "cat")."""
    try:
        return (0, float(s), "")
    except ValueError:
        return (1, 0.0, s)


def regular_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path if it names a regular file (devices, pipes, sockets and folders are refused before
    anything is opened: reading a pipe could block, a device could stream forever). Raises DatasetError."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    if p.is_dir():
        raise DatasetError(f"{p}: is a folder, not a {what}")
    if not p.is_file():
        raise DatasetError(f"{p}: not a regular file (a device, pipe or socket); received: a special file. "
                           f"Fix: save the {what} to a file and pass that")
    return p


def too_large(limit: int, what: str, size: int | None = None) -> DatasetError:
    got = f"{size:,} bytes" if size is not None else f"more than {limit} bytes"
    return DatasetError(f"the {what} is larger than the limit of {limit // 2**20} MiB; received: {got}. "
                        "Fix: sample it down or split it")


def read_limited(path: str | Path | bytes, limit: int, what: str) -> bytes:
    """The bytes of a regular file, read with a hard cap. A file whose reported size is over the limit is
    refused before it is read; the read is capped anyway (a reported size is never trusted: /proc files report
    0 and stream more). Devices and pipes are refused. Raises DatasetError."""
    if isinstance(path, (bytes, bytearray)):
        if len(path) > limit:
            raise too_large(limit, what, len(path))
        return bytes(path)
    p = regular_file(path, what)
    try:
        size = p.stat().st_size
    except OSError:
        size = 0
    if size > limit:
        raise too_large(limit, what, size)
    data = read_at_most(p, limit)
    if len(data) > limit:
        raise too_large(limit, what)
    return data


def read_head(path: str | Path | bytes, n: int, what: str) -> bytes:
    """At most the first ``n + 1`` bytes of a regular file (or of ``bytes``): enough to check a header before
    the rest is read. Raises DatasetError."""
    if isinstance(path, (bytes, bytearray)):
        return bytes(path[: n + 1])
    return read_at_most(regular_file(path, what), n)


def read_at_most(f: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a file (more than ``limit`` means too large: its reported size may be
    wrong); a read error is a DatasetError."""
    try:
        with f.open("rb") as fh:
            return fh.read(limit + 1)
    except OSError as e:
        raise DatasetError(f"{f}: cannot read ({e.strerror})") from None


__all__ = ["natural_key", "read_limited", "read_head", "read_at_most", "regular_file"]
