"""Runs page actions on one finished run: Prune (a smaller run, fine-tuned) and Check new data (drift).

Nothing here runs a model: Prune submits a prune job (:func:`builder.jobs.specs.prune_job_spec`,
:func:`builder.jobs.queue.submit`), its own process like training (quota-checked, on Runs with its status and
curves, stoppable); the new run is picked, and its report (``prune.json``) is shown once the job wrote it. Check
new data asks the page session's sandboxed model probe (:meth:`builder.jobs.probe.ModelProbe.drift`), so a
model that crashes is an error line. Uploaded files are kept like the Data page's (:func:`app_pages.ui.save_upload`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import ui
from builder.errors import LayerLabError
from builder.escape import md_code
from builder.training.run_status import RunStatus


def prune_section(rec: dict, open_project: Callable[[str], None]) -> None:
    """The run's pruning report (when it is a pruned run) and the form that prunes it further."""
    rs = ui.store()
    rid = rec["id"]
    report = rs.folder(rid).read_prune()
    if report is not None:
        _prune_report(rid, report, open_project)
    elif (rec.get("tags") or {}).get("pruned_from"):
        st.caption(f"Pruned from run {md_code(str(rec['tags']['pruned_from']))} by a job: its report appears here "
                   "when the job has pruned and fine-tuned it.")
    mine, ok = ui.can_control(rec), rec.get("status") == RunStatus.FINISHED and rs.folder(rid).has_weights
    if not ok:  # a stopped or failed run has no final weights: no Prune beside a greyed-out Weights
        return
    with st.expander("Prune this run", icon=":material/content_cut:", expanded=st.session_state.get(
            "ll_prune_open") == rid):
        if not mine:
            st.caption("Only your own runs can be pruned (pruning starts a run of yours from this one).")
            return
        st.caption("Structured pruning removes the least important output channels/units of every Conv/Linear "
                   "whose channels can go and draws the smaller network; unstructured zeroes the smallest weights "
                   "(kept at zero while fine-tuning). The result is fine-tuned as a new run.")
        c = st.columns([1.4, 1.4, 1, 1, 1.2], vertical_alignment="bottom")
        amount = c[0].slider("Amount", 0.1, 0.9, 0.5, 0.05, key=f"ll_prune_amount_{rid}",
                             help="Share of channels (structured) or weights (unstructured) removed")
        kind = c[1].segmented_control("Kind", ["structured", "unstructured"], default="structured",
                                      key=f"ll_prune_kind_{rid}", required=True) or "structured"
        criterion = c[2].selectbox("Criterion", ["l1", "taylor"], key=f"ll_prune_crit_{rid}",
                                   disabled=kind != "structured", format_func={"l1": "L1", "taylor": "Taylor"}.get,
                                   help="L1 norm of each filter, or |weight × gradient| over a few training batches")
        epochs = int(c[3].number_input("Fine-tune epochs", 0, 100, 5, key=f"ll_prune_epochs_{rid}",
                                       help="0 keeps the pruned weights as they are"))
        if c[4].button("Prune", key=f"ll_prune_go_{rid}", icon=":material/content_cut:", type="primary",
                       width="stretch"):
            st.session_state.ll_prune_open = rid
            try:  # a job of its own, like training (the parent's owner's): nothing is pruned here
                from builder.jobs.queue import submit  # lazy: heavy (torch)
                from builder.jobs.specs import prune_job_spec  # lazy: heavy (torch)

                new_id = submit(rs, prune_job_spec(rs, rid, amount, structured=kind == "structured",
                                                   criterion=criterion, finetune_epochs=epochs))
            except LayerLabError as e:
                ui.show_error(e)
                return
            st.session_state.ll_run_focus = new_id  # the new run is picked on the next pass
            ui.flash(f"Pruning run {rid} into run {new_id} (a job: its status and curves are shown as it goes)")
            st.rerun()


def _prune_report(rid: str, report: dict, open_project: Callable[[str], None]) -> None:
    from builder.training.prune import prune_table  # lazy: heavy (torch)

    st.markdown(f"##### Pruned from run {md_code(report['parent_id'])}")  # run_folder.prune_record: texts, numbers
    how = report["method"]
    detail = (", ".join(f"{'+'.join(g['members'])} {g['before']}→{g['after']}" for g in report.get("groups", []))
              if how == "structured" else ", ".join(f"{n} {s:.0%} zero" for n, s in report.get("sparsity", {}).items()))
    st.caption(f"{ui.md(how.capitalize())} ({ui.md(report['criterion'] if how == 'structured' else 'magnitude')}), "
               f"amount {report['amount']:.0%}, {int(report['finetune_epochs'])} fine-tune epochs: {ui.md(detail)}")
    c = st.columns([3, 1], vertical_alignment="top")
    c[0].dataframe(pd.DataFrame(prune_table(report)), hide_index=True, width="stretch")
    c[1].button("Open pruned graph on canvas", icon=":material/account_tree:", on_click=open_project, args=(rid,),
                width="stretch", key=f"ll_prune_open_{rid}")
    for g in report.get("left_alone", []):
        c[1].caption(f"Left alone {ui.md('+'.join(g['members']))}: {ui.md('; '.join(g['reasons']))}")


# ------------------------------------------------------------------------------------------ drift
def drift_section(rec: dict) -> None:
    """Upload new data, compare it with the run's training data, show what moved."""
    rid = rec["id"]
    if rec.get("status") != RunStatus.FINISHED:
        return
    with st.expander("Check new data", icon=":material/compare_arrows:",
                     expanded=(st.session_state.get("ll_drift_file") or {}).get("run") == rid):
        st.caption("Has the world moved since training? New rows (a CSV with the training columns) are compared "
                   "feature by feature with the training split (KS / χ², PSI); images (a .zip laid out like the "
                   "training data) through the model's penultimate activations (MMD); texts (a CSV with the training "
                   "text column, a .txt of one text per line, or a .zip of .txt files) by length and unknown words "
                   "too. Also: the shift of the model's confidence and predicted class mix.")
        c = st.columns([3, 1, 1], vertical_alignment="bottom")
        up = c[0].file_uploader("New data", type=["csv", "txt", "zip"], key=f"ll_drift_up_{rid}")
        ref = ui.save_upload(up.name, up.getvalue()) if up is not None else None  # None: over the quota (shown)
        if ref is not None:
            st.session_state.ll_drift_file = {"run": rid, "name": up.name, "upload": ref}
        alpha = float(c[1].number_input("α", 0.001, 0.5, 0.05, 0.01, key=f"ll_drift_alpha_{rid}", format="%.3f",
                                        help="Significance level (Bonferroni-corrected over the features)"))
        got = st.session_state.get("ll_drift_file") or {}
        if got.get("run") != rid:
            st.info("Upload a CSV or a .zip of new data to compare.", icon=":material/upload_file:")
            return
        if c[2].button("Compare", key=f"ll_drift_go_{rid}", icon=":material/query_stats:", type="primary",
                       width="stretch"):
            from app_pages.explain_tryit import session_probe  # lazy: heavy (plotly)

            with st.spinner("Comparing…"):
                try:  # the model runs in the page session's sandboxed probe, never in this process
                    new = ui.uploads().resolve(got.get("upload"))  # this owner's upload, nobody else's
                    report = session_probe().drift(ui.store(), rid, str(new), alpha=alpha)
                    st.session_state.ll_drift_report = {"run": rid, "name": got["name"], "alpha": alpha,
                                                        "report": report}
                except LayerLabError as e:
                    ui.show_error(e)
                    return
        rep = st.session_state.get("ll_drift_report") or {}
        if rep.get("run") == rid:
            _drift_report(rep["name"], rep["report"])


def _drift_report(name: str, r: dict[str, Any]) -> None:
    moved = r.get("moved") or []
    n = len(r.get("features") or [])
    (st.warning if moved else st.success)(
        f"{ui.md(name)}: {len(moved)} of {n} {'feature' if n == 1 else 'features'} moved"
        + (f" — {ui.md(', '.join(moved))}" if moved else "") + f" (p < {r['threshold']:.2g}; {r['n_new']} new vs "
        f"{r['n_reference']} training samples)", icon=":material/warning:" if moved else ":material/check:")
    df = pd.DataFrame([{"feature": f["name"], "moved": "● moved" if f["moved"] else "", "test": f["test"],
                        "statistic": f["statistic"], "p-value": f["p_value"], "PSI": f["psi"],
                        "training": f["reference"], "new": f["new"]}
                       for f in sorted(r["features"], key=lambda f: f["p_value"])])
    st.dataframe(df.style.apply(lambda row: ["background-color: #fef3c7" if row["moved"] else ""] * len(row), axis=1)
                 .format({"statistic": "{:.4f}", "p-value": "{:.2e}", "PSI": "{:.3f}"}),
                 hide_index=True, width="stretch")
    p = r.get("prediction") or {}
    if p:
        c = st.columns([1, 2])
        c[0].metric("Mean confidence", f"{p['confidence_new']:.1%}",
                    f"{(p['confidence_new'] - p['confidence_reference']) * 100:+.1f} points vs test (KS p "
                    f"{p['confidence_p_value']:.1e})", delta_color="off", delta_arrow="off")
        if p.get("class_mix_new"):
            mix = pd.DataFrame({"class": list(p["class_mix_new"]),
                                "test split": [p["class_mix_reference"][k] for k in p["class_mix_new"]],
                                "new data": list(p["class_mix_new"].values())})
            c[1].caption(f"Predicted class mix (χ² p {p['class_mix_p_value']:.1e})")
            c[1].bar_chart(mix.set_index("class"), stack=False, height=200)
    for note in r.get("notes") or []:
        st.caption(ui.md(note))
