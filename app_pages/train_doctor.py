"""Train › training doctor: the findings of the canvas's run, each with a one-click fix (undoable from the
sidebar's Undo replace), and the anomalies of its curves with links to the nodes involved on the canvas.

The page asks :func:`builder.interpret.doctor.run_findings` and applies a fix with
:func:`builder.interpret.doctor.apply_fix`; nothing here reads a run file or runs a model.
"""

from __future__ import annotations

import streamlit as st

from app_pages import nav, ui
from builder.errors import LayerLabError
from builder.runs import owners

ICON = {"bad": ":material/error:", "warn": ":material/warning:"}
GOTO_KEY = "ll_doctor_goto"


def _apply(action: dict, node: str) -> None:
    """Apply a finding's fix to the canvas project; the project before it is kept for Undo replace."""
    from builder.interpret.doctor import apply_fix, fix_label

    try:
        fixed = apply_fix(ui.project_with_data(), action)
    except LayerLabError as e:
        ui.flash(f"The fix could not be applied: {e}")
        return
    owners.push_history(ui.workspace(), ui.owner(), ui.project_with_data())
    ui.set_project(fixed.model_copy(update={"dataset": ui.project().dataset}),
                   flash=f"Applied the fix for {node}: {fix_label(action)}. Undo it with Undo replace in the sidebar; "
                         "train again to see its effect.")
    ui.autosave()


def _show_node(node: str) -> None:
    st.session_state.ll_selected = node
    st.session_state[GOTO_KEY] = True


def render(run: dict) -> None:
    """The doctor's box for one run (nothing when the run recorded no health samples and its curves are fine)."""
    from builder.interpret.doctor import fix_label, run_findings

    if st.session_state.pop(GOTO_KEY, False):
        st.switch_page(nav.BUILD)  # a node link: the Build page with that node selected
    try:
        d = run_findings(ui.store(), run["id"])
    except LayerLabError:
        return
    findings, anomalies = d["findings"], d["anomalies"]
    if not d["recorded"] and not anomalies:
        return
    with st.container(border=True, key="ll_doctor"):
        if not findings and not anomalies:
            st.markdown(f":material/health_and_safety: **Training doctor**: no problem found in {d['samples']} "
                        "health samples.")
            return
        st.markdown(":material/stethoscope: **Training doctor**")
        for j, a in enumerate(anomalies):
            st.warning(ui.md(f"Epoch {a['epoch']}: {a['message']}"), icon=":material/show_chart:")
            if a["nodes"]:
                cols = st.columns([1.4] + [1] * min(len(a["nodes"]), 6) + [max(1, 6 - len(a["nodes"]))],
                                  vertical_alignment="center")
                cols[0].caption("Nodes involved:")
                for c, node in zip(cols[1:], a["nodes"][:6]):
                    c.button(node, key=f"ll_doc_node_{j}_{node}", icon=":material/my_location:", on_click=_show_node,
                             args=(node,), help=f"Show {node} on the Build page's canvas", width="stretch")
        for j, f in enumerate(findings):
            c = st.columns([6, 1], vertical_alignment="center")
            c[0].markdown(f"{ICON.get(f['level'], ICON['warn'])} **{ui.md(f['node'])}** · {ui.md(f['message'])}")
            if f.get("action"):
                c[1].button("Apply", key=f"ll_doc_fix_{j}", icon=":material/build:", on_click=_apply,
                            args=(f["action"], f["node"]), help=ui.md(fix_label(f["action"]).capitalize()),
                            width="stretch")
