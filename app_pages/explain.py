"""Explain page: attributions, attention, activations and weights, trust checks and live playback.

Everything per session lives in ``st.session_state``: the model chosen (the last trained one or a finished run
from the run store), the dataset it was trained on, and a cache of results for that model
(``ll_xp_cache``, reset when the model changes). The page collects choices, calls ``builder.interpret.attributions``,
``builder.interpret.attention``, ``builder.interpret.activations``, ``builder.interpret.sanity`` and renders ``builder.interpret.figures``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

import builder
from app_pages import nav, ui
from builder.data import Prediction, fit_dataset, predict
from builder.errors import LayerLabError
from builder.interpret import figures as figs
from builder.interpret.attributions import (
    infer_modality,
    layer_nodes,
    method_label,
    model_modality,
    resolve_layer,
)

ui.page_header("Explain", "See what the trained network looks at: attributions, attention, activations and "
                          "weights, with checks that the explanations can be trusted.")

CFG = {"displayModeBar": False}
PICK_LABELS = {"index": "By index", "class": "By true class", "correct": "Correct predictions",
               "incorrect": "Mistakes", "confident_mistakes": "Most confident mistakes"}
BASELINE_LABELS = {"zeros": "Zeros", "mean": "Training mean", "blur": "Blurred input", "pad": "Pad token"}
BASELINES_FOR = {"image": ["zeros", "mean", "blur"], "tabular": ["zeros", "mean"], "sequence": ["zeros", "mean"],
                 "tokens": ["pad"]}
DEFAULT_METHODS = {"image": ["saliency", "integrated_gradients", "grad_cam"],
                   "tabular": ["integrated_gradients", "feature_ablation"],
                   "sequence": ["integrated_gradients", "occlusion"],
                   "tokens": ["layer_integrated_gradients", "occlusion"]}
STEP_METHODS = {"integrated_gradients", "layer_integrated_gradients", "layer_conductance"}
TABS = ["Attributions", "Attention", "Activations & weights", "Trust", "Live"]
MAX_RUNS_CACHED = 3
MAX_CACHED = 300  # results kept per session for the chosen model


# ------------------------------------------------------------------------------------------- context
@dataclass
class _Ctx:
    """The model being explained and its data (one split)."""

    key: str
    model: torch.nn.Module
    ds: Any  # builder.data.Dataset
    modality: str  # image | tabular | sequence | tokens
    split: str
    X: torch.Tensor  # (N, ...) on the model's device
    y: torch.Tensor | None
    pred: torch.Tensor  # (N,) predicted class (or 0 for regression)
    conf: torch.Tensor  # (N,) confidence (or the predicted value for regression)
    run_id: str | None
    prediction: Prediction  # the model's outputs on the split, read for the task

    def k(self, name: str) -> str:
        """A widget key for this model: choices made for one model do not leak into another's widgets."""
        return f"{name}@{self.key}"

    @property
    def info(self):
        return self.ds.info

    @property
    def classification(self) -> bool:
        return self.info.task in ("multiclass", "binary")

    def class_name(self, c: int) -> str:
        names = self.info.class_names
        return str(names[c]) if names and 0 <= c < len(names) else str(c)

    def tokens(self, ids: torch.Tensor) -> list[str]:
        vocab = self.info.vocab
        return [str(vocab[i]) if vocab and 0 <= i < len(vocab) else str(i) for i in ids.reshape(-1).tolist()]

    def feature_names(self) -> list[str] | None:
        names = self.info.feature_names
        n = int(self.X[0].numel())
        return list(names) if names and len(names) == n else None


def _device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


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


# ------------------------------------------------------------------------------------- model sources
def _finished_runs() -> list[dict]:
    try:
        return ui.visible_runs(status="finished", limit=30)
    except LayerLabError:
        return []


def _load_run(run_id: str) -> tuple[torch.nn.Module, Any]:
    """A finished run's model and dataset (:func:`builder.training.pipeline.load_run`), cached per session.

    The graph is checked against the memory budget before it is compiled in the server.

    Raises:
        LayerLabError: unknown or another owner's run, missing or incompatible weights, a graph over the budget.
    """
    from builder.training.pipeline import load_run

    runs = st.session_state.setdefault("ll_xp_runs", {})
    if run_id in runs:
        return runs[run_id]
    rs = ui.store()
    run = ui.get_run(run_id, rs)
    report = builder.infer_shapes(builder.load_project(run["project"]).graph)  # raises nothing; budget in report
    if not report.ok and any(p.code == "budget" for p in report.problems):
        raise builder.BudgetError([p for p in report.problems if p.code == "budget"])
    try:
        model, ds = load_run(rs, run["id"])
    except LayerLabError:
        raise
    except Exception as e:  # noqa: BLE001 - torch's and safetensors' errors for a file that does not fit
        raise builder.RunStoreError(f"the weights of run {run_id} do not fit its project: {e}") from e
    if len(runs) >= MAX_RUNS_CACHED:
        runs.pop(next(iter(runs)))
    runs[run_id] = (model, ds)
    return model, ds


def _session_dataset():
    """The dataset the session's model was trained on (its run's), else the Data page's choice."""
    run_id = st.session_state.get("ll_model_run")
    if run_id:
        try:
            from builder.training.pipeline import load_run_dataset

            rs = ui.store()
            return load_run_dataset(rs, ui.get_run(run_id, rs))
        except LayerLabError:
            pass
    return ui.load_spec(ui.dataset_spec())


def _single_logit(ctx: _Ctx) -> bool:
    return ctx.prediction.single_logit


def _model_options() -> dict[str, str]:
    """Models to explain: a model handed over in this session (``ll_model``) and the finished runs this
    session may see, each labelled so runs are told apart (name, dataset, lr, epochs, batch, best metric)."""
    from builder.runs.summary import best_epoch, run_label

    ss = st.session_state
    options: dict[str, str] = {}
    if ss.get("ll_model") is not None:
        rid = ss.get("ll_model_run")
        options["session"] = f"Last trained model · run {rid}" if rid else "Last trained model (this session)"
    rs = ui.store()
    for r in _finished_runs():
        if r["id"] != ss.get("ll_model_run"):
            best = best_epoch(ui.run_summary(rs, r).get("epochs") or [])
            options[f"run:{r['id']}"] = run_label(r, best)
    return options


def _live_run() -> dict | None:
    """This owner's run in progress that records attributions (the newest), or None."""
    from builder.runs.jobs import live_frames

    rs = ui.store()
    for r in ui.live_runs():
        if live_frames(rs, r["id"]) is not None or _records_live(rs, r["id"]):
            return r
    return None


def _records_live(rs, run_id: str) -> bool:
    import json

    path = rs.run_dir(run_id) / "job.json"
    try:
        return any(str(c).startswith("live_attributions") for c in json.loads(path.read_text())["callbacks"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _empty_state() -> None:
    live = _live_run()
    if live is not None:
        st.info("Training is in progress; its model appears here when it finishes.", icon=":material/model_training:")
        st.markdown("##### Attributions recorded so far")
        live_tab(live["id"])
        return
    if ui.live_runs():
        st.info("Training is in progress; its model appears here when it finishes.", icon=":material/model_training:")
        return
    with st.container(border=True):
        st.markdown("#### No trained model yet")
        st.markdown("Train a network on the **Train** page (the *Small CNN for 8×8 digits* template trains in "
                    "a few seconds), then come back here to see which pixels, features or tokens drive its "
                    "predictions. Your finished runs also show up here after a restart.")
        st.page_link(nav.TRAIN, label="Open the Train page", icon=":material/model_training:")


MISSING_RUN = "No finished run {run} of yours in this workspace."


def _choose_model(options: dict[str, str], c: list) -> _Ctx | None:
    """Model and split pickers (in the columns ``c``); returns the context or None (error shown)."""
    ss = st.session_state
    ids = [k.split(":", 1)[1] for k in options if k.startswith("run:")]
    if "session" in options and ss.get("ll_model_run"):
        ids.append(ss.ll_model_run)
    # /explain?run=ID opens that run's model
    url_run = ui.run_from_url("explain", ids, MISSING_RUN)
    if url_run is not None and f"run:{url_run}" in options:
        ss.ll_xp_model = f"run:{url_run}"
    elif url_run is not None and url_run == ss.get("ll_model_run") and "session" in options:
        ss.ll_xp_model = "session"
    choice = c[0].selectbox("Model", list(options), format_func=options.get, key="ll_xp_model",
                            help="The model trained in this session, or any finished run in the workspace")
    split = c[1].selectbox("Split", ["test", "val", "train"], key="ll_xp_split",
                           help="Which split the samples come from")
    try:
        if choice == "session":
            model, run_id = ss.ll_model, ss.get("ll_model_run")
            key = f"session:{run_id}:{id(model)}"
            _reset_cache(key)
            ds = _cached(("dataset",), _session_dataset)
        else:
            run_id = choice.split(":", 1)[1]
            model, ds = _load_run(run_id)
            key = choice
        ds = fit_dataset(model, ds, strict=True)
        modality = model_modality(model) or infer_modality(ds.test.X)
    except LayerLabError as e:
        ui.show_error(e)
        return None
    modality = "tabular" if modality == "points2d" else modality
    _reset_cache(key)
    data = getattr(ds, split)
    dev = _device(model)
    X = data.X.to(dev)
    y = data.y if data.y is not None and data.y is not data.X else None
    prediction = _cached(("pred", split), lambda: predict(model, X, ds.info.task))
    pred, conf = prediction.pair()
    return _Ctx(key, model, ds, modality, split, X, y, pred, conf, run_id, prediction)


# ----------------------------------------------------------------------------------------- samples
def _pick(ctx: _Ctx, c: list) -> int | None:
    """Sample picker (in the three columns ``c``); returns the index in the split."""
    n = len(ctx.X)
    picks = list(PICK_LABELS) if ctx.classification and ctx.y is not None and ctx.y.dim() == 1 else ["index"]
    by = c[0].selectbox("Pick samples", picks, format_func=PICK_LABELS.get, key="ll_xp_by")
    if by == "index":
        i = int(c[1].number_input(f"Index (0–{n - 1})", 0, n - 1, 0, key=ctx.k(f"ll_xp_index_{ctx.split}")))
        c[2].caption(_describe(ctx))
        return i
    label = None
    if by == "class":
        k = len(ctx.info.class_names) or int(ctx.y.max()) + 1
        label = c[1].selectbox("True class", list(range(k)), format_func=ctx.class_name, key=ctx.k("ll_xp_label"))
    y = ctx.y.cpu()
    if _single_logit(ctx) and by in ("correct", "incorrect", "confident_mistakes"):
        ok = ctx.pred.cpu() == y
        idx = torch.nonzero(ok if by == "correct" else ~ok).flatten()
        if by == "confident_mistakes":
            idx = idx[ctx.conf.cpu()[idx].argsort(descending=True, stable=True)]
        cands = idx[:50].tolist()
    else:
        cands = _cached(("pick", ctx.split, by, label),
                        lambda: builder.pick_samples(ctx.model, ctx.X, y.to(ctx.X.device), by, label=label, k=50))
    if not cands:
        what = {"incorrect": "mistakes", "confident_mistakes": "mistakes", "correct": "correct predictions",
                "class": "samples of this class"}[by]
        c[2].info(f"No {what} in the {ctx.split} split — pick another way.", icon=":material/info:")
        return None

    def fmt(i: int) -> str:
        return f"#{i} · true {ctx.class_name(int(y[i]))} · predicted {ctx.class_name(int(ctx.pred[i]))} " \
               f"({float(ctx.conf[i]):.0%})"
    return int(c[2].selectbox(f"Sample ({len(cands)} found)", cands, format_func=fmt, key=ctx.k(f"ll_xp_cand_{by}_{ctx.split}")))


def _preview(ctx: _Ctx, x: torch.Tensor) -> None:
    """A small view of one sample (x: (1, ...))."""
    v = x[0].detach().cpu()
    if ctx.modality == "image":
        img = v.float().numpy()
        if img.ndim == 3 and img.shape[0] in (3, 4):
            rgb = img[:3].transpose(1, 2, 0)
            lo, hi = rgb.min(), rgb.max()
            rgb = (rgb - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(rgb)
            tr = go.Image(z=rgb.astype(np.uint8), hoverinfo="skip")
        else:
            tr = go.Heatmap(z=img.reshape(img.shape[-2], img.shape[-1]) if img.ndim == 3 and img.shape[0] == 1
                            else img.mean(0) if img.ndim == 3 else img, colorscale="gray", showscale=False,
                            hoverinfo="skip")
        fig = go.Figure(tr)
        fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
        fig.update_xaxes(showticklabels=False, constrain="domain")
        fig.update_layout(height=120, margin=dict(l=0, r=0, t=0, b=0))
        st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_preview")
    elif ctx.modality == "tokens":
        st.code(" ".join(ctx.tokens(v)), language=None, wrap_lines=True)
    elif ctx.modality == "tabular":
        names = ctx.feature_names() or [f"x{i}" for i in range(v.numel())]
        import pandas as pd
        st.dataframe(pd.DataFrame({"feature": names, "value": v.reshape(-1).numpy()}), hide_index=True,
                     height=min(200, 36 + 35 * len(names)), width="stretch")
    else:
        fig = go.Figure(go.Heatmap(z=v.float().numpy().T, colorscale="Viridis", showscale=False))
        fig.update_layout(height=150, margin=dict(l=0, r=0, t=0, b=0), xaxis_title="time step")
        st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_preview")


def _describe(ctx: _Ctx) -> str:
    info = ctx.info
    return (f"Dataset **{info.name}** · {info.task} · {ctx.modality} input {list(info.input_shape)} · "
            f"{len(ctx.X)} {ctx.split} samples")


def _sample_header(ctx: _Ctx, row: list) -> tuple[int, torch.Tensor, Any, dict] | None:
    """Sample picker, preview, label/prediction, target and baseline. Returns (index, x, target, options)."""
    with st.container():
        i = _pick(ctx, row)
        if i is None:
            return None
        x = ctx.X[i:i + 1]
        c = st.columns([0.7 if ctx.modality == "image" else 1.6, 0.9, 1.1, 1.4, 1.4], vertical_alignment="center")
        with c[0]:
            _preview(ctx, x)
        if ctx.classification:
            true = ctx.class_name(int(ctx.y[i])) if ctx.y is not None and ctx.y.dim() == 1 else "—"
            pred = ctx.class_name(int(ctx.pred[i]))
            c[1].metric("True label", true)
            right = ctx.y is not None and ctx.y.dim() == 1 and int(ctx.y[i]) == int(ctx.pred[i])
            c[2].metric("Prediction", pred, f"{'correct' if right else 'wrong'} · {float(ctx.conf[i]):.1%} confident",
                        delta_color="normal" if right else "inverse", delta_arrow="off")
            runners = ctx.prediction.runners_up(i)
            if runners:
                c[2].caption("Runners-up: " + ", ".join(f"{ctx.class_name(k)} ({p:.1%})" for k, p in runners))
        elif ctx.info.task == "regression":
            true = float(ctx.y[i].reshape(-1)[0]) if ctx.y is not None else None
            c[1].metric("True value", "—" if true is None else f"{true:.4g}")
            c[2].metric("Prediction", f"{float(ctx.conf[i]):.4g}")
        else:
            c[1].metric("Sample", f"#{i}")
        target = None
        n_out = _n_outputs(ctx)
        if n_out > 1 and ctx.classification:
            k = len(ctx.info.class_names) or n_out
            choice = c[3].selectbox("Explain class", [-1] + list(range(k)), key=ctx.k("ll_xp_target"),
                                    format_func=lambda t: f"Predicted ({ctx.class_name(int(ctx.pred[i]))})"
                                    if t < 0 else ctx.class_name(t),
                                    help="Attributions explain the score of this class")
            target = None if choice < 0 else int(choice)
        elif n_out > 1:  # reconstruction or several regression targets: pick the output unit
            choice = c[3].selectbox("Explain output", [-1] + list(range(n_out)), key=ctx.k("ll_xp_target_unit"),
                                    format_func=lambda t: "Largest output" if t < 0 else f"output {t}",
                                    help="Attributions explain this output unit")
            target = None if choice < 0 else int(choice)
        elif n_out == 1:
            c[3].caption("Single output: attributions explain the model's output "
                         + ("(the logit of the positive class)." if ctx.classification else "value."))
        base_opts = BASELINES_FOR.get(ctx.modality, ["zeros"])
        base = c[4].selectbox("Baseline", base_opts, format_func=BASELINE_LABELS.get, key=ctx.k("ll_xp_base"),
                              help="The reference input that path and perturbation methods compare against")
        opts: dict[str, Any] = {"baselines": base, "modality": ctx.modality}
        if base == "mean":
            opts["baseline_data"] = ctx.ds.train.X.to(ctx.X.device)
        if base == "pad":
            vocab = ctx.info.vocab or []
            opts["pad_token"] = int(c[4].selectbox("Pad token", list(range(max(1, len(vocab)))),
                                                   format_func=lambda t: vocab[t] if vocab else str(t),
                                                   key=ctx.k("ll_xp_pad")))
    return i, x, target, opts


def _n_outputs(ctx: _Ctx) -> int:
    return int(ctx.prediction.outputs.shape[1])


# ------------------------------------------------------------------------------------- attributions
def _default_layer(ctx: _Ctx, method: str, layers: tuple[str, ...]) -> str:
    if method == "grad_cam":
        return layers[-1]
    for n in layers:
        module = resolve_layer(ctx.model, n)[1]
        if any(True for _ in module.parameters()):
            return n
    return layers[0]


def _explain(ctx: _Ctx, i: int, x: torch.Tensor, method: str, target: Any, opts: dict, layer: str | None,
             steps: int):
    extra = {"n_steps": steps} if method in STEP_METHODS else {}
    base_key = (opts["baselines"], opts.get("pad_token"))
    key = ("exp", ctx.split, i, method, target, base_key, layer, steps)
    return _cached(key, lambda: builder.interpret.attributions(ctx.model, x, method, target, layer=layer, **opts, **extra))


def attributions_tab(ctx: _Ctx, i: int, x: torch.Tensor, target: Any, opts: dict) -> None:
    infos = builder.available_methods(ctx.model, ctx.modality)
    avail = {m.name: m for m in infos if m.available}
    unavailable = [m for m in infos if not m.available]
    default = [m for m in DEFAULT_METHODS.get(ctx.modality, []) if m in avail] or list(avail)[:1]
    chosen = st.session_state.get(ctx.k("ll_xp_methods"))
    chosen = default if chosen is None else [m for m in chosen if m in avail]
    layer_methods = [m for m in chosen if avail[m].layers]
    image = ctx.modality == "image"
    c = st.columns([3.2] + [1.6] * image + [0.9] + [1.1] * len(layer_methods), vertical_alignment="bottom")
    chosen = c.pop(0).multiselect("Methods (side by side)", list(avail), default=default, format_func=method_label,
                              key=ctx.k("ll_xp_methods"), placeholder="Choose one or more attribution methods")
    mode = "both"
    if image:
        mode = c.pop(0).segmented_control("View", ["heatmap", "overlay", "both"], default="both", key="ll_xp_mode",
                                      format_func=str.capitalize, required=True) or "both"
    steps = int(c.pop(0).number_input("Integration steps", 4, 300, 50, step=10, key="ll_xp_steps",
                                  help="n_steps of Integrated Gradients, Layer IG and conductance"))
    layers: dict[str, str] = {}
    for col, m in zip(c, layer_methods):
        opts_l = list(avail[m].layers)
        layers[m] = col.selectbox(f"{method_label(m)} node", opts_l,
                                  index=opts_l.index(_default_layer(ctx, m, avail[m].layers)),
                                  key=ctx.k(f"ll_xp_layer_{m}"),
                                  help={"grad_cam": "The convolution whose feature maps Grad-CAM weighs; the map is "
                                                    "upsampled to the input",
                                        "layer_integrated_gradients": "The Embedding node the token ids go through",
                                        }.get(m, "Any node: conductance shows how much each of its units carries"))
    if not chosen:
        st.info("Choose at least one method above to see attributions.", icon=":material/touch_app:")
    else:
        _attribution_views(ctx, i, x, target, opts, chosen, layers, steps, mode)
    if unavailable:
        with st.expander(f"Not available for this model ({len(unavailable)})", icon=":material/block:"):
            for m in unavailable:
                st.markdown(f"- **{m.label}** — {m.reason.split(': ', 1)[-1]}")
    if ctx.modality == "tabular":
        _global_ranking(ctx, avail, target, opts)


def _attribution_views(ctx: _Ctx, i: int, x: torch.Tensor, target: Any, opts: dict, chosen: list[str],
                       layers: dict[str, str], steps: int, mode: str) -> None:
    """Run the chosen methods on the sample (cached) and draw them side by side, by modality."""
    results: dict[str, Any] = {}
    for m in chosen:
        try:
            results[m] = _explain(ctx, i, x, m, target, opts, layers.get(m), steps)
        except LayerLabError as e:
            st.warning(f"{method_label(m)}: {e}", icon=":material/warning:")
    if not results:
        return
    input_space = {m: e for m, e in results.items() if m != "layer_conductance"}
    feature_names = ctx.feature_names()
    first = next(iter(results.values()))
    about = "the model's output"
    if first.target is not None:
        t = int(first.target[0])
        name = ctx.class_name(t) if ctx.classification else f"output {t}"
        about = (name if name.lower().startswith(("class", "output")) else f"class {name}") \
            + (" (the prediction)" if target is None and ctx.classification else "")
    if input_space:
        if ctx.modality == "image":
            maps = {_title(m, e): e.attributions[0] for m, e in input_space.items()}
            def draw() -> go.Figure:
                f = figs.image_attribution_figure(x[0], maps, mode=mode, title=f"Attributions for {about}")
                return f.update_layout(height=250 if mode != "both" else 400)
            # figures with many subplots take tens of ms to build: keep them with the results they show
            fig = _cached(("fig_img", tuple(id(e) for e in input_space.values()), mode, about), draw)
            st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_image")
            st.caption("Red pushes the score of the explained class up, blue pushes it down. Grad-CAM is computed "
                       "at the chosen convolution and upsampled to the input.")
        elif ctx.modality == "tabular":
            a = torch.stack([e.attributions[0].reshape(-1).cpu() for e in input_space.values()])
            fig = figs.tabular_attribution_figure(a, feature_names, top_k=20,
                                                  sample_names=[method_label(m) for m in input_space],
                                                  title=f"Attribution per feature for {about}")
            st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_tab")
        else:
            for m, e in input_space.items():
                fig = figs.explanation_figure(e, x, 0, modality=ctx.modality, tokens=ctx.tokens(x[0])
                                              if ctx.modality == "tokens" else None, feature_names=feature_names)
                fig.update_layout(title=f"{_title(m, e)} for {about}")
                fig.update_traces(textfont=dict(size=15), selector=dict(type="heatmap"))
                st.plotly_chart(fig, width="stretch", config=CFG, key=f"ll_xp_fig_{m}")
    if "layer_conductance" in results:
        e = results["layer_conductance"]
        fig = figs.explanation_figure(e, x, 0, modality=ctx.modality)
        st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_cond")
        st.caption(f"Conductance: how much each unit of node `{e.layer}` carries of the class score.")
    _deltas(results)


def _title(method: str, e) -> str:
    name = method_label(method)
    return f"{name} · {e.layer}" if method == "grad_cam" and e.layer else name


def _deltas(results: dict) -> None:
    with_delta = [(m, e) for m, e in results.items() if e.delta is not None]
    if not with_delta:
        return
    bits = [f"{method_label(m)} **{float(e.delta.abs().max()):.2g}**" for m, e in with_delta]
    st.caption("Convergence delta (Σ attributions − (f(x) − f(baseline)); near 0 means the attributions account "
               "for the whole change in output, otherwise raise the integration steps): " + " · ".join(bits))


def _global_ranking(ctx: _Ctx, avail: dict, target: Any, opts: dict) -> None:
    st.markdown("##### Global feature ranking")
    names = [m for m in ("integrated_gradients", "feature_ablation", "saliency", "input_x_gradient", "deep_lift",
                         "gradient_shap") if m in avail]
    if not names:
        return
    c = st.columns([2, 1, 2], vertical_alignment="bottom")
    m = c[0].selectbox("Method for the ranking", names, format_func=method_label,
                       key=ctx.k("ll_xp_global_method"))
    key = ("global", ctx.split, m, opts["baselines"])
    go_ = c[1].button(f"Rank over {len(ctx.X)} {ctx.split} samples", key="ll_xp_global_go", icon=":material/bar_chart:")
    items = _cache()
    c[2].caption("Mean |attribution| of each feature over the split, each sample for its predicted class.")
    if go_:
        with st.spinner("Attributing every sample…"):
            try:
                _cached(key, lambda: builder.explain_all(ctx.model, ctx.X, m, None, **opts))
            except LayerLabError as e:
                st.warning(str(e), icon=":material/warning:")
    res = items.get(key)
    if res is None or isinstance(res, LayerLabError):
        return
    fig = figs.global_importance_figure(res.attributions.reshape(len(res.attributions), -1).cpu(),
                                        ctx.feature_names(),
                                        title=f"mean |{method_label(m)}| over "
                                              f"{len(res.attributions)} {ctx.split} samples")
    st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_global")


# ----------------------------------------------------------------------------------------- attention
def attention_tab(ctx: _Ctx, i: int, x: torch.Tensor) -> None:
    from builder.interpret.attention import attention_nodes

    nodes = attention_nodes(ctx.model)
    if not nodes:
        st.info("This model has no MultiheadAttention or TransformerEncoderLayer node, so there are no attention "
                "maps to show. Try the *Transformer-encoder classifier* template on the `sequence` dataset.",
                icon=":material/visibility_off:")
        return
    try:
        maps = _cached(("attn", ctx.split, i), lambda: builder.capture_attention(ctx.model, x))
    except LayerLabError as e:
        ui.show_error(e)
        return
    tokens = ctx.tokens(x[0]) if ctx.modality == "tokens" else None
    c = st.columns([2, 1, 1], vertical_alignment="bottom")
    node = c[0].selectbox("Attention node", list(maps), key=ctx.k("ll_xp_attn_node"),
                          format_func=lambda n: f"{n} ({layer_nodes(ctx.model).get(n, '?')})")
    w = maps[node]  # (1, heads, T, T)
    c[1].metric("Heads", int(w.shape[1]))
    c[2].metric("Tokens", int(w.shape[-1]))
    fig = _cached(("fig_heads", ctx.split, i, node), lambda: figs.attention_heads_figure(
        w, tokens, sample=0, include_mean=True,
        title=f"{node}: per-head attention (query × key) and the mean over heads"))
    st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_heads")
    st.markdown("##### Attention rollout")
    c = st.columns([1, 3])
    residual = c[0].slider("Residual weight", 0.0, 1.0, 0.5, 0.05, key="ll_xp_residual",
                           help="How much of each layer's map is the identity (the residual connection)")
    c[0].caption(f"Rollout multiplies the head-averaged maps of all {len(maps)} attention layers "
                 "(Abnar & Zuidema, 2020): row *i* says how much output token *i* draws on each input token.")
    try:
        roll = builder.attention_rollout(maps, residual=residual)
    except LayerLabError as e:
        c[1].warning(str(e))
        return
    c[1].plotly_chart(figs.attention_map_figure(roll[0], tokens, title=f"Rollout across {', '.join(maps)}"),
                      width="stretch", config=CFG, key="ll_xp_fig_rollout")


# ---------------------------------------------------------------------------------------- activations
def activations_tab(ctx: _Ctx, i: int, x: torch.Tensor) -> None:
    from builder.interpret.activations import activation_nodes

    st.markdown("##### Activations of this sample")
    nodes = activation_nodes(ctx.model, _graph(ctx))
    if not nodes:
        st.info("No node outputs to show.")
    else:
        names = list(nodes)
        default = next((n for n, t in nodes.items() if t in ("Conv2d", "Conv1d")), names[min(1, len(names) - 1)])
        c = st.columns([2, 1.4, 2], vertical_alignment="bottom")
        node = c[0].selectbox("Node", names, index=names.index(default), key=ctx.k("ll_xp_act_node"),
                              format_func=lambda n: f"{n} ({nodes[n]})")
        kind = c[1].segmented_control("Show as", ["auto", "strip", "histogram"], default="auto",
                                      key="ll_xp_act_kind",
                                      format_func={"auto": "Auto", "strip": "Heat strip",
                                                   "histogram": "Histogram"}.get) or "auto"
        try:
            acts = _cached(("act", ctx.split, i, node),
                           lambda: builder.capture_activations(ctx.model, x, [node], graph=_graph(ctx)))
        except LayerLabError as e:
            ui.show_error(e)
            acts = {}
        if node in acts:
            a = acts[node][0]
            c[2].caption(f"shape {list(a.shape)} · mean {float(a.float().mean()):.3g} · "
                         f"{float((a == 0).float().mean()):.0%} zeros")
            k = kind
            if kind == "auto":
                k = "grid" if a.dim() == 3 else "strip"
            elif kind == "strip" and a.dim() == 3:
                a = a.reshape(a.shape[0], -1)
            def draw() -> go.Figure:
                f = figs.activation_figure(a, kind=k, title=f"{node} ({nodes[node]})")
                if k == "strip" and ctx.modality == "tokens" and a.dim() == 2 and a.shape[0] == x.shape[1]:
                    f.update_yaxes(tickvals=list(range(a.shape[0])), ticktext=ctx.tokens(x[0]), title="token",
                                   showticklabels=True)  # (T, D): one row per token
                return f
            fig = _cached(("fig_act", ctx.split, i, node, k), draw)
            st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_act")
        else:
            st.info(f"Node {node} gave no tensor output for this sample.")

    st.markdown("##### Weight histograms")
    from builder.interpret.sanity import weighted_nodes
    wn = weighted_nodes(ctx.model)
    if not wn:
        st.info("This model has no weights.")
        return
    chosen = st.multiselect("Layers", wn, default=wn[:6], key=ctx.k("ll_xp_w_nodes"),
                            placeholder="Choose layers with weights")
    if not chosen:
        return
    try:
        hists = _cached(("whist", tuple(chosen)), lambda: builder.weight_histograms(ctx.model, nodes=chosen))
        fig = _cached(("fig_w", tuple(chosen)), lambda: figs.weight_histogram_figure(hists))
        st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_w")
    except LayerLabError as e:
        ui.show_error(e)


def _graph(ctx: _Ctx):
    """The project graph the model was compiled from (its run's snapshot), for function nodes' ids; else None."""
    if ctx.run_id is None:
        return None
    try:
        return _cached(("graph",), lambda: builder.load_project(ui.store().get(ctx.run_id)["project"]).graph)
    except LayerLabError:
        return None


# ---------------------------------------------------------------------------------------------- trust
def trust_tab(ctx: _Ctx, i: int, target: Any, opts: dict) -> None:
    infos = builder.available_methods(ctx.model, ctx.modality)
    avail = [m.name for m in infos if m.available and m.name != "layer_conductance"]
    n_max = len(ctx.X)
    st.markdown("##### Sanity check: model-parameter randomisation")
    st.caption("Layers are re-initialised one by one from the output down; after each step the maps are compared "
               "with the trained model's by Spearman rank correlation (Adebayo et al., 2018). A method whose maps "
               "barely change explains the input, not the model, and is flagged.")
    default = [m for m in ("saliency", "integrated_gradients", "grad_cam", "layer_integrated_gradients")
               if m in avail][:3] or avail[:1]
    c = st.columns([3, 1, 1, 1.2], vertical_alignment="bottom")
    methods = c[0].multiselect("Methods", avail, default=default, format_func=method_label, key=ctx.k("ll_xp_sanity_methods"))
    n = int(c[1].number_input("Samples", 1, min(64, n_max), min(8, n_max), key=ctx.k(f"ll_xp_sanity_n_{ctx.split}"),
                              help="The first samples of the split (from the chosen one on)"))
    thr = float(c[2].number_input("Flag threshold", 0.05, 1.0, 0.5, 0.05, key="ll_xp_sanity_thr"))
    run = c[3].button("Run sanity check", key="ll_xp_sanity_go", icon=":material/science:", type="primary",
                      disabled=not methods)
    start = min(i, n_max - n)
    xs = ctx.X[start:start + n]
    st.caption(f"On {ctx.split} samples #{start}–#{start + n - 1} (from the chosen one on), each for the explained "
               "class" + (" (its prediction)" if target is None else "") + ", with the chosen baseline.")
    key = ("sanity", ctx.split, start, n, tuple(methods), thr, target, opts["baselines"])
    items = _cache()
    if run:
        base = {k: v for k, v in opts.items() if k != "modality"}
        out, errors = [], []
        with st.spinner("Randomising layers…"):
            for m in methods:
                try:
                    extra = {"n_steps": 16} if m in STEP_METHODS else {}
                    out.append(builder.randomisation_check(ctx.model, xs, m, target, threshold=thr,
                                                           modality=ctx.modality, **base, **extra))
                except LayerLabError as e:
                    errors.append(f"{method_label(m)}: {e}")
        items[key] = (out, errors)
    res = items.get(key)
    if res is not None:
        out, errors = res
        for msg in errors:
            st.warning(msg, icon=":material/warning:")
        if out:
            fig = figs.sanity_figure(out)
            for r in out:  # Captum names -> the labels used on this page
                fig.for_each_trace(lambda t, r=r: t.update(name=t.name.replace(r.method, method_label(r.method))),
                                   selector=dict(name=r.method + (" ⚠ barely changes" if r.flagged else "")))
            st.plotly_chart(fig, width="stretch", config=CFG, key="ll_xp_fig_sanity")
            for r in out:
                (st.warning if r.flagged else st.success)(f"**{method_label(r.method)}** — {r.message.split(': ', 1)[-1]}",
                                                          icon=":material/flag:" if r.flagged else ":material/check:")

    st.markdown("##### Integrated Gradients completeness")
    st.caption("IG's attributions should sum to f(x) − f(baseline) for the explained class; the difference is the "
               "convergence delta. Token models use Layer IG on the Embedding.")
    c = st.columns([1, 1, 3], vertical_alignment="bottom")
    steps = int(c[0].number_input("Integration steps", 4, 500, 50, step=10, key="ll_xp_ig_steps"))
    go_ = c[1].button("Check completeness", key="ll_xp_ig_go", icon=":material/functions:")
    key = ("ig", ctx.split, start, n, steps, target, opts["baselines"], opts.get("pad_token"))
    if go_:
        base = opts["baselines"]
        kw = {"baseline_data": opts["baseline_data"]} if "baseline_data" in opts else {}
        if "pad_token" in opts:
            kw["pad_token"] = opts["pad_token"]
        try:
            items[key] = builder.ig_completeness(ctx.model, xs, target, baselines=base, n_steps=steps, **kw)
        except LayerLabError as e:
            items[key] = e
    res = items.get(key)
    if isinstance(res, LayerLabError):
        st.warning(str(res), icon=":material/warning:")
    elif res is not None:
        cc = st.columns([3, 1])
        cc[0].plotly_chart(figs.completeness_figure(res), width="stretch", config=CFG, key="ll_xp_fig_ig")
        cc[1].metric("max |delta|", f"{res.max_abs_delta:.2g}")
        cc[1].metric("Samples", len(res.delta))
        (cc[1].success if res.ok else cc[1].warning)(
            "Complete within tolerance" if res.ok else "Outside tolerance: raise the integration steps")


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
    status = None
    if run_id:
        try:
            status = ui.get_run(run_id)["status"]
        except LayerLabError:
            status = None
    polling = status in ("queued", "running", "paused")
    st.session_state.ll_xp_live_polling = polling
    st.fragment(run_every=2.0 if polling else None)(_live_view)(run_id)


def _live_view(run_id: str | None) -> None:
    from builder.runs.jobs import live_frames

    if not run_id:
        _enable_hint(False)
        return
    rs = ui.store()
    run = ui.get_run(run_id, rs)
    active = run["status"] in ("queued", "running", "paused")
    if st.session_state.get("ll_xp_live_polling") and not active:
        st.session_state.ll_xp_live_polling = False
        st.rerun()  # training ended: one full run stops the polling (and shows the new model)
    rec = live_frames(rs, run_id)
    if rec is None or not rec["epochs"]:
        _enable_hint(active and _records_live(rs, run_id))
        return
    info = run.get("dataset_info") or {}
    classes = list(info.get("class_names") or [])
    vocab = list(info.get("vocab") or [])
    label = method_label(rec["method"])
    indices = [int(i) for i in rec["indices"]]
    names = [f"val #{j}" for j in indices]
    labels = rec.get("labels")
    if labels is not None and labels.ndim == 1 and not np.issubdtype(labels.dtype, np.floating):
        names = [f"val #{j} · {classes[t] if 0 <= t < len(classes) else t}" for j, t in zip(indices, labels.tolist())]
    frames = [{"epoch": e, "attributions": rec["attributions"][k],
               "target": None if rec.get("targets") is None else rec["targets"][k]}
              for k, e in enumerate(rec["epochs"])]
    c = st.columns([2, 3], vertical_alignment="bottom")
    s = c[0].selectbox("Sample", list(range(len(names))), format_func=lambda k: names[k], key="ll_xp_live_sample")
    c[1].caption(f"{label}, {len(frames)} frames {'recording' if active else 'recorded'} (epochs "
                 f"{frames[0]['epoch']}–{frames[-1]['epoch']}) while training run `{run_id}`. Drag the slider or "
                 "press ▶ to play.")
    x = torch.from_numpy(np.asarray(rec["inputs"][s]))
    is_image = x.dim() == 3
    tokens = None
    if not x.is_floating_point():
        tokens = [vocab[i] if 0 <= i < len(vocab) else str(i) for i in x.tolist()]
    feats = list(info.get("feature_names") or [])
    feats = feats if not is_image and tokens is None and len(feats) == x.numel() else None
    try:
        fig = figs.live_attribution_figure(frames, sample=s, image=x if is_image else None, tokens=tokens,
                                           feature_names=feats, title=f"{label} for {names[s]} during training")
    except LayerLabError as e:
        st.warning(str(e), icon=":material/warning:")
        return
    if is_image:
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
        row = st.columns([2.4, 0.7, 1.3, 1.1, 2.5], vertical_alignment="bottom")
        ctx = _choose_model(options, row)
        if ctx is None:
            return
        try:
            picked = _sample_header(ctx, row[2:])
        except LayerLabError as e:
            ui.show_error(e)
            return
    if picked is None:
        return
    i, x, target, opts = picked
    # lazy tabs: only the open one runs (each has figures that take tens of ms to build)
    tabs = st.tabs(TABS, key="ll_xp_tab", on_change="rerun")
    views = [lambda: attributions_tab(ctx, i, x, target, opts), lambda: attention_tab(ctx, i, x),
             lambda: activations_tab(ctx, i, x), lambda: trust_tab(ctx, i, target, opts),
             lambda: live_tab(ctx.run_id)]
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
        st.error(f"The {name} view failed ({type(e).__name__}: {e}). This is a bug in LayerLab; please report it.",
                 icon=":material/bug_report:")


main()
