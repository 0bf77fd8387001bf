"""Where studies live: Optuna RDB storages, opening, listing and loading studies, their owner, stop requests.

Studies live in an RDB storage (``sqlite:///<workspace>/studies.db`` by default, any Optuna URL otherwise), so a
stopped study resumes and several processes on several machines can share one. Optuna (with SQLAlchemy) takes
~0.6 s to import: it is loaded on first use, not with this module.

Study names are per owner: the name a person types and sees (its display name, ``lr-sweep``) is stored as
:func:`study_key` ``<keyed owner folder>/lr-sweep`` (:func:`builder.runs.owners.safe_id`: nothing of the owner id),
so two people each have their own ``lr-sweep`` and neither learns of the other's. The CLI's ``local`` user keeps
bare names. A study an app owner made before names were per owner (a bare name recording that owner) is still
found for that owner alone (:func:`resolve_study`). The study's files (its project, log, private temporary
folder) are :func:`study_files`, keyed the same way.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from builder.data.access import CONTROL, LOCAL_OWNER, Actor, Resource, may
from builder.errors import AccessDenied, LayerLabError
from builder.escape import shown_uri
from builder.runs.owners import STUDIES_DIR, owned_name, owner_of
from builder.search.settings import study_name_problem, valid_study_name

STUDY_DB = "studies.db"
RUNNER_SUFFIX = ".runner"  # beside a study's log: its live runner (study_files)
SETTINGS_ATTR = "layerlab"  # the study's user attribute holding its LayerLab settings
STOP_ATTR = "layerlab_stop"
_SEP = "/"  # between the owner's key and the name in a storage name (builder.runs.owners.owned_name)


def default_storage(workspace: str | Path) -> str:
    """``sqlite:///<workspace>/studies.db``: the workspace's study database."""
    return f"sqlite:///{Path(workspace).expanduser().resolve() / STUDY_DB}"


def open_storage(url: str):
    """An Optuna RDB storage for ``url`` (SQLite gets a 30 s busy timeout for concurrent processes).

    Raises:
        LayerLabError: the URL cannot be opened.
    """
    import optuna  # lazy: heavy (optuna)

    kw = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    err: Exception | None = None
    for attempt in range(6):
        try:
            with _schema_lock(url):
                return optuna.storages.RDBStorage(url, engine_kwargs=kw)
        except Exception as e:  # SQLAlchemy raises many kinds (bad URL, missing driver, unreachable server)
            err = e
            racing = ("already exists", "locked", "UNIQUE constraint", "duplicate key", "IntegrityError")
            if not any(r in f"{type(e).__name__} {e}" for r in racing):
                break
            time.sleep(0.2 * (attempt + 1))  # another process is creating the same schema right now
    first = str(err).splitlines()[0][:200] if str(err) else ""
    raise LayerLabError(f"cannot open study storage; received: {shown_uri(url)} ({type(err).__name__}: {first}). "
                        "Fix: give a URL such as sqlite:///studies.db or postgresql://user@host/db")


@contextlib.contextmanager
def _schema_lock(url: str):
    """For a local SQLite file, one process at a time creates or upgrades the schema (a lock file beside it)."""
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
    try:
        import fcntl  # lazy: POSIX only (fcntl)
    except ImportError:  # not POSIX: the retries in open_storage cover the race
        fcntl = None
    if not path or path == ":memory:" or fcntl is None:
        yield
        return
    lock = Path(path).expanduser().with_name(Path(path).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def quiet_optuna() -> None:
    import optuna  # lazy: heavy (optuna)

    optuna.logging.set_verbosity(optuna.logging.WARNING)


# ------------------------------------------------------------------ names: the one home of "study N of owner O"
def study_key(workspace: str | Path, owner: str, name: str) -> str:
    """The storage name of the study ``name`` of ``owner``: ``<safe id>/<name>`` (the owner's keyed folder name,
    :func:`builder.runs.owners.owned_name`), the bare ``name`` for the CLI's ``local`` user. Every reader and writer
    of a study by name goes through here (and :func:`resolve_study`, which also finds older bare names).

    >>> import tempfile
    >>> ws = tempfile.mkdtemp()
    >>> study_key(ws, "local", "lr-sweep")
    'lr-sweep'
    >>> key = study_key(ws, "anon:" + "ab" * 16, "lr-sweep")
    >>> key.startswith("anon-") and key.endswith("/lr-sweep") and "abab" not in key
    True
    """
    if problem := study_name_problem(name):
        raise LayerLabError(problem)
    return owned_name(workspace, owner, name)


def study_display_name(storage_name: str) -> str:
    """The name people see for a study stored as ``storage_name`` (its owner's key left out).

    >>> study_display_name("anon-k7x2qd4mztabcdefghijklmn/lr-sweep"), study_display_name("lr-sweep")
    ('lr-sweep', 'lr-sweep')
    """
    return storage_name.rpartition(_SEP)[2]


def study_files(workspace: str | Path, owner: str, name: str) -> dict[str, Path]:
    """The files of the study ``name`` of ``owner``, keyed by its :func:`study_key` (so two owners' studies of
    one name never share one): ``project`` (the project its runner reads), ``log`` (the runner's output),
    ``tmp`` (its private HOME and TMPDIR), ``runner`` (its live runner's :func:`~builder.process.launcher.process_token`,
    counted by :func:`builder.jobs.quotas.check_study`), all under ``<workspace>/studies/`` (an owner's in its key's
    folder)."""
    base = Path(workspace) / STUDIES_DIR / study_key(workspace, owner, name)
    return {"project": base.with_name(base.name + ".project.json"), "log": base.with_name(base.name + ".log"),
            "tmp": base.with_name(base.name + ".tmp"), "runner": base.with_name(base.name + RUNNER_SUFFIX)}


def runner_records(workspace: str | Path, owner: str) -> list[Path]:
    """The ``runner`` files (:func:`study_files`) of every study of ``owner``: those in its key's folder (all in
    ``<workspace>/studies/`` for the CLI's local user), links left out."""
    folder = (Path(workspace) / STUDIES_DIR / study_key(workspace, owner, "x")).parent
    try:
        return [f for f in folder.glob(f"*{RUNNER_SUFFIX}") if f.is_file() and not f.is_symlink()]
    except OSError:
        return []


def _recorded_owner(attrs: dict | None) -> str | None:
    """The owner a study's LayerLab settings record (None when they record none)."""
    value = (attrs or {}).get("owner") if isinstance(attrs, dict) else None
    return str(value) if value else None


def _owns(storage_name: str, attrs: dict | None, owner: str, key: str) -> bool:
    """Whether the study stored as ``storage_name`` is ``owner``'s study whose key is ``key``: under its own key
    (a recorded owner must agree), or a bare name that records ``owner`` (``local`` when it records none)."""
    recorded = _recorded_owner(attrs)
    if storage_name == key:
        return recorded in (None, owner) and may(Actor(owner), CONTROL, Resource("study", recorded or owner,
                                                                                  storage_name))
    if _SEP in storage_name:
        return False
    return may(Actor(owner), CONTROL, Resource("study", recorded or LOCAL_OWNER, storage_name))


def _find(st, workspace: str | Path, owner: str, name: str) -> tuple[int, str] | None:
    """The id and storage name of ``owner``'s study ``name`` in the opened storage ``st``, or None."""
    if not valid_study_name(name):
        return None
    key = study_key(workspace, owner, name)
    for candidate in dict.fromkeys((key, name)):  # its own key first, then an older bare name it made
        try:
            sid = st.get_study_id_from_name(candidate)
        except KeyError:
            continue
        if _owns(candidate, st.get_study_user_attrs(sid).get(SETTINGS_ATTR), owner, key):
            return sid, candidate
    return None


def resolve_study(storage: str, name: str, *, owner: str, workspace: str | Path) -> str | None:
    """The storage name of ``owner``'s study ``name`` (its :func:`study_key`, or the bare name of a study it made
    before names were per owner), None when it has none: another person's study of that name is never found."""
    quiet_optuna()
    found = _find(open_storage(storage), workspace, owner, name)
    return found[1] if found else None


def _no_study(st, workspace: str | Path, owner: str, name: str) -> AccessDenied:
    """The one answer for an unknown name and another person's: it lists only the asker's own studies."""
    import optuna  # lazy: heavy (optuna)

    mine = [_own_name(s.study_name, s.user_attrs, workspace, owner)
            for s in optuna.get_all_study_summaries(st, include_best_trial=False)]
    names = sorted(n for n in mine if n)
    shown = str(name)[:100]
    return AccessDenied(f"no study named {shown!r}; received: --study {shown}. Fix: use one of "
                        f"{', '.join(names[:10]) or '(none yet: run `layerlab tune` first)'}")


def _own_name(storage_name: str, attrs: dict, workspace: str | Path, owner: str) -> str | None:
    """The display name of a stored study when it is ``owner``'s, else None."""
    name = study_display_name(storage_name)
    if not valid_study_name(name):
        return None
    return name if _owns(storage_name, attrs.get(SETTINGS_ATTR), owner, study_key(workspace, owner, name)) else None


def _move_aside(st, workspace: str | Path, name: str) -> None:
    """A bare name the CLI's local user wants, held by a study an app owner made before names were per owner:
    that study moves to its owner's :func:`study_key` (where its owner finds it), so the name is free and
    nobody is told whose it was. One atomic rename in the storage; a study moved meanwhile is left."""
    import sqlalchemy  # lazy: heavy (sqlalchemy)
    from optuna.storages._rdb.models import StudyModel  # lazy: heavy (optuna)

    try:
        sid = st.get_study_id_from_name(name)
    except KeyError:
        return
    owner = _recorded_owner(st.get_study_user_attrs(sid).get(SETTINGS_ATTR))
    if owner in (None, LOCAL_OWNER):
        return
    table = StudyModel.__table__
    try:
        with st.engine.begin() as conn:
            conn.execute(sqlalchemy.update(table).where(table.c.study_id == sid, table.c.study_name == name)
                         .values(study_name=study_key(workspace, owner, name)))
    except sqlalchemy.exc.IntegrityError:  # its owner has a study of that name under its key too: both kept
        raise LayerLabError(f"the study name {name!r} cannot be used now; received: --study {name}. Fix: pick "
                            "another study name") from None


def claim_study(storage: str, name: str, *, owner: str, workspace: str | Path,
                direction: str = "minimize") -> str:
    """The storage name of ``owner``'s study ``name``, created in the storage (with its owner) when it has none:
    one atomic step, before any of its files is written, so two owners starting the same name at once get two
    studies and the same owner twice gets one. Raises LayerLabError for a bad name."""
    import optuna  # lazy: heavy (optuna)

    quiet_optuna()
    key = study_key(workspace, owner, name)
    st = open_storage(storage)
    found = _find(st, workspace, owner, name)
    if found:
        return found[1]
    if owner == LOCAL_OWNER:
        _move_aside(st, workspace, name)
    try:
        sid = st.create_new_study([optuna.study.StudyDirection[direction.upper()]], key)
    except optuna.exceptions.DuplicatedStudyError:  # the same owner's other start created it a moment ago
        pass
    else:
        st.set_study_user_attr(sid, SETTINGS_ATTR, {"owner": owner})
    found = _find(st, workspace, owner, name)
    if not found:  # a bare name that stays another's (moved back meanwhile): the unknown name's answer
        raise _no_study(st, workspace, owner, name)
    return found[1]


# ------------------------------------------------------------------------------------- listing and loading
def list_studies(storage: str, *, owner: str | None = None, workspace: str | Path | None = None) -> list[dict]:
    """Studies in a storage: name, direction, trial count, best value, creation time, settings. With ``owner``
    (and its ``workspace``), only that owner's, by display name; without, every study by storage name (trusted
    code: housekeeping, migrations)."""
    import optuna  # lazy: heavy (optuna)

    quiet_optuna()
    out = []
    for s in optuna.get_all_study_summaries(open_storage(storage), include_best_trial=True):
        name = s.study_name
        if owner is not None:
            if workspace is None:
                raise LayerLabError("an owner's studies are listed with its workspace; received: none. Fix: pass "
                                    "workspace=")
            name = _own_name(s.study_name, s.user_attrs, workspace, owner)
            if name is None:
                continue
        out.append({"name": name, "direction": s.direction.name.lower() if s.direction else None,
                    "n_trials": s.n_trials, "best_value": s.best_trial.value if s.best_trial else None,
                    "created": str(s.datetime_start) if s.datetime_start else None,
                    "settings": s.user_attrs.get(SETTINGS_ATTR)})
    return sorted(out, key=lambda r: r["name"]) if owner is not None else out


def study_owner(storage: str, storage_name: str) -> str | None:
    """The owner recorded with the study stored as ``storage_name`` (``local`` when none was), or None when there
    is no such study (trusted code; a person's study is found by :func:`resolve_study`)."""

    quiet_optuna()
    st = open_storage(storage)
    try:
        sid = st.get_study_id_from_name(storage_name)
    except KeyError:
        return None
    return owner_of(st.get_study_user_attrs(sid).get(SETTINGS_ATTR))  # the rule of runs: none recorded is "local"


def load_study(storage: str, name: str, *, owner: str | None = None, workspace: str | Path | None = None):
    """Load an existing study. With ``owner`` (a page's or a job's asker) and its ``workspace``, ``name`` is a
    display name and only that owner's study is found (:func:`resolve_study`); another person's study, by its
    display or its storage name, and an unknown name get the same answer, which lists only the asker's own
    studies. Without ``owner`` (trusted code), ``name`` is a storage name. Raises LayerLabError (AccessDenied
    with ``owner``)."""
    import optuna  # lazy: heavy (optuna)

    quiet_optuna()
    st = open_storage(storage)
    if owner is not None:
        if workspace is None:
            raise LayerLabError("an owner's study is found with its workspace; received: none. Fix: pass workspace=")
        found = _find(st, workspace, owner, name)
        if found is None:
            raise _no_study(st, workspace, owner, name)
        return optuna.load_study(study_name=found[1], storage=st)
    with contextlib.suppress(KeyError):
        return optuna.load_study(study_name=name, storage=st)
    names = [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)]
    raise LayerLabError(f"no study named {str(name)[:100]!r}; received: --study {str(name)[:100]}. Fix: use one of "
                        f"{', '.join(names[:10]) or '(none yet: run `layerlab tune` first)'}")


def request_stop(storage: str, name: str, *, owner: str | None = None, workspace: str | Path | None = None) -> None:
    """Ask every runner of a study (in any process, on any machine) to stop: no new trials, live jobs stopped.
    ``owner``, ``workspace``: as :func:`load_study` (only that owner's study)."""
    load_study(storage, name, owner=owner, workspace=workspace).set_user_attr(STOP_ATTR, time.time())


__all__ = ["runner_records", "default_storage", "open_storage", "study_key", "study_display_name", "study_files",
           "resolve_study", "claim_study", "list_studies", "study_owner", "load_study",
           "request_stop", "STUDY_DB", "STUDIES_DIR"]
