"""Train page: hyper-parameters, Start/Pause/Resume/Stop, live curves and the final evaluation."""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st

from app_pages import crossval_mode, nav, search_mode, tips, train_doctor, ui
from app_pages.curves import Curve, curve_upto, epoch_range, loss_figure, lr_figure, metric_figure, read_curve
from app_pages.train_form import kept_settings, settings_form
from builder.errors import LayerLabError
from builder.escape import md_code, plotly_text
from builder.graph.edit import graph_hash
from builder.runs.record import shown_time
from builder.runs.run_time import stamp
from builder.runs.summary import current_run, run_label
from builder.training.lineage import baseline_line, baseline_tag, init_line
from builder.training.metrics_units import curves_note, metric_in_units, metric_label, metric_units
from builder.training.objectives import has_objective, objective_kind, train_verdict, with_teacher
from builder.training.run_status import (
    CUT_SHORT,
    ENDED_BY_ERROR,
    ENDED_CLEANLY,
    RunStatus,
    can_resume,
    is_live,
)

ui.page_header("Train", "Set the hyper-parameters and train in the background. Training runs in its own "
               "process: curves update live, and it keeps going when you leave the page, close the tab or "
               "the server restarts.")


def _student_alone(student, ds, config: dict, teacher: str) -> dict:
    """A distillation's baseline, as ``layerlab train --teacher`` trains it: the student without its teacher,
    same settings and seed, on the teacher's split (``split_of``), as a job of its own started beside the
    distilled one; returns the distilled run's tags that name it (its figures are read when it finishes)."""

    alone = student.model_copy(update={"name": f"{student.name or 'untitled'} (student alone)", "training": {
        **kept_settings(student.training), "split_of": teacher}})
    return baseline_tag(ui.start_job(alone, ds, config, tags={"baseline_of_teacher": teacher}), None)


def settings_section(ds, spec: dict, problems: list, active: bool) -> None:
    """The hyper-parameter form; starts a run on submit."""
    config = settings_form(ds.info.task, len(ds.train), disabled=active or bool(problems))
    if config is None:
        return
    live = bool(config.pop("live_attributions", False))
    teacher = config.pop("teacher", None)
    proj = student = ui.project()
    if teacher:  # distillation: the objective is drawn on the canvas (builder.training.objectives.with_teacher)

        try:
            proj = with_teacher(proj, teacher)
        except LayerLabError as e:
            ui.show_error(e)
            return
    # an imported model starts from its weights (init_from); keep transfer-learning settings the form lacks
    config = {**{k: v for k, v in (proj.training or {}).items() if k in ("init_from", "init_nodes")}, **config}
    st.session_state.ll_project = proj.model_copy(
        update={"training": {**kept_settings(proj.training),
                             **({"teacher": teacher} if teacher else {}),
                             **{k: v for k, v in config.items() if v is not None or k == "early_stopping"},
                             **({"dataset": spec["name"]} if spec.get("kind", "builtin") == "builtin" else {})}})
    try:
        tags = _student_alone(student, ds, config, teacher) if teacher else None
        ui.start_job(ui.project(), ds, config, live=live, tags=tags)
        st.session_state.ll_polling = True
    except LayerLabError as e:
        ui.show_error(e)
    else:
        ui.autosave()
        st.rerun()  # show the live view (with polling) at the top


# ------------------------------------------------------------------------------------------ figures
def confusion_figure(test: dict) -> go.Figure:
    cm = test["confusion_matrix"]
    names = [plotly_text(n) for n in test.get("class_names") or range(len(cm))]  # the category labels
    fig = go.Figure(go.Heatmap(z=cm, x=names, y=names, colorscale="Blues", showscale=False,
                               text=cm, texttemplate="%{text}", hovertemplate="true %{y}<br>predicted %{x}<br>%{z}<extra></extra>"))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title=dict(text="Confusion matrix (test)", font=dict(size=14)),
                      xaxis=dict(title="predicted", type="category"),
                      yaxis=dict(title="true", type="category", autorange="reversed"))
    return fig


# --------------------------------------------------------------------------------------------- live
def _control(run_id: str, action: str) -> None:
    try:
        ui.control_job(run_id, action)
    except LayerLabError as e:
        ui.flash(str(e))
    else:
        st.session_state.ll_requested = (run_id, action)


# The live view refreshes every FAST_POLL_S until the first curve point of a run is on screen (a Start click
# shows a curve within ~1 s), then every SLOW_POLL_S: redrawing three charts twice a second took the browser
# and the server enough CPU to slow a job on a 2-core machine by 10-30 % (bench/bench_jobs.py).
FAST_POLL_S, SLOW_POLL_S, FAST_WINDOW_S = 0.5, 2.0, 15.0


def poll_every(run_id: str, shown: bool = False) -> float:
    """Refresh interval of the live view for ``run_id`` in this session: fast until its first curve point was
    ``shown`` (at most ``FAST_WINDOW_S``), then slow."""

    now = time.monotonic()
    since = st.session_state.get("ll_fast_poll")
    if not since or since[0] != run_id:
        since = st.session_state.ll_fast_poll = (run_id, now + FAST_WINDOW_S)
    if shown and now < since[1]:
        since = st.session_state.ll_fast_poll = (run_id, now)
    return FAST_POLL_S if now < since[1] else SLOW_POLL_S


ICONS = {RunStatus.RUNNING: ":green[:material/play_circle:]", RunStatus.PAUSED: ":orange[:material/pause_circle:]",
         RunStatus.FINISHED: ":green[:material/check_circle:]", RunStatus.STOPPED: ":gray[:material/stop_circle:]",
         RunStatus.FAILED: ":red[:material/error:]", RunStatus.INTERRUPTED: ":orange[:material/warning:]",
         RunStatus.QUEUED: ":gray[:material/hourglass_top:]"}


def live_view() -> None:
    """The canvas's run: status, controls, progress and curves, read from the run store."""
    from builder.jobs.queue import queue_position  # lazy: heavy (torch)

    rs = ui.store()
    run_id = st.session_state.get("ll_train_run")
    if not run_id:
        return
    try:
        run = ui.get_run(run_id, rs)
    except LayerLabError as e:
        ui.show_error(e)
        return
    rs.mark_interrupted()
    sess = read_curve(rs, run)
    active, status = sess.active, run["status"]
    polling = st.session_state.get("ll_poll_every")
    if active and (polling not in (FAST_POLL_S, SLOW_POLL_S) or (polling == FAST_POLL_S and poll_every(run_id) != FAST_POLL_S)):
        # the whole page once, to follow the run at the slower interval, or to follow it at all: a stopped run
        # resumed here (Resume reruns this view only) was drawn by a view that did not refresh, and stayed at its
        # stopped epoch, "Stopping · place 1 in the queue", while it trained to its end
        st.rerun()
    if active and status != st.session_state.get("ll_page_status"):
        # paused, resumed or started by its queue since the page was drawn: the whole page once, so that the
        # sidebar's count says so (it said "1 training job running" beside "Paused" until one left the page)
        st.session_state.ll_page_status = status
        st.rerun()
    mine = ui.can_control(run)
    req = st.session_state.get("ll_requested")
    shown = status
    if req and req[0] == run_id and active:
        shown = {"pause": "pausing" if status == RunStatus.RUNNING else status, "stop": "stopping",
                 "resume": "resuming" if status == RunStatus.PAUSED else status}[req[1]]
    head = st.columns([3, 1, 1, 1], vertical_alignment="center")
    where = ""
    if status == RunStatus.QUEUED:
        pos = queue_position(rs, run_id)
        where = f" · place {pos} in the queue" if pos else ""
    # the run is named in the caption above (its name and start, then its id)
    head[0].markdown(f"{ICONS.get(status, ICONS[RunStatus.QUEUED])} **{shown.capitalize()}**{where}",
                     help=f"Run `{run_id}` (the Runs page and `layerlab runs` know it by this id)")
    if status == RunStatus.PAUSED:
        head[1].button("Resume", icon=":material/play_arrow:", on_click=_control, args=(run_id, "resume"),
                       disabled=not mine, width="stretch", key="ll_resume")
    elif _resumable(run, rs):  # a stopped run: Resume where Pause was (both controls were greyed out, Resume
        # sat below the charts)
        head[1].button("Resume", type="primary", icon=":material/play_arrow:", key="ll_train_resume",
                       on_click=_resume, args=(run_id,), width="stretch",
                       help="Continue this run from its last checkpoint")
    else:
        head[1].button("Pause", icon=":material/pause:", on_click=_control, args=(run_id, "pause"),
                       disabled=not (active and mine), width="stretch", key="ll_pause")
    head[2].button("Stop", icon=":material/stop:", on_click=_control, args=(run_id, "stop"),
                   disabled=not (active and mine), width="stretch", key="ll_stop")
    st.session_state.ll_run_focus = run_id  # the Runs page opens on this run, with its Pause and Stop
    head[3].page_link(nav.RUNS, label="Runs", icon=":material/history:", help=f"Open run {run_id} on the Runs page")

    total_epochs = int((run.get("config") or {}).get("epochs") or 1)
    total = max(1, total_epochs * sess.steps_per_epoch)
    step = sess.steps[-1][0] if sess.steps else 0
    last = sess.epochs[-1] if sess.epochs else {}
    frac = 1.0 if status == RunStatus.FINISHED else min(1.0, step / total)
    ep_done = int(last.get("epoch", 0))
    eta = last.get("eta_s")
    sps = last.get("samples_per_s")
    bits = [f"Epoch {min(ep_done + (1 if status == RunStatus.RUNNING else 0), total_epochs)}/{total_epochs}"]
    if status == RunStatus.RUNNING and eta is not None:  # paused or queued, it is not ending in that time
        bits.append(f"ETA {ui.fmt_duration(eta)}")
    if sps:
        bits.append(f"{sps:,.0f} samples/s")
    if sess.steps:
        bits.append(f"step {step} · loss {sess.steps[-1][1]:.4f}")
    st.progress(frac, text=" · ".join(bits))
    if status in ENDED_BY_ERROR:
        st.error(ui.md(run.get("message") or status), icon=":material/error:")
    elif run.get("message") and status in ENDED_CLEANLY:
        st.caption(ui.md(run.shown_message))  # a stop by a teacher, an admin or a quota names who

    from app_pages import generative_view  # lazy: heavy (plotly)

    # static (no hover) while training: redrawing is cheaper, so the browser takes less CPU from the trainer
    cfg = {"displayModeBar": False, "staticPlot": active}
    drawn = any(e.get("terms") for e in sess.epochs)  # a drawn objective (GAN, VAE): its loss is its metric
    recon = not drawn and not active and generative_view.shows_reconstructions(run)  # an autoencoder's
    made = st.container() if drawn or recon else None  # what the run makes first, above the replay's slider
    shown = None
    last = (_epochs(sess) or [None])[-1]
    if not active:  # an ended run replays: every chart (boundary, samples) as it stood after the chosen epoch
        shown = replay_controls(sess, run_id)
        sess = curve_upto(sess, shown)
    if recon:
        with made:
            generative_view.reconstruction_part(run, rs, cfg)
    if drawn:  # what the run makes (samples, reconstructions) first, then its loss terms
        x_range = epoch_range(sess)
        with made:
            playing = (st.session_state.get("ll_replay") or {}).get("run") == run_id
            generative_view.render(run, sess.epochs, active, rs, epoch=shown, last=last, playing=playing,
                                   x_range=x_range, terms=False)
        # its loss terms below the replay's slider, which now sits right under the grid it moves (it was under
        # the terms chart, with the grid scrolled out of a 900-px window)
        generative_view.terms_part(sess.epochs, active, x_range)
        c1, c3 = st.columns(2)
    else:
        c1, c2, c3 = st.columns(3)
        c2.plotly_chart(metric_figure(sess), width="stretch", config=cfg, key="ll_fig_metric")
        if note := curves_note(next((e.get("metric_name") for e in sess.epochs if e.get("metric_name")), None)):
            c2.caption(note)  # a language model's loss and perplexity are measured at different moments
    adversarial = drawn and _adversarial(run)
    c1.plotly_chart(loss_figure(sess, SUMMED_LOSS if adversarial else "Loss"), width="stretch", config=cfg,
                    key="ll_fig_loss")
    c3.plotly_chart(lr_figure(sess), width="stretch", config=cfg, key="ll_fig_lr")
    with c1:
        for name in ("adversarial",) if adversarial else ("loss", "overfitting"):  # "both should fall" is not
            # true of a GAN's networks
            tips.tip(name)
    with c3:
        tips.tip("learning_rate")
    boundary_view(sess, cfg)
    texts = [t[:2000] for e in sess.epochs  # a job's word: a text, else nothing shown
             if isinstance(t := (e.get("extras") or {}).get("text_sample"), str) and t]
    if texts:  # a language model: what it writes after each epoch (temperature 0.8, top-k 20)
        st.markdown("**What the model writes after each epoch** (the same prompt, temperature 0.8, top-k 20)")
        for k, text in list(enumerate(texts, start=1))[-5:]:
            st.caption(f"epoch {k}: {ui.md(' '.join(text.split()))}")  # one line: a sample's newlines and indents
            # would render as Markdown code blocks
    train_doctor.render(run)  # findings with one-click fixes, curve anomalies naming their nodes
    if sess.steps:
        poll_every(run_id, shown=True)  # a point is on screen: the next refresh switches to the slow interval

    if not active:
        if st.session_state.get("ll_polling"):
            st.session_state.ll_polling = False
            # watched to its own end, over in seconds (not a run the person has just stopped: its curves moving
            # again right after Stop looked as if the Stop had not worked)
            if (run["status"] == RunStatus.FINISHED and _quick(run)
                    and len(eps := _epochs(st.session_state.ll_curve)) >= 2):
                st.session_state.ll_replay = {"run": run_id, "epoch": eps[0]}  # so it plays back once by itself
            st.rerun()  # leave polling mode (full rerun, so the form's Start button comes back)
        results(run, rs)
        replay_tick(run_id)


# --------------------------------------------------------------------------------------------- replay
# A first run is over in seconds (the CNN template: ~10 s, one or two chart frames): after it ends, the page
# plays it back epoch by epoch (curves, decision boundary) from what was recorded; no run is slowed for it.
REPLAY_FRAME_S, REPLAY_FRAMES = 0.5, 30  # seconds a frame; a long run is played in about this many frames


REPLAY_BY_ITSELF_S = 60.0  # a run watched to its end plays back once by itself when it lasted at most this


def _quick(run) -> bool:
    """Whether ``run`` trained for at most :data:`REPLAY_BY_ITSELF_S` (its start and end times)."""

    start, end = stamp(run.info.started_at), stamp(run.info.finished_at)
    return start is not None and end is not None and end - start <= REPLAY_BY_ITSELF_S


def _epochs(sess: Curve) -> list[int]:
    return sorted({int(e["epoch"]) for e in sess.epochs if e.get("epoch")})


def _replay(run_id: str, playing: bool) -> None:
    eps = _epochs(st.session_state.ll_curve)
    st.session_state.ll_replay = {"run": run_id, "epoch": eps[0]} if playing else None
    if not playing:  # the slider stays where the replay stopped: a new slider (key) that starts there
        st.session_state.ll_replay_stop = {"run": run_id, "epoch": st.session_state.get("ll_replay_at", eps[-1])}
        st.session_state.ll_replay_gen = st.session_state.get("ll_replay_gen", 0) + 1


def _slider_key(run_id: str) -> str:
    """The epoch slider's key: a new one after each replay (``ll_replay_gen``). The replay's end set the old key's
    state, and the browser drew the slider at its first epoch ("Epoch shown 1") beside charts of all 12 epochs:
    a slider that comes back after the replay is a new widget whose value is where the replay stopped."""
    gen = st.session_state.get("ll_replay_gen", 0)
    return f"ll_replay_epoch_{run_id}" + (f"_{gen}" if gen else "")


def replay_controls(sess: Curve, run_id: str) -> int | None:
    """Replay of an ended run: a Play button and an epoch slider; returns the epoch the charts show (None: all)."""
    eps = _epochs(sess)
    if len(eps) < 2:
        return None
    play = st.session_state.get("ll_replay")
    c = st.columns([1, 5], vertical_alignment="center")
    if play and play["run"] == run_id:
        epoch = st.session_state.ll_replay_at = min(play["epoch"], eps[-1])
        c[0].button("Pause replay", icon=":material/pause:", key="ll_replay_pause", on_click=_replay, args=(run_id, False),
                    width="stretch")
        c[1].progress(eps.index(epoch) / (len(eps) - 1) if epoch in eps else 1.0,
                      text=f"Replaying the run: epoch {epoch} of {eps[-1]}")
        return epoch
    c[0].button("Replay", icon=":material/replay:", key="ll_replay_play", on_click=_replay, args=(run_id, True),
                width="stretch", help="Watch the run learn again: its curves (and decision boundary) epoch by epoch")
    key = _slider_key(run_id)
    if key in st.session_state and st.session_state[key] not in eps:
        del st.session_state[key]  # (an epoch the curve no longer has)
    stop = st.session_state.get("ll_replay_stop") or {}
    start = stop["epoch"] if stop.get("run") == run_id and stop.get("epoch") in eps else eps[-1]
    # the last epoch at first; where a replay stopped after one (its value, never a state set beside it)
    return c[1].select_slider("Epoch shown", eps, value=start, key=key, help="The charts as they stood after this epoch")


def replay_every(run_id: str) -> float | None:
    """The view's refresh interval after ``run_id`` ended: one frame while its replay plays, else None."""
    play = st.session_state.get("ll_replay")
    return REPLAY_FRAME_S if play and play["run"] == run_id else None


def replay_tick(run_id: str) -> None:
    """After a frame of a playing replay is drawn: move it on to the next frame (the view refreshes every
    :data:`REPLAY_FRAME_S`); after the last, stop. A full rerun starts and stops the refreshing."""
    play = st.session_state.get("ll_replay")
    if not play or play["run"] != run_id:
        return
    if st.session_state.get("ll_poll_every") != REPLAY_FRAME_S:
        st.rerun()  # the view is not refreshing yet: the whole page once, to refresh every frame
    eps = _epochs(st.session_state.ll_curve)
    later = [e for e in eps if e > play["epoch"]]
    if not later:
        _replay(run_id, False)
        st.rerun()  # the whole page once, to stop refreshing
    play["epoch"] = later[min(max(1, len(eps) // REPLAY_FRAMES), len(later)) - 1]


def boundary_view(sess: Curve, cfg: dict) -> None:
    """2-D toy datasets: the model's decision boundary with the training points, redrawn every epoch (the job
    stores a grid with each epoch's metrics, see builder.interpret.boundary)."""
    from builder.interpret.boundary import latest_boundary  # lazy: heavy (torch)

    grid, points = latest_boundary(sess.epochs)
    if not grid:
        return
    from builder.interpret.figures import boundary_figure  # lazy: heavy (plotly)

    left, right = st.columns([3, 2], gap="medium", vertical_alignment="center")
    left.plotly_chart(boundary_figure(grid, points, height=380), width="stretch", config=cfg,
                      key="ll_fig_boundary")
    right.markdown("**Decision boundary**")
    right.caption("The colour is the model's prediction over the plane (for two classes, the probability of "
                  "class 1; the dark line is 0.5); dots are training points. It is redrawn after every epoch, "
                  "as in TensorFlow Playground.")


def _resumable(run: dict, rs) -> bool:
    """Whether this person can resume ``run`` from here: it was cut short, is theirs to control and has a
    checkpoint."""
    return (run["status"] in CUT_SHORT and ui.can_control(run)
            and can_resume(run, has_checkpoint=rs.folder(run["id"]).has_checkpoint))


def _resume(run_id: str) -> None:
    try:
        ui.start_job(None, None, {}, resume_run=run_id)
    except LayerLabError as e:
        ui.flash(f"Cannot resume {run_id}: {e}")
        return
    st.session_state.ll_run = run_id
    st.session_state.ll_polling = True
    st.session_state.pop("ll_requested", None)  # the Stop asked before: the resumed run showed as "Stopping"
    ui.flash("Resuming this run from its last checkpoint")


SUMMED_LOSS = "Summed loss (all terms)"  # a GAN's: its networks' losses added, which need not fall


def _adversarial(run) -> bool:
    """Whether ``run`` trains networks against each other (a GAN): its summed loss is no measure of learning."""
    from builder.interpret.doctor import is_adversarial  # lazy: heavy (torch)

    return is_adversarial(run.get("project") or {})


def results(run: dict, rs) -> None:
    test = run.get("test_metrics")
    if not test:
        if run["status"] in CUT_SHORT:
            by = f" by {ui.md(run.stopped_by)}" if run.stopped_by else ""  # a teacher's or an admin's stop says so
            st.info(f"Training was stopped{by} before its last epoch. Resume it from its last checkpoint (Resume, "
                    "above), or start a new run below." if _resumable(run, rs) else
                    f"Training was stopped{by}. Start a new run below.", icon=":material/pause_circle:")
        return
    st.subheader("Test results")
    from builder.runs.summary import baseline_tags  # lazy: heavy (sqlalchemy)

    if line := baseline_line(baseline_tags(ui.store(), run), test):  # a distilled run beside its student alone
        st.info(ui.md(line), icon=":material/compare_arrows:")
    if line := init_line(run.environment):  # fine-tuned: which layers came from the source and which started random
        st.caption(ui.md(line))
    # every figure the evaluation measures (builder.training.metrics.evaluate): a language model's perplexity and a
    # forecast's RMSE were measured and never shown (a GPT's Test results read "Loss 0.1572 · Test samples 9")
    keys = ("accuracy", "macro_f1", "perplexity", "r2", "mse", "rmse", "mae", "loss")
    shown = [(k, metric_label(k)) for k in keys if test.get(k) is not None]
    if test.get("n") is not None:  # (a drawn objective's run older than its count: no "Test samples —")
        shown.append(("n", "Test samples"))
    if not shown:
        return
    adversarial = "loss" in test and _adversarial(run)
    cols = st.columns(len(shown))
    for col, (k, lab) in zip(cols, shown):
        value, _ = metric_in_units(k, test[k], run.get("dataset_info"))  # a scaled target's errors in its units
        unit, helptext = metric_units(k, run.get("dataset_info"))  # " (price)", " (scaled)", or nothing
        if k == "loss" and adversarial:  # a GAN's summed loss on the test split is no score of its samples
            lab, helptext = SUMMED_LOSS, ("The generator's and the discriminator's losses added on the test split: "
                                          "they play against each other, so this is not a score of the samples")
        col.metric(lab + ("" if k == "loss" and adversarial else unit), test[k] if k == "n" else ui.metric_text(k, value),
                   help=helptext)
    if test.get("confusion_matrix"):
        left, right = st.columns([1, 1], gap="large")
        left.plotly_chart(confusion_figure(test), width="stretch", config={"displayModeBar": False},
                          key="ll_fig_cm")
        with left:
            tips.tip("confusion")
        import pandas as pd  # lazy: heavy (pandas)
        rows = [{"class": name, "precision": v["precision"], "recall": v["recall"], "f1": v["f1"],
                 "support": v["support"]} for name, v in (test.get("per_class") or {}).items()]
        with right:
            st.markdown("**Per class**")
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                         column_config={k: st.column_config.NumberColumn(format="%.3f")
                                        for k in ("precision", "recall", "f1")})
    st.session_state.ll_run_focus = run["id"]
    st.page_link(nav.RUNS, label="Open this run on the Runs page", icon=":material/open_in_new:",
                 help=f"Run id {run['id']}")  # the run is named above, not by a hash


def _started_here(current: dict | None) -> dict | None:
    """The run this session started from the canvas as it is now, when the store matches none newer to the canvas:
    a LoRA run trains the network with adapters added, so its graph is another, and the page said "No training yet"
    while it trained and after it finished (a usability review)."""
    rid = st.session_state.get("ll_run")
    if not rid or st.session_state.get("ll_run_graph") != graph_hash(g) or (current and current["id"] == rid):
        return current
    try:
        run = ui.store().get(rid)
    except LayerLabError:  # deleted since
        return current
    newer = current is None or str(run.get("created_at") or "") > str(current.get("created_at") or "")
    return run if newer else current


def _imported_note(imported: dict | None) -> str:
    """What the Train page says of an imported model on the canvas (its weights are a run of status imported)."""
    if imported is None:
        return ""
    starts = (ui.project().training or {}).get("init_from") == imported["id"]
    return (f" This network was imported ({ui.md(run_label(imported, short_id=False))}, run {md_code(imported['id'])})"
            + (": training starts from its weights." if starts else "."))


# --------------------------------------------------------------------------------------------- page
spec = ui.dataset_spec()
g = ui.graph()
imported = None
try:
    current = current_run(ui.store(), g, None)
except LayerLabError as e:
    current = None
    ui.show_error(e)
current = _started_here(current)
if current is not None and current["status"] == RunStatus.IMPORTED:  # an import's weights: no training to show
    imported, current = current, None  # it showed as a stalled run: "Imported", Epoch 0/20 and three empty charts
st.session_state.ll_train_run = current["id"] if current else None
st.session_state.ll_page_status = current["status"] if current else None  # what the sidebar's job count says
active = current is not None and is_live(current["status"])

try:
    ds = ui.load_spec(spec)
except LayerLabError as e:
    ds = None
    ui.show_error(e)
    st.page_link(nav.DATA, label="Choose a dataset on the Data page", icon=":material/dataset:")
if not active and not st.session_state.get("ll_data") and not (ui.project().training or {}).get("dataset"):
    st.info(f"No dataset chosen yet: training uses **{ui.md(spec['name'])}**. Pick another on the Data page.",
            icon=":material/dataset:")
    st.page_link(nav.DATA, label="Open the Data page", icon=":material/dataset:")

top = st.columns(4)
report, _ = ui.analyse(g)
top[0].metric("Project", ui.md(ui.project().name or "untitled"))
top[1].metric("Dataset", ui.md(ui.spec_public(spec)))
top[2].metric("Parameters", ui.human_count(report.total_params))
top[3].metric("Task", f"{objective_kind(g)}: its drawn losses" if has_objective(g) else ds.info.task if ds else "—",
              help="The loss nodes drawn on the canvas say what is learned (a GAN: images like the data's; a "
                   "VAE: the data back through a small code)" if has_objective(g) else None)

problems = []
data_fix = False  # the Data page's one click fixes mismatches between a sound graph and the data, nothing else
if not g.nodes:
    problems.append("The canvas is empty — build a network or load a template on the Build page.")
elif not report.ok:
    problems += [str(p) for p in report.problems[:6]]
elif ds is not None:  # the Data page's verdict is this one (drawn losses: the Input checks only)
    try:
        problems += [p.message for p in train_verdict(g, ds, report)]
        data_fix = bool(problems)
    except LayerLabError as e:
        problems.append(str(e))
if problems and not active:
    with st.container(border=True):
        st.markdown("**Fix these before training**")
        for p in problems:
            st.warning(ui.error_md(p), icon=":material/warning:")  # some quote an error
        c1, c2 = st.columns(2)
        c1.page_link(nav.BUILD, label="Open the Build page", icon=":material/account_tree:")
        if data_fix:  # a graph with problems of its own (no Input, a dangling layer) is fixed on Build only
            c2.page_link(nav.DATA, label="Open the Data page (one-click fix)", icon=":material/dataset:")

if "ll_mode_next" in st.session_state:
    st.session_state.ll_train_mode = st.session_state.pop("ll_mode_next")
search_mode.tracking_setting()
mode = st.segmented_control("Mode", ["Train", "Search", "Cross-validate"], default="Train", key="ll_train_mode",
                            persist_state="session", label_visibility="collapsed")  # kept over a page trip
if mode == "Search":
    search_mode.render(ds, spec, problems)
    st.stop()
if mode == "Cross-validate":
    crossval_mode.render(ds, spec, problems)
    st.stop()

train_doctor.applied_notice()  # what the doctor's last fix changed, with Undo
if current is not None:
    st.subheader("Progress")
    # named by its name and start; its id last, for the Runs page and `layerlab runs` (the caption ended in "…d025d7")
    st.caption(f"The newest run of the network on the canvas: {ui.md(run_label(current, short_id=False))} · started "
               f"{ui.md(shown_time(current.get('created_at'), seconds=False))} · run {md_code(current['id'])}")
    if active:
        st.session_state.ll_polling = True
    every = st.session_state.ll_poll_every = poll_every(current["id"]) if active else replay_every(current["id"])
    st.fragment(run_every=every)(live_view)()
    if ds is not None:
        # different labels so the expander opens again when a run ends (Streamlit keeps expander state)
        label = "Settings for the next run (a run is in progress)" if active else "Settings for a new run"
        with st.expander(label, expanded=not active, icon=":material/tune:"):
            settings_section(ds, spec, problems, active)
elif ds is not None:
    settings_section(ds, spec, problems, False)
    st.info("No training yet for the network on the canvas — set the hyper-parameters above and press "
            "**Start training**." + _imported_note(imported), icon=":material/model_training:")
