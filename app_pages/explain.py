"""Explain page: attributions, attention, activations and weights, trust checks, robustness, calibration, live playback.

The page collects choices, asks :class:`builder.interpret.session.ExplainSession` (the model, its dataset and one
split) and draws :mod:`builder.interpret.figures`. A finished run's model never runs in the server's process: its
questions go to :class:`builder.jobs.probe.ProbeSession` (the same methods), answered by the session's
sandboxed child process (``ll_xp_probe``, started on the first question, restarted after a crash, ended when idle
or with the session); a crash, timeout or limit there is one error line here. Per session it keeps, in
``st.session_state``, the run chosen (a finished run of this owner from the run store) and a cache of results for
its model (``ll_xp_cache``, reset when the model changes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

from app_pages import explain_checks, explain_tryit, nav, tips, ui
from builder.errors import LayerLabError
from builder.escape import plotly_text
from builder.interpret import figures as figs
from builder.training.run_status import ENDED_CLEANLY, RunStatus, is_live

if TYPE_CHECKING:  # the session module imports torch and Captum: loaded once a model is chosen
    from builder.interpret.session import ExplainSession

ui.page_header("Explain", "See what the trained network looks at: attributions, attention, activations and "
                          "weights, with checks that the explanations can be trusted.")

CFG = {"displayModeBar": False}
TABS = ["Attributions", "Try it", "Attention", "Activations & weights", "Trust", "Robustness", "Calibration", "Live"]
MAX_CACHED = 300  # results kept per session for the chosen model
MISSING_RUN = "No finished run {run} of yours in this workspace."


# --------------------------------------------------------------------------------------------- cache
def _cache() -> dict:
    return st.session_state.setdefault("ll_xp_cache", {"key": None, "items": {}})["items"]


def _cached(key: tuple, fn: Callable[[], Any]) -> Any:
    """Compute once per model and key; a LayerLabError is cached too and re-raised."""
    items = _cache()
    if key not in items:
        while len(items) >= MAX_CACHED:  # oldest first (dicts keep insertion order)
            items.pop(next(iter(items)))
        try:
            items[key] = fn()
        except LayerLabError as e:
            items[key] = e
    val = items[key]
    if isinstance(val, LayerLabError):
        raise val
    return val


def _reset_cache(key: str) -> None:
    c = st.session_state.setdefault("ll_xp_cache", {"key": None, "items": {}})
    if c["key"] != key:
        c["key"], c["items"] = key, {}


def _k(name: str) -> str:
    """A widget key for the chosen model: choices made for one model do not leak into another's widgets."""
    return f"{name}@{st.session_state.ll_xp_cache['key']}"


# ------------------------------------------------------------------------------------- model sources
def _probe() -> Any:
    """This session's model probe, shared with the Build page's Try it (:func:`explain_tryit.session_probe`)."""
    return explain_tryit.session_probe()


def _model_options() -> dict[str, str]:
    """Models to explain: the finished (or stopped) runs this session may see, each labelled so runs are told
    apart (name, dataset, lr, epochs, batch, best metric)."""
    from builder.runs.summary import best_epoch, run_label  # lazy: heavy (sqlalchemy)

    try:  # finished runs, and stopped ones with an epoch behind them (read from their newest weights)
        finished = [r for r in ui.visible_runs(limit=200) if r["status"] in ENDED_CLEANLY
                    and (r["status"] == RunStatus.FINISHED or (r.get("epochs_done") or 0) > 0)][:30]
    except LayerLabError:
        finished = []
    rs = ui.store()
    options: dict[str, str] = {}
    for r in finished:
        stopped = "" if r["status"] == RunStatus.FINISHED else f" · stopped after {r.get('epochs_done')} ep"
        summary = ui.run_summary(rs, r)
        epochs = summary.get("epochs") or []
        broken = " · did not learn" if _broken(summary.get("record") or r, epochs) else ""  # before its 100 %
        options[f"run:{r['id']}"] = run_label(r, best_epoch(epochs)) + stopped + broken
    return options


def _empty_state() -> None:
    from builder.interpret.live import recording_run  # lazy: heavy (torch)

    live = recording_run(ui.store(), ui.live_runs())  # this owner's run in progress that records attributions
    if live is not None or ui.live_runs():
        st.info("Training is in progress; its model appears here when it finishes.", icon=":material/model_training:")
        if live is not None:
            st.markdown("##### Attributions recorded so far")
            live_tab(live["id"])
        return
    with st.container(border=True):
        st.markdown("#### No trained model yet")
        st.markdown("Train a network on the **Train** page (the *Small CNN for 8×8 digits* template trains in "
                    "a few seconds), then come back here to see which pixels, features or tokens drive its "
                    "predictions. Your finished runs also show up here after a restart.")
        st.page_link(nav.TRAIN, label="Open the Train page", icon=":material/model_training:")


def _broken(run: dict, epochs: list[dict]) -> str | None:
    """Why ``run`` (a full record) did not learn (:func:`builder.interpret.doctor.run_broken_line`)."""
    from builder.interpret.doctor import run_broken_line  # lazy: heavy (torch)

    return run_broken_line(run, epochs)


def _say_if_broken(rs, run: dict) -> None:
    """A warning above a diverged run's explanations (:func:`_broken`): they describe a broken model (every answer
    100 % confident, attributions in the thousands)."""
    if why := _broken(run, ui.run_summary(rs, run).get("epochs") or []):
        st.warning(f"This run did not learn: {ui.md(why)}. What it predicts and attributes describes a broken "
                   "model; explain a run that learned, or apply the training doctor's fix on the Train page.",
                   icon=":material/warning:")


def _choose_model(options: dict[str, str], c: list) -> ExplainSession | None:
    """Model and split pickers (in the columns ``c``); returns the session or None (error shown). The chosen
    run's model runs in the session's sandboxed probe, never in this process."""
    from builder.jobs.probe import ProbeSession  # lazy: heavy (torch)

    ids = [k.split(":", 1)[1] for k in options]
    url_run = ui.run_from_url("explain", ids, MISSING_RUN)  # /explain?run=ID opens that run's model
    if url_run is not None and f"run:{url_run}" in options:
        st.session_state.ll_xp_model = f"run:{url_run}"
    choice = c[0].selectbox("Model", list(options), format_func=options.get, key="ll_xp_model",
                            help="Any of your finished or stopped runs in the workspace (a stopped run's newest "
                                 "weights)")
    split = c[1].selectbox("Split", ["test", "val", "train"], key="ll_xp_split",
                           help="Which split the samples come from")
    try:
        run_id = choice.split(":", 1)[1]
        _reset_cache(choice)
        rs = ui.store()
        run = ui.get_run(run_id, rs)  # this owner may see it
        _say_if_broken(rs, run)
        return _cached(("session", split), lambda: ProbeSession(_probe(), rs, run_id, split))
    except LayerLabError as e:
        ui.show_error(e)
        return None


# ----------------------------------------------------------------------------------------- samples
def _pick(xs: ExplainSession, c: list) -> int | None:
    """Sample picker (in the three columns ``c``); returns the index in the split."""
    n = xs.n_samples
    by = c[0].selectbox("Pick samples", xs.pick_modes(), format_func=xs.pick_label, key="ll_xp_by")
    if by == "index":
        i = int(c[1].number_input(f"Index (0–{n - 1})", 0, n - 1, 0, key=_k(f"ll_xp_index_{xs.split}")))
        c[2].caption(xs.describe())
        return i
    label = None
    if by == "class":
        label = c[1].selectbox("True class", list(range(xs.n_classes)), format_func=xs.class_name,
                               key=_k("ll_xp_label"))
    cands = _cached(("pick", xs.split, by, label), lambda: xs.pick(by, label))
    if not cands:
        c[2].info(f"No {xs.none_found(by)} in the {xs.split} split — pick another way.", icon=":material/info:")
        return None
    return int(c[2].selectbox(f"Sample ({len(cands)} found)", cands, format_func=xs.candidate_label,
                              key=_k(f"ll_xp_cand_{by}_{xs.split}")))


def _preview(xs: ExplainSession, i: int) -> None:
    """A small view of one sample."""
    if xs.modality == "tokens":
        # the text as written (a subword tokenizer's pieces read "C ust om er" joined by spaces), decoded in the child
        st.code(xs.sample_text(i), language=None, wrap_lines=True)
    elif xs.shown_modality == "tabular":
        names, values = xs.feature_values(i)
        if any(isinstance(v, str) for v in values):  # a text column's category: one column of text, numbers short
            values = [v if isinstance(v, str) else ui.fmt_metric(v) for v in values]  # 30,411, not 3.041e+04
        st.dataframe({"feature": names, "value": values}, hide_index=True, height=min(200, 36 + 35 * len(names)),
                     width="stretch")
    elif xs.shown_modality == "image":  # also an image the model reads flattened (an MLP autoencoder's digits)
        # a picture, not a chart: it fits the narrow column (a plotly preview is at least 150 px wide and showed 5
        # of a digit's 8 columns at 900 px)
        st.image(figs.picture_image(xs.picture(xs.sample_array(i))), width="stretch")
    else:
        st.plotly_chart(figs.sample_figure(xs.sample_array(i), xs.shown_modality, xs.axis_names()), width="stretch",
                        config=CFG,
                        key="ll_xp_preview")


def _sample_header(xs: ExplainSession, row: list) -> tuple[int, Any, dict] | None:
    """Sample picker, preview, label/prediction, target and baseline. Returns (index, target, baseline choice)."""
    with st.container():
        i = _pick(xs, row)
        if i is None:
            return None
        token = xs.target_kind() == "token"  # a language model: the header follows the position picked below
        s = xs.summary(i, position=st.session_state.get(_pos_key(xs, i)) if token else None)
        image = xs.shown_modality == "image"  # a reconstruction's picture as wide as the sample's
        c = st.columns([0.7 if image else 1.6, 0.7 if image and s.kind == "reconstruction" else 0.9, 1.1, 1.4, 1.4],
                       vertical_alignment="center")
        with c[0]:
            _preview(xs, i)
        if s.kind == "class":
            c[1].metric("True label", ui.md_value(s.true))  # a class name: a CSV's value
            # the pill stays short: "wrong · 98.8% confident" was cut at 900 px; the help says what the % is
            c[2].metric("Prediction", ui.md_value(s.predicted), f"{'correct' if s.correct else 'wrong'} · {s.confidence:.1%}",
                        delta_color="normal" if s.correct else "inverse", delta_arrow="off",
                        help="Whether it matches the true label, and the model's confidence: the probability it "
                             "gives the predicted class")
            if s.runners_up:
                c[2].caption("Runners-up: " + ", ".join(f"{ui.md(name)} ({p:.1%})" for name, p in s.runners_up))
        elif s.kind == "next_token":  # a language model: what it predicts after the last token (it showed "Sample #0")
            # a token is the corpus's text, and a metric's value is Markdown
            c[1].metric("True next", ui.md(s.true), help=f"The token that follows position {int(s.position)} in "
                        "the data")
            c[2].metric("Predicted next", ui.md(s.predicted), f"{'correct' if s.correct else 'wrong'} · {s.confidence:.1%}",
                        delta_color="normal" if s.correct else "inverse", delta_arrow="off",
                        help=f"The token the model predicts after position {int(s.position)} (chosen beside; the "
                             "sample's last real token at first), and the probability it gives it")
            if s.runners_up:
                c[2].caption("Runners-up: " + ", ".join(f"{ui.md(name)} ({p:.1%})" for name, p in s.runners_up))
            if s.note:
                c[1].caption(ui.md(s.note))
        elif s.kind == "value":
            c[1].metric("True value", ui.md_value(s.true))  # a metric's value is Markdown
            c[2].metric("Prediction", ui.md_value(s.predicted))
        elif s.kind == "reconstruction":  # what the model gives back, beside the sample (it showed "Sample #3")
            at = c[1]
            if image:
                c[1].image(figs.picture_image(xs.picture(s.output)), caption="Its reconstruction", width="stretch")
                at = c[2]
            at.metric("Reconstruction error", ui.md_value(s.predicted), help="The mean squared difference between this sample "
                      "and what the model gives back, in the inputs' own units")
        elif s.kind == "output":  # a drawn objective's network: what it gives, no true value to compare with
            c[1].metric("Output", ui.md_value(s.predicted), help=f"What the {ui.md(xs.explained or '')} network gives for this "
                        "sample (a VAE's encoder: μ, the sample's place in the latent space)")
        else:
            c[1].metric("Sample", f"#{i}")
        target, kind = None, xs.target_kind()
        if kind == "token":
            target = _token_target(xs, i, c[3])
        elif kind == "unit" and xs.n_outputs > ui.MAX_MENU:  # a reconstruction of 784 pixels: one label per
            # option was one child round trip each (and 784 options in the page): a number, its name below
            choice = int(c[3].number_input(f"Explain output (0–{int(xs.n_outputs - 1)}; −1: the largest)", -1,
                                           xs.n_outputs - 1, -1, key=_k("ll_xp_target_unit_n"),
                                           help="Attributions explain this output unit"))
            c[3].caption(ui.md(xs.target_label(choice, i)))
            target = None if choice < 0 else choice
        elif kind != "single":
            label, key, help_ = (("Explain class", "ll_xp_target", "Attributions explain the score of this class")
                                 if kind == "class" else ("Explain output", "ll_xp_target_unit",
                                                          "Attributions explain this output unit"))
            # a class's name is known here; only the prediction's label asks the probe's child (a question per
            # option: 1,000 of them for 1,000 image folders)
            choice = c[3].selectbox(label, xs.target_choices(), key=_k(key), help=help_,
                                    format_func=lambda t: xs.class_name(t) if kind == "class" and t >= 0
                                    else xs.target_label(t, i))
            target = None if choice < 0 else int(choice)
        else:
            c[3].caption("Single output: attributions explain the model's output "
                         + ("(the logit of the positive class)." if xs.classification else "value."))
        base = c[4].selectbox("Baseline", list(xs.baselines()), format_func=xs.baseline_label, key=_k("ll_xp_base"),
                              help="The reference input that path and perturbation methods compare against")
        choice = {"baseline": base, "pad_token": None}
        if base == "pad":
            pads = xs.pad_tokens()  # a bounded list: the special tokens, then the vocabulary's first
            choice["pad_token"] = int(c[4].selectbox("Pad token", list(pads), format_func=pads.__getitem__,
                                                     key=_k("ll_xp_pad"), help="The token every position of the "
                                                     "reference input holds"))
    return i, target, choice


def _pos_key(xs: ExplainSession, i: int) -> str:
    """The widget key of sample ``i``'s position picker (a language model's)."""
    return _k(f"ll_xp_pos_{xs.split}_{i}")


def _token_target(xs: ExplainSession, i: int, col: Any) -> int:
    """A language model's explained output: a position of sample ``i`` (its last real token by default), then one
    of the likeliest next tokens there or the true one (a bounded list, never T × vocabulary outputs)."""
    labels, default = xs.token_positions(i)
    help_ = "The model predicts the token after each position from the tokens up to it"
    if len(labels) > ui.MAX_MENU:  # 1,024 positions of an imported GPT-2: a number, its token below
        pos = int(col.number_input(f"Position (0–{int(len(labels) - 1)})", 0, len(labels) - 1, default,
                                   key=_pos_key(xs, i), help=help_))
        col.caption(ui.md(labels[pos]))
    else:
        pos = int(col.selectbox("Position", list(range(len(labels))), index=default, format_func=labels.__getitem__,
                                key=_pos_key(xs, i), help=help_))
    options = dict(xs.token_targets(i, pos))
    return int(col.selectbox("Explain next token", list(options), format_func=options.__getitem__,
                             key=_k(f"ll_xp_tok_{xs.split}_{i}_{pos}"),
                             help="Attributions explain the score of this token at the chosen position: the model's "
                                  "likeliest next tokens there, and the true one"))


# ------------------------------------------------------------------------------------- attributions
def attributions_tab(xs: ExplainSession, i: int, target: Any, base: dict) -> None:
    tips.tip("attribution")
    ms = xs.methods()
    avail = ms.available
    chosen = st.session_state.get(_k("ll_xp_methods"))
    chosen = ms.default if chosen is None else [m for m in chosen if m in avail]
    layer_methods = [m for m in chosen if avail[m].layers]
    image = xs.shown_modality == "image"
    c = st.columns([2.8] + [2.0] * image + [0.9] + [1.1] * len(layer_methods), vertical_alignment="bottom")  # View: 3 words
    chosen = c.pop(0).multiselect("Methods (side by side)", list(avail), default=ms.default, format_func=xs.method_label,
                                  key=_k("ll_xp_methods"), placeholder="Choose one or more attribution methods")
    mode = "both"
    if image:
        mode = c.pop(0).segmented_control("View", ["heatmap", "overlay", "both"], default="both", key="ll_xp_mode",
                                          format_func=str.capitalize, required=True) or "both"
    steps = int(c.pop(0).number_input("Integration steps", 4, 300, 50, step=10, key="ll_xp_steps",
                                      help="n_steps of Integrated Gradients, Layer IG and conductance"))
    layers: dict[str, str] = {}
    for col, m in zip(c, layer_methods):
        opts_l = list(avail[m].layers)
        layers[m] = col.selectbox(f"{xs.method_label(m)} node", opts_l, index=opts_l.index(xs.default_layer(m, opts_l)),
                                  key=_k(f"ll_xp_layer_{m}"), help=xs.layer_help(m))
    if not chosen:
        st.info("Choose at least one method above to see attributions.", icon=":material/touch_app:")
    else:
        _attribution_views(xs, i, target, base, chosen, layers, steps, mode)
    if ms.unavailable:
        with st.expander(f"Not available for this model ({len(ms.unavailable)})", icon=":material/block:"):
            for m in ms.unavailable:
                st.markdown(f"- **{m.label}** — {ui.md(m.reason.split(': ', 1)[-1])}")
    if xs.shown_modality == "tabular":
        _global_ranking(xs, ms.ranking, base)


def _attribution_views(xs: ExplainSession, i: int, target: Any, base: dict, chosen: list[str],
                       layers: dict[str, str], steps: int, mode: str) -> None:
    """Run the chosen methods on the sample (cached) and draw them side by side, by modality."""
    results: dict[str, Any] = {}
    for m in chosen:
        key = ("exp", xs.split, i, m, target, tuple(base.values()), layers.get(m), steps)
        try:
            results[m] = _cached(key, lambda m=m: xs.explain(i, m, target, layer=layers.get(m), steps=steps, **base))
        except LayerLabError as e:
            st.warning(f"{xs.method_label(m)}: {ui.error_md(e)}", icon=":material/warning:")
    from builder.interpret.attributions import all_zero  # lazy: heavy (torch, captum)

    for m, e in results.items():  # a blank map is explained, not left to look like a broken figure
        if (why := all_zero(e)) is not None:
            st.info(f"{xs.method_label(m)}: {ui.md(why)}", icon=":material/info:")
    if not results:
        return
    about = xs.about(next(iter(results.values())), target)
    input_space = xs.in_input_space(results)
    if input_space and xs.shown_modality == "image":
        def draw() -> Any:
            maps = {xs.title(e): xs.picture(e.attributions[0]) for e in input_space.values()}
            return figs.image_attribution_figure(xs.picture(xs.sample_array(i)), maps, mode=mode, row_height=190,
                                                 title=f"Attributions for {about}")  # its rows set its height
        # figures with many subplots take tens of ms to build: keep them with the results they show
        fig = _cached(("fig_img", tuple(id(e) for e in input_space.values()), mode, about), draw)
        st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_image")
        what = "the score of the explained class" if xs.classification else "the explained output"
        at_layer = "".join(f" {xs.method_label(e.method)} is computed at node {e.layer} and upsampled to the input."
                           for e in input_space.values() if e.layer)  # Grad-CAM: a convolution's map
        st.caption(ui.md(f"Red pushes {what} up, blue pushes it down.{at_layer}"))
    elif input_space and xs.modality == "tabular":
        from builder.interpret.tryit import grouped_attributions  # lazy: heavy (torch)

        # a text column is one bar (named by the category the sample holds), as in the sample table and Try it
        grouped = [grouped_attributions(xs, xs.sample(i), row) for row in xs.rows(input_space)]
        fig = figs.tabular_attribution_figure([g[1] for g in grouped], grouped[0][0], top_k=20,
                                              sample_names=[xs.method_label(m) for m in input_space],
                                              title=f"Attribution per feature for {about}")
        st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_tab")
    else:
        # a language model's explained position is outlined (its own token usually weighs most: read last)
        mark = st.session_state.get(_pos_key(xs, i)) if xs.target_kind() == "token" else None  # the picked one
        for m, e in input_space.items():
            fig = figs.explanation_figure(e, xs.sample(i), 0, modality=xs.modality, feature_names=xs.axis_names(),
                                          tokens=xs.tokens(i) if xs.modality == "tokens" else None, mark=mark)
            fig.update_layout(title=plotly_text(f"{xs.title(e)} for {about}"))
            fig.update_traces(textfont=dict(size=15), selector=dict(type="heatmap"))
            st.plotly_chart(fig, width="stretch", config=CFG, key=f"ll_xp_fig_{m}")
        if mark is not None:
            st.caption(f"The outlined token is position {int(mark)}, after which the next token is predicted: the model "
                       "reads only the tokens up to it (later ones count 0), and the token there usually weighs "
                       "most, as it is the last the model read. Red pushes the explained token's score up, blue "
                       "pushes it down.")
    for m, e in xs.in_layer_space(results).items():
        fig = figs.explanation_figure(e, xs.sample(i), 0, modality=xs.modality)
        st.plotly_chart(fig, width="stretch", config=CFG, key=f"ll_xp_fig_layer_{m}")
        if xs.caption(e):
            st.caption(xs.caption(e))
    deltas = xs.deltas(results)
    if deltas:
        st.caption("Convergence delta (Σ attributions − (f(x) − f(baseline)); near 0 means the attributions account "
                   "for the whole change in output, otherwise raise the integration steps): "
                   + " · ".join(f"{label} **{d:.2g}**" for label, d in deltas))


def _global_ranking(xs: ExplainSession, names: list[str], base: dict) -> None:
    st.markdown("##### Global feature ranking")
    if not names:
        return
    # the button's words need about a third of a 900 px page ("Rank over 12 tes…" in a fifth)
    c = st.columns([2, 1.6, 2], vertical_alignment="bottom")
    m = c[0].selectbox("Method for the ranking", names, format_func=xs.method_label, key=_k("ll_xp_global_method"))
    key = ("global", xs.split, m, base["baseline"])
    go_ = c[1].button(f"Rank over {xs.n_samples} {xs.split} samples", key="ll_xp_global_go",
                      icon=":material/bar_chart:")
    c[2].caption("Mean |attribution| of each feature over the split, each sample for its predicted class.")
    if go_:
        with st.spinner("Attributing every sample…"):
            try:
                _cached(key, lambda: xs.global_ranking(m, **base))
            except LayerLabError as e:
                st.warning(ui.error_md(e), icon=":material/warning:")
    res = _cache().get(key)
    if res is None or isinstance(res, LayerLabError):
        return
    from builder.interpret.tryit import grouped_ranking  # lazy: heavy (torch)

    # a text column is one feature, as in the bars above and Try it (it listed sex=F and sex=M)
    names_, per_column = grouped_ranking(xs, res)
    fig = figs.global_importance_figure(per_column, names_,
                                        title=f"mean |{xs.method_label(m)}| over {len(res)} {xs.split} samples")
    st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_global")


# ----------------------------------------------------------------------------------------- attention
def attention_tab(xs: ExplainSession, i: int) -> None:
    if not xs.attention_nodes():
        st.info("This model has no MultiheadAttention or Transformer encoder/decoder layer, so there are no attention "
                "maps to show. Try the *Transformer-encoder classifier* template on the `sequence` dataset.",
                icon=":material/visibility_off:")
        return
    try:
        maps = _cached(("attn", xs.split, i), lambda: xs.attention(i))
    except LayerLabError as e:
        ui.show_error(e)
        return
    types = xs.node_types()
    c = st.columns([2, 1, 1], vertical_alignment="bottom")
    node = c[0].selectbox("Attention node", list(maps), key=_k("ll_xp_attn_node"),
                          format_func=lambda n: f"{n} ({types.get(n, '?')})")
    w = maps[node]  # (1, heads, T, T): T the real tokens when the model masks the padding
    tokens = xs.tokens(i)[: w.shape[-1]] if xs.modality == "tokens" else None
    c[1].metric("Heads", int(w.shape[1]))
    c[2].metric("Tokens", int(w.shape[-1]))
    fig = _cached(("fig_heads", xs.split, i, node), lambda: figs.attention_heads_figure(
        w, tokens, sample=0, include_mean=True,
        title=f"{node}: per-head attention (query × key) and the mean over heads"))
    st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_heads")
    st.markdown("##### Attention rollout")
    c = st.columns([1, 3])
    residual = c[0].slider("Residual weight", 0.0, 1.0, 0.5, 0.05, key="ll_xp_residual",
                           help="How much of each layer's map is the identity (the residual connection)")
    c[0].caption(f"Rollout multiplies the head-averaged maps of all {len(maps)} attention layers "
                 "(Abnar & Zuidema, 2020): row *i* says how much output token *i* draws on each input token.")
    from builder.interpret.attention import attention_rollout  # lazy: heavy (torch)

    try:
        roll = attention_rollout(maps, residual=residual)
    except LayerLabError as e:
        c[1].warning(ui.error_md(e))
        return
    c[1].plotly_chart(figs.attention_map_figure(roll[0], tokens, title=f"Rollout across {', '.join(maps)}"),
                      width="stretch", config=CFG, key="ll_xp_fig_rollout")


# ---------------------------------------------------------------------------------------- activations
def activations_tab(xs: ExplainSession, i: int) -> None:
    st.markdown("##### Activations of this sample")
    nodes = xs.activation_nodes()
    if not nodes:
        st.info("No node outputs to show.")
    else:
        names = list(nodes)
        c = st.columns([1.8, 2.0, 1.6], vertical_alignment="bottom")  # Show as: its 3 choices on one line at 900 px
        node = c[0].selectbox("Node", names, index=names.index(xs.default_activation_node(nodes)),
                              key=_k("ll_xp_act_node"), format_func=lambda n: f"{n} ({nodes[n]})")
        kind = c[1].segmented_control("Show as", ["auto", "strip", "histogram"], default="auto", key="ll_xp_act_kind",
                                      format_func={"auto": "Auto", "strip": "Heat strip",
                                                   "histogram": "Histogram"}.get) or "auto"
        try:
            act = _cached(("act", xs.split, i, node, kind), lambda: xs.activation(i, node, kind))
        except LayerLabError as e:
            ui.show_error(e)
            act = None
        if act is not None:
            a, k, stats = act
            c[2].caption(stats)

            tokens = xs.tokens(i) if xs.modality == "tokens" else None
            fig = _cached(("fig_act", xs.split, i, node, k), lambda: figs.activation_figure(
                a, kind=k, title=f"{node} ({nodes[node]})", row_labels=tokens))
            st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_act")
        else:
            st.info(f"Node {ui.md(node)} gave no tensor output for this sample.")

    st.markdown("##### Weight histograms")
    wn = xs.weighted_nodes()
    if not wn:
        st.info("This model has no weights.")
        return
    chosen = st.multiselect("Layers", wn, default=wn[:6], key=_k("ll_xp_w_nodes"),
                            placeholder="Choose layers with weights")
    if not chosen:
        return
    try:
        hists = _cached(("whist", tuple(chosen)), lambda: xs.weight_histograms(chosen))
        fig = _cached(("fig_w", tuple(chosen)), lambda: figs.weight_histogram_figure(hists))
        st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_w")
    except LayerLabError as e:
        ui.show_error(e)


# ---------------------------------------------------------------------------------------------- trust
def trust_tab(xs: ExplainSession, i: int, target: Any, base: dict) -> None:
    ms = xs.methods()
    n_max = xs.n_samples
    st.markdown("##### Sanity check: model-parameter randomisation")
    st.caption("Layers are re-initialised one by one from the output down; after each step the maps are compared "
               "with the trained model's by Spearman rank correlation (Adebayo et al., 2018). A method whose maps "
               "barely change explains the input, not the model, and is flagged.")
    c = st.columns([3, 1, 1, 1.2], vertical_alignment="bottom")
    methods = c[0].multiselect("Methods", ms.sanity, default=ms.sanity_default, format_func=xs.method_label,
                               key=_k("ll_xp_sanity_methods"))
    n = int(c[1].number_input("Samples", 1, min(64, n_max), min(8, n_max), key=_k(f"ll_xp_sanity_n_{xs.split}"),
                              help="The first samples of the split (from the chosen one on)"))
    thr = float(c[2].number_input("Flag threshold", 0.05, 1.0, 0.5, 0.05, key="ll_xp_sanity_thr"))
    run = c[3].button("Run sanity check", key="ll_xp_sanity_go", icon=":material/science:", type="primary",
                      disabled=not methods)
    start, stop = xs.window(i, n)
    # a regression, a reconstruction: no class; a language model: one next token
    explained_unit = "class" if xs.classification else "next token" if xs.target_kind() == "token" else "output"
    explained = explained_unit + (" (its prediction)" if xs.classification and target is None else
                                  " (the largest)" if target is None and xs.target_kind() != "single" else "")
    st.caption(f"On {xs.split} samples #{int(start)}–#{int(stop - 1)} (from the chosen one on), each for the "
               f"explained {explained}, with the chosen baseline.")
    key = ("sanity", xs.split, start, n, tuple(methods), thr, target, base["baseline"])
    items = _cache()
    if run:
        explain_checks.run_check(items, key, "Randomising layers…",
                                 lambda: xs.sanity(i, n, methods, target, threshold=thr, **base))
    explain_checks.await_check(items, key, "The sanity check")
    rep = items.get(key)
    if isinstance(rep, LayerLabError):
        st.warning(ui.md(rep), icon=":material/warning:")
    elif rep is not None:
        for msg in rep.errors:
            st.warning(msg, icon=":material/warning:")
        if rep.results:
            fig = figs.sanity_figure(rep.results, labels={r.method: xs.method_label(r.method) for r in rep.results})
            st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_sanity")
            for r in rep.results:
                (st.warning if r.flagged else st.success)(f"**{xs.method_label(r.method)}** — {r.message.split(': ', 1)[-1]}",
                                                          icon=":material/flag:" if r.flagged else ":material/check:")

    st.markdown("##### Integrated Gradients completeness")
    st.caption(f"IG's attributions should sum to f(x) − f(baseline) for the explained {explained_unit}; the "
               "difference is the convergence delta. Token models use Layer IG on the Embedding.")
    c = st.columns([1, 1.4, 2.6], vertical_alignment="bottom")  # at 900 px: "Check complete…" in a fifth of the row
    steps = int(c[0].number_input("Integration steps", 4, 500, 50, step=10, key="ll_xp_ig_steps"))
    go_ = c[1].button("Check completeness", key="ll_xp_ig_go", icon=":material/functions:")
    key = ("ig", xs.split, start, n, steps, target, base["baseline"], base["pad_token"])
    if go_:
        explain_checks.run_check(items, key, "Integrating…", lambda: xs.completeness(i, n, target, steps=steps, **base))
    explain_checks.await_check(items, key, "The completeness check")
    res = items.get(key)
    if isinstance(res, LayerLabError):
        st.warning(str(res), icon=":material/warning:")
    elif res is not None:
        cc = st.columns([3, 1])
        cc[0].plotly_chart(figs.completeness_figure(res), width="stretch", config=CFG, key="ll_xp_fig_ig")
        cc[1].metric("max |delta|", f"{res.max_abs_delta:.2g}")
        cc[1].metric("Samples", len(res.delta))
        (cc[1].success if res.ok else cc[1].warning)(res.verdict)


# ----------------------------------------------------------------------------------------------- live
def _enable_hint(recording: bool) -> None:
    if recording:
        st.info("Recording attributions: the first frame arrives at the end of the first epoch.",
                icon=":material/hourglass_top:")
        return
    st.info("No attributions were recorded while this model trained. Recording is off by default: on the "
            "**Train** page tick **Record attributions live** before pressing *Start training*. The trainer then "
            "attributes a few fixed validation samples at the end of every epoch (Integrated Gradients with 16 "
            "steps: a few milliseconds per epoch for small models) and this tab plays them back with a slider, "
            "so you can watch the maps form as the network learns.", icon=":material/slow_motion_video:")


def live_tab(run_id: str | None) -> None:
    """Play back the frames recorded with the picked model's run (refreshing while that run trains)."""

    polling = False
    if run_id:
        try:
            polling = is_live(ui.get_run(run_id))
        except LayerLabError:
            polling = False
    st.session_state.ll_xp_live_polling = polling
    st.fragment(run_every=2.0 if polling else None)(_live_view)(run_id)


def _live_view(run_id: str | None) -> None:
    from builder.interpret.live import live_playback, records_live  # lazy: heavy (torch)

    if not run_id:
        _enable_hint(False)
        return
    rs = ui.store()
    run = ui.get_run(run_id, rs)
    active = is_live(run)
    if st.session_state.get("ll_xp_live_polling") and not active:
        st.session_state.ll_xp_live_polling = False
        st.rerun()  # training ended: one full run stops the polling (and shows the new model)
    play = live_playback(rs, run)
    if play is None:
        _enable_hint(active and records_live(rs, run_id))
        return
    frames = play.frames
    c = st.columns([2, 3], vertical_alignment="bottom")
    s = c[0].selectbox("Sample", list(range(len(play.names))), format_func=play.names.__getitem__,
                       key="ll_xp_live_sample")
    c[1].caption(f"{ui.md(play.label)}, {len(frames)} frames {'recording' if active else 'recorded'} (epochs "
                 f"{frames[0]['epoch']}–{frames[-1]['epoch']}) while training run `{run_id}`. Drag the slider or "
                 "press ▶ to play.")
    view = play.sample_view(s)
    try:
        fig = figs.live_attribution_figure(frames, sample=s, **view,
                                           title=f"{play.label} for {play.names[s]} during training")
    except LayerLabError as e:
        st.warning(ui.error_md(e), icon=":material/warning:")
        return
    if view["image"] is not None:
        fig.update_layout(width=640)
        st.plotly_chart(fig, width="content", config=CFG, key="ll_xp_fig_live")
    else:
        st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_live")


# ----------------------------------------------------------------------------------------------- page
def main() -> None:
    options = _model_options()
    if not options:
        ui.run_from_url("explain", [], MISSING_RUN)  # a deep link to a run this owner cannot explain: say so
        _empty_state()
        return
    with st.container(border=True):
        row = st.columns([2.4, 0.9, 1.3, 1.1, 2.3], vertical_alignment="bottom")  # Split: "test" read "te" at 0.7
        xs = _choose_model(options, row)
        if xs is None:
            return
        try:
            picked = _sample_header(xs, row[2:])
        except LayerLabError as e:
            ui.show_error(e)
            return
    if picked is None:
        return
    i, target, base = picked
    # lazy tabs: only the open one runs (each has figures that take tens of ms to build)
    tabs = st.tabs(TABS, key="ll_xp_tab", on_change="rerun")
    views = [lambda: attributions_tab(xs, i, target, base), lambda: explain_tryit.try_it_panel(xs, i, _k), lambda: attention_tab(xs, i),
             lambda: activations_tab(xs, i), lambda: trust_tab(xs, i, target, base),
             lambda: explain_checks.robustness_tab(xs, _cached, _cache()),
             lambda: explain_checks.calibration_tab(xs, _cached), lambda: live_tab(xs.run_id)]
    for tab, name, view in zip(tabs, TABS, views):
        if tab.open:
            with tab:
                _guarded(name, view)


def _guarded(name: str, view: Callable[[], None]) -> None:
    """Run one tab: user errors as messages; anything else as one line naming a bug, never a traceback."""
    try:
        view()
    except LayerLabError as e:
        ui.show_error(e)
    except Exception as e:  # noqa: BLE001 - a bug in the page or the library; keep the rest of the page usable
        st.error(f"The {name} view failed ({type(e).__name__}: {ui.error_md(e)}). This is a bug in LayerLab; please report it.",
                 icon=":material/bug_report:")


main()
