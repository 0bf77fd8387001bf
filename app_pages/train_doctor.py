"""Train › training doctor: the findings of the canvas's run, each with a one-click fix (what it changed is shown
with Undo; the sidebar's Undo replace works too), and the anomalies of its curves with links to the nodes involved on the canvas.

The page asks :func:`builder.interpret.doctor.run_findings` and applies a fix with
:func:`builder.interpret.doctor.apply_fix`; nothing here reads a run file or runs a model.
"""

from __future__ import annotations

import streamlit as st

from app_pages import nav, ui
from builder.errors import LayerLabError

ICON = {"bad": ":material/error:", "warn": ":material/warning:"}
GOTO_KEY = "ll_doctor_goto"


APPLIED_KEY = "ll_doctor_applied"  # the fix applied last: what changed, shown with Undo until the next one


def _apply(action: dict, node: str) -> None:
    """Apply a finding's fix to the canvas project; the project before it is kept for Undo (here and Undo replace)."""
    from builder.interpret.doctor import apply_fix, fix_change  # lazy: heavy (torch)

    before = ui.project_with_data()
    try:
        fixed = apply_fix(before, action)
    except LayerLabError as e:
        ui.flash(f"The fix could not be applied: {e}")
        return
    if not ui.keep_in_history(before):
        return
    ui.set_project(fixed.model_copy(update={"dataset": ui.project().dataset}))
    ui.autosave()
    st.session_state[APPLIED_KEY] = {"node": node, "change": fix_change(before, fixed, action)}


def _undo() -> None:
    """Take the applied fix back (the project before it, from the replace history)."""
    st.session_state.pop(APPLIED_KEY, None)
    ui.undo_replace()


def applied_notice() -> None:
    """What the last Apply changed on the canvas, with Undo (shown until Undo or the next fix): the Train page shows
    it above its run, since a fix to the graph leaves the canvas without a run of its own."""
    done = st.session_state.get(APPLIED_KEY)
    if not done:
        return
    with st.container(border=True, key="ll_doctor_applied"):
        c = st.columns([6, 1], vertical_alignment="center")
        c[0].success(ui.md(f"Applied the doctor's fix: {done['change']}. The canvas has it now; train "
                           "again to see its effect."), icon=":material/check_circle:")
        c[1].button("Undo", key="ll_doc_undo", icon=":material/undo:", on_click=_undo, width="stretch",
                    help="Bring back the project as it was before this fix")


def _show_node(node: str) -> None:
    st.session_state.ll_selected = node
    st.session_state[GOTO_KEY] = True


def render(run: dict) -> None:
    """The doctor's box for one run (nothing when the run recorded no health samples and its curves are fine)."""
    from builder.interpret.doctor import fix_label, run_findings  # lazy: heavy (torch)

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
            n = d["samples"]
            st.markdown(f":material/health_and_safety: **Training doctor**: no problem found. Every layer's "
                        f"activations and gradients were looked at {int(n)} time{'s' if n != 1 else ''} during training "
                        "(dead units, values exploding or vanishing) and looked healthy.")
            return
        st.markdown(":material/stethoscope: **Training doctor**")
        for j, a in enumerate(anomalies):
            st.warning(ui.md(f"Epoch {a['epoch']}: {a['message']}"), icon=":material/show_chart:")
            if a["nodes"]:
                cols = st.columns([1.4] + [1] * min(len(a["nodes"]), 6) + [max(1, 6 - len(a["nodes"]))],
                                  vertical_alignment="center")
                cols[0].caption("Nodes involved:")
                for c, node in zip(cols[1:], a["nodes"][:6]):
                    c.button(ui.md(node), key=f"ll_doc_node_{j}_{node}", icon=":material/my_location:",
                             on_click=_show_node, args=(node,), help=f"Show {ui.md(node)} on the Build page's canvas",
                             width="stretch")
        for j, f in enumerate(findings):
            c = st.columns([6, 1], vertical_alignment="center")
            nodes = f.get("nodes") or [f["node"]]  # a training-setting fix found at several layers: one row
            where = ", ".join(nodes) + (f" ({len(nodes)} layers)" if len(nodes) > 1 else "")
            c[0].markdown(f"{ICON.get(f['level'], ICON['warn'])} **{ui.md(where)}** · {ui.md(f['message'])}")
            if f.get("action") and c[1].button("Apply", key=f"ll_doc_fix_{j}", icon=":material/build:",
                                                help=ui.md(fix_label(f["action"]).capitalize()), width="stretch"):
                _apply(f["action"], f["node"])
                st.rerun()  # the whole page (this box runs in the live view's fragment): the notice shows above
