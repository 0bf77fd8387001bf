"""Runs in MLflow: every LayerLab run also logged to an MLflow tracking server when one is configured.

Configured by ``MLFLOW_TRACKING_URI`` (also set by ``--mlflow URI`` and by the app's setting through
:func:`set_tracking_uri`, so job processes inherit it). :func:`attach_tracking` gives the pipeline a
:class:`MlflowCallback` that logs a run's parameters (training settings, dataset, every node parameter as
``node.<id>.<param>``) at the start, its per-epoch metrics live, and at the end its test metrics and
artefacts (project JSON, model card, weights, the exported ``.py``). Search trials (runs tagged with a
study) are nested under one parent run per study. :func:`export_runs` copies runs already in the store
(``layerlab runs export-mlflow``).

A tracker that is missing (``mlflow`` not installed) or unreachable never breaks training: one warning,
then the run goes on in LayerLab's store only. Needs the ``layerlab[mlflow]`` extra (``mlflow-skinny``
with SQLAlchemy is enough for ``sqlite:///`` and ``http(s)://`` trackers; the full ``mlflow`` works too).
Example::

    # not a doctest (needs files or training): run by tests/runs/test_tracking.py
    set_tracking_uri("sqlite:///mlflow.db")
    run_training(load_template("mlp"), "moons", {"epochs": 3}, store=store)
    export_runs(store, None)
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from builder.escape import resolves_inside
from builder.runs.status import RunStatus, is_live
from builder.runs.summary import shown_dataset_options
from builder.training.callbacks import Callback

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
    """The tracking URI in force: ``flag``, else ``$MLFLOW_TRACKING_URI``, else None (no tracking)."""
    uri = flag or os.environ.get(ENV_URI) or None
    return uri.strip() or None if uri else None


def set_tracking_uri(uri: str | None) -> None:
    """Turn tracking on (or off with None) for this process and the job processes it starts."""
    if uri:
        os.environ[ENV_URI] = uri.strip()
    else:
        os.environ.pop(ENV_URI, None)


def check_uri(uri: str, workspace: str | Path) -> str:
    """A tracking URI a (possibly shared) app may set: ``http(s)://``, or ``sqlite:///`` with the database
    inside the workspace (a relative path is taken relative to it). Returns the URI to use.

    Raises:
        LayerLabError: another scheme, or a database path outside the workspace.
    """
    from builder.errors import LayerLabError

    uri = (uri or "").strip()
    if re.match(r"^https?://[^\s]+$", uri):
        return uri
    if uri.startswith("sqlite:///"):
        ws = Path(workspace).expanduser().resolve()
        raw = Path(uri[len("sqlite:///"):])
        db = (raw if raw.is_absolute() else ws / raw).resolve()
        if resolves_inside(db, ws) and db.suffix == ".db":
            return f"sqlite:///{db}"
        raise LayerLabError(f"an MLflow SQLite database set in the app must be a .db file inside the workspace; "
                            f"received: {uri[:120]!r}. Fix: e.g. sqlite:///mlflow.db (kept in {ws})")
    raise LayerLabError(f"the MLflow tracking URI must start with http://, https:// or sqlite:///; received: "
                        f"{_redact(uri)[:120]!r}. Fix: e.g. http://mlflow.example.org:5000 or sqlite:///mlflow.db")


def _warn(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, TrackingWarning, stacklevel=3)


def _bounded_http() -> None:
    """An unreachable server must cost seconds, not MLflow's default minutes of retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


def _redact(uri: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", uri)


class Tracker:
    """A thin wrapper over ``MlflowClient`` for one tracking URI and experiment.

    Raises:
        ImportError: mlflow is not installed. Other exceptions: the tracker cannot be reached.
    """

    def __init__(self, uri: str, experiment: str | None = None):
        _bounded_http()
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        name = experiment or os.environ.get(ENV_EXPERIMENT) or DEFAULT_EXPERIMENT
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            self.experiment_id = self.client.create_experiment(name, artifact_location=_artifact_root(uri))
        else:
            self.experiment_id = exp.experiment_id

    def find(self, tag: str, value: str) -> str | None:
        """The id of the MLflow run carrying ``tag = value``, or None."""
        safe = str(value).replace("'", "")
        runs = self.client.search_runs([self.experiment_id], f"tags.`{tag}` = '{safe}'", max_results=1)
        return runs[0].info.run_id if runs else None

    def study_parent(self, study: str) -> str:
        """The parent run of a study (created on first use)."""
        rid = self.find(TAG_STUDY_PARENT, study)
        if rid is None:
            rid = self.client.create_run(self.experiment_id, run_name=f"study {study}",
                                         tags={TAG_STUDY_PARENT: study, TAG_STUDY: study}).info.run_id
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
            mtags["mlflow.parentRunId"] = self.study_parent(str(study))
        r = self.client.create_run(self.experiment_id, run_name=run.get("name") or run["id"], tags=mtags)
        return r.info.run_id

    def log_params(self, mlflow_id: str, params: dict[str, Any]) -> None:
        """Log parameters (a value already logged differently, e.g. changed on resume, is kept as it was)."""
        from mlflow.entities import Param

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
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, int(step)) for k, v in metrics.items()]
        if items:
            self.client.log_batch(mlflow_id, metrics=items)

    def log_artifacts(self, mlflow_id: str, files: list[Path]) -> None:
        for f in files:
            if f.is_file():
                self.client.log_artifact(mlflow_id, str(f))

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


def _log_end(tracker: Tracker, mlflow_id: str, store, run_id: str) -> None:
    run = store.get(run_id)
    tracker.log_metrics(mlflow_id, eval_metrics(run.get("test_metrics")), step=int(run.get("epochs_done") or 0))
    folder = store.folder(run_id)
    files = [folder.project, folder.model_card, folder.weights]
    with tempfile.TemporaryDirectory(prefix="layerlab-mlflow-") as tmp:
        try:
            from builder.graph.project import load_project
            from builder.interchange.python_export import export_python

            py = Path(tmp) / "model.py"
            py.write_text(export_python(load_project(run["project"])), encoding="utf-8")
            files.append(py)
        except Exception as e:  # an export problem must not lose the other artefacts
            _warn(f"export:{run_id}", f"MLflow: model.py of run {run_id} not exported: {e}")
        tracker.log_artifacts(mlflow_id, files)
    tracker.end(mlflow_id, run["status"])


# ------------------------------------------------------------------------------------ live callback
class MlflowCallback(Callback):
    """Trainer callback mirroring one store run into MLflow; any tracker error disables it with a warning."""

    def __init__(self, store, run_id: str, uri: str):
        self.store, self.run_id, self.uri = store, run_id, uri
        self.tracker: Tracker | None = None
        self.mlflow_id: str | None = None

    def _fail(self, e: Exception) -> None:
        self.tracker = None
        _warn(f"uri:{self.uri}:{type(e).__name__}", f"MLflow tracking at {_redact(self.uri)} is unavailable "
              f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); run {self.run_id} is kept "
              "in LayerLab's store only")

    def on_train_begin(self, trainer) -> None:
        """Create (or find again, on resume) the MLflow run and log the parameters."""
        try:
            self.tracker = Tracker(self.uri)
            run = self.store.get(self.run_id)
            self.mlflow_id = self.tracker.start(run, run_tags(self.store, run))
            self.tracker.log_params(self.mlflow_id, run_params(run))
        except Exception as e:  # unreachable server, bad URI, missing driver: never break training
            self._fail(e)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        """Log this epoch's metrics."""
        if self.tracker is None:
            return None
        try:
            self.tracker.log_metrics(self.mlflow_id, epoch_metrics(logs), step=int(logs.get("epoch", epoch + 1)))
        except Exception as e:
            self._fail(e)
        return None

    def on_train_end(self, trainer, result) -> None:
        """Log test metrics and artefacts, and end the MLflow run with the run's status."""
        if self.tracker is None:
            return
        try:
            _log_end(self.tracker, self.mlflow_id, self.store, self.run_id)
        except Exception as e:
            self._fail(e)


def attach_tracking(store, run_id: str | None) -> list[Callback]:
    """The callbacks the pipeline adds for a stored run: an :class:`MlflowCallback` when a tracking URI is set
    and mlflow is installed (else a warning), nothing otherwise."""
    uri = tracking_uri()
    if not uri or store is None or run_id is None:
        return []
    try:
        import mlflow  # noqa: F401  (~1.5 s, only when tracking is on)
    except ImportError:
        _warn("missing", f"{ENV_URI} is set but mlflow is not installed (pip install 'layerlab[mlflow]'); runs "
              "are kept in LayerLab's store only")
        return []
    return [MlflowCallback(store, run_id, uri)]


# ------------------------------------------------------------------------------------------ export
def export_runs(store, run_ids: list[str] | None, uri: str | None = None, *, force: bool = False) -> list[dict]:
    """Copy runs from the store to MLflow (all when ``run_ids`` is empty): parameters, every epoch's metrics,
    test metrics, artefacts; trials nested under their study. A run already in MLflow is skipped unless
    ``force``.

    Returns:
        One dict per run: ``{"run_id", "mlflow_run_id", "status": "exported" | "skipped" | "live"}``.

    Raises:
        LayerLabError: no tracking URI, mlflow missing, or the tracker cannot be reached.
    """
    from builder.errors import LayerLabError

    uri = tracking_uri(uri)
    if not uri:
        raise LayerLabError(f"no MLflow tracker; received: neither --mlflow nor {ENV_URI}. Fix: pass --mlflow "
                            "sqlite:///mlflow.db or set MLFLOW_TRACKING_URI")
    try:
        tracker = Tracker(uri)
    except ImportError:
        raise LayerLabError("mlflow is not installed; received: an export request. Fix: pip install "
                            "'layerlab[mlflow]'") from None
    except Exception as e:
        raise LayerLabError(f"cannot reach MLflow at {_redact(uri)}; received: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200] if str(e) else ''}. Fix: check the URI and the server") from None
    ids = list(run_ids or []) or [r["id"] for r in reversed(store.list_runs(limit=100_000))]
    out = []
    for rid in ids:
        run = store.get(rid)
        if is_live(run["status"]):
            out.append({"run_id": run["id"], "mlflow_run_id": None, "status": "live"})
            continue
        existing = tracker.find(TAG_RUN, run["id"])
        if existing and not force:
            out.append({"run_id": run["id"], "mlflow_run_id": existing, "status": "skipped"})
            continue
        if existing:  # --force: replace the earlier copy rather than doubling its curves
            tracker.client.delete_run(existing)
        mid = tracker.start(run, run_tags(store, run))
        tracker.log_params(mid, run_params(run))
        for ev in store.metrics(run["id"], "epoch"):
            tracker.log_metrics(mid, epoch_metrics(ev), step=int(ev.get("epoch", 0)))
        _log_end(tracker, mid, store, run["id"])
        out.append({"run_id": run["id"], "mlflow_run_id": mid, "status": "exported"})
    return out


__all__ = ["check_uri", "MlflowCallback", "Tracker", "TrackingWarning", "attach_tracking", "export_runs", "tracking_uri",
           "set_tracking_uri", "run_params", "epoch_metrics", "eval_metrics", "run_tags"]
