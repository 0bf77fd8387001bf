"""Shared UI helpers for the LayerLab app: the sidebar, dataset choice, the run store and training jobs.

The helpers are split by concern: :mod:`app_pages.state` (owner, project, autosave, analysis), :mod:`app_pages.style`
(stylesheet, headers, escaping), :mod:`app_pages.fmt` (numbers and durations). This module re-exports them so
pages write ``ui.project()``, ``ui.md(...)``, ``ui.fmt_duration(...)``. Training runs as jobs in their own
processes (:mod:`builder.jobs.queue`); pages read the run store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time

import streamlit as st

import builder
from app_pages import nav
from app_pages.fmt import (
    fmt_duration,
    fmt_metric,
    fmt_setting,
    human_bytes,
    human_count,
    metric_text,
    zip_dir_bytes,
)
from app_pages.state import (
    actor,
    analyse,
    annotations,
    autosave,
    autosave_after_page,
    can_control,
    can_see,
    can_undo_replace,
    confirm_replace,
    entered_page,
    flash,
    fresh_roles,
    graph,
    graph_key,
    init_state,
    keep_in_history,
    make_block,
    new_project,
    owner,
    owner_label,
    palette_with_blocks,
    project,
    project_with_data,
    rebase_stale,
    replace_project,
    set_graph,
    set_project,
    shared_runs,
    show_flash,
    stale_prompt,
    undo_replace,
    with_data,
    with_edge_ids,
    workspace,
)
from app_pages.style import LOGO, error_md, md, md_value, show_error, sidebar_rule, style
from app_pages.style import page_header as _header
from app_pages.tips import tips_toggle
from builder.data import DatasetSource, list_datasets, load_dataset
from builder.data.sources import check_project, project_source, project_task
from builder.data.uploads import UploadFolder
from builder.errors import LayerLabError, RunStoreError
from builder.escape import safe_filename
from builder.graph.edit import graph_hash
from builder.interchange.errors import FOREIGN_MODEL_FILES, foreign_model_advice
from builder.runs.record import Run
from builder.training.lineage import child_options
from builder.training.run_status import is_final, is_live, live_label
from builder.training.threads import torch_threads as _job_threads

APP_NAME = "LayerLab"
MAX_MENU = 64
"""Above this many options a page asks for a number, not a menu (each option's label can be a question to the
probe's child, and every option is sent to the browser)."""


def page_header(title: str, subtitle: str) -> None:
    """The page's title and subtitle, then a pending project replacement to confirm (on every page)."""
    _header(title, subtitle)
    confirm_replace()
    stale_prompt()


# ----------------------------------------------------------------------------------------- sidebar
#: Files people drop on "Open project" that open elsewhere, and where: Streamlit refused them itself, with
#: "Error: files are not allowed." for an .onnx (no MIME type) and "text/csv files are not allowed." for a CSV.
_MODEL_FILE = "a model file. Open it with **Import** on the Build page (its layers go on the canvas, its weights are kept)."
ELSEWHERE = {
    "onnx": _MODEL_FILE,
    "pt2": _MODEL_FILE,
    "zip": "a .zip is an image set (the **Data** page, Image folder) or an ONNX model with its weights (**Import** "
           "on the Build page).",
    "csv": "a data file. Upload it on the **Data** page (CSV file, Text or Time series).",
    "txt": "a data file. Upload it on the **Data** page (Text).",
}


def sidebar() -> None:
    """Project name and new / open / save / undo, shown on every page."""

    st.logo("data:image/svg+xml;base64," + base64.b64encode(LOGO.encode()).decode(), size="large")
    with st.sidebar:
        proj = project()
        # keyed by the name it shows too: a widget keeps the value it holds under its key whatever value= says, so a
        # rename from elsewhere (a link to the network on the canvas, "keep mine as a copy") left the old name here
        key = f"ll_name_{st.session_state.ll_revision}_{hashlib.sha1(proj.name.encode()).hexdigest()[:8]}"
        st.text_input("Project name", value=proj.name, max_chars=200, key=key, on_change=_rename_project, args=(key,))
        c1, c2 = st.columns(2)
        c1.button("New", icon=":material/note_add:", width="stretch", help="Start an empty project", key="ll_new",
                  on_click=lambda: replace_project(new_project(), "New empty project"))
        c2.download_button("Save", data=project_json(), file_name=project_filename(), mime="application/json",
                           icon=":material/download:", width="stretch", help="Download the project file (.json)")
        up = st.file_uploader("Open project", type=["json", *ELSEWHERE, *(s[1:] for s in FOREIGN_MODEL_FILES)],
                              key=f"ll_open_{st.session_state.ll_upload_nonce}",
                              help="A LayerLab project file (.json). A model file: Build › Import; data: the Data page")
        if up is not None and (where := ELSEWHERE.get(up.name.rsplit(".", 1)[-1].lower())):
            st.error(f"{md(up.name)} is not a project file: {where}", icon=":material/info:")
        elif up is not None and (advice := foreign_model_advice(up.name)):  # a torch file: what to import instead
            st.error(f"{md(up.name)} is not a project file: {md(advice)}", icon=":material/info:")
        elif up is not None:
            try:
                opened = check_project(builder.load_project(up.getvalue()), uploads())  # no server paths
            except LayerLabError as e:
                st.error(f"Cannot open {md(up.name)}: {error_md(e)}")
            else:
                st.session_state.ll_upload_nonce += 1
                replace_project(opened, f"Opened {opened.name}")
                st.rerun()
        if can_undo_replace():
            st.button("Undo replace", icon=":material/undo:", key="ll_undo_replace", width="stretch",
                      on_click=undo_replace, help="Bring back the project that New, a template or opening replaced")
        live = live_runs()
        if live:
            st.page_link(nav.TRAIN, label=live_label(live),
                         help="Follow them on the Train and Runs pages", icon=":material/model_training:")
        st.caption("Runs of everyone are shown (shared mode)" if shared_runs() else
                   "Your projects and runs are kept for this browser")

        tips_toggle()
        sidebar_rule()


def _rename_project(key: str) -> None:
    name = str(st.session_state.get(key) or "").strip() or "untitled"
    st.session_state.ll_project = project().model_copy(update={"name": name})
    autosave()


def project_json() -> str:
    """The project file (with the chosen dataset) as JSON."""
    return project_with_data().to_json()


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
    try:  # the project's own choice, as the command line reads it (builder.data.sources.project_source)
        src = project_source(project())
    except LayerLabError:
        src = None
    known = {d["name"] for d in list_datasets()}
    if src is not None and src.upload is None and src.name in known:
        return {"kind": "builtin", "name": src.name, "options": dict(src.options)}
    named = (project().training or {}).get("dataset")  # an upload not at hand: the template's built-in
    return {"kind": "builtin", "name": named if named in known else "digits", "options": {}}


def spec_key(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def _for_project(spec: dict) -> dict:
    """``spec`` with the task the project's training settings ask for (a built-in's) and their seed, as the job
    loads it (:func:`builder.runs.pipeline.prepare`: the run's seed generates and splits its data). The Data page
    showed seed 0's moons and split beside a run that trained on seed 5's."""
    task = project_task(project().training)
    if task and spec.get("kind", "builtin") == "builtin" and "task" not in (spec.get("options") or {}):
        spec = {**spec, "options": {**(spec.get("options") or {}), **task}}
    seed = (project().training or {}).get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and seed > 0 and "seed" not in (spec.get("options") or {}):
        spec = {**spec, "options": {**(spec.get("options") or {}), "seed": seed}}  # 0: the loaders' own default
    return spec


def spec_loaded(spec: dict) -> bool:
    """Whether :func:`load_spec` has this spec's Dataset at hand (False: it reads and prepares it, which may take
    seconds)."""
    cached = st.session_state.get("ll_dataset")
    return cached is not None and cached[0] == spec_key(_for_project(spec))


def load_spec(spec: dict):
    """Load (or reuse) the Dataset for a spec, for the project on the canvas: a built-in with the task its training
    settings ask for (:func:`builder.data.sources.project_task`: the Autoencoder's reconstruction), as the job
    trains it. Raises DatasetError."""

    spec = _for_project(spec)
    key = spec_key(spec)
    cached = st.session_state.get("ll_dataset")
    if cached is not None and cached[0] == key:
        return cached[1]
    ds = open_spec(spec)
    st.session_state.ll_dataset = (key, ds)
    return ds


def uploads():
    """This owner's upload folder as the data stage resolves upload ids in it (:mod:`builder.data.uploads`)."""
    from builder.runs.owners import upload_dir  # lazy: heavy (sqlalchemy)

    return UploadFolder(upload_dir(workspace(), owner()))


def open_spec(spec: dict):
    """Load a dataset spec without touching session state (also used from training threads): a built-in, or one
    of this owner's uploads by its id; a path in the spec is refused (:func:`builder.data.sources.check_content`).
    Uploaded images are decoded in a sandboxed worker, never in the server
    (:func:`builder.interchange.worker.decode_images_isolated`): this process opens the decoded uint8 cache."""
    from builder.data.images import decode_elsewhere  # lazy: heavy (numpy, PIL)
    from builder.interchange.worker import decode_images_isolated  # lazy: heavy (onnx, sqlalchemy)
    from builder.process.launcher import counted_owner  # lazy: with the worker

    folder = uploads()
    who = counted_owner(actor())
    with decode_elsewhere(lambda *a: decode_images_isolated(*a, owner=who)):
        return load_dataset(DatasetSource.from_spec(spec, folder), uploads=folder)


def save_upload(name: str, data: bytes) -> str | None:
    """Keep an uploaded file in the owner's folder (content-addressed) so runs can be resumed later; returns its
    upload id (``upload:<sha256>.<suffix>``), what the page's spec, the project and the run record name. None,
    with the refusal shown, when it would take the owner past its storage quota (uploads count as runs do:
    :func:`builder.jobs.quotas.check_upload`)."""
    from builder.jobs.quotas import check_upload  # lazy: heavy (sqlalchemy)

    try:
        return uploads().save(name, data, admit=lambda n: check_upload(store(), owner(), n))
    except LayerLabError as e:
        show_error(e)
        return None


def check_storage() -> None:
    """QuotaError when this person's stored work already takes their storage quota
    (:func:`builder.jobs.quotas.check_storage`): asked before a worker writes into their runs (an import, whose
    weights become a run of theirs; a quantization, whose int8 file joins the run)."""
    from builder.jobs.quotas import check_storage as check  # lazy: heavy (sqlalchemy)

    check(store(), owner())


# ------------------------------------------------------------------------------------------ run store
def store():
    """The workspace's :class:`builder.runs.store.RunStore` (opened per call; SQLite connections are per call)."""
    from builder.runs.store import RunStore  # lazy: heavy (sqlalchemy)

    return RunStore(workspace(), actor=actor())


def visible_runs(rs=None, **kw) -> list[Run]:
    """The runs this session may read (:meth:`RunStore.list_runs` asks :mod:`builder.data.access`), newest first
    (listed records: no project; :func:`get_run` reads one in full)."""
    rs = rs or store()
    return rs.list_runs(**{"limit": 500, **kw})


def get_run(run_id: str, rs=None) -> Run:
    """A run this session may read, by exact id. Raises AccessDenied for another owner's run, as for an unknown
    one ("no run X of yours")."""
    return (rs or store()).get(run_id)


def live_runs() -> list[dict]:
    """This owner's queued, running or paused runs."""
    try:
        rs = store()
        return [r for r in rs.list_runs(owner=owner(), limit=50) if is_live(r["status"])]
    except LayerLabError:
        return []


def run_summary(rs, run: dict) -> dict:
    """Extra columns for a run (:func:`builder.runs.summary.run_overview`), cached per session once it ended."""
    from builder.runs.summary import run_overview  # lazy: heavy (sqlalchemy)

    cache = st.session_state.setdefault("ll_run_extra", {})
    key = (run["id"], run.get("status"), run.get("epochs_done"))
    if key in cache:
        return cache[key]
    out = run_overview(rs, run)
    if is_final(run.get("status")):
        if len(cache) > 500:
            cache.clear()
        cache[key] = out
    return out


def spec_public(spec: dict) -> str:
    """The Data page's dataset as shown: a built-in's name, an upload as everywhere (``csv: students.csv``)."""
    from builder.data.splits import upload_label  # lazy: heavy (numpy)

    if spec.get("kind", "builtin") == "builtin":
        return spec.get("name", "?")
    return upload_label(str(spec.get("kind")), str(spec.get("name") or "upload"))



# ------------------------------------------------------------------------------------------- training
def start_job(proj, ds, config: dict, live: bool = False, resume_run: str | None = None,
              tags: dict | None = None) -> str:
    """Start a training job for this owner (or resume one of its runs); returns the run id.

    The job is its own process (:func:`builder.jobs.queue.submit`): it outlives this page, the tab and the server.
    ``ds`` is the loaded dataset the page showed (its reload arguments go to the job).

    Raises:
        LayerLabError: bad settings, an unknown run, another owner's run, a run still live.
    """
    from builder.interpret.boundary import supports  # lazy: heavy (torch)
    from builder.jobs.queue import JobSpec, submit  # lazy: heavy (torch)

    rs = store()
    callbacks = ["live_attributions"] if live else []
    if resume_run or (ds is not None and supports(ds.info)):  # 2-D toy data: a live decision boundary
        callbacks.append("decision_boundary")
    if resume_run:
        run = get_run(resume_run, rs)
        if not can_control(run):
            raise RunStoreError(f"run {run['id']} belongs to someone else; it is shown read-only")
        spec = JobSpec(project={}, dataset="", owner=owner(), resume_run=run["id"], callbacks=callbacks)
    else:
        name, opts = ds.info.reload_args()
        # with the Data page's spec: it names an upload by its file (people.csv), the job's options by its id only
        proj = with_data(proj)
        opts = child_options(proj.training, config, opts)  # a distilled or fine-tuned run: its parent's split
        spec = JobSpec(project=proj.model_dump(mode="json"), dataset=name, dataset_options=opts,
                       config=dict(config), owner=owner(),  # None is a setting too (early stopping off)
                       name=proj.name, callbacks=callbacks, tags=dict(tags or {}))
    run_id = submit(rs, spec)
    st.session_state.ll_run = run_id
    if not resume_run:  # the canvas it was started from (its graph may differ: LoRA adds adapters, see the Train page)
        st.session_state.ll_run_graph = graph_hash(graph())
    return run_id


def control_job(run_id: str, action: str) -> None:
    """Pause, resume or stop one of this owner's jobs (through the store). Raises RunStoreError."""
    from builder.jobs.queue import request  # lazy: heavy (torch)

    rs = store()
    run = get_run(run_id, rs)
    if not can_control(run):
        raise RunStoreError(f"run {run['id']} belongs to someone else; it is shown read-only")
    request(rs, run["id"], action)  # type: ignore[arg-type]


def torch_threads() -> int:
    """Torch threads a training job uses (:func:`builder.training.threads.torch_threads`)."""

    return _job_threads()


def run_from_url(page: str, ids: list[str], missing: str = "No run {run} of yours in this workspace.") -> str | None:
    """The run a deep link asks for (``/runs?run=ID``, ``/explain?run=ID``) among ``ids``, the runs this page can
    show to this owner (a unique prefix of an id is enough). Answered once per session, page and link: later
    reruns return None, so the user's own choice is not overridden. When no run or several match, the
    ``missing`` message is shown (once) with the link's text escaped."""
    asked = st.query_params.get("run")
    seen = f"ll_url_run_{page}"
    if not isinstance(asked, str) or not asked or st.session_state.get(seen) == asked:
        return None
    st.session_state[seen] = asked
    if asked in ids:
        return asked
    match = [i for i in ids if i.startswith(asked)]
    if len(match) == 1:
        return match[0]
    st.error(missing.format(run=md(asked[:80])))
    return None


_WARM: list = []  # process-wide: the warm-up thread, started once


def warm_up(delay_s: float = 1.5) -> None:
    """Once per process, import what the other pages need (torch, scikit-learn loaders, Captum, plotly
    figures, the jobs module) in a background thread that starts ``delay_s`` after the first page ran, and
    start the workspace's job launcher (:func:`builder.jobs.queue.warm_launcher`) and the sandbox's zygote
    (:func:`builder.interchange.worker.warm_sandbox`): off the request path, so
    Data/Train/Explain open fast and the first training job starts warm, without slowing the first visit."""

    if _WARM:
        return

    def work() -> None:
        time.sleep(delay_s)
        try:
            from streamlit import runtime  # lazy: warm-up (imported in the background)

            if runtime.exists():  # a real server (not AppTest): the first Start then forks a warm job process
                from builder.interchange.worker import warm_sandbox  # lazy: warm-up (the sandbox's zygote)
                from builder.jobs.warm import warm_launcher  # lazy: heavy (torch)

                warm_launcher(workspace())
                warm_sandbox()  # the first export, import or Explain question forks instead of starting cold
            from builder import data as _data  # noqa: F401  # lazy: warm-up (imported in the background)
            from builder.interpret import attributions as _explain  # noqa: F401  (Captum)  # lazy: heavy (torch)
            from builder.interpret import figures as _figures  # noqa: F401  (plotly figures)  # lazy: heavy (plotly)
            from builder.jobs import queue as _jobs  # noqa: F401  # lazy: heavy (torch)
        except Exception:  # warming up is an optimisation only
            pass

    t = threading.Thread(target=work, name="layerlab-warmup", daemon=True)
    _WARM.append(t)
    t.start()


def device_options() -> list[tuple[str, str]]:
    """(value, label) pairs for the device picker (:func:`builder.runs.summary.device_options`)."""
    from builder.runs.summary import device_options as opts  # lazy: heavy (sqlalchemy)

    return opts()


__all__ = ["init_state", "sidebar", "style", "analyse", "annotations", "set_project", "set_graph", "project",
           "graph", "show_error", "store", "run_summary", "start_job", "control_job", "dataset_spec", "load_spec",
           "spec_loaded",
           "open_spec", "uploads", "save_upload", "visible_runs", "get_run", "live_runs", "owner", "owner_label",
           "replace_project", "autosave", "autosave_after_page", "md", "md_value", "error_md",
           "page_header", "fmt_duration", "fmt_metric", "metric_text", "fmt_setting", "human_count", "human_bytes", "zip_dir_bytes",
           "with_edge_ids", "new_project", "flash", "show_flash", "graph_key", "make_block", "palette_with_blocks",
           "keep_in_history", "confirm_replace", "stale_prompt", "entered_page", "can_control", "can_see", "shared_runs",
           "fresh_roles",
           "run_from_url", "warm_up", "rebase_stale"]
