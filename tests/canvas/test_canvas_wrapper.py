"""Fast checks of the canvas wrapper and its packaged assets (no browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CANVAS = ROOT / "builder" / "canvas"


def test_assets_are_built_and_declared():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    manifest = tomllib.loads((CANVAS / "pyproject.toml").read_text())
    assert manifest["project"]["name"] == "layerlab"  # must match the distribution name
    (comp,) = manifest["tool"]["streamlit"]["component"]["components"]
    assert comp == {"name": "graph_canvas", "asset_dir": "assets"}
    js = list((CANVAS / "assets").glob("canvas-*.js"))
    css = list((CANVAS / "assets").glob("canvas-*.css"))
    assert len(js) == 1 and len(css) == 1, "rebuild: npm --prefix frontend ci && npm --prefix frontend run build"
    text = js[0].read_text()
    assert "export{" in text.replace(" ", "") and "as default" in text
    assert "dangerouslySetInnerHTML" not in (ROOT / "frontend" / "src" / "LayerNode.jsx").read_text()


def test_only_canvas_imports_streamlit():
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "builder").rglob("*.py")
        if "canvas" not in p.parts and ("import streamlit" in p.read_text() or "from streamlit" in p.read_text())
    ]
    assert offenders == []


def test_present_filters_stale_revisions():
    from builder.canvas import _present

    g = {"nodes": [], "edges": []}
    assert _present(None, [], 1, None) is None
    cur = _present({"graph": g, "selected": "a", "revision": 3}, [], 3, None)
    assert cur == {"graph": g, "selected": "a", "events": [], "revision": 3}
    stale = _present({"graph": g, "selected": "a", "revision": 2}, [], 3, "b")
    assert stale["graph"] is None and stale["selected"] == "b"
    ev = _present(None, [{"type": "group", "nodes": ["x", "y"], "name": "B"}], 1, None)
    assert ev["events"] == [{"type": "group", "nodes": ["x", "y"], "name": "B"}] and ev["graph"] is None


def test_events_are_taken_by_id_once_and_bounded():
    from builder.canvas import MAX_EVENTS, _events_after

    value = {"events": [{"id": 3, "type": "library", "name": "m"}, {"id": 2, "type": "group"}, {"id": True, "type": "x"},
                        {"id": 4}, {"id": 5, "type": 1}, "junk", {"id": 6.0, "type": "x"}]}
    assert _events_after(value, 0) == [(2, {"type": "group"}), (3, {"type": "library", "name": "m"})]
    assert _events_after(value, 2) == [(3, {"type": "library", "name": "m"})]
    assert _events_after(value, 3) == [] and _events_after(None, 0) == [] and _events_after({"events": "x"}, 0) == []
    many = {"events": [{"id": i, "type": "group"} for i in range(1, 100)]}
    assert [i for i, _ in _events_after(many, 0)] == list(range(1, MAX_EVENTS + 1))


def test_demo_app_runs_headless():
    pytest.importorskip("streamlit.testing.v1")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "tests" / "canvas" / "demo_app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    shown = json.loads(at.code[0].value)
    assert shown["revision"] == 1 and shown["result"] is None
