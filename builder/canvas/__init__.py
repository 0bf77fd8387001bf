"""LayerLab graph canvas: a React Flow editor hosted as a Streamlit components v2 component.

This module is the only place in ``builder`` that imports Streamlit. The browser
bundle lives in ``builder/canvas/assets`` (built from ``frontend/`` with
``npm --prefix frontend ci && npm --prefix frontend run build``) and is declared
in ``builder/canvas/pyproject.toml`` as component ``layerlab.graph_canvas``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import streamlit as st

__all__ = ["graph_canvas", "latest_canvas_state", "take_events", "COMPONENT_NAME"]

_PROJECT = "layerlab"
_COMPONENT = "graph_canvas"
COMPONENT_NAME = f"{_PROJECT}.{_COMPONENT}"
_PACKAGE_DIR = Path(__file__).resolve().parent
_ASSET_DIR = "assets"
_JS_GLOB = "canvas-*.js"
_CSS_GLOB = "canvas-*.css"

MAX_EVENTS = 16  # one-shot actions taken from one payload at most (a browser sends the few not acknowledged)

# One mount callable per component manager (i.e. per Streamlit runtime).
_mounters: dict[int, Any] = {}


def _ensure_asset_dir_known(manager: Any) -> None:
    """Make sure Streamlit knows this component's ``asset_dir``.

    Streamlit finds ``asset_dir`` by scanning installed distributions for a
    ``pyproject.toml`` with ``[[tool.streamlit.component.components]]``. That
    works for a regular ``pip install``, but an editable install (``pip install
    -e .``) of the ``layerlab`` distribution exposes the ``builder`` package
    through an import hook whose file list does not contain the manifest, so
    the scan misses it. In that case register the same manifest ourselves.
    """
    if manager.get_component_asset_root(COMPONENT_NAME) is not None:
        return
    from streamlit.components.v2.manifest_scanner import (  # lazy: heavy (streamlit)
        ComponentConfig,
        ComponentManifest,
    )

    manifest = ComponentManifest(
        name=_PROJECT,
        version="0",
        components=[ComponentConfig(name=_COMPONENT, asset_dir=_ASSET_DIR)],
    )
    manager.register_from_manifest(manifest, _PACKAGE_DIR)


def _asset(pattern: str) -> Path:
    matches = sorted((_PACKAGE_DIR / _ASSET_DIR).glob(pattern))
    if len(matches) != 1:
        raise RuntimeError(
            f"builder/canvas/{_ASSET_DIR} must hold exactly one {pattern} (found {len(matches)}); "
            "rebuild with: npm --prefix frontend ci && npm --prefix frontend run build"
        )
    return matches[0]


def _mounter() -> Any:
    from streamlit.components.v2.get_bidi_component_manager import (
        get_bidi_component_manager,  # lazy: heavy (streamlit)
    )

    manager = get_bidi_component_manager()
    mount = _mounters.get(id(manager))
    if mount is None:
        try:
            _ensure_asset_dir_known(manager)
            mount = st.components.v2.component(COMPONENT_NAME, js=_JS_GLOB, css=_CSS_GLOB)
        except Exception:  # Streamlit internals moved: fall back to inline assets (~400 KB per rerun)
            mount = st.components.v2.component(
                COMPONENT_NAME,
                js=_asset(_JS_GLOB).read_text(encoding="utf-8"),
                css=_asset(_CSS_GLOB).read_text(encoding="utf-8"),
            )
        _mounters.clear()
        _mounters[id(manager)] = mount
    return mount


def _noop() -> None:
    return None


def _json(value: Any) -> str:
    """Compact JSON the browser's ``JSON.parse`` accepts (NaN and infinities become null)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:
        return _json(_finite(value))


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def graph_canvas(
    *,
    graph: dict,
    palette: list[dict],
    annotations: dict,
    revision: int,
    selected: str | None = None,
    height: int = 640,
    key: str = "canvas",
    fill: bool = True,
    covers: tuple[str, ...] = (),
    project: int = 0,
    can_undo_replace: bool = False,
) -> dict | None:
    """Render the drag-and-drop network canvas and return what the user did.

    Parameters
    ----------
    graph:
        ``{"nodes": [{"id", "type", "label", "params", "position": {"x", "y"}}],
        "edges": [{"id", "source", "target", "source_port", "target_port"}]}``.
        Used by the browser only on first mount and whenever ``revision``
        increases; otherwise the browser keeps its live graph and a rerun never
        overwrites edits in progress. Nodes without a position are laid out.
    palette:
        Layer entries ``{"type", "category", "description", "inputs": [{"name",
        "kind"}], "outputs": [...], "variadic", "params": [{"name", "kind",
        "default", "min", "max", "choices", "help"}]}``; entries with
        ``"category": "Blocks"`` carry a ``"block": {"nodes", "edges"}``
        subgraph that is inserted (with fresh ids) when dropped.
    annotations:
        ``{"nodes": {id: {"shape", "params", "macs", "errors", "out_kind", "health",
        "cost": {mode: [text, share]}}}, "edges": {edge_id: {"shape"}},
        "summary": {"total_params", "memory", "macs", "cost_modes",
        "problems": [{"node", "edge", "message"}]}}`` (built by
        :func:`builder.graph.cost.canvas_annotations`); shown in the same rerun.
        ``cost_modes`` are the cost overlay's choices in the toolbar (the overlay
        itself is a browser-side view setting: no rerun).
    revision:
        Bump it to make the browser replace its graph with ``graph`` (loading a
        file, a template, an inspector edit, undo from Python). The browser does
        not send the replaced graph back (no extra rerun). The replacement is
        undoable in the browser within a project: Ctrl+Z brings back its previous
        graph and sends it with the new revision. When old and new graphs share node ids (and
        ``project`` is unchanged) the view is kept; otherwise it is fitted to
        the new graph.
    selected:
        Node id to select from Python (applied when this value changes).
    height:
        Height of the whole widget in pixels (palette, toolbar, canvas, summary); with ``fill`` the
        minimum height.
    fill:
        Grow the widget down to the bottom of the browser window (the canvas takes the page); the
        browser measures the window, so the height follows resizes without a rerun.
    key:
        Streamlit widget key; also keys the browser-side live state.
    covers:
        CSS selectors of page elements that may float over the canvas's right side (the inspector on a
        narrow window): a fit keeps the nodes clear of those shown over it when the fit is made.
    project:
        A number to change (with ``revision``) whenever another project replaces the canvas's (a template, a
        file, a link): the view is then fitted to the new graph whatever node ids the two share. Another
        project starts the canvas's own undo history afresh: its Undo never puts the old graph back inside the
        new project (name, data and settings).
    can_undo_replace:
        Whether the page can bring back the project the current one replaced: once the canvas's own history
        is spent, its Undo (button or Ctrl+Z) sends the one-shot action ``{"type": "undo_replace"}`` and the
        page restores that project whole.

    Returns
    -------
    dict or None
        ``{"graph": dict | None, "selected": str | None, "events": list[dict],
        "revision": int}``, or ``None`` before the browser has sent anything. ``graph`` is the browser's graph
        (same format as the ``graph`` argument) after the last committed change (drop, connect, drag stop,
        delete, paste, undo/redo, layout, rename; also re-sent with a selection change); it is ``None`` while the
        browser's state still belongs to an older ``revision`` than the one passed now, so a freshly loaded
        graph is never overwritten by a stale one. ``selected`` is the selected node id (the one last clicked
        when several are selected). ``revision`` is the revision the browser's graph is based on.
        Each payload carries ``seq``, a number the browser increases; the canvas's data says back the one this
        run read (``ack``), and the browser sends a payload again (with ``retry``) when the page went idle
        without it: a rerun Streamlit dropped never leaves an edit in the browser alone.
        ``events`` are the one-shot actions this run takes (:func:`take_events`; none when the page took them
        earlier in the run), oldest first: ``{"type": "group", "nodes": [ids], "name": str}`` when the user
        groups the selected nodes into a block, ``{"type": "library", "name": str, "nonce": int}`` when a
        library model is dropped from the palette, ``{"type": "undo_replace"}`` when Undo asks for the project
        the current one replaced.
    """
    mount = _mounter()
    # Containers go as JSON text: Streamlit probes every dict/list value of `data` for a dataframe, which
    # imports pandas (~0.4 s on a cold first visit); the browser decodes them (frontend/src/sync.js).
    data = {
        "graph": _json(graph or {"nodes": [], "edges": []}),
        "palette": _json(list(palette or [])),
        "annotations": _json(annotations or {}),
        "revision": int(revision),
        "selected": selected,
        "height": int(height),
        "key": str(key),
        "fill": bool(fill),
        "covers": _json(list(covers)),
        "project": int(project),
        "can_undo_replace": bool(can_undo_replace),
        "ack": _seq(key),
    }
    events = take_events(key)
    result = mount(
        key=key,
        data=data,
        height="content" if fill else int(height),
        on_value_change=_noop,
    )
    return _present(result.get("value"), events, revision, selected)


def _seq(key: str) -> int:
    """The sequence number of the browser's payload this run reads (0: none yet), sent back as ``data.ack``: the
    browser sends a payload again when the page went idle without acknowledging it (a rerun Streamlit dropped:
    ``frontend/src/sync.js`` resendDue)."""
    try:
        value = st.session_state[key].get("value")
    except Exception:  # not registered yet (first run), no script context, not a dict
        return 0
    seq = value.get("seq") if isinstance(value, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else 0


def latest_canvas_state(key: str = "canvas", revision: int | None = None) -> dict | None:
    """Return what ``graph_canvas(key=key)`` will return in this rerun, before rendering it.

    Call this at the top of the script to read the graph the browser just sent,
    so that annotations computed from it are shown in the same rerun (one rerun
    per committed change). Same format as :func:`graph_canvas`; ``None`` on the
    first run or before the browser has sent anything. With ``revision`` given,
    ``graph`` is ``None`` while the browser's graph belongs to an older revision. ``events`` are those not
    taken yet (:func:`graph_canvas` takes them).
    """
    try:
        raw = st.session_state[key]
    except Exception:  # not registered yet (first run) or no script context
        return None
    if not isinstance(raw, dict):
        return None
    value = raw.get("value")
    return _present(value, [e for _, e in _events_after(value, _taken(key))], revision, None)


def take_events(key: str = "canvas") -> list[dict]:
    """The one-shot actions of the canvas ``key`` (group into a block, a library model dropped) that no earlier
    call in this session took, oldest first; each is taken once.

    The browser keeps each action, with an id, in every payload it sends until Python acknowledges a payload
    that carried it (``frontend/src/sync.js`` unackedEvents): a rerun Streamlit dropped, or a payload sent
    again, neither loses an action nor repeats it.
    """
    try:
        value = st.session_state[key].get("value")
    except Exception:  # not registered yet (first run), no script context, not a dict
        return []
    taken = _events_after(value, _taken(key))
    if taken:
        st.session_state[_TAKEN.format(key)] = taken[-1][0]
    return [e for _, e in taken]


_TAKEN = "_ll_events_taken_{}"  # session state: the id of the last action taken from the canvas {key}


def _taken(key: str) -> int:
    try:
        last = st.session_state.get(_TAKEN.format(key), 0)
    except Exception:  # no script context
        return 0
    return last if isinstance(last, int) else 0


def _events_after(value: Any, last: int) -> list[tuple[int, dict]]:
    """The well-formed one-shot actions in the browser's payload ``value`` whose id is above ``last``, oldest
    first (at most :data:`MAX_EVENTS`), each as ``(id, action without its id)``.

    >>> _events_after({"events": [{"id": 2, "type": "group"}, {"id": 1, "type": "x"}, {"id": "3"}]}, 1)
    [(2, {'type': 'group'})]
    """
    raw = value.get("events") if isinstance(value, dict) else None
    found = {}
    for e in raw if isinstance(raw, list) else []:
        eid = e.get("id") if isinstance(e, dict) else None
        if isinstance(eid, int) and not isinstance(eid, bool) and eid > last and isinstance(e.get("type"), str):
            found[eid] = {k: v for k, v in e.items() if k != "id"}
    return sorted(found.items())[:MAX_EVENTS]


def _present(value: Any, events: list[dict], revision: int | None, selected: str | None) -> dict | None:
    if not isinstance(value, dict) and not events:
        return None
    value = value if isinstance(value, dict) else {}
    state_rev = value.get("revision")
    state_rev = int(state_rev) if isinstance(state_rev, (int, float)) else -1
    current = revision is None or state_rev >= int(revision)
    browser_graph = value.get("graph") if current else None
    return {
        "graph": browser_graph if isinstance(browser_graph, dict) else None,
        "selected": value.get("selected") if current else selected,
        "events": list(events),
        "revision": state_rev,
    }
