"""Build page: the drag-and-drop canvas, the inspector, templates, blocks and exports."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import streamlit as st
from pydantic import ValidationError

import builder
from app_pages import nav, tips, ui
from builder.canvas import graph_canvas, take_events
from builder.data.compat import network_kind
from builder.data.sources import check_project, for_link
from builder.errors import GraphError, LayerLabError, ProjectFormatError
from builder.escape import md_code, md_text, safe_filename
from builder.graph.edit import parse_whole_numbers, relabel_node, remove_nodes, set_param, with_block
from builder.graph.project import Graph, check_graph_size, check_tree, format_validation_error
from builder.graph.share import QUERY_KEY, LinkTooLongError, decode_project, share_url
from builder.interchange.errors import FOREIGN_MODEL_FILES
from builder.runs.summary import has_trained
from builder.training.objectives import train_verdict

CANVAS_KEY = "ll_canvas"
CANVAS_HEIGHT = 480  # minimum; the canvas grows to the bottom of the window
INSPECTOR_HEIGHT = 600  # about the canvas's height in a 900 px window
INSPECTOR_PANEL = '[data-testid="stColumn"]:has(.st-key-ll_inspector)'  # floats over the canvas below 1100 px
HOW_IT_WORKS = ("Drag layers from the palette, connect their ports and watch shapes flow through the network. "
                "Select a layer to edit it; press ? on the canvas for shortcuts.")


# ------------------------------------------------------------------------------------ canvas sync
def _sync_from_browser() -> None:
    """Take the browser's committed graph (if newer) before anything is drawn, so annotations match it."""
    raw = st.session_state.get(CANVAS_KEY)
    if raw is None:
        return
    try:
        value = raw.get("value")
    except AttributeError:
        return
    if isinstance(value, dict):
        rev = value.get("revision")
        rev = int(rev) if isinstance(rev, (int, float)) else -1
        g = value.get("graph")
        sig = _canvas_sig(g) if isinstance(g, dict) else None
        if sig is not None and sig != st.session_state.get("ll_canvas_sig"):
            st.session_state.ll_canvas_sig = sig
            try:
                graph = Graph.model_validate(g)
            except ValidationError as e:
                st.session_state.ll_canvas_error = (f"The canvas sent an invalid graph: {format_validation_error(e, 3)}. "
                                                    "Fix: undo the last edit, or reload the page")
            else:
                st.session_state.ll_canvas_error = None
                if rev >= st.session_state.ll_revision:
                    ui.set_graph(graph, bump=False)
                else:  # drawn before Python changed the graph (an inspector edit meanwhile): applied on top of it
                    ui.rebase_stale(graph, rev)
        sel = value.get("selected")
        sel = sel if isinstance(sel, str) else None
        # the browser's selection when it is news: the component keeps its last value, and taken on every rerun it
        # undid the inspector's Close (the canvas then showed the layer still selected and the inspector open)
        if rev >= st.session_state.ll_revision and sel != st.session_state.get("ll_canvas_sel", ""):
            st.session_state.ll_canvas_sel = st.session_state.ll_selected = sel
    for event in take_events(CANVAS_KEY):  # each one-shot action once, even when the browser sent it again
        if event.get("type") == "group":
            ids = event.get("nodes") if isinstance(event.get("nodes"), list) else []
            try:  # bounded before anything is copied: a block's layers, a project's blocks
                block = ui.make_block(ui.graph(), ids, str(event.get("name") or "block")[:200])
                blocks = with_block(ui.project().blocks, block) if block["nodes"] else None
            except ProjectFormatError as e:
                st.session_state.ll_canvas_error = f"Cannot add the block: {e}"
                continue
            if blocks is not None:
                st.session_state.ll_project = ui.project().model_copy(update={"blocks": blocks})
                ui.flash(f"Block “{block['name']}” added to the palette")
        elif event.get("type") == "library":  # a library model dropped from the palette
            place_library_model(str(event.get("name") or ""))  # canvas_area reruns the page when it is placed
        elif event.get("type") == "undo_replace":  # the canvas's Undo past its own history: the project whole
            ui.undo_replace()


def _canvas_sig(g: dict) -> str | None:
    """The browser's graph as canonical JSON, or None (with the page's error set) when it is over a project file's
    bounds: what a browser sends is checked like an opened file before it is serialised or validated (a parameter
    nested 900 deep was taken onto the canvas and then broke the sidebar's Save on every page; a graph over the
    file's node, edge or value limits was serialised and validated whole)."""
    try:
        check_tree(g)
        check_graph_size(g)
    except ProjectFormatError as e:
        st.session_state.ll_canvas_error = f"The canvas sent an invalid graph: {e}"
        return None
    return json.dumps(g, sort_keys=True)


def _graph_payload(g: Graph) -> dict:
    return g.model_dump(mode="json", exclude_none=True)


# ------------------------------------------------------------------------------------- inspector
def _stale_report(widget_key: str, shown) -> bool:
    """Whether the inspector widget ``widget_key``, drawn showing ``shown``, reports that same value: no edit of
    the person's. A widget of an earlier view (drawn before the canvas renamed the layer or typed a parameter)
    can report once more what it showed; applied, with a new revision, it would put the old name back on the
    canvas over the person's rename."""
    raw = st.session_state.get(widget_key)
    return raw == shown or (raw in (None, "") and shown in (None, ""))


def _update_param(node_id: str, name: str, widget_key: str, kind: str, shown=None) -> None:
    err_key = f"ll_perr_{node_id}_{name}"
    st.session_state.pop(err_key, None)  # typed back to the graph's value: its warning goes with it
    if _stale_report(widget_key, shown):
        return
    raw = st.session_state.get(widget_key)
    g = ui.graph()
    if node_id not in {n.id for n in g.nodes}:  # a stale widget of a node removed in the browser
        return
    if kind in ("int_list", "int_or_pair"):
        try:
            vals = parse_whole_numbers(name, str(raw or ""))
        except GraphError as e:
            st.session_state[err_key] = e.problems[0].message
            return
        value = vals if kind == "int_list" or len(vals) > 1 else vals[0]
    elif kind == "int" and raw is not None:
        value = int(raw)
    else:
        value = raw
    ui.set_graph(set_param(g, node_id, name, value), bump=True)


def _rename(node_id: str, widget_key: str, shown: str = "") -> None:
    if _stale_report(widget_key, shown):
        return
    ui.set_graph(relabel_node(ui.graph(), node_id, st.session_state.get(widget_key)), bump=True)


def _delete_node(node_id: str) -> None:
    ui.set_graph(remove_nodes(ui.graph(), [node_id]), bump=True)
    st.session_state.ll_selected = None


def _close_inspector() -> None:
    st.session_state.ll_selected = None  # the canvas deselects the layer; a narrow window's inspector goes


def _fmt_list(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return "" if v is None else str(v)


def _shown(p, cur):
    """What the inspector's widget for parameter ``p`` shows for the value ``cur``."""
    if p.kind == "bool":
        return bool(cur)
    if p.kind == "choice":
        choices = list(p.choices or [])
        return cur if cur in choices else next(iter(choices), None)
    if p.kind in ("int", "float"):
        try:
            return (int(cur) if p.kind == "int" else float(cur)) if cur is not None else None
        except (TypeError, ValueError):
            return None
    return _fmt_list(cur)


def _following(key: str, shown) -> str:
    """The key of the inspector's widget ``key`` showing ``shown``, the graph's value: a new widget when the value
    changed. A rename or a parameter typed on the canvas changes the graph without a new revision, and a widget
    keeps what it holds (in the browser too) whatever ``value=`` says: the Name box stayed empty beside a layer the
    canvas showed renamed. What the person typed here that did not parse (a kernel of "three") stays, with its
    warning, as the graph's value did not change."""
    return f"{key}_{hashlib.sha256(repr(shown).encode()).hexdigest()[:8]}"


def inspector(report) -> None:
    sel = st.session_state.get("ll_selected")
    g = ui.graph()
    node = next((n for n in g.nodes if n.id == sel), None)
    if node is None:
        st.subheader("Inspector")
        st.caption("Select a layer on the canvas to edit its parameters. Drag layers from the palette, "
                   "connect an output port (right) to an input port (left).")
        _graph_table(report)
        return
    try:
        spec = builder.get_spec(node.type)
    except LayerLabError as e:
        st.subheader("Inspector")
        ui.show_error(e)
        return
    info = report.nodes.get(node.id)
    st.subheader(node.type)
    st.caption(spec.description)
    rev = st.session_state.ll_revision
    # widget keys carry the revision so a replaced graph never shows stale widget values
    k = _following(f"ll_label_{node.id}_{rev}", node.label or "")
    st.text_input("Name", value=node.label or "", key=k, max_chars=200, placeholder=node.id,
                  on_change=_rename, args=(node.id, k, node.label or ""), help="A display name for this layer (its id stays "
                  f"{md_code(node.id)})")
    if info is not None:
        c1, c2 = st.columns(2)
        c1.metric("Output", info.shape_str if info.shape is not None else "—")
        c2.metric("Parameters", ui.human_count(info.num_params))
        for msg in info.errors:
            st.error(ui.md(msg), icon=":material/error:")
        if info.shares:
            st.info(f"Uses the weights of {ui.md(info.shares)} (one layer called twice): its parameters count "
                    "once and training keeps the two tied.", icon=":material/link:")
    params = dict(node.params)
    for p in spec.params:
        cur = params.get(p.name, p.default)
        shown = _shown(p, cur)
        wk = _following(f"ll_p_{node.id}_{p.name}_{rev}", shown)
        label = p.name.replace("_", " ")
        helptext = p.help or None
        if p.kind == "bool":
            st.toggle(label, value=shown, key=wk, help=helptext, on_change=_update_param,
                      args=(node.id, p.name, wk, p.kind, shown))
        elif p.kind == "choice":
            choices = list(p.choices or [])
            idx = choices.index(shown) if shown in choices else 0
            st.selectbox(label, choices, index=idx, key=wk, help=helptext, on_change=_update_param,
                         args=(node.id, p.name, wk, p.kind, shown), format_func=lambda c: str(c))
        elif p.kind in ("int", "float"):
            is_int, val = p.kind == "int", shown
            lo = None if p.min is None else (int(p.min) if is_int else float(p.min))
            hi = None if p.max is None else (int(p.max) if is_int else float(p.max))
            if val is not None and ((lo is not None and val < lo) or (hi is not None and val > hi)):
                lo = hi = None  # keep an out-of-range value visible (the badge explains it)
            st.number_input(label, value=val, min_value=lo, max_value=hi, step=1 if is_int else None,
                            format=None if is_int else "%g", key=wk, help=helptext, on_change=_update_param,
                            args=(node.id, p.name, wk, p.kind, shown),
                            placeholder="none" if p.nullable else None)
        else:
            st.text_input(label, value=shown, key=wk, help=helptext, on_change=_update_param,
                          args=(node.id, p.name, wk, p.kind, shown))
        err = st.session_state.get(f"ll_perr_{node.id}_{p.name}")
        if err:
            st.warning(ui.md(err))
    if info is not None and info.inferred:
        st.markdown("**Inferred from the input**")
        for name, v in info.inferred.items():
            st.text_input(name.replace("_", " "), value=_fmt_list(v), disabled=True,
                          key=_following(f"ll_inf_{node.id}_{name}_{rev}", _fmt_list(v)),
                          help="Set automatically from the incoming tensor")
    if spec.doc_url:
        st.caption(f"[PyTorch docs for {spec.type}]({spec.doc_url})")
    st.button("Delete layer", icon=":material/delete:", key=f"ll_del_{node.id}_{rev}", on_click=_delete_node,
              args=(node.id,))


TABLE_ROWS = 400  # the inspector's layer table lists at most this many layers (graphs may hold 5,000)


def _graph_table(report) -> None:
    """The layers, their output shapes and parameter counts, as a Markdown table: no pandas or Arrow, which
    a first visit would otherwise wait for (~0.9 s on the server and ~1.3 MB of table code in the browser)."""
    rows = report.summary_rows()
    if not rows:
        return
    lines = ["| layer | shape | params |", "|---|---|---:|"]
    for r in rows[:TABLE_ROWS]:
        shape = (r["shape"] or "—").replace("(B, ", "(")
        lines.append(f"| {md_code(r['id'], table=True, max_len=60)} | {md_text(shape, 120)} | "
                     f"{ui.human_count(r['params'])} |")
    st.markdown("**Layers** (shapes without the batch dimension)")
    c = ui.analyse()[1]["summary"].get("trainable")  # the canvas's split: the freeze list and fine-tuning mode
    if c:
        added = c.get("added") or 0  # fine-tuning mode LoRA on a canvas without LoRA nodes: added when it trains
        st.caption(f"Trains {ui.human_count(c['trainable'] + added)} parameters, {ui.human_count(c['frozen'])} frozen"
                   + (f" (LoRA adapters: {ui.human_count(c['adapter'])})" if c["adapter"] else "")
                   + (f" (LoRA adapters the run adds: {ui.human_count(added)})" if added else ""))
    box = st.container(height=min(460, 44 + 35 * min(len(rows), TABLE_ROWS)), border=False, key="ll_layer_table")
    box.markdown("\n".join(lines))
    if len(rows) > TABLE_ROWS:
        st.caption(f"… and {len(rows) - TABLE_ROWS:,} more layers")


# ----------------------------------------------------------------------------------------- toolbar
def _load_template(name: str) -> None:
    try:
        proj = builder.load_template(name)
    except LayerLabError as e:
        st.session_state.ll_canvas_error = str(e)
        return
    ds = (proj.training or {}).get("dataset")
    data = {"kind": "builtin", "name": ds, "options": {}} if isinstance(ds, str) else None
    ui.replace_project(proj, f"Loaded template “{proj.name}”", relayout=True, data=data)


def _pick_template(key: str) -> None:
    name = st.session_state.get(key)
    st.session_state[key] = None  # the picker closes and shows its placeholder again
    if name:
        _load_template(name)


def toolbar(report) -> None:
    g = ui.graph()
    # below 1100 px the buttons show their words only, smaller (app_pages/style.py); each keeps its tooltip
    bar = st.container(key="ll_build_tools")
    c_tpl, c_imp, c_py, c_w, c_json, c_link, c_onnx, _gap, c_insp = bar.columns(
        [1.6, 0.85, 1, 0.9, 0.9, 0.75, 0.85, 0.15, 1.05], vertical_alignment="center")
    # A select box, not a popover: it closes as soon as a template is chosen.
    templates = {t["name"]: t for t in builder.list_templates()}
    c_tpl.selectbox("Templates", list(templates), index=None, key="ll_tpl_pick", placeholder="Templates…",
                    format_func=lambda n: templates[n]["title"], label_visibility="collapsed",
                    on_change=_pick_template, args=("ll_tpl_pick",),
                    help="Replace the canvas with a ready-made network")
    if st.session_state.pop("ll_import_close", False):  # an import ended: its answer (the question whether to
        # replace the canvas, an error) is not left under the popover. A popover of a new key: the browser keeps
        # the open state it last sent for a key and sends it again with the next click, so setting the old key
        # to closed reopened it over the imported graph as soon as Replace was pressed
        st.session_state.ll_import_gen = st.session_state.get("ll_import_gen", 0) + 1
    with c_imp.popover("Import", icon=":material/upload_file:", width="stretch", help="Open an ONNX or .pt2 model",
                       key=import_popover_key(), on_change="rerun"):
        import_model_box()
        library_box()
    ok = report.ok and bool(g.nodes)
    snapshot = g.model_copy(deep=True)
    c_py.download_button("PyTorch .py", data=lambda: _export_py(snapshot), file_name="model.py",
                         mime="text/x-python", icon=":material/code:", width="stretch", disabled=not ok,
                         help="Standalone PyTorch code for this network" if ok else
                         "Fix the problems listed below the canvas to export code", on_click="ignore")
    run = _weights_run(g)
    folder = ui.store().folder(run["id"]) if run else None
    too_big = folder.download_refusal(folder.weights) if folder else None
    c_w.download_button("Weights", data=lambda: (folder.read_weights() if folder else None) or b"",
                        file_name=f"{safe_filename(run['id'], 'run')}.safetensors" if run else "model.safetensors",
                        mime="application/octet-stream", key="ll_build_weights",
                        icon=":material/deployed_code:", width="stretch", disabled=run is None or bool(too_big),
                        help=too_big or f"Trained weights (safetensors) of run {run['id']} ({ui.md(run.get('name') or '')}), the newest "
                             "finished run of this graph" if run else
                        "No finished run of this exact graph yet: train it on the Train page", on_click="ignore")
    c_json.download_button("Project", data=ui.project_json(), file_name=ui.project_filename(),
                           mime="application/json", icon=":material/data_object:", width="stretch",
                           help="Download the project file (JSON)", on_click="ignore")
    with c_link.popover("Link", icon=":material/link:", width="stretch",
                        help="A link that opens this network (no weights) on another browser"):
        share_link_box()
    with c_onnx.popover("ONNX", icon=":material/output:", width="stretch", disabled=not ok,
                        help="Export a verified ONNX file"):
        export_onnx_box(snapshot)
    # layers, parameters, memory and problems are shown in the canvas's own summary bar
    # hidden: the canvas gets the whole width. Kept for the session: its value lived in widget state only, so a visit
    # to another page dropped it and the page's default turned an Inspector switched off on again
    c_insp.toggle("Inspector", key="ll_show_inspector", persist_state="session")


# ------------------------------------------------------------------------------------- shareable links
def _page_url() -> str:
    """This page's address without its query (``/build`` when the browser's address is unknown)."""
    try:
        url = str(st.context.url or "")
    except Exception:  # no browser (AppTest)
        url = ""
    return url.split("?", 1)[0].split("#", 1)[0] or "/build"


def share_link_box() -> None:
    """Copy link: the project (graph, parameters, dataset and training settings) in the address itself."""

    proj, left = for_link(ui.project_with_data())
    try:
        url = share_url(_page_url(), proj)
    except LinkTooLongError as e:
        st.warning(ui.error_md(e), icon=":material/link_off:")
        st.download_button("Download the project file", data=ui.project_json(), file_name=ui.project_filename(),
                           mime="application/json", icon=":material/download:", key="ll_link_file",
                           on_click="ignore")
        return
    st.caption("Copy this link (the icon at its right). Whoever opens it gets this network, its settings and its "
               "built-in dataset as their own copy; trained weights are not included.")
    st.code(url, language=None, wrap_lines=True)
    st.session_state.ll_share_url = url
    if left:
        st.caption("Not in the link: " + ", ".join(left) + ".")


def open_shared_link() -> None:
    """``/build?p=...``: open the linked project on the canvas as this visitor's copy (validated as an uploaded
    file; a confirmation first when it would replace work on the canvas; undoable)."""

    value = st.query_params.get(QUERY_KEY)
    if not isinstance(value, str) or not value or st.session_state.get("ll_url_p") == value:
        return
    st.session_state.ll_url_p = value
    try:
        proj = check_project(decode_project(value))  # a link names built-in data only, never a server path
    except LayerLabError as e:
        st.error(f"Cannot open the shared link: {ui.error_md(e)}", icon=":material/link_off:")
        return
    proj, _ = for_link(proj)  # a crafted link keeps only what a made one carries: a sender's upload stays behind
    data = dict(proj.dataset) if proj.dataset is not None else None
    # no data came with it (the sender's own file stays with them): say so, and what data the network takes (the
    # visitor landed on other data with "set shape to [2]" and no word of the sender's file)
    no_data = "" if data is not None or (proj.training or {}).get("dataset") else (
        f". No data came with it (a sender's own file stays with them): this network takes {network_kind(proj.graph)}; "
        "pick or upload such data on the Data page")
    here = ui.project()
    if ui.graph_key(proj.graph) == ui.graph_key(here.graph):  # the same network: its name and settings still arrive
        same = (proj.name, proj.description, proj.training) == (here.name, here.description, here.training)
        if same and (data is None or data == st.session_state.get("ll_data")):
            return  # already on the canvas (a reload of the link)
        if not ui.keep_in_history(ui.project_with_data()):  # undoable from the sidebar
            return
        st.session_state.ll_project = here.model_copy(update={"name": proj.name, "description": proj.description,
                                                              "training": proj.training, "dataset": proj.dataset})
        ui.flash(f"Opened the shared project “{proj.name}”: its network is the one on your canvas; its name and "
                 f"training settings are now yours{no_data}")
        if data is not None:
            st.session_state.ll_data = data
        st.session_state.ll_full_rerun = True  # the sidebar, drawn before this page, shows the new name
        ui.autosave()
        return
    # at once over a template as shipped (a first visit's starting network), else after a confirmation
    ui.replace_project(proj, f"Opened the shared network “{proj.name}” as your own copy{no_data}", data=data)


# ------------------------------------------------------------------------------------------ first visit


def _train_this() -> str | None:
    """Start a job for the canvas with the default settings on its dataset; an error message, or None."""

    g = ui.graph()
    report, _ = ui.analyse(g)
    if not g.nodes or not report.ok:
        return "Fix the network first: the bar under the canvas lists its problems."
    try:
        ds = ui.load_spec(ui.dataset_spec())
        problems = [p.message for p in train_verdict(g, ds, report)]  # Train's words
        if problems:  # a verdict that names the Data page already says where the fix is
            where = "" if "Data page" in problems[0] else " (the Data page offers a fix)"
            return f"The dataset does not fit the network: {problems[0]}{where}."
        ui.start_job(ui.project(), ds, {})
    except LayerLabError as e:
        return str(e)
    st.session_state.ll_polling = True
    ui.flash("Training started: its curves grow live on the Train page.")  # short: a toast outlives its page
    return None


def _hide_guide() -> None:
    """Hide the guide card for this person, also after a reload (kept in their profile)."""
    from builder.runs import owners  # lazy: heavy (sqlalchemy)

    st.session_state.ll_guide_hidden = True
    with contextlib.suppress(LayerLabError, OSError):  # else hidden for this session only
        owners.set_preference(ui.workspace(), ui.owner(), "guide_hidden", True)


def _guide_hidden() -> bool:
    from builder.runs import owners  # lazy: heavy (sqlalchemy)

    if st.session_state.get("ll_guide_hidden"):
        return True
    try:
        return owners.preference(ui.workspace(), ui.owner(), "guide_hidden")
    except (LayerLabError, OSError):
        return False


def guide_state(g: Graph) -> tuple[bool, bool]:
    """What the guide's Train button follows: whether the canvas is empty, and whether its network has problems
    of its own (it cannot train: the button is off and says why, instead of saying so only when pressed)."""
    return not g.nodes, bool(g.nodes) and not ui.analyse(g)[0].ok


def first_visit_guide() -> None:
    """The empty state of a first visit (no run yet): pick a template → 2 · Train → Explain, in one
    compact row (the canvas below it takes the page) that a student can hide for good."""
    st.session_state.ll_guide_state = None  # not shown: the canvas needs no full rerun for it
    if _guide_hidden():
        return
    try:
        if has_trained(ui.store(), ui.owner()):  # an import's weights are a run too: the guide stays for it
            return
    except LayerLabError:
        return
    empty, broken = guide_state(ui.graph())
    st.session_state.ll_guide_state = (empty, broken)  # canvas_area reruns the page when either changes
    with st.container(border=True, key="ll_first_visit"):
        c1, c2, c3, c4, c5 = st.columns([2.3, 1.45, 1.0, 1.45, 0.6], vertical_alignment="center", gap="small")
        # both texts take two lines (style.py: at most two, at least two), so the canvas below never moves
        # when the first layer arrives or the last one goes; each breaks between its phrases (at 900 px the
        # name's sentence broke as "… is on the / canvas")
        examples = ("*Templates…* below holds networks to start from: an MLP on two moons, a CNN, an LSTM, a "
                    "Transformer, a GPT-style language model")
        if empty:
            c1.markdown("**1 · Pick a network** in *Templates…*  \nor drag layers onto the canvas", help=examples)
        else:
            c1.markdown(f"**1 ·** On the canvas:  \n**{ui.md(ui.project().name or 'untitled')}**", help=examples)
        go = c2.button("2 · Train", type="primary", icon=":material/play_arrow:", key="ll_train_this",
                       disabled=empty or broken, width="stretch",
                       help="Pick a network first" if empty else
                            "Fix the network first: the bar under the canvas lists its problems" if broken else
                            "Train this network in the background with sensible settings; the live curves show "
                            "on the Train page")
        c3.page_link(nav.EXPLAIN, label="3 · Explain", icon=":material/insights:",
                     help="When it has learned, the Explain page shows what it looks at")
        with c4.popover("How it works", icon=":material/school:", width="stretch"):
            st.markdown(HOW_IT_WORKS)
            for name in tips.GUIDE:
                title, text = tips.TIPS[name]
                st.markdown(f"**{title}**: {text}")
        c5.button("Hide", key="ll_guide_hide", icon=":material/close:", on_click=_hide_guide,
                  help="Hide this guide (also after a reload)")
    if go:
        err = _train_this()
        if err:
            ui.show_error(err)
        else:
            st.switch_page(nav.TRAIN)


# ---------------------------------------------------------------------------- model exchange (ONNX, .pt2)
def import_popover_key() -> str:
    """The Import popover's widget key: a new one each time an import closes it (``ll_import_gen``)."""
    return f"ll_import_pop_{st.session_state.get('ll_import_gen', 0)}"


def import_model_box() -> None:
    """Open an .onnx / .pt2 model: parsed in a worker process (never executed), weights kept as a run."""
    from builder.interchange.worker import MAX_UPLOAD_BYTES, import_upload  # lazy: heavy (sqlalchemy)

    st.caption(f"Open an ONNX or torch.export (.pt2) model, up to {MAX_UPLOAD_BYTES // 2**20} MiB. It is parsed "
               "in a separate process and never executed; its weights are kept so training starts from them. An "
               "ONNX model with its weights in a separate file: choose both (m.onnx and m.onnx.data), or a .zip.")
    nonce = st.session_state.setdefault("ll_import_nonce", 0)
    # a torch file it does not open (.pt, .py, ...) is taken too, for the import to say what to export instead
    ups = st.file_uploader("Model file", type=["onnx", "pt2", "data", "zip", *(s[1:] for s in FOREIGN_MODEL_FILES)],
                           accept_multiple_files=True, key=f"ll_import_{nonce}")
    models = [u for u in ups or [] if not u.name.lower().endswith(".data")]
    if not ups or len(models) != 1:
        if ups:
            st.warning("Choose one model file (.onnx, .pt2 or .zip), with its .data file if it has one.")
        return
    up = models[0]
    st.session_state.ll_import_nonce = nonce + 1
    st.session_state.ll_import_close = True  # whatever the import answers, the popover closes for it
    try:
        ui.check_storage()  # the imported weights become a run of this person's
        with st.spinner("Importing in a worker process…"):
            proj, rid, rep = import_upload(up.getvalue(), up.name, ui.store(),
                                           companions={u.name: u.getvalue() for u in ups if u is not up} or None)
    except LayerLabError as e:
        st.session_state.ll_canvas_error = f"Cannot import {up.name}: {e}"
        st.rerun()
    st.session_state.ll_canvas_error = None
    # like New and the templates: a canvas holding a project asks before it is replaced (undoable)
    ui.replace_project(proj, f"Imported {proj.name}: {rep['nodes']} layers, {rep['total_params']:,} parameters; "
                   f"outputs match the original to {rep.get('max_abs_diff', 0):.1e}. Training starts from the "
                   f"imported weights (run {rid}); freeze layers on the Train page."
                   + "".join(f" Note: {ui.md(n)}." for n in rep.get("notes", [])))
    st.rerun()


def library_box() -> None:
    """The model library's models (Hugging Face folders the admin set up) with their size; one is imported by
    its name in a worker process and its weights kept as a run of this person's."""
    from builder.interchange.hf_library import library_entries, library_folder  # lazy: heavy (sqlalchemy)

    if library_folder(ui.workspace()) is None:
        return
    entries = {e["name"]: e for e in library_entries(ui.workspace()) if not e["problem"]}
    if not entries:
        return
    st.divider()
    st.caption("Model library: pretrained models on this server (parameters, multiply-adds per sample, training "
               "memory at batch 32 on this server's CPU).")
    name = st.selectbox("Library model", list(entries), index=None, key="ll_library_pick", placeholder="Model…",
                        format_func=lambda n: f"{n} · {entries[n]['architecture']} · {ui.human_count(entries[n]['params'])}"
                        f" params · {ui.human_count(entries[n]['macs'])} MACs · {entries[n]['memory_text']}")
    if name is None or not st.button("Place on the canvas", key="ll_library_go", icon=":material/download:"):
        return
    place_library_model(name)
    st.rerun()


def place_library_model(name: str) -> None:
    """Import the library model ``name`` (a name, never a path) in a worker process, keep its weights as a run of
    this person's and put it on the canvas (asking first when the canvas holds a network; undoable)."""
    from builder.interchange.hf_library import import_library_model  # lazy: heavy (sqlalchemy)

    st.session_state.ll_import_close = True  # whatever the import answers, the popover closes for it
    try:
        ui.check_storage()  # the imported weights become a run of this person's
        with st.spinner(f"Importing {name} in a worker process…"):
            proj, rid, rep = import_library_model(ui.store(), ui.workspace(), name)
    except LayerLabError as e:
        st.session_state.ll_canvas_error = f"Cannot import {name}: {e}"
        return
    st.session_state.ll_canvas_error = None
    ui.replace_project(proj, f"Imported {name}: {rep['nodes']} layers, {rep['total_params']:,} parameters; outputs "
                       f"match transformers to {rep.get('max_abs_diff', 0):.1e}. Training starts from its weights "
                       f"(run {rid}); add a head, then pick Linear probe, LoRA or Full on the Train page.")


def _onnx_weights() -> Path | None:
    """Weights for the ONNX export: the last finished run, else the imported weights the project starts from."""
    run = _weights_run(ui.graph())
    if run is not None:
        return ui.store().weights_path(run["id"])
    init = (ui.project().training or {}).get("init_from")
    if isinstance(init, str):
        try:
            p = ui.store().weights_path(init)
        except LayerLabError:
            return None
        return p if p.exists() else None
    return None


def export_onnx_box(g: Graph) -> None:
    """Build a verified ONNX file (dynamic batch, checked against onnxruntime) and offer it for download."""
    from builder.interchange.worker import export_onnx_bytes  # lazy: heavy (sqlalchemy)

    wpath = _onnx_weights()
    built_from = (ui.graph_key(g), str(wpath))  # what a built file is of
    st.caption("ONNX with a dynamic batch axis, checked with onnx.checker and compared with onnxruntime. "
               + ("Uses the trained/imported weights." if wpath else "Weights: freshly initialised (train first)."))
    if st.button("Build ONNX file", key="ll_onnx_build", icon=":material/build:"):
        proj = ui.project().model_copy(update={"graph": g})
        try:
            with st.spinner("Exporting and verifying…"):
                try:
                    data, rep = export_onnx_bytes(proj.to_json(), wpath)
                except LayerLabError:
                    if wpath is None:
                        raise
                    data, rep = export_onnx_bytes(proj.to_json(), None)  # the graph changed since training
                    rep["notes"] = ["the weights no longer fit the edited graph; exported freshly initialised"]
        except LayerLabError as e:
            st.session_state.ll_onnx = None
            ui.show_error(e)
            return
        st.session_state.ll_onnx = {"data": data, "report": rep, "of": built_from}
    got = st.session_state.get("ll_onnx")
    # a file built from another graph or other weights is not offered: after a template change the popover still
    # offered the CNN's model.onnx (input image 1×8×8) under the MLP's name
    if got and got.get("of") == built_from:
        rep = got["report"]
        st.caption(f"{len(got['data']):,} bytes; onnxruntime differs by at most {rep['max_abs_diff']:.1e}."
                   + "".join(f" Note: {ui.md(n)}." for n in rep.get("notes", [])))
        name = f"{ui.project_filename()[:-14]}.onnx"  # the label names the file it saves (it said model.onnx)
        st.download_button(f"Download {ui.md(name)}", data=got["data"], file_name=name,
                           mime="application/octet-stream", icon=":material/download:", key="ll_onnx_dl",
                           on_click="ignore")


def _export_py(g: Graph) -> str:
    from builder.interchange import python_source  # lazy: heavy (torch, on first use)

    return python_source(g)


def _weights_run(g: Graph) -> dict | None:
    """The newest finished run of this owner whose graph is the canvas graph (what Weights exports)."""
    from builder.runs.summary import finished_run  # lazy: heavy (sqlalchemy)

    try:
        return finished_run(ui.store(), g, ui.owner())
    except LayerLabError:
        return None


# ------------------------------------------------------------------------------------------- page
@st.fragment
def canvas_area() -> None:
    if st.session_state.pop("ll_full_rerun", False) and st.context is not None:
        st.rerun()  # a replaced project also changes the sidebar (name)
    _sync_from_browser()
    if st.session_state.pop("ll_full_rerun", False) and st.context is not None:
        st.rerun()  # the browser's edit met another tab's save: the page above asks which version to go on with
    g = ui.graph()
    shown = st.session_state.get("ll_guide_state")
    if shown is not None and shown != guide_state(g) and st.context is not None:
        st.rerun()  # the first layer arrived, the last one went or the network's problems came or went: the guide
        # above says so and can (or cannot) Train
    report, ann = ui.analyse(g)
    toolbar(report)
    if st.session_state.get("ll_canvas_error"):
        st.error(ui.error_md(st.session_state.ll_canvas_error))

    def _canvas() -> None:
        graph_canvas(graph=_graph_payload(g), palette=ui.palette_with_blocks(), annotations=ann,
                     revision=st.session_state.ll_revision, selected=st.session_state.get("ll_selected"),
                     height=CANVAS_HEIGHT, key=CANVAS_KEY, covers=(INSPECTOR_PANEL,),
                     project=st.session_state.get("ll_project_seq", 0), can_undo_replace=ui.can_undo_replace())
        if note := ann["summary"].get("latency"):  # the conditions of the Cost overlay's measured latency
            st.caption(note)

    if not st.session_state.ll_show_inspector:
        _canvas()
    else:
        _canvas_with_inspector(_canvas, g, report)
    ui.show_flash()  # what this run of the fragment queued (a canvas edit kept in the history, a block added)


def _canvas_with_inspector(canvas, g: Graph, report) -> None:
    # Docked beside the canvas on wide windows; below 1100 px the CSS in ui.CSS floats it over the canvas while
    # a layer is selected and hides it otherwise (its key says which).
    left, right = st.columns([3.6, 1], gap="small")
    with left:
        canvas()
    key = "ll_inspector" if st.session_state.get("ll_selected") else "ll_inspector_idle"
    if key == "ll_inspector":  # floating, it hid the canvas's right third with no way to close it but Esc
        right.button("Close", icon=":material/close:", key="ll_inspector_close", on_click=_close_inspector,
                     help="Close the inspector: the layer is deselected (click a layer to open it again)")
    with right, st.container(height=INSPECTOR_HEIGHT, border=False, key=key):
        side = st.segmented_control("Side panel", ["Layer", "Try it"], default="Layer", key="ll_side_view",
                                    label_visibility="collapsed")
        if side == "Try it":  # the newest run of this graph on your own input (app_pages/explain_tryit.py)
            from app_pages import explain_tryit  # lazy: heavy (plotly)

            explain_tryit.build_panel(g)
        else:
            inspector(report)


st.session_state.setdefault("ll_show_inspector", True)
open_shared_link()
# no subtitle: the canvas takes the page (what it says is in the guide's "How it works" and the canvas's own ?)
ui.page_header("Build", "")
first_visit_guide()
canvas_area()
