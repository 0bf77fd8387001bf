"""Where studies live: Optuna RDB storages, opening, listing and loading studies, their owner, stop requests.

Studies live in an RDB storage (``sqlite:///<workspace>/studies.db`` by default, any Optuna URL otherwise), so a
stopped study resumes and several processes on several machines can share one. Optuna (with SQLAlchemy) takes
~0.6 s to import: it is loaded on first use, not with this module.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

from builder.data.access import CONTROL, Actor, Resource, may
from builder.errors import AccessDenied, LayerLabError
from builder.runs.owners import owner_of

STUDY_DB = "studies.db"
_ATTR = "layerlab"  # the study's user attribute holding its LayerLab settings
_STOP_ATTR = "layerlab_stop"


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
    raise LayerLabError(f"cannot open study storage; received: {_redact(url)} ({type(err).__name__}: {first}). "
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


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _quiet_optuna() -> None:
    import optuna  # lazy: heavy (optuna)

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def list_studies(storage: str) -> list[dict]:
    """Studies in a storage: name, direction, trial count, best value, creation time."""
    import optuna  # lazy: heavy (optuna)

    _quiet_optuna()
    out = []
    for s in optuna.get_all_study_summaries(open_storage(storage), include_best_trial=True):
        out.append({"name": s.study_name, "direction": s.direction.name.lower() if s.direction else None,
                    "n_trials": s.n_trials, "best_value": s.best_trial.value if s.best_trial else None,
                    "created": str(s.datetime_start) if s.datetime_start else None,
                    "settings": s.user_attrs.get(_ATTR)})
    return out


def study_owner(storage: str, name: str) -> str | None:
    """The owner recorded with the study ``name`` (``local`` when none was), or None when there is no such
    study in ``storage``."""

    _quiet_optuna()
    st = open_storage(storage)
    try:
        sid = st.get_study_id_from_name(name)
    except KeyError:
        return None
    return owner_of(st.get_study_user_attrs(sid).get(_ATTR))  # the rule of runs: none recorded is "local"


def _check_owner(name: str, owner: str, asking: str) -> None:
    """A study belongs to whoever created it: nobody else resumes it, adds trials to it or reads it by name
    (:func:`builder.data.access.may` ``control`` of a study)."""
    if not may(Actor(asking), CONTROL, Resource("study", owner, name)):
        raise AccessDenied(f"the study name {name!r} is taken by another person's study; received: study name "
                            f"{name!r}. Fix: pick another study name")


def load_study(storage: str, name: str, *, owner: str | None = None):
    """Load an existing study. With ``owner`` (a page's or a job's asker), only a study that owner may use by
    name (:func:`builder.data.access.may` ``control``); another person's study and an unknown name get the same
    answer, which lists only the asker's own studies. Without it (the command line's local user, trusted code)
    any study. Raises LayerLabError (AccessDenied with ``owner``) naming the studies present."""
    import optuna  # lazy: heavy (optuna)

    _quiet_optuna()
    st = open_storage(storage)

    def usable(attrs: dict) -> bool:
        return owner is None or may(Actor(owner), CONTROL, Resource("study", owner_of(attrs.get(_ATTR)), name))

    with contextlib.suppress(KeyError):
        study = optuna.load_study(study_name=name, storage=st)
        if usable(study.user_attrs):
            return study
    names = [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)
             if usable(s.user_attrs)]
    error = LayerLabError if owner is None else AccessDenied
    raise error(f"no study named {name!r}; received: --study {name}. Fix: use one of "
                f"{', '.join(names[:10]) or '(none yet: run `layerlab tune` first)'}")


def request_stop(storage: str, name: str, *, owner: str | None = None) -> None:
    """Ask every runner of a study (in any process, on any machine) to stop: no new trials, live jobs stopped.
    ``owner``: as :func:`load_study` (only that owner's study)."""
    load_study(storage, name, owner=owner).set_user_attr(_STOP_ATTR, time.time())


__all__ = ["default_storage", "open_storage", "list_studies", "study_owner", "load_study", "request_stop", "STUDY_DB"]
