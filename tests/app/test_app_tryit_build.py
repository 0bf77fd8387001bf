"""The Build page's Try it panel under AppTest: the newest run of the canvas graph, on your own drawing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import builder
from builder.data.access import SYSTEM
from builder.interpret.tryit import try_run
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _build(side: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["ll_owner"] = "local"  # the owner of runs recorded by run_training
    if side:
        at.session_state["ll_side_view"] = side
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    text = "\n".join(str(x.value) for x in [*at.markdown, *at.caption, *at.info, *at.warning, *at.error])
    return text.replace("\\", "")  # Markdown escapes


def test_build_page_try_it_uses_the_newest_run_of_the_canvas_graph(job_workspace):
    workspace = job_workspace  # tests/conftest.py: one torch thread per job, no warm launcher
    at = _build("Try it")
    assert "Train this network" in _text(at)  # no run of this graph yet
    store = RunStore(workspace, actor=SYSTEM)
    res = run_training(builder.load_template("cnn"), "digits", {"epochs": 1, "seed": 0}, store=store)
    graph = builder.load_template("cnn").graph
    tr = try_run(store, graph, "local")
    assert tr is not None and tr.run_id == res.run_id and tr.ready and not tr.live
    assert try_run(store, builder.load_template("mlp").graph, "local") is None  # another graph: no run
    weights = store.weights_path(res.run_id)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # newer weights landed: a new version
    tr2 = try_run(store, graph, "local")
    assert tr2.version != tr.version and tr2.run_id == tr.run_id
    at = _build("Try it")
    assert f"run {res.run_id} (finished)" in _text(at)
    assert "Draw a digit" in _text(at)
    pad = next(k for k in at.session_state._state._state.filtered_state if k.startswith("ll_try_pad@build"))
    at.session_state[pad] = {"strokes": json.dumps([[[0.3, 0.2], [0.7, 0.2], [0.4, 0.9]]])}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    pred = [m for m in at.metric if m.label == "Your input's prediction"]
    assert pred and pred[0].value in [str(c) for c in range(10)], _text(at)
    assert "Answered in" in _text(at)
    assert at.get("image"), "the attribution is drawn (a picture beside the canvas)"
    assert "did not learn" not in _text(at)
    at.session_state["ll_side_view"] = "Layer"
    at.run()
    assert not [m for m in at.metric if m.label == "Your input's prediction"]
    # a newer run of this graph at learning rate 5: confidently wrong, and said so before it answers
    bad = run_training(builder.load_template("cnn"), "digits", {"epochs": 1, "seed": 0, "lr": 5}, store=store)
    at = _build("Try it")
    assert f"run {bad.run_id} (finished)" in _text(at) and "This run did not learn" in _text(at), _text(at)
