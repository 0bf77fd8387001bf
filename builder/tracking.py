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
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from builder.data import records
from builder.data.access import check_acting
from builder.data.disk import write_atomic
from builder.errors import AccessDenied, LayerLabError
from builder.escape import shown_error, shown_uri
from builder.runs.owners import LOCAL_OWNER, owned_name, owner_of
from builder.runs.summary import shown_dataset_options
from builder.tracking_destinations import (  # where runs may be logged
    ENV_URI,
    check_destination,
    internal_place,
    resolve_tracking,
)
from builder.training.callbacks import Callback
from builder.training.run_folder import read_json_file
from builder.training.run_status import RunStatus, is_live

ENV_EXPERIMENT = "LAYERLAB_MLFLOW_EXPERIMENT"
DEFAULT_EXPERIMENT = "LayerLab"
TAG_RUN = "layerlab.run_id"
TAG_STUDY = "layerlab.study"
TAG_STUDY_PARENT = "layerlab.study_parent"
_warned: set[str] = set()


class TrackingWarning(UserWarning):
    """MLflow could not be reached or written; the run continues in LayerLab's store."""


def _warn(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, TrackingWarning, stacklevel=3)


def _bounded_http() -> None:
    """An unreachable server must cost seconds, not MLflow's default minutes of retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")




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
        if workspace is not None and where and internal_place(where, workspace) is not None:
            raise LayerLabError(f"MLflow would write a run's artefacts into LayerLab's own files; received: the "
                                f"experiment {name!r} at {shown_uri(uri)}. Fix: give the experiment an artefact "
                                "location outside the workspace")

    def find(self, tag: str, value: str) -> str | None:
        """The id of the MLflow run carrying ``tag = value``, or None."""
        safe = str(value).replace("'", "")
        runs = self.client.search_runs([self.experiment_id], f"tags.`{tag}` = '{safe}'", max_results=1)
        return runs[0].info.run_id if runs else None

    def study_key(self, study: str, owner: str = LOCAL_OWNER) -> str:
        """The tag that names ``owner``'s study ``study`` in the tracker: study names are per owner (two people's
        studies of one name in one tracker never share a parent run), so an app owner's is an opaque digest of its
        storage name (:func:`builder.runs.owners.owned_name`, as :func:`builder.search.storage.study_key`), which
        names neither the owner's id nor its folder; the command line's ``local`` user keeps the bare name."""
        if owner == LOCAL_OWNER:
            return study
        if self.workspace is None:
            raise LayerLabError("an app owner's study is tracked with its workspace; received: a tracker without "
                                "one. Fix: pass Tracker(uri, workspace=...)")
        key = owned_name(self.workspace, owner, study)
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
    return {k: float(n) for k, v in pairs.items() if (n := records.number(v)) is not None}


def eval_metrics(test: dict | None) -> dict[str, float]:
    """The scalar test metrics as ``test_<name>``."""
    return {f"test_{k}": float(n) for k, v in (test or {}).items() if (n := records.number(v)) is not None}


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
MLFLOW_RUN_ID = re.compile(r"[0-9a-f]{32}")  # an MLflow run id (a uuid4's hex)


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
        data = read_json_file(folder.tracking)  # bounded: the run's job wrote its folder
        entry = data.get(shown_uri(uri)) if isinstance(data, dict) else None
        if not isinstance(entry, dict):
            return cls()
        mid, steps = entry.get("mlflow_run_id"), entry.get("steps")
        return cls(mlflow_run_id=mid if isinstance(mid, str) and MLFLOW_RUN_ID.fullmatch(mid) else None,
                   params=entry.get("params") is True, test=entry.get("test") is True,
                   artifacts=entry.get("artifacts") is True,
                   steps=[n for n in steps if isinstance(n, int) and not isinstance(n, bool)][:100_000]
                   if isinstance(steps, list) else [],
                   status=records.text(entry["status"]) if isinstance(entry.get("status"), str) else None,
                   error=records.text(entry["error"]) if isinstance(entry.get("error"), str) else None)

    def save(self, folder, uri: str) -> None:
        """Record this state for tracker ``uri`` (atomic; other trackers' entries kept) in ``folder``, one the store
        opened to write (``RunStore.folder(run_id, write=True)``; AccessDenied for one opened to read)."""
        path = folder.to_write().tracking
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        data[shown_uri(uri)] = asdict(self)
        write_atomic(path, json.dumps(data), "the tracking state")


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
        _warn(f"uri:{self.uri}:{self.run_id}", f"MLflow tracking at {shown_uri(self.uri)} is unavailable "
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
            self.state.save(self.store.folder(self.run_id, write=True), self.uri)

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
    actor may read are exported (:mod:`builder.data.access`); what reached the tracker is recorded in the folders of
    those it controls only (a reader, in shared mode or a teacher, writes nothing into another's run).

    Returns:
        One dict per run: ``{"run_id", "mlflow_run_id", "status": "exported" | "repaired" | "complete" | "live"}``.

    Raises:
        LayerLabError: no tracking URI, a destination not allowed, mlflow missing, or the tracker cannot be reached.
    """
    # the runs the store's actor may read (builder.data.access): every id checked before anything is written, an
    # unknown and another's answered alike ("no run X of yours")
    ids = list(run_ids or []) or [r["id"] for r in reversed(store.list_runs(limit=100_000))]
    runs = [store.get(rid) for rid in ids]
    owner = check_acting(store.actor, owner) if owner else (store.actor.owner if store.actor is not None
                                                             else LOCAL_OWNER)  # never another's destination
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
        raise LayerLabError(f"cannot reach MLflow at {shown_uri(uri)}; received: {shown_error(e)}. Fix: check the URI "
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
        with contextlib.suppress(AccessDenied):  # the record is written into the run: a reader exports, keeps nothing
            state.save(store.folder(run["id"], write=True), uri)
        what = "exported" if not existing else "repaired" if wrote else "complete"
        out.append({"run_id": run["id"], "mlflow_run_id": state.mlflow_run_id, "status": what})
    return out


__all__ = ["MlflowCallback", "Tracker", "TrackingState", "TrackingWarning", "sync_run", "tracking_state",
           "attach_tracking", "export_runs", "run_params", "epoch_metrics", "eval_metrics", "run_tags", "RETRY_EPOCHS"]
