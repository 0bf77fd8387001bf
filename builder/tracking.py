"""Runs in MLflow: a person's runs also logged to the MLflow tracker that person chose (or the admin set).

Where a run goes is decided per owner, never by the server process's environment: a web visitor's own
setting (the Train page; kept in their owner folder, :func:`save_owner_setting`), the local user's
``--mlflow URI`` or ``$MLFLOW_TRACKING_URI``, else the server config's ``"tracking": {"uri": ...}``
(:func:`resolve_tracking`). Web visitors may choose only destinations on the config's ``"allow"`` list (none
by default); nobody may name LayerLab's own files (the workspace, its run and study databases) as a store
(:func:`check_destination`). A job carries its owner's destination in its spec. :func:`attach_tracking` gives
the pipeline a :class:`MlflowCallback` that logs a run's parameters (training settings, dataset, every node
parameter as ``node.<id>.<param>``) at the start, its per-epoch metrics live, and at the end its test metrics,
artefacts (project JSON, model card, weights, the exported ``.py``) and final status. Search trials (runs
tagged with a study) are nested under one parent run per study. :func:`export_runs` copies runs already in
the store and repairs those the tracker holds only in part (``layerlab runs export-mlflow``).

A tracker that is missing (``mlflow`` not installed) or unreachable never breaks training: one warning, the
run goes on in LayerLab's store, what reached the tracker is recorded in the run folder
(:class:`TrackingState`), and what it missed is written when it answers again (a later epoch, the end of
the run, or an export). Needs the ``layerlab[mlflow]`` extra (``mlflow-skinny`` with SQLAlchemy is enough
for ``sqlite:///`` and ``http(s)://`` trackers; the full ``mlflow`` works too). Example::

    # not a doctest (needs files or training): run by tests/test_tracking.py
    run_training(load_template("mlp"), "moons", {"epochs": 3}, store=store,
                 tracking=tracker("sqlite:////srv/mlflow.db"))
    export_runs(store, None, "sqlite:////srv/mlflow.db")
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from urllib3.util import parse_url  # how requests (MLflow's HTTP client) reads a URL

from builder.errors import LayerLabError
from builder.runs.owners import LOCAL_OWNER, owner_dir, owner_of, safe_id, server_config
from builder.runs.summary import shown_dataset_options
from builder.training.callbacks import Callback
from builder.training.run_status import RunStatus, is_live

ENV_URI = "MLFLOW_TRACKING_URI"
ENV_EXPERIMENT = "LAYERLAB_MLFLOW_EXPERIMENT"
DEFAULT_EXPERIMENT = "LayerLab"
TAG_RUN = "layerlab.run_id"
TAG_STUDY = "layerlab.study"
TAG_STUDY_PARENT = "layerlab.study_parent"
_warned: set[str] = set()


class TrackingWarning(UserWarning):
    """MLflow could not be reached or written; the run continues in LayerLab's store."""


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


def _local_paths(uri: str) -> list[Path]:
    """The files or folders on this host a tracking (or artefact) URI writes into: a ``sqlite:`` database (also
    ``sqlite:///file:...?uri=true``, a ``~`` left as sqlite leaves it and as a shell expands it), a ``file:`` or
    plain path (MLflow's file store); ``[]`` for a network store or an in-memory database. Relative paths are
    taken from the working folder, as sqlite and MLflow take them.

    >>> [p.name for p in _local_paths("sqlite:///file:/tmp/a.db?mode=rw&uri=true")]
    ['a.db']
    >>> _local_paths("http://mlflow:5000") + _local_paths("sqlite://") + _local_paths("postgresql://h/db")
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
    if scheme.split("+")[0] == "sqlite" and text.startswith(f"{scheme}:///"):
        rest = text[len(scheme) + 4:]
        if rest and not rest.startswith(("/", "file:", ":memory:")):
            return f"{text[:len(scheme)]}:///{os.path.abspath(base / Path(rest).expanduser())}"
        return text
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


def _internal(uri: str, workspace: str | Path, also: Iterable[str] = ()) -> str | None:
    """What of LayerLab's own that ``uri`` would write into (a path, or a database named without its
    credentials), or None. LayerLab's own: everything in the workspace (the run database, studies, run folders,
    owners' folders, caches), found by resolved path (links followed), and by file identity (a hard link elsewhere
    to the run database or a studies database); the run database on a database server (``$LAYERLAB_DB_URL`` or
    the server config's), whoever connects to it; and ``also`` (a study's storage given elsewhere), a file or a
    database."""
    from builder.runs.db import database_url, redact, same_database  # lazy: heavy (sqlalchemy)

    ws = Path(workspace).expanduser().resolve()
    own = [ws / "layerlab.db", ws / "studies.db"] + [p for a in also for p in _local_paths(a)]
    for p in _local_paths(uri):
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
    pa, pb = _local_paths(uri), _local_paths(entry)
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


def scrub_credentials(workspace: str | Path, uri: str | None, env: dict | None = None) -> list[str]:
    """In a job process: drop the MLflow credentials it inherited unless its tracker is the admin's default
    tracker (a visitor's own allowed tracker never receives the admin's token or password). Returns the names
    removed.

    >>> env = {"MLFLOW_TRACKING_TOKEN": "s3cret", "PATH": "/bin"}
    >>> scrub_credentials("/nonexistent-ws", "https://ml.example.org", env), env
    (['MLFLOW_TRACKING_TOKEN'], {'PATH': '/bin'})
    """
    env = os.environ if env is None else env
    try:
        default = server_tracking(workspace)[0]
    except Exception:  # a malformed config trusts no destination with the credentials
        default = None
    if uri and default and uri.strip() == default:
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
        listed = ", ".join(_redact(a) for a in allow) or "none"
        raise LayerLabError(f"runs started on this server are logged only where its admin allows (allowed: "
                            f"{listed}); received: {_redact(uri)[:120]!r}. Fix: choose an allowed tracker, or ask "
                            "the admin to add it to \"tracking\": {\"allow\": [...]} in the server config")
    if (hit := _internal(uri, workspace, also)) is not None:
        where = "" if owner != LOCAL_OWNER else f" ({hit})"
        raise LayerLabError(f"an MLflow tracking store may not be one of LayerLab's own files (the workspace, its run "
                            f"and study databases){where}; received: {_redact(uri)[:120]!r}. Fix: give a database "
                            "or folder outside the workspace and apart from LayerLab's run database, e.g. "
                            "sqlite:///$HOME/mlflow/mlflow.db, or a server")
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"uri": uri}), encoding="utf-8")
    os.replace(tmp, path)
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


def _warn(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, TrackingWarning, stacklevel=3)


def _bounded_http() -> None:
    """An unreachable server must cost seconds, not MLflow's default minutes of retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


_SECRET_PARAM = re.compile(r"(?i)([?&;][^=&;#]*(?:token|key|secret|pass|pwd|auth|sig|credential)[^=&;#]*=)[^&;#]*")


def shown_uri(uri: str) -> str:
    """``uri`` as messages and pages may show it: its credentials replaced by ``***`` (a password, a token given as
    the user name, a secret-looking query parameter), the tracker itself still named.

    >>> shown_uri("https://ann:pw@ml.org/x"), shown_uri("https://TOKEN@ml.org"), shown_uri("https://u:p@ss@ml.org")
    ('https://ann:***@ml.org/x', 'https://***@ml.org', 'https://u:***@ml.org')
    >>> shown_uri("https://ml.org/?api_key=K1&experiment=a"), shown_uri("sqlite:////tmp/m.db")
    ('https://ml.org/?api_key=***&experiment=a', 'sqlite:////tmp/m.db')
    """
    text = str(uri)
    scheme, sep, rest = text.partition("//")
    if sep:
        end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0] or [len(rest)])
        netloc = rest[:end]
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = (f"{user.split(':', 1)[0]}:***" if ":" in user else "***") + "@" + host
        text = scheme + sep + netloc + rest[end:]
    return _SECRET_PARAM.sub(r"\1***", text)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")


def shown_error(e: BaseException) -> str:
    """An exception from a tracker as one line a message may carry: its type and first line, every URL in it
    without credentials (MLflow quotes the request's URL, the tracking URI's password or token included).

    >>> shown_error(RuntimeError("API request to https://admin:pw@ml.org/api/2.0/x failed"))
    'RuntimeError: API request to https://admin:***@ml.org/api/2.0/x failed'
    """
    first = str(e).splitlines()[0][:400] if str(e) else ""
    return f"{type(e).__name__}: {_URL_IN_TEXT.sub(lambda m: shown_uri(m.group(0)), first)[:200]}"


_redact = shown_uri  # messages, logs and the run folder's tracking state name a tracker without its credentials


def server_tracking_shown(workspace: str | Path) -> tuple[str | None, list[str]]:
    """:func:`server_tracking` as every visitor may see it (the Train page names the server's default tracker and
    the admin's allow-list): each URI without its credentials (:func:`shown_uri`). Raises LayerLabError for a
    malformed entry."""
    default, allow = server_tracking(workspace)
    return (shown_uri(default) if default else None), [shown_uri(a) for a in allow]


class Tracker:
    """A thin wrapper over ``MlflowClient`` for one tracking URI and experiment. ``workspace``: refuse an
    experiment whose artefacts would be written into LayerLab's own files.

    Raises:
        ImportError: mlflow is not installed. LayerLabError: artefacts into the workspace. Other exceptions: the
        tracker cannot be reached.
    """

    def __init__(self, uri: str, experiment: str | None = None, *, workspace: str | Path | None = None):
        _bounded_http()
        from mlflow.tracking import MlflowClient  # lazy: heavy (mlflow)

        self.uri = uri
        self.workspace = workspace
        self.client = MlflowClient(tracking_uri=uri)
        name = experiment or os.environ.get(ENV_EXPERIMENT) or DEFAULT_EXPERIMENT
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            self.experiment_id = self.client.create_experiment(name, artifact_location=_artifact_root(uri))
        else:
            self.experiment_id = exp.experiment_id
        where = exp.artifact_location if exp is not None else _artifact_root(uri)
        if workspace is not None and where and _internal(where, workspace) is not None:
            raise LayerLabError(f"MLflow would write a run's artefacts into LayerLab's own files; received: the "
                                f"experiment {name!r} at {_redact(uri)}. Fix: give the experiment an artefact "
                                "location outside the workspace")

    def find(self, tag: str, value: str) -> str | None:
        """The id of the MLflow run carrying ``tag = value``, or None."""
        safe = str(value).replace("'", "")
        runs = self.client.search_runs([self.experiment_id], f"tags.`{tag}` = '{safe}'", max_results=1)
        return runs[0].info.run_id if runs else None

    def study_key(self, study: str, owner: str = LOCAL_OWNER) -> str:
        """The tag that names ``owner``'s study ``study`` in the tracker: study names are per owner (two people's
        studies of one name in one tracker never share a parent run), so an app owner's is an opaque digest of its
        storage name (:func:`builder.search.storage.study_key`: the owner's keyed folder name and the name), which
        names neither the owner's id nor its folder; the command line's ``local`` user keeps the bare name."""
        if owner == LOCAL_OWNER:
            return study
        if self.workspace is None:
            raise LayerLabError("an app owner's study is tracked with its workspace; received: a tracker without "
                                "one. Fix: pass Tracker(uri, workspace=...)")
        key = f"{safe_id(self.workspace, owner)}/{study}"
        return f"{study}@{hashlib.sha256(key.encode('utf-8')).hexdigest()[:24]}"

    def study_parent(self, study: str, owner: str = LOCAL_OWNER) -> str:
        """The parent run of ``owner``'s study ``study`` (created on first use), found by :meth:`study_key`."""
        key = self.study_key(study, owner)
        rid = self.find(TAG_STUDY_PARENT, key)
        if rid is None:
            rid = self.client.create_run(self.experiment_id, run_name=f"study {study}",
                                         tags={TAG_STUDY_PARENT: key, TAG_STUDY: study}).info.run_id
        return rid

    def start(self, run: dict, tags: dict) -> str:
        """The MLflow run mirroring a LayerLab run (found again on resume, else created, nested under its study)."""
        rid = self.find(TAG_RUN, run["id"])
        if rid is not None:
            self.client.update_run(rid, status="RUNNING")
            return rid
        mtags = {TAG_RUN: run["id"], "layerlab.dataset": str(run.get("dataset_name") or "")}
        study = (tags or {}).get("study")
        if study is not None:
            mtags[TAG_STUDY] = str(study)
            mtags["layerlab.trial"] = str(tags.get("trial", ""))
            mtags["mlflow.parentRunId"] = self.study_parent(str(study), owner_of(run))  # the trial's owner's study
        r = self.client.create_run(self.experiment_id, run_name=run.get("name") or run["id"], tags=mtags)
        return r.info.run_id

    def log_params(self, mlflow_id: str, params: dict[str, Any]) -> None:
        """Log parameters (a value already logged differently, e.g. changed on resume, is kept as it was)."""
        from mlflow.entities import Param  # lazy: heavy (mlflow)

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            try:
                self.client.log_batch(mlflow_id, params=items[i:i + 100])
            except Exception:  # MLflow refuses to change a logged param: log the rest one by one
                for p in items[i:i + 100]:
                    try:
                        self.client.log_param(mlflow_id, p.key, p.value)
                    except Exception:
                        continue

    def log_metrics(self, mlflow_id: str, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric  # lazy: heavy (mlflow)

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, int(step)) for k, v in metrics.items()]
        if items:
            self.client.log_batch(mlflow_id, metrics=items)

    def log_artifacts(self, mlflow_id: str, files: list[Path]) -> None:
        for f in files:
            if f.is_file():
                self.client.log_artifact(mlflow_id, str(f))

    def log_rows(self, mlflow_id: str, rows: list[tuple[str, float, int]]) -> None:
        """Log ``(key, value, step)`` metric points in batches (MLflow takes 1000 a request)."""

        from mlflow.entities import Metric  # lazy: heavy (mlflow)

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, int(step)) for k, v, step in rows]
        for i in range(0, len(items), 1000):
            self.client.log_batch(mlflow_id, metrics=items[i:i + 1000])

    def end(self, mlflow_id: str, status: str) -> None:
        self.client.set_terminated(mlflow_id, status=_MLFLOW_STATUS.get(status, "FAILED"))


_MLFLOW_STATUS = {RunStatus.FINISHED: "FINISHED", RunStatus.STOPPED: "KILLED", RunStatus.INTERRUPTED: "KILLED"}


def _artifact_root(uri: str) -> str | None:
    """For a local ``sqlite:///`` store, artefacts go next to the database (not into the working directory)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.expanduser().resolve().parent / "mlartifacts").as_uri()
    return None


# ------------------------------------------------------------------------------------- what is logged
_KEY_RE = re.compile(r"[^\w\-. /]")


def _key(text: str) -> str:
    return _KEY_RE.sub("_", str(text))[:250]


def _value(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s[:6000]


def run_params(run: dict) -> dict[str, str]:
    """A run's parameters for MLflow: training settings, dataset, and ``node.<id>.<param>`` for every node."""
    out: dict[str, str] = {}
    for k, v in (run.get("config") or {}).items():
        if v not in (None, [], {}):
            out[_key(k)] = _value(v)
    out["dataset"] = _value(run.get("dataset_name") or "")
    for k, v in shown_dataset_options(run).items():  # an upload by its name, never a server path
        out[_key(f"dataset.{k}")] = _value(v)
    for n in ((run.get("project") or {}).get("graph") or {}).get("nodes", []):
        out[_key(f"node.{n['id']}.type")] = _value(n.get("type"))
        for k, v in (n.get("params") or {}).items():
            out[_key(f"node.{n['id']}.{k}")] = _value(v)
    return out


def epoch_metrics(ev: dict) -> dict[str, float]:
    """One epoch event as MLflow metrics: losses, ``train_<metric>``/``val_<metric>``, lr, samples/s."""
    m = ev.get("metric_name") or "metric"
    pairs = {"train_loss": ev.get("train_loss"), "val_loss": ev.get("val_loss"), f"train_{m}": ev.get("train_metric"),
             f"val_{m}": ev.get("val_metric"), "lr": ev.get("lr"), "samples_per_s": ev.get("samples_per_s")}
    return {k: float(v) for k, v in pairs.items() if isinstance(v, int | float) and math.isfinite(v)}


def eval_metrics(test: dict | None) -> dict[str, float]:
    """The scalar test metrics as ``test_<name>``."""
    return {f"test_{k}": float(v) for k, v in (test or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def run_tags(store, run: dict) -> dict:
    """A run's tags (study, trial): the store's column, else the job spec in its folder."""
    tags = run.get("tags")
    if isinstance(tags, str):
        try:
            tags = json.loads(tags)
        except json.JSONDecodeError:
            tags = None
    if not tags:
        tags = (store.job_spec(run["id"]) or {}).get("tags")
    return dict(tags or {})


def _artefacts(store, run_id: str, tmp: Path) -> list[Path]:
    """The files a run shows in MLflow: project, model card, weights (those that exist), and ``model.py``
    exported into ``tmp``."""
    run, folder = store.get(run_id), store.folder(run_id)
    files = [f for f in (folder.project, folder.model_card, folder.weights) if f.is_file()]
    try:
        from builder.interchange.python_export import export_python  # lazy: heavy (safetensors)

        py = tmp / "model.py"
        py.write_text(export_python(run.project), encoding="utf-8")
        files.append(py)
    except Exception as e:  # an export problem must not lose the other artefacts
        _warn(f"export:{run_id}", f"MLflow: model.py of run {run_id} not exported: {e}")
    return files


# ------------------------------------------------------------------------------ what reached a tracker
@dataclass
class TrackingState:
    """What of one run reached one tracker, kept in the run folder (``RunFolder.tracking``, one entry per
    tracker): the MLflow run, whether the parameters, test metrics and artefacts landed, the epochs whose
    metrics did, the MLflow status it was ended with (None: not ended there), and the last write that failed.
    After an outage :func:`sync_run` writes what is missing."""

    mlflow_run_id: str | None = None
    params: bool = False
    steps: list[int] = field(default_factory=list)
    test: bool = False
    artifacts: bool = False
    status: str | None = None
    error: str | None = None

    @classmethod
    def load(cls, folder, uri: str) -> TrackingState:
        """The state of ``folder``'s run at tracker ``uri`` (empty when none is recorded)."""
        try:
            entry = json.loads(Path(folder.tracking).read_text(encoding="utf-8")).get(_redact(uri)) or {}
            return cls(**{k: v for k, v in entry.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError, AttributeError):
            return cls()

    def save(self, folder, uri: str) -> None:
        """Record this state for tracker ``uri`` (atomic; other trackers' entries kept)."""
        path = Path(folder.tracking)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        data[_redact(uri)] = asdict(self)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)


def tracking_state(store, run_id: str, uri: str) -> TrackingState:
    """What of run ``run_id`` reached tracker ``uri``, as recorded in its folder."""
    return TrackingState.load(store.folder(run_id), uri)


def _target_status(run: dict) -> str:
    return _MLFLOW_STATUS.get(run["status"], "FAILED")


def sync_run(tracker: Tracker, store, run_id: str, state: TrackingState, *, final: bool,
             current: dict | None = None, have: set[tuple[str, int]] | None = None, backfill: bool = True) -> int:
    """Write to ``tracker`` what of run ``run_id`` has not reached it yet, recording each part in ``state`` as it
    lands: the MLflow run (found again by its tag, else created), the parameters, every epoch's metrics not yet
    there (``current``: the epoch just ended, when the store may not hold it yet; ``backfill`` False: only it,
    the tracker missing nothing before), and with ``final`` the test metrics, artefacts and final status.
    ``have``: the ``(metric, step)`` pairs the tracker holds (read from it by an export; default:
    ``state.steps``). Returns the number of parts written. Tracker errors propagate (``state`` keeps what
    landed before)."""
    got: dict = dict(store.get(run_id))  # a run the store's actor may read (AccessDenied first, nothing written)

    def run() -> dict:
        if not got:
            got.update(store.get(run_id))
        return got

    wrote = 0
    if state.mlflow_run_id is None:
        state.mlflow_run_id = tracker.start(run(), run_tags(store, run()))
        wrote += 1
    mid = state.mlflow_run_id
    if not state.params:
        tracker.log_params(mid, run_params(run()))
        state.params, wrote = True, wrote + 1
    events = {} if current is not None and not backfill else {int(ev.get("epoch", 0)): ev
                                                                for ev in store.metrics(run_id, "epoch")}
    if current is not None:
        events[int(current.get("epoch", 0))] = current
    rows = []
    for step in sorted(set(events) - set(state.steps)):
        rows += [(k, v, step) for k, v in epoch_metrics(events[step]).items() if have is None or (k, step) not in have]
    if rows:
        tracker.log_rows(mid, rows)
        wrote += 1
    state.steps = sorted(set(state.steps) | set(events))
    if not final:
        return wrote
    if not state.test:
        test = {k: v for k, v in eval_metrics(run().get("test_metrics")).items() if have is None or (k, -1) not in have}
        tracker.log_metrics(mid, test, step=int(run().get("epochs_done") or 0))
        state.test, wrote = True, wrote + bool(test)
    if not state.artifacts:
        with tempfile.TemporaryDirectory(prefix="layerlab-mlflow-") as tmp:
            tracker.log_artifacts(mid, _artefacts(store, run_id, Path(tmp)))
        state.artifacts, wrote = True, wrote + 1
    if state.status != _target_status(run()):
        tracker.end(mid, run()["status"])
        state.status, wrote = _target_status(run()), wrote + 1
    return wrote


def _remote_state(tracker: Tracker, mid: str, store, run_id: str) -> tuple[TrackingState, set[tuple[str, int]]]:
    """What of a run the tracker holds, read from it (an export checks the tracker, not the folder's record):
    a state with the epochs that have every metric, and the ``(metric, step)`` pairs it has (test metrics as
    step -1)."""
    remote = tracker.client.get_run(mid)
    events = {int(ev.get("epoch", 0)): epoch_metrics(ev) for ev in store.metrics(run_id, "epoch")}
    keys = {k for m in events.values() for k in m}
    have = {(k, -1) for k in remote.data.metrics if k.startswith("test_")}
    for k in keys & set(remote.data.metrics):
        have |= {(k, int(m.step)) for m in tracker.client.get_metric_history(mid, k)}
    done = [s for s, m in events.items() if all((k, s) in have for k in m)]
    names = {f.path for f in tracker.client.list_artifacts(mid)}
    run, folder = store.get(run_id), store.folder(run_id)
    expected = {f.name for f in (folder.project, folder.model_card, folder.weights) if f.is_file()} | {"model.py"}
    status = remote.info.status if remote.info.status == _target_status(run) else None
    test = all((k, -1) in have for k in eval_metrics(run.get("test_metrics")))
    return TrackingState(mid, True, done, test, expected <= names, status), have


# ------------------------------------------------------------------------------------ live callback
RETRY_EPOCHS = (1, 2, 4, 8, 16, 32)
"""After a failed write, the epochs to let pass before each next try (the last repeats); the end of the run
always tries."""


class MlflowCallback(Callback):
    """Trainer callback mirroring one store run into MLflow. A failed write never stops training: one warning,
    the run goes on, and a later epoch (after :data:`RETRY_EPOCHS`) or the end of the run writes what the
    tracker missed (:func:`sync_run`); what reached it is recorded in the run folder (:class:`TrackingState`)."""

    def __init__(self, store, run_id: str, uri: str):
        self.store, self.run_id, self.uri = store, run_id, uri
        self.tracker: Tracker | None = None
        self.state = tracking_state(store, run_id, uri)
        self.failures, self.wait = 0, 0
        self.behind = True  # the tracker may lack epochs (an outage, a resumed run): the next write reads the store

    @property
    def mlflow_id(self) -> str | None:
        """The MLflow run mirroring this run (None before it was created)."""
        return self.state.mlflow_run_id

    def _fail(self, e: Exception) -> None:
        self.tracker, self.behind = None, True
        self.state.error = shown_error(e)
        self.wait = RETRY_EPOCHS[min(self.failures, len(RETRY_EPOCHS) - 1)]
        self.failures += 1
        _warn(f"uri:{self.uri}:{self.run_id}", f"MLflow tracking at {_redact(self.uri)} is unavailable "
              f"({self.state.error}); run {self.run_id} is kept in LayerLab's store, and what MLflow missed is "
              "written when it answers again (or by `layerlab runs export-mlflow`)")

    def _sync(self, *, final: bool, current: dict | None = None) -> None:
        try:
            if self.tracker is None:
                self.tracker = Tracker(self.uri, workspace=self.store.workspace)
            sync_run(self.tracker, self.store, self.run_id, self.state, final=final, current=current,
                     backfill=self.behind)
            self.state.error, self.failures, self.behind = None, 0, False
        except Exception as e:  # unreachable server, bad URI, missing driver: never break training
            self._fail(e)
        with contextlib.suppress(OSError):  # the record is a help for later repairs, not a reason to stop
            self.state.save(self.store.folder(self.run_id), self.uri)

    def on_train_begin(self, trainer) -> None:
        """Create (or find again, on resume) the MLflow run and log the parameters; a resumed run ends again, and
        its epochs after the checkpoint are logged again."""
        run = self.store.get(self.run_id)
        done = int(run.get("epochs_done") or 0)
        self.state.steps = [s for s in self.state.steps if s <= done]
        self.state.test = self.state.artifacts = False
        if self.state.status is not None:  # ended there before: found again by its tag and set running
            self.state.status = self.state.mlflow_run_id = None
        self._sync(final=False)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        """Log this epoch's metrics (and, once the tracker answers again, those it missed)."""
        if self.tracker is None and self.wait > 1:
            self.wait -= 1
            return None
        self._sync(final=False, current={**logs, "epoch": int(logs.get("epoch", epoch + 1))})
        return None

    def on_train_end(self, trainer, result) -> None:
        """Log what is missing, the test metrics and artefacts, and end the MLflow run with the run's status."""
        self._sync(final=True)


def tracker(uri: str | None = None) -> Callable[[Any, str | None], list[Callback]]:
    """What a caller of the pipeline attaches to log its run to MLflow (``run_training(..., tracking=tracker(uri))``,
    as Lightning's ``Trainer(logger=MLFlowLogger(...))``): :func:`attach_tracking` of the stored run with ``uri``
    (None: the run owner's own setting, :func:`resolve_tracking`). Jobs attach their spec's destination, the CLI
    its ``--mlflow``.

    >>> tracker("http://127.0.0.1:5000").keywords
    {'uri': 'http://127.0.0.1:5000'}
    """
    return functools.partial(attach_tracking, uri=uri)


def attach_tracking(store, run_id: str | None, uri: str | None = None) -> list[Callback]:
    """The callbacks the pipeline adds for a stored run: an :class:`MlflowCallback` to ``uri`` (a job's spec
    carries its owner's choice; None: :func:`resolve_tracking` for the run's owner) when the run's owner may log
    there (:func:`check_destination`, else a warning) and mlflow is installed (else a warning); nothing when
    there is no destination."""
    if store is None or run_id is None:
        return []
    owner = owner_of(store.get(run_id))
    try:
        uri = check_destination(uri, store.workspace, owner) if uri else resolve_tracking(store.workspace, owner)
    except LayerLabError as e:
        _warn(f"refused:{run_id}", f"run {run_id} is not logged to MLflow: {e}")
        return []
    if not uri:
        return []
    try:
        import mlflow  # noqa: F401  (~1.5 s, only when tracking is on)  # lazy: heavy (mlflow)
    except ImportError:
        _warn("missing", "MLflow tracking is set but mlflow is not installed (pip install 'layerlab[mlflow]'); runs "
              "are kept in LayerLab's store only")
        return []
    return [MlflowCallback(store, run_id, uri)]


# ------------------------------------------------------------------------------------------ export
def export_runs(store, run_ids: list[str] | None, uri: str | None = None, *, force: bool = False,
                owner: str | None = None) -> list[dict]:
    """Copy runs from the store to MLflow (all when ``run_ids`` is empty): parameters, every epoch's metrics,
    test metrics, artefacts, final status; trials nested under their study. A run already in MLflow is checked
    against the tracker and repaired: what it misses (after an outage: epochs, test metrics, artefacts, its
    final status) is written. ``force`` replaces it instead. ``uri`` defaults to :func:`resolve_tracking` for
    ``owner`` (default: the store's actor), and is checked by :func:`check_destination`; only runs the store's
    actor may read are exported (:mod:`builder.data.access`).

    Returns:
        One dict per run: ``{"run_id", "mlflow_run_id", "status": "exported" | "repaired" | "complete" | "live"}``.

    Raises:
        LayerLabError: no tracking URI, a destination not allowed, mlflow missing, or the tracker cannot be reached.
    """
    # the runs the store's actor may read (builder.data.access): every id checked before anything is written, an
    # unknown and another's answered alike ("no run X of yours")
    ids = list(run_ids or []) or [r["id"] for r in reversed(store.list_runs(limit=100_000))]
    runs = [store.get(rid) for rid in ids]
    owner = owner or (store.actor.owner if store.actor is not None else LOCAL_OWNER)
    uri = resolve_tracking(store.workspace, owner, uri)
    if not uri:
        raise LayerLabError(f"no MLflow tracker; received: neither --mlflow nor {ENV_URI}. Fix: pass --mlflow "
                            "sqlite:///mlflow.db or set MLFLOW_TRACKING_URI")
    try:
        tracker = Tracker(uri, workspace=store.workspace)
    except ImportError:
        raise LayerLabError("mlflow is not installed; received: an export request. Fix: pip install "
                            "'layerlab[mlflow]'") from None
    except LayerLabError:
        raise
    except Exception as e:
        raise LayerLabError(f"cannot reach MLflow at {_redact(uri)}; received: {shown_error(e)}. Fix: check the URI "
                            "and the server") from None
    out = []
    for run in runs:
        if is_live(run["status"]):
            out.append({"run_id": run["id"], "mlflow_run_id": None, "status": "live"})
            continue
        existing = tracker.find(TAG_RUN, run["id"])
        if existing and force:  # replace the earlier copy rather than doubling its curves
            tracker.client.delete_run(existing)
            existing = None
        state, have = _remote_state(tracker, existing, store, run["id"]) if existing else (TrackingState(), None)
        wrote = sync_run(tracker, store, run["id"], state, final=True, have=have)
        state.save(store.folder(run["id"]), uri)
        what = "exported" if not existing else "repaired" if wrote else "complete"
        out.append({"run_id": run["id"], "mlflow_run_id": state.mlflow_run_id, "status": what})
    return out


__all__ = ["check_destination", "allowed_by", "server_tracking", "server_tracking_shown", "shown_uri", "shown_error", "owner_setting", "save_owner_setting",
           "resolve_tracking", "scrub_credentials", "CREDENTIAL_ENV", "MlflowCallback", "Tracker", "TrackingState", "TrackingWarning", "sync_run",
           "tracking_state", "attach_tracking", "export_runs", "tracking_uri", "run_params", "epoch_metrics",
           "eval_metrics", "run_tags", "RETRY_EPOCHS"]
