"""What a generative run shows (issue 18): a generator's samples per epoch, an autoencoder's or a VAE's
reconstructions and a VAE's latent codes.

The trainer (:mod:`builder.training.multi`) keeps a generator's samples on fixed noise per epoch in the run's
``samples.npz``; :func:`read_samples` reads them back in epoch order. :func:`reconstruction_nodes` says where a
network gives its input back: a VAE (a graph with a ``Reparameterize`` node, :func:`vae_nodes`) through the input
of the loss compared with the input (through a sigmoid when that loss is a BCE with logits), an autoencoder (a run
of task ``reconstruction``) through its output. :func:`builder.interpret.run_views.reconstruction_probe` runs a
finished run's model there; the Train page draws both (``app_pages/generative_view``).

Example::

    >>> from builder import load_template
    >>> vae_nodes(load_template("vae"))
    ('mu', 'recon_logits', True)
    >>> reconstruction_nodes(load_template("autoencoder"), "reconstruction")
    (None, None, False)
    >>> reconstruction_nodes(load_template("mlp"), "multiclass") is None
    True
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from builder._moved import moved_name
from builder.data.npz import npz_sizes, read_npz
from builder.graph.project import load_project

_EPOCH = re.compile(r"epoch_(\d+)")


MAX_SAMPLE_BYTES = 2**28  # the grids read at once (the newest first): a job writes samples.npz, the server reads it


def read_samples(path: str | Path, limit: int = MAX_SAMPLE_BYTES) -> dict[int, np.ndarray]:
    """A run's ``samples.npz`` as ``{epoch: samples}`` in epoch order: the newest grids that fit in ``limit``
    bytes (:func:`builder.data.npz.read_npz`: the job wrote the file, and its model may have turned against its
    readers); empty when the file is missing, damaged or not as LayerLab writes it."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        sizes = {int(m.group(1)): n for k, n in npz_sizes(path).items() if (m := _EPOCH.fullmatch(k))}
        taken, room = set(), limit
        for epoch in sorted(sizes, reverse=True):
            if sizes[epoch] > room:
                break
            taken.add(f"epoch_{epoch}")
            room -= sizes[epoch]
        out = {int(k.split("_")[1]): v for k, v in read_npz(path, limit, keep=taken.__contains__).items()}
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


def reconstruction_nodes(project: Any, task: str | None) -> tuple[str | None, str | None, bool] | None:
    """Where a network gives its input back: a VAE's :func:`vae_nodes`; ``(None, None, False)`` for a network
    trained to give its input back (``task`` ``reconstruction``: an autoencoder), whose output is its
    reconstruction; None for any other network."""
    found = vae_nodes(project)
    if found is not None:
        return found
    return (None, None, False) if task == "reconstruction" else None


__all__ = ["read_samples", "reconstruction_nodes", "vae_nodes"]


def __getattr__(name: str):  # vae_probe: builder.interpret.run_views.reconstruction_probe (builder/_moved.py)
    return moved_name(__name__, name)
