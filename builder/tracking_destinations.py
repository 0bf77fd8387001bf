"""Where a person's runs may be logged: the MLflow tracking URI of each owner (their own setting, the CLI's flag or
shell, the server config's default) and the admin's allow-list, LayerLab's own databases never a tracking store,
local paths in a URI made absolute at the command line's door, and what a visitor may see of the server's setting.
:mod:`builder.tracking` logs to the destination decided here."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from urllib3.util import parse_url  # how requests (MLflow's HTTP client) reads a URL

from builder.data.disk import write_atomic
from builder.errors import LayerLabError
from builder.escape import shown_uri
from builder.runs.owners import LOCAL_OWNER, owner_dir, server_config

ENV_URI = "MLFLOW_TRACKING_URI"


def tracking_uri(flag: str | None = None) -> str | None:
    """The local user's tracking URI: ``flag``, else ``$MLFLOW_TRACKING_URI`` (the shell's environment, as MLflow
    itself reads it), else None. Only the CLI's local user has one this way: a web visitor's is their own
    setting (:func:`owner_setting`); :func:`resolve_tracking` decides for everyone."""
    uri = flag or os.environ.get(ENV_URI) or None
    return uri.strip() or None if uri else None


# ------------------------------------------------------------------ where a person's runs may be logged
SETTING_FILE = "tracking.json"  # in the owner's folder (builder.runs.owners.owner_dir): {"uri": ...}
CONFIG_KEY = "tracking"  # the server config's {"tracking": {"uri": default for everyone, "allow": [...]}}
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def local_paths(uri: str) -> list[Path]:
    """The files or folders on this host a tracking (or artefact) URI writes into: a ``sqlite:`` database (also
    ``sqlite:///file:...?uri=true``, a ``~`` left as sqlite leaves it and as a shell expands it), a ``file:`` or
    plain path (MLflow's file store); ``[]`` for a network store or an in-memory database. Relative paths are
    taken from the working folder, as sqlite and MLflow take them.

    >>> [p.name for p in local_paths("sqlite:///file:/tmp/a.db?mode=rw&uri=true")]
    ['a.db']
    >>> local_paths("http://mlflow:5000") + local_paths("sqlite://") + local_paths("postgresql://h/db")
    []
    """

    uri = uri.strip()
    scheme = (_SCHEME_RE.match(uri) or [None, ""])[1].lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    raw: list[str] = []
    if scheme.split("+")[0] == "sqlite":
        from sqlalchemy.engine import make_url  # lazy: heavy (sqlalchemy)

        try:
            db = make_url(uri).database or ""
        except Exception:  # not a URL sqlalchemy reads: MLflow cannot open it either; check its text as a path
            db = uri.split(":", 1)[1].lstrip("/")
        if db.startswith("file:"):
            db = urlsplit(db).path or db[5:]
        if db and db != ":memory:" and not db.startswith("file::memory:"):
            raw = [db, unquote(db)]
    elif scheme == "file":
        raw = [urlsplit(uri).path, unquote(urlsplit(uri).path)]
    elif not scheme:
        raw = [uri]
    out: list[Path] = []
    for r in raw:
        for p in (Path(r), Path(r).expanduser()):
            p = p if p.is_absolute() else Path.cwd() / p
            if p not in out:
                out.append(p)
    return out


def absolute_uri(uri: str, cwd: str | Path) -> str:
    """``uri`` with a relative local path in it made absolute against ``cwd``: ``sqlite:///mlflow.db``, a
    ``file:`` URI or a plain folder, as the command line's door does for every path it is given (a job or a trial
    runs in another working folder: a relative tracker landed in the install folder). Other URIs unchanged.

    >>> absolute_uri("sqlite:///runs/mlflow.db", "/home/me"), absolute_uri("mlruns", "/home/me")
    ('sqlite:////home/me/runs/mlflow.db', '/home/me/mlruns')
    >>> absolute_uri("sqlite:////srv/m.db", "/x"), absolute_uri("http://h:5000", "/x"), absolute_uri("file:m", "/x")
    ('sqlite:////srv/m.db', 'http://h:5000', 'file:///x/m')
    """
    text = uri.strip()
    scheme = (_SCHEME_RE.match(text) or [None, ""])[1].lower()
    base = Path(cwd)
    if scheme.split("+")[0] == "sqlite":
        from builder.runs.db import absolute_sqlite  # lazy: heavy (sqlalchemy)

        return absolute_sqlite(text, base)
    if scheme == "file":
        path = urlsplit(text).path
        return text if path.startswith("/") else f"file://{os.path.abspath(base / path)}"
    if not scheme and text:
        return os.path.abspath(base / Path(text).expanduser())
    return text


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def internal_place(uri: str, workspace: str | Path, also: Iterable[str] = ()) -> str | None:
    """What of LayerLab's own that ``uri`` would write into (a path, or a database named without its
    credentials), or None. LayerLab's own: everything in the workspace (the run database, studies, run folders,
    owners' folders, caches), found by resolved path (links followed), and by file identity (a hard link elsewhere
    to the run database or a studies database); the run database on a database server (``$LAYERLAB_DB_URL`` or
    the server config's), whoever connects to it; and ``also`` (a study's storage given elsewhere), a file or a
    database."""
    from builder.runs.db import database_url, redact, same_database  # lazy: heavy (sqlalchemy)

    ws = Path(workspace).expanduser().resolve()
    own = [ws / "layerlab.db", ws / "studies.db"] + [p for a in also for p in local_paths(a)]
    for p in local_paths(uri):
        resolved = p.resolve()
        if resolved.is_relative_to(ws) or any(resolved == o.resolve() or _same_file(resolved, o) for o in own):
            return str(p)
    for db in (database_url(workspace), *also):
        if same_database(uri, db):
            return redact(db)
    return None


def _origin(uri: str) -> tuple[str, str, int | None, str] | None:
    """``(scheme, host, port, path)`` of an http(s) URI as the HTTP client that MLflow sends it with (requests,
    through urllib3) reads it too, else None: a URI that parsers read differently (a backslash, a control
    character or space, hosts or ports that Python's and urllib3's parsers disagree on) names no destination."""
    text = uri.strip()
    if "\\" in text or any(ord(c) <= 32 or ord(c) == 127 for c in text):
        return None  # 'https://evil.com\\@allowed.org': urllib reads allowed.org, urllib3 connects to evil.com
    try:
        u = urlsplit(text)
        port = u.port or {"http": 80, "https": 443}.get(u.scheme.lower())
        sent = parse_url(text)  # urllib3's reading: where the request goes
    except ValueError:  # urllib3's LocationParseError is a ValueError
        return None
    if u.scheme.lower() not in ("http", "https") or not u.hostname:
        return None
    if (sent.host or "").lower() != u.hostname.lower() or (sent.port or port) != port:
        return None
    return u.scheme.lower(), u.hostname.lower(), port, u.path.rstrip("/")


_DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}


def tcp_ports(uri: str | None) -> list[int]:
    """The TCP ports a job that logs to the tracker ``uri`` connects to (what its sandbox lets it reach,
    :func:`builder.jobs.job_sandbox.confinement`): an ``http(s)`` tracker's port as MLflow's HTTP client reads it,
    a database store's port (or its scheme's default); none for a local store or a URI no client reads alike.

    >>> tcp_ports("https://ml.school.org"), tcp_ports("http://127.0.0.1:5000/x"), tcp_ports("postgresql+psycopg://h/db")
    ([443], [5000], [5432])
    >>> tcp_ports("sqlite:////tmp/mlflow.db"), tcp_ports(None), tcp_ports("https://evil.com\\\\@ml.school.org")
    ([], [], [])
    """
    if not uri:
        return []
    if (origin := _origin(uri)) is not None:
        return [origin[2]]
    scheme = (_SCHEME_RE.match(uri.strip()) or [None, ""])[1].lower().split("+")[0]
    if scheme not in _DB_PORTS:
        return []
    try:
        return [urlsplit(uri.strip()).port or _DB_PORTS[scheme]]
    except ValueError:  # a port that is not a number: no client connects
        return []


RAY_ENV = "LAYERLAB_RAY_ADDRESS"  # (builder.jobs.executors.ENV_RAY_ADDRESS: the jobs layer sits above this one)
RAY_PORTS = (6379, 8265, 10001)  # a Ray cluster's GCS, dashboard and client server, by default


def reserved_ports(workspace: str | Path) -> set[int]:
    """TCP ports no tracker may use: a job's sandbox opens its tracker's port to every host (Landlock's network
    rules name ports, not hosts), so a tracker on the run database's port would let a job reach the run database
    (and a job's process held its address before it confined itself), one on a Ray cluster's port the cluster,
    which runs what it is sent outside any sandbox.

    >>> sorted(reserved_ports("/nonexistent-ws"))  # SQLite and no cluster: none
    []
    """
    from builder.runs.db import database_url  # lazy: heavy (sqlalchemy)

    out = set(tcp_ports(database_url(workspace)))
    ray = os.environ.get(RAY_ENV, "").strip().rstrip("/")
    if ray and ray != "local":
        out.update(RAY_PORTS)
        if (m := re.search(r":(\d{1,5})$", ray)) is not None:
            out.add(int(m.group(1)))
    return out


def names_a_host(uri: str | None) -> bool:
    """Whether a job that logs to the tracker ``uri`` looks up a host name (over UDP, the one network use of a
    job besides its tracker's TCP port): an ``http(s)`` tracker or a database store named by a name; not one named
    by an IP address or ``localhost`` (the hosts file), nor a local store.

    >>> names_a_host("https://ml.school.org"), names_a_host("http://127.0.0.1:5000"), names_a_host("http://[::1]:80")
    (True, False, False)
    >>> names_a_host("postgresql://db.school.org/ml"), names_a_host("postgresql://localhost/ml"), names_a_host(None)
    (True, False, False)
    """
    if not tcp_ports(uri):
        return False
    origin = _origin(str(uri))
    try:
        host = origin[1] if origin is not None else (urlsplit(str(uri).strip()).hostname or "")
    except ValueError:
        return False
    if host in ("", "localhost"):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _dot_segments(path: str) -> bool:
    """Whether ``path`` holds a ``.`` or ``..`` segment once percent-decoded (repeatedly) with backslashes as
    slashes, as a proxy that normalises paths may read it (``/team-a/..%2f..%2fother`` leaves ``/team-a``)."""
    for _ in range(4):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return any(seg in (".", "..") for seg in path.replace("\\", "/").split("/"))


def allowed_by(uri: str, entry: str) -> bool:
    """Whether the server config's allow-list ``entry`` admits ``uri``: an ``http(s)`` entry admits the same
    scheme, host and port and its path or one below it; any other entry admits itself exactly (a local
    database by its resolved path).

    >>> allowed_by("https://ml.school.org/team-a", "https://ml.school.org:443")
    True
    >>> allowed_by("https://ml.school.org.evil.com", "https://ml.school.org"), allowed_by("http://ml.school.org/x",
    ...     "https://ml.school.org"), allowed_by("https://ml.school.org/a/../b", "https://ml.school.org/a")
    (False, False, False)
    >>> allowed_by("https://evil.com\\\\@ml.school.org", "https://ml.school.org")  # the client would go to evil.com
    False
    """
    a, b = _origin(uri), _origin(entry)
    if a is not None or b is not None:
        dots = a is not None and _dot_segments(a[3])  # a client or proxy collapses them: out of the path
        return (a is not None and b is not None and not dots and a[:3] == b[:3]
                and (a[3] + "/").startswith(b[3] + "/"))
    pa, pb = local_paths(uri), local_paths(entry)
    if pa or pb:
        return bool(pa and pb) and pa[0].resolve() == pb[0].resolve()
    return uri.strip() == entry.strip()


def server_tracking(workspace: str | Path) -> tuple[str | None, list[str]]:
    """The admin's tracking settings from the server config: the default URI for everyone's runs (None: none)
    and the allow-list of destinations web visitors may choose. Raises LayerLabError for a malformed entry."""
    cfg = server_config(workspace).get(CONFIG_KEY) or {}
    uri, allow = (cfg.get("uri"), cfg.get("allow") or []) if isinstance(cfg, dict) else (None, None)
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow) or not isinstance(uri, str | None):
        raise LayerLabError("the server config's tracking is {\"uri\": a URI or null, \"allow\": [URIs]}; "
                            f"received: {json.dumps(cfg, default=str)[:200]}. Fix: e.g. \"tracking\": "
                            "{\"allow\": [\"https://mlflow.school.org\"]}")
    return (uri.strip() or None) if uri else None, [a.strip() for a in allow if a.strip()]


#: MLflow's credential settings: the admin's, for the admin's own tracker (the server config's ``uri``) only
CREDENTIAL_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                  "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4")


def is_server_default(uri: str | None, workspace: str | Path) -> bool:
    """Whether ``uri`` is the server config's default tracker (the admin's, which alone receives the admin's
    credentials); False under a malformed config (it trusts no destination)."""
    try:
        default = server_tracking(workspace)[0]
    except Exception:  # a malformed config trusts no destination with the credentials
        return False
    return bool(uri and default and uri.strip() == default)


def scrub_credentials(workspace: str | Path, uri: str | None, env: dict | None = None) -> list[str]:
    """In a job process: drop the MLflow credentials it inherited unless its tracker is the admin's default
    tracker (a visitor's own allowed tracker never receives the admin's token or password). Returns the names
    removed.

    >>> env = {"MLFLOW_TRACKING_TOKEN": "s3cret", "PATH": "/bin"}
    >>> scrub_credentials("/nonexistent-ws", "https://ml.example.org", env), env
    (['MLFLOW_TRACKING_TOKEN'], {'PATH': '/bin'})
    """
    env = os.environ if env is None else env
    if is_server_default(uri, workspace):
        return []
    gone = [k for k in CREDENTIAL_ENV if k in env]
    for k in gone:
        env.pop(k, None)
    return gone


def check_destination(uri: str, workspace: str | Path, owner: str, *, also: Iterable[str] = ()) -> str:
    """``uri`` when ``owner``'s runs may be logged there; returns it stripped.

    A web visitor (any owner but the CLI's ``local``) may log only to the server's default or to a destination
    on the server config's allow-list (none unless the admin lists some); the local user anywhere. Nobody may
    log into LayerLab's own files (:func:`_internal`; ``also``: a study storage given elsewhere).

    Raises:
        LayerLabError: a destination not allowed, or one of LayerLab's own files.
    """
    uri = (uri or "").strip()
    default, allow = server_tracking(workspace)
    if owner != LOCAL_OWNER and uri != default and not any(allowed_by(uri, a) for a in allow):
        listed = ", ".join(shown_uri(a) for a in allow) or "none"
        raise LayerLabError(f"runs started on this server are logged only where its admin allows (allowed: "
                            f"{listed}); received: {shown_uri(uri)[:120]!r}. Fix: choose an allowed tracker, or ask "
                            "the admin to add it to \"tracking\": {\"allow\": [...]} in the server config")
    if (hit := internal_place(uri, workspace, also)) is not None:
        where = "" if owner != LOCAL_OWNER else f" ({hit})"
        raise LayerLabError(f"an MLflow tracking store may not be one of LayerLab's own files (the workspace, its run "
                            f"and study databases){where}; received: {shown_uri(uri)[:120]!r}. Fix: give a database "
                            "or folder outside the workspace and apart from LayerLab's run database, e.g. "
                            "sqlite:///$HOME/mlflow/mlflow.db, or a server")
    if taken := sorted(set(tcp_ports(uri)) & reserved_ports(workspace)):
        raise LayerLabError(f"an MLflow tracker may not use port {taken[0]}: it is this server's run database's or its "
                            f"Ray cluster's, and a job's sandbox opens its tracker's port to every host; received: "
                            f"{shown_uri(uri)[:120]!r}. Fix: serve the tracker on another port")
    return uri


def _setting_path(workspace: str | Path, owner: str) -> Path:
    return owner_dir(workspace, owner) / SETTING_FILE


def owner_setting(workspace: str | Path, owner: str) -> str | None:
    """The tracking URI ``owner`` chose (the Train page's setting), None when none."""
    try:
        uri = json.loads(_setting_path(workspace, owner).read_text(encoding="utf-8")).get("uri")
    except (OSError, ValueError, AttributeError):
        return None
    return uri.strip() or None if isinstance(uri, str) else None


def save_owner_setting(workspace: str | Path, owner: str, uri: str | None) -> str | None:
    """Set (checked by :func:`check_destination`) or clear (None or empty) ``owner``'s tracking URI for the
    runs they start from now on; returns it. Nobody else's runs are affected.

    Raises:
        LayerLabError: a destination ``owner`` may not use.
    """
    path = _setting_path(workspace, owner)
    uri = (uri or "").strip()
    if not uri:
        path.unlink(missing_ok=True)
        return None
    uri = check_destination(uri, workspace, owner)
    write_atomic(path, json.dumps({"uri": uri}), "the tracking setting")
    return uri


def resolve_tracking(workspace: str | Path, owner: str, flag: str | None = None, *,
                     also: Iterable[str] = ()) -> str | None:
    """Where ``owner``'s new runs are also logged: ``flag`` (a command's ``--mlflow``), else the owner's own
    setting, else for the local user ``$MLFLOW_TRACKING_URI``, else the server config's default; None: nowhere.
    Every answer is checked by :func:`check_destination`. A job carries the answer in its spec.

    Raises:
        LayerLabError: the destination is not allowed for ``owner``.
    """
    uri = (flag or "").strip() or owner_setting(workspace, owner)
    if not uri and owner == LOCAL_OWNER:
        uri = tracking_uri()  # the shell's: a relative path in it is the shell's working folder's (jobs run elsewhere)
        uri = absolute_uri(uri, Path.cwd()) if uri else uri
    uri = uri or server_tracking(workspace)[0]
    return check_destination(uri, workspace, owner, also=also) if uri else None


#: what a job's spec records for the server config's default tracker: the admin's URI (which may carry the admin's
#: password or token) is read from the config by the job process, never copied into a run folder
SERVER_DEFAULT = "layerlab:server-default"


def recorded_destination(uri: str | None, workspace: str | Path) -> str | None:
    """What a job's spec (``job.json``, in the run's folder) records of its tracker ``uri``: :data:`SERVER_DEFAULT`
    for the server config's default, else ``uri`` itself (the owner's own choice). :func:`job_destination` reads
    it back in the job process.

    >>> recorded_destination(None, "/nonexistent-ws"), recorded_destination("sqlite:////m.db", "/nonexistent-ws")
    (None, 'sqlite:////m.db')
    """
    if not uri:
        return None
    return SERVER_DEFAULT if is_server_default(uri, workspace) else uri


def job_destination(recorded: str | None, workspace: str | Path) -> str | None:
    """In the job process: the tracker a spec's record (:func:`recorded_destination`) names, the server config's
    default read now for :data:`SERVER_DEFAULT` (None when the admin has since removed it). Raises LayerLabError
    for a malformed server config."""
    if recorded == SERVER_DEFAULT:
        return server_tracking(workspace)[0]
    return recorded


def server_tracking_shown(workspace: str | Path) -> tuple[str | None, list[str]]:
    """:func:`server_tracking` as every visitor may see it (the Train page names the server's default tracker and
    the admin's allow-list): each URI without its credentials (:func:`shown_uri`). Raises LayerLabError for a
    malformed entry."""
    default, allow = server_tracking(workspace)
    return (shown_uri(default) if default else None), [shown_uri(a) for a in allow]


__all__ = ["ENV_URI", "local_paths", "tcp_ports", "reserved_ports", "RAY_PORTS", "names_a_host", "SETTING_FILE", "CONFIG_KEY", "CREDENTIAL_ENV", "tracking_uri", "absolute_uri", "internal_place",
           "allowed_by", "server_tracking", "server_tracking_shown", "is_server_default", "SERVER_DEFAULT", "recorded_destination",
           "job_destination", "scrub_credentials", "check_destination",
           "owner_setting", "save_owner_setting", "resolve_tracking"]
