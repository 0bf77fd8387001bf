"""Train page › Cross-validate: K folds as grouped runs, mean ± std of every test metric.

Each fold is a training job (:func:`builder.jobs.specs.crossval_job_specs` submitted all or none by
:func:`builder.jobs.queue.submit_group`): its own sandboxed process with limits, counted against the owner's
quotas, stoppable and resumable on the Runs page. Nothing trains in this process: the page submits, keeps the
group's run ids in the session and reads the runs back from the store (progress per fold while they train, the
results table and the summary when they end). ``layerlab train --folds K`` trains the same folds in the terminal.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import ui
from builder.errors import LayerLabError
from builder.runs.crossval import fold_rows, format_summary, result_of
from builder.training.config import TrainConfig
from builder.training.run_status import is_final, is_live

#: samples up to which the page offers cross-validation (each fold trains the network again)
SMALL = 5_000
POLL_S = 2.0  # how often the fold table refreshes while a fold is queued or training


def _size(ds) -> int:
    return sum(len(s) for s in (ds.train, ds.val, ds.test) if s is not None)


def render(ds, spec: dict, problems: list) -> None:  # noqa: ARG001  (spec: same call as the other modes)
    """The whole Cross-validate mode."""
    if ds is None:
        return
    n = _size(ds)
    st.caption("Train the network K times, each time testing on a different fifth (or K-th) of the data, and "
               "report every test metric as mean ± standard deviation over the folds: a fairer estimate than one "
               "test split on a small dataset. Folds are stratified by class for classification. Each fold is a "
               "job of its own, shown on the Runs page.")
    if n > SMALL:
        st.info(f"Cross-validation retrains the network once per fold; the page offers it for datasets up to "
                f"{SMALL:,} samples (this one has {n:,}). From the command line: `layerlab train FILE --dataset "
                f"NAME --folds 5`.", icon=":material/info:")
        return
    d, _ = TrainConfig.form_values(ds.info.task, len(ds.train), ui.project().training,  # Train's form says what
                                   {"epochs": (1, 1000), "seed": (0, 2**31 - 1)})  # it left out
    with st.container(border=True, key="ll_cv"):  # no form: the fields are kept over a page trip (as Search's)
        c = st.columns(3)
        folds = c[0].number_input("Folds (K)", 2, 10, 5, key="ll_cv_folds", persist_state="session",
                                  help="Runs to train; each tests on one fold")
        epochs = c[1].number_input("Epochs per fold", 1, 1000, int(d["epochs"]), key="ll_cv_epochs",
                                   persist_state="session")
        seed = c[2].number_input("Seed", 0, 2**31 - 1, int(d["seed"]), key="ll_cv_seed", persist_state="session")
        go = st.button("Run cross-validation", type="primary", icon=":material/view_week:", key="ll_cv_start",
                       disabled=bool(problems))
    if problems:
        st.warning("Fix the problems above first: every fold trains this graph.", icon=":material/warning:")
    if go and not problems:
        _submit(ds, int(folds), {"epochs": int(epochs), "seed": int(seed)})
    cv = st.session_state.get("ll_cv_jobs")
    if cv:
        live = st.session_state.ll_cv_polling = any(is_live(r.get("status")) for r in _runs(cv))
        st.fragment(run_every=POLL_S if live else None)(_show)()


def _submit(ds, folds: int, config: dict) -> None:
    """Submit the K fold jobs (all or none) and remember the group in the session."""
    from builder.jobs.queue import submit_group  # lazy: heavy (torch)
    from builder.jobs.specs import crossval_job_specs  # lazy: heavy (torch)

    name, opts = ds.info.reload_args()
    try:
        group, specs = crossval_job_specs(ui.project_with_data(), name, config, folds=folds, dataset_options=opts,
                                          owner=ui.owner())
        run_ids = submit_group(ui.store(), specs)
    except LayerLabError as e:
        ui.show_error(e)
        return
    st.session_state.ll_cv_jobs = {"group": group, "folds": folds, "run_ids": run_ids}


def _runs(cv: dict) -> list[dict]:
    """The group's fold runs as the store has them now (a run this session may no longer see is left out)."""
    rs, out = ui.store(), []
    rs.mark_interrupted()
    for rid in cv["run_ids"]:
        try:
            out.append(ui.get_run(rid, rs))
        except LayerLabError:
            continue
    return out


def _stop_all(run_ids: list[str]) -> None:
    for rid in run_ids:
        try:
            ui.control_job(rid, "stop")
        except LayerLabError as e:  # it ended meanwhile
            ui.flash(str(e))


def _show() -> None:
    """Progress per fold while the jobs run; the results table and mean ± std of the folds that have test metrics."""
    cv = st.session_state.get("ll_cv_jobs")
    if not cv:
        return
    runs = _runs(cv)
    res = result_of(cv["group"], runs)
    st.subheader("Cross-validation")
    done = sum(is_final(s) for s in res.statuses)
    live = [r["id"] for r in runs if is_live(r.get("status"))]
    if not live and st.session_state.get("ll_cv_polling"):
        st.session_state.ll_cv_polling = False
        st.rerun()  # the whole page once, to stop polling
    if live:
        head = st.columns([4, 1], vertical_alignment="center")
        head[0].progress(done / max(1, res.folds), text=f"{done} of {res.folds} folds done")
        head[1].button("Stop all folds", icon=":material/stop:", on_click=_stop_all, args=(live,),
                       key="ll_cv_stop", width="stretch")
    if res.summary:
        cols = st.columns(min(4, len(res.summary)))
        for col, (metric, s) in zip(cols, res.summary.items()):
            col.metric(metric, f"{s['mean']:.4f}", f"± {s['std']:.4f}", delta_color="off",
                       help=f"mean ± sample standard deviation over {s['n']} folds")
    rows = fold_rows(runs)
    table = pd.DataFrame(rows)
    if not any(r["message"] for r in rows):
        table = table.drop(columns="message")
    st.dataframe(table, hide_index=True, width="stretch")
    failed = [r for r in rows if r["message"]]
    for r in failed:
        st.error(f"Fold {r['fold']} (run `{r['run']}`) {r['status']}: {ui.md(r['message'])}", icon=":material/error:")
    tail = " · ".join(format_summary(res.summary))
    st.caption((tail + " — " if tail else "") + f"runs tagged crossval={cv['group']} on the Runs page")
