"""Data page: pick a built-in dataset or upload a CSV / image zip, preview it, check it against the graph."""

from __future__ import annotations

import numpy as np
import streamlit as st

import builder
from app_pages import nav, ui
from builder.data import list_datasets, source_kinds
from builder.data.compat import adapt_graph, fitting_template, train_problems
from builder.data.tabular import preview_csv
from builder.errors import LayerLabError

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
    if d["options"]:
        cols = st.columns(len(d["options"]))
        for col, (k, default) in zip(cols, d["options"].items()):
            v = cur_opts.get(k, default)
            helptext = d["help"].get(k)
            if isinstance(default, bool):
                opts[k] = col.toggle(k.replace("_", " "), value=bool(v), help=helptext, key=f"ll_dso_{name}_{k}")
            elif isinstance(default, int):
                opts[k] = int(col.number_input(k.replace("_", " "), value=int(v), step=1, help=helptext,
                                               key=f"ll_dso_{name}_{k}"))
            else:
                opts[k] = float(col.number_input(k.replace("_", " "), value=float(v), help=helptext,
                                                 key=f"ll_dso_{name}_{k}", format="%g"))
    return {"kind": "builtin", "name": name, "options": {k: v for k, v in opts.items() if v != d["options"].get(k)}}


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
        st.error(ui.md(str(e)))
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
    return {"kind": "images", "name": up.name, "file": ref, "size": size}


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
        elif info.modality == "tokens":
            st.markdown("**Sample sequences**")
            rows = ds.preview(10)
            import pandas as pd
            st.dataframe(pd.DataFrame({"tokens": [" ".join(r.get("tokens", map(str, r["x"]))) for r in rows],
                                       "label": [r.get("label", r.get("y")) for r in rows]}),
                         hide_index=True, width="stretch")
        else:
            st.markdown("**First rows (after preprocessing)**")
            _table_head(ds)
    with right:
        counts = ds.class_counts("train")
        if counts:
            st.markdown("**Class balance (train split)**")
            import plotly.graph_objects as go
            fig = go.Figure(go.Bar(x=list(counts.keys()), y=list(counts.values()), marker_color="#6366f1"))
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="class",
                              yaxis_title="samples", xaxis_type="category")
            st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
        elif info.modality == "points2d" or (info.modality == "tabular" and len(info.input_shape) == 1):
            st.markdown("**Target distribution**")
            y = ds.train.y.detach().cpu().float().reshape(len(ds.train), -1)[:, 0].numpy()
            import plotly.graph_objects as go
            fig = go.Figure(go.Histogram(x=y, marker_color="#6366f1", nbinsx=30))
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10))
            st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def _image_grid(ds, n: int = 16) -> None:
    from PIL import Image, ImageOps

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
    import pandas as pd

    X = ds.train.X[:10].detach().cpu().numpy().reshape(min(10, len(ds.train)), -1)
    names = ds.info.feature_names if len(ds.info.feature_names) == X.shape[1] else [f"x{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=names)
    if ds.info.task in ("multiclass", "binary"):
        yy = ds.train.y[:10].detach().cpu().numpy().reshape(-1)
        df.insert(0, "label", [ds.info.class_names[int(k)] if int(k) < len(ds.info.class_names) else str(k) for k in yy])
    elif ds.info.task == "regression":
        df.insert(0, "target", ds.train.y[:10].detach().cpu().numpy().reshape(len(df), -1)[:, 0])
    st.dataframe(df, hide_index=True, width="stretch")


def _adapt(ds) -> None:
    fixed = adapt_graph(ui.graph(), ds.info)
    ui.set_graph(fixed, bump=True)
    left = train_problems(fixed, ds)
    ui.flash("Graph adapted to the dataset: it trains on it" if not left else
             "Graph adapted, but it still does not train on this dataset: " + left[0].message)


def _load_fitting(name: str) -> None:
    proj = builder.load_template(name)
    ui.replace_project(proj, f"Loaded template “{proj.name}” for this dataset", relayout=True,
                       data=st.session_state.get("ll_data"))


def compat(ds) -> None:
    """Does the canvas train on this dataset? Train's own check (:func:`builder.data.compat.train_problems`); the
    fix when adapting makes it train, else the template whose kind of network fits."""
    st.subheader("Fit with the graph")
    g = ui.graph()
    if not g.nodes:
        st.info("The canvas is empty: build a network or load a template on the Build page.", icon=":material/info:")
        st.page_link(nav.BUILD, label="Open the Build page", icon=":material/account_tree:")
        return
    probs = train_problems(g, ds)
    if not probs:
        st.success("The graph trains on this dataset: its Input, shapes and output fit this dataset.",
                   icon=":material/check_circle:")
        return
    for p in probs:
        where = f"{p.node}: " if p.node else ""
        st.warning(ui.md(f"{where}{p.message}"), icon=":material/warning:")
    if not train_problems(adapt_graph(g, ds.info), ds):
        st.button("Fix the graph for this dataset", type="primary", icon=":material/build:", on_click=_adapt,
                  args=(ds,), help="Sets the Input shape/modality and the last Linear layer's width so that it trains")
        return
    name = fitting_template(ds.info)
    title = next(t["title"] for t in builder.list_templates() if t["name"] == name)
    st.info(ui.md(f"This kind of network does not take this data, and changing its Input and last layer is not "
                  f"enough. A network that fits it: {title}."), icon=":material/lightbulb:")
    st.button(f"Load the {title} template", type="primary", icon=":material/swap_horiz:", on_click=_load_fitting,
              args=(name,), key="ll_fit_template", help="Replace the canvas (undoable) with a network for this data")


current = ui.dataset_spec()
kinds = source_kinds()  # {"builtin": "Built-in", "csv": "CSV file", "images": "Image folder (.zip)"}
PICKERS = {"builtin": builtin_picker, "csv": csv_picker, "images": images_picker}  # one picker per source kind
kind = st.segmented_control("Source", list(kinds), format_func=kinds.get, default=current.get("kind", "builtin"),
                            key="ll_ds_kind") or "builtin"
with st.container(border=True):
    spec = PICKERS[kind](current)

if spec is not None:
    if ui.spec_key(spec) != ui.spec_key(current) or st.session_state.get("ll_data") is None:
        _use(spec)
    try:
        with st.spinner("Loading data…"):
            ds = ui.load_spec(spec)
    except LayerLabError as e:
        ui.show_error(e)
    else:
        st.subheader("Preview")
        preview(ds)
        compat(ds)
