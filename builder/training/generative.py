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

from builder._moved import moved_name
from builder.graph.project import load_project

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


__all__ = ["read_samples", "vae_nodes"]


def __getattr__(name: str):  # vae_probe moved up to builder.interpret.run_views (builder/_moved.py)
    return moved_name(__name__, name)
