"""Class page: students join a class with its code and get the starter; a teacher creates classes, posts
starters, follows every member's runs, reads the leaderboard and stops runaway jobs (builder.runs.classes)."""

from __future__ import annotations

import contextlib

import streamlit as st

from app_pages import ui
from app_pages.curves import loss_figure, metric_figure, stored_curve
from builder.data.sources import travels
from builder.errors import LayerLabError
from builder.runs import classes, owners
from builder.runs.summary import dataset_label, epoch_figures, figures_on_test, has_own_metric
from builder.training.metrics_units import SCORED, metric_label, scored_metrics
from builder.training.run_status import is_live

ui.page_header("Classes", "Join your class with the code your teacher shows, and start from the class's network. "
               "Teachers create classes and follow every student's runs here.")


def _open_starter(cls: dict) -> None:
    proj = classes.starter_project(cls)

    ds = proj.dataset  # a built-in travels; an upload or a path of the teacher's never does
    ui.replace_project(proj, f"Opened the starter of {cls['name']}", data=dict(ds) if travels(ds) else None)


def _join(key: str) -> None:
    code = str(st.session_state.get(key) or "")
    try:
        cls = classes.join_class(ui.workspace(), code, ui.owner())
    except LayerLabError as e:
        st.session_state.ll_class_error = str(e)
        return
    st.session_state.ll_class_error = None
    st.session_state[key] = ""  # joined: the box is empty again (the code stayed in it, as if not yet sent)
    with contextlib.suppress(KeyError):
        del st.query_params["join"]  # a ?join= link is used up: a reload does not fill the box again
    _open_starter(cls)


def _my_quota() -> None:
    """This person's limits and use (builder.jobs.quotas), when the server sets any."""
    from builder.jobs import quotas  # lazy: heavy (sqlalchemy)

    try:
        limit = quotas.limits(ui.workspace(), ui.owner())
        if all(v is None for v in limit.values()):
            return
        used = quotas.usage(ui.store(), ui.owner())
    except LayerLabError as e:
        ui.show_error(e)
        return
    parts = [f"{used[k]:g} of {limit[k]:g} {label}" for k, label in
             (("running", "jobs running"), ("queued", "waiting")) if limit[k] is not None]
    if limit["storage_mb"] is not None:
        parts.append(f"{used['storage_mb']:.1f} of {limit['storage_mb']:g} MiB of runs")
    if limit.get("gpu_seconds") is not None:
        parts.append(f"{used['gpu_seconds']:.0f} of {limit['gpu_seconds']:g} GPU-seconds in the last 24 hours")
    st.caption("Your quota on this server: " + ", ".join(parts) + ".")


def student_view() -> None:
    """Join with a code (or a ``?join=CODE`` link) and open a joined class's starter."""
    asked = st.query_params.get("join")
    if isinstance(asked, str) and asked and st.session_state.get("ll_join_seen") != asked:
        st.session_state.ll_join_seen = asked
        st.session_state.ll_join_code = asked
    with st.form("ll_join_form", border=True, enter_to_submit=True):
        st.text_input("Join code", key="ll_join_code", max_chars=20, placeholder="e.g. K7QX2M",
                      help="The six characters your teacher shows")
        st.form_submit_button("Join class", icon=":material/group_add:", on_click=_join, args=("ll_join_code",))
    if st.session_state.get("ll_class_error"):
        st.error(ui.error_md(st.session_state.ll_class_error))
    mine = classes.list_classes(ui.workspace(), member=ui.owner())
    for cls in mine:
        with st.container(border=True):
            st.markdown(f"**{ui.md(cls['name'])}** · starter: {ui.md(cls['starter'].get('name', 'untitled'))}")
            st.button("Open the starter", key=f"ll_class_open_{cls['id']}", on_click=_open_starter, args=(cls,),
                      help="Put the class's network and dataset on your canvas (your current work can be undone)")
    _my_quota()
    if mine:
        st.caption("Your runs stay yours: other students do not see them; your teacher sees the runs you make "
                   "for the class, read-only, and may stop one that runs away.")


def teacher_id() -> None:
    """The id a person gives whoever runs the server to be listed as a teacher: their pseudonym
    (:func:`builder.runs.owners.pseudonym`, a keyed hash that cannot be turned back into the browser's key),
    which ``LAYERLAB_TEACHERS`` accepts as it accepts an owner id."""
    st.markdown("**Teaching a class?** Ask whoever runs this server to add your id to `LAYERLAB_TEACHERS` (or the "
                "server config's `teachers`), then reload this page:")
    st.code(owners.pseudonym(ui.workspace(), ui.owner()), language=None)
    st.caption("Your id for the server config names you without revealing your browser's key: safe to share.")


def _holdout() -> dict | None:
    """The teacher's held-out set: the canvas's built-in dataset drawn (or split) with another seed."""
    spec = ui.dataset_spec()
    if not st.session_state.get("ll_class_holdout", True) or spec.get("kind", "builtin") != "builtin":
        return None
    seed = int(st.session_state.get("ll_class_seed") or 1234)
    return {"dataset": spec["name"], "options": {**(spec.get("options") or {}), "seed": seed}}


def _canvas_metrics() -> tuple[str, ...]:
    """The leaderboard metrics of the canvas's dataset's task (a leaderboard of accuracy on a regression stayed
    empty); every task's when its data cannot be read now."""
    try:
        return scored_metrics(ui.load_spec(ui.dataset_spec()).info.task)
    except LayerLabError:
        return SCORED


def _set_metric(cid: str) -> None:
    try:
        classes.update_class(ui.workspace(), cid, ui.owner(), metric=st.session_state.get(f"ll_class_metric_{cid}"))
    except LayerLabError as e:
        st.session_state.ll_class_error = str(e)


def _create() -> None:
    try:
        cls = classes.create_class(ui.workspace(), ui.owner(), st.session_state.get("ll_class_name") or "class",
                                   ui.project_with_data(), metric=st.session_state.get("ll_class_metric") or "accuracy",
                                   holdout=_holdout())
    except LayerLabError as e:
        st.session_state.ll_class_error = str(e)
        return
    st.session_state.ll_class_error = None
    st.session_state.ll_class_pick = cls["id"]
    ui.flash(f"Class {cls['name']} created: join code {cls['code']}")


def _post(class_id: str) -> None:
    try:
        classes.post_starter(ui.workspace(), class_id, ui.owner(), ui.project_with_data())
        ui.flash("The canvas is the class's new starter")
    except LayerLabError as e:
        st.session_state.ll_class_error = str(e)


def _stop(run_id: str) -> None:
    from builder.jobs.queue import request  # lazy: heavy (torch)

    try:
        request(ui.store(), run_id, "stop")  # builder.data.access: a teacher stops its students' jobs only
        ui.flash(f"Asked run {run_id} to stop")
    except LayerLabError as e:
        st.session_state.ll_class_error = str(e)


def _delete(class_id: str) -> None:
    from builder.admin.housekeeping import delete_class_data  # lazy: heavy (sqlalchemy)

    try:
        got = delete_class_data(ui.store(), class_id, ui.owner())
    except LayerLabError as e:
        st.session_state.ll_class_error = str(e)
        return
    if got["class_deleted"]:
        st.session_state.pop("ll_class_pick", None)
        ui.flash(f"Deleted the class and {got['runs']} class run(s)")
    else:
        st.session_state.ll_class_error = (f"a class is deleted once none of its jobs runs; received: "
                                           f"{len(got['kept'])} live job(s) ({', '.join(got['kept'][:3])}). Fix: "
                                           f"stop them below, then delete again ({got['runs']} run(s) deleted)")


def _view(run_id: str | None) -> None:
    st.session_state.ll_class_view = run_id


def run_view(cls: dict, run_id: str) -> None:
    """A student's run, read-only for the teacher: settings, curves, final and test metrics; Stop is the only
    control (the store and builder.data.access decide what the teacher may read and stop)."""
    store = ui.store()
    try:
        run = store.get(run_id)
    except LayerLabError as e:
        ui.show_error(e)
        return
    if run.get("class_id") != cls["id"]:
        st.error("This page shows the runs made for this class only.")
        return
    with st.container(border=True, key="ll_class_runview"):
        h = st.columns([4, 1, 1])
        h[0].markdown(f"**{ui.md(classes.member_label(cls, owners.owner_of(run), ui.workspace()))}** · {ui.md(run.get('name') or '')} "
                      f"· `{run['id']}` · {run['status']} · {run.get('epochs_done') or 0} ep · read-only")
        if is_live(run["status"]):
            h[1].button("Stop", key="ll_class_view_stop", on_click=_stop, args=(run["id"],), icon=":material/stop:")
        h[2].button("Close", key="ll_class_view_close", on_click=_view, args=(None,), icon=":material/close:")
        cfg = run.get("config") or {}
        st.caption(" · ".join(f"{k} {ui.md(str(cfg[k]))}" for k in ("epochs", "lr", "batch_size", "optimizer", "device")
                              if cfg.get(k) is not None) + f" · dataset {ui.md(dataset_label(run))}")
        curve = stored_curve(store, run)  # drawn as the student's Train page draws it (own units, markers)
        if curve.epochs:
            name = next((e.get("metric_name") for e in curve.epochs if e.get("metric_name")), "metric")
            c, cfg = st.columns(2), {"displayModeBar": False}
            c[0].plotly_chart(loss_figure(curve), key="ll_class_view_loss", config=cfg)
            if has_own_metric(name):  # a GAN's or VAE's "metric" is its loss: a second Loss chart, the same
                c[1].plotly_chart(metric_figure(curve), key="ll_class_view_metric", config=cfg)
        else:
            st.caption("No epoch recorded yet.")
        if cls.get("holdout") and run["status"] == "finished":  # the leaderboard's figure, named as it names it
            test, _ = classes.holdout_result(store, cls, run)
            if test is not None:
                st.markdown(f"**Held-out (class) test** (the leaderboard's figure, on data students never see): "
                            f"{_figure(cls['metric'], test)}")
        final = epoch_figures(run.get("final_metrics") or {}, run.get("dataset_info"))
        if final:  # named by split and metric ("val_metric 0.84 · eta_s 0.000" said neither)
            st.markdown("**Final epoch:** " + " · ".join(_split_figure(k, v) for k, v in final.items()))
        own = figures_on_test(run)
        if own:  # the figure the student's own Train page calls "Test results": told apart from the class's
            st.markdown("**The run's own test split** (the student's Test results): "
                        + " · ".join(_figure(k, v) for k, v in own.items()))


def test_label(cls: dict) -> str:
    """What the leaderboard's test figure measures: the class's held-out set, or each run's own test split."""
    return "held-out (class) test" if cls.get("holdout") else "the run's own test split"


def best_label(row: dict) -> str:
    """A class run's best figure, named: its validation metric at its best epoch (the lowest validation loss,
    :func:`builder.runs.summary.best_epoch`). The row said "best 0.848", best of nothing named."""
    return f"{_split_figure('val ' + str(row.get('metric_name') or 'metric'), row['best'])}  \nat the best epoch"


def _figure(name: str, value) -> str:
    """A metric's figure as the Train page writes it: its label and its value (``Accuracy 87.5%``, ``MAE 5``);
    the page wrote raw names with 3 decimals ("accuracy 0.875", "mae 5.000")."""
    return f"{ui.md(metric_label(name))} {ui.metric_text(name, value)}"


def _split_figure(key: str, value) -> str:
    """An epoch's figure named by its split and metric (``val accuracy`` -> ``Validation Accuracy 84.8%``, as the
    Runs page titles its charts)."""
    split, _, name = key.partition(" ")
    return f"{_SPLITS.get(split, ui.md(split))} {_figure(name, value)}"


_SPLITS = {"train": "Training", "val": "Validation"}


def _class_usage(cls: dict) -> None:
    """The class's disk usage: its members' runs, projects and uploads (builder.admin.housekeeping)."""
    from builder.admin.housekeeping import class_usage  # lazy: heavy (sqlalchemy)

    use = class_usage(ui.store(), cls)
    if not use["members"]:
        return
    top = sorted(use["members"].items(), key=lambda kv: -kv[1]["total"])[:3]
    st.caption(f"Disk: {ui.human_bytes(use['total'])} for the class (runs {ui.human_bytes(use['runs'])}, projects "
               f"and uploads {ui.human_bytes(use['projects'])}); most: "
               + ", ".join(f"{ui.md(classes.member_label(cls, m, ui.workspace()))} {ui.human_bytes(u['total'])}" for m, u in top))


def _scorer(store):
    """The leaderboard's held-out scorer: each run's model runs in this session's sandboxed model probe
    (:meth:`builder.jobs.probe.ModelProbe.holdout`), never in the server; a crash there is one line."""
    from app_pages.explain_tryit import session_probe  # lazy: heavy (plotly)

    def score(run_id: str, holdout: dict, metric: str):
        return session_probe().holdout(store, run_id, holdout, metric)

    return score


def teacher_view() -> None:
    """Create classes; for the chosen one: code, starter, members' runs, leaderboard, stop."""
    with st.expander("Create a class", expanded=not classes.list_classes(ui.workspace(), teacher=ui.owner())):
        c1, c2 = st.columns([2, 1])
        c1.text_input("Class name", key="ll_class_name", max_chars=100, placeholder="ML 101, group B")
        c2.selectbox("Leaderboard metric", _canvas_metrics(), key="ll_class_metric", format_func=metric_label,
                     help="Measured on the held-out set below (else on the test split each run holds out); the "
                     "figures the canvas's dataset's task measures")
        h1, h2 = st.columns([2, 1])
        h1.checkbox("Score the leaderboard on a held-out set the students never see", value=True,
                    key="ll_class_holdout", help="The canvas's dataset drawn (generated sets: new samples) or split "
                    "(fixed sets) with another seed; its test split scores every finished run")
        h2.number_input("Held-out seed", 1, 2**31 - 1, 1234, key="ll_class_seed")
        st.button("Create class from the canvas", icon=":material/school:", key="ll_class_create", on_click=_create,
                  help="The project on the canvas (network, settings, built-in dataset) becomes the starter")
    if st.session_state.get("ll_class_error"):
        st.error(ui.error_md(st.session_state.ll_class_error))
    mine = classes.list_classes(ui.workspace(), teacher=ui.owner())
    if not mine:
        return
    by_id = {c["id"]: c for c in mine}
    if st.session_state.get("ll_class_pick") not in by_id:
        st.session_state.ll_class_pick = mine[0]["id"]
    cid = st.selectbox("Class", list(by_id), key="ll_class_pick", format_func=lambda i: by_id[i]["name"])
    cls = by_id[cid]
    c1, c2, c3 = st.columns(3)
    c1.metric("Join code", cls["code"])
    st.session_state.setdefault("ll_class_members", {})[cid] = len(cls["members"])  # members_view follows it
    c2.metric("Students", len(cls["members"]))
    c3.metric("Starter", ui.md(cls["starter"].get("name") or "untitled"))  # the teacher's words
    ho = cls.get("holdout")
    st.caption(f"Students open **Classes** and type the code, or follow `/classes?join={cls['code']}`. "
               + (f"Leaderboard: {ui.md(ho['dataset'])} drawn with seed {ho['options'].get('seed')}, kept from "
                  "students." if ho else "Leaderboard: the test split each run held out."))
    b1, b2, b3, _ = st.columns([1.4, 1, 1.4, 1.6], vertical_alignment="bottom")
    b1.button("Post the canvas as starter", key="ll_class_post", on_click=_post, args=(cid,),
              icon=":material/publish:")
    b3.selectbox("Leaderboard metric", SCORED, index=SCORED.index(cls["metric"]) if cls["metric"] in SCORED else 0,
                 format_func=metric_label,
                 key=f"ll_class_metric_{cid}", on_change=_set_metric, args=(cid,),
                 help="The figure the leaderboard ranks by (lower first for a loss or an error)")
    with b2.popover("Delete class", icon=":material/delete:"):
        st.markdown("Deletes the class and its runs: the runs students made of its starter (recorded for this "
                    "class). Students keep their projects and every other run.")
        st.button("Delete permanently", type="primary", key="ll_class_delete", on_click=_delete, args=(cid,))
    _class_usage(cls)
    every = st.session_state.ll_class_poll = poll_every(cls)
    st.fragment(run_every=every)(members_view)(cid)


# The teacher's page follows the class: every LIVE_POLL_S while a member's job runs (epochs, status, the
# leaderboard as runs finish), every IDLE_POLL_S otherwise so a student who joins or starts a run shows up on its own.
LIVE_POLL_S, IDLE_POLL_S = 2.0, 10.0


def poll_every(cls: dict) -> float:
    """Refresh interval of the class's runs on the teacher's page (students join and start runs meanwhile)."""
    live = any(is_live(r["status"]) for r in ui.store().list_runs(class_id=cls["id"], limit=500))
    return LIVE_POLL_S if live else IDLE_POLL_S


def members_view(cid: str) -> None:
    """The class's leaderboard and its members' runs (a fragment refreshed by :func:`poll_every`)."""
    try:
        cls = classes.get_class(ui.workspace(), cid, ui.actor())
    except LayerLabError:  # deleted since the page was drawn
        return
    counted = st.session_state.get("ll_class_members", {}).get(cid)
    if poll_every(cls) != st.session_state.get("ll_class_poll") or counted != len(cls["members"]):
        # a job started or ended (the whole page once, to follow at the new interval), or a student joined or
        # left (the head above counts them: it read "Students 0" beside a leaderboard of three)
        st.rerun(scope="app")
    store = ui.store()
    rows = classes.class_runs(store, cls, scorer=_scorer(store))
    st.subheader("Leaderboard")
    board = classes.leaderboard(store, cls, rows)
    if board:
        lines = [f"| # | student | run | {test_label(cls)}: {ui.md(metric_label(cls['metric']))} | params |",
                 "|---:|---|---|---:|---:|"]
        for r in board:
            lines.append(f"| {r['rank']} | {ui.md(classes.member_label(cls, r['owner'], ui.workspace()))} | {ui.md(r['name'] or '')} "
                         f"| {ui.metric_text(cls['metric'], r['test'])} | {ui.human_count(r['params'] or 0)} |")
        st.markdown("\n".join(lines))
    elif any(r["status"] == "finished" and r["test"] is None and not r.get("test_error") for r in rows):
        st.warning(f"No finished run has a {ui.md(metric_label(cls['metric']))} figure: the runs' task measures others. Fix: "
                   "pick one it measures as the leaderboard metric above",
                   icon=":material/leaderboard:")
    else:
        st.caption("No finished run yet.")
    st.subheader("Students' runs")
    if not rows:
        st.caption("No runs yet: students join, open the starter and press Train.")
    if st.session_state.get("ll_class_view") in {r["id"] for r in rows}:
        run_view(cls, st.session_state.ll_class_view)
    for r in rows:
        with st.container(border=True, key=f"ll_class_run_{r['id']}"):
            c = st.columns([1.4, 2, 1, 1, 1, 1, 1])
            c[0].markdown(f"**{ui.md(classes.member_label(cls, r['owner'], ui.workspace()))}**")
            c[1].markdown(f"{ui.md(r['name'] or '')}  \n`{r['id']}`")
            c[2].markdown(f"{r['status']}  \n{r['epochs'] or 0} ep")
            c[3].markdown(best_label(r))
            c[4].markdown(f"{_figure(cls['metric'], r['test'])}  \n{test_label(cls)}")
            if r.get("test_error"):
                st.warning(f"Not scored on the held-out set: {ui.md(r['test_error'])}", icon=":material/warning:")
            c[5].markdown(f"{ui.human_count(r['params'] or 0)} params  \n{ui.fmt_duration(r['time_s'])}")
            c[6].button("View", key=f"ll_class_view_{r['id']}", on_click=_view, args=(r["id"],),
                        icon=":material/visibility:", help="Curves and metrics, read-only")
            if is_live(r["status"]):
                c[6].button("Stop", key=f"ll_class_stop_{r['id']}", on_click=_stop, args=(r["id"],),
                            icon=":material/stop:")


if owners.is_teacher(ui.workspace(), ui.owner()):
    teacher_view()
    with st.expander("Join a class as a student"):
        student_view()
else:
    student_view()
    teacher_id()
