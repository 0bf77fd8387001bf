"""Reading user files with hard caps: a file's reported size is never trusted; natural sort order of names."""

from __future__ import annotations

import io
import lzma
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import builder.data.limits as limits
from builder.errors import DatasetError

#: What reading a user's zip may raise, from zipfile itself or the codec under it (a corrupt deflate or LZMA
#: stream, a CRC or header mismatch, an encrypted or unknown compression): every reader catches all of them.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError,
              NotImplementedError, RuntimeError, struct.error)


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
            try:  # the reported size sizes the first read only (a 64 MiB buffer for a 1 KiB file is waste)
                size = max(os.fstat(fh.fileno()).st_size, 0)
            except OSError:
                size = 0
            data = fh.read(min(limit, size) + 1)
            if size < len(data) <= limit:  # more than reported (a /proc file, a file still growing): read on
                data += fh.read(limit + 1 - len(data))
            return data
    except OSError as e:
        raise DatasetError(f"{f}: cannot read ({e.strerror})") from None


def check_zip_directory(src: Any, label: str, max_entries: int | None = None) -> None:
    """Refuse a zip whose central directory is too large or lists too many entries (``limits.MAX_ZIP_ENTRIES``
    unless ``max_entries``), before ``ZipFile`` reads it and builds one object per entry: the end record's byte
    size and count are checked, then the records themselves are counted (the end record's count may lie;
    ``ZipFile`` parses every record there is). ``src``: a path, bytes or a seekable binary file. A broken archive
    passes (``ZipFile`` reports it). Raises DatasetError."""
    limit = limits.MAX_ZIP_ENTRIES if max_entries is None else max_entries
    try:
        if isinstance(src, (bytes, bytearray)):
            return check_zip_directory(io.BytesIO(src), label, max_entries)
        if isinstance(src, (str, Path)):
            with open(src, "rb") as f:
                return check_zip_directory(f, label, max_entries)
        end = zipfile._EndRecData(src)
        if not end:
            return None  # ZipFile reports the broken archive
        declared, size = int(end[zipfile._ECD_ENTRIES_TOTAL]), int(end[zipfile._ECD_SIZE])
        if declared > limit:
            raise DatasetError(f"{label}: the zip lists {declared} entries, over the limit of {limit}. Fix: upload a "
                               "smaller subset")
        if size > limits.MAX_ZIP_DIRECTORY_BYTES:
            raise DatasetError(f"{label}: the zip's directory takes {size:,} bytes, over the limit of "
                               f"{limits.MAX_ZIP_DIRECTORY_BYTES:,} (too many or too long entries). Fix: upload a "
                               "smaller subset")
        start = int(end[zipfile._ECD_LOCATION]) - size  # as ZipFile finds it (zip64 records sit in between)
        if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
            start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
        if start < 0:
            return None
        src.seek(start)
        data = src.read(size)
    except (AttributeError, OSError, ValueError, struct.error):
        return None  # ZipFile reports the broken archive
    pos, count = 0, 0
    while pos + 46 <= len(data) and data[pos:pos + 4] == b"PK\x01\x02":
        count += 1
        if count > limit:
            raise DatasetError(f"{label}: the zip holds more than {limit} entries (its end record declares "
                               f"{declared}), over the limit. Fix: upload a smaller subset")
        pos += 46 + sum(struct.unpack_from("<HHH", data, pos + 28))
    return None


def error_name(e: BaseException) -> str:
    """An exception's type as people can look it up: ``BadZipFile``, ``zlib.error`` (not a bare ``error``).

    >>> import zlib; error_name(zlib.error("x"))
    'zlib.error'
    """
    name = type(e).__name__
    return f"{type(e).__module__}.{name}" if name == "error" else name


def read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> bytes:
    """A member's bytes, never more than it declares plus one, its CRC-32 checked: a member that is damaged
    (any of :data:`ZIP_ERRORS`), encrypted or inflates to another size than it declares is one DatasetError that
    names neither the member nor anything in it."""
    if info.flag_bits & 0x1:
        raise DatasetError(f"{label}: a zip member is encrypted; received: a password-protected member. Fix: zip "
                           "the files without a password")
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except ZIP_ERRORS as e:
        raise DatasetError(f"{label}: a zip member is damaged; received: {error_name(e)}. Fix: re-create the "
                           "zip") from None
    if len(data) != info.file_size:
        raise DatasetError(f"{label}: a zip member is damaged; received: it inflates to another size than it "
                           f"declares ({info.file_size:,} bytes). Fix: re-create the zip")
    return data


__all__ = ["natural_key", "read_limited", "read_head", "read_at_most", "regular_file", "ZIP_ERRORS",
           "check_zip_directory", "read_zip_member", "error_name"]
