"""Shared UI helpers for the LayerLab app: per-session state, sidebar, styling, annotations, training.

Everything user-specific lives in ``st.session_state`` (keys prefixed ``ll_``); nothing here keeps user
data in module globals or ``st.cache_resource``. Pages import this module as ``from pages import ui``.

Session-state keys other pages may read:

* ``ll_project``: the :class:`builder.Project` being edited (graph, training, dataset, blocks).
* ``ll_revision``: bumped whenever Python replaces the canvas graph.
* ``ll_selected``: id of the node selected on the canvas (or None).
* ``ll_data``: the chosen dataset spec (see :func:`dataset_spec`); ``ll_dataset``: the loaded
  :class:`builder.data.Dataset` for it (cached per spec).
* ``ll_job``: the current :class:`TrainSession` (training job, run id, drained history) or None.
* ``ll_model``: the last trained model (``torch.nn.Module``) with ``ll_model_run`` its run id.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

import builder
from builder.errors import LayerLabError
from builder.escape import safe_filename
from builder.project import Graph, Position, Project

APP_NAME = "LayerLab"

CSS = """
<style>
.block-container {padding: 1.6rem 1.5rem 1.5rem 1.5rem !important; max-width: 100%;}
section[data-testid="stSidebar"][data-collapsed="false"] {width: 248px !important; min-width: 248px !important;}
/* narrow windows: the sidebar floats over the page instead of squeezing it (collapse it with its « button) */
@media (max-width: 1100px) {
  section[data-testid="stSidebar"][data-collapsed="false"] {position: fixed !important; z-index: 1000; top: 0;
    height: 100vh !important; box-shadow: 8px 0 30px rgba(15, 23, 42, 0.18);}
  .st-key-ll_inspector_idle {display: none;}
}
[data-testid="stSidebar"] .block-container {padding-top: 1rem;}
h1 {font-size: 1.75rem !important; font-weight: 700 !important; letter-spacing: -0.01em; margin-bottom: 0 !important;}
h2 {font-size: 1.25rem !important; font-weight: 650 !important;}
h3 {font-size: 1.05rem !important; font-weight: 650 !important;}
[data-testid="stMetricValue"] {font-size: 1.35rem;}
[data-testid="stMetricLabel"] p {font-size: 0.8rem; color: #64748b;}
.ll-sub {color: #64748b; font-size: 0.92rem; margin: 0.1rem 0 0.9rem 0;}
.ll-brand {font-weight: 750; font-size: 1.2rem; letter-spacing: -0.01em;}
.ll-brand span {color: #4f46e5;}
div[data-testid="stExpander"] details summary p {font-weight: 600;}
[data-testid="stAppDeployButton"] {display: none;}
/* Build page: the inspector floats over the canvas (instead of squeezing it) on narrow windows */
@media (max-width: 1100px) {
  [data-testid="stHorizontalBlock"]:has(.st-key-ll_inspector, .st-key-ll_inspector_idle) > [data-testid="stColumn"]:first-child {
    flex: 1 1 100% !important; width: 100% !important; max-width: 100% !important;}
  [data-testid="stColumn"]:has(.st-key-ll_inspector_idle) {display: none !important;}
  [data-testid="stColumn"]:has(.st-key-ll_inspector) {
    position: fixed !important; right: 10px; top: 70px; width: min(340px, 86vw) !important; flex: none !important;
    z-index: 999; background: #fff; border: 1px solid #e2e8f0; border-radius: 10px; padding: 8px 12px;
    box-shadow: 0 12px 36px rgba(15, 23, 42, 0.22);}
}
button[kind="primary"], button[kind="primaryFormSubmit"] {background: #4f46e5 !important; border-color: #4f46e5 !important;}
button[kind="primary"]:hover, button[kind="primaryFormSubmit"]:hover {background: #4338ca !important; border-color: #4338ca !important;}
[data-testid="stProgress"] div[role="progressbar"] > div > div > div {background-color: #4f46e5 !important;}
span[data-baseweb="tag"] {background-color: #4f46e5 !important;}
</style>
"""


# ----------------------------------------------------------------------------------------- workspace
def workspace() -> Path:
    """The folder for runs and uploads: ``$LAYERLAB_WORKSPACE`` or ``~/.layerlab`` (as the CLI)."""
    from builder.runs import default_workspace

    root = default_workspace()
    root.mkdir(parents=True, exist_ok=True)
    return root


# -------------------------------------------------------------------------------------------- state
def new_project(name: str = "untitled") -> Project:
    return Project(name=name)


def with_edge_ids(graph: Graph) -> Graph:
    """A copy whose edges all carry explicit ids (so browser and Python agree on edge keys)."""
    edges = [e if e.id else e.model_copy(update={"id": e.key}) for e in graph.edges]
    return graph.model_copy(update={"edges": edges})


def _no_pages_dir_mode() -> None:
    """Streamlit treats a ``pages/`` folder as the old multipage layout until ``st.navigation`` runs once in
    the process; a first visit to a deep link (``/train``) would then run the page without ``app.py``.
    Turn that mode off as soon as any of our modules is imported."""
    try:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
    except Exception:  # internal API; the shell check below still recovers
        pass


_no_pages_dir_mode()


def ensure_shell() -> None:
    """Pages call this first: if this run did not come through ``app.py`` (see above), rerun through it."""
    if not st.session_state.get("ll_shell"):
        _no_pages_dir_mode()
        st.rerun()


_WARM = threading.Event()  # process-wide: torch kernels initialised (no user data)
WARM_DELAY_S = 1.5  # app.py starts the warm-up after the first page ran; it waits this long more


def torch_threads() -> int:
    """Intra-op threads for training in the app: ``$LAYERLAB_TORCH_THREADS`` or one core fewer than the
    machine has (at least 1), leaving a core for the web server and the browser. Spin-waiting OpenMP threads
    that compete with the UI for cores make small models train several times slower."""
    env = os.environ.get("LAYERLAB_TORCH_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _apply_threads() -> None:
    import sys

    import torch

    # The UI threads (script runs, the web server) and the training thread share the GIL. Each torch op
    # releases it; with the default 5 ms switch interval a busy UI thread makes the trainer wait up to 5 ms
    # per op. A shorter interval hands the GIL back quickly (process-wide, not user data).
    if sys.getswitchinterval() > 0.0005:
        sys.setswitchinterval(0.0005)
    n = torch_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def warm_up() -> None:
    """Once per process, train the CNN template for one epoch in the background (no run is stored) so the
    first real run starts fast: the first backward pass, optimizer and fx code generation in a fresh
    process cost seconds on CPU."""
    if _WARM.is_set():
        return
    _WARM.set()

    def work() -> None:
        try:
            time.sleep(WARM_DELAY_S)  # off the request path: after the first page has been sent and drawn
            _apply_threads()
            from builder.data import load_dataset
            from builder.train import Trainer

            ds = load_dataset("digits")  # imports scikit-learn's loaders once
            model = builder.compile_graph(builder.load_template("cnn").graph)
            Trainer(model, ds, {"epochs": 1, "checkpoint_every": 0}).fit()  # first backward, optimizer, fx code
            from builder import explain as _explain  # noqa: F401  (Captum: Explain's first open)
            from builder import figures as _figures  # noqa: F401  (plotly figures)
            from builder import runs as _runs  # noqa: F401
        except Exception:  # warming up is an optimisation only
            pass

    threading.Thread(target=work, name="layerlab-warmup", daemon=True).start()


def init_state() -> None:
    """Create this session's state on first use."""
    ss = st.session_state
    if "ll_project" not in ss:
        proj = builder.load_template("cnn")
        proj = proj.model_copy(update={"graph": with_edge_ids(layout(proj.graph))})
        ss.ll_project = proj
        ss.ll_revision = 1
        ss.ll_selected = None
    ss.setdefault("ll_data", None)
    ss.setdefault("ll_dataset", None)
    ss.setdefault("ll_job", None)
    ss.setdefault("ll_model", None)
    ss.setdefault("ll_model_run", None)
    ss.setdefault("ll_flash", [])
    ss.setdefault("ll_ann", None)
    ss.setdefault("ll_upload_nonce", 0)


def project() -> Project:
    return st.session_state.ll_project


def graph() -> Graph:
    return st.session_state.ll_project.graph


def set_project(proj: Project, flash: str | None = None, relayout: bool = False) -> None:
    """Replace the whole project (template, file) and make the canvas reload it."""
    g = proj.graph
    if g.nodes and (relayout or any(n.position is None for n in g.nodes)):
        g = layout(g)
    st.session_state.ll_project = proj.model_copy(update={"graph": with_edge_ids(g)})
    st.session_state.ll_revision += 1
    st.session_state.ll_selected = None
    st.session_state.ll_full_rerun = True
    if flash:
        st.session_state.ll_flash.append(flash)


def layout(g: Graph, per_row: int = 3) -> Graph:
    """Left-to-right layers (builder.auto_layout), wrapped into rows of ``per_row`` columns so long chains
    stay readable on a screen."""
    g = builder.auto_layout(g, dx=280.0, dy=120.0)
    xs = sorted({n.position.x for n in g.nodes if n.position})
    if len(xs) <= per_row + 1:
        return g
    col = {x: i for i, x in enumerate(xs)}
    ys = [n.position.y for n in g.nodes if n.position]
    band = (max(ys) - min(ys)) + 190.0
    nodes = []
    for n in g.nodes:
        c = col[n.position.x]
        row, k = divmod(c, per_row)
        nodes.append(n.model_copy(update={"position": Position(x=k * 280.0, y=n.position.y + row * band)}))
    return g.model_copy(update={"nodes": nodes})


def set_graph(g: Graph, bump: bool = True) -> None:
    """Replace the graph; ``bump`` makes the canvas show it (Python-side changes)."""
    st.session_state.ll_project = project().model_copy(update={"graph": with_edge_ids(g)})
    if bump:
        st.session_state.ll_revision += 1


def flash(msg: str) -> None:
    st.session_state.ll_flash.append(msg)


def show_flash() -> None:
    for msg in st.session_state.get("ll_flash", []):
        st.toast(md(msg))
    st.session_state.ll_flash = []


# ----------------------------------------------------------------------------------------- analysis
def graph_key(g: Graph) -> str:
    return hashlib.sha1(g.model_dump_json(exclude={"nodes": {"__all__": {"position"}}}).encode()).hexdigest()


def analyse(g: Graph | None = None) -> tuple[Any, dict]:
    """(ShapeReport, canvas annotations) for a graph; cached per session on the graph's content."""
    g = g if g is not None else graph()
    key = graph_key(g)
    cached = st.session_state.get("ll_ann")
    if cached and cached[0] == key:
        return cached[1], cached[2]
    report = builder.infer_shapes(g)
    ann = annotations(g, report)
    st.session_state.ll_ann = (key, report, ann)
    return report, ann


def annotations(g: Graph, report) -> dict:
    """The canvas annotations dict for a graph and its report."""
    from builder.shapes import human_bytes, kinds_of

    kinds = kinds_of(report)
    nodes = {}
    for nid, info in report.nodes.items():
        nodes[nid] = {"shape": info.shape_str if info.shape is not None else None, "params": info.num_params,
                      "errors": list(info.errors) if info.status != "upstream" else [],
                      "out_kind": kinds.get(nid, "tensor")}
    edges = {}
    for e in g.edges:
        t = report.edges.get(e.key)
        if t is not None:
            edges[e.key] = {"shape": str(t)}
    problems = [{"node": p.node, "edge": p.edge, "message": p.message} for p in report.problems]
    summary = {"total_params": report.total_params, "memory": human_bytes(report.memory_estimate(64)),
               "problems": problems}
    return {"nodes": nodes, "edges": edges, "summary": summary}


def human_count(n: int) -> str:
    from builder.shapes import human_count as hc
    return hc(int(n))


def human_bytes(n: float) -> str:
    from builder.shapes import human_bytes as hb
    return hb(n)


# ---------------------------------------------------------------------------------------- palette
def palette_with_blocks() -> list[dict]:
    """The layer palette plus this project's blocks (category ``Blocks``)."""
    pal = list(_palette())
    for b in project().blocks:
        pal.append({"type": str(b.get("name", "block")), "category": "Blocks",
                    "description": f"Block of {len(b.get('nodes', []))} layers",
                    "inputs": [], "outputs": [], "variadic": False, "params": [], "inferred": [],
                    "block": {"nodes": b.get("nodes", []), "edges": b.get("edges", [])}})
    return pal


def _palette() -> list[dict]:
    ss = st.session_state
    if "ll_palette" not in ss:  # static data, but kept per session so nothing lives in globals
        ss.ll_palette = builder.palette()
    return ss.ll_palette


def make_block(g: Graph, node_ids: list[str], name: str) -> dict:
    """A reusable block from some nodes of a graph (internal edges kept)."""
    ids = set(node_ids)
    nodes = [n.model_dump(exclude_none=True) for n in g.nodes if n.id in ids]
    edges = [e.model_dump(exclude_none=True) for e in g.edges if e.source in ids and e.target in ids]
    clean = re.sub(r"\s+", " ", str(name)).strip()[:60] or "block"
    return {"name": clean, "nodes": nodes, "edges": edges}


# ---------------------------------------------------------------------------------------- styling
def run_from_url(page: str) -> str | None:
    """The run id of a deep link (``/runs?run=ID``, ``/explain?run=ID``), once per session and page: the
    first run of the page after the link was opened returns it, later reruns return None (so the user's own
    choice is not overridden). Ids that are not well-formed run ids are ignored."""
    from builder.runs import RUN_ID_RE

    rid = st.query_params.get("run")
    if not isinstance(rid, str) or not RUN_ID_RE.fullmatch(rid):
        return None
    seen = f"ll_url_run_{page}"
    if st.session_state.get(seen) == rid:
        return None
    st.session_state[seen] = rid
    return rid


def page_header(title: str, subtitle: str) -> None:
    st.title(title)
    st.markdown(f"<p class='ll-sub'>{_esc(subtitle)}</p>", unsafe_allow_html=True)


def _esc(s: str) -> str:
    import html
    return html.escape(str(s))


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def md(text) -> str:
    """Escape user-controlled text (names, ids, messages that quote them) for Streamlit markdown, so it is
    shown literally: no links, images, emphasis or HTML."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def style() -> None:
    st.markdown(CSS, unsafe_allow_html=True)


def show_error(e: BaseException) -> None:
    """A LayerLabError as a readable message (never a traceback)."""
    if isinstance(e, builder.GraphError) and e.problems:
        lines = "\n".join(f"- {md(p)}" for p in e.problems[:8])
        st.error(f"The graph has {len(e.problems)} problem(s):\n\n{lines}")
    else:
        st.error(md(e))


# ----------------------------------------------------------------------------------------- sidebar
LOGO = ("<svg xmlns='http://www.w3.org/2000/svg' width='150' height='32' viewBox='0 0 150 32'>"
        "<rect x='1' y='5' width='9' height='9' rx='2' fill='#4f46e5'/><rect x='1' y='18' width='9' height='9' rx='2'"
        " fill='#0ea5e9'/><rect x='16' y='11' width='9' height='9' rx='2' fill='#10b981'/><path d='M10 9.5 L16 15.5 M10"
        " 22.5 L16 15.5' stroke='#94a3b8' stroke-width='1.5'/><text x='32' y='22' font-family='Source Sans Pro, Arial,"
        " sans-serif' font-size='19' font-weight='700' fill='#0f172a'>Layer<tspan fill='#4f46e5'>Lab</tspan></text>"
        "</svg>")


def sidebar() -> None:
    """Project name and new / open / save, shown on every page."""
    import base64

    st.logo("data:image/svg+xml;base64," + base64.b64encode(LOGO.encode()).decode(), size="large")
    with st.sidebar:
        proj = project()
        key = f"ll_name_{st.session_state.ll_revision}"
        st.text_input("Project name", value=proj.name, max_chars=200, key=key, on_change=_rename_project, args=(key,))
        c1, c2 = st.columns(2)
        c1.button("New", icon=":material/note_add:", width="stretch", help="Start an empty project", key="ll_new",
                  on_click=lambda: set_project(new_project(), flash="New empty project"))
        c2.download_button("Save", data=project_json(), file_name=project_filename(), mime="application/json",
                           icon=":material/download:", width="stretch", help="Download the project file (.json)")
        up = st.file_uploader("Open project", type=["json"], key=f"ll_open_{st.session_state.ll_upload_nonce}",
                              help="A LayerLab project file (.json)")
        if up is not None:
            try:
                proj = builder.load_project(up.getvalue())
            except LayerLabError as e:
                st.error(f"Cannot open {md(up.name)}: {md(e)}")
            else:
                st.session_state.ll_upload_nonce += 1
                set_project(proj, flash=f"Opened {proj.name}")
                st.rerun()
        job = st.session_state.get("ll_job")
        if job is not None and job.active:
            st.page_link("pages/train.py", label="Training in progress", help="Follow it on the Train page",
                         icon=":material/model_training:")


def _rename_project(key: str) -> None:
    name = str(st.session_state.get(key) or "").strip() or "untitled"
    st.session_state.ll_project = project().model_copy(update={"name": name})


def project_json() -> str:
    p = project()
    if st.session_state.get("ll_data"):
        spec = st.session_state.ll_data
        p = p.model_copy(update={"dataset": {k: v for k, v in spec.items() if k in ("kind", "name", "options",
                                                                                    "target", "task")}})
    return p.to_json()


def project_filename() -> str:
    base = safe_filename(project().name, "project")
    return f"{base}.layerlab.json"


# -------------------------------------------------------------------------------------------- data
def dataset_spec() -> dict:
    """The chosen dataset: ``{"kind": "builtin", "name", "options"}``, ``{"kind": "csv", "name", "file",
    "target", "task"}`` or ``{"kind": "images", "name", "file", "size"}``; defaults from the project."""
    spec = st.session_state.get("ll_data")
    if spec:
        return spec
    proj = project()
    name = None
    for src in (proj.dataset or {}, proj.training or {}):
        if isinstance(src.get("dataset"), str):
            name = src["dataset"]
        elif isinstance(src.get("name"), str) and src.get("kind", "builtin") == "builtin":
            name = src["name"]
        if name:
            break
    from builder.data import list_datasets
    known = {d["name"] for d in list_datasets()}
    return {"kind": "builtin", "name": name if name in known else "digits", "options": {}}


def spec_key(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def load_spec(spec: dict):
    """Load (or reuse) the Dataset for a spec. Raises DatasetError."""

    key = spec_key(spec)
    cached = st.session_state.get("ll_dataset")
    if cached is not None and cached[0] == key:
        return cached[1]
    ds = open_spec(spec)
    st.session_state.ll_dataset = (key, ds)
    return ds


def open_spec(spec: dict):
    """Load a dataset spec without touching session state (also used from training threads)."""
    from builder.data import load_csv, load_dataset, load_image_folder

    kind = spec.get("kind", "builtin")
    if kind == "csv":
        return load_csv(spec["file"], spec["target"], task=spec.get("task") or None, name=spec.get("name"))
    if kind == "images":
        size = int(spec.get("size", 32))
        return load_image_folder(spec["file"], size=(size, size), task=spec.get("task") or None)
    return load_dataset(spec["name"], **dict(spec.get("options") or {}))


def save_upload(name: str, data: bytes) -> str:
    """Keep an uploaded file in the workspace (content-addressed) so runs can be resumed later."""
    suffix = Path(name).suffix.lower()[:8]
    d = workspace() / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    path = d / (hashlib.sha1(data).hexdigest()[:16] + suffix)
    if not path.exists():
        path.write_bytes(data)
    return str(path)


# ------------------------------------------------------------------------------------------ run store
def store():
    """The workspace's :class:`builder.runs.RunStore` (opened per call; SQLite connections are per call)."""
    from builder.runs import RunStore

    return RunStore(workspace())


def run_summary(rs, run: dict) -> dict:
    """Extra columns for a run: parameters, best validation epoch, duration (cached per session)."""
    cache = st.session_state.setdefault("ll_run_extra", {})
    key = (run["id"], run.get("status"), run.get("epochs_done"))
    if key in cache:
        return cache[key]
    out: dict = {"params": None, "best": {}, "duration_s": None}
    try:
        full = rs.get(run["id"])
        proj = builder.load_project(full["project"])
        out["params"] = builder.infer_shapes(proj.graph).total_params
        out["config"] = full.get("config") or {}
        out["dataset_info"] = full.get("dataset_info") or {}
        out["dataset_options"] = full.get("dataset_options") or {}
        start, end = full.get("started_at") or full.get("created_at"), full.get("finished_at") or full.get("updated_at")
        if start and end:
            from datetime import datetime
            out["duration_s"] = max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    except (LayerLabError, ValueError, TypeError, KeyError):
        pass
    try:
        eps = rs.metrics(run["id"], "epoch")
    except LayerLabError:
        eps = []
    out["epochs"] = eps
    vals = [e for e in eps if isinstance(e.get("val_loss"), (int, float)) and math.isfinite(e["val_loss"])]
    if vals:
        b = min(vals, key=lambda e: e["val_loss"])
        out["best"] = {"epoch": b.get("epoch"), "val_loss": b.get("val_loss"), "val_metric": b.get("val_metric"),
                       "metric_name": b.get("metric_name")}
    if run.get("status") in ("finished", "stopped", "failed", "interrupted"):
        cache[key] = out
    return out


def spec_public(spec: dict) -> str:
    if spec.get("kind", "builtin") == "builtin":
        return spec.get("name", "?")
    return f"{spec.get('name', 'upload')} ({spec.get('kind')})"


# ------------------------------------------------------------------------------------------- training
@dataclass
class TrainSession:
    """One training job of this browser session plus the events drained from its channel."""

    job: Any
    run_id: str
    rec: dict
    model: Any
    info: Any
    steps: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    status: str = "queued"
    message: str = ""
    test: dict | None = None
    started: float = field(default_factory=time.time)
    live: Any = None  # the LiveAttributions callback when attributions are recorded during training
    first_point_s: float | None = None
    boundary: dict | None = None  # latest decision-boundary grid (builder.boundary), 2-D toy data only
    boundary_points: dict | None = None
    total_epochs: int = 1
    steps_per_epoch: int = 1

    @property
    def active(self) -> bool:
        return self.job.running

    def drain(self) -> int:
        """Move new channel events into this session's lists; returns how many arrived."""
        evs = self.job.channel.drain()
        for ev in evs:
            t = ev.get("type")
            if t == "step":
                self.steps.append((ev["step"], ev["loss"]))
                if len(self.steps) > 20_000:  # bounded memory for very long runs: keep every other point
                    self.steps = self.steps[::2]
                if self.first_point_s is None:
                    self.first_point_s = time.time() - self.started
            elif t == "epoch":
                self.epochs.append({k: v for k, v in ev.items() if k not in ("type", "extras")})
                b = (ev.get("extras") or {}).get("boundary")
                if isinstance(b, dict):
                    self.boundary = b
                    self.boundary_points = b.get("points") or self.boundary_points
            elif t == "status":
                self.status, self.message = ev["status"], ev.get("message", "")
            elif t == "done":
                self.test = ev.get("test")
        if not self.job.running:
            tr = self.job.trainer
            self.status = tr.status if tr.status else self.status
            if self.job.error is not None and self.status not in ("failed",):
                self.status = "failed"
            if self.job.error is not None and not self.message:
                self.message = str(self.job.error)
        return len(evs)


def start_training(proj: Project, spec: dict, config: dict, resume_run: str | None = None,
                   live: bool = False) -> TrainSession:
    """Start a background training job (or resume a run) through :mod:`builder.runs`.

    ``live`` records attributions of 4 fixed validation samples every epoch (played back on Explain › Live).

    Raises:
        LayerLabError: a graph, data or settings problem (message ready for the user).
    """
    from builder.pipeline import resume_run as _resume
    from builder.pipeline import run_training

    rs = store()
    _apply_threads()
    from builder.boundary import DecisionBoundary

    callbacks: list = [DecisionBoundary()]  # silent unless the data are 2-D points (moons, spirals, ...)
    live_cb = None
    if live:
        from builder.live import LiveAttributions

        live_cb = LiveAttributions("integrated_gradients", n_samples=4)  # layer IG for token models
        callbacks.append(live_cb)
    if resume_run:
        job = _resume(resume_run, rs, background=True, callbacks=callbacks)
        run = rs.get(resume_run)
        cfg = _train_config(run.get("config") or {})
        ds = None
        info_d = run.get("dataset_info") or {}
        n_train = int((info_d.get("sizes") or {}).get("train") or 1)
    else:
        ds = load_spec(spec) if _in_script() else open_spec(spec)
        cfg = _train_config(config)
        job = run_training(proj, ds, cfg, store=rs, background=True, callbacks=callbacks)
        n_train = len(ds.train)
    trainer = job.trainer
    sess = TrainSession(job=job, run_id=str(getattr(job, "run_id", "") or ""), rec={}, model=trainer.model,
                        info=trainer.dataset.info, total_epochs=cfg.epochs, live=live_cb)
    bs = min(cfg.batch_size, max(n_train, 1))
    sess.steps_per_epoch = max(1, getattr(trainer, "steps_per_epoch", 0) or math.ceil(n_train / bs))
    if resume_run:  # show the curve so far (and the last decision boundary)
        from builder.boundary import latest_boundary

        past = rs.metrics(resume_run, "epoch")
        sess.boundary, sess.boundary_points = latest_boundary(past)
        sess.epochs = [{k: v for k, v in e.items() if k != "extras"} for e in past]
    return sess


def _in_script() -> bool:
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        return get_script_run_ctx() is not None
    except Exception:
        return False


def _train_config(config: dict):
    from builder.train import TrainConfig
    return TrainConfig.from_dict({k: v for k, v in config.items() if v is not None})


def device_options() -> list[tuple[str, str]]:
    """(value, label) pairs for the device picker, naming GPUs where present."""
    import torch

    opts = [("auto", "Auto")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            opts.append((f"cuda:{i}", f"GPU {i}: {torch.cuda.get_device_name(i)}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        opts.append(("mps", "Apple GPU (MPS)"))
    opts.append(("cpu", "CPU"))
    return opts


def zip_dir_bytes(paths: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in paths.items():
            z.writestr(name, data)
    return buf.getvalue()


def fmt_duration(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "—"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def fmt_metric(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.1%}" if pct else f"{v:.4g}"


__all__ = ["init_state", "sidebar", "style", "analyse", "annotations", "set_project", "set_graph", "project",
           "graph", "show_error", "store", "run_summary", "start_training", "TrainSession", "dataset_spec",
           "load_spec", "open_spec"]
