"""Formatting numbers, durations and sizes for display (pure functions; no Streamlit)."""

from __future__ import annotations

import io
import math
import zipfile
from typing import Any

from builder.graph.report import human_number
from builder.graph.shapes import human_bytes as hb
from builder.graph.shapes import human_count as hc
from builder.training.metrics_units import figure_text as fmt_metric
from builder.training.metrics_units import metric_text


def human_count(n: int) -> str:
    """``1.2M``-style parameter counts."""
    return hc(int(n))


def human_bytes(n: float) -> str:
    """``3.1 MB``-style sizes."""
    return hb(n)


def fmt_duration(s: float | None) -> str:
    """``0.3s`` (under 10 s, to a tenth: a small run on the digits trains in well under a second and read ``0s``,
    as if it had not run), ``42s``, ``3m 05s`` or ``1h 02m``; ``—`` when unknown."""
    if s is None or not math.isfinite(s):
        return "—"
    if s < 9.95:
        return f"{max(0.0, s):.1f}s"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def fmt_setting(v: Any) -> str:
    """A training setting as shown in tables: floats with 4 significant digits (a searched learning rate is
    ``0.001235``, not ``0.0012345678901234567``), ``—`` when missing, anything else as it is."""
    if v is None:
        return "—"
    return human_number(v) if isinstance(v, float) else str(v)


WHOLE_EPOCHS_UP_TO = 10  # an epoch axis this short gets a tick per epoch; a longer one's automatic ticks are whole


def whole_epoch_ticks(fig: Any) -> Any:
    """Tick a short epoch axis at whole epochs only: plotly's own ticks for a 3-epoch run were 1, 1.5, 2, 2.5, 3 (an
    epoch 1.5 reads as a mistake). Points between epochs (the training loss per step) stay where they are.

    Args:
        fig: a plotly figure whose x axis is the epoch.

    Returns:
        ``fig``, changed in place.
    """
    xs = [x for tr in fig.data for x in (tr.x or ()) if isinstance(x, int | float) and math.isfinite(x)]
    if xs and max(xs) <= WHOLE_EPOCHS_UP_TO:
        fig.update_xaxes(tick0=0, dtick=1)
    return fig


def whole_number_ticks(fig: Any, axis: str, values: Any) -> Any:
    """Tick an axis of whole numbers (tokens, samples) at whole numbers only when its ``values`` span little: with
    tickformat "d", plotly's ticks for a narrow span all round to one number (a histogram of four-token texts read
    "4 4 4 4 4" under its one bar). A wider span's automatic ticks are whole already.

    Args:
        fig: a plotly figure; ``axis``: ``"x"`` or ``"y"``; ``values``: the numbers the axis spans.

    Returns:
        ``fig``, changed in place.
    """
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if finite and max(finite) - min(finite) <= WHOLE_EPOCHS_UP_TO:
        (fig.update_xaxes if axis == "x" else fig.update_yaxes)(tick0=0, dtick=1)
    return fig


def zip_dir_bytes(paths: dict[str, bytes]) -> bytes:
    """A zip archive of ``{name: bytes}`` in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in paths.items():
            z.writestr(name, data)
    return buf.getvalue()


__all__ = ["human_count", "human_bytes", "fmt_duration", "fmt_metric", "metric_text", "whole_epoch_ticks", "whole_number_ticks", "share_axis", "curve_mode", "zip_dir_bytes"]


def share_axis(fig: Any) -> Any:
    """Keep a share's y axis (accuracy, F1) inside [0, 1]: a 4-epoch run stuck at 0.5 was drawn on an axis from
    -0.5 to 1.5 (plotly's range for a flat line), an accuracy below zero and over one. The range follows the
    points, with a margin, clamped to [0, 1.01].

    Returns:
        ``fig``, changed in place.
    """
    ys = [y for tr in fig.data for y in (tr.y or ()) if isinstance(y, int | float) and math.isfinite(y)]
    if ys:
        lo, hi = min(ys), max(ys)
        pad = max(0.05, (hi - lo) * 0.1)
        fig.update_yaxes(range=[max(0.0, lo - pad), min(1.01, hi + pad)])
    return fig


def curve_mode(epochs: int, active: bool) -> str:
    """The plotly mode of a per-epoch curve: markers for short curves of an ended run (a marker is an SVG node
    the browser redraws), and always for a curve of one point, which a line alone leaves invisible (a live GPT
    run's perplexity and learning-rate charts stood empty after epoch 1 while its first sample showed below).

    >>> curve_mode(1, True), curve_mode(12, True), curve_mode(12, False), curve_mode(41, False)
    ('lines+markers', 'lines', 'lines+markers', 'lines')
    """
    return "lines+markers" if epochs <= 1 or (not active and epochs <= 40) else "lines"


def split_marker(split: str) -> dict:
    """The marker of a curve's split: train an open ring larger than validation's filled dot, so a train value
    equal to the validation's shows around it (a GPT's train and validation perplexity after epoch 1, 323.4 and
    322.9, drew one dot: the legend listed "train" beside no point of it).

    >>> split_marker("train")["symbol"], split_marker("val")["symbol"]
    ('circle-open', 'circle')
    """
    return dict(symbol="circle-open", size=9, line=dict(width=2)) if split == "train" else dict(symbol="circle", size=6)

