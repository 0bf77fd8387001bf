"""What the pages show about runs, datasets, devices and predictions, computed without Streamlit.

The pages call these and render what comes back: a run's overview row (parameters, best epoch, duration,
key settings), a one-line label that tells runs apart, the run of the project on the canvas, the devices to
train on, and a model's predictions with their confidence. Example::

    >>> run = {"id": "20261122-000000-abcdef", "name": "net", "dataset_name": "moons",
    ...        "config": {"lr": 0.01, "epochs": 5, "batch_size": 32}}  # a row of store.get(run_id)
    >>> run_label(run, {"epoch": 3, "val_metric": 0.9, "metric_name": "accuracy"})
    'net · moons · lr 0.01 · 5 ep · bs 32 · best accuracy 90.0% · …abcdef'
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import LayerLabError
from builder.graph.report import human_number
from builder.runs.owners import LOCAL_OWNER, owner_of, upload_dir
from builder.runs.owners import label as owner_label
from builder.runs.run_time import stamp
from builder.runs.store import Run, RunStore, graph_hash
from builder.training.lineage import BASELINE_TAG, baseline_tag
from builder.training.metrics_units import metric_in_units, metric_label, metric_text
from builder.training.objectives import is_adversarial
from builder.training.run_status import RunStatus, is_live

if TYPE_CHECKING:
    from collections.abc import Mapping

    from builder.data.sources import DatasetSource


def best_epoch(epochs: list[dict]) -> dict:
    """The epoch with the lowest finite validation loss: ``{epoch, val_loss, val_metric, metric_name}`` or {}."""
    vals = [e for e in epochs if isinstance(e.get("val_loss"), (int, float)) and math.isfinite(e["val_loss"])]
    if not vals:
        return {}
    b = min(vals, key=lambda e: e["val_loss"])
    return {"epoch": b.get("epoch"), "val_loss": b.get("val_loss"), "val_metric": b.get("val_metric"),
            "metric_name": b.get("metric_name")}


def has_own_metric(metric_name: str | None) -> bool:
    """Whether a run's recorded metric is a figure of its own, not its loss again: a drawn objective without
    labels (GAN, VAE, an autoencoder; :mod:`builder.training.multi`) records its loss as ``metric_name`` "loss".

    >>> has_own_metric("accuracy"), has_own_metric("loss"), has_own_metric(None)
    (True, False, False)
    """
    return bool(metric_name) and metric_name != "loss"


def best_metric(best: Mapping[str, Any]) -> tuple[str, float] | None:
    """The best epoch's metric as shown beside its loss (``best``: :func:`best_epoch`): ``(name, value)``, or None
    when there is none to show: a run whose metric is its loss (:func:`has_own_metric`) or a value that is not a
    finite number.

    >>> best_metric({"val_metric": 0.9, "metric_name": "accuracy"}), best_metric({"val_metric": 1.96, "metric_name": "loss"})
    (('accuracy', 0.9), None)
    """
    v = (best or {}).get("val_metric")
    name = (best or {}).get("metric_name")
    if not has_own_metric(name) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return str(name), float(v)


def best_metric_text(run: Mapping[str, Any], best: Mapping[str, Any] | None = None, *, in_text: bool = False
                     ) -> str | None:
    """The best epoch's metric, named and in the target's units (:func:`metric_in_units`), written as every page
    writes a metric (:func:`~builder.training.metrics_units.metric_text`): ``Accuracy 90.0%``, ``MAE 42.73``,
    ``MAE 1.25 (scaled)``; None where there is none to show (:func:`best_metric`). ``in_text``: its name as inside a
    sentence (``accuracy 90.0%``).

    >>> best_metric_text({"dataset_info": {"target_std": [10.0]}}, {"val_metric": 0.5, "metric_name": "mae"})
    'MAE 5'
    >>> best_metric_text({}, {"val_metric": 0.8, "metric_name": "macro_f1"})
    'Macro F1 0.800'
    """
    shown = best_metric(best if best is not None else run.get("best") or {})
    if shown is None:
        return None
    value, scaled = metric_in_units(shown[0], shown[1], run.get("dataset_info"))
    return f"{metric_label(shown[0], in_text=in_text)} {metric_text(shown[0], value)}" + (" (scaled)" if scaled else "")


def epoch_figures(record: Mapping[str, Any], dataset_info: Mapping[str, Any] | None = None) -> dict[str, float]:
    """An epoch record's figures, each named by its split and metric (``record``: an epoch event or a run's
    ``final_metrics``): ``{"train loss": .., "val loss": .., "train accuracy": .., "val accuracy": ..}``, errors
    in the target's units (:func:`metric_in_units`); a run whose metric is its loss (:func:`has_own_metric`)
    names it once. The class page listed the raw keys: "train_metric 0.85 · val_metric 0.84 · eta_s 0.000".

    >>> epoch_figures({"epoch": 3, "train_loss": 0.3, "val_loss": 0.35, "train_metric": 0.9, "val_metric": 0.85,
    ...                "metric_name": "accuracy", "eta_s": 0.0})
    {'train loss': 0.3, 'val loss': 0.35, 'train accuracy': 0.9, 'val accuracy': 0.85}
    """
    name = record.get("metric_name")
    keys = [("train loss", "train_loss", "loss"), ("val loss", "val_loss", "loss")]
    if has_own_metric(name):
        keys += [(f"train {name}", "train_metric", str(name)), (f"val {name}", "val_metric", str(name))]
    out = {}
    for label, key, metric in keys:
        v = record.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[label] = metric_in_units(metric, float(v), dataset_info)[0]
    return out


def figures_on_test(run: Mapping[str, Any]) -> dict[str, float]:
    """A run's test split figures by metric name, errors in the target's units (:func:`metric_in_units`); the
    count, per-class tables and the confusion matrix left out. A class's run view listed a forecaster's test MAE
    in standard deviations (0.5) under the student's Test results, which say 5.

    >>> figures_on_test({"test_metrics": {"mae": 0.5, "r2": 0.9, "n": 12}, "dataset_info": {"target_std": [10.0]}})
    {'mae': 5.0, 'r2': 0.9}
    """
    out = {}
    for k, v in (run.get("test_metrics") or {}).items():
        if k != "n" and isinstance(v, (int, float)) and not isinstance(v, bool):  # a diverged run's nan too
            out[str(k)] = metric_in_units(str(k), float(v), run.get("dataset_info"))[0]
    return out


def best_loss_text(run: Mapping[str, Any], best: Mapping[str, Any] | None = None, digits: int = 4) -> str | None:
    """The best epoch's validation loss as a table shows it: ``0.1234``. A GAN's (networks trained against each
    other: :func:`~builder.training.objectives.is_adversarial`) is its networks' losses added, which need not fall
    and is no score of its samples: ``summed 1.8600`` (the Runs table called it "best val loss" like any other).
    None without a finite one.

    >>> best_loss_text({}, {"val_loss": 0.12345})
    '0.1235'
    >>> from builder.graph.templates import load_template
    >>> best_loss_text({"project": load_template("gan")}, {"val_loss": 1.86})
    'summed 1.8600'
    """
    v = (best if best is not None else run.get("best") or {}).get("val_loss")
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    project = run.get("project")
    summed = project is not None and is_adversarial(project)
    return ("summed " if summed else "") + f"{v:.{digits}f}"


def duration_s(run: dict) -> float | None:
    """Seconds the run spent running (not paused, stopped or queued: :func:`builder.runs.run_time.running_clock`); for a
    run recorded before that clock, from start (or creation) to finish (or last update); None when unknown."""
    env = run.get("environment") or {}
    if isinstance(env, dict) and ("run_s" in env or env.get("running_since")):
        total = float(env.get("run_s") or 0.0)
        if env.get("running_since"):  # running now (or, marked interrupted, until its last update)
            end = (datetime.now(timezone.utc).timestamp() if run.get("status") == RunStatus.RUNNING
                   else stamp(run.get("updated_at")))
            since = stamp(env["running_since"])
            if end is not None and since is not None:
                total += max(0.0, end - since)
        return total
    start = stamp(run.get("started_at") or run.get("created_at"))
    end = stamp(run.get("finished_at") or run.get("updated_at"))
    return None if start is None or end is None else max(0.0, end - start)


def run_overview(store: RunStore, run: Mapping[str, Any]) -> dict:
    """Extra facts about a run for tables: ``record`` (the full :class:`~builder.runs.record.Run`, read once: hand it
    on), ``params`` (:attr:`Run.params`: as recorded, else one analysis), ``config``, ``dataset_info``,
    ``dataset_options``, ``duration_s``, ``epochs`` (the per-epoch curve) and ``best`` (see :func:`best_epoch`)."""
    out: dict[str, Any] = {"record": None, "params": None, "best": {}, "duration_s": None, "epochs": []}
    try:
        full = out["record"] = store.get(run["id"])
        out["params"] = full.params
        out["config"] = full.get("config") or {}
        out["dataset_info"] = full.get("dataset_info") or {}
        out["dataset_options"] = shown_dataset_options(full)
        out["duration_s"] = duration_s(full)
    except (LayerLabError, ValueError, TypeError, KeyError):
        pass
    try:
        out["epochs"] = store.metrics(run["id"], "epoch")
    except LayerLabError:
        out["epochs"] = []
    out["best"] = best_epoch(out["epochs"])
    return out


def run_source(workspace: str | Path | None, run: dict) -> DatasetSource | None:
    """The dataset source a run recorded, read as its owner's: an upload path recorded before upload ids
    becomes the upload's id when it lies in the run owner's upload folder
    (:func:`builder.runs.owners.upload_dir`); a path recorded by the CLI's local user stays its command-line file.
    None when the run names no dataset."""
    from builder.data.sources import DatasetSource  # lazy: heavy (numpy)
    from builder.data.uploads import UploadFolder  # lazy: heavy (numpy)

    owner = owner_of(run)
    uploads = UploadFolder(upload_dir(workspace, owner)) if workspace is not None else None
    return DatasetSource.from_run(run, uploads, local=owner == LOCAL_OWNER)


def run_data(store: RunStore, run: Run, *, actor: Any = None) -> Path | DatasetSource | None:
    """What a run's dataset is loaded from (the one rule: :func:`builder.runs.pipeline.load_run_dataset` loads it,
    a prune job's door asks whether it is another person's upload): the snapshot saved in its folder, else its
    source as its owner's (:func:`run_source`); None when it names none. ``actor`` reads the folder (the store's
    own when None)."""
    snapshot = store.folder(run.id, actor=actor).dataset
    return snapshot if snapshot.is_file() else run_source(store.workspace, run)


def shown_dataset_options(run: dict) -> dict:
    """A run's dataset options as shown to people (model cards, tables, MLflow, ``runs show``): an upload as its
    name or id, never a path on the server (:meth:`builder.data.sources.DatasetSource.shown_options`)."""
    from builder.data.sources import DatasetSource  # lazy: heavy (numpy)

    src = DatasetSource.from_run(run)
    return src.shown_options() if src is not None else {}


def shown_record(workspace: str | Path, run: dict) -> dict:
    """A run's record as it is printed or exported whole (``layerlab runs list --json``, ``runs show --json``): every
    field of the row, its ``owner`` as people see owners (:func:`builder.runs.owners.label`, a keyed pseudonym,
    ``local`` for the command line's user), never the owner id: an anonymous owner's id is its browser's cookie, so
    whoever reads it can be that person.

    >>> import tempfile
    >>> rec = shown_record(tempfile.mkdtemp(), {"id": "r", "owner": "anon:" + "ab" * 16})
    >>> rec["owner"].startswith("anon-"), "abab" in rec["owner"]
    (True, False)
    """
    return {**dict(run), "owner": owner_label(workspace, owner_of(run))}


def dataset_label(run: dict) -> str:
    """The dataset of a run as shown to people: the name, or ``csv: file.csv`` for an upload (never a path)."""
    from builder.data.sources import DatasetSource  # lazy: heavy (numpy)

    src = DatasetSource.from_run(run)
    return src.display() if src is not None else "—"


def legend_label(run: dict, width: int = 28) -> str:
    """A run's name in a chart's legend, where several runs share a chart: its name (at most ``width``
    characters) and the time it was made, which tells apart runs of one name (a hash said nothing).

    >>> legend_label({"id": "20261128-081134-e00b10", "name": "Small CNN", "created_at": "2026-11-28T08:11:34+00:00"})
    'Small CNN · 08:11:34'
    >>> legend_label({"id": "20261128-081134-e00b10", "name": "x" * 40})[-10:]
    '… · e00b10'
    """
    name = str(run.get("name") or "run")
    name = name if len(name) <= width else name[:width - 1] + "…"
    made = stamp(run.get("created_at"))
    when = (datetime.fromtimestamp(made, timezone.utc).strftime("%H:%M:%S") if made is not None
            else str(run.get("id") or "")[-6:])
    return f"{name} · {when}"


def legend_labels(runs: list[dict]) -> dict[str, str]:
    """Each run's :func:`legend_label` by id, told apart by the end of its id where two would read the same (two
    runs of one name made in one second: a chart's legend, a table's columns).

    >>> made = "2026-11-28T08:11:34+00:00"
    >>> legend_labels([{"id": "x-aaaaaa", "name": "A", "created_at": made}, {"id": "x-bbbbbb", "name": "A",
    ...                "created_at": made}, {"id": "x-cccccc", "name": "B", "created_at": made}])
    {'x-aaaaaa': 'A · 08:11:34 · aaaaaa', 'x-bbbbbb': 'A · 08:11:34 · bbbbbb', 'x-cccccc': 'B · 08:11:34'}
    """
    labels = {r["id"]: legend_label(r) for r in runs}
    seen = Counter(labels.values())
    return {rid: f"{label} · {str(rid)[-6:]}" if seen[label] > 1 else label for rid, label in labels.items()}


def run_label(run: dict, best: dict | None = None, *, short_id: bool = True) -> str:
    """One line telling a run apart: name, dataset, lr, epochs, batch size, best metric, end of its id (not with
    ``short_id=False``: where one run is shown, named, a hash says nothing)."""
    cfg = run.get("config") or {}
    bits = [str(run.get("name") or "run"), dataset_label(run)]
    if cfg.get("lr") is not None:
        bits.append(f"lr {human_number(cfg['lr'])}")  # as the tables show it (``:g`` gave a searched 0.00643117)
    if cfg.get("epochs") is not None:
        bits.append(f"{cfg['epochs']} ep")
    if cfg.get("batch_size") is not None:
        bits.append(f"bs {cfg['batch_size']}")
    shown = best_metric_text(run, best, in_text=True)
    if shown:  # a GAN's or VAE's "metric" is its loss: nothing more to say
        bits.append(f"best {shown}")
    if short_id:
        bits.append(f"…{str(run.get('id', ''))[-6:]}")
    return " · ".join(bits)


def runs_of_graph(store: RunStore, graph: Any, owner: str | None, limit: int = 200) -> list[Run]:
    """An owner's runs (all owners for None) of this very graph (same :func:`graph_hash`), newest first."""
    key = graph_hash(graph)
    return [r for r in store.list_runs(limit=limit, owner=owner) if r.get("graph_hash") == key]


def current_run(store: RunStore, graph: Any, owner: str | None) -> Run | None:
    """The run the Train page shows for the canvas: the owner's live run of this graph, else the newest one."""
    runs = runs_of_graph(store, graph, owner)
    live = [r for r in runs if is_live(r["status"])]
    return (live or runs or [None])[0]


def has_trained(store: RunStore, owner: str | None) -> bool:
    """Whether the owner has started a training run (one that is not an import: an imported model's weights are a
    run of status ``imported``, and a newcomer who imported a model has still to meet Train)."""
    return bool(store.list_runs(owner=owner, not_status=RunStatus.IMPORTED, limit=1))


def finished_run(store: RunStore, graph: Any, owner: str | None) -> Run | None:
    """The newest finished run of this graph with weights on disk (what Build › Weights exports), or None."""
    for r in runs_of_graph(store, graph, owner):
        if r["status"] == RunStatus.FINISHED and store.folder(r["id"]).has_weights:
            return r
    return None


def dataset_spec_of_run(run: dict, workspace: str | Path | None = None) -> dict | None:
    """The Data page's dataset choice that reproduces a run's dataset (None when the run names none); an upload
    by its id (:func:`run_source`), never a path."""
    src = run_source(workspace, run)
    return src.to_spec() if src is not None else None


def opened_project(store: RunStore, run_id: str) -> tuple[Any, dict | None]:
    """Run ``run_id``'s project and the Data page's choice that reproduces its data, as the store's actor opens them
    on its canvas (Runs › Open on canvas). Its owner gets both whole (an upload by its id, :func:`dataset_spec_of_run`).
    Anyone else who reads it (shared mode, the teacher of its class) gets what a link of it carries
    (:func:`builder.data.sources.for_link`): no run id or class of the owner's, and of its data a built-in dataset
    only. The owner's upload id went onto the reader's canvas whole, and into the reader's autosave: it is the
    SHA-256 of the owner's file, which the Data page then quoted in its refusal ("no upload upload:<sha>.csv of
    yours"), so whoever held a copy of a file learnt that another person trained on it.

    Raises:
        AccessDenied: a run the actor may not read ("no run X of yours", as for an unknown id).
    """
    from builder.data.sources import for_link, travels  # lazy: heavy (numpy)

    run = store.get(run_id)  # a run the store's actor may read
    spec = dataset_spec_of_run(run, store.workspace)
    who = store.who()
    if who.system or owner_of(run) == who.owner:
        return run.project, spec
    return for_link(run.project)[0], spec if spec is not None and travels(spec) else None


def device_options() -> list[tuple[str, str]]:
    """(value, label) pairs for a device picker, naming GPUs where present."""
    import torch  # lazy: heavy (torch)

    opts = [("auto", "Auto")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            opts.append((f"cuda:{i}", f"GPU {i}: {torch.cuda.get_device_name(i)}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        opts.append(("mps", "Apple GPU (MPS)"))
    opts.append(("cpu", "CPU"))
    return opts


__all__ = ["best_epoch", "figures_on_test", "best_metric", "best_metric_text", "best_loss_text", "metric_in_units", "has_own_metric", "duration_s", "run_overview", "run_source", "run_data", "shown_dataset_options", "shown_record", "dataset_label", "run_label", "legend_label", "legend_labels", "runs_of_graph", "current_run", "has_trained",
           "finished_run", "dataset_spec_of_run", "opened_project", "device_options"]


def baseline_tags(store: RunStore, run: dict) -> dict | None:
    """A distilled run's tags with its student-alone baseline's test figures filled in from the baseline's own
    run when they were not known as the distilled run started (the Train page starts both jobs at once); the
    tags unchanged otherwise. For :func:`builder.training.lineage.baseline_line`."""

    tags = run.get("tags") or None
    base = (tags or {}).get(BASELINE_TAG)
    if not isinstance(base, dict) or set(base) != {"run"}:
        return tags
    try:
        other = store.get(str(base["run"]))  # the same owner's run: read with the reader's actor
    except LayerLabError:
        return tags
    return {**tags, **baseline_tag(other["id"], other.get("test_metrics"))} if other.get("test_metrics") else tags

