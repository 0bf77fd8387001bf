"""A run's curves as the Train page and a class's run view draw them: loss per step, the metric per epoch in the
target's own units (:func:`builder.training.metrics_units.metric_in_units`), the learning rate; one look for a
curve wherever it is shown (colours, split markers, whole-epoch ticks, a note in an empty chart)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import plotly.graph_objects as go
import streamlit as st

from app_pages.fmt import curve_mode, share_axis, split_marker, whole_epoch_ticks
from builder.escape import plotly_text
from builder.training.metrics_units import metric_in_units, metric_label, metric_units
from builder.training.run_status import is_live

COLORS = {"train": "#6366f1", "val": "#f59e0b", "lr": "#10b981"}


@dataclass
class Curve:
    """What the Train page draws for one run, read from the store incrementally."""

    run_id: str
    key: tuple
    steps: list = field(default_factory=list)  # (step, loss)
    epochs: list = field(default_factory=list)  # epoch events
    after_step: int = 0
    after_epoch: int = 0
    active: bool = False
    first_point_s: float | None = None
    info: dict = field(default_factory=dict)  # the run's dataset_info (a scaled target's std: metric_in_units)

    @property
    def steps_per_epoch(self) -> int:
        last = next((e for e in reversed(self.epochs) if e.get("step") and e.get("epoch")), None)
        return max(1, int(last["step"] / last["epoch"])) if last else self._estimate

    _estimate: int = 1


def read_curve(rs, run: dict) -> Curve:
    """The run's curve so far: new points are appended to the session's copy (one small query each)."""
    key = (run["id"], run.get("queued_at"))
    cur = st.session_state.get("ll_curve")
    if cur is None or cur.key != key:
        cur = Curve(run["id"], key)
        cfg, info = run.get("config") or {}, run.get("dataset_info") or {}
        n = int((info.get("sizes") or {}).get("train") or 1)
        cur._estimate = max(1, -(-n // max(1, min(int(cfg.get("batch_size") or 64), n))))
        cur.info = info
        st.session_state.ll_curve = cur
    steps, cur.after_step = rs.metrics_after(run["id"], "step", cur.after_step)
    epochs, cur.after_epoch = rs.metrics_after(run["id"], "epoch", cur.after_epoch)
    cur.steps += [(e["step"], e["loss"]) for e in steps if e.get("loss") is not None]
    if len(cur.steps) > 20_000:  # bounded memory for very long runs: keep every other point
        cur.steps = cur.steps[::2]
    cur.epochs += epochs
    cur.active = is_live(run["status"])
    return cur


def _mode(sess: Curve) -> str:
    """Markers for short curves of a finished run and for one point (:func:`app_pages.fmt.curve_mode`)."""
    return curve_mode(len(sess.epochs), sess.active)


def _empty_note(fig: go.Figure, sess: Curve, per_epoch: bool) -> None:
    """Say in an empty chart why it is empty: a run's first seconds (on a busy machine more than a second, just
    before a quick run's replay) showed three blank charts, as if nothing were happening."""
    if fig.data:
        return
    text = ("no points were recorded" if not sess.active else
            "drawn when epoch 1 ends" if per_epoch else "waiting for the first training steps…")
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=13, color="#6b7280"))


def epoch_range(sess: Curve) -> list[float] | None:
    """One epoch axis for the three charts side by side: from 0 to the furthest point of any of them, a little
    more so that a last marker is whole. Each chart ranged over its own points: the loss chart's steps of a stopped
    run's unfinished epoch reached past the other charts' last epoch, and plotly padded the charts with markers
    (their axes then ran past the loss chart's). None before the first point."""
    spe = max(1, sess.steps_per_epoch)
    xs = [s / spe for s, _ in sess.steps[-1:]] + [e["epoch"] for e in sess.epochs if e.get("epoch") is not None]
    return [0, round(max(xs) * 1.02, 4)] if xs else None


def _layout(fig: go.Figure, title: str, ytitle: str, sess: Curve) -> go.Figure:
    fig.update_layout(title=dict(text=plotly_text(title), font=dict(size=14)), height=290,
                      margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
                      xaxis_title="epoch", yaxis_title=plotly_text(ytitle), uirevision="keep")
    if (x := epoch_range(sess)) is not None:
        fig.update_xaxes(range=x)
    return whole_epoch_ticks(fig)


def loss_figure(sess: Curve, title: str = "Loss") -> go.Figure:
    fig = go.Figure()
    spe = max(1, sess.steps_per_epoch)
    steps = sess.steps
    if len(steps) > 600:  # thin for display: the chart cannot show more than a few hundred points anyway
        k = len(steps) // 600 + 1
        steps = steps[::k] + ([steps[-1]] if (len(steps) - 1) % k else [])
    if steps:
        xs = [s / spe for s, _ in steps]
        # markers as for the epochs' curves (curve_mode): a replay's first frame of a short run drew its train loss
        # as one line between two step points at x 0.91 and 1.0, which read as an empty chart
        fig.add_trace(go.Scatter(x=xs, y=[v for _, v in steps], mode=curve_mode(len(steps), sess.active), name="train",
                                 line=dict(color=COLORS["train"], width=1.5), marker=split_marker("train")))
    ep = [e for e in sess.epochs if e.get("val_loss") is not None]
    if ep:
        fig.add_trace(go.Scatter(x=[e["epoch"] for e in ep], y=[e["val_loss"] for e in ep], mode=_mode(sess),
                                 name="validation", line=dict(color=COLORS["val"], width=2), marker=split_marker("val")))
    _empty_note(fig, sess, per_epoch=False)
    # a scaled target's loss is in its standard deviations, as Test results' "Loss (scaled)" says
    return _layout(fig, title + metric_units("loss", sess.info)[0], "loss", sess)


def metric_figure(sess: Curve) -> go.Figure:
    """The metric per epoch, train and validation; a scaled target's errors in its own units (metric_in_units)."""
    fig = go.Figure()
    name = next((e.get("metric_name") for e in sess.epochs if e.get("metric_name")), "metric")
    for split, key in (("train", "train_metric"), ("val", "val_metric")):
        pts = [(e["epoch"], metric_in_units(name, e[key], sess.info)[0]) for e in sess.epochs
               if e.get(key) is not None and math.isfinite(e[key])]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode=_mode(sess),
                                     name="validation" if split == "val" else "train",
                                     line=dict(color=COLORS[split], width=2), marker=split_marker(split)))
    _empty_note(fig, sess, per_epoch=True)
    # as the Test results name it, with what it is measured in: "MAE (price)", or "(scaled)" where several targets
    # keep their standard deviations (a two-column forecast's chart read "MAE 0.2" for temperatures varying by 7)
    shown = metric_label(name) + metric_units(name, sess.info)[0]
    fig = _layout(fig, shown, shown, sess)
    return share_axis(fig) if name in ("accuracy", "f1") else fig


def lr_figure(sess: Curve) -> go.Figure:
    fig = go.Figure()
    pts = [(e["epoch"], e["lr"]) for e in sess.epochs if e.get("lr") is not None]
    if pts:
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode=_mode(sess), name="lr",
                                 line=dict(color=COLORS["lr"], width=2)))
    _empty_note(fig, sess, per_epoch=True)
    fig = _layout(fig, "Learning rate", "lr", sess)
    top = max((p[1] for p in pts), default=1e-3)
    # plain numbers (0.01, 0.005, 0): ".1e" ticked a constant rate "1.0e−2, 5.0e−3, 0.0e+0"
    fig.update_layout(showlegend=False, yaxis=dict(range=[0, top * 1.15], tickformat=".3~g"))
    return fig


def curve_upto(sess: Curve, epoch: int | None) -> Curve:
    """``sess`` as it stood after ``epoch`` (its epoch records and the steps up to it); ``sess`` when None."""
    if epoch is None:
        return sess
    spe = sess.steps_per_epoch
    # a copy of ``sess`` (its dataset's scale kept: the replay's frames, the last one included, showed a forecast's
    # MAE in standard deviations, 1.25, where Test results said 42.7 sunspots)
    return replace(sess, steps=[p for p in sess.steps if p[0] <= epoch * spe],
                   epochs=[e for e in sess.epochs if int(e.get("epoch") or 0) <= epoch], active=False)


def stored_curve(rs, run: dict) -> Curve:
    """A run's whole curve read from the store at once (a class's run view; the Train page reads it
    incrementally, :func:`read_curve`)."""
    cur = Curve(run["id"], (run["id"], run.get("queued_at")), info=run.get("dataset_info") or {})
    cur.steps = [(e["step"], e["loss"]) for e in rs.metrics(run["id"], "step") if e.get("loss") is not None]
    cur.epochs = rs.metrics(run["id"], "epoch")
    cur.active = is_live(run["status"])
    return cur
