"""What a generative run shows (issue 18): a generator's samples per epoch, a VAE's reconstructions and latent codes.

The trainer (:mod:`builder.training.multi`) keeps a generator's samples on fixed noise per epoch in the run's
``samples.npz``; :func:`read_samples` reads them back in epoch order. For a VAE (a graph with a
``Reparameterize`` node) :func:`vae_probe` runs a finished run's model in eval mode (z = μ) on test samples and
returns their latent means, labels, inputs and reconstructions (the input of the loss compared with the input,
through a sigmoid when that loss is a BCE with logits). The Train page draws both (``app_pages/generative_view``).

Example::

    >>> from builder import load_template
    >>> vae_nodes(load_template("vae"))
    ('mu', 'recon_logits', True)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from builder.errors import RunStoreError, TrainingError
from builder.graph.project import Edge, Node, Project, load_project

_EPOCH = re.compile(r"epoch_(\d+)")


def read_samples(path: str | Path) -> dict[int, np.ndarray]:
    """A run's ``samples.npz`` as ``{epoch: samples}`` in epoch order; empty when the file is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with np.load(path) as f:
            out = {int(m.group(1)): f[k] for k in f.files if (m := _EPOCH.fullmatch(k))}
    except (OSError, ValueError, EOFError):
        return {}
    return dict(sorted(out.items()))


def vae_nodes(project: Any) -> tuple[str, str, bool] | None:
    """``(latent mean node, reconstruction node, through a sigmoid)`` of a VAE project, or None when the graph has
    no ``Reparameterize`` node or no loss comparing a value with the Input."""
    g = load_project(project).graph
    types = {n.id: n.type for n in g.nodes}
    rep = next((n.id for n in g.nodes if n.type == "Reparameterize"), None)
    if rep is None:
        return None
    mu = next((e.source for e in g.edges if e.target == rep and e.target_port == "mu"), None)
    inputs = {n.id for n in g.nodes if n.type == "Input"}
    inputs |= {n.id for n in g.nodes if n.type == "Target" and n.params.get("source") == "input"}
    for n in g.nodes:
        if n.type in ("BCEWithLogitsLoss", "MSELoss", "L1Loss", "HuberLoss"):
            src = {e.target_port: e.source for e in g.edges if e.target == n.id}
            if src.get("target") in inputs and src.get("input") and mu:
                return mu, src["input"], types[n.id] == "BCEWithLogitsLoss"
    return None


def vae_probe(store: Any, run_id: str, count: int = 500, shown: int = 16) -> dict[str, np.ndarray]:
    """A VAE run's latent means (``latent``, shape (n, d)) and ``labels`` of up to ``count`` test samples, and
    ``inputs``/``recons`` of the first ``shown`` (shaped like the dataset's samples). Raises TrainingError for a
    project that is not a VAE and RunStoreError for a run without weights."""
    import torch

    from builder.graph.compile import compile_graph
    from builder.runs.pipeline import load_run_dataset
    from builder.training.objectives import training_graph
    from builder.training.weights import read_weights

    run = store.get(run_id)
    project: Project = load_project(run["project"])
    found = vae_nodes(project)
    if found is None:
        raise TrainingError(f"reconstructions and latent codes need a VAE (a Reparameterize node and a loss against "
                            f"the input); received: run {run_id}. Fix: train the vae template")
    mu, recon, sigmoid = found
    wpath = store.weights_path(run_id)
    if not wpath.is_file():
        raise RunStoreError(f"run {run_id} ({run['status']}) has no final weights yet; received: no weights file. "
                            "Fix: wait for it to finish")
    from builder.data.fit import fit_dataset

    ds = fit_dataset(project.graph, load_run_dataset(store, run))
    graph = training_graph(project.graph)
    for nid in (mu, recon):
        graph.nodes.append(Node(id=f"probe_{nid}", type="Output"))
        graph.edges.append(Edge(source=nid, target=f"probe_{nid}"))
    model = compile_graph(graph)
    state, _ = read_weights(wpath)
    model.load_state_dict(state, strict=False)
    model.eval()
    split = ds.test if len(ds.test) else ds.val
    n = min(count, len(split))
    idx = torch.arange(n)
    x = split.batch(idx)
    feeds = [x if (nid in {nd.id for nd in project.graph.nodes if nd.type == "Input"})
             else torch.zeros((n, *model.layerlab_input_shapes[nid])) for nid in model.layerlab_inputs]
    with torch.no_grad():
        outs = model(*feeds)
    outs = dict(zip(model.layerlab_outputs, (outs,) if isinstance(outs, torch.Tensor) else outs, strict=True))
    rec = outs[f"probe_{recon}"]
    rec = torch.sigmoid(rec) if sigmoid else rec
    k = min(shown, n)
    shape = tuple(ds.info.input_shape)
    return {"latent": outs[f"probe_{mu}"].reshape(n, -1).numpy(), "labels": split.y[:n].reshape(-1).numpy(),
            "inputs": x[:k].reshape(k, *shape).numpy(), "recons": rec[:k].reshape(k, *shape).numpy()}


__all__ = ["read_samples", "vae_nodes", "vae_probe"]
