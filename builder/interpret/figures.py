"""Plotly figure builders for the Explain page. Every function takes arrays (numpy or torch) for ONE
sample unless said otherwise and returns a ``plotly.graph_objects.Figure``; nothing here runs a model.

Example::

    >>> import builder, torch
    >>> from builder.interpret.attributions import explain
    >>> model, x = builder.compile_graph(builder.load_template("cnn").graph), torch.rand(1, 1, 8, 8)
    >>> exp = explain(model, x, "integrated_gradients", target=0, n_steps=8)
    >>> fig = image_attribution_figure(x[0], {"IG": exp.attributions[0]})
    >>> type(fig).__name__
    'Figure'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from builder.errors import ExplainError
from builder.escape import plotly_text

# Every string argument (a title, method label, feature, token, class or node name) is plain text: the figure
# escapes it with plotly_text where it puts it (plotly.js draws tags, links and %{...} placeholders in its text).


# An axis with no labels draws no tick marks either (Streamlit's plotly theme draws them: stray dashes along every
# image's edges).
_BARE = {"showticklabels": False, "ticks": ""}


def _title(title: str | None) -> str | None:
    return None if title is None else plotly_text(title)


SIGNED_SCALE = "RdBu_r"  # blue negative, red positive, white 0
MAGNITUDE_SCALE = "Inferno"
# an attribution colour bar's ticks as plain numbers (3 significant digits): plotly's default SI prefixes labelled
# a sentiment LSTM's word attributions "100µ, 50µ, 0, -50µ" (a micro-something, not 0.0001)
TICK_FORMAT = ".3~g"


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_map(attr: Any) -> np.ndarray:
    """(C, H, W), (1, H, W) or (H, W) -> (H, W), summing channels."""
    a = _np(attr)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        a = a.sum(0)
    if a.ndim != 2:
        raise ExplainError(f"an image attribution must be (C, H, W) or (H, W) for one sample; received {a.shape}")
    return a


def _grey(image: Any) -> np.ndarray:
    """An image (C, H, W) or (H, W) as (H, W) in [0, 1]: channels averaged, stretched to its own range."""
    img = _np(image).astype(float)
    while img.ndim > 2:
        img = img.mean(0)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def picture_image(image: Any, scale: int = 16) -> np.ndarray:
    """An image (C, H, W) or (H, W) as a uint8 picture ``(H·scale, W·scale)`` in grey, or ``(H·scale, W·scale, 3)``
    for colour, stretched to its own range, with no plotting library: it scales to any column (a plotly preview
    has a 150 px minimum width, and cut an 8x8 digit to 5 columns in the Explain page's narrow sample column).

    >>> picture_image(np.eye(2), scale=1).tolist()
    [[255, 0], [0, 255]]
    >>> picture_image(np.zeros((3, 2, 2)), scale=2).shape
    (4, 4, 3)
    """
    img = _np(image).astype(float)
    if img.ndim == 3 and img.shape[0] in (3, 4):  # colour: (H, W, 3)
        rgb = img[:3].transpose(1, 2, 0)
        lo, hi = float(rgb.min()), float(rgb.max())
        rgb = (rgb - lo) / (hi - lo) if hi > lo else np.zeros_like(rgb)
        return np.kron(rgb * 255, np.ones((scale, scale, 1))).round().astype(np.uint8)
    return np.kron(_grey(img) * 255, np.ones((scale, scale))).round().astype(np.uint8)


def attribution_image(image: Any, attribution: Any, scale: int = 16, gap: int = 8) -> np.ndarray:
    """The input and its signed attribution side by side as one RGB picture (uint8, ``(H·scale, 2·W·scale + gap,
    3)``): the input in grey (its channels averaged), the attribution red where it pushed towards the answer and
    blue where against, white at 0. No plotting library: a page shows it at once (the Build page's Try it).

    >>> attribution_image(np.eye(2), np.array([[1.0, 0], [0, -1]]), scale=1, gap=0).shape
    (2, 4, 3)
    """
    img = _grey(image)
    a = _as_map(attribution)
    if img.shape != a.shape:
        raise ExplainError(f"the attribution must have the image's size; received {a.shape} for {img.shape}")
    left = np.repeat((img * 255)[..., None], 3, axis=2)
    m = float(np.abs(a).max()) or 1.0
    pos, neg = np.clip(a / m, 0, 1), np.clip(-a / m, 0, 1)
    right = np.stack([1 - neg * 0.8, 1 - (pos + neg) * 0.8, 1 - pos * 0.8], axis=2) * 255  # white -> red / blue
    both = [np.kron(p, np.ones((scale, scale, 1))) for p in (left, right)]
    spacer = np.full((both[0].shape[0], gap, 3), 255.0)
    return np.concatenate([both[0], spacer, both[1]], axis=1).clip(0, 255).astype(np.uint8)


def _image_trace(image: Any, opacity: float = 1.0) -> go.BaseTraceType:
    img = _np(image)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 2:
        return go.Heatmap(z=img, colorscale="gray", showscale=False, opacity=opacity, hoverinfo="skip")
    if img.ndim == 3 and img.shape[0] in (3, 4):
        rgb = img[:3].transpose(1, 2, 0)
        lo, hi = rgb.min(), rgb.max()
        rgb = (rgb - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(rgb)
        return go.Image(z=rgb.astype(np.uint8), opacity=opacity, hoverinfo="skip")
    if img.ndim == 3:  # many channels: show their mean
        return go.Heatmap(z=img.mean(0), colorscale="gray", showscale=False, opacity=opacity, hoverinfo="skip")
    raise ExplainError(f"image must be (C, H, W) or (H, W); received {img.shape}")


def _heat(a: np.ndarray, signed: bool, opacity: float = 1.0, showscale: bool = False,
          name: str = "") -> go.Heatmap:
    if signed:
        m = float(np.abs(a).max()) or 1.0
        return go.Heatmap(z=a, colorscale=SIGNED_SCALE, zmin=-m, zmax=m, zmid=0, opacity=opacity, colorbar=dict(tickformat=TICK_FORMAT),
                          showscale=showscale, name=name, hovertemplate="x=%{x} y=%{y}<br>%{z:.4g}<extra></extra>")
    return go.Heatmap(z=a, colorscale=MAGNITUDE_SCALE, opacity=opacity, showscale=showscale, name=name,
                      colorbar=dict(tickformat=TICK_FORMAT),
                      hovertemplate="x=%{x} y=%{y}<br>%{z:.4g}<extra></extra>")


def _square_axes(fig: go.Figure, n: int) -> None:
    for i in range(1, n + 1):
        sfx = "" if i == 1 else str(i)
        fig.layout[f"yaxis{sfx}"].update(autorange="reversed", scaleanchor=f"x{sfx}", **_BARE)
        fig.layout[f"xaxis{sfx}"].update(**_BARE, constrain="domain")


MAX_GRID_COLS = 4  # image panels per row: with more, their titles run into each other at page width


def image_attribution_figure(image: Any, attributions: Any | Mapping[str, Any], *, mode: str = "both",
                             signed: bool = True, alpha: float = 0.55, show_input: bool = True,
                             title: str | None = None, row_height: int = 260) -> go.Figure:
    """Input, heatmap and overlay for one image; several methods side by side when given a dict, at most
    :data:`MAX_GRID_COLS` panels per row (the heatmaps first, then the overlays, each method's overlay under
    its heatmap while they fit one row).

    Args:
        image: (C, H, W) or (H, W).
        attributions: one map ((C, H, W), (1, H, W) or (H, W); channels are summed) or
            ``{method name: map}``.
        mode: ``heatmap``, ``overlay`` or ``both``.
        signed: diverging colours around 0; False shows |attribution|.
        row_height: pixels per row of panels (the figure's height follows its rows).
    """
    if mode not in ("heatmap", "overlay", "both"):
        raise ExplainError(f"mode must be heatmap, overlay or both; received {mode!r}")
    maps = dict(attributions) if isinstance(attributions, Mapping) else {"attribution": attributions}
    maps = {k: _as_map(v) if signed else np.abs(_as_map(v)) for k, v in maps.items()}
    kinds = ["heatmap", "overlay"] if mode == "both" else [mode]
    per_kind = len(maps) + bool(show_input)
    cols = min(MAX_GRID_COLS, per_kind)
    # (title, method, map, kind): the input as method "input" with no map, a blank cell under it as ""; each kind
    # starts a row of its own (the overlays ran on beside the last heatmaps), and a title names the method over
    # its kind, on two lines (one line ran into its neighbour's at 900 px)
    panels: list[tuple[str, str, Any, str]] = []
    for n, kind in enumerate(kinds):
        row: list[tuple[str, str, Any, str]] = []
        if show_input:
            row.append(("input", "input", None, kind) if n == 0 else ("", "", None, kind))
        row += [(_panel_title(k, kind if len(kinds) > 1 else None), k, a, kind) for k, a in maps.items()]
        panels += row + [("", "", None, kind)] * (-len(row) % cols)
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.03,
                        vertical_spacing=min(0.1, 0.6 / rows))
    fig.update_annotations(font_size=12)
    for k, (_, method, a, kind) in enumerate(panels):
        r, c = divmod(k, cols)
        if method == "input" or (a is not None and kind == "overlay"):
            fig.add_trace(_image_trace(image), r + 1, c + 1)
        if a is not None:
            fig.add_trace(_heat(a, signed, alpha if kind == "overlay" else 1.0, name=plotly_text(method)), r + 1, c + 1)
    _square_axes(fig, rows * cols)
    fig.update_layout(title=_title(title), height=row_height * rows + 60, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def _panel_title(method: str, kind: str | None) -> str:
    """A panel's title: the method, broken before its parenthesis when long (``SmoothGrad<br>(NoiseTunnel)``),
    over its kind when the figure shows two.

    >>> _panel_title("SmoothGrad (NoiseTunnel)", "heatmap")
    'SmoothGrad<br>(NoiseTunnel) · heatmap'
    >>> _panel_title("Saliency", "overlay"), _panel_title("Saliency", None)
    ('Saliency<br>overlay', 'Saliency')
    """
    text = plotly_text(method)
    if len(text) > 16 and " (" in text:
        head, tail = text.split(" (", 1)
        return f"{head}<br>({tail}" + (f" · {kind}" if kind else "")
    return f"{text}<br>{kind}" if kind else text


def tabular_attribution_figure(attributions: Any, feature_names: Sequence[str] | None = None, *,
                               sample_names: Sequence[str] | None = None, top_k: int | None = None,
                               title: str | None = None) -> go.Figure:
    """Signed horizontal bars per feature; one group of bars per sample.

    Args:
        attributions: (F,) for one sample or (B, F).
        top_k: keep the features with the largest mean |attribution|.
    """
    a = _np(attributions)
    a = a[None] if a.ndim == 1 else a
    if a.ndim != 2:
        raise ExplainError(f"tabular attributions must be (F,) or (B, F); received {a.shape}")
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(a.shape[1])]
    if len(names) != a.shape[1]:
        raise ExplainError(f"feature_names: expected {a.shape[1]} names; received {len(names)}")
    order = np.argsort(np.abs(a).mean(0))  # smallest first: plotly draws bottom-up
    if top_k is not None:
        order = order[-top_k:]
    snames = list(sample_names) if sample_names is not None else [f"sample {i}" for i in range(len(a))]
    names, snames = [plotly_text(n) for n in names], [plotly_text(n) for n in snames]
    fig = go.Figure()
    for i, row in enumerate(a):
        vals = row[order]
        colors = None if len(a) > 1 else ["#d62728" if v >= 0 else "#1f77b4" for v in vals]
        fig.add_bar(x=vals, y=[names[j] for j in order], orientation="h", name=snames[i],
                    marker_color=colors, hovertemplate="%{y}: %{x:.4g}<extra>" + snames[i] + "</extra>")
    fig.update_xaxes(tickformat=TICK_FORMAT)  # (plain numbers, as on the colour bars)
    fig.update_layout(barmode="group", title=_title(title), xaxis_title="attribution (signed)",
                      height=max(250, 22 * len(order) * max(1, len(a) // 2) + 100),
                      showlegend=len(a) > 1, margin=dict(l=10, r=10, t=50, b=40))
    fig.add_vline(x=0, line_color="gray", line_width=1)
    return fig


def global_importance_figure(attributions: Any, feature_names: Sequence[str] | None = None, *,
                             top_k: int = 20, title: str | None = "mean |attribution| over test samples",
                             ) -> go.Figure:
    """Features ranked by mean |attribution| over many samples (N, F), with the standard deviation."""
    a = np.abs(_np(attributions))
    if a.ndim != 2:
        raise ExplainError(f"global importance needs (N, F) attributions; received {a.shape}")
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(a.shape[1])]
    if len(names) != a.shape[1]:
        raise ExplainError(f"feature_names: expected {a.shape[1]} names; received {len(names)}")
    names = [plotly_text(n) for n in names]
    mean, std = a.mean(0), a.std(0)
    order = np.argsort(mean)[-top_k:]
    fig = go.Figure(go.Bar(x=mean[order], y=[names[j] for j in order], orientation="h",
                           error_x=dict(type="data", array=std[order], visible=True),
                           marker_color="#636efa", hovertemplate="%{y}: %{x:.4g}<extra></extra>"))
    fig.update_layout(title=_title(title), xaxis_title="mean |attribution|", height=max(250, 22 * len(order) + 100),
                      margin=dict(l=10, r=10, t=50, b=40))
    return fig


def _fold_padding(tokens: Sequence[str], a: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Trailing padding (two tokens or more) as one token, ``+59 <pad>``, with their attributions summed: a
    five-word review padded to 64 tokens was drawn as six rows of cells, 59 of them ``<pad>``."""
    from builder.data.text import PAD_TOKENS  # lazy: heavy (tokenizers)

    end = len(tokens)
    while end > 1 and tokens[end - 1] in PAD_TOKENS:
        end -= 1
    pads = len(tokens) - end
    if pads < 2:
        return list(tokens), a
    return [*tokens[:end], f"+{pads} {tokens[-1]}"], np.append(a[:end], a[end:].sum())


def cell_token(tok: str) -> str:
    """A token as a cell shows it: one made only of spaces, tabs or line ends shows them (``␣``, ``⇥``, ``⏎``); a
    blank cell read as a missing token.

    >>> cell_token(" "), cell_token("\\n\\n"), cell_token(" the"), cell_token("")
    ('␣', '⏎⏎', ' the', '')
    """
    if tok and not tok.strip():
        return tok.replace(" ", "␣").replace("\t", "⇥").replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎")
    return tok


def token_attribution_figure(tokens: Sequence[str], attributions: Any, *, per_row: int = 12,
                             title: str | None = None, mark: int | None = None) -> go.Figure:
    """Tokens laid out in rows, each cell coloured by its (signed) attribution; trailing padding is one cell
    (:func:`_fold_padding`); ``mark``: a position outlined (a language model's explained position)."""
    a = _np(attributions).reshape(-1)
    if len(tokens) != a.size:
        raise ExplainError(f"tokens: expected {a.size} tokens (one per attribution); received {len(tokens)}")
    if per_row < 1:
        raise ExplainError(f"per_row must be at least 1; received {per_row}")
    tokens, a = _fold_padding(tokens, a)
    rows = max(1, math.ceil(a.size / per_row))
    z = np.full((rows, per_row), np.nan)
    text = np.full((rows, per_row), "", dtype=object)
    for i, (tok, v) in enumerate(zip(tokens, a)):
        z[i // per_row, i % per_row] = v
        text[i // per_row, i % per_row] = plotly_text(cell_token(tok))
    m = float(np.nanmax(np.abs(a))) if a.size else 1.0
    fig = go.Figure(go.Heatmap(z=z, text=text, texttemplate="%{text}", colorscale=SIGNED_SCALE,
                               zmin=-(m or 1.0), zmax=m or 1.0, zmid=0, xgap=3, ygap=3, colorbar=dict(tickformat=TICK_FORMAT),
                               hovertemplate="%{text}: %{z:.4g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", **_BARE)
    fig.update_xaxes(**_BARE)
    fig.update_layout(title=_title(title), height=70 * rows + 90, margin=dict(l=10, r=10, t=50, b=10))
    if mark is not None and a.size:
        at = min(int(mark), a.size - 1)  # a position in the trailing padding: its folded cell
        r, c = divmod(at, per_row)
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, line=dict(color="#111", width=3))
    return fig


def _labels(tokens: Sequence[str] | None, n: int) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(n)]
    if len(tokens) != n:
        raise ExplainError(f"tokens: expected {n} labels; received {len(tokens)}")
    # plotly merges equal category labels; keep repeated tokens (or ones escaped alike) apart with their position
    shown = [plotly_text(t) for t in tokens]
    return [f"{t} ({i})" if shown.count(t) > 1 else t for i, t in enumerate(shown)]


def attention_map_figure(matrix: Any, tokens: Sequence[str] | None = None, *, title: str | None = None,
                         key_tokens: Sequence[str] | None = None) -> go.Figure:
    """One query × key attention map (T_q, T_k), e.g. the mean over heads or the rollout."""
    m = _np(matrix)
    if m.ndim != 2:
        raise ExplainError(f"an attention map must be (T_q, T_k); received {m.shape}")
    q = _labels(tokens, m.shape[0])
    k = _labels(key_tokens if key_tokens is not None else tokens, m.shape[1])
    fig = go.Figure(go.Heatmap(z=m, x=k, y=q, colorscale="Blues", zmin=0,
                               hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="query", type="category")
    fig.update_xaxes(title="key", type="category")
    fig.update_layout(title=_title(title), height=420, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def attention_heads_figure(weights: Any, tokens: Sequence[str] | None = None, *, sample: int = 0,
                           include_mean: bool = True, max_cols: int = 4, title: str | None = None) -> go.Figure:
    """Per-head query × key heatmaps for one sample, plus the mean over heads.

    Args:
        weights: (heads, T, T) or (B, heads, T, T) as returned by ``capture_attention``.
    """
    w = _np(weights)
    if w.ndim == 4:
        if not 0 <= sample < w.shape[0]:
            raise ExplainError(f"sample must be in [0, {w.shape[0] - 1}]; received {sample}")
        w = w[sample]
    if w.ndim != 3:
        raise ExplainError(f"attention weights must be (heads, T, T); received {w.shape}")
    maps = [(f"head {h}", w[h]) for h in range(w.shape[0])]
    if include_mean:
        maps.append(("mean over heads", w.mean(0)))
    cols = min(max_cols, len(maps))
    rows = math.ceil(len(maps) / cols)
    q, k = _labels(tokens, w.shape[1]), _labels(tokens, w.shape[2])
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _ in maps], horizontal_spacing=0.06,
                        vertical_spacing=0.12)
    for i, (name, m) in enumerate(maps):
        fig.add_trace(go.Heatmap(z=m, x=k, y=q, colorscale="Blues", zmin=0, zmax=1, showscale=i == 0,
                                 name=name, hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>"),
                      i // cols + 1, i % cols + 1)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-45)
    fig.update_layout(title=_title(title), height=300 * rows + 80, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def activation_figure(activation: Any, *, kind: str = "auto", max_maps: int = 32, bins: int = 40,
                      title: str | None = None, row_labels: Sequence[str] | None = None) -> go.Figure:
    """One sample's activations at a node.

    Args:
        activation: (C, H, W) feature maps, (T, D) sequence or (F,) features (batch dim removed).
        kind: ``auto``, ``grid`` (feature maps), ``strip`` (heat strip), ``histogram``.
        max_maps: at most this many feature maps in the grid.
        row_labels: names of a strip's rows (the tokens of a (T, D) sequence), used when there is one per row.
    """
    a = _np(activation)
    if kind == "auto":
        kind = {3: "grid", 2: "strip"}.get(a.ndim, "strip")
    if kind == "histogram":
        fig = go.Figure(go.Histogram(x=a.ravel(), nbinsx=bins, marker_color="#636efa"))
        fig.update_layout(title=_title(title), xaxis_title="activation", yaxis_title="count", height=320,
                          margin=dict(l=10, r=10, t=50, b=40))
        return fig
    if kind == "strip":
        z = a.reshape(1, -1) if a.ndim <= 1 else a.reshape(a.shape[0], -1)
        fig = go.Figure(go.Heatmap(z=z, colorscale="Viridis",
                                   hovertemplate="unit %{x}, row %{y}: %{z:.4g}<extra></extra>"))
        fig.update_yaxes(autorange="reversed", showticklabels=z.shape[0] > 1)
        fig.update_layout(title=_title(title), height=120 + min(400, 12 * z.shape[0]), margin=dict(l=10, r=10, t=50, b=30),
                          xaxis_title="unit")
        if row_labels is not None and a.ndim == 2 and len(row_labels) == z.shape[0]:  # (T, D): one row per token
            fig.update_yaxes(tickvals=list(range(z.shape[0])), ticktext=[plotly_text(t) for t in row_labels], title="token",
                             showticklabels=True)
        return fig
    if kind != "grid":
        raise ExplainError(f"kind must be auto, grid, strip or histogram; received {kind!r}")
    if a.ndim != 3:
        raise ExplainError(f"a feature-map grid needs (C, H, W) activations; received {a.shape}")
    n = min(max_maps, a.shape[0])
    cols = min(8, n)
    rows = math.ceil(n / cols)
    row_px = 150  # map plus its title
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"ch {i}" for i in range(n)],
                        horizontal_spacing=0.01, vertical_spacing=min(0.2, 26 / (row_px * rows)) if rows > 1 else 0)
    lo, hi = float(a[:n].min()), float(a[:n].max())
    for i in range(n):
        fig.add_trace(go.Heatmap(z=a[i], colorscale="Viridis", zmin=lo, zmax=hi, showscale=i == 0,
                                 hovertemplate=f"ch {i}" + " x=%{x} y=%{y}: %{z:.4g}<extra></extra>"),
                      i // cols + 1, i % cols + 1)
    _square_axes(fig, rows * cols)
    fig.update_annotations(font_size=10)
    extra = f" (first {n} of {a.shape[0]} channels)" if n < a.shape[0] else ""
    fig.update_layout(title=(_title(title) or "feature maps") + extra, height=row_px * rows + 80, plot_bgcolor="white",
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


def weight_histogram_figure(histograms: Sequence[Any], *, max_cols: int = 3, title: str | None = None,
                            ) -> go.Figure:
    """One histogram per parameter tensor (``builder.interpret.activations.WeightHistogram`` items)."""
    if not histograms:
        raise ExplainError("weight histograms: the model has no parameters")
    cols = min(max_cols, len(histograms))
    rows = math.ceil(len(histograms) / cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.06, vertical_spacing=min(0.1, 0.6 / rows),
                        subplot_titles=[f"{plotly_text(f'{h.node}.{h.param}')} (μ={h.mean:.3g}, σ={h.std:.3g})"
                                        for h in histograms])
    for i, h in enumerate(histograms):
        centers = (h.edges[:-1] + h.edges[1:]) / 2
        fig.add_trace(go.Bar(x=centers, y=h.counts, width=np.diff(h.edges), marker_color="#636efa",
                             name=plotly_text(f"{h.node}.{h.param}"), showlegend=False,
                             hovertemplate="%{x:.3g}: %{y}<extra></extra>"), i // cols + 1, i % cols + 1)
    fig.update_annotations(font_size=10)
    fig.update_layout(title=_title(title), bargap=0, height=200 * rows + 60, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def sanity_figure(results: Any | Sequence[Any], labels: Mapping[str, str] | None = None) -> go.Figure:
    """Rank correlation with the trained model's maps as layers are randomised from the top.

    Args:
        results: one or several ``builder.interpret.sanity.SanityResult``; flagged methods are marked.
        labels: method name -> the name shown in the legend (default: the method name).
    """
    results = [results] if hasattr(results, "correlations") else list(results)
    if not results:
        raise ExplainError("sanity figure: no results")
    fig = go.Figure()
    for r in results:
        x = ["trained"] + [("+" if i else "") + plotly_text(n) for i, n in enumerate(r.layers)]
        name = plotly_text((labels or {}).get(r.method, r.method)) + (" ⚠ barely changes" if r.flagged else "")
        fig.add_scatter(x=x, y=[1.0] + list(r.correlations), mode="lines+markers", name=name,
                        line=dict(dash="dot" if r.flagged else "solid"),
                        hovertemplate="%{x}: %{y:.3f}<extra>" + plotly_text(r.method) + "</extra>")
    fig.add_hline(y=results[0].threshold, line_dash="dash", line_color="gray",
                  annotation_text="flag threshold", annotation_position="top left")
    fig.update_layout(title="Model-parameter randomisation (cascading, from the output layer)",
                      xaxis_title="layers re-initialised", yaxis_title="Spearman rank correlation",
                      yaxis_range=[-1.05, 1.05], height=420, margin=dict(l=10, r=10, t=60, b=40))
    return fig


def completeness_figure(result: Any) -> go.Figure:
    """Integrated Gradients completeness: Σ attributions against f(x) − f(baseline), with the delta.

    Args:
        result: a ``builder.interpret.sanity.CompletenessResult``.
    """
    x, y, d = _np(result.output_diff), _np(result.attribution_sum), _np(result.delta)
    lo = float(min(x.min(), y.min())) if x.size else 0.0
    hi = float(max(x.max(), y.max())) if x.size else 1.0
    fig = go.Figure()
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dash", color="gray"),
                    name="Σ attributions = f(x) − f(baseline)", hoverinfo="skip")
    fig.add_scatter(x=x, y=y, mode="markers", name="samples", customdata=d, marker=dict(size=9),
                    text=[f"sample {i}" for i in range(x.size)],
                    hovertemplate="%{text}<br>f(x) − f(b) = %{x:.4g}<br>Σ attr = %{y:.4g}"
                                  "<br>delta = %{customdata:.3g}<extra></extra>")
    fig.update_layout(title=f"IG completeness<br><sup>{plotly_text(result.verdict, 300)}</sup>",
                      xaxis_title="f(x) − f(baseline)", yaxis_title="Σ attributions", height=420,
                      margin=dict(l=10, r=10, t=60, b=40))
    return fig


def live_attribution_figure(frames: Sequence[Mapping[str, Any]], *, sample: int = 0, image: Any = None,
                            tokens: Sequence[str] | None = None, feature_names: Sequence[str] | None = None,
                            signed: bool = True, title: str | None = None) -> go.Figure:
    """Play recorded epochs back with a slider (``LiveAttributions.frames``) for one sample.

    The view follows the attribution's shape: (C, H, W) image heatmap (over ``image`` when given),
    (T,) token strip when ``tokens`` is given, else signed feature bars.
    """
    if not frames:
        raise ExplainError("live attributions: no frames recorded")
    n = len(frames[0]["attributions"])
    if not 0 <= sample < n:
        raise ExplainError(f"sample must be in [0, {n - 1}]; received {sample}")
    maps = [_np(f["attributions"][sample]) for f in frames]
    is_image = maps[0].ndim >= 2
    m = max(float(np.abs(a).max()) for a in maps) or 1.0

    def traces(a: np.ndarray) -> list[go.BaseTraceType]:
        if is_image:
            z = _as_map(a)
            heat = go.Heatmap(z=z if signed else np.abs(z), colorscale=SIGNED_SCALE if signed else MAGNITUDE_SCALE,
                              zmin=-m if signed else 0, zmax=m, zmid=0 if signed else None, colorbar=dict(tickformat=TICK_FORMAT),
                              opacity=0.55 if image is not None else 1.0)
            return ([_image_trace(image)] if image is not None else []) + [heat]
        v = a.reshape(-1)
        if tokens is not None:
            return [go.Heatmap(z=v[None], x=_labels(tokens, v.size), colorscale=SIGNED_SCALE, zmin=-m, zmax=m,
                               zmid=0, xgap=2, colorbar=dict(tickformat=TICK_FORMAT), hovertemplate="%{x}: %{z:.4g}<extra></extra>")]
        names = [plotly_text(n) for n in feature_names] if feature_names is not None else [
            f"x{i}" for i in range(v.size)]
        return [go.Bar(x=v, y=names, orientation="h", marker_color=["#d62728" if t >= 0 else "#1f77b4" for t in v])]

    fig = go.Figure(data=traces(maps[-1]),
                    frames=[go.Frame(data=traces(a), name=str(f["epoch"])) for a, f in zip(maps, frames)])
    steps = [dict(method="animate", label=str(f["epoch"]),
                  args=[[str(f["epoch"])], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                transition=dict(duration=0))]) for f in frames]
    fig.update_layout(
        title=_title(title) or "attributions during training",
        sliders=[dict(active=len(frames) - 1, steps=steps, currentvalue=dict(prefix="epoch "), pad=dict(t=40))],
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.05, xanchor="right", yanchor="top",
                          buttons=[dict(label="▶", method="animate",
                                        args=[None, dict(frame=dict(duration=400, redraw=True), fromcurrent=True)])])],
        height=460, margin=dict(l=10, r=10, t=60, b=80))
    if is_image:
        fig.update_yaxes(autorange="reversed", scaleanchor="x", **_BARE)
        fig.update_xaxes(**_BARE, constrain="domain")
    elif tokens is not None:
        fig.update_yaxes(**_BARE)
    return fig


def sample_figure(sample: Any, modality: str, names: Sequence[str] | None = None) -> go.Figure:
    """A small preview of one input sample: an image (C, H, W) or (H, W), or a sequence (T, F) as a heatmap whose
    rows are named by ``names`` (one per channel: a series' columns).

    Raises:
        ExplainError: another modality (tokens and tabular rows are shown as text and tables).
    """
    if modality == "image":
        fig = go.Figure(_image_trace(sample))
        fig.update_yaxes(autorange="reversed", scaleanchor="x", **_BARE)
        fig.update_xaxes(**_BARE, constrain="domain")
        return fig.update_layout(height=120, margin=dict(l=0, r=0, t=0, b=0))
    if modality == "sequence":
        z = _np(sample).T  # (F, T)
        fig = go.Figure(go.Heatmap(z=z, y=_series_rows(len(z), names), colorscale="Viridis", showscale=False))
        fig.update_yaxes(type="category")
        return fig.update_layout(height=150, margin=dict(l=0, r=0, t=0, b=0), xaxis_title="time step")
    raise ExplainError(f"sample preview: for image and sequence inputs; received {modality!r}")


def _series_rows(n: int, names: Sequence[str] | None = None) -> list[str]:
    """The row labels of a (features x time steps) heatmap: the features' names, else ``value`` for a lone feature
    and ``feature 1`` ... (a one-row heatmap of a univariate series was ticked -0.5, 0, 0.5 on its y axis).

    >>> _series_rows(1), _series_rows(2), _series_rows(1, ["sunspots"])
    (['value'], ['feature 1', 'feature 2'], ['sunspots'])
    """
    if names is not None and len(names) == n:
        return [plotly_text(str(x)) for x in names]
    return ["value"] if n == 1 else [f"feature {i + 1}" for i in range(n)]


def explanation_figure(explanation: Any, inputs: Any, sample: int = 0, *, modality: str | None = None,
                       tokens: Sequence[str] | None = None, feature_names: Sequence[str] | None = None,
                       mode: str = "both", signed: bool = True, mark: int | None = None) -> go.Figure:
    """The default view of one sample of a :class:`builder.interpret.attributions.Explanation`, chosen by modality.

    Args:
        explanation: what ``explain`` returned; ``inputs``: the batch it was computed on.
        modality: ``image``, ``tabular``/``points2d``, ``sequence``, ``tokens`` (default: from ``inputs``).
        tokens: token strings for the sample (default: the ids).
        mark: a token position to outline (a language model's explained position).
    """
    from builder.interpret.methods import get_spec  # lazy: heavy (torch, captum)
    from builder.interpret.model import infer_modality  # lazy: heavy (torch)

    attr = explanation.attributions
    if not 0 <= sample < len(attr):
        raise ExplainError(f"sample must be in [0, {len(attr) - 1}]; received {sample}")
    spec = get_spec(explanation.method)
    label = spec.label
    target = None if explanation.target is None else int(explanation.target[sample])
    title = f"{label}" + (f" for class {target}" if target is not None else "")
    if spec.space == "layer":
        return activation_figure(attr[sample], title=f"{title}: {spec.layer_measure} of node {explanation.layer}")
    modality = modality or infer_modality(inputs)
    if modality == "image":
        return image_attribution_figure(inputs[sample], {label: attr[sample]}, mode=mode, signed=signed,
                                        title=title)
    if modality == "tokens":
        words = list(tokens) if tokens is not None else [str(int(t)) for t in _np(inputs[sample])]
        return token_attribution_figure(words, attr[sample], title=title, mark=mark)
    if modality == "sequence":
        a = _np(attr[sample])
        m = float(np.abs(a).max()) or 1.0
        fig = go.Figure(go.Heatmap(z=a.T, y=_series_rows(a.shape[-1], feature_names),
                                   colorscale=SIGNED_SCALE, zmin=-m, zmax=m, zmid=0, colorbar=dict(tickformat=TICK_FORMAT),
                                   hovertemplate="t=%{x} %{y}: %{z:.4g}<extra></extra>"))
        fig.update_yaxes(type="category")
        fig.update_layout(title=_title(title), xaxis_title="time step", height=320, margin=dict(l=10, r=10, t=50, b=40))
        return fig
    return tabular_attribution_figure(attr[sample], feature_names, title=title)


__all__ = ["explanation_figure", "image_attribution_figure", "attribution_image", "picture_image", "tabular_attribution_figure", "global_importance_figure",
           "token_attribution_figure", "cell_token", "attention_map_figure", "attention_heads_figure", "activation_figure",
           "weight_histogram_figure", "sanity_figure", "completeness_figure", "live_attribution_figure",
           "sample_figure"]


_BOUNDARY_COLORS = ["#f59e0b", "#3b82f6", "#10b981", "#ef4444", "#8b5cf6", "#ec4899", "#14b8a6", "#84cc16"]


def boundary_figure(grid: Mapping[str, Any], points: Mapping[str, Any] | None = None,
                    class_names: Sequence[str] | None = None, *, height: int = 360) -> go.Figure:
    """Decision-boundary heatmap with the training points (TensorFlow Playground style).

    Args:
        grid: a :class:`builder.interpret.boundary.DecisionBoundary` grid (``xs``, ``ys``, ``kind``, ``z``, ``epoch``).
        points: ``{"x", "y", "label"}`` training points drawn on top (optional).
        class_names: legend names per class index.
    """
    xs, ys, z = list(grid["xs"]), list(grid["ys"]), grid["z"]
    names = list(class_names or [])
    fig = go.Figure()
    if grid.get("kind") == "class":
        k = int(grid.get("classes") or 2)
        cols = [_BOUNDARY_COLORS[i % len(_BOUNDARY_COLORS)] for i in range(k)]
        scale = [[i / max(k - 1, 1), c] for i, c in enumerate(cols)]
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=z, zmin=0, zmax=k - 1, colorscale=scale, opacity=0.45,
                                 showscale=False, hovertemplate="x %{x:.2f}, y %{y:.2f}<br>class %{z}<extra></extra>"))
    else:
        scale = [[0, _BOUNDARY_COLORS[0]], [0.5, "#f8fafc"], [1, _BOUNDARY_COLORS[1]]]
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=z, zmin=0, zmax=1, colorscale=scale, opacity=0.75,
                                 colorbar=dict(title="P(1)", thickness=10, len=0.8),
                                 hovertemplate="x %{x:.2f}, y %{y:.2f}<br>P(class 1) %{z:.2f}<extra></extra>"))
        fig.add_trace(go.Contour(x=xs, y=ys, z=z, contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
                                 line=dict(color="#0f172a", width=1.5), showscale=False, hoverinfo="skip",
                                 showlegend=False))
    if points:
        labels = list(points.get("label") or [])
        for c in sorted(set(labels)):
            sel = [i for i, v in enumerate(labels) if v == c]
            fig.add_trace(go.Scattergl(
                x=[points["x"][i] for i in sel], y=[points["y"][i] for i in sel], mode="markers",
                name=plotly_text(names[c]) if c < len(names) else f"class {int(c)}",
                marker=dict(size=6, color=_BOUNDARY_COLORS[c % len(_BOUNDARY_COLORS)],
                            line=dict(color="#ffffff", width=1))))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=f"Decision boundary · epoch {plotly_text(grid.get('epoch', '—'))}", font=dict(size=14)),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
                      xaxis=dict(range=[xs[0], xs[-1]], title="x₁", zeroline=False),
                      yaxis=dict(range=[ys[0], ys[-1]], title="x₂", zeroline=False, scaleanchor="x", scaleratio=1),
                      uirevision="boundary")
    return fig


def reliability_figure(before: Mapping[str, Any], after: Mapping[str, Any] | None = None, *,
                       height: int = 360) -> go.Figure:
    """Reliability diagram: accuracy against mean confidence per bin, the diagonal is perfect calibration.

    ``before`` / ``after``: :class:`builder.interpret.calibration.Reliability` dicts (``to_dict()``; a run's
    ``calibration.json`` holds both), drawn as "before" and "after temperature scaling"; empty bins are left out.
    """
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", hoverinfo="skip",
                               line=dict(color="#94a3b8", dash="dash")))
    for rel, label, color in ((before, "before", _BOUNDARY_COLORS[1]), (after, "after scaling", _BOUNDARY_COLORS[0])):
        if not rel:
            continue
        pts = [(c, a, n) for c, a, n in zip(rel["confidence"], rel["accuracy"], rel["counts"]) if n]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                 name=f"{label} (ECE {rel['ece']:.3f})", customdata=[p[2] for p in pts],
                                 marker=dict(color=color), line=dict(color=color),
                                 hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{customdata} samples"
                                               "<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), title="Reliability",
                      xaxis=dict(range=[0, 1], title="confidence"), yaxis=dict(range=[0, 1.02], title="accuracy"))
    return fig
