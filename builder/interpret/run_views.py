"""Views of a finished run that run its model: data drift against it (:func:`drift_run`), an autoencoder's or a
VAE's reconstructions and a VAE's latent codes (:func:`reconstruction_probe`) and its score on a class's held-out
set (:func:`evaluate_holdout`).

Each builds and runs a user's model in the calling process: the pages ask the sandboxed model probe
(:class:`builder.jobs.probe.ModelProbe`), whose child calls these. The measures themselves live below, in the
stage of their data (:func:`builder.data.drift.check_drift`,
:func:`builder.training.generative.reconstruction_nodes`, :func:`builder.training.metrics.evaluate`). Example::

    # not a doctest (needs a trained run): run by tests/interpret/test_probe_runs.py
    report = drift_run(store, run_id, "new.csv")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from builder.data import fit_dataset, load_dataset, records
from builder.data.drift import DriftReport, check_drift
from builder.data.predictions import first_output
from builder.errors import LayerLabError, RunStoreError, TrainingError
from builder.graph.compile import compile_graph
from builder.graph.project import Edge, Node, Project
from builder.runs.pipeline import load_run, load_run_dataset, open_run
from builder.runs.store import RunStore
from builder.training.generative import reconstruction_nodes
from builder.training.metrics import evaluate
from builder.training.objectives import training_graph
from builder.training.weights import read_weights

__all__ = ["drift_run", "reconstruction_probe", "evaluate_holdout"]


def drift_run(store: Any, run_id: str, new: str | Path, *, alpha: float = 0.05) -> DriftReport:
    """:func:`check_drift` of new data (a CSV, or an image folder/.zip) against a finished run, with its model.

    Raises:
        RunStoreError, BudgetError: as open_run. DatasetError: as check_drift.
    """
    model, ds = open_run(store, store.get(run_id))
    return check_drift(ds, new, model=model, alpha=alpha)


def reconstruction_probe(store: Any, run_id: str, count: int = 500, shown: int = 16) -> dict[str, np.ndarray]:
    """A finished run's ``inputs`` and their ``recons``, the first ``shown`` test samples (shaped like the dataset's
    samples), for a network that gives its input back (:func:`reconstruction_nodes`): an autoencoder through its
    output, a VAE through its loss's input in eval mode (z = μ), with its ``latent`` means (shape (n, d)) and
    ``labels`` of up to ``count`` test samples. Raises TrainingError for any other network and RunStoreError for
    a run without weights."""
    run = store.get(run_id)
    project: Project = run.project
    task = run.dataset_info.get("task")
    found = reconstruction_nodes(project, task)
    if found is None:
        raise TrainingError(f"reconstructions need a network that gives its input back (an autoencoder, a VAE); "
                            f"received: run {run_id} of task {task or 'unknown'}. Fix: train the autoencoder or "
                            "the vae template")
    mu, recon, sigmoid = found
    wpath = store.weights_path(run_id)
    if not wpath.is_file():
        raise RunStoreError(f"run {run_id} ({run['status']}) has no final weights yet; received: no weights file. "
                            "Fix: wait for it to finish")
    ds = fit_dataset(project.graph, load_run_dataset(store, run))
    graph = training_graph(project.graph)
    for nid in (mu, recon):
        if nid is not None:
            graph.nodes.append(Node(id=f"probe_{nid}", type="Output"))
            graph.edges.append(Edge(source=nid, target=f"probe_{nid}"))
    model = compile_graph(graph)
    state, _ = read_weights(wpath)
    model.load_state_dict(state, strict=False)
    model.eval()
    split = ds.test if len(ds.test) else ds.val
    n = min(count if mu is not None else shown, len(split))
    idx = torch.arange(n)
    x = split.batch(idx)
    feeds = [x if (nid in {nd.id for nd in project.graph.nodes if nd.type == "Input"})
             else torch.zeros((n, *model.layerlab_input_shapes[nid])) for nid in model.layerlab_inputs]
    with torch.no_grad():
        outs = model(*feeds)
    outs = dict(zip(model.layerlab_outputs, (outs,) if isinstance(outs, torch.Tensor) else outs, strict=True))
    rec = outs[f"probe_{recon}"] if recon is not None else first_output(tuple(outs.values()))
    rec = torch.sigmoid(rec) if sigmoid else rec
    k = min(shown, n)
    shape = tuple(ds.info.flat_from or ds.info.input_shape)  # a picture read flat (an MLP autoencoder) as one
    out = {"inputs": x[:k].reshape(k, *shape).numpy(), "recons": rec[:k].reshape(k, *shape).numpy()}
    if mu is not None:
        out |= {"latent": outs[f"probe_{mu}"].reshape(n, -1).numpy(), "labels": split.y[:n].reshape(-1).numpy()}
    return out


def evaluate_holdout(store: RunStore, run_id: str, holdout: dict, metric: str) -> float | None:
    """Run ``run_id``'s model on the held-out test split and return ``metric`` (None when its weights or task do
    not fit the data). It builds and runs a user's model in the calling process: only the sandboxed model probe's
    child calls it (:meth:`builder.jobs.probe.ModelProbe.holdout`), never the server."""
    run = store.get(run_id)  # a run the store's actor may read: AccessDenied, never "does not fit"
    try:
        model, _ = load_run(store, run)
        graph = run.project.graph
        ds = fit_dataset(graph, load_dataset(holdout["dataset"], **holdout.get("options", {})))
        res = evaluate(model, ds.test.X, ds.test.y, ds.info.task, num_classes=ds.info.num_classes)
    except (LayerLabError, RuntimeError, ValueError, TypeError):  # weights of another shape, another task
        return None
    value = res.get(metric)
    return None if (n := records.number(value)) is None else float(n)
