"""Upload handles: what content says about a person's own file (an opaque ``upload:<id>``), kept in and resolved
inside that owner's upload folder only.

A project, a link, a form or a job never names a server path: it names an upload by its id, the SHA-256 of its
bytes plus the file's suffix (older uploads: 16 hex digits). The folder is the owner's
(:func:`builder.runs.owners.upload_dir`, handed in by the caller: the data stage knows no owners), so an id
resolves to that owner's file or to nothing; an unknown id, another owner's id and a malformed one get the same
message, which quotes nothing read from a file. Example::

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     mine = UploadFolder(d)
    ...     ref = mine.save("My table.CSV", b"a,y\\n1,0\\n")
    ...     ref[:7], ref.endswith(".csv"), mine.resolve(ref).read_bytes()
    ('upload:', True, b'a,y\\n1,0\\n')
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.data.disk import write_atomic
from builder.errors import DatasetError

UPLOAD_PREFIX = "upload:"
_NAME = re.compile(r"^[0-9a-f]{16,64}(?:\.[a-z0-9]{1,8})?\Z")


def is_upload_id(value: object) -> bool:
    """Whether ``value`` has the form of an upload id (``upload:<hex>[.suffix]``); says nothing of its owner.

    >>> is_upload_id("upload:" + "ab" * 32 + ".zip"), is_upload_id("upload:../etc/passwd")
    (True, False)
    """
    return isinstance(value, str) and value.startswith(UPLOAD_PREFIX) and bool(_NAME.match(value[len(UPLOAD_PREFIX):]))


def upload_id(name: str, data: bytes) -> str:
    """The id an upload of ``data`` named ``name`` gets: ``upload:`` + SHA-256 + the name's suffix (lower case)."""
    suffix = re.sub(r"[^a-z0-9]", "", Path(str(name)).suffix.lower())[:8]
    return f"{UPLOAD_PREFIX}{hashlib.sha256(data).hexdigest()}" + (f".{suffix}" if suffix else "")


def no_upload(ref: object) -> DatasetError:
    """The one refusal for an upload id that is unknown, another owner's, malformed or not a regular file."""
    shown = ref if is_upload_id(ref) else "(not an upload id)"
    return DatasetError(f"a dataset file is one of your uploads; received: no upload {shown} of yours. Fix: upload "
                        "the file on the Data page and pick it there")


@dataclass(frozen=True)
class UploadFolder:
    """One owner's upload folder: upload ids are saved into it and resolve inside it, nowhere else."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    def save(self, name: str, data: bytes, admit: Callable[[int], None] | None = None) -> str:
        """Keep ``data`` (an uploaded file called ``name``) and return its upload id; written under a temporary
        name and renamed, so a half-written file is never an upload. ``admit`` is called with the bytes about to
        be written (not for a file already kept) and refuses them by raising (the owner's storage quota:
        :func:`builder.jobs.quotas.check_upload`)."""
        ref = upload_id(name, data)
        path = self.root / ref[len(UPLOAD_PREFIX):]
        if not path.is_file() or path.is_symlink():
            if admit is not None:
                admit(len(data))
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data, f"the upload {path.suffix or 'file'}")
        return ref

    def resolve(self, ref: object) -> Path:
        """The file of upload ``ref`` in this folder. Raises DatasetError (:func:`no_upload`, the same message for
        an unknown, malformed or another owner's id, a link or anything but a regular file)."""
        if not is_upload_id(ref):
            raise no_upload(ref)
        path = self.root / str(ref)[len(UPLOAD_PREFIX):]
        try:
            inside = path.resolve().parent == self.root.resolve()
            ok = inside and not path.is_symlink() and path.is_file()
        except OSError:
            ok = False
        if not ok:
            raise no_upload(ref)
        return path

    def id_of(self, path: object) -> str | None:
        """The upload id of ``path`` when it names a file of this folder (a run recorded before upload ids kept
        the absolute path); None otherwise, whether or not such a file exists."""
        if not isinstance(path, (str, Path)) or not str(path):
            return None
        p = Path(path)
        if not _NAME.match(p.name):
            return None
        try:
            ok = p.parent.resolve() == self.root.resolve()
        except OSError:
            return None
        ref = UPLOAD_PREFIX + p.name
        if not ok:
            return None
        try:
            self.resolve(ref)
        except DatasetError:
            return None
        return ref


__all__ = ["UPLOAD_PREFIX", "UploadFolder", "is_upload_id", "upload_id", "no_upload"]
