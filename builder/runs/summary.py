"""What the pages show about runs, datasets, devices and predictions, computed without Streamlit.

The pages call these and render what comes back: a run's overview row (parameters, best epoch, duration,
key settings), a one-line label that tells runs apart, the run of the project on the canvas, the devices to
train on, and a model's predictions with their confidence. Example::

    >>> run_label(store.get(run_id))                                          # doctest: +SKIP
    'my cnn · digits · lr 0.001 · 20 ep · bs 64 · best accuracy 0.981 · …2ecbfd'
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the Build page reads runs through this module without importing torch
    import torch

from builder.errors import DatasetError, LayerLabError
from builder.runs.store import LIVE_STATUSES, RunStore, graph_hash

FINAL = ("finished", "stopped", "failed", "interrupted")


def best_epoch(epochs: list[dict]) -> dict:
    """The epoch with the lowest finite validation loss: ``{epoch, val_loss, val_metric, metric_name}`` or {}."""
    vals = [e for e in epochs if isinstance(e.get("val_loss"), (int, float)) and math.isfinite(e["val_loss"])]
    if not vals:
        return {}
    b = min(vals, key=lambda e: e["val_loss"])
    return {"epoch": b.get("epoch"), "val_loss": b.get("val_loss"), "val_metric": b.get("val_metric"),
            "metric_name": b.get("metric_name")}


def duration_s(run: dict) -> float | None:
    """Seconds from start (or creation) to finish (or last update); None when unknown."""
    start = run.get("started_at") or run.get("created_at")
    end = run.get("finished_at") or run.get("updated_at")
    try:
        return max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    except (TypeError, ValueError):
        return None


def run_overview(store: RunStore, run: dict) -> dict:
    """Extra facts about a run for tables: ``params``, ``config``, ``dataset_info``, ``dataset_options``,
    ``duration_s``, ``epochs`` (the per-epoch curve) and ``best`` (see :func:`best_epoch`)."""
    from builder.graph.project import load_project
    from builder.graph.shapes import infer_shapes

    out: dict[str, Any] = {"params": None, "best": {}, "duration_s": None, "epochs": []}
    try:
        full = store.get(run["id"])
        out["params"] = infer_shapes(load_project(full["project"]).graph).total_params
        out["config"] = full.get("config") or {}
        out["dataset_info"] = full.get("dataset_info") or {}
        out["dataset_options"] = full.get("dataset_options") or {}
        out["duration_s"] = duration_s(full)
    except (LayerLabError, ValueError, TypeError, KeyError):
        pass
    try:
        out["epochs"] = store.metrics(run["id"], "epoch")
    except LayerLabError:
        out["epochs"] = []
    out["best"] = best_epoch(out["epochs"])
    return out


def dataset_label(run: dict) -> str:
    """The dataset of a run as shown to people: the name, or ``csv: file.csv`` for an upload."""
    name = run.get("dataset_name") or "—"
    if name in ("csv", "image_folder", "images"):
        path = (run.get("dataset_options") or {}).get("path")
        return f"{name}: {Path(str(path)).name}" if path else name
    return str(name)


def run_label(run: dict, best: dict | None = None) -> str:
    """One line telling a run apart: name, dataset, lr, epochs, batch size, best metric, end of its id."""
    cfg = run.get("config") or {}
    bits = [str(run.get("name") or "run"), dataset_label(run)]
    if cfg.get("lr") is not None:
        bits.append(f"lr {cfg['lr']:g}")
    if cfg.get("epochs") is not None:
        bits.append(f"{cfg['epochs']} ep")
    if cfg.get("batch_size") is not None:
        bits.append(f"bs {cfg['batch_size']}")
    best = best if best is not None else run.get("best") or {}
    v = best.get("val_metric")
    if isinstance(v, (int, float)) and math.isfinite(v):
        bits.append(f"best {best.get('metric_name') or 'metric'} {v:.3f}")
    bits.append(f"…{str(run.get('id', ''))[-6:]}")
    return " · ".join(bits)


def runs_of_graph(store: RunStore, graph: Any, owner: str | None, limit: int = 200) -> list[dict]:
    """An owner's runs (all owners for None) of this very graph (same :func:`graph_hash`), newest first."""
    h = graph_hash(graph)
    return [r for r in store.list_runs(limit=limit, owner=owner) if r.get("graph_hash") == h]


def current_run(store: RunStore, graph: Any, owner: str | None) -> dict | None:
    """The run the Train page shows for the canvas: the owner's live run of this graph, else the newest one."""
    runs = runs_of_graph(store, graph, owner)
    live = [r for r in runs if r["status"] in LIVE_STATUSES]
    return (live or runs or [None])[0]


def finished_run(store: RunStore, graph: Any, owner: str | None) -> dict | None:
    """The newest finished run of this graph with weights on disk (what Build › Weights exports), or None."""
    for r in runs_of_graph(store, graph, owner):
        if r["status"] == "finished" and store.weights_path(r["id"]).is_file():
            return r
    return None


def dataset_spec_of_run(run: dict) -> dict | None:
    """The Data page's dataset choice that reproduces a run's dataset (None when the run names none)."""
    name, opts = run.get("dataset_name"), dict(run.get("dataset_options") or {})
    if name == "csv" and opts.get("path"):
        return {"kind": "csv", "name": Path(str(opts["path"])).name, "file": opts["path"],
                "target": opts.get("target"), "task": opts.get("task")}
    if name in ("image_folder", "images") and opts.get("path"):
        size = opts.get("size")
        size = (size or [32])[0] if isinstance(size, list) else int(size or 32)
        return {"kind": "images", "name": Path(str(opts["path"])).name, "file": opts["path"], "size": size}
    if name:
        return {"kind": "builtin", "name": name, "options": {k: v for k, v in opts.items() if k not in ("seed", "task")}}
    return None


def device_options() -> list[tuple[str, str]]:
    """(value, label) pairs for a device picker, naming GPUs where present."""
    import torch

    opts = [("auto", "Auto")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            opts.append((f"cuda:{i}", f"GPU {i}: {torch.cuda.get_device_name(i)}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        opts.append(("mps", "Apple GPU (MPS)"))
    opts.append(("cpu", "CPU"))
    return opts


def fit_dataset(model: torch.nn.Module, ds: Any) -> Any:
    """The dataset shaped for the model's Input (flattened for a vector Input). Raises DatasetError."""
    shapes = getattr(model, "layerlab_input_shapes", {}) or {}
    if len(shapes) != 1:
        return ds
    want = tuple(next(iter(shapes.values())))
    have = tuple(ds.info.input_shape)
    if want == have:
        return ds
    if want == (int(math.prod(have)),) and ds.info.input_dtype == "float32":
        return ds.flattened()
    raise DatasetError(f"the dataset {ds.info.name!r} gives inputs of shape {list(have)} but the model's "
                       f"Input expects {list(want)}; pick the run's own dataset on the Data page")


def predictions(model: torch.nn.Module, X: torch.Tensor, task: str,
                batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, conf) per sample: class and probability for classification (a single logit is P(class 1) >
    0.5), zeros and the predicted value for regression."""
    import torch

    from builder.interpret.attributions import eval_mode, predict

    with torch.no_grad(), eval_mode(model):
        if task in ("multiclass", "binary"):
            out = model(X[:1])
            if out.dim() == 2 and out.shape[1] == 1:  # one logit
                p = torch.sigmoid(torch.cat([model(X[i:i + batch]) for i in range(0, len(X), batch)])[:, 0])
                return (p > 0.5).long(), torch.where(p > 0.5, p, 1 - p)
        else:
            out = torch.cat([model(X[i:i + batch]) for i in range(0, len(X), batch)])
            return torch.zeros(len(X), dtype=torch.long), out.flatten(1)[:, 0]
    return predict(model, X)


__all__ = ["best_epoch", "duration_s", "run_overview", "dataset_label", "run_label", "runs_of_graph", "current_run",
           "finished_run", "dataset_spec_of_run", "device_options", "fit_dataset", "predictions"]
