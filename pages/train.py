"""Train page: hyper-parameters, Start/Pause/Resume/Stop, live curves and the final evaluation."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import streamlit as st

from builder.compat import check_compat
from builder.errors import LayerLabError
from pages import search_mode, ui

ui.ensure_shell()

ui.page_header("Train", "Set the hyper-parameters and train in the background. Curves update live; you can "
               "visit other pages and come back.")

OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop"]
SCHEDULERS = {"none": "Constant", "onecycle": "One-cycle", "cosine": "Cosine", "step": "Step decay",
              "plateau": "Reduce on plateau"}
COLORS = {"train": "#6366f1", "val": "#f59e0b", "lr": "#10b981"}


def task_defaults(task: str, n_train: int) -> dict:
    """Sensible starting values for the task (overridden by the project's saved settings)."""
    base = {"epochs": 20, "batch_size": 64, "lr": 1e-3, "optimizer": "adam", "scheduler": "none",
            "weight_decay": 0.0, "early_stopping": 0, "seed": 0, "device": "auto"}
    if task in ("regression", "reconstruction"):
        base.update(epochs=40, lr=1e-3)
    if n_train < 500:
        base.update(batch_size=32, epochs=max(base["epochs"], 50))
    return base


def settings_section(ds, spec: dict, problems: list, active: bool) -> None:
    """The hyper-parameter form; starts a run on submit."""
    config = settings_form(ds.info.task, len(ds.train), disabled=active or bool(problems))
    if config is None:
        return
    live = bool(config.pop("live_attributions", False))
    proj = ui.project()
    st.session_state.ll_project = proj.model_copy(
        update={"training": {**{k: v for k, v in config.items() if v is not None},
                             **({"dataset": spec["name"]} if spec.get("kind", "builtin") == "builtin" else {})}})
    try:
        st.session_state.ll_job = ui.start_training(ui.project(), spec, config, live=live)
        st.session_state.ll_polling = True
    except LayerLabError as e:
        ui.show_error(e)
    else:
        st.rerun()  # show the live view (with polling) at the top


def settings_form(task: str, n_train: int, disabled: bool) -> dict | None:
    saved = {k: v for k, v in (ui.project().training or {}).items() if k != "dataset"}
    d = {**task_defaults(task, n_train), **saved}
    devices = ui.device_options()
    with st.form("ll_hp", border=True):
        st.markdown("**Hyper-parameters**")
        c = st.columns(4)
        epochs = c[0].number_input("Epochs", 1, 10_000, int(d["epochs"]), help="Passes over the training split")
        batch = c[1].number_input("Batch size", 1, 65_536, int(d["batch_size"]), help="Samples per step")
        lr = c[2].number_input("Learning rate", 1e-6, 10.0, float(d["lr"]), format="%g",
                               help="Step size of the optimizer (peak rate for one-cycle)")
        opt = c[3].selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(d["optimizer"])
                             if d["optimizer"] in OPTIMIZERS else 0)
        c = st.columns(4)
        sched = c[0].selectbox("LR schedule", list(SCHEDULERS), format_func=SCHEDULERS.get,
                               index=list(SCHEDULERS).index(d["scheduler"]) if d["scheduler"] in SCHEDULERS else 0)
        wd = c[1].number_input("Weight decay", 0.0, 1.0, float(d["weight_decay"]), format="%g",
                               help="L2 penalty (decoupled for AdamW)")
        es = c[2].number_input("Early stopping patience", 0, 1000, int(d.get("early_stopping") or 0),
                               help="Stop when validation loss has not improved for this many epochs (0 = off)")
        seed = c[3].number_input("Seed", 0, 2**31 - 1, int(d["seed"]), help="Makes runs reproducible")
        values = [v for v, _ in devices]
        c = st.columns([2, 2])
        dev = c[0].selectbox("Device", values, format_func=dict(devices).get,
                             index=values.index(d["device"]) if d["device"] in values else 0,
                             help="Auto picks the GPU when there is one")
        live = c[1].checkbox("Record attributions live", value=False,
                             help="Attribute 4 fixed validation samples every epoch (Integrated Gradients, 16 steps, "
                                  "a few ms per epoch) and play them back on Explain › Live")
        go_ = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:", disabled=disabled)
    if not go_:
        return None
    return {"epochs": int(epochs), "batch_size": int(batch), "lr": float(lr), "optimizer": opt, "scheduler": sched,
            "weight_decay": float(wd), "early_stopping": int(es) or None, "seed": int(seed), "device": dev,
            "live_attributions": bool(live)}


# ------------------------------------------------------------------------------------------ figures
def _mode(sess: ui.TrainSession) -> str:
    """Markers only for short curves of a finished run: a marker is an SVG node the browser redraws."""
    return "lines+markers" if not sess.active and len(sess.epochs) <= 40 else "lines"


def _layout(fig: go.Figure, title: str, ytitle: str) -> go.Figure:
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=290, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
                      xaxis_title="epoch", yaxis_title=ytitle, uirevision="keep")
    return fig


def loss_figure(sess: ui.TrainSession) -> go.Figure:
    fig = go.Figure()
    spe = max(1, sess.steps_per_epoch)
    steps = sess.steps
    if len(steps) > 600:  # thin for display: the chart cannot show more than a few hundred points anyway
        k = len(steps) // 600 + 1
        steps = steps[::k] + ([steps[-1]] if (len(steps) - 1) % k else [])
    if steps:
        xs = [s / spe for s, _ in steps]
        fig.add_trace(go.Scatter(x=xs, y=[v for _, v in steps], mode="lines", name="train",
                                 line=dict(color=COLORS["train"], width=1.5)))
    ep = [e for e in sess.epochs if e.get("val_loss") is not None]
    if ep:
        fig.add_trace(go.Scatter(x=[e["epoch"] for e in ep], y=[e["val_loss"] for e in ep], mode=_mode(sess),
                                 name="validation", line=dict(color=COLORS["val"], width=2)))
    return _layout(fig, "Loss", "loss")


def metric_figure(sess: ui.TrainSession) -> go.Figure:
    fig = go.Figure()
    name = next((e.get("metric_name") for e in sess.epochs if e.get("metric_name")), "metric")
    for split, key in (("train", "train_metric"), ("val", "val_metric")):
        pts = [(e["epoch"], e[key]) for e in sess.epochs if e.get(key) is not None and math.isfinite(e[key])]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode=_mode(sess),
                                     name="validation" if split == "val" else "train",
                                     line=dict(color=COLORS[split], width=2)))
    return _layout(fig, name.capitalize() if name else "Metric", name)


def lr_figure(sess: ui.TrainSession) -> go.Figure:
    fig = go.Figure()
    pts = [(e["epoch"], e["lr"]) for e in sess.epochs if e.get("lr") is not None]
    if pts:
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode=_mode(sess), name="lr",
                                 line=dict(color=COLORS["lr"], width=2)))
    fig = _layout(fig, "Learning rate", "lr")
    top = max((p[1] for p in pts), default=1e-3)
    fig.update_layout(showlegend=False, yaxis=dict(range=[0, top * 1.15], tickformat=".1e"))
    return fig


def confusion_figure(test: dict) -> go.Figure:
    cm = test["confusion_matrix"]
    names = [str(n) for n in test.get("class_names") or range(len(cm))]
    fig = go.Figure(go.Heatmap(z=cm, x=names, y=names, colorscale="Blues", showscale=False,
                               text=cm, texttemplate="%{text}", hovertemplate="true %{y}<br>predicted %{x}<br>%{z}<extra></extra>"))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title=dict(text="Confusion matrix (test)", font=dict(size=14)),
                      xaxis=dict(title="predicted", type="category"),
                      yaxis=dict(title="true", type="category", autorange="reversed"))
    return fig


# --------------------------------------------------------------------------------------------- live
def _control(action: str) -> None:
    sess = st.session_state.get("ll_job")
    if sess is None:
        return
    getattr(sess.job, action)()
    if action == "pause":
        sess.status = "pausing"
    elif action == "stop":
        sess.status = "stopping"


def live_view() -> None:
    sess: ui.TrainSession | None = st.session_state.get("ll_job")
    if sess is None:
        st.info("No training yet — set the hyper-parameters above and press **Start training**.",
                icon=":material/model_training:")
        return
    sess.drain()
    active = sess.active
    head = st.columns([3, 1, 1, 1], vertical_alignment="center")
    status = sess.status if active or sess.status not in ("queued", "running") else sess.job.status
    icon = {"running": ":green[:material/play_circle:]", "paused": ":orange[:material/pause_circle:]",
            "pausing": ":orange[:material/pause_circle:]", "finished": ":green[:material/check_circle:]",
            "stopped": ":gray[:material/stop_circle:]", "stopping": ":gray[:material/stop_circle:]",
            "failed": ":red[:material/error:]"}.get(status, ":gray[:material/hourglass_top:]")
    head[0].markdown(f"{icon} **{status.capitalize()}** · run `{sess.run_id}`")
    paused = status in ("paused", "pausing")
    if paused:
        head[1].button("Resume", icon=":material/play_arrow:", on_click=_control, args=("resume",),
                       disabled=not active, width="stretch", key="ll_resume")
    else:
        head[1].button("Pause", icon=":material/pause:", on_click=_control, args=("pause",),
                       disabled=not active, width="stretch", key="ll_pause")
    head[2].button("Stop", icon=":material/stop:", on_click=_control, args=("stop",), disabled=not active,
                   width="stretch", key="ll_stop")
    head[3].page_link("pages/runs.py", label="Runs", icon=":material/history:")

    total = max(1, sess.total_epochs * sess.steps_per_epoch)
    step = sess.steps[-1][0] if sess.steps else 0
    last = sess.epochs[-1] if sess.epochs else {}
    frac = 1.0 if status == "finished" else min(1.0, step / total)
    ep_done = int(last.get("epoch", 0))
    eta = last.get("eta_s")
    sps = last.get("samples_per_s")
    bits = [f"Epoch {min(ep_done + (1 if active else 0), sess.total_epochs)}/{sess.total_epochs}"]
    if active and eta is not None:
        bits.append(f"ETA {ui.fmt_duration(eta)}")
    if sps:
        bits.append(f"{sps:,.0f} samples/s")
    if sess.steps:
        bits.append(f"step {step} · loss {sess.steps[-1][1]:.4f}")
    st.progress(frac, text=" · ".join(bits))
    if status == "failed" or (sess.job.error is not None and not active):
        st.error(ui.md(sess.message or str(sess.job.error)), icon=":material/error:")
    elif sess.message and status in ("stopped", "finished"):
        st.caption(ui.md(sess.message))

    c1, c2, c3 = st.columns(3)
    # static (no hover) while training: redrawing is cheaper, so the browser takes less CPU from the trainer
    cfg = {"displayModeBar": False, "staticPlot": active}
    c1.plotly_chart(loss_figure(sess), width="stretch", config=cfg, key="ll_fig_loss")
    c2.plotly_chart(metric_figure(sess), width="stretch", config=cfg, key="ll_fig_metric")
    c3.plotly_chart(lr_figure(sess), width="stretch", config=cfg, key="ll_fig_lr")

    if not active:
        if st.session_state.get("ll_polling"):
            st.session_state.ll_polling = False
            st.rerun()  # leave polling mode (full rerun, so the form's Start button comes back)
        results(sess)


def results(sess: ui.TrainSession) -> None:
    if sess.status == "finished" and sess.job.error is None:
        st.session_state.ll_model = sess.model
        st.session_state.ll_model_run = sess.run_id
    test = sess.test
    if not test:
        if sess.status in ("stopped", "interrupted"):
            st.info("Training was stopped. Resume it from the Runs page, or start a new run.",
                    icon=":material/pause_circle:")
        return
    st.subheader("Test results")
    keys = [("accuracy", "Accuracy", True), ("macro_f1", "Macro F1", False), ("r2", "R²", False),
            ("mse", "MSE", False), ("mae", "MAE", False), ("loss", "Loss", False)]
    shown = [(k, lab, pct) for k, lab, pct in keys if test.get(k) is not None]
    cols = st.columns(len(shown) + 1)
    for col, (k, lab, pct) in zip(cols, shown):
        col.metric(lab, ui.fmt_metric(test[k], pct))
    cols[-1].metric("Test samples", test.get("n", "—"))
    if test.get("confusion_matrix"):
        left, right = st.columns([1, 1], gap="large")
        left.plotly_chart(confusion_figure(test), width="stretch", config={"displayModeBar": False},
                          key="ll_fig_cm")
        import pandas as pd
        rows = [{"class": name, "precision": v["precision"], "recall": v["recall"], "f1": v["f1"],
                 "support": v["support"]} for name, v in (test.get("per_class") or {}).items()]
        with right:
            st.markdown("**Per class**")
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                         column_config={k: st.column_config.NumberColumn(format="%.3f")
                                        for k in ("precision", "recall", "f1")})
    st.session_state.ll_run_focus = sess.run_id
    st.page_link("pages/runs.py", label=f"Open run {sess.run_id} on the Runs page", icon=":material/open_in_new:")


# --------------------------------------------------------------------------------------------- page
sess = st.session_state.get("ll_job")
active = sess is not None and sess.active
spec = ui.dataset_spec()
g = ui.graph()

try:
    ds = ui.load_spec(spec)
except LayerLabError as e:
    ds = None
    ui.show_error(e)

top = st.columns(4)
report, _ = ui.analyse(g)
top[0].metric("Project", ui.md(ui.project().name or "untitled"))
top[1].metric("Dataset", ui.md(ui.spec_public(spec)))
top[2].metric("Parameters", ui.human_count(report.total_params))
top[3].metric("Task", ds.info.task if ds else "—")

problems = []
if not g.nodes:
    problems.append("The canvas is empty — build a network or load a template on the Build page.")
elif not report.ok:
    problems += [str(p) for p in report.problems[:6]]
elif ds is not None:
    problems += [p.message for p in check_compat(g, ds.info)]
if problems and not active:
    with st.container(border=True):
        st.markdown("**Fix these before training**")
        for p in problems:
            st.warning(ui.md(p), icon=":material/warning:")
        c1, c2 = st.columns(2)
        c1.page_link("pages/build.py", label="Open the Build page", icon=":material/account_tree:")
        c2.page_link("pages/data.py", label="Open the Data page (one-click fix)", icon=":material/dataset:")

if "ll_mode_next" in st.session_state:
    st.session_state.ll_train_mode = st.session_state.pop("ll_mode_next")
search_mode.tracking_setting()
if st.segmented_control("Mode", ["Train", "Search"], default="Train", key="ll_train_mode",
                        label_visibility="collapsed") == "Search":
    search_mode.render(ds, spec, problems)
    st.stop()

running_now = sess is not None and sess.active
if sess is not None:
    st.subheader("Progress")
    if running_now:
        st.session_state.ll_polling = True
    st.fragment(run_every=0.5 if running_now else None)(live_view)()
    if ds is not None:
        # different labels so the expander opens again when a run ends (Streamlit keeps expander state)
        label = "Settings for the next run (a run is in progress)" if running_now else "Settings for a new run"
        with st.expander(label, expanded=not running_now, icon=":material/tune:"):
            settings_section(ds, spec, problems, running_now)
elif ds is not None:
    settings_section(ds, spec, problems, False)
    st.info("No training yet — set the hyper-parameters above and press **Start training**.",
            icon=":material/model_training:")
