"""Train page parts for drawn objectives (issue 18): each loss term's curve, a generator's sample grid per epoch
(fixed noise, so grids compare over time; live while training), an autoencoder's or a VAE's reconstructions and a
VAE's 2-D latent space."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app_pages.fmt import curve_mode, whole_epoch_ticks
from app_pages.style import error_md
from builder.errors import LayerLabError
from builder.escape import plotly_text
from builder.runs.record import Run
from builder.training.generative import read_samples, reconstruction_nodes
from builder.training.run_status import RunStatus

PALETTE = ["#6366f1", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#f97316",
           "#64748b"]


def mosaic(images: np.ndarray, cols: int = 8, pad: int = 1) -> np.ndarray:
    """Images (n, [1,] h, w) tiled into one 2-D array, ``cols`` per row, ``pad`` pixels apart (NaN: blank)."""
    imgs = np.asarray(images, dtype=float)
    if imgs.ndim == 2:  # flat samples: square when the size is a square
        side = int(math.isqrt(imgs.shape[1]))
        imgs = imgs.reshape(len(imgs), side, side) if side * side == imgs.shape[1] else imgs[:, None, :]
    if imgs.ndim == 4:
        imgs = imgs[:, 0]
    n, h, w = imgs.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan)
    for i, im in enumerate(imgs):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = im
    return out


def grid_figure(images: np.ndarray, title: str, cols: int = 8, height: int = 340) -> go.Figure:
    """A grid of greyscale samples as one heatmap (white background, dark ink like the digits)."""
    fig = go.Figure(go.Heatmap(z=mosaic(images, cols), colorscale="Greys", showscale=False, hoverinfo="skip",
                               zmin=0, zmax=1))
    fig.update_layout(title=dict(text=plotly_text(title), font=dict(size=14)), height=height, margin=dict(l=5, r=5, t=40, b=5),
                      xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"),
                      plot_bgcolor="white")
    return fig


def terms_figure(epochs: list[dict], x_range: list[float] | None = None, active: bool = False) -> go.Figure | None:
    """Each loss term's training mean per epoch (solid) and its validation value (dotted); None without terms.
    ``x_range``: the epoch axis of the page's other charts (the terms chart ran from epoch 1 above charts from 0);
    ``active``: whether the run still trains (markers for a short ended run and for one point: :func:`curve_mode`)."""
    names = list(dict.fromkeys(k for e in epochs for k in (e.get("terms") or {})))
    if not names:
        return None
    fig = go.Figure()
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        for key, dash, suffix in (("terms", "solid", ""), ("val_terms", "dot", " (val)")):
            pts = [(e["epoch"], (e.get(key) or {}).get(name)) for e in epochs]
            pts = [(x, y) for x, y in pts if isinstance(y, int | float) and math.isfinite(y)]
            if pts:
                fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode=curve_mode(len(pts), active),
                                         name=plotly_text(name) + suffix, line=dict(color=color, width=2, dash=dash)))
    fig.update_layout(title=dict(text="Loss terms", font=dict(size=14)), height=290,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="epoch", yaxis_title="loss",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1), uirevision="keep")
    if x_range is not None:
        fig.update_xaxes(range=x_range)
    return whole_epoch_ticks(fig)


def latent_figure(latent: np.ndarray, labels: np.ndarray, class_names: list | None = None) -> go.Figure:
    """A 2-D latent space, one colour per class."""
    fig = go.Figure()
    for i, c in enumerate(sorted(set(labels.tolist()))):
        m = labels == c
        name = plotly_text(class_names[c]) if class_names and 0 <= c < len(class_names) else str(int(c))
        fig.add_trace(go.Scattergl(x=latent[m, 0], y=latent[m, 1], mode="markers", name=name,
                                   marker=dict(size=6, color=PALETTE[i % len(PALETTE)], opacity=0.8)))
    fig.update_layout(title=dict(text="Latent space (test samples, z = μ)", font=dict(size=14)), height=380,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="z₁", yaxis_title="z₂")
    return fig


def _reconstructions(probe, store, run_id: str) -> dict:
    """The probe's reconstructions of a finished run, asked once per page session (a finished run's weights do
    not change; the probe's child answers in ~0.1 s once warm, a few seconds when it starts)."""
    cache = st.session_state.setdefault("ll_recon_view", {})
    if run_id not in cache:
        cache.clear()
        cache[run_id] = probe.reconstructions(store, run_id)
    return cache[run_id]


def shows_reconstructions(run: Run) -> bool:
    """Whether ``run`` is a finished network that gives its input back (an autoencoder, a VAE), whose
    reconstructions the Train page shows (:func:`reconstruction_part`)."""
    return run.status == RunStatus.FINISHED and reconstruction_nodes(run.project,
                                                                      run.dataset_info.get("task")) is not None


def render(run: Run, epochs: list[dict], active: bool, store, epoch: int | None = None, *,
           last: int | None = None, playing: bool = False, x_range: list[float] | None = None,
           terms: bool = True) -> None:
    """The parts that apply to ``run``: the sample grid, the loss terms, and for a finished VAE its
    reconstructions and (2-D latent) latent space (:func:`reconstruction_part`). ``epoch``: the epoch the page's
    replay shows (its one slider and Replay drive every chart, the grid included); None: the newest grid. ``last``: the run's last epoch and
    ``playing``: whether its replay plays, so that a grid of an earlier epoch says so (under "Finished" at 900x900
    the grid read "after epoch 2" while the replay's own bar was below the window). ``x_range``: the page's
    epoch axis, for the loss terms; ``terms`` False leaves them to :func:`terms_part` (the Train page draws them
    below its replay's slider, which sat under them, a screen below the grid it moves)."""

    cfg = {"displayModeBar": False, "staticPlot": active}
    grids = read_samples(store.folder(run["id"]).samples)
    if grids:
        keys = [k for k in grids if epoch is None or k <= epoch] or list(grids)[:1]
        key = keys[-1]  # the newest grid at or before the epoch shown
        earlier = last is not None and key < last
        of = f" of {last}" if earlier else ""
        st.plotly_chart(grid_figure(grids[key][:64], f"Generator samples after epoch {key}{of} (fixed noise)"),
                        width="stretch", config=cfg, key="ll_fig_samples")
        where = ("Replaying the run" if playing else "An earlier epoch") + f": epoch {key} of {last} (the replay's " \
            "controls are just below). " if earlier else ""
        st.caption(f"{where}The same noise every epoch, so the grid shows how the generator changes.")
    if not active and shows_reconstructions(run):
        reconstruction_part(run, store, cfg)
    if terms:
        terms_part(epochs, active, x_range)


def terms_part(epochs: list[dict], active: bool, x_range: list[float] | None = None) -> None:
    """A drawn objective's loss terms by epoch, below what the run makes (issue 29, item 13: the grid was two
    screens down)."""
    fig = terms_figure(epochs, x_range, active)
    if fig is not None:
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False, "staticPlot": active},
                        key="ll_fig_terms")


def newest_grid(store, run_id: str) -> None:
    """A run's newest generator sample grid (the Runs page: what a GAN made, above its buttons; it showed none)."""
    grids = read_samples(store.folder(run_id).samples)
    if grids:
        key = list(grids)[-1]
        st.plotly_chart(grid_figure(grids[key][:64], f"Generator samples after epoch {key} (fixed noise)"),
                        width="stretch", config={"displayModeBar": False}, key=f"ll_run_samples_{run_id}")


def reconstruction_part(run: Run, store, cfg: dict) -> None:
    """A finished autoencoder's or VAE's test inputs with their reconstructions, and a VAE's 2-D latent space
    (:func:`shows_reconstructions`)."""
    from app_pages.explain_tryit import session_probe  # lazy: heavy (plotly)

    try:  # the model runs in the page session's sandboxed probe (builder.jobs.probe), not in this process
        probe = _reconstructions(session_probe(), store, run["id"])
    except LayerLabError as e:
        st.caption(error_md(e))
        return
    left, right = st.columns(2, gap="medium")
    both = np.concatenate([probe["inputs"][:8], probe["recons"][:8]])
    left.plotly_chart(grid_figure(both, "Test inputs (top) and the trained model's reconstructions (bottom)",
                                  height=220),
                      width="stretch", config=cfg, key="ll_fig_recon")
    if "latent" not in probe:  # an autoencoder: how far its reconstructions are from the inputs, in the inputs' units
        err = float(np.mean((probe["inputs"] - probe["recons"]) ** 2))
        right.metric("Reconstruction error of these samples", f"{err:.4g}",
                     help="The mean squared difference between the inputs shown and their reconstructions, in the "
                          "inputs' own units (the run's test metrics: every test sample)")
    elif probe["latent"].shape[1] == 2:
        names = (run.get("dataset_info") or {}).get("class_names")
        right.plotly_chart(latent_figure(probe["latent"], probe["labels"], names), width="stretch", config=cfg,
                           key="ll_fig_latent")
    else:
        right.caption(f"The latent space has {probe['latent'].shape[1]} dimensions; set the μ and log σ² layers "
                      "to 2 outputs to see it drawn.")
