"""Try it: your own input through a trained model, predicted and explained at once (Explain › Try it, and the
Build page's panel beside the canvas).

One home for the panel: it collects the input (a table row, a drawing, an uploaded image or typed words), asks
:mod:`builder.interpret.tryit` through the :class:`~builder.interpret.session.ExplainSession` the Explain page
uses, and draws the answer. ``key`` makes the widget keys of one place (and one model) its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

from app_pages import tips, ui
from builder.canvas.drawpad import draw_pad
from builder.errors import LayerLabError
from builder.escape import plotly_text
from builder.interpret import figures as figs

if TYPE_CHECKING:
    from builder.interpret.session import ExplainSession

CFG = {"displayModeBar": False}
DRAW_MAX_SIDE = 64  # images up to this side are offered the drawing pad first (digits: 8×8, MNIST: 28×28)
IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp"]


def _method(xs: ExplainSession, key: Callable[[str], str], column) -> str | None:
    methods = xs.methods()
    return column.selectbox("Attribution", [*methods.default, *(m for m in methods.available
                                                                if m not in methods.default), None],
                            format_func=lambda m: "none" if m is None else xs.method_label(m),
                            key=key("ll_try_method"), help="Computed for the predicted class of your input")


def _image_input(xs: ExplainSession, form, key: Callable[[str], str], compact: bool):
    """A drawing or an upload as the model's input; None while there is nothing to try."""
    from builder.interpret import tryit  # lazy: heavy (torch)

    h, w = form.shape[1], form.shape[2]
    sources = ["Draw", "Upload"] if max(h, w) <= DRAW_MAX_SIDE else ["Upload", "Draw"]
    source = st.segmented_control("Input", sources, default=sources[0], key=key("ll_try_source"),
                                  label_visibility="collapsed") or sources[0]
    if source == "Draw":
        strokes = draw_pad(key=key("ll_try_pad"), size=200 if compact else 240)
        invert = st.checkbox("Dark on light", key=key("ll_try_pad_invert"),
                             help=f"The drawing is resampled to {h}×{w}, light strokes on a dark ground like the "
                                  "built-in digits; tick this when the training images are dark on light")
        if not strokes:
            st.caption(f"Draw a digit: it is centred and resampled to the model's {h}×{w} input.")
            return None
        return tryit.encode_strokes(xs, strokes, invert=invert)
    c = st.columns([3, 1], vertical_alignment="bottom") if not compact else (st.container(), st.container())
    up = c[0].file_uploader("Your image", type=IMAGE_TYPES, key=key("ll_try_image"),
                            help=f"Resized to {h}×{w} and scaled like the training images")
    invert = c[1].checkbox("Invert (dark on light)", key=key("ll_try_invert"),
                           help="Drawings are usually dark on light; the built-in digits are light on dark")
    if up is None:
        st.info("Upload an image to see what the model makes of it.", icon=":material/upload:")
        return None
    return tryit.encode_image(xs, up.getvalue(), invert=invert, name=up.name)


def try_it_panel(xs: ExplainSession, i: int, key: Callable[[str], str], *, compact: bool = False) -> None:
    """Your own input: a row in the data's units, a drawing or an uploaded image, or typed words, predicted
    and explained. ``compact``: one column (the Build page's side panel)."""
    from builder.interpret import tryit  # lazy: heavy (torch)

    tips.tip("try_it")
    form = tryit.try_form(xs, i)
    if form.kind == "prompt":
        _prompt_panel(xs, form, i, key)
        return
    method = _method(xs, key, st.container() if compact else st.columns([1, 2])[0])
    text = ""
    try:
        if form.kind == "series":
            lookback, cols = form.shape
            named = ": " + ", ".join(form.names) if form.names else ""  # the series' own columns, in order
            text = st.text_area(f"Your series: at least {lookback} steps, one per line ({cols} number(s) each"
                                f"{ui.md(named)}; the last steps are read)", value=form.start_text, height=160,
                                key=key(f"ll_try_series_{i}"))
            x = tryit.encode_series(xs, text)
        elif form.kind == "features":
            x = _row_input(xs, form, i, key, compact)
        elif form.kind == "image":
            x = _image_input(xs, form, key, compact)
            if x is None:
                return
        elif getattr(xs.info, "tokenizer", ""):  # free text, tokenized as the training data was
            text = st.text_input("Your sentence", value=form.start_text, key=key(f"ll_try_text_{i}"),
                                 max_chars=tryit.MAX_TRY_TEXT)
            x = tryit.encode_tokens(xs, text)
            cut = tryit.tokens_cut(xs, text)
            labels = tryit.token_labels(xs, x)
            st.caption("Tokens: " + ui.md(" · ".join(t for t in labels if t != "<pad>"))
                       + (f" — cut to the model's {x.shape[-1]} tokens: the last {cut} "
                          f"{'are' if cut > 1 else 'is'} not read" if cut else ""))
            unknown, shown = tryit.unknown_tokens(labels)
            if unknown:  # 8 of 11 words unknown answered "positive · 100.0% confident" without a word
                said = (f"{unknown:d} of {shown:d} tokens are words the model never saw in training: it reads each "
                        "as the same placeholder, so this answer says nothing about them. Try words of the "
                        "training texts.")
                if unknown * 4 >= shown:
                    st.warning(said, icon=":material/help:")
                else:
                    st.caption(said)
        else:
            text = st.text_input("Your sequence (words of the vocabulary, separated by spaces)",
                                 value=form.start_text, key=key(f"ll_try_text_{i}"), max_chars=tryit.MAX_TRY_TEXT)
            st.caption("Vocabulary: " + ui.md(" ".join(form.vocab[:60])))
            x = tryit.encode_tokens(xs, text)
        started = time.perf_counter()
        res = tryit.try_input(xs, x, method)
        took = time.perf_counter() - started
    except LayerLabError as e:
        st.warning(ui.error_md(e), icon=":material/warning:")
        return
    _answer(xs, form, x, res, text, took, key, compact)


def _row_input(xs: ExplainSession, form, i: int, key: Callable[[str], str], compact: bool):
    """A table row: the numbers in the data's own units, each text column as a picker of its categories."""
    from builder.interpret import tryit  # lazy: heavy (torch)

    st.caption("Edit the values in the data's own units (the model sees them standardised like its training "
               f"data). Starting from {xs.split} sample #{i}.")
    picks: dict[str, str] | None = None
    if form.choices:
        cols = st.columns(1 if compact else min(3, len(form.choices)))
        picks = {c: cols[k % len(cols)].selectbox(ui.md(c), levels, index=levels.index(form.picked.get(c, levels[0])),
                                                  key=key(f"ll_try_pick_{i}_{c}"))
                 for k, (c, levels) in enumerate(form.choices.items())}
    values: list[float] = []
    if form.names:
        rows = st.data_editor({"feature": form.names, "value": form.start}, hide_index=True, width="stretch",
                              disabled=["feature"], key=key(f"ll_try_rows_{i}"))
        values = list(rows["value"])
    return tryit.encode_row(xs, values, picks)


def _prompt_panel(xs: ExplainSession, form, i: int, key: Callable[[str], str]) -> None:
    """A language model: a prompt, sampling settings, the continuation (written in the probe's child)."""
    from builder.interpret import tryit  # lazy: heavy (torch)

    text = st.text_input("Your prompt", value=form.start_text, key=key(f"ll_try_prompt_{i}"),
                         max_chars=tryit.MAX_TRY_TEXT)
    c = st.columns(3)
    temperature = c[0].slider("Temperature", 0.0, 2.0, 0.8, 0.1, key=key("ll_try_temp"),
                              help="0: always the most likely token; higher: more surprising choices")
    top_k = c[1].number_input("Top-k", 0, 1000, 20, key=key("ll_try_topk"), help="Sample among the k most "
                              "likely tokens (0: all)")
    steps = c[2].number_input("Tokens to write", 1, 400, 40, key=key("ll_try_steps"))
    try:
        out = tryit.continue_text(xs, tryit.encode_tokens(xs, text), int(steps), float(temperature), int(top_k))
    except LayerLabError as e:
        st.warning(ui.error_md(e), icon=":material/warning:")
        return
    st.markdown(f"**{ui.md(out['prompt'])}**{ui.md(out['continuation'])}")


def _answer(xs: ExplainSession, form, x, res, text: str, took: float, key: Callable[[str], str],
            compact: bool) -> None:
    c = (st.container(), st.container()) if compact else st.columns([1, 3])
    conf = f"{res.confidence:.1%} confident" if res.confidence == res.confidence else None  # NaN: a value
    with c[0].container(key=key("ll_try_answer")):
        if res.output is not None and form.kind == "image":  # a reconstruction: the picture it gives back
            st.markdown("**Its reconstruction**")
            st.image(figs.picture_image(xs.picture(res.output[0].numpy())), width=120,
                     caption="what the model gives back for your input")
        else:
            st.metric("Your input's prediction", ui.md(res.predicted), delta=conf, delta_color="off",
                      delta_arrow="off")
        if res.runners_up:
            st.caption("Next: " + ", ".join(f"{ui.md(n)} {p:.0%}" for n, p in res.runners_up))
        st.caption(f"Answered in {took * 1e3:.0f} ms")
    if res.error:
        c[1].warning(ui.md(res.error), icon=":material/warning:")
    elif res.explanation is not None:
        e = res.explanation
        about = res.explained or "the model's output"  # what is explained, named as the sample view names it
        if form.kind == "image":  # the picture, also of a model that reads it flattened
            shown, attr = xs.picture(x[0].detach().cpu().numpy()), xs.picture(e.attributions[0].numpy())
        if form.kind == "image" and compact:  # a picture, not a chart: no plotting bundle to load in the browser
            c[1].container(key=key("ll_try_pic")).image(
                figs.attribution_image(shown, attr), width="stretch",
                caption=f"{xs.title(e)} for {about}: your input | red pushed towards it, blue against")
            return
        if form.kind == "image":
            fig = figs.image_attribution_figure(shown, {xs.title(e): attr}, title=f"{xs.title(e)} for {about}")
        elif form.kind == "features" and form.choices:  # a text column is one bar, as it is one picker
            from builder.interpret.tryit import grouped_attributions  # lazy: heavy (torch)

            names, values = grouped_attributions(xs, x[0], e.attributions[0])
            fig = figs.tabular_attribution_figure(values, names, title=f"{xs.title(e)} for {about}")
        else:
            from builder.interpret.tryit import token_labels  # lazy: heavy (torch)

            fig = figs.explanation_figure(e, x, 0, modality=xs.modality, feature_names=xs.axis_names(),
                                          tokens=token_labels(xs, x) if form.kind == "tokens" else None)
            fig.update_layout(title=plotly_text(f"{xs.title(e)} for {about}"))
        if compact:
            fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 40, "b": 10})
        c[1].plotly_chart(fig, width="stretch", config=CFG, key=key("ll_try_fig"))


# ------------------------------------------------------------------------------- the Build page's panel
BUILD_KEY = "ll_try_build"  # session state: the panel's session, with the weights' version it was opened at
POLL_S = 2.0  # seconds between refreshes while the run trains


def _build_key(name: str) -> str:
    return f"{name}@build"  # one drawing/row per panel, kept while the model refreshes


def session_probe() -> Any:
    """This page session's model probe (:class:`builder.jobs.probe.ModelProbe`, ``ll_xp_probe``), shared by
    the Explain page and the Build page's panel; its child starts on the first question."""
    ss = st.session_state
    if ss.get("ll_xp_probe") is None:
        from builder.jobs.probe import ModelProbe  # lazy: heavy (torch)

        ss.ll_xp_probe = ModelProbe()
    return ss.ll_xp_probe


def _session_for(tr: Any) -> Any:
    """The panel's session for the run's current weights: asked through the page session's sandboxed probe with the
    weights' version, so newer weights are read again in the same child (nothing runs the model here)."""
    from builder.jobs.probe import ProbeSession  # lazy: heavy (torch)

    ss = st.session_state
    held = ss.get(BUILD_KEY)
    if held and held["version"] == tr.version:
        return held["xs"]
    xs = ProbeSession(session_probe(), ui.store(), tr.run_id, "test", version=tr.version)
    ss[BUILD_KEY] = {"version": tr.version, "xs": xs}
    return xs


def build_panel(graph: Any) -> None:
    """Try it beside the canvas: the newest run of the canvas graph (its live run while one trains, read from
    its newest checkpoint and refreshed every :data:`POLL_S` seconds)."""
    from builder.interpret.tryit import try_run  # lazy: heavy (torch)

    try:
        tr = try_run(ui.store(), graph, ui.owner())
    except LayerLabError as e:
        st.warning(ui.error_md(e), icon=":material/warning:")
        return
    if tr is None:
        st.caption("Train this network (Train page) and try your own input on it here: a drawing, an image, a "
                   "table row or words, with the prediction and what it looked at.")
        return
    st.session_state.ll_try_build_polling = tr.live
    st.fragment(run_every=POLL_S if tr.live else None)(_build_view)(graph)


def _build_view(graph: Any) -> None:
    from builder.interpret.tryit import try_run  # lazy: heavy (torch)

    tr = try_run(ui.store(), graph, ui.owner())
    if tr is None:
        return
    if st.session_state.get("ll_try_build_polling") and not tr.live:
        st.session_state.ll_try_build_polling = False
        st.rerun()  # training ended: one full run stops the polling
    st.caption(ui.md(tr.describe()))
    if not tr.ready:
        return
    if not tr.live:  # a diverged run answers "100 % confident" to anything: said before it answers
        from builder.interpret.doctor import run_broken_line  # lazy: heavy (torch)

        rs = ui.store()
        if why := run_broken_line(rs.get(tr.run_id), rs.metrics(tr.run_id, "epoch")):
            st.warning(f"This run did not learn: {ui.md(why)}.", icon=":material/warning:")
    try:
        xs = _session_for(tr)
        try_it_panel(xs, 0, _build_key, compact=True)
    except LayerLabError as e:
        st.warning(ui.error_md(e), icon=":material/warning:")
