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



def read_limited(path: str | Path | bytes, limit: int, what: str) -> bytes:
    """The bytes of a regular file, read with a hard cap (a file's reported size is never trusted: /proc files
    report 0 and stream more; devices and pipes are refused). Raises DatasetError."""
    if isinstance(path, (bytes, bytearray)):
        data = bytes(path)
    else:
        p = Path(path)
        if not p.exists():
            raise DatasetError(f"{p}: no such file")
        if p.is_dir():
            raise DatasetError(f"{p}: is a folder, not a {what}")
        if not p.is_file():
            raise DatasetError(f"{p}: not a regular file (a device, pipe or socket); received: a special file. "
                               f"Fix: save the {what} to a file and pass that")
        data = read_at_most(p, limit)
    if len(data) > limit:
        raise DatasetError(f"the {what} is larger than the limit of {limit // 2**20} MiB; received: more than "
                           f"{limit} bytes. Fix: sample it down or split it")
    return data



def read_at_most(f: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a file (more than ``limit`` means too large: its reported size may be
    wrong); a read error is a DatasetError."""
    try:
        with f.open("rb") as fh:
            return fh.read(limit + 1)
    except OSError as e:
        raise DatasetError(f"{f}: cannot read ({e.strerror})") from None



__all__ = ["natural_key", "read_limited", "read_at_most"]
