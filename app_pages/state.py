"""Per-session state of the app: the owner, the project on the canvas (autosaved per owner, replaced only
after a confirmation and undoable), its analysis, and the palette.

Everything user-specific lives in ``st.session_state`` (keys prefixed ``ll_``) or in the owner's folder of
the workspace (:mod:`builder.runs.owners`); nothing here keeps user data in module globals.

Session-state keys other pages may read:

* ``ll_owner``: who owns this session's work (``anon:<id>`` from a browser cookie, or ``user:<email>``).
* ``ll_project``: the :class:`builder.Project` being edited (graph, training, dataset, blocks).
* ``ll_revision``: bumped whenever Python replaces the canvas graph.
* ``ll_selected``: id of the node selected on the canvas (or None).
* ``ll_data``: the chosen dataset spec; ``ll_dataset``: the loaded dataset for it (cached per spec).
* ``ll_run``: id of the run this session started last (the Train page follows the canvas's run).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import streamlit as st

import builder
from app_pages.identity import chosen_id
from app_pages.style import md
from builder.data.access import CONTROL, READ, may
from builder.data.sources import own_spec
from builder.data.uploads import UploadFolder
from builder.errors import LayerLabError, StaleProjectError, TrainingError
from builder.escape import hide_paths
from builder.graph.cost import canvas_annotations
from builder.graph.edit import block_of, graph_hash, rebase, with_edge_ids
from builder.graph.layout import row_layout
from builder.graph.project import Graph, Project
from builder.graph.templates import TEMPLATE_NAMES, load_template
from builder.runs import owners
from builder.training.finetune import finetune_freeze, lora_added

ENV_SHARED = owners.ENV_SHARED


# ----------------------------------------------------------------------------------------- workspace
def workspace() -> Path:
    """The folder for runs and uploads: ``$LAYERLAB_WORKSPACE`` or ``~/.layerlab`` (as the CLI); an older
    workspace's owner folders are moved to keyed names the first time this process opens it."""
    from builder.admin.owner_migration import migrate_once  # lazy: heavy (sqlalchemy)
    from builder.runs.store import default_workspace  # lazy: heavy (sqlalchemy)

    root = default_workspace()
    root.mkdir(parents=True, exist_ok=True)
    migrate_once(root)
    return root



# -------------------------------------------------------------------------------------------- state
def new_project(name: str = "untitled") -> Project:
    return Project(name=name)


# -------------------------------------------------------------------------------------------- owner
def _signed_in_user() -> str | None:
    """The signed-in user's verified e-mail or issuer-qualified subject (:func:`builder.runs.owners.signed_in_name`)
    when Streamlit authentication is configured and used."""
    try:
        if st.user.is_logged_in:
            return owners.signed_in_name(st.user.to_dict())
    except Exception:  # authentication not configured
        return None
    return None


def _cookie_id() -> str | None:
    try:
        cookies = st.context.cookies or {}
    except Exception:  # no browser context (AppTest, bare mode)
        return None
    return chosen_id(cookies)  # the id the server's middleware chose and set (its __Host- cookie over HTTPS)


def owner() -> str:
    """Who owns this session's work: the signed-in user, else the browser's anonymous id (the cookie the server
    sets, :mod:`app_pages.identity`: a reload or another tab of the same browser is the same person), else (no
    cookie came: a browser that refuses cookies, ``AppTest``) an id for this session alone."""
    ss = st.session_state
    user = _signed_in_user()
    if user:
        ss.ll_owner = owners.user_owner(user)
        return ss.ll_owner
    cookie = _cookie_id()
    if cookie:
        ss.ll_owner = owners.anonymous_owner(cookie)
    elif "ll_owner" not in ss:
        ss.ll_owner = owners.anonymous_owner(owners.new_anonymous_id())
    return ss.ll_owner


def owner_label(who: str) -> str:
    """How a page names an owner: ``you`` for this session's, else the name it chose with its pseudonym, or the
    pseudonym (:func:`builder.runs.owners.label`); never anything of the owner id (an anonymous id is a key)."""
    return "you" if who == owner() else owners.label(workspace(), who)


def shared_runs() -> bool:
    """``LAYERLAB_SHARED_RUNS=1``: everyone sees every run, read-only for runs of others."""
    return owners.shared_runs()


def fresh_roles() -> None:
    """Forget this session's cached actor: called at the top of every full run (``app.py``), so the page shown after
    a class is created, joined or deleted, here or in another session, judges with the roles of now. A time alone
    (the cache's 1 s) let the run right after a teacher created a class, when it came within that second, refuse
    them their own student's runs."""
    st.session_state.pop("ll_actor", None)


def actor():
    """This session's :class:`builder.data.access.Actor`: its owner with its roles on this server (admin, teacher of
    which students, shared mode), resolved once per page run (:func:`fresh_roles`) and at most 1 s old in a
    fragment's reruns (:func:`builder.runs.classes.actor_for`)."""

    from builder.runs.classes import actor_for  # lazy: heavy (sqlalchemy)

    me, now = owner(), time.monotonic()
    cached = st.session_state.get("ll_actor")
    if cached is None or cached[0] != me or now - cached[1] > 1.0:  # roles change when a class does
        cached = st.session_state["ll_actor"] = (me, now, actor_for(workspace(), me))
    return cached[2]


def can_see(run: dict) -> bool:
    """Whether this session may read a run (:func:`builder.data.access.may` ``read``)."""
    return may(actor(), READ, run)


def can_control(run: dict) -> bool:
    """Whether this session may pause, resume, stop or delete a run (:func:`builder.data.access.may` ``control``)."""
    return may(actor(), CONTROL, run)


# -------------------------------------------------------------------------------------------- state
def init_state() -> None:
    """Create this session's state on first use: the owner's autosaved project, else the CNN template."""
    ss = st.session_state
    who = owner()
    if "ll_project" not in ss:
        ss.ll_saved_rev = owners.project_revision(workspace(), who)  # read first: a later save is then seen
        proj = owners.load_autosave(workspace(), who)
        restored = proj is not None
        if proj is None:
            proj = builder.load_template("cnn")
        g = proj.graph
        if g.nodes and (not restored or any(n.position is None for n in g.nodes)):
            g = row_layout(g)  # the starting template wrapped into rows, as when picked from the list
        ss.ll_project = proj.model_copy(update={"graph": with_edge_ids(g)})
        ss.ll_revision = 1
        ss.ll_selected = None
        ss.ll_saved_sig = _sig(ss.ll_project) if restored else None
        data = _own_data(proj) if restored else None
        ss.setdefault("ll_data", data)
    ss.setdefault("ll_data", None)
    ss.setdefault("ll_dataset", None)
    ss.setdefault("ll_run", None)
    ss.setdefault("ll_flash", [])
    ss.setdefault("ll_ann", None)
    ss.setdefault("ll_upload_nonce", 0)


def _sig(proj: Project) -> str:
    return hashlib.sha1(proj.to_json(indent=None).encode()).hexdigest()


def with_data(p: Project) -> Project:
    """``p`` with the Data page's chosen dataset recorded in ``dataset`` (as it is without a choice)."""
    spec = st.session_state.get("ll_data")
    if spec:
        p = p.model_copy(update={"dataset": {k: v for k, v in spec.items()
                                             if k in ("kind", "name", "options", "file", "target", "task", "size")}})
    return p


def project_with_data() -> Project:
    """The project as saved: with the chosen dataset recorded in ``dataset``."""
    return with_data(project())


def autosave() -> None:
    """Write the project to the owner's folder when it changed since the last save (cheap otherwise)."""
    ss = st.session_state
    if "ll_project" not in ss:
        return
    proj = project_with_data()
    sig = _sig(proj)
    if sig != ss.get("ll_saved_sig") and not ss.get("ll_stale"):  # stale: waiting for the person's choice
        try:
            ss.ll_saved_rev = owners.save_project(workspace(), owner(), proj, base=ss.get("ll_saved_rev"))
            ss.ll_saved_sig = sig
        except StaleProjectError:
            # another tab of this person saved since this one read the project: this tab's version is kept in the
            # history (never lost without a trace) and the person chooses (stale_prompt)
            if keep_in_history(proj):
                ss.ll_stale = True
                ss.ll_full_rerun = True  # the question is above the canvas: a canvas edit (a fragment) reruns the page
        except (LayerLabError, OSError) as e:  # a full disk: one line; the next change tries again
            flash(f"Could not autosave the project: {getattr(e, 'strerror', None) or e}")


def autosave_after_page() -> None:
    """:func:`autosave` at the end of a page's run; when that save is the one refused (another tab saved since this
    one read the project), the page once more, so that its header asks which version to go on with: a dataset picked
    on the Data page of a stale tab was not saved and nobody said so until the next click."""
    was = st.session_state.get("ll_stale")
    autosave()
    if st.session_state.get("ll_stale") and not was:
        st.rerun()


def _load_theirs() -> None:
    """Stale tab › load the version the other tab saved (this tab's is in the history: Undo replace)."""
    ss = st.session_state
    ss.ll_saved_rev = owners.project_revision(workspace(), owner())
    theirs = owners.load_autosave(workspace(), owner())
    ss.ll_stale = False
    if theirs is not None:
        set_project(theirs, flash=f"Loaded {theirs.name} as the other tab saved it; this tab's version is in the "
                                  "history (Undo replace in the sidebar brings it back)")
        ss.ll_data = _own_data(theirs)
        ss.ll_saved_sig = _sig(project_with_data())


def _keep_mine() -> None:
    """Stale tab › keep this tab's version, as a copy: the other tab's is kept in the history first."""
    ss = st.session_state
    theirs = owners.load_autosave(workspace(), owner())
    if theirs is not None and not keep_in_history(theirs):
        return
    ss.ll_saved_rev = owners.project_revision(workspace(), owner())
    ss.ll_stale = False
    name = project().name or "untitled"
    ss.ll_project = project().model_copy(update={"name": name if name.endswith("(copy)") else f"{name} (copy)"})
    flash("Kept this tab's version as a copy; the other tab's version is in the history (Undo replace brings it "
          "back)")
    autosave()


def stale_prompt() -> None:
    """When another tab of this person saved the project after this one read it: say so and let the person
    choose (load theirs, or keep mine as a copy); both versions stay in the history."""
    if not st.session_state.get("ll_stale"):
        return
    with st.container(border=True, key="ll_stale_box"):
        st.warning("**This project changed in another tab or window** after this one opened it. This tab's "
                   "version is not saved over it; both are kept (the sidebar's Undo replace brings back the other "
                   "one). Which one do you want to go on with?", icon=":material/tab_duplicate:")
        c1, c2, _ = st.columns([1.3, 1.3, 3])
        c1.button("Load the other tab's version", type="primary", key="ll_stale_theirs", on_click=_load_theirs)
        c2.button("Keep mine as a copy", key="ll_stale_mine", on_click=_keep_mine)


def replace_project(proj: Project, flash_msg: str, *, relayout: bool = False, data: dict | None = None,
                    goto: str | None = None) -> None:
    """Replace the canvas project: at once when nothing of the person's would be lost (an empty canvas, the same
    project again, a template as shipped: the first visit's starting network), else after a confirmation
    (:func:`confirm_replace`). The replaced project is kept so the replacement can be undone."""
    ss = st.session_state
    pending = {"project": proj, "flash": flash_msg, "relayout": relayout, "data": data, "goto": goto,
               "seq": ss.get("ll_pending_seq", 0) + 1}
    if not graph().nodes or _same_project(project(), proj) or _as_shipped(project()):  # nothing would be lost
        _apply_replace(pending)
    else:
        ss.ll_pending = pending
        ss.ll_pending_seq = pending["seq"]
        ss.ll_full_rerun = True


def _same_project(a: Project, b: Project) -> bool:
    """Whether ``b`` is ``a`` again: the same name, training settings and network (:func:`_project_key`), as when
    the template on the canvas is picked once more (it asked "Replace Small CNN with Small CNN?")."""
    return _project_key(a) == _project_key(b)


@functools.lru_cache(maxsize=1)
def _shipped() -> frozenset:
    """The templates as shipped, each as its name, training settings and network (:func:`_project_key`)."""
    return frozenset(_project_key(load_template(name)) for name in TEMPLATE_NAMES)


def _project_key(p: Project) -> tuple[str, str, str]:
    """A project's name, training settings and network (:func:`builder.graph.edit.graph_hash`, which the canvas's
    spelling of ports and defaults does not change: a click on a layer made the untouched template "changed")."""
    return p.name, json.dumps(p.training or {}, sort_keys=True, default=str), graph_hash(p.graph)


def _as_shipped(proj: Project) -> bool:
    """Whether ``proj`` is a template as shipped, positions aside (the first visit's starting network, a template
    picked and left as it was): replacing it loses nothing of the person's, so nothing is asked (a first visitor
    was asked whether to replace a network they never made)."""
    return _project_key(proj) in _shipped()


def keep_in_history(proj: Project) -> bool:
    """Keep ``proj`` in the owner's replace history (Undo replace brings it back) before the canvas changes;
    False, with the reason flashed, when it cannot be kept (a full disk): the caller then leaves the canvas as it
    is, so no edit is lost without a trace."""
    try:
        owners.push_history(workspace(), owner(), proj)
    except (LayerLabError, OSError) as e:
        flash(f"The canvas was left as it is: {e}")
        return False
    return True


def _apply_replace(pending: dict) -> None:
    ss = st.session_state
    ss.pop("ll_pending", None)
    if not keep_in_history(project_with_data()):
        return
    set_project(pending["project"], flash=pending["flash"], relayout=pending["relayout"])
    if pending.get("data") is not None:
        ss.ll_data = pending["data"]
    if pending.get("goto"):
        ss.ll_goto = pending["goto"]
    autosave()


# Brings the confirmation into view once: it is asked at the top of the page, and a button far down the page (Data's
# "Load the ... template") asked for it out of sight, so the click seemed to do nothing. SEQ makes each
# confirmation's script new, so the browser runs it once per question, not on every rerun. The page may still
# change above it for a moment after the first scroll (a fresh clone's browser test once found the question's top
# 35 px under the header): for 1.5 s, a question not wholly below the header is brought back (its scroll margin).
_SHOW_CONFIRM_JS = """<script>
(() => {
  const box = document.querySelector(".st-key-ll_confirm_box");
  if (!box || box.dataset.llShown === "SEQ") return;
  box.dataset.llShown = "SEQ";
  box.scrollIntoView({block: "nearest"});
  const margin = parseFloat(getComputedStyle(box).scrollMarginTop) || 0, until = performance.now() + 1500;
  const keep = () => {
    const top = box.getBoundingClientRect().top;
    if (top < margin - 12 || top > innerHeight - 40) box.scrollIntoView({block: "start"});
    if (performance.now() < until) requestAnimationFrame(keep);
  };
  requestAnimationFrame(keep);
})();
</script>"""


def confirm_replace() -> None:
    """The confirmation of a pending replacement, at the top of the page (Replace / Cancel), scrolled into view
    when it is asked. It belongs to the page where it was asked: :func:`entered_page` drops it (as a Cancel) when
    the person goes to another page without answering."""
    pending = st.session_state.get("ll_pending")
    if not pending:
        return
    with st.container(border=True, key="ll_confirm_box"):
        st.html(_SHOW_CONFIRM_JS.replace("SEQ", str(pending.get("seq", 0))), unsafe_allow_javascript=True)
        st.warning(f"Replace **{md(project().name or 'untitled')}** on the canvas with "
                   f"**{md(pending['project'].name or 'untitled')}**? You can undo this from the sidebar.",
                   icon=":material/swap_horiz:")
        c1, c2, _ = st.columns([1, 1, 4])
        c1.button("Replace", type="primary", key="ll_confirm_replace", on_click=_apply_replace, args=(pending,))
        c2.button("Cancel", key="ll_cancel_replace", on_click=lambda: st.session_state.pop("ll_pending", None))


def can_undo_replace() -> bool:
    """Whether a replaced project can be brought back."""
    return bool(owners.history(workspace(), owner()))


def undo_replace() -> None:
    """Bring back the project replaced last (the current one is dropped, as an undo does)."""
    proj = owners.pop_history(workspace(), owner())
    if proj is None:
        flash("Nothing to undo")
        return
    set_project(proj, flash=f"Restored {proj.name}")
    st.session_state.ll_data = _own_data(proj)
    autosave()


def _own_data(proj: Project) -> dict | None:
    """The dataset choice of this owner's own saved project (autosave, undo history): an upload saved by its path
    before upload ids becomes its id (:func:`builder.data.sources.own_spec`); None when it names none."""

    data = proj.dataset or {}
    if not data.get("kind"):
        return None
    return own_spec(dict(data), UploadFolder(owners.upload_dir(workspace(), owner())))


def project() -> Project:
    return st.session_state.ll_project


def graph() -> Graph:
    return st.session_state.ll_project.graph


def set_project(proj: Project, flash: str | None = None, relayout: bool = False) -> None:
    """Replace the whole project (template, file) and make the canvas reload it."""
    g = proj.graph
    if g.nodes and (relayout or any(n.position is None for n in g.nodes)):
        g = row_layout(g)
    st.session_state.ll_project = proj.model_copy(update={"graph": with_edge_ids(g)})
    st.session_state.ll_revision += 1
    # another project: the canvas fits its view to it, whatever node ids the two share (builder.canvas's project)
    st.session_state.ll_project_seq = st.session_state.get("ll_project_seq", 0) + 1
    st.session_state.ll_rev_bases = {}  # a replaced project: the browser's edits of the old one are not carried over
    st.session_state.ll_selected = None
    st.session_state.ll_full_rerun = True
    if flash:
        st.session_state.ll_flash.append(flash)


REV_BASES = 3  # revisions whose last graph is kept, to apply a browser's edit made on one of them (rebase_stale)


def set_graph(g: Graph, bump: bool = True) -> None:
    """Replace the graph (autosaved); ``bump`` makes the canvas show it (Python-side changes). The graph the
    revision ends with is kept, so an edit the browser made on it meanwhile is applied, not dropped
    (:func:`rebase_stale`)."""
    ss = st.session_state
    if bump:
        bases = ss.get("ll_rev_bases") or {}
        bases[ss.ll_revision] = graph()
        ss.ll_rev_bases = {r: bases[r] for r in sorted(bases)[-REV_BASES:]}
    ss.ll_project = project().model_copy(update={"graph": with_edge_ids(g)})
    if bump:
        ss.ll_revision += 1
    autosave()


def rebase_stale(local: Graph, revision: int) -> bool:
    """The browser sent ``local``, drawn on ``revision``, after Python changed the graph (an inspector edit while
    the person was still drawing): its edits are applied on top of Python's graph (:func:`builder.graph.edit.rebase`)
    and the canvas is sent the result. When that revision's graph is no longer kept (another project replaced the
    canvas's meanwhile: a template, a file, a link), the edit cannot be applied to what is there now: ``local`` is
    kept in the history with a message (Undo replace brings it back), never dropped without a trace; False."""
    base = (st.session_state.get("ll_rev_bases") or {}).get(revision)
    if base is None:
        late = project().model_copy(update={"graph": with_edge_ids(local),
                                            "name": f"{project().name or 'untitled'} (late canvas edit)"})
        if local.nodes and keep_in_history(late):
            flash("A canvas edit arrived after the canvas had changed under it, so it was not applied; the network "
                  "it was made on, with that edit, is in the history (Undo replace in the sidebar brings it back)")
        return False
    merged = rebase(base, local, graph())
    if merged != graph():
        set_graph(merged, bump=True)
    return True


# the error lines a page keeps in the session for its next run (a callback's failure), dropped when one leaves it
PAGE_ERRORS = ("ll_canvas_error", "ll_class_error", "ll_server_error", "ll_mlflow_error", "ll_runs_error")


def entered_page(path: str) -> None:
    """A new page is shown: messages left by the page the person left (an import's error on Build) and a project
    replacement it asked about and the person did not answer (:func:`confirm_replace`; leaving is a Cancel: the
    question showed up again on every later page) are dropped."""
    ss = st.session_state
    if ss.get("ll_page") != path:
        if ss.get("ll_page") is not None:
            ss.pop("ll_pending", None)
        ss.ll_page = path
        for key in PAGE_ERRORS:  # each shown by its page until its next success: a join code's error on Classes
            ss[key] = None       # was still there after a visit to Build


def flash(msg: str) -> None:
    st.session_state.ll_flash.append(msg)


def toast_duration(msg: str) -> str:
    """How long a message's toast stays: 4 s for a line, 10 s for a few; a longer one (an import's notes: which
    BatchNorms were folded, which outputs were kept) until the person closes it. A 600-character import note was
    gone after 4 s, behind 'view more'.

    >>> toast_duration("Deleted the run a"), toast_duration("x" * 120), toast_duration("x" * 600)
    ('short', 'long', 'infinite')
    """
    return "short" if len(msg) <= 80 else "long" if len(msg) <= 200 else "infinite"


def show_flash() -> None:
    """Show queued messages as toasts, each for as long as it takes to read (:func:`toast_duration`)."""
    for msg in st.session_state.get("ll_flash", []):
        # an error's text in a toast names no server folder either
        st.toast(md(hide_paths(msg)), duration=toast_duration(msg))
    st.session_state.ll_flash = []



# ----------------------------------------------------------------------------------------- analysis
def graph_key(g: Graph) -> str:
    return hashlib.sha1(g.model_dump_json(exclude={"nodes": {"__all__": {"position"}}}).encode()).hexdigest()


def _run_overlays(g: Graph) -> tuple[dict, dict[str, float]]:
    """For the run the Train page shows for this graph (the owner's live run, else the newest): the training
    doctor's verdict per node and the measured seconds per node; ``({}, {})`` without one (the doctor, and so
    torch, is then not even imported). The run is looked up once per analysis."""
    from builder.runs.store import RunStore  # lazy: heavy (sqlalchemy)
    from builder.runs.summary import current_run  # lazy: heavy (sqlalchemy)

    try:
        store = RunStore(workspace(), actor=actor())
        run = current_run(store, g, owner())
        if run is None:
            return {}, {}
        from builder.interpret.doctor import run_findings  # lazy: heavy (torch)

        return run_findings(store, run["id"])["health"], store.folder(run["id"]).read_latency() or {}
    except LayerLabError:
        return {}, {}


def analyse(g: Graph | None = None) -> tuple[Any, dict]:
    """(ShapeReport, canvas annotations) for a graph; cached per session on the graph's content, the health of
    its current run (the canvas tint follows a run while it trains) and that run's measured latency per node."""
    g = g if g is not None else graph()
    health, latency = _run_overlays(g)
    training = project().training or {}
    mode, freeze = training.get("finetune") or "full", [n for n in training.get("freeze") or [] if isinstance(n, str)]
    key = (graph_key(g), json.dumps(health, sort_keys=True, default=str), json.dumps(latency, sort_keys=True),
           str(mode), tuple(freeze))
    cached = st.session_state.get("ll_ann")
    if cached and cached[0] == key:
        return cached[1], cached[2]
    report = builder.infer_shapes(g)
    ann = canvas_annotations(g, report, health=health or None, latency=latency or None,
                             freeze=_frozen(g, report, str(mode), freeze))
    if mode == "lora" and ann["summary"].get("trainable"):  # adapters a run adds where the canvas has none
        ann["summary"]["trainable"]["added"] = lora_added(g) if report.ok else 0
    st.session_state.ll_ann = (key, report, ann)
    return report, ann


def _frozen(g: Graph, report: Any, mode: str, freeze: list[str]) -> list[str]:
    """The nodes a run of this project freezes: the Train page's freeze list and its fine-tuning mode's."""

    try:
        return sorted(set(freeze) | set(finetune_freeze(g, mode, report=report)))
    except TrainingError:  # an unknown mode in a hand-edited project: the Train page says so
        return freeze


# ---------------------------------------------------------------------------------------- palette
def palette_with_blocks() -> list[dict]:
    """The layer palette, the model library's models (category ``Pretrained``) and this project's blocks (category
    ``Blocks``)."""
    pal = list(_palette()) + _library_palette()
    for b in project().blocks:
        pal.append({"type": str(b.get("name", "block")), "category": "Blocks",
                    "description": f"Block of {len(b.get('nodes', []))} layers",
                    "inputs": [], "outputs": [], "variadic": False, "params": [], "inferred": [],
                    "block": {"nodes": b.get("nodes", []), "edges": b.get("edges", [])}})
    return pal


def _library_palette() -> list[dict]:
    """The model library's entries for the palette, with the training memory on the device this project trains on;
    kept per session until the library folder or the device changes."""
    from builder.interchange.hf_library import library_folder, library_palette  # lazy: heavy (sqlalchemy)

    root = library_folder(workspace())
    if root is None:
        return []
    device = str((project().training or {}).get("device") or "auto")
    try:
        key = (str(root), root.stat().st_mtime_ns, device)  # a model added or removed changes the folder's mtime
    except OSError:
        return []
    cached = st.session_state.get("ll_library_palette")
    if not cached or cached[0] != key:
        cached = (key, library_palette(workspace(), device=device))
        st.session_state.ll_library_palette = cached
    return cached[1]


def _palette() -> list[dict]:
    ss = st.session_state
    if "ll_palette" not in ss:  # static data, but kept per session so nothing lives in globals
        ss.ll_palette = builder.palette()
    return ss.ll_palette


def make_block(g: Graph, node_ids: list[str], name: str) -> dict:
    """A reusable block from some nodes of a graph (internal edges kept; :func:`builder.graph.edit.block_of`)."""
    return block_of(g, node_ids, name)



__all__ = ["owner", "keep_in_history", "shared_runs", "actor", "can_see", "can_control", "init_state", "autosave",
           "rebase_stale", "autosave_after_page",
           "replace_project", "confirm_replace", "undo_replace", "can_undo_replace", "project", "graph",
           "set_project", "set_graph", "with_edge_ids", "new_project", "project_with_data", "with_data", "flash",
           "show_flash", "analyse", "annotations", "graph_key", "palette_with_blocks", "make_block", "workspace"]
