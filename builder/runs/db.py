"""The run database's engine, dialects and tables (SQLAlchemy Core): SQLite in the workspace by default,
PostgreSQL when ``LAYERLAB_DB_URL`` names one; schema versions by Alembic (``builder/runs/migrations``).

:class:`builder.runs.store.RunStore` executes its SQL here: :func:`engine` opens one pooled engine per URL and
process (a forked job opens its own), :func:`statement` turns the store's ``?`` placeholders into bound
parameters, :func:`ensure_schema` creates or upgrades the schema once per process. SQLite keeps the store's
old behaviour: WAL on a local disk, a rollback journal on a network file system, ``BEGIN IMMEDIATE`` for
writes (one writer at a time, readers go on). PostgreSQL lets several LayerLab servers share runs, curves,
jobs' control rows, classes and quotas (docs/scale-out.md). Example::

    >>> redact("postgresql+psycopg://ann:secret@db.school:5432/layerlab")
    'postgresql+psycopg://ann:***@db.school:5432/layerlab'
    >>> statement("SELECT * FROM runs WHERE id = ? AND owner IN (?, ?)").text
    'SELECT * FROM runs WHERE id = :p0 AND owner IN (:p1, :p2)'
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy import Column, Float, Index, Integer, MetaData, Table, Text
from sqlalchemy.engine import Connection, Engine  # noqa: F401 - Connection: the store's type hints

from builder.data.access import CONFIGURE, SERVER, may
from builder.errors import AccessDenied, RunStoreError
from builder.escape import shown_uri
from builder.runs.owners import server_config, set_server_config

ENV_DB_URL = "LAYERLAB_DB_URL"
HEAD = "0005"  # the newest migration in builder/runs/migrations/versions (a test checks it is Alembic's head)
UPGRADE_COMMAND = "layerlab db upgrade"
MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()
"""The schema at :data:`HEAD`, for reading it (the migrations create it: they never import these tables)."""

runs = Table(
    "runs", metadata,
    Column("id", Text, primary_key=True), Column("name", Text), Column("status", Text, nullable=False),
    Column("created_at", Text), Column("started_at", Text), Column("updated_at", Text), Column("finished_at", Text),
    Column("pid", Integer), Column("host", Text),
    *(Column(c, Text) for c in ("project", "dataset_name", "dataset_options", "dataset_info", "config",
                                "final_metrics", "test_metrics", "message", "parent_id")),
    Column("epochs_done", Integer, server_default="0"), Column("environment", Text),
    Column("owner", Text, server_default="local"), Column("tags", Text), Column("control", Text),
    Column("queued_at", Float(precision=53)), Column("graph_hash", Text), Column("class_id", Text),
    Column("beat_at", Float(precision=53)), Column("placed_at", Float(precision=53)),
    Index("runs_by_status", "status", "queued_at"),
)
metrics = Table(
    "metrics", metadata,
    Column("id", sa.BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", Text, nullable=False), Column("kind", Text, nullable=False), Column("step", Integer),
    Column("epoch", Integer), Column("data", Text, nullable=False),
    Index("metrics_by_run", "run_id", "kind", "step"),
)
documents = Table(
    "documents", metadata,  # JSON documents of the workspace kept with the runs (classes; builder.runs.classes)
    Column("kind", Text, primary_key=True), Column("id", Text, primary_key=True), Column("data", Text, nullable=False),
    Column("updated_at", Float(precision=53)),
)


CONFIG_KEY = "database_url"  # the server config's setting (an admin sets it on the Server page)
_PINNED: dict[str, tuple[str, str]] = {}  # workspace -> (URL, where from): this process keeps it until it restarts


def database_url(workspace: str | Path) -> str:
    """``$LAYERLAB_DB_URL`` when set, else the server config's ``database_url`` (:func:`set_database_url`), else
    the SQLite file ``<workspace>/layerlab.db``. What the config names is read once per workspace and process: a
    changed setting takes effect when the server restarts, and the processes a server starts (jobs, the warm
    launcher, Ray's tasks) get its database in ``$LAYERLAB_DB_URL`` (:func:`process_env`).

    >>> database_url("/nonexistent-ws").endswith("/nonexistent-ws/layerlab.db")
    True
    """
    return _resolved(workspace)[0]


def absolute_sqlite(url: str, cwd: str | Path) -> str:
    """``url`` with the relative file of an ``sqlite:///`` URL made absolute against ``cwd`` (``~`` expanded);
    any other URL, an absolute file, ``file:`` URIs and ``:memory:`` unchanged.

    >>> absolute_sqlite("sqlite:///runs/a.db", "/home/me"), absolute_sqlite("sqlite+pysqlite:////srv/a.db", "/x")
    ('sqlite:////home/me/runs/a.db', 'sqlite+pysqlite:////srv/a.db')
    """
    text = url.strip()
    scheme = text.split(":", 1)[0]
    if is_sqlite(text) and text.startswith(f"{scheme}:///"):
        rest = text[len(scheme) + 4:]
        if rest and not rest.startswith(("/", "file:", ":memory:")):
            return f"{scheme}:///{os.path.abspath(Path(cwd) / Path(rest).expanduser())}"
    return text


def _resolved(workspace: str | Path) -> tuple[str, str]:
    url = os.environ.get(ENV_DB_URL, "").strip()
    if url:  # a relative SQLite file: resolved once, here, for the processes started in other folders too
        os.environ[ENV_DB_URL] = url = absolute_sqlite(url, Path.cwd())
        return url, ENV_DB_URL
    key = str(Path(workspace).expanduser().absolute())
    if key not in _PINNED:
        configured = _configured(workspace)
        configured = absolute_sqlite(configured, Path.cwd()) if configured else configured
        _PINNED[key] = ((configured, "the server config") if configured else
                        (f"sqlite:///{Path(key) / 'layerlab.db'}", "the workspace's SQLite file"))
    return _PINNED[key]


def process_env(workspace: str | Path) -> dict[str, str]:
    """The environment a process this server starts for ``workspace`` needs to use the same run database."""
    return {ENV_DB_URL: database_url(workspace)}


def _configured(workspace: str | Path) -> str | None:
    value = server_config(workspace).get(CONFIG_KEY)
    return value.strip() if isinstance(value, str) and value.strip() else None


MLFLOW_SCHEMES = ("http", "https", "databricks", "file", "mlflow-artifacts", "uc", "databricks-uc")
_MLFLOW_TABLES = ("experiments", "registered_models", "model_versions")  # MLflow's SQL store (never ours)


def check_database_url(url: str, workspace: str | Path, *, connect: bool = True) -> list[str]:
    """Every problem with ``url`` as the run database (empty: none), each worded "rule; received: value. Fix":
    a PostgreSQL (``postgresql+psycopg://user:password@host/database``) or SQLite (``sqlite:////absolute/file``)
    URL whose driver is installed, never an MLflow tracking store (an MLflow URI, the server's MLflow destination,
    or a database holding MLflow's tables); with ``connect``, a database that answers within 5 s.

    >>> check_database_url("https://mlflow.school.org", "/nonexistent-ws", connect=False)[0].split(";")[0]
    'the run database is a PostgreSQL or SQLite database, never an MLflow tracking store'
    >>> check_database_url("sqlite:///layerlab.db", "/nonexistent-ws", connect=False)[0].split(";")[0]
    'an SQLite run database is an absolute file path (sqlite:////path/to/layerlab.db)'
    """
    shown = redact(url)
    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # noqa: BLE001 - SQLAlchemy's parse error names nothing more useful than ours
        scheme = url.split(":", 1)[0].strip().lower()
        if scheme in MLFLOW_SCHEMES:
            return [f"the run database is a PostgreSQL or SQLite database, never an MLflow tracking store; "
                    f"received: {shown!r}. Fix: give MLflow's URI under Tracking, and here e.g. "
                    "postgresql+psycopg://layerlab:password@db.school.org/layerlab"]
        return [f"the run database is a URL such as postgresql+psycopg://user:password@host/database; received: "
                f"{shown!r}. Fix: write it in that form"]
    backend = parsed.get_backend_name()
    if backend in MLFLOW_SCHEMES:
        return [f"the run database is a PostgreSQL or SQLite database, never an MLflow tracking store; received: "
                f"{shown!r}. Fix: give MLflow's URI under Tracking, and here e.g. "
                "postgresql+psycopg://layerlab:password@db.school.org/layerlab"]
    problems = []
    if backend not in ("postgresql", "sqlite"):
        problems.append(f"the run database is PostgreSQL or SQLite; received: {backend!r} in {shown!r}. Fix: "
                        "use postgresql+psycopg://user:password@host/database")
    elif backend == "sqlite" and not (parsed.database and Path(parsed.database).is_absolute()):
        problems.append(f"an SQLite run database is an absolute file path (sqlite:////path/to/layerlab.db); "
                        f"received: {shown!r}. Fix: write the whole path after sqlite:///")
    elif backend == "sqlite" and not Path(parsed.database).parent.is_dir():
        problems.append(f"an SQLite run database is a file in an existing folder; received: {shown!r}. Fix: "
                        "create the folder first")
    elif backend == "postgresql" and not (parsed.host and parsed.database):
        problems.append(f"a PostgreSQL run database names its host and database; received: {shown!r}. Fix: "
                        "write postgresql+psycopg://user:password@host/database")
    if _mlflow_destination(url, workspace):
        problems.append(f"the run database is never the MLflow tracking store; received: {shown!r}, the server's "
                        "MLflow destination. Fix: give LayerLab a database of its own")
    if problems or not connect:
        return problems
    try:
        eng = sa.create_engine(url, **({} if backend == "sqlite" else {"connect_args": {"connect_timeout": 5}}),
                               poolclass=sa.pool.NullPool)
        with eng.connect() as c:
            tables = set(sa.inspect(c).get_table_names())
        eng.dispose()
    except (ImportError, sa.exc.NoSuchModuleError) as e:
        return [f"the run database's driver is installed on the server; received: {shown!r} ({e}). Fix: pip "
                "install 'layerlab[cluster]'"]
    except Exception as e:  # noqa: BLE001 - any failure to connect is said, without the password
        first = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0][:200]
        return [f"the run database answers; received: {shown!r}: {first}. Fix: check that the server runs, the "
                "database exists and the user and password are right"]
    if tables & set(_MLFLOW_TABLES):
        problems.append(f"the run database is never an MLflow tracking store; received: {shown!r}, which holds "
                        f"MLflow's tables ({', '.join(sorted(tables & set(_MLFLOW_TABLES)))}). Fix: create an "
                        "empty database for LayerLab (CREATE DATABASE layerlab)")
    return problems


_LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")  # one database server: this host's, by socket or loopback
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


def database_place(url: str) -> tuple[str, str, int | None, str] | None:
    """Which database ``url`` names, as ``(backend, host, port, database)`` with the driver, the user, the
    password and the query left out, the host lower-cased (this host's loopback names and a socket as one) and
    the backend's default port filled in; an SQLite file as its resolved path (relative to the working folder,
    as SQLite takes it); None for anything else (an MLflow server, an in-memory database, text that is no URL).

    >>> database_place("postgresql+psycopg://ann:pw@DB.school.org/layerlab?sslmode=require")
    ('postgresql', 'db.school.org', 5432, 'layerlab')
    >>> database_place("postgresql://127.0.0.1:5432/x") == database_place("postgresql://bob@localhost/x")
    True
    >>> database_place("sqlite:////tmp/a.db"), database_place("https://mlflow.school.org")
    (('sqlite', '', None, '/tmp/a.db'), None)
    >>> database_place("sqlite:///file:/tmp/a.db?mode=rw&uri=true") == database_place("sqlite:////tmp/./a.db")
    True
    """
    try:
        p = sa.engine.make_url(str(url).strip())
        backend = p.get_backend_name()
    except Exception:  # noqa: BLE001 - text SQLAlchemy cannot read is not a database
        return None
    if backend in MLFLOW_SCHEMES or not p.database or p.database == ":memory:":
        return None
    if backend == "sqlite":  # a file, also written as an SQLite URI (sqlite:///file:/x.db?mode=rw&uri=true)
        db = urlsplit(p.database).path or p.database[5:] if p.database.startswith("file:") else p.database
        return backend, "", None, str(Path(unquote(db)).expanduser().resolve())
    host = (p.host or "").strip("[]").lower()
    return backend, "localhost" if host in _LOCAL_HOSTS else host, p.port or _DEFAULT_PORTS.get(backend), p.database


def same_database(a: str, b: str) -> bool:
    """Whether two URLs name one database (:func:`database_place`), whoever connects and however."""
    place = database_place(a)
    return place is not None and place == database_place(b)


def _mlflow_destination(url: str, workspace: str | Path) -> bool:
    """Whether ``url`` names the same database as an MLflow destination of this server (``$MLFLOW_TRACKING_URI``,
    the server config's tracking URI or allow-list)."""
    tracking = server_config(workspace).get("tracking") or {}
    uris = [os.environ.get("MLFLOW_TRACKING_URI", "")]
    if isinstance(tracking, dict):
        uris += [tracking.get("uri") or "", *(tracking.get("allow") or [])]
    return any(same_database(url, str(u)) for u in uris if str(u).strip())


def set_database_url(workspace: str | Path, actor: Any, url: str) -> str:
    """Save the run database's URL in the server config (an admin only: :data:`builder.data.access.CONFIGURE`;
    empty: back to the workspace's SQLite file), after :func:`check_database_url`; it takes effect when the
    server restarts. Returns the note to show.

    Raises:
        AccessDenied: the actor is not an admin.
        RunStoreError: every problem of the URL, one per line (nothing saved).
    """
    if not may(actor, CONFIGURE, SERVER):
        raise AccessDenied("only an admin sets the run database; received: a request by someone who is not an "
                           "admin. Fix: ask the server's admin (LAYERLAB_ADMINS)")
    url = str(url or "").strip()
    problems = check_database_url(url, workspace) if url else []
    if problems:
        raise RunStoreError("\n".join(problems))
    set_server_config(workspace, **{CONFIG_KEY: url or None})
    return (f"Saved: the run database will be {redact(url) if url else 'the workspace SQLite file'} when the server "
            f"restarts (restart every LayerLab server and job node that shares this config; a new PostgreSQL "
            f"database gets its tables on the first start)")


def database_setting(workspace: str | Path) -> dict[str, Any]:
    """What the Server page shows, never a password: ``in_use`` (this process's database) and ``source`` (where
    it comes from), ``configured`` (the server config's, or None), ``overridden`` (``$LAYERLAB_DB_URL`` wins over
    the config) and ``restart`` (the config names another database than the one in use: restart to use it)."""
    in_use, source = _resolved(workspace)
    configured = _configured(workspace)
    default = f"sqlite:///{Path(workspace).expanduser().absolute() / 'layerlab.db'}"
    overridden = source == ENV_DB_URL
    return {"in_use": redact(in_use), "source": source, "configured": redact(configured) if configured else None,
            "overridden": overridden, "restart": not overridden and (configured or default) != in_use}


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database.

    >>> is_sqlite("sqlite:////w/layerlab.db"), is_sqlite("postgresql+psycopg://h/layerlab")
    (True, False)
    """
    return url.split(":", 1)[0].split("+")[0] == "sqlite"


def redact(url: str) -> str:
    """``url`` without its credentials, for messages and logs (:func:`builder.escape.shown_uri`, the one rule for
    every address LayerLab shows: a tracker, a study storage, this database)."""
    return shown_uri(url)


_ENGINES: dict[tuple[str, str, int], Engine] = {}
_FORKED: list[Engine] = []  # a parent's engines, kept (never closed) in a forked child: its connections are the parent's
_LOCK = threading.Lock()


def _after_fork() -> None:
    _FORKED.extend(_ENGINES.values())
    _ENGINES.clear()


os.register_at_fork(after_in_child=_after_fork)


def dispose_engines() -> None:
    """Close every pooled connection this process opened (a job whose run store is its broker from now on:
    :mod:`builder.process.broker`); a parent's, kept since a fork, are left to the parent."""
    with _LOCK:
        for eng in _ENGINES.values():
            eng.dispose()
        _ENGINES.clear()


def engine(url: str, journal: str = "WAL") -> Engine:
    """The pooled engine of ``url`` in this process (SQLite: ``journal`` is ``WAL`` or ``DELETE``).

    Raises:
        RunStoreError: a URL SQLAlchemy cannot use (unknown dialect, driver not installed).
    """
    key = (url, journal, os.getpid())
    with _LOCK:
        if key in _ENGINES:
            return _ENGINES[key]
        try:
            if is_sqlite(url):
                eng = sa.create_engine(url, connect_args={"timeout": 30.0, "check_same_thread": False},
                                       pool_size=8, max_overflow=56, pool_timeout=60)
                _sqlite_events(eng, journal)
            else:  # a job process keeps at most a few connections (many jobs share one server)
                eng = sa.create_engine(url, pool_size=2, max_overflow=8, pool_pre_ping=True, pool_recycle=1800,
                                       connect_args={"connect_timeout": 10})
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as e:
            raise RunStoreError(f"cannot use the run database URL; received: {redact(url)!r} ({e}). Fix: set "
                                f"{ENV_DB_URL} to e.g. postgresql+psycopg://user:password@host/layerlab, and "
                                "install layerlab[cluster]") from None
        _ENGINES[key] = eng
        return eng


def _sqlite_events(eng: Engine, journal: str) -> None:
    """SQLite as the store used it before SQLAlchemy: the driver's own transactions off, ``BEGIN`` (reads) or
    ``BEGIN IMMEDIATE`` (writes, :func:`write`) issued here, a 30 s busy timeout, unsynced commits under WAL."""

    @sa.event.listens_for(eng, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        dbapi.isolation_level = None
        cur = dbapi.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute(f"PRAGMA journal_mode={journal}")  # WAL stays with the file; DELETE: a network file system
        if journal == "WAL":  # a commit is not synced (a power cut may lose the last ones, never the file)
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(eng, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("layerlab_write") else "BEGIN")


@contextmanager
def write(c: Connection, lock: str | None = None) -> Iterator[Connection]:
    """One write transaction on ``c``: SQLite's ``BEGIN IMMEDIATE`` (the database's one writer); on PostgreSQL,
    with ``lock``, a transaction-scoped advisory lock of that name too (a check and the write it allows, such as
    claiming a job slot, happen as one step across servers)."""
    if c.in_transaction():
        c.rollback()
    c.info["layerlab_write"] = True
    try:
        with c.begin():
            if lock and c.dialect.name == "postgresql":
                c.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"layerlab:{lock}"})
            yield c
    finally:
        c.info.pop("layerlab_write", None)


@functools.lru_cache(maxsize=512)
def statement(sql: str) -> sa.TextClause:
    """The store's SQL with ``?`` placeholders as a :func:`sqlalchemy.text` with ``:p0, :p1, ...``."""
    parts = sql.split("?")
    return sa.text("".join(p + (f":p{i}" if i < len(parts) - 1 else "") for i, p in enumerate(parts)))


def params(args: Iterable) -> dict[str, Any]:
    """``?`` arguments as the named parameters of :func:`statement`."""
    return {f"p{i}": v for i, v in enumerate(args)}


def is_busy(exc: BaseException) -> bool:
    """Whether a database error is SQLite's "database is locked/busy" (the store retries those)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "locked" in text or "busy" in text


def unreachable(exc: BaseException, url: str) -> RunStoreError | None:
    """The store's message for a database server that cannot be reached (refused, lost, timed out), else None."""
    if not isinstance(exc, sa.exc.OperationalError) or is_sqlite(url):
        return None
    first = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
    return RunStoreError(f"cannot reach the run database {redact(url)}; received: {first}. Fix: check that the "
                         f"PostgreSQL server runs and answers on that address, or unset {ENV_DB_URL} to use the "
                         "workspace's own SQLite file")


def database_error(exc: BaseException, url: str) -> RunStoreError:
    """The store's one message for a database error that is not a busy lock: a server it cannot reach
    (:func:`unreachable`), a file that is damaged or not a database, else the driver's first line, each with a fix.

    >>> import sqlite3
    >>> str(database_error(sa.exc.DatabaseError("x", {}, sqlite3.DatabaseError("file is not a database")),
    ...                    "sqlite:///ws/layerlab.db")).split(";")[0]
    'the run database sqlite:///ws/layerlab.db is damaged or is not a database'
    """
    if (far := unreachable(exc, url)) is not None:
        return far
    first = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200] if str(exc) else type(exc).__name__
    if "not a database" in first or "malformed" in first:
        return RunStoreError(f"the run database {redact(url)} is damaged or is not a database; received: {first}. "
                             "Fix: restore it from a backup, or move it away to start a new one (the runs' folders "
                             "stay, without their rows)")
    return RunStoreError(f"run database error; received: {first}. Fix: check the run database ({redact(url)}) and "
                         "its disk, then try again")


# ---- what servers sharing one database share besides runs: locks and documents
def on_server(workspace: str | Path) -> bool:
    """Whether the workspace's run database is a server (PostgreSQL) that other LayerLab servers may share."""
    return not is_sqlite(database_url(workspace))


@contextmanager
def workspace_lock(workspace: str | Path, name: str) -> Iterator[None]:
    """An exclusive lock named ``name`` for a check and the write it allows (a quota and the run it admits, a
    class's read-modify-write): the file ``<workspace>/<name>`` (``flock``) for one server, an advisory lock in
    the shared database for servers sharing one, which a lock file on a network file system cannot be."""
    if not on_server(workspace):
        with _file_lock(Path(workspace) / name):
            yield
        return
    key = {"k": f"layerlab:{name}"}
    with engine(database_url(workspace)).connect() as c:
        c.execute(sa.text("SELECT pg_advisory_lock(hashtext(:k))"), key)
        c.commit()
        try:
            yield
        finally:
            c.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:k))"), key)
            c.commit()


def save_document(workspace: str | Path, kind: str, doc_id: str, data: str) -> None:
    """Write (insert or replace) one JSON document of ``kind`` in the shared database."""

    with engine(database_url(workspace)).connect() as c, c.begin():
        c.execute(documents.delete().where(documents.c.kind == kind, documents.c.id == doc_id))
        c.execute(documents.insert().values(kind=kind, id=doc_id, data=data, updated_at=time.time()))


def load_documents(workspace: str | Path, kind: str, doc_id: str | None = None) -> list[str]:
    """The JSON texts of the documents of ``kind`` (only ``doc_id`` when given) in the shared database."""
    q = sa.select(documents.c.data).where(documents.c.kind == kind)
    if doc_id is not None:
        q = q.where(documents.c.id == doc_id)
    with engine(database_url(workspace)).connect() as c:
        return list(c.execute(q.order_by(documents.c.id)).scalars())


def delete_document(workspace: str | Path, kind: str, doc_id: str) -> None:
    """Remove one document of ``kind`` from the shared database (nothing when it is not there)."""
    with engine(database_url(workspace)).connect() as c, c.begin():
        c.execute(documents.delete().where(documents.c.kind == kind, documents.c.id == doc_id))


# ---- schema versions (Alembic)
def current_revision(c: Connection) -> str | None:
    """The schema revision stamped in the database; None for one made before migrations (or empty)."""
    if not sa.inspect(c).has_table("alembic_version"):
        return None
    return c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def has_runs(c: Connection) -> bool:
    """Whether the database already holds LayerLab's tables (made by any release)."""
    return sa.inspect(c).has_table("runs")


def alembic_config(c: Connection | None = None) -> Any:
    """An Alembic configuration for the migrations folder, bound to connection ``c`` (env.py uses it)."""
    from alembic.config import (
        Config,  # ~60 ms; only when a schema is created or upgraded  # lazy: heavy (alembic)
    )

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = c
    return cfg


def upgrade(url: str, journal: str = "WAL", revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database at ``url`` to ``revision``; ``(revision before, revision after)``. One process at a
    time (SQLite: the write lock; PostgreSQL: an advisory lock), so two servers starting together agree."""
    from alembic import command  # lazy: heavy (alembic)

    eng = engine(url, journal)
    with eng.connect() as c, write(c, lock="migrate"):
        before = current_revision(c)
        command.upgrade(alembic_config(c), revision)
        after = current_revision(c)
    return before, after


_READY: set[str] = set()  # databases this process has checked (pages open a store per call)
_MIGRATE_LOCK = "layerlab.db.migrate.lock"


def ensure_schema(url: str, journal: str, workspace: Path, *, auto_upgrade: bool | None = None) -> None:
    """Create or upgrade the schema the first time this process opens ``url``. An SQLite workspace (one
    server's) upgrades itself, as before; a shared PostgreSQL database is created when empty, but an older
    schema is upgraded only by ``layerlab db upgrade`` (other servers may still run the older LayerLab).

    Raises:
        RunStoreError: a schema newer than this LayerLab knows, or an old shared one, saying what to run.
    """
    key = f"{url}#{_inode(url)}"
    if key in _READY:
        return
    auto = is_sqlite(url) if auto_upgrade is None else auto_upgrade
    with _file_lock(workspace / _MIGRATE_LOCK if is_sqlite(url) else None):
        with engine(url, journal).connect() as c:
            rev, made = current_revision(c), has_runs(c)
            c.rollback()
        if rev != HEAD:
            if rev is not None and rev not in _known():
                raise RunStoreError(f"the run database {redact(url)} has schema revision {rev}, newer than this "
                                    f"LayerLab knows (up to {HEAD}); received: a database a newer LayerLab "
                                    "upgraded. Fix: upgrade LayerLab on this server too")
            if made and not auto:
                raise RunStoreError(f"the run database {redact(url)} has schema revision {rev or 'none (0.1)'}; "
                                    f"this LayerLab needs {HEAD}. Fix: stop the other LayerLab servers, upgrade "
                                    f"them, then run `{UPGRADE_COMMAND}` once")
            upgrade(url, journal)
    _READY.add(f"{url}#{_inode(url)}")


def _known() -> set[str]:
    return {p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py")}


def _inode(url: str) -> int | None:
    """The SQLite file's inode (a workspace deleted and made again is checked again); None for a server."""
    if not is_sqlite(url):
        return None
    try:
        return os.stat(sa.engine.make_url(url).database or "").st_ino
    except OSError:
        return None


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Closing:
    """A pooled connection as a context manager that gives it back; a held one
    (:meth:`builder.runs.store.RunStore.hold`) stays."""

    def __init__(self, c: Connection, close: bool = True):
        self.c, self.close = c, close

    def __enter__(self) -> Connection:
        return self.c

    def __exit__(self, *exc) -> None:
        if self.close:
            self.c.close()


__all__ = ["Closing", "ENV_DB_URL", "absolute_sqlite", "CONFIG_KEY", "check_database_url", "database_error", "set_database_url", "database_setting", "process_env", "HEAD", "UPGRADE_COMMAND", "metadata", "runs", "metrics", "documents", "database_url",
           "is_sqlite", "redact", "engine", "on_server", "workspace_lock", "save_document", "load_documents",
           "delete_document", "write", "statement", "params", "is_busy", "unreachable",
           "current_revision", "upgrade", "ensure_schema"]
