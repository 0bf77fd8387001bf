"""Explain › Robustness and Explain › Calibration: two tabs of the Explain page (kept here so the page stays short).

Each tab collects its choices, asks :mod:`builder.interpret.robustness` / :mod:`builder.interpret.calibration`
about the session's model (an :class:`~builder.interpret.session.ExplainSession`) and draws what comes back.
Results are cached with the page's cache (``cached(key, fn)``, reset when the model changes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

from app_pages import ui
from builder.errors import LayerLabError
from builder.interpret import figures as figs
from builder.training.run_folder import keep_report

if TYPE_CHECKING:
    from builder.interpret.session import ExplainSession

CFG = {"displayModeBar": False}
Cached = Callable[[tuple, Callable[[], Any]], Any]
ATTR_METHODS = ("integrated_gradients", "saliency", "input_x_gradient")  # input-space, one pass each


def _refusal(xs: ExplainSession, what: str) -> str | None:
    """Why ``what`` does not apply to this model, or None."""
    if not xs.classification:  # the model's own task (a reconstruction was called "regression")
        task = {"reconstruction": "reconstruction (it gives its input back)", "forecast": "forecasting",
                "next_token": "next-token prediction (a language model: the Attributions tab explains one next token "
                              "at a time)"}.get(xs.info.task, xs.info.task or "regression")
        return f"{what} is measured on a classifier's predictions; this model does {task}."
    if xs.modality == "tokens" and what == "Robustness":
        return ("Adversarial attacks perturb float inputs by a small ε; token ids have no ε-neighbourhood, so "
                "token models are refused. Try a model on images or tables.")
    return None


INFLIGHT_KEY = "ll_xp_inflight"  # session state: the keys of checks being computed by some script run


def run_check(items: dict, key: tuple, label: str, fn: Callable[[], Any]) -> None:
    """Compute a check's result into ``items[key]`` (a LayerLabError is kept as the result), marked in flight
    meanwhile: a click on another check starts a new script run at once (Streamlit's fast reruns) while this one
    finishes, and that run waits for this result (:func:`await_check`) instead of showing the page without it."""
    flight = st.session_state.setdefault(INFLIGHT_KEY, set())
    flight.add(key)
    try:
        with st.spinner(label, show_time=True):  # seconds counted: a 5 s check looked stuck
            try:
                items[key] = fn()
            except LayerLabError as e:
                items[key] = e
    finally:
        flight.discard(key)


def await_check(items: dict, key: tuple, label: str, timeout: float = 600.0) -> None:
    """Wait (with a spinner) while a check with ``key`` started by an earlier script run is still computing, so
    its result is shown beside the one just asked for; returns at once when none is."""
    flight = st.session_state.get(INFLIGHT_KEY) or set()
    if key in items or key not in flight:
        return
    with st.spinner(f"{label} started before is still running…"):
        end = time.monotonic() + timeout
        while key in flight and key not in items and time.monotonic() < end:
            time.sleep(0.1)


def _message() -> None:
    """An error left by a button's callback (keeping a report with its run)."""
    if msg := st.session_state.pop("ll_xc_msg", None):
        st.error(ui.md(msg), icon=":material/error:")


# ----------------------------------------------------------------------------------------- robustness
def robustness_tab(xs: ExplainSession, cached: Cached, items: dict) -> None:
    """Accuracy against ε under FGSM/PGD on the session's split, and flipped samples beside their originals."""
    from builder.interpret.robustness import ATTACKS, parse_eps, robustness_figure  # lazy: heavy (torch)

    _message()
    if why := _refusal(xs, "Robustness"):
        st.info(why, icon=":material/block:")
        return
    st.caption("Each sample is pushed by at most ε per input value (L∞) in the direction that raises its loss "
               "(FGSM, or PGD's projected steps; every value with a gradient moves), clamped to each feature's training "
               "range; the curve is the "
               f"{xs.split} accuracy at each ε.")
    c = st.columns([2.2, 1.2, 1, 1.4], vertical_alignment="bottom")
    eps_text = c[0].text_input("ε values (comma-separated)", "0, 0.05, 0.1, 0.2", key="ll_rb_eps",
                               help="Sizes in input units (the built-in images are in [0, 1])")
    method = c[1].segmented_control("Attack", list(ATTACKS), default="fgsm", key="ll_rb_attack",
                                    format_func=str.upper, required=True) or "fgsm"
    steps = int(c[2].number_input("PGD steps", 1, 100, 10, key="ll_rb_steps", disabled=method != "pgd"))
    go_ = c[3].button("Run attack", key="ll_rb_go", icon=":material/bolt:", type="primary", width="stretch")
    try:
        eps = parse_eps(eps_text)
    except LayerLabError as e:
        st.warning(ui.error_md(e), icon=":material/warning:")
        return
    key = ("robustness", xs.split, tuple(eps), method, steps if method == "pgd" else None)
    if go_:
        with st.spinner(f"Attacking {xs.n_samples} {xs.split} samples at {len(eps)} ε…"):
            try:
                items[key] = xs.robustness(eps, method, steps)
            except LayerLabError as e:
                items[key] = e
    rep = items.get(key)
    if rep is None:
        st.info("Choose ε values and an attack, then press **Run attack**.", icon=":material/touch_app:")
        return
    if isinstance(rep, LayerLabError):
        ui.show_error(rep)
        return
    cc = st.columns([3, 1.3])
    cc[0].plotly_chart(robustness_figure(rep), width="stretch", config=CFG, key="ll_rb_fig")
    for e, a, f in zip(rep.eps, rep.accuracy, rep.flips):
        cc[1].metric(f"ε = {e:g}", f"{a:.1%}", f"{f['count']} flipped" if e else None, delta_color="inverse",
                     delta_arrow="off")
    if _writable(xs.run_id):
        cc[1].button("Keep with the run", key="ll_rb_save", icon=":material/save:", on_click=_keep,
                     args=(rep, "robustness", f"Robustness kept with run {rep.run_id}"), help="Write robustness.json into the run's folder (as `layerlab robustness`)")
    _flips(xs, rep, cached, method, steps)


def _writable(run_id: str | None) -> bool:
    """Whether this session may keep a report with run ``run_id`` (it writes into the run: its owner's, not a
    reader's in shared mode or a teacher's); keep_report refuses the others anyway."""
    try:
        return bool(run_id) and ui.can_control(ui.store().get(run_id))
    except LayerLabError:
        return False


def _keep(rep: Any, what: str, done: str) -> None:
    """Keep a report in its run's folder (``what``: calibration, robustness); flash ``done`` or show the error."""

    try:
        keep_report(ui.store(), rep, what)
    except LayerLabError as e:
        st.session_state.ll_xc_msg = str(e)
        return
    ui.flash(done)


def _flips(xs: ExplainSession, rep: Any, cached: Cached, method: str, steps: int) -> None:
    """A flipped sample picked from the report, beside its adversarial version, with their attributions."""
    with_flips = [(e, f) for e, f in zip(rep.eps, rep.flips) if f["examples"]]
    st.markdown("##### Flipped samples")
    if not with_flips:
        st.success("No prediction flipped at these ε.", icon=":material/verified:")
        return
    avail = xs.methods().available
    methods = [m for m in ATTR_METHODS if m in avail] or list(ATTR_METHODS[:1])
    c = st.columns([1, 2.4, 1.6], vertical_alignment="bottom")
    e = c[0].selectbox("At ε", [e for e, _ in with_flips], key="ll_rb_flip_eps", format_func=lambda v: f"{v:g}")
    flips = dict(with_flips)[e]["examples"]
    i = c[1].selectbox(f"Sample ({len(flips)} of {dict(with_flips)[e]['count']} flipped shown)", range(len(flips)),
                       key="ll_rb_flip_pick", format_func=lambda j: f"#{flips[j]['index']}: {flips[j]['original']} "
                       f"→ {flips[j]['adversarial']} (true {flips[j]['label']})")
    m = c[2].selectbox("Attribution", methods, format_func=xs.method_label, key="ll_rb_flip_method",
                       help="Each input is explained for its own predicted class")
    index = int(flips[int(i)]["index"])
    opts = {"n_steps": 32} if m == "integrated_gradients" else {}
    try:
        view = cached(("flip", xs.split, index, e, method, steps, m),
                      lambda: xs.flip_view(index, e, method=method, steps=steps, attribution=m, **opts))
    except LayerLabError as err:
        ui.show_error(err)
        return
    label = xs.method_label(m)
    if xs.modality == "image":
        cc = st.columns(2)
        for col, x, a, name, conf, k in ((cc[0], view.x, view.attribution, view.original, view.confidence[0], "o"),
                                         (cc[1], view.x_adv, view.attribution_adv, view.adversarial,
                                          view.confidence[1], "a")):
            title = f"{'original' if k == 'o' else f'adversarial (ε {e:g})'}: predicted {name} ({conf:.0%})"
            fig = figs.image_attribution_figure(x.cpu().numpy(), {label: a}, mode="overlay", title=title)
            col.plotly_chart(fig.update_layout(height=300), width="stretch", config=CFG, key=f"ll_rb_flip_{k}")
    else:
        inputs, attrs = view.rows()
        names = xs.feature_names() or [f"x{j}" for j in range(inputs.shape[1])]
        cc = st.columns([2, 1.2])
        fig = figs.tabular_attribution_figure(attrs, names, title=f"{label}, each for its predicted class",
                                              sample_names=[f"original → {view.original}",
                                                            f"adversarial → {view.adversarial}"])
        cc[0].plotly_chart(fig, width="stretch", config=CFG, key="ll_rb_flip_tab")
        cc[1].dataframe({"feature": names, "original": inputs[0].tolist(), "adversarial": inputs[1].tolist()},
                        hide_index=True, width="stretch", height=min(320, 36 + 35 * len(names)))
    st.caption(f"Sample #{index} of the {xs.split} split, true class {ui.md(view.label)}. The largest change of any input "
               f"value is {view.max_change:.3g} (ε {e:g}). Red pushes the score of the "
               "predicted class up, blue pushes it down.")


# ---------------------------------------------------------------------------------------- calibration
def calibration_tab(xs: ExplainSession, cached: Cached) -> None:
    """Reliability before/after temperature scaling, and the share of decisions automated at a target accuracy."""
    from builder.interpret.calibration import (  # lazy: heavy (torch)
        CoverageCurve,
        coverage_at,
        coverage_figure,
    )

    _message()
    if why := _refusal(xs, "Calibration"):
        st.info(why, icon=":material/block:")
        return
    bins = int(st.session_state.get("ll_cal_bins", 15))
    try:
        with st.spinner("Fitting a temperature on the validation split and measuring the test split…"):
            rep = cached(("calibration", bins), lambda: xs.calibrate(bins))  # seconds the first time
    except LayerLabError as e:
        ui.show_error(e)
        return
    st.caption("A temperature T is fitted on the validation split (logits / T); reliability, ECE and coverage are "
               "measured on the test split, whatever split the page shows. T > 1 softens an over-confident model.")
    c = st.columns([3, 1.3])
    c[0].plotly_chart(figs.reliability_figure(rep.reliability_before, rep.reliability_after), width="stretch",
                      config=CFG, key="ll_cal_rel")
    c[1].metric("ECE before", f"{rep.ece_before:.3f}")
    c[1].metric("ECE after scaling", f"{rep.ece_after:.3f}", f"{rep.ece_after - rep.ece_before:+.3f}",
                delta_color="inverse", delta_arrow="off")
    c[1].metric("Temperature", f"{rep.temperature:.3f}")
    from builder.interpret.calibration import MAX_BINS  # lazy: heavy (torch); the page has the report already

    c[1].number_input("Bins", 2, MAX_BINS, 15, key="ll_cal_bins", help="Equal-width confidence bins of the diagram")
    worse = rep.ece_after >= rep.ece_before  # the temperature was fitted on the validation split: it may not help
    if worse:
        c[1].caption(f"Scaling did not lower the test split's ECE here ({rep.ece_before:.3f} → {rep.ece_after:.3f}): "
                     "this model is as well calibrated without it, so keeping it is not advised.")
    if _writable(rep.run_id):
        c[1].button("Keep with the run", key="ll_cal_save", icon=":material/save:", on_click=_keep,
                    args=(rep, "calibration", f"Calibration kept with run {rep.run_id} (temperature "
                                                   f"{rep.temperature:.3f})"),
                    help=("Not advised: scaling did not lower the test ECE. " if worse else "")
                    + "Write calibration.json; `layerlab export RUN --temperature` then divides the exported "
                    "logits by T")
    st.markdown("##### How many decisions can be automated?")
    c = st.columns([1.3, 3], vertical_alignment="top")
    target = c[0].slider("Target accuracy", 0.50, 1.0, 0.95, 0.005, key="ll_cal_target", format="%.3f",
                         help="Keep the predictions whose (scaled) confidence is at least a threshold; the largest "
                         "share kept whose accuracy reaches the target")
    curve = CoverageCurve(**rep.coverage_curve)
    cov, thr = coverage_at(curve, target)
    c[0].metric("Automated", f"{cov:.1%}", help="Share of test samples decided without a human")
    c[0].caption(f"Confidence ≥ {thr:.3f}; the rest ({1 - cov:.1%}) go to a person." if thr is not None else
                 f"No threshold reaches {target:.1%} accuracy on the test split (overall {rep.accuracy:.1%}).")
    c[1].plotly_chart(coverage_figure(curve, target), width="stretch", config=CFG, key="ll_cal_cov")
