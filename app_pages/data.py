"""Data page: pick a built-in dataset or upload a CSV / image zip, preview it, check it against the graph."""

from __future__ import annotations

from collections import Counter
from contextlib import nullcontext

import numpy as np
import streamlit as st
from PIL import Image, ImageOps

import builder
from app_pages import nav, ui
from app_pages.fmt import whole_number_ticks
from builder.data import list_datasets, source_kinds
from builder.data.builtin import option_range
from builder.data.compat import (
    adapt_changes,
    adapt_graph,
    fits_at_length,
    fitting_template,
    resized_layers,
    template_title,
    text_classifier_head,
)
from builder.data.series import numeric_columns, series_windows
from builder.data.tabular import preview_csv
from builder.data.text import TOKENIZER_KINDS, text_preview
from builder.errors import LayerLabError, Problem
from builder.escape import md_code, plotly_text
from builder.training.objectives import dataset_problems, network_mismatch

ui.page_header("Data", "Choose what the network learns from. The preview shows samples, shapes and class "
               "balance; mismatches with the graph come with a one-click fix.")

TASKS = {"": "Infer from the data", "multiclass": "Multiclass classification", "binary": "Binary classification",
         "regression": "Regression"}


def _use(spec: dict) -> None:
    st.session_state.ll_data = spec


def builtin_picker(current: dict) -> dict | None:
    sets = list_datasets()
    names = [d["name"] for d in sets]
    by = {d["name"]: d for d in sets}
    cur = current.get("name") if current.get("kind") == "builtin" else None
    name = st.selectbox("Dataset", names, index=names.index(cur) if cur in names else 0,
                        format_func=lambda n: f"{n}  ·  {by[n]['task']}, {by[n]['modality']}", key="ll_ds_name")
    d = by[name]
    st.caption(d["description"])
    opts = {}
    cur_opts = dict(current.get("options") or {}) if cur == name else {}
    if d.get("origin"):
        st.caption(f"Source: {ui.md(d['origin'])}. Licence: {ui.md(d['licence'])}.")
    if d["options"]:
        cols = st.columns(len(d["options"]))
        for col, (k, default) in zip(cols, d["options"].items()):
            v = cur_opts.get(k, default)
            helptext = d["help"].get(k)
            if isinstance(default, bool):
                opts[k] = col.toggle(_label(k), value=bool(v), help=helptext, key=f"ll_dso_{name}_{k}")
            elif k == "tokenizer":
                opts[k] = col.selectbox(_label(k), TOKENIZER_KINDS, index=TOKENIZER_KINDS.index(v) if v in TOKENIZER_KINDS
                                        else 0, help=helptext, key=f"ll_dso_{name}_{k}")
            elif isinstance(default, str):
                opts[k] = col.text_input(_label(k), value=str(v), help=helptext, key=f"ll_dso_{name}_{k}")
            elif isinstance(default, int):
                lo, hi = option_range(k, {**d["options"], **cur_opts, **opts}) or (None, None)
                opts[k] = int(col.number_input(_label(k), lo, hi, _within(int(v), lo, hi), step=1,
                                               help=helptext, key=f"ll_dso_{name}_{k}"))
            else:
                span = option_range(k)
                lo, hi = (float(span[0]), float(span[1])) if span else (None, None)
                opts[k] = float(col.number_input(_label(k), lo, hi, _within(float(v), lo, hi),
                                                 help=helptext, key=f"ll_dso_{name}_{k}", format="%g"))
    return {"kind": "builtin", "name": name, "options": {k: v for k, v in opts.items() if v != d["options"].get(k)}}


def _label(option: str) -> str:
    """A dataset option's name as a form label, as the page's other boxes are written ("n_samples": "N samples")."""
    return option.replace("_", " ").capitalize()


def _within(v, lo, hi):
    """``v`` moved into ``[lo, hi]`` (a bound of None: none), for a number box that shows only values in range."""
    return min(max(v, lo if lo is not None else v), hi if hi is not None else v)


def csv_picker(current: dict) -> dict | None:
    up = st.file_uploader("CSV file", type=["csv", "txt"], key="ll_csv_up",
                          help="A header row, one sample per row. Numeric columns are standardised, text columns "
                          "one-hot encoded.")
    if up is None:
        if current.get("kind") == "csv":
            st.caption(f"Using {ui.md(current.get('name'))} (target {ui.md(current.get('target'))})")
            return current
        st.info("Upload a CSV file to train on your own table.", icon=":material/upload_file:")
        return None
    data = up.getvalue()
    try:  # every size limit is checked before pandas parses anything
        head = preview_csv(data, 200, name=up.name)
    except LayerLabError as e:
        ui.show_error(e)
        return None
    if head.empty or len(head.columns) < 2:
        st.error(f"{ui.md(up.name)}: needs a header row, at least two columns and one data row")
        return None
    cols = [str(c) for c in head.columns]
    c1, c2 = st.columns(2)
    target = c1.selectbox("Target column", cols, index=len(cols) - 1, key="ll_csv_target",
                          help="The column the model predicts")
    task = c2.selectbox("Task", list(TASKS), format_func=TASKS.get, key="ll_csv_task")
    ref = ui.save_upload(up.name, data)  # an upload id: the spec, the project and the run never hold a path
    if ref is None:  # over the storage quota (shown)
        return None
    return {"kind": "csv", "name": up.name, "file": ref, "target": target, "task": task}


def images_picker(current: dict) -> dict | None:
    up = st.file_uploader("Image folder as .zip", type=["zip"], key="ll_img_up",
                          help="One sub-folder per class, e.g. cats/*.png and dogs/*.png")
    size = st.select_slider("Image size", options=[8, 16, 24, 32, 48, 64], value=int(current.get("size", 32)),
                            key="ll_img_size", help="Images are resized to size × size pixels")
    if up is None:
        if current.get("kind") == "images":
            st.caption(f"Using {ui.md(current.get('name'))}")
            return {**current, "size": size}
        st.info("Upload a .zip with one folder of images per class.", icon=":material/folder_zip:")
        return None
    ref = ui.save_upload(up.name, up.getvalue())
    if ref is None:  # over the storage quota (shown)
        return None
    return {"kind": "images", "name": up.name, "file": ref, "size": size}


def _tokenizer_options(current: dict) -> dict:
    o = dict(current.get("options") or {})
    c = st.columns(4)
    tok = o.get("tokenizer", "word")  # a run's "pretrained" (its own tokenizer.json) is not a choice here
    kind = c[0].selectbox("Tokenizer", TOKENIZER_KINDS, index=TOKENIZER_KINDS.index(tok) if tok in TOKENIZER_KINDS else 0,
                          key="ll_txt_tok", help="word: words and punctuation; bpe: byte-level BPE (no unknown words)")
    v_lo, v_hi = option_range("vocab_size", {"tokenizer": kind})
    vocab = int(c[1].number_input("Vocabulary size", v_lo, v_hi, _within(int(o.get("vocab_size", 5000)), v_lo, v_hi),
                                  key="ll_txt_vocab",
                                  help="Learned from the training split only"))
    l_lo, l_hi = option_range("max_length")
    if "ll_txt_len" not in st.session_state:  # its value lives in the state ("Use max length N" sets it there)
        st.session_state.ll_txt_len = _within(int(o.get("max_length", 64)), l_lo, l_hi)
    length = int(c[2].number_input("Max length", l_lo, l_hi, key="ll_txt_len",
                                   help="Tokens per sample: longer texts are cut, shorter ones padded"))
    lower = c[3].toggle("Lower-case", value=bool(o.get("lowercase", True)), key="ll_txt_lower")
    return {"tokenizer": kind, "vocab_size": vocab, "max_length": length, "lowercase": lower}


def _kept_upload(mine: dict, opts: dict, ask: str) -> dict | None:
    """No new file: the current upload of this kind with the options just set, or None after asking for one."""
    if mine:
        st.caption(f"Using {ui.md(mine.get('name'))}")
        return {**mine, "options": {**dict(mine.get("options") or {}), **opts}}
    st.info(ask, icon=":material/upload_file:")
    return None


def _csv_head(name: str, data: bytes):
    """The first 200 rows of an uploaded CSV, or None after showing why it cannot be read."""
    try:
        return preview_csv(data, 200, name=name)
    except LayerLabError as e:
        ui.show_error(e)
        return None


def text_picker(current: dict) -> dict | None:
    up = st.file_uploader("Text", type=["csv", "zip", "txt"], key="ll_txt_up",
                          help="A CSV with a text column and a label column; a .zip with one folder of .txt files "
                          "per class; or one .txt (a corpus for a language model: task next_token)")
    mine = current if current.get("kind") == "text" else {}
    opts = _tokenizer_options(mine)
    if up is None:
        return _kept_upload(mine, opts, "Upload sentences with labels (.csv), texts by class (.zip) or a corpus (.txt).")
    data = up.getvalue()
    if up.name.lower().endswith(".csv"):
        head = _csv_head(up.name, data)
        if head is None:
            return None
        cols = [str(c) for c in head.columns]
        if len(cols) < 2:
            st.error(f"{ui.md(up.name)}: needs a text column and a label column")
            return None
        c1, c2 = st.columns(2)
        text_col = c1.selectbox("Text column", cols, index=0, key="ll_txt_col")
        target = c2.selectbox("Label column", [c for c in cols if c != text_col], key="ll_txt_target")
        opts.update(text_column=text_col, target=target)
    ref = ui.save_upload(up.name, data)
    if ref is None:  # over the storage quota (shown)
        return None
    return {"kind": "text", "name": up.name, "file": ref, "task": None, "options": opts}


def series_picker(current: dict) -> dict | None:
    up = st.file_uploader("Time series (.csv)", type=["csv"], key="ll_ser_up",
                          help="One row per time step, numeric columns; optionally a time column")
    mine = current if current.get("kind") == "series" else {}
    o = dict(mine.get("options") or {})
    c = st.columns(3)
    win = {k: int(col.number_input(label, *option_range(k), _within(int(o.get(k, default)), *option_range(k)),
                                   key=f"ll_ser_{key}", help=helptext))
           for col, (k, label, default, key, helptext) in zip(c, (
               ("lookback", "Lookback", 24, "lb", "Past steps the model reads"),
               ("horizon", "Horizon", 1, "h", "Steps to forecast"),
               ("stride", "Stride", 1, "s", "Steps between window starts")))}
    if up is None:
        return _kept_upload(mine, win, "Upload a CSV of numeric columns (one row per time step).")
    data = up.getvalue()
    head = _csv_head(up.name, data)
    if head is None:
        return None
    cols = [str(c) for c in head.columns]
    numeric = numeric_columns(head)
    c1, c2, c3 = st.columns(3)
    time_col = c1.selectbox("Time column", ["(row order)", *cols], key="ll_ser_time")
    time_col = None if time_col == "(row order)" else time_col
    # a column plays one part (builder.data.sources' rule): the time column is no label
    label = c3.selectbox("Label column (classify windows)", ["(forecast)", *(c for c in cols if c != time_col)],
                         key="ll_ser_label")
    label = None if label == "(forecast)" else label
    picked = c2.multiselect("Series columns", [c for c in numeric if c not in (time_col, label)],
                            default=[c for c in numeric if c not in (time_col, label)][:4], key="ll_ser_cols")
    opts = {**win, **({"columns": picked} if picked else {}), **({"time_column": time_col} if time_col else {}),
            **({"target": label} if label else {})}
    ref = ui.save_upload(up.name, data)
    if ref is None:  # over the storage quota (shown)
        return None
    return {"kind": "series", "name": up.name, "file": ref, "task": None, "options": opts}


def _set_max_length(n: int) -> None:
    st.session_state.ll_txt_len = n  # the Max length field (the dataset loads again with it)


def _breaks_fit(ds, n: int) -> bool:
    """Would reading the texts at ``n`` tokens break a canvas network that trains on them at their length now (a
    pretrained encoder with 32 positions)? Then "Use max length n" is no advice: the page offered 16 for an
    imported DistilBERT read at 32, and after that click offered 32 again ("This network reads 32 tokens")."""
    g = ui.graph()
    length = int(ds.train.X.shape[1])
    return bool(g.nodes) and fits_at_length(g, ds.info, length) and not fits_at_length(g, ds.info, n)


def _reads_texts(ds) -> bool:
    """Is the canvas empty, or a network that trains on these texts as it is or after the one-click fix (an LSTM,
    a Transformer)? Else the fit below offers another kind of network, whose one click reads the texts at a length
    that fits (:func:`_load_fitting`): the padding advice for an LSTM was shown above it, for the CNN on the canvas,
    and its button changed the length and left the CNN refused."""
    g = ui.graph()
    return not g.nodes or not _refused(adapt_graph(g, ds.info, ui.analyse(g)[0]), ds)


def _text_view(ds) -> None:
    view = text_preview(ds, 10)
    import pandas as pd  # lazy: heavy (pandas)
    st.markdown("**Tokenised samples** (as the model reads them, padding dropped)")
    st.dataframe(pd.DataFrame({"tokens": [" · ".join(s["tokens"]) for s in view["samples"]],
                               "label": [s["label"] for s in view["samples"]]}), hide_index=True, width="stretch")
    c = st.columns(3)
    c[0].metric("Vocabulary", view["vocab_size"])
    c[1].metric("Unknown tokens (val + test)", f"{view['oov_rate']:.1%}",
                help="Tokens of the validation and test text the tokenizer never saw in training (<unk>)")
    c[2].metric("Samples at max length", f"{view['cut']:.0%}", help="Probably cut: raise max length if many are")
    if (n := view.get("shorter_max_length")) and "ll_txt_len" in st.session_state and not _breaks_fit(ds, n) \
            and _reads_texts(ds):
        longest, length = max(view["lengths"]), int(ds.train.X.shape[1])
        st.warning(f"Your longest text is {longest:d} tokens, but every sample is padded to {length:d}: mostly padding. "
                   "An LSTM or GRU that reads the last step must carry its answer through all of it and may not "
                   f"learn (a sentiment LSTM on 5-word reviews stayed at 50 % padded to 64; at 8 it reached 97 % "
                   f"in 4 epochs). A max length of {n:d} fits every text here.", icon=":material/short_text:")
        st.button(f"Use max length {n:d}", key="ll_txt_len_fit", icon=":material/compress:", on_click=_set_max_length,
                  args=(n,))
    import plotly.graph_objects as go  # lazy: heavy (plotly)
    fig = go.Figure(go.Histogram(x=view["lengths"], marker_color="#6366f1", xbins=dict(size=1)))  # whole tokens
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=30, b=10), title="Tokens per sample (train)",
                      xaxis_title="tokens", yaxis_title="samples", xaxis_tickformat="d", yaxis_tickformat="d")
    lengths = [int(n) for n in view["lengths"]]
    whole_number_ticks(fig, "x", lengths)
    whole_number_ticks(fig, "y", [0, max(Counter(lengths).values(), default=0)])  # a bar per length (xbins size 1)
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def _series_view(ds) -> None:
    import plotly.graph_objects as go  # lazy: heavy (plotly)

    st.markdown("**Windows** (test split, in the series' units: lookback, then what is forecast)")
    for i, w in enumerate(series_windows(ds, 3)):
        inp = np.asarray(w["inputs"])
        fig = go.Figure()
        fig.add_vrect(x0=0, x1=len(inp) - 1, fillcolor="#e0e7ff", opacity=0.5, line_width=0)
        fig.add_trace(go.Scatter(x=list(range(len(inp))), y=inp[:, 0], name="lookback", line_color="#6366f1"))
        if "targets" in w:
            tgt = np.asarray(w["targets"])
            fig.add_trace(go.Scatter(x=list(range(len(inp), len(inp) + len(tgt))), y=tgt[:, 0], name="to forecast",
                                     mode="lines+markers", line_color="#f59e0b"))
        fig.update_layout(height=180, margin=dict(l=10, r=10, t=24, b=10), showlegend=i == 0,
                          title=f"label: {plotly_text(w['label'])}" if w.get("label", "") else "")
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key=f"ll_ser_win_{i}")


def preview(ds) -> None:
    info = ds.info
    c = st.columns(5)
    c[0].metric("Task", info.task)
    c[1].metric("Input shape", "×".join(map(str, info.input_shape)))
    c[2].metric("Classes" if info.num_classes else "Outputs", info.num_classes or info.out_size)
    c[3].metric("Train / val / test", "/".join(str(info.sizes.get(k, len(getattr(ds, k)))) for k in ("train", "val", "test")))
    c[4].metric("Modality", info.modality)
    for note in info.notes:
        st.caption(ui.md(note))
    left, right = st.columns([3, 2], gap="large")
    with left:
        if info.modality == "image":
            st.markdown("**Samples**")
            _image_grid(ds)
        elif info.tokenizer:
            _text_view(ds)
        elif info.modality == "series":
            _series_view(ds)
        elif info.modality == "tokens":
            st.markdown("**Sample sequences**")
            rows = ds.preview(10)
            import pandas as pd  # lazy: heavy (pandas)
            st.dataframe(pd.DataFrame({"tokens": [" ".join(r.get("tokens", map(str, r["x"]))) for r in rows],
                                       "label": [r.get("label", r.get("y")) for r in rows]}),
                         hide_index=True, width="stretch")
        else:
            names = ds.info.target_names if ds.info.task == "regression" else []
            if names:  # the target by its name, in its own units (it read "target -0.661" beside a histogram of prices)
                st.markdown(f"**First rows** (features after preprocessing; {ui.md(', '.join(names))} in "
                            f"{'its' if len(names) == 1 else 'their'} own units)")
            else:
                st.markdown("**First rows** (features after preprocessing)")
            _table_head(ds)
    with right:
        counts = ds.class_counts("train")
        if counts:
            st.markdown("**Class balance (train split)**")
            import plotly.graph_objects as go  # lazy: heavy (plotly)
            fig = go.Figure(go.Bar(x=[plotly_text(k) for k in counts], y=list(counts.values()),  # class names
                                   marker_color="#6366f1"))
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="class",
                              yaxis_title="samples", xaxis_type="category")
            whole_number_ticks(fig, "y", [0, *counts.values()])  # 2 samples a class: no tick at 0.5 samples
            st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
        elif info.modality == "points2d" or (info.modality == "tabular" and len(info.input_shape) == 1):
            st.markdown("**Target distribution** (train split, in the data's own units)")
            # the model sees it standardised; a person reads its units
            y = info.own_units(ds.train.y.reshape(len(ds.train), -1))[:, 0]
            import plotly.graph_objects as go  # lazy: heavy (plotly)
            fig = go.Figure(go.Histogram(x=y, marker_color="#6366f1", nbinsx=30))
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="samples",
                              xaxis_title=plotly_text(info.target_names[0]))
            st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def _image_grid(ds, n: int = 16) -> None:
    X = ds.train.X[:n].detach().cpu().numpy()
    y = ds.train.y[:n].detach().cpu().numpy().reshape(len(X), -1)[:, 0] if ds.info.task != "reconstruction" else None
    imgs, caps = [], []
    for i, x in enumerate(X):
        a = np.clip(x, 0, 1)
        a = (a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))) * 255
        im = Image.fromarray(a.astype(np.uint8))
        scale = max(1, 72 // max(im.size))
        im = im.resize((im.size[0] * scale, im.size[1] * scale), Image.NEAREST)
        imgs.append(ImageOps.expand(im.convert("RGB"), border=5, fill=(255, 255, 255)))
        if y is not None:
            k = int(y[i])
            caps.append(ds.info.class_names[k] if k < len(ds.info.class_names) else str(k))
        else:
            caps.append("")
    st.image(imgs, caption=caps, width=82)


def _table_head(ds) -> None:
    import pandas as pd  # lazy: heavy (pandas)

    st.dataframe(pd.DataFrame(ds.first_rows(10)), hide_index=True, width="stretch")


def _refused(g, ds, report=None) -> list:
    """What Train refuses for ``g`` on ``ds`` (:func:`builder.training.objectives.dataset_problems`: a GAN's or VAE's
    drawn losses too); data that cannot fit a drawn objective's Input is one problem. ``report``: ``g``'s analysis."""
    try:
        return dataset_problems(g, ds, report)
    except LayerLabError as e:
        return [Problem("dataset", str(e))]


def _adapt(ds) -> None:
    fixed = adapt_graph(ui.graph(), ds.info)
    ui.set_graph(fixed, bump=True)
    left = _refused(fixed, ds)
    ui.flash("Graph adapted to the dataset: it trains on it" if not left else
             "Graph adapted, but it still does not train on this dataset: " + left[0].message)


def _load_fitting(name: str, ds) -> None:
    """Load the template ``name``, adapted to ``ds`` (Input shape, output width) when that makes it train: one
    click gives a network Train accepts (it loaded the template as is, and the page asked for a second fix)."""
    spec, note = st.session_state.get("ll_data"), ""
    # uploaded texts far shorter than the max length: the one click reads them at a length that fits, as the
    # page advises ("Use max length N"); the LSTM it loaded for five-word reviews padded to 64 stayed at chance
    if (ds.info.tokenizer and spec and spec.get("kind") == "text" and "ll_txt_len" in st.session_state
            and (n := text_preview(ds, 1)["shorter_max_length"])):
        note = f", read at max length {n:d} (your texts were padded to {int(ds.train.X.shape[1]):d})"
        spec = {**spec, "options": {**dict(spec.get("options") or {}), "max_length": n}}
        ds = ui.load_spec(spec)
        _set_max_length(n)
    proj = builder.load_template(name)
    fixed = adapt_graph(proj.graph, ds.info)
    if not _refused(fixed, ds):
        proj = proj.model_copy(update={"graph": fixed})
    ui.replace_project(proj, f"Loaded template “{proj.name}” for this dataset{note}", relayout=True, data=spec)


def _add_head(headed) -> None:
    ui.set_graph(headed, bump=True)
    ui.flash("Added a classifier head (first_token, head); every other layer keeps its weights")


def _offer_head(g, ds, report) -> bool:
    """For a network that starts from a run's weights (an imported pretrained encoder) and gives a vector per token,
    on texts with classes: offer the classifier head it needs (:func:`builder.data.compat.text_classifier_head`);
    True when offered. The page offered to replace an imported DistilBERT by the Sentiment LSTM template, which
    threw the pretrained model away, and called it "a language model"."""
    start = (ui.project().training or {}).get("init_from")
    headed = text_classifier_head(g, ds.info, report) if start else None
    if headed is None:
        return False
    n = int(ds.info.num_classes or ds.info.out_size)
    st.info(f"This network gives a vector per token and starts from the weights of run {md_code(start)}. A "
            f"classifier reads the first token's vector through a Linear layer with {n:d} outputs, one per class: "
            "add them, and every layer of the network keeps its weights.", icon=":material/lightbulb:")
    st.button("Add a classifier head", type="primary", key="ll_add_head", icon=":material/add_circle:",
              on_click=_add_head, args=(headed,))
    return True


def _offer_model_length(g, ds) -> bool:
    """For texts read at another length than the canvas's Input takes (a pretrained model's 32 tokens, texts at
    20), offer to read the texts at the model's length; True when offered. A usability review was told to load the
    LSTM template instead, which would have thrown the pretrained model away."""
    spec = st.session_state.get("ll_data") or {}
    inputs = [n for n in g.nodes if n.type == "Input" and n.params.get("modality") == "tokens"]
    shape = list(inputs[0].params.get("shape") or []) if len(inputs) == 1 else []
    if not (ds.info.tokenizer and spec.get("kind") == "text" and "ll_txt_len" in st.session_state
            and len(shape) == 1 and isinstance(shape[0], int) and shape[0] != int(ds.train.X.shape[1])):
        return False
    n, start = shape[0], (ui.project().training or {}).get("init_from")
    if not fits_at_length(g, ds.info, n):  # another kind of network (a GPT on texts with labels): no length does
        return False
    st.info(f"This network reads {n:d} tokens per sample (its Input), and your texts are read at "
            f"{int(ds.train.X.shape[1]):d}. Read them at {n:d}: the data is made to fit the network"
            + (", which keeps the weights it starts from (run " + md_code(start) + ")." if start else "."),
            icon=":material/lightbulb:")
    st.button(f"Use max length {n:d}", type="primary", key="ll_txt_len_model", icon=":material/straighten:",
              on_click=_set_max_length, args=(n,))
    return True


def compat(ds) -> None:
    """Does the canvas train on this dataset? Train's own check (:func:`builder.training.objectives.dataset_problems`); the
    fix when adapting makes it train, else the template whose kind of network fits."""
    st.subheader("Fit with the graph")
    g = ui.graph()
    if not g.nodes:
        st.info("The canvas is empty: build a network or load a template on the Build page.", icon=":material/info:")
        st.page_link(nav.BUILD, label="Open the Build page", icon=":material/account_tree:")
        return
    report = ui.analyse(g)[0]  # the canvas's analysis (cached per session): every question below reads it
    probs = _refused(g, ds, report)
    if not probs:
        st.success("The graph trains on this dataset: its Input, shapes and output fit this dataset.",
                   icon=":material/check_circle:")
        return
    lines = [f"{p.node}: {p.message}" if p.node else p.message for p in probs]
    fixed = adapt_graph(g, ds.info, report)
    if not _refused(fixed, ds):  # the Input and the last layer are all that is wrong
        # what the button changes (its own words: the mismatches' per-layer fixes said "set shape to [3, 32, 32]"
        # where the button flattened the images for an MLP)
        start = (ui.project().training or {}).get("init_from")
        resized = resized_layers(g, fixed) if start else []  # weights of another run (an import) that will not fit
        st.warning(ui.md("The graph does not fit this dataset yet. The fix changes: "
                         + "; ".join(adapt_changes(g, fixed)) + "."
                         + (f" Then {', '.join(resized)} change size: the weights of run {start} do not fit them, "
                            "so they start from random weights (the other layers keep theirs)." if resized else "")),
                   icon=":material/warning:")
        with st.expander("What does not fit"):
            for line in lines:
                st.caption(ui.md(line))
        st.button("Fix the graph for this dataset", type="primary", icon=":material/build:", on_click=_adapt,
                  args=(ds,), help="Sets the Input shape/modality and the last Linear layer's width so that it trains")
        return
    if _offer_head(g, ds, report):  # pretrained weights and a vector per token: the head it needs, not another network
        return
    if _offer_model_length(g, ds):  # the data is made to fit a network that reads a fixed number of tokens
        return
    # another kind of network: its per-layer fixes would not make it train, so they are not offered as advice
    # (the page said "set shape to [4]" and "set out_features to 3", then that this was not enough)
    name = fitting_template(ds.info)
    title = template_title(name)
    kind = next((p for p in probs if p.code == "network_kind"), None)  # a GAN or VAE: builder's own verdict
    # the words Train says too (builder.training.objectives.network_mismatch)
    st.info(ui.md((kind or network_mismatch(g, ds.info, report, where="the button below does it")).message),
            icon=":material/lightbulb:")
    st.button(f"Load the {title} template", type="primary", icon=":material/swap_horiz:", on_click=_load_fitting,
              args=(name, ds), key="ll_fit_template", help="Replace the canvas (undoable) with a network for this data")
    if kind is not None:  # the verdict above is the whole answer
        return
    with st.expander("What does not fit"):
        for line in lines:
            st.caption(ui.md(line))


current = ui.dataset_spec()
kinds = source_kinds()  # {"builtin": "Built-in", "csv": "CSV file", "images": "Image folder (.zip)"}
PICKERS = {"builtin": builtin_picker, "csv": csv_picker, "images": images_picker, "text": text_picker,
           "series": series_picker}  # one picker per source kind
kind = st.segmented_control("Source", list(kinds), format_func=kinds.get, default=current.get("kind", "builtin"),
                            key="ll_ds_kind") or "builtin"
with st.container(border=True):
    spec = PICKERS[kind](current)

if spec is not None:
    # what follows the pickers lives in one block. A dataset still to load first turns its place into an empty
    # placeholder (st.empty), so the preview of the choice before is gone at once: it stayed on screen, looking
    # current, while the new one loaded (Streamlit keeps a block's old children until the run replaces them, and
    # the spinner took the place of the heading alone)
    placeholder = None if ui.spec_loaded(spec) else st.empty()
    error = None
    try:
        with st.spinner(f"Loading {ui.md(ui.spec_public(spec))}…") if placeholder is not None else nullcontext():
            ds = ui.load_spec(spec)
    except LayerLabError as e:
        error = e
    with placeholder.container() if placeholder is not None else st.container():
        if error is not None:
            ui.show_error(error)
            # a file that cannot be read is not put in use: an empty .zip replaced the digits, and Train then
            # showed only this error, with no dataset to train on
            if ui.spec_key(spec) != ui.spec_key(current):
                st.caption(f"Training still uses {ui.md(ui.spec_public(current))}.")
        else:
            if ui.spec_key(spec) != ui.spec_key(current) or st.session_state.get("ll_data") is None:
                _use(spec)
            st.subheader("Preview")
            preview(ds)
            compat(ds)
