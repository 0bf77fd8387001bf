"""Train page, Search mode: searched settings and node parameters in, a study process out, its trials shown live.

Widgets collect spec strings (the same ``NAME=LOW..HIGH[:log]`` / ``NAME={A,B}`` syntax as
``layerlab tune --search``); :mod:`builder.search` checks them, runs the study in its own process and reads
it back (trial table, best trial, Optuna's plotly views).
"""

from __future__ import annotations

import re
import time

import pandas as pd
import streamlit as st

from app_pages import nav, ui
from builder.errors import LayerLabError
from builder.escape import md_text, shown_uri
from builder.search.settings import objective_text

OBJECTIVES = {"val_loss": "Validation loss (minimise)", "val_accuracy": "Validation accuracy (maximise)",
              "val_f1": "Validation macro F1 (maximise)", "val_r2": "Validation R² (maximise)"}
TRAINING = [  # (setting, label, default spec body, help)
    ("lr", "Learning rate", "1e-4..1e-1:log", "a range, e.g. 1e-4..1e-1:log"),
    ("batch_size", "Batch size", "", "choices, e.g. {16,32,64}"),
    ("optimizer", "Optimizer", "", "choices, e.g. {adam,sgd,adamw}"),
    ("weight_decay", "Weight decay", "", "e.g. 1e-6..1e-2:log"),
    ("epochs", "Epochs", "", "e.g. 5..30 (fixed by the Epochs field when empty)"),
    ("dropout", "Dropout", "", "every Dropout node's p, e.g. 0..0.5"),
]
FIGURES = {"history": "Optimization history", "parallel": "Parallel coordinates", "importances": "Importances",
           "intermediate": "Intermediate values", "pareto": "Objective vs cost"}


def _storage() -> str:
    from builder.search import default_storage  # lazy: heavy (sqlalchemy)

    return default_storage(ui.workspace())


def _objectives(task: str) -> list[str]:
    from builder.search.settings import objectives_for  # lazy: heavy (sqlalchemy, via builder.search)

    return [o for o in objectives_for(task) if o != "val_metric"]  # the metric by its own name


def _default_name() -> str:
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in (ui.project().name or "study").lower())
    base = re.sub(r"-{2,}", "-", base)[:30].strip("-")  # "Digits CNN — teacher": digits-cnn-teacher, one dash each
    return f"{base or 'study'}-{time.strftime('%m%d-%H%M%S')}"


def node_params_expander() -> list[str]:
    """One text field per numeric or choice parameter of the canvas nodes; filled fields are searched."""
    from builder.search import searchable_params  # lazy: heavy (sqlalchemy)

    specs = []
    params = searchable_params(ui.project())
    with st.expander(f"Searchable node parameters ({len(params)})", icon=":material/account_tree:"):
        st.caption("Give a range (`16..256:log`) or a choice list (`{1,2,3}`) to search a parameter; leave it "
                   "empty to keep the canvas value.")
        for p in params:
            rng = f"[{p['min'] if p['min'] is not None else '-∞'}, {p['max'] if p['max'] is not None else '∞'}]" \
                if p["kind"] in ("int", "float") else "{" + ", ".join(map(str, p["choices"] or [])) + "}"
            # md_text: the label shows literally and reads as itself (md's backslashes before every '.' and '_'
            # stayed in its accessible name: "fc1\\.out\\_features")
            body = st.text_input(md_text(f"{p['node']}.{p['param']}"), key=f"ll_s_node_{p['key']}",
                                 persist_state="session", placeholder=f"now {p['value']!r}; allowed {rng}",
                                 help=f"{p['type']} · {p['help']}")
            if body.strip():
                specs.append(f"{p['key']}={body.strip()}")
        blocks = st.text_area("Blocks to repeat or skip (one per line)", key="ll_s_blocks", persist_state="session",
                              height=68,
                              placeholder="block:fc2..act2=0..3",
                              help="block:FIRST..LAST=0..3 searches how many times the straight run of layers "
                                   "FIRST..LAST appears (0 skips it); its output shape must be its input shape")
        specs += [line.strip() for line in blocks.splitlines() if line.strip()]
    return specs


def search_form(task: str) -> dict | None:
    """The Search form; returns the study request on submit."""
    saved = ui.project().training or {}
    # a container, no form: each field keeps its value for the session (a form's values lived in the browser until
    # submitted, so a trip to Data lost them) and Enter commits a field, never starts a study (it started 20 trials)
    with st.container(border=True, key="ll_search"):
        st.markdown("**Search space** — ranges `LOW..HIGH` (add `:log` for a log scale) or choices `{A,B}`")
        specs = []
        cols = st.columns(3)
        for i, (key, label, default, hint) in enumerate(TRAINING):
            body = cols[i % 3].text_input(label, value=default, key=f"ll_s_tr_{key}", persist_state="session",
                                          help=hint)
            if body.strip():
                specs.append(f"{key}={body.strip()}")
        specs += node_params_expander()
        st.markdown("**Study**")
        c = st.columns(4)
        objs = _objectives(task)
        objective = c[0].selectbox("Objective", objs, format_func=OBJECTIVES.get, key="ll_s_objective",
                                   persist_state="session")
        trials = c[1].number_input("Trials", 1, 10_000, 20, key="ll_s_trials", persist_state="session")
        minutes = c[2].number_input("Time budget (minutes, 0 = none)", 0, 100_000, 0, key="ll_s_minutes",
                                    persist_state="session")
        sampler = c[3].selectbox("Sampler", ["tpe", "random"], format_func={"tpe": "TPE", "random": "Random"}.get,
                                 key="ll_s_sampler", persist_state="session")
        c = st.columns(4)
        prune = c[0].checkbox("Median pruning", value=True, key="ll_s_prune", persist_state="session",
                              help="Stop trials whose per-epoch validation value falls below the median")
        epochs = c[1].number_input("Epochs per trial", 1, 10_000, int(saved.get("epochs") or 20), key="ll_s_epochs",
                                   persist_state="session")
        name = c[2].text_input("Study name", value=st.session_state.get("ll_s_default_name") or _default_name(),
                               key="ll_s_name", persist_state="session",
                               help="Your existing study of this name is resumed; study names are yours alone "
                                    "(someone else's study of the same name is another study)")
        seed = c[3].number_input("Sampler seed", 0, 2**31 - 1, 0, key="ll_s_seed", persist_state="session")
        c = st.columns(4)
        max_params = c[0].number_input("Max parameters", 1, None, None, key="ll_s_max_params", persist_state="session",
                                       placeholder="no limit",
                                       help="Trials whose graph has more parameters fail before training")
        max_macs = c[1].number_input("Max multiply-adds per sample", 1, None, None, key="ll_s_max_macs",
                                     persist_state="session", placeholder="no limit",
                                     help="Trials whose graph needs more multiply-adds fail before training; every "
                                          "trial's cost is recorded and the Objective vs cost view shows the "
                                          "Pareto front")
        go_ = st.button("Start search", type="primary", icon=":material/travel_explore:", key="ll_s_start")
    if not go_:
        return None
    return {"specs": specs, "objective": objective, "trials": int(trials), "timeout": float(minutes) * 60 or None,
            "sampler": sampler, "pruner": "median" if prune else "none", "epochs": int(epochs), "name": name.strip(),
            "seed": int(seed), "max_params": int(max_params) if max_params else None,
            "max_macs": int(max_macs) if max_macs else None}


def start(req: dict, ds) -> None:
    """Check the request and start the study process; problems are shown located, nothing starts."""
    from builder.search import SearchSpaceError, StudySettings, launch_study  # lazy: heavy (sqlalchemy)

    dataset, options = ds.info.reload_args()  # as the Train mode's jobs: the job process reloads the data
    settings = StudySettings(name=req["name"], storage=_storage(), n_trials=req["trials"], timeout=req["timeout"],
                             objective=req["objective"], sampler=req["sampler"], pruner=req["pruner"], seed=req["seed"],
                             owner=ui.owner(), max_params=req.get("max_params"), max_macs=req.get("max_macs"))
    training = {k: v for k, v in (ui.project().training or {}).items() if k in ("lr", "batch_size", "optimizer",
                                                                               "weight_decay", "seed", "device")}
    try:
        proc = launch_study(ui.workspace(), ui.project_with_data(), dataset, req["specs"], settings,
                            config={**training, "epochs": req["epochs"]}, dataset_options=options)
    except SearchSpaceError as e:
        lines = "\n".join(f"- {ui.md(p)}" for p in e.problems[:12])
        st.error(f"The search space has {len(e.problems)} problem(s); nothing was started:\n\n{lines}")
        return
    except LayerLabError as e:
        ui.show_error(e)
        return
    st.session_state.ll_study = {"name": req["name"], "pid": proc.pid, "proc": proc, "trials": req["trials"]}
    st.session_state.ll_s_default_name = None
    st.rerun()


def _alive() -> bool:
    cur = st.session_state.get("ll_study") or {}
    proc = cur.get("proc")
    return proc is not None and proc.poll() is None


def study_view() -> None:
    """Live trial table, best so far, Optuna's views and the study's buttons (a fragment while it runs)."""
    from builder.search import (  # lazy: heavy (sqlalchemy)
        load_study,
        study_figures,
        study_result,
        trials_table,
    )

    cur = st.session_state.get("ll_study") or {}
    name = cur.get("name")
    if not name:
        return
    try:
        study = load_study(_storage(), name, owner=ui.owner(), workspace=ui.workspace())
    except LayerLabError:
        st.info("The study is starting…", icon=":material/hourglass_top:")
        return
    running = _alive()
    res = study_result(study, _storage())
    rows = trials_table(study)
    c = st.columns(4)
    c[0].metric("Study", ui.md(name))
    # the runner records its target when it starts: until then the one asked for ("Trials 0 / ?" in the first seconds)
    target = (study.user_attrs.get("layerlab") or {}).get("n_trials") or cur.get("trials")
    status = "running" if running else "finished" if target and len(rows) >= target else "stopped"
    c[1].metric("Status", status)
    c[2].metric("Trials", f"{len(rows)} / {target or '?'}")
    c[3].metric(*objective_text(res.objective, res.best_value))
    if res.best_params:
        st.caption("Best so far: " + ui.md(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                     for k, v in res.best_params.items()))
                   + f" — run {ui.md(res.best_run_id)}")
    if rows:
        df = pd.DataFrame(rows)
        # a sampled rate in 4 significant digits, as on the Runs page (a searched rate has 17 digits)
        sampled = {c: st.column_config.NumberColumn(format="%.4g") for c in df.columns
                   if c not in ("value", "duration_s") and df[c].dtype.kind == "f"}
        st.dataframe(df, hide_index=True, width="stretch", key="ll_s_table",
                     column_config={**sampled, "value": st.column_config.NumberColumn(format="%.4f"),
                                    "duration_s": st.column_config.NumberColumn("seconds", format="%.1f")})
        failed = [r for r in rows if r["state"] == "fail" and r.get("message")]
        if failed:  # why, in one line (a crash of a trial's job included), without scrolling to the last column
            last = failed[-1]
            st.warning(f"{len(failed)} trial{'s' if len(failed) > 1 else ''} failed; the last, trial {last['trial']}: "
                       + ui.error_md(" ".join(str(last["message"]).split())[:300]), icon=":material/warning:")
    figs = study_figures(study) if rows else {}
    if figs:
        tabs = st.tabs([FIGURES[k] for k in FIGURES if k in figs])
        for tab, k in zip(tabs, [k for k in FIGURES if k in figs]):
            with tab:
                figs[k].update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10))
                st.plotly_chart(figs[k], width="stretch", key=f"ll_s_fig_{k}")
    # the buttons below this fragment (drawn by the whole page) follow the study: the page runs again once for each
    # new state this view sees. Only a change of running missed a study that had ended before its first reading
    # here (it was still starting), so Best trial onto the canvas stayed disabled (CI, under load)
    seen = (name, running, bool(res.best_params))
    if seen != st.session_state.get("ll_s_drawn_for"):
        st.session_state.ll_s_drawn_for = seen
        st.rerun(scope="app")


def actions(ds) -> None:
    """Stop / resume the study; the best trial onto the canvas or retrained with more epochs."""
    from builder.search import (  # lazy: heavy (sqlalchemy)
        best_project,
        load_study,
        request_stop,
        resume_study,
    )

    cur = st.session_state.get("ll_study") or {}
    name = cur.get("name")
    if not name:
        return
    running = _alive()
    c = st.columns(4)
    if c[0].button("Stop search", key="ll_s_stop", icon=":material/stop:", disabled=not running):
        request_stop(_storage(), name, owner=ui.owner(), workspace=ui.workspace())
        ui.flash(f"Stopping study {name}: running trials are stopped")
        st.rerun()
    more = c[1].number_input("Trials in all", 1, 100_000, value=None, key="ll_s_more", persist_state="session",
                             placeholder="same as before", help="Resume with this many trials in all")
    if c[1].button("Resume search", key="ll_s_resume", icon=":material/play_arrow:", disabled=running):
        try:
            proc = resume_study(ui.workspace(), _storage(), name, n_trials=more, owner=ui.owner())
        except LayerLabError as e:
            ui.show_error(e)
        else:
            st.session_state.ll_study = {"name": name, "pid": proc.pid, "proc": proc}
            st.rerun()
    try:
        best, cfg = best_project(load_study(_storage(), name, owner=ui.owner(), workspace=ui.workspace()))
    except LayerLabError:
        best = None
    if c[2].button("Best trial onto the canvas", key="ll_s_canvas", icon=":material/account_tree:",
                   disabled=best is None):
        ui.set_project(best, flash="The best trial's parameters are on the canvas")
        st.switch_page(nav.BUILD)
    ep = int((cfg or {}).get("epochs") or 10) * 3 if best is not None else 30
    if c[3].button(f"Retrain best for {ep} epochs", key="ll_s_retrain", icon=":material/model_training:",
                   disabled=best is None or ds is None):
        try:
            ui.set_project(best)
            ui.start_job(best, ds, {**cfg, "epochs": ep})
            st.session_state.ll_polling = True
            st.session_state.ll_mode_next = "Train"  # the mode switch is already drawn this run
        except LayerLabError as e:
            ui.show_error(e)
        else:
            st.rerun()


def _apply_tracking() -> None:
    from builder.tracking_destinations import save_owner_setting  # lazy: heavy (sqlalchemy)

    uri = (st.session_state.get("ll_mlflow_uri") or "").strip()
    try:
        save_owner_setting(ui.workspace(), ui.owner(), uri or None)
        st.session_state.ll_mlflow_error = None
    except LayerLabError as e:
        st.session_state.ll_mlflow_error = str(e)


def tracking_setting() -> None:
    """This person's MLflow setting: the runs they start from now on (training and search trials) are also logged
    there. Nobody else's runs are affected; where it may point is the admin's allow-list."""
    from builder.tracking_destinations import owner_setting, server_tracking_shown  # lazy: heavy (sqlalchemy)

    try:  # the server's tracker and allow-list as a visitor may see them: without the admin's credentials
        default, allow = server_tracking_shown(ui.workspace())
    except LayerLabError as e:
        ui.show_error(e)
        return
    cur = owner_setting(ui.workspace(), ui.owner()) or ""
    on = shown_uri(cur) if cur else default
    with st.expander("Experiment tracking (MLflow)" + (" — on" if on else ""), icon=":material/monitoring:"):
        st.text_input("MLflow tracking URI", value=cur, key="ll_mlflow_uri", on_change=_apply_tracking,
                      disabled=not allow and not cur,
                      placeholder=allow[0] if allow else "the server's admin allows no tracker",
                      help="Your runs started from now on, training and search trials, are also logged to MLflow; "
                      "empty turns your setting off. Only your runs are affected. Allowed by the server's admin: "
                      + (", ".join(allow) or "none") + ".")
        if st.session_state.get("ll_mlflow_error"):
            st.error(ui.error_md(st.session_state.ll_mlflow_error))
        elif on:
            st.caption(f"Your runs are logged to {ui.md(on)}" + ("" if cur else " (the server's setting)"))


def render(ds, spec: dict, problems: list) -> None:
    """The whole Search mode."""
    if ds is None:
        return
    if st.session_state.get("ll_study"):
        st.subheader("Study")
        st.fragment(run_every=1.0 if _alive() else None)(study_view)()
        actions(ds)
    with st.expander("New search", expanded=not st.session_state.get("ll_study"), icon=":material/tune:"):
        if problems:
            st.warning("Fix the problems above first: every trial starts from this graph.", icon=":material/warning:")
        req = search_form(ds.info.task)
        if req is not None and not problems:
            start(req, ds)
