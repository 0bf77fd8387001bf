"""Who owns what in a workspace: owner ids, teachers and admins of the server, owner folders, the autosaved
canvas project and its undo history.

An owner is a string: ``anon:<32 hex>`` for an anonymous browser (the id lives in a cookie) or
``user:<name>`` for a signed-in user. The owner id is a credential (whoever knows an anonymous id is that
person), so only the run store, class files and studies keep it: folder names and the :func:`pseudonym` people see (and
may put in ``LAYERLAB_TEACHERS``) come from a keyed hash (HMAC-SHA256 with the workspace's secret,
:func:`workspace_secret`), shown after a display name the person chose (:func:`label`).
Each owner has a folder ``<workspace>/owners/<safe id>/`` holding
``project.json`` (the canvas, autosaved) and ``history/`` (projects replaced by New, a template or "open
on canvas", newest last, so a replacement can be undone). Runs carry their owner in the run store; who may
read, control or delete them is decided by :mod:`builder.data.access` alone, from the roles listed here: teachers
(``LAYERLAB_TEACHERS`` or the server config, :func:`teachers`) and admins (``LAYERLAB_ADMINS`` or the config's
``admins``, :func:`admins`). Example::

    # not a doctest (needs files or training): run by tests/runs/test_owners.py::test_autosave_and_undo_history
    save_project(ws, "anon:" + "a" * 32, project)
    load_autosave(ws, "anon:" + "a" * 32).name
    # -> 'my net'
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from builder.data.access import (
    DELETE_DATA,
    ENV_SHARED,
    LOCAL_OWNER,
    Actor,
    Resource,
    may,
    owner_of,
    refusal,
    shared_runs,
)
from builder.data.disk import write_atomic
from builder.errors import LayerLabError, StaleProjectError
from builder.escape import shown_uri
from builder.graph.project import Project, load_project

ANON_PREFIX = "anon:"
USER_PREFIX = "user:"
HISTORY_KEEP = 10
_ANON_RE = re.compile(r"^[0-9a-f]{32}\Z")


# ------------------------------------------------------------------------------------ the server's config
ENV_TEACHERS = "LAYERLAB_TEACHERS"
ENV_SERVER_CONFIG = "LAYERLAB_SERVER_CONFIG"
SERVER_CONFIG = "server.json"  # in the workspace unless LAYERLAB_SERVER_CONFIG names another file
MAX_CONFIG_BYTES = 256 * 1024


def server_config_path(workspace: str | Path) -> Path:
    """Where the server's configuration file is: ``$LAYERLAB_SERVER_CONFIG``, else ``<workspace>/server.json``. A
    relative variable is resolved once, against the working folder of the first process that reads it, and written
    back, so that the processes it starts in other folders (jobs, a study's trials) read the same file."""
    env = os.environ.get(ENV_SERVER_CONFIG, "").strip()
    if not env:
        return Path(workspace) / SERVER_CONFIG
    path = Path(os.path.abspath(Path(env).expanduser()))
    os.environ[ENV_SERVER_CONFIG] = str(path)
    return path


def set_server_config(workspace: str | Path, **values: object) -> None:
    """Set keys of the server's configuration file (a value of None removes its key), written whole or not at
    all, readable by the server's user only (it may hold a database password). The caller checks that its actor
    may (an admin: :data:`builder.data.access.CONFIGURE`). Raises LayerLabError for a malformed file."""
    cfg = {k: v for k, v in {**server_config(workspace), **values}.items() if v is not None}
    write_atomic(server_config_path(workspace), json.dumps(cfg, indent=1).encode(), "the server config", mode=0o600)


def server_config(workspace: str | Path) -> dict:
    """The server's configuration file (:func:`server_config_path`), ``{}`` when there is none. It holds
    ``teachers`` (a list of owner ids or e-mails), ``quotas`` (:mod:`builder.jobs.quotas`) and the other
    server-wide settings (``database_url``: :func:`builder.runs.db.database_url`). Raises LayerLabError for a file
    that is not a JSON object."""
    if (pinned := _PINNED.get(("config", str(Path(workspace)), ""))) is not None:
        return dict(pinned)
    env = os.environ.get(ENV_SERVER_CONFIG, "").strip()
    path = server_config_path(workspace)
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
    if ":" in entry or PSEUDONYM_RE.match(entry):  # an owner id, or the pseudonym a person copied from the app
        return entry
    return USER_PREFIX + entry  # a bare e-mail is a signed-in user


def _listed(workspace: str | Path, owner: str, listed: Collection[str]) -> bool:
    """Whether ``owner`` is in a list of identities, by its owner id or its :func:`pseudonym`."""
    return owner in listed or (owner != LOCAL_OWNER and pseudonym(workspace, owner) in listed)


def teachers(workspace: str | Path) -> frozenset[str]:
    """The owners marked as teachers: ``$LAYERLAB_TEACHERS`` (comma-separated) and the config's ``teachers``.
    An entry is a :func:`pseudonym` (``anon-k7x2qd4mzt``, shown to each person on the Server page), an owner id
    (``user:ann@school.org``) or a bare e-mail (a signed-in user); match an owner with :func:`is_teacher`."""
    names = [x for x in os.environ.get(ENV_TEACHERS, "").split(",") if x.strip()]
    listed = server_config(workspace).get("teachers") or []
    if not isinstance(listed, list):
        raise LayerLabError(f"the server config's teachers is a list of identities; received: "
                            f"{type(listed).__name__}. Fix: write \"teachers\": [\"ann@school.org\"]")
    return frozenset(_identity(str(x)) for x in [*names, *listed] if str(x).strip())


def is_teacher(workspace: str | Path, owner: str) -> bool:
    """Whether the server's configuration lists ``owner`` (by id or :func:`pseudonym`) as a teacher."""
    return _listed(workspace, owner, teachers(workspace))


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
    """Whether the server's configuration lists ``owner`` (by id or :func:`pseudonym`) as an admin (or it is the
    CLI's ``local`` owner)."""
    return _listed(workspace, owner, admins(workspace))


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


def signed_in_name(claims: Mapping[str, Any]) -> str | None:
    """The name a signed-in user owns work under, from the identity provider's claims: the e-mail when the provider
    says it verified it (``email_verified``), else the subject qualified by its issuer's host (``host:sub``: a subject
    is unique only within its provider, and an e-mail nobody verified may name someone else, an admin included);
    ``None`` without an issuer and subject (no stable identity: the browser's cookie decides).

    >>> signed_in_name({"email": "ann@school.org", "email_verified": True, "sub": "1", "iss": "https://id.x"})
    'ann@school.org'
    >>> signed_in_name({"email": "admin@school.org", "sub": "7", "iss": "https://id.example.com/tenant"})
    'id.example.com:7'
    >>> signed_in_name({"email": "ann@school.org", "email_verified": "true", "sub": "1", "iss": "https://id.x"})
    'ann@school.org'
    >>> signed_in_name({"email": "ann@school.org", "email_verified": False}) is None
    True
    """
    email, verified = str(claims.get("email") or "").strip(), claims.get("email_verified")
    if email and (verified is True or (isinstance(verified, str) and verified.strip().lower() == "true")):
        return email
    sub, iss = str(claims.get("sub") or "").strip(), str(claims.get("iss") or "").strip()
    if not sub or not iss:
        return None
    host = iss.split("://", 1)[-1].split("/", 1)[0].lower()
    return f"{host}:{sub}" if host else None


def user_owner(name: str) -> str:
    """The owner string of a signed-in user (email or subject), bounded to 200 characters."""
    name = str(name).strip()
    if not name:
        raise LayerLabError("a signed-in user needs an email or subject; received: ''. Fix: configure the "
                            "identity provider to return one")
    return USER_PREFIX + name[:200]


# ------------------------------------------------------------------ keyed identities: folder names, pseudonyms
SECRET_FILE = "identity.key"  # in the workspace: the HMAC key of folder names and pseudonyms (mode 0600)
OWNERS_DIR = "owners"
PSEUDONYM_RE = re.compile(r"^(anon|user|other)-[a-z2-7]{10}\Z")


def _create_secret(path: Path) -> None:
    """Write a new key to a private temporary file and link it into place (a process that comes second keeps the
    first one's); on a file system without hard links, create the file exclusively and write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_bytes(32).hex().encode("ascii")
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError:  # no hard links here: the exclusive create decides, readers wait for the whole key
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as f:
            f.write(text)
    finally:
        tmp.unlink(missing_ok=True)


def workspace_secret(workspace: str | Path) -> bytes:
    """The workspace's secret key (32 random bytes, hex in ``<workspace>/identity.key``, mode 0600), created at
    first use. Two processes starting together agree on one key (:func:`_create_secret`). A key file others may
    read is made private again. Raises LayerLabError for a damaged key file."""
    path = Path(workspace) / SECRET_FILE
    if not path.is_file():
        _create_secret(path)
    for _ in range(50):
        raw = path.read_bytes().strip()
        if len(raw) >= 64:
            break
        time.sleep(0.02)  # another process is still writing it (a file system without hard links)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # e.g. restored from a backup with the default mode
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except ValueError:
        key = b""
    if len(key) < 16:
        raise LayerLabError(f"the workspace's identity key is at least 32 hexadecimal characters; received: a file "
                            f"of {len(raw)} bytes ({path}). Fix: restore it from a backup (a new key renames "
                            "every owner's folder)")
    return key


def _owner_hash(workspace: str | Path, owner: str) -> str:
    """HMAC-SHA256 of an owner id with the workspace's secret, in lower-case base32 (no digits 0, 1, 8, 9)."""
    if (pinned := _PINNED.get(("hash", str(Path(workspace)), owner))) is not None:
        return pinned
    mac = hmac.new(workspace_secret(workspace), owner.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii").rstrip("=").lower()


_PINNED: dict[tuple[str, str, str], Any] = {}  # a confined job's answers, read before its files were shut


#: the server config's settings that hold secrets: the run database's URL (its password; a confined process's store
#: is its broker, it never opens the database) and the trackers' URIs (the admin's MLflow password or token)
DATABASE_KEY, TRACKING_KEY = "database_url", "tracking"


def confined_config(cfg: dict, keep: Iterable[str] = ()) -> dict:
    """The server config as a confined process keeps it (:func:`pin`): without the database's URL, and each
    tracker URI without its credentials (:func:`builder.escape.shown_uri`) but those in ``keep`` (the process's own
    tracker, which it holds anyway). Code a person's model turned against its process reads what the process holds:
    the whole config gave every job the database's password and the admin's MLflow credentials, to write into its
    run's outputs or send to its own tracker.

    >>> confined_config({"database_url": "postgresql://u:pw@db/x", "teachers": ["t"],
    ...                  "tracking": {"uri": "https://a:pw@ml.org", "allow": ["https://ml.org/x?token=T"]}})
    {'teachers': ['t'], 'tracking': {'uri': 'https://a:***@ml.org', 'allow': ['https://ml.org/x?token=***']}}
    """
    kept = set(keep)
    out = {k: v for k, v in cfg.items() if k != DATABASE_KEY}
    tracking = out.get(TRACKING_KEY)
    if isinstance(tracking, dict):
        shown = {**tracking}
        if isinstance(tracking.get("uri"), str) and tracking["uri"] not in kept:
            shown["uri"] = shown_uri(tracking["uri"])
        if isinstance(tracking.get("allow"), list):
            shown["allow"] = [a if not isinstance(a, str) or a in kept else shown_uri(a) for a in tracking["allow"]]
        out[TRACKING_KEY] = shown
    return out


def pin(workspace: str | Path, owner: str, keep: Iterable[str] = ()) -> None:
    """In a job about to confine its files (:func:`builder.jobs.job_sandbox.confine`: ``identity.key`` and
    ``server.json`` unreadable from then on): keep this process's answers that read them, its owner's folder name
    and the server config without its secrets (:func:`confined_config`; ``keep``: its own tracker's URI), so the
    job goes on finding its owner's uploads and settings (the key itself is not kept)."""
    ws = str(Path(workspace))
    _PINNED[("hash", ws, owner)] = _owner_hash(workspace, owner)
    _PINNED.pop(("config", ws, ""), None)  # the file's settings, not an earlier pin's
    _PINNED[("config", ws, "")] = confined_config(server_config(workspace), keep)


def _kind(owner: str) -> str:
    return "user" if owner.startswith(USER_PREFIX) else "anon" if owner.startswith(ANON_PREFIX) else "other"


def safe_id(workspace: str | Path, owner: str) -> str:
    """The folder name of an owner: its kind and 26 characters of its keyed hash (nothing of the id itself).

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> name = safe_id(ws, "anon:" + "ab12cd" * 5 + "ef")
    >>> name.startswith("anon-"), len(name), "ab12cd" in name, name == safe_id(ws, "anon:" + "ab12cd" * 5 + "ef")
    (True, 31, False, True)
    """
    return f"{_kind(owner)}-{_owner_hash(workspace, owner)[:26]}"


def owned_name(workspace: str | Path, owner: str, name: str) -> str:
    """The name ``owner``'s thing called ``name`` has where several owners' things share one name space (a
    study's storage, its tracker): ``<safe id>/<name>`` (:func:`safe_id`, nothing of the owner id), the bare
    ``name`` for the CLI's ``local`` user. The one rule for names that are per owner.

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> owned_name(ws, LOCAL_OWNER, "lr-sweep")
    'lr-sweep'
    >>> key = owned_name(ws, "anon:" + "ab" * 16, "lr-sweep")
    >>> key == safe_id(ws, "anon:" + "ab" * 16) + "/lr-sweep"
    True
    """
    return name if owner == LOCAL_OWNER else f"{safe_id(workspace, owner)}/{name}"


def pseudonym(workspace: str | Path, owner: str) -> str:
    """The label people see for an owner and may write in ``LAYERLAB_TEACHERS`` / ``LAYERLAB_ADMINS``: its kind
    and 10 characters of its keyed hash (``anon-k7x2qd4mzt``), stable for the workspace; ``local`` for the CLI.

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> bool(PSEUDONYM_RE.match(pseudonym(ws, "user:ann@school.org"))), pseudonym(ws, LOCAL_OWNER)
    (True, 'local')
    """
    if owner == LOCAL_OWNER:
        return LOCAL_OWNER
    return f"{_kind(owner)}-{_owner_hash(workspace, owner)[26:36]}"


def _v1_safe_id(owner: str) -> str:
    """The folder name LayerLab 0.1 gave an owner (its kind, up to 24 characters of the id, a plain hash): only to
    find such folders and move them (:mod:`builder.admin.owner_migration`); removed with that migration in 0.3."""
    readable = re.sub(r"[^a-z0-9]+", "-", owner.split(":", 1)[-1].lower()).strip("-")[:24]
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]
    return f"{_kind(owner)}-{readable}-{digest}" if readable else f"{_kind(owner)}-{digest}"


_V1_FOLDER_RE = re.compile(r"^(anon|user|other)(-[a-z0-9-]+)?-[0-9a-f]{16}\Z")
_LEGACY = "legacy"  # an old folder whose owner is not known yet: legacy-<keyed hash of its old name>


def _legacy_name(workspace: str | Path, old: str) -> str:
    return f"{_LEGACY}-{_owner_hash(workspace, 'folder:' + old)[:26]}"


def owner_path(workspace: str | Path, owner: str) -> Path:
    """``<workspace>/owners/<safe id>`` (not created); the owner's LayerLab 0.1 folder, kept under a ``legacy-``
    name while its owner was unknown (:func:`new_folder_names`), is moved there first."""
    root = Path(workspace) / OWNERS_DIR
    path = root / safe_id(workspace, owner)
    if root.is_dir() and not path.exists():
        src = root / _legacy_name(workspace, _v1_safe_id(owner))
        if src.is_dir() and not src.is_symlink():
            move_owner_folder(src, path, {src.name: path.name})
    return path


def replace_in_text_files(paths: Iterable[Path], renames: Mapping[str, str]) -> int:
    """Replace each old folder name by its new one in small text files (JSON, Markdown, logs); the count changed."""
    changed = 0
    for path in paths:
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > 8 * 2**20:
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        new = text
        for old, to in renames.items():
            new = new.replace(old, to)
        if new != text:
            try:
                _atomic_write(path, new)
            except FileNotFoundError:  # its folder was moved meanwhile by another process (rewritten before)
                continue
            changed += 1
    return changed


def move_owner_folder(src: Path, dst: Path, renames: Mapping[str, str]) -> None:
    """Move an owner's folder to its new name: the paths its own files name (autosave, history) are rewritten
    first, then it is renamed atomically. Safe when two processes do it at once (the second finds it gone); a
    ``dst`` that exists already (a new-named folder made meanwhile) receives the entries it lacks."""
    replace_in_text_files([src / "project.json", *sorted((src / "history").glob("*.json"))], renames)
    try:
        os.rename(src, dst)  # atomic; also replaces an empty dst
        return
    except FileNotFoundError:
        return  # another process moved it
    except OSError:
        pass  # dst is not empty: merge
    for child in sorted(src.iterdir()) if src.is_dir() else ():
        target = dst / child.name
        if child.is_dir() and target.is_dir() and not child.is_symlink():
            for sub in child.iterdir():
                if not (target / sub.name).exists():
                    os.replace(sub, target / sub.name)
        elif not target.exists():
            os.replace(child, target)
    shutil.rmtree(src, ignore_errors=True)  # what is left exists in dst too (dst's copy is newer)


def old_owner_folders(workspace: str | Path) -> list[str]:
    """Names of folders in ``<workspace>/owners`` made by LayerLab 0.1
    (:func:`builder.admin.owner_migration.migrate_owner_folders` moves them)."""
    root = Path(workspace) / OWNERS_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _V1_FOLDER_RE.match(p.name) and p.is_dir()
                  and not p.is_symlink())


def new_folder_names(workspace: str | Path, known: Iterable[str]) -> dict[str, str]:
    """The new name of every LayerLab 0.1 owner folder of the workspace: :func:`safe_id` of its owner when the
    owner is among ``known`` (owners of runs, classes, studies), else a ``legacy-`` name (keyed, too) that
    :func:`owner_path` moves to the owner's folder when the owner comes back."""
    by_old = {_v1_safe_id(o): o for o in known}
    return {old: safe_id(workspace, by_old[old]) if old in by_old else _legacy_name(workspace, old)
            for old in old_owner_folders(workspace)}


STUDIES_DIR = "studies"  # in the workspace: the files of the studies the app started (builder.search.storage)


def owner_folders(workspace: str | Path, owner: str) -> list[Path]:
    """Every folder of ``owner``'s stored files besides its run folders (not created): ``owners/<safe id>`` (its
    autosave, undo history, profile and uploads) and ``studies/<safe id>`` (its studies' projects, logs and
    private temporary folders, :func:`builder.search.storage.study_files`); what the storage quota counts with the
    run folders (:func:`builder.jobs.quotas.usage`). The CLI's ``local`` user keeps its studies at the top of
    ``studies/``, among everyone's folders: only its owner folder is listed (it has no quota).

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> [p.parent.name for p in owner_folders(ws, "anon:" + "ab" * 16)]
    ['owners', 'studies']
    """
    home = owner_path(workspace, owner)
    if owner == LOCAL_OWNER:
        return [home]
    return [home, Path(workspace) / STUDIES_DIR / safe_id(workspace, owner)]


def owner_dir(workspace: str | Path, owner: str) -> Path:
    """``<workspace>/owners/<safe id>`` (created)."""
    d = owner_path(workspace, owner)
    d.mkdir(parents=True, exist_ok=True)
    return d


# ------------------------------------------------------------------------- the name a person chose to be shown
PROFILE = "profile.json"  # in an owner's folder: ``{"display_name": ..., "guide_hidden": ...}``
PREFERENCES = frozenset({"guide_hidden"})  # on/off choices kept with the profile (they outlive a reload)
DISPLAY_NAME_MAX = 40
_DISPLAY_RE = re.compile(r"^[^\W_][\w .'-]*\Z")  # letters of any script, digits, spaces, . ' - _; a letter first


def _checked_display_name(name: str) -> str | None:
    name = " ".join(str(name).split())
    if not name:
        return None
    if len(name) > DISPLAY_NAME_MAX or not _DISPLAY_RE.match(name) or PSEUDONYM_RE.match(name) or name == LOCAL_OWNER:
        raise LayerLabError(f"a display name is 1 to {DISPLAY_NAME_MAX} letters, digits, spaces, . ' - or _, "
                            f"starting with a letter or digit, and not an id; received: {name[:60]!r}. Fix: e.g. "
                            "\"Ann B.\"")
    return name


def set_display_name(workspace: str | Path, owner: str, name: str) -> str | None:
    """Keep the name ``owner`` chose to be shown to admins and teachers (:func:`label`); an empty name removes it.
    Returns the name kept (spaces collapsed) or None. Raises LayerLabError for a name of other characters, over
    :data:`DISPLAY_NAME_MAX` characters, or shaped as an id (a pseudonym, ``local``).

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> set_display_name(ws, "anon:" + "a" * 32, "  Ann   B. "), display_name(ws, "anon:" + "a" * 32)
    ('Ann B.', 'Ann B.')
    """
    checked = _checked_display_name(name)
    _write_profile(workspace, owner, display_name=checked)
    return checked


def _profile(workspace: str | Path, owner: str) -> dict:
    """The owner's profile file as a dict ({} when there is none or it is not one)."""
    path = owner_path(workspace, owner) / PROFILE
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:4096]) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_profile(workspace: str | Path, owner: str, **changes) -> None:
    """Set (None: remove) entries of the owner's profile, keeping the others; no file when nothing is left."""
    data = {k: v for k, v in {**_profile(workspace, owner), **changes}.items() if v is not None}
    path = owner_dir(workspace, owner) / PROFILE
    if data:
        _atomic_write(path, json.dumps(data))
    else:
        path.unlink(missing_ok=True)


def display_name(workspace: str | Path, owner: str) -> str | None:
    """The name ``owner`` chose (:func:`set_display_name`), None when there is none or the file is not one."""
    try:
        return _checked_display_name(_profile(workspace, owner).get("display_name") or "")
    except (LayerLabError, TypeError):
        return None


def _checked_preference(key: str) -> str:
    if key not in PREFERENCES:
        raise LayerLabError(f"a preference is one of {sorted(PREFERENCES)}; received: {str(key)[:60]!r}. Fix: use "
                            "one of those names")
    return key


def set_preference(workspace: str | Path, owner: str, key: str, on: bool) -> None:
    """Keep an on/off choice of ``owner`` (one of :data:`PREFERENCES`) across reloads and browsers' sessions.

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> o = "anon:" + "b" * 32
    >>> set_preference(ws, o, "guide_hidden", True); preference(ws, o, "guide_hidden")
    True
    """
    _write_profile(workspace, owner, **{_checked_preference(key): True if on else None})


def preference(workspace: str | Path, owner: str, key: str) -> bool:
    """An on/off choice of ``owner`` (:func:`set_preference`); False when never set."""
    return _profile(workspace, owner).get(_checked_preference(key)) is True


def label(workspace: str | Path, owner: str) -> str:
    """How admins, teachers and shared lists name an owner: the name it chose with its pseudonym
    (``Ann B. (anon-k7x2qd4mzt)``: a chosen name cannot pass for someone else), else the pseudonym alone."""
    chosen = display_name(workspace, owner) if owner != LOCAL_OWNER else None
    return f"{chosen} ({pseudonym(workspace, owner)})" if chosen else pseudonym(workspace, owner)


def _atomic_write(path: Path, text: str) -> None:
    write_atomic(path, text, f"your {path.name}" if path.suffix else "your project's history")


PROJECT_REV = "project.rev"  # beside project.json: how many times it was saved (a stale tab is told apart)


def project_revision(workspace: str | Path, owner: str) -> int:
    """The revision of the owner's autosaved project (0 when none was saved)."""
    try:
        return int((owner_path(workspace, owner) / PROJECT_REV).read_text(encoding="ascii")[:20])
    except (OSError, ValueError):
        return 0


@contextlib.contextmanager
def _project_lock(folder: Path):
    """One writer of an owner's project at a time (two tabs autosave from two threads, or two processes)."""
    try:
        import fcntl  # lazy: POSIX only (fcntl)
    except ImportError:  # not POSIX: the compare and the write are not atomic together
        yield
        return
    with open(folder / ".project.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def save_project(workspace: str | Path, owner: str, project: Project, *, base: int | None = None) -> int:
    """Autosave an owner's canvas project (atomic) and return its new revision.

    With ``base``, the revision this session last read or wrote, a save on top of a newer one (another tab of the
    same person saved since) is refused with :class:`StaleProjectError` and nothing is written; without it the
    last write wins.

    >>> import tempfile
    >>> from builder.graph.templates import load_template
    >>> ws, me = tempfile.mkdtemp(), "anon:" + "d" * 32
    >>> save_project(ws, me, load_template("mlp"), base=0), save_project(ws, me, load_template("cnn"), base=1)
    (1, 2)
    >>> save_project(ws, me, load_template("mlp"), base=1)
    Traceback (most recent call last):
    ...
    builder.errors.StaleProjectError: the project was saved by another tab or window after this one read it; received: a save on top of revision 1, saved now: 2. Fix: load the other tab's version or keep this one as a copy
    """
    d = owner_dir(workspace, owner)
    with _project_lock(d):
        now = project_revision(workspace, owner)
        if base is not None and base != now:
            raise StaleProjectError(f"the project was saved by another tab or window after this one read it; "
                                    f"received: a save on top of revision {base}, saved now: {now}. Fix: load the "
                                    "other tab's version or keep this one as a copy", revision=now)
        _atomic_write(d / "project.json", project.to_json())
        _atomic_write(d / PROJECT_REV, str(now + 1))
    return now + 1


def load_autosave(workspace: str | Path, owner: str) -> Project | None:
    """The owner's autosaved project, or None when there is none or it cannot be read."""
    path = owner_path(workspace, owner) / "project.json"
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
    d = owner_path(workspace, owner) / "history"
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
    """Where an owner's uploaded data files are kept (``owners/<safe id>/uploads``, created)."""
    d = owner_dir(workspace, owner) / "uploads"
    d.mkdir(exist_ok=True)
    return d



def check_sees(store: Any, owner: str, actor: Actor | None = None) -> None:
    """Refuse unless the actor of ``store`` (a :class:`RunStore` or a job's broker client) may see what ``owner``
    uses (its jobs, bytes, GPU time): the owner itself, an admin or trusted code (a job's admission and broker),
    those who may delete its data. Anyone else gets the unknown owner's answer, which names it by its pseudonym only.

    Raises:
        AccessDenied: anyone else.
    """
    if not may(store.who(actor), DELETE_DATA, Resource("owner", owner)):
        raise refusal(pseudonym(store.workspace, owner), "owner")


__all__ = ["pin", "confined_config", "DATABASE_KEY", "TRACKING_KEY", "LOCAL_OWNER", "ENV_SHARED", "owner_of", "signed_in_name", "shared_runs", "check_sees", "ENV_ADMINS", "admins", "is_admin", "ENV_TEACHERS", "ENV_SERVER_CONFIG", "server_config", "server_config_path", "set_server_config", "teachers",
           "is_teacher",
           "new_anonymous_id", "valid_anonymous_id", "anonymous_owner", "user_owner", "SECRET_FILE", "OWNERS_DIR",
           "PSEUDONYM_RE", "workspace_secret", "safe_id", "owned_name", "pseudonym", "owner_path", "owner_dir", "owner_folders", "STUDIES_DIR",
           "move_owner_folder", "replace_in_text_files", "old_owner_folders", "new_folder_names", "PROFILE",
           "DISPLAY_NAME_MAX", "set_display_name", "display_name", "label",
           "save_project", "project_revision", "load_autosave", "push_history", "pop_history", "history", "upload_dir"]
