"""Who owns what in a workspace: owner ids, teachers and admins of the server, owner folders, the autosaved
canvas project and its undo history.

An owner is a string: ``anon:<32 hex>`` for an anonymous browser (the id lives in a cookie) or
``user:<name>`` for a signed-in user. Each owner has a folder ``<workspace>/owners/<safe id>/`` holding
``project.json`` (the canvas, autosaved) and ``history/`` (projects replaced by New, a template or "open
on canvas", newest last, so a replacement can be undone). Runs carry their owner in the run store; who may
read, control or delete them is decided by :mod:`builder.access` alone, from the roles listed here: teachers
(``LAYERLAB_TEACHERS`` or the server config, :func:`teachers`) and admins (``LAYERLAB_ADMINS`` or the config's
``admins``, :func:`admins`). Example::

    # not a doctest (needs files or training): run by tests/runs/test_owners.py::test_autosave_and_undo_history
    save_project(ws, "anon:" + "a" * 32, project)
    load_autosave(ws, "anon:" + "a" * 32).name
    # -> 'my net'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path

from builder.access import ENV_SHARED, LOCAL_OWNER, owner_of, shared_runs
from builder.errors import LayerLabError
from builder.graph.project import Project, load_project

ANON_PREFIX = "anon:"
USER_PREFIX = "user:"
HISTORY_KEEP = 10
_ANON_RE = re.compile(r"^[0-9a-f]{32}$")


# ------------------------------------------------------------------------------------ the server's config
ENV_TEACHERS = "LAYERLAB_TEACHERS"
ENV_SERVER_CONFIG = "LAYERLAB_SERVER_CONFIG"
SERVER_CONFIG = "server.json"  # in the workspace unless LAYERLAB_SERVER_CONFIG names another file
MAX_CONFIG_BYTES = 256 * 1024


def server_config(workspace: str | Path) -> dict:
    """The server's configuration file (``$LAYERLAB_SERVER_CONFIG`` or ``<workspace>/server.json``), ``{}`` when
    there is none. It holds ``teachers`` (a list of owner ids or e-mails) and ``quotas``
    (:mod:`builder.runs.quotas`). Raises LayerLabError for a file that is not a JSON object."""
    env = os.environ.get(ENV_SERVER_CONFIG, "").strip()
    path = Path(env).expanduser() if env else Path(workspace) / SERVER_CONFIG
    if not path.is_file():
        if env:
            raise LayerLabError(f"{ENV_SERVER_CONFIG} names the server's config file; received: {env!r}, which is "
                                "not a file. Fix: create it or unset the variable")
        return {}
    raw = path.read_bytes()[:MAX_CONFIG_BYTES + 1]
    try:
        data = json.loads(raw) if len(raw) <= MAX_CONFIG_BYTES else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise LayerLabError(f"the server config is a JSON object of at most {MAX_CONFIG_BYTES // 1024} KiB; "
                            f"received: {path}. Fix: write it as {{\"teachers\": [...], \"quotas\": {{...}}}}")
    return data


def _identity(entry: str) -> str:
    entry = entry.strip()
    return entry if ":" in entry else USER_PREFIX + entry  # a bare e-mail is a signed-in user


def teachers(workspace: str | Path) -> frozenset[str]:
    """The owners marked as teachers: ``$LAYERLAB_TEACHERS`` (comma-separated) and the config's ``teachers``.
    An entry is an owner id (``user:ann@school.org``, ``anon:<32 hex>``) or a bare e-mail (a signed-in user)."""
    names = [x for x in os.environ.get(ENV_TEACHERS, "").split(",") if x.strip()]
    listed = server_config(workspace).get("teachers") or []
    if not isinstance(listed, list):
        raise LayerLabError(f"the server config's teachers is a list of identities; received: "
                            f"{type(listed).__name__}. Fix: write \"teachers\": [\"ann@school.org\"]")
    return frozenset(_identity(str(x)) for x in [*names, *listed] if str(x).strip())


def is_teacher(workspace: str | Path, owner: str) -> bool:
    """Whether the server's configuration lists ``owner`` as a teacher."""
    return owner in teachers(workspace)


ENV_ADMINS = "LAYERLAB_ADMINS"


def admins(workspace: str | Path) -> frozenset[str]:
    """The owners marked as admins (every job on the server, stop, delete anyone's data): ``$LAYERLAB_ADMINS``
    (comma-separated) and the config's ``admins``, written as :func:`teachers` are. The CLI's ``local`` owner
    (the person at the server's shell) is always one."""
    names = [x for x in os.environ.get(ENV_ADMINS, "").split(",") if x.strip()]
    listed = server_config(workspace).get("admins") or []
    if not isinstance(listed, list):
        raise LayerLabError(f"the server config's admins is a list of identities; received: "
                            f"{type(listed).__name__}. Fix: write \"admins\": [\"it@school.org\"]")
    return frozenset({LOCAL_OWNER, *(_identity(str(x)) for x in [*names, *listed] if str(x).strip())})


def is_admin(workspace: str | Path, owner: str) -> bool:
    """Whether the server's configuration lists ``owner`` as an admin (or it is the CLI's ``local`` owner)."""
    return owner in admins(workspace)


def new_anonymous_id() -> str:
    """A fresh random anonymous id (32 hex characters; the value kept in the browser)."""
    return secrets.token_hex(16)


def valid_anonymous_id(value: object) -> bool:
    """Whether a cookie value is an id made by :func:`new_anonymous_id` (anything else is ignored)."""
    return isinstance(value, str) and bool(_ANON_RE.match(value))


def anonymous_owner(anon_id: str) -> str:
    """The owner string of an anonymous browser. Raises LayerLabError for a malformed id."""
    if not valid_anonymous_id(anon_id):
        raise LayerLabError(f"an anonymous id is 32 hexadecimal characters; received: {str(anon_id)[:40]!r}. "
                            "Fix: let the app create one")
    return ANON_PREFIX + anon_id


def user_owner(name: str) -> str:
    """The owner string of a signed-in user (email or subject), bounded to 200 characters."""
    name = str(name).strip()
    if not name:
        raise LayerLabError("a signed-in user needs an email or subject; received: ''. Fix: configure the "
                            "identity provider to return one")
    return USER_PREFIX + name[:200]


def safe_id(owner: str) -> str:
    """The folder name of an owner: its kind, a readable part limited to ``[a-z0-9-]``, and a hash."""
    kind = "user" if owner.startswith(USER_PREFIX) else "anon" if owner.startswith(ANON_PREFIX) else "other"
    readable = re.sub(r"[^a-z0-9]+", "-", owner.split(":", 1)[-1].lower()).strip("-")[:24]
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]
    return f"{kind}-{readable}-{digest}" if readable else f"{kind}-{digest}"


def owner_dir(workspace: str | Path, owner: str) -> Path:
    """``<workspace>/owners/<safe id>`` (created)."""
    d = Path(workspace) / "owners" / safe_id(owner)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_project(workspace: str | Path, owner: str, project: Project) -> Path:
    """Autosave an owner's canvas project (atomic; the last write wins between two tabs)."""
    path = owner_dir(workspace, owner) / "project.json"
    _atomic_write(path, project.to_json())
    return path


def load_autosave(workspace: str | Path, owner: str) -> Project | None:
    """The owner's autosaved project, or None when there is none or it cannot be read."""
    path = Path(workspace) / "owners" / safe_id(owner) / "project.json"
    if not path.is_file():
        return None
    try:
        return load_project(path)
    except LayerLabError:
        return None


def push_history(workspace: str | Path, owner: str, project: Project) -> Path:
    """Keep a project about to be replaced (the newest :data:`HISTORY_KEEP` are kept)."""
    d = owner_dir(workspace, owner) / "history"
    d.mkdir(exist_ok=True)
    path = d / f"{time.time_ns()}.json"
    _atomic_write(path, project.to_json())
    for old in sorted(d.glob("*.json"))[:-HISTORY_KEEP]:
        old.unlink(missing_ok=True)
    return path


def history(workspace: str | Path, owner: str) -> list[Path]:
    """The owner's replaced projects, oldest first."""
    d = Path(workspace) / "owners" / safe_id(owner) / "history"
    return sorted(d.glob("*.json")) if d.is_dir() else []


def pop_history(workspace: str | Path, owner: str) -> Project | None:
    """Take back the most recently replaced project (None when there is none)."""
    for path in reversed(history(workspace, owner)):
        try:
            proj = load_project(path)
        except LayerLabError:
            proj = None
        path.unlink(missing_ok=True)
        if proj is not None:
            return proj
    return None


def upload_dir(workspace: str | Path, owner: str) -> Path:
    """Where an owner's uploaded data files are kept (``owners/<safe id>/uploads``)."""
    d = owner_dir(workspace, owner) / "uploads"
    d.mkdir(exist_ok=True)
    return d


__all__ = ["LOCAL_OWNER", "ENV_SHARED", "owner_of", "shared_runs", "ENV_ADMINS", "admins", "is_admin", "ENV_TEACHERS", "ENV_SERVER_CONFIG", "server_config", "teachers",
           "is_teacher",
           "new_anonymous_id", "valid_anonymous_id", "anonymous_owner", "user_owner", "safe_id", "owner_dir",
           "save_project", "load_autosave", "push_history", "pop_history", "history", "upload_dir"]
