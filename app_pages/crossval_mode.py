"""Train page › Cross-validate: K folds of a small dataset as grouped runs, mean ± std of every test metric.

Calls :func:`builder.training.crossval.cross_validate` (the same as ``layerlab train --folds K``) in the page's
process: it is offered only for small datasets, where K short trainings take seconds. The page keeps the last
result's run ids in the session; the runs themselves are in the store like any other (tagged with the group).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import ui
from builder.errors import LayerLabError
from builder.training.config import TrainConfig
from builder.training.crossval import cross_validate, format_summary

#: samples up to which the page offers cross-validation (each fold trains the network again)
SMALL = 5_000


def _size(ds) -> int:
    return sum(len(s) for s in (ds.train, ds.val, ds.test) if s is not None)


def render(ds, spec: dict, problems: list) -> None:  # noqa: ARG001  (spec: same call as the other modes)
    """The whole Cross-validate mode."""
    if ds is None:
        return
    n = _size(ds)
    st.caption("Train the network K times, each time testing on a different fifth (or K-th) of the data, and "
               "report every test metric as mean ± standard deviation over the folds: a fairer estimate than one "
               "test split on a small dataset. Folds are stratified by class for classification.")
    if n > SMALL:
        st.info(f"Cross-validation retrains the network once per fold; the page offers it for datasets up to "
                f"{SMALL:,} samples (this one has {n:,}). From the command line: `layerlab train FILE --dataset "
                f"NAME --folds 5`.", icon=":material/info:")
        return
    d = TrainConfig.starting_values(ds.info.task, len(ds.train), ui.project().training)
    with st.form("ll_cv", border=True, enter_to_submit=False):
        c = st.columns(3)
        folds = c[0].number_input("Folds (K)", 2, 10, 5, key="ll_cv_folds", help="Runs to train; each tests on one fold")
        epochs = c[1].number_input("Epochs per fold", 1, 1000, int(d["epochs"]), key="ll_cv_epochs")
        seed = c[2].number_input("Seed", 0, 2**31 - 1, int(d["seed"]), key="ll_cv_seed")
        go = st.form_submit_button("Run cross-validation", type="primary", icon=":material/view_week:",
                                   disabled=bool(problems))
    if problems:
        st.warning("Fix the problems above first: every fold trains this graph.", icon=":material/warning:")
    if go and not problems:
        _run(ds, int(folds), {"epochs": int(epochs), "seed": int(seed)})
    res = st.session_state.get("ll_cv_result")
    if res:
        _show(res)


def _run(ds, folds: int, config: dict) -> None:
    name, opts = ds.info.reload_args()
    bar = st.progress(0.0, text=f"fold 1 of {folds}")
    per_fold: list[dict] = []

    def on_fold(k: int, result) -> None:
        per_fold.append(dict(result.test or {}))
        bar.progress((k + 1) / folds, text=f"fold {min(k + 2, folds)} of {folds}" if k + 1 < folds else "done")

    try:
        with st.spinner(f"Training {folds} folds"):
            res = cross_validate(ui.project(), name, config, ui.store(), folds=folds, dataset_options=opts,
                                 owner=ui.owner(), on_fold=on_fold)
    except LayerLabError as e:
        ui.show_error(e)
        return
    st.session_state.ll_cv_result = {"group": res.group, "folds": res.folds, "run_ids": res.run_ids,
                                     "statuses": res.statuses, "tests": per_fold, "summary": res.summary}


def _show(res: dict) -> None:
    st.subheader("Cross-validation")
    summary = res["summary"]
    if summary:
        cols = st.columns(min(4, len(summary)))
        for col, (metric, s) in zip(cols, summary.items()):
            col.metric(metric, f"{s['mean']:.4f}", f"± {s['std']:.4f}", delta_color="off",
                       help=f"mean ± sample standard deviation over {s['n']} folds")
    rows = [{"fold": k + 1, "run": rid, "status": status, **test}
            for k, (rid, status, test) in enumerate(zip(res["run_ids"], res["statuses"], res["tests"]))]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(" · ".join(format_summary(summary)) + f" — runs tagged crossval={res['group']} on the Runs page")
