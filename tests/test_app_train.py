"""AppTest: the Train page starts a background job, shows progress and the final evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def at(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(tmp_path / "ws"))
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.selectbox(key="ll_tpl_pick").set_value("mlp").run()  # MLP on moons: trains in a second
    app.switch_page("pages/train.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_form_has_task_aware_defaults_and_devices(at):
    assert at.title[0].value == "Train"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Task"] == "binary"
    assert labels["Dataset"] == "moons"
    dev = at.selectbox[-1]
    assert dev.label == "Device" and "CPU" in dev.options and dev.value == "auto"
    assert any("No training yet" in i.value for i in at.info)


def test_start_trains_in_the_background_and_shows_results(at, tmp_path):
    at.number_input[0].set_value(3)  # epochs
    at.button[-1].click().run()  # "Start training" (form submit)
    assert not at.exception, [e.value for e in at.exception]
    sess = at.session_state["ll_job"]
    assert sess.run_id
    sess.job.join(60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert sess.status == "finished"
    assert len(sess.epochs) == 3 and sess.steps
    assert at.subheader[-1].value == "Test results" or any(s.value == "Test results" for s in at.subheader)
    assert any(m.label == "Accuracy" for m in at.metric)
    assert at.session_state["ll_model_run"] == sess.run_id
    from builder.runs import RunStore
    assert RunStore(tmp_path / "ws").get(sess.run_id)["status"] == "finished"


def test_stop_keeps_a_resumable_run(at, tmp_path):
    at.number_input[0].set_value(500)
    at.button[-1].click().run()
    sess = at.session_state["ll_job"]
    at.button(key="ll_stop").click().run()
    sess.job.join(60)
    at.run()
    assert sess.status == "stopped"
    assert any("Resume it from the Runs page" in i.value for i in at.info)


def test_graph_problems_block_training_with_a_clear_message(at):
    g = at.session_state["ll_project"].graph
    nodes = [n.model_copy(update={"params": {"shape": [3]}}) if n.type == "Input" else n for n in g.nodes]
    at.session_state["ll_project"] = at.session_state["ll_project"].model_copy(
        update={"graph": g.model_copy(update={"nodes": nodes})})
    at.run()
    assert any("shape" in w.value for w in at.warning)
    assert at.button[-1].disabled  # Start is disabled until fixed


def test_pause_and_resume(at):
    at.number_input[0].set_value(500)
    at.button[-1].click().run()
    sess = at.session_state["ll_job"]
    at.button(key="ll_pause").click().run()
    import time
    deadline = time.time() + 30
    while sess.job.status != "paused" and time.time() < deadline:
        time.sleep(0.05)
    assert sess.job.status == "paused"
    at.run()
    at.button(key="ll_resume").click().run()
    deadline = time.time() + 30
    while sess.job.status != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert sess.job.status == "running"
    at.run()
    at.button(key="ll_stop").click().run()
    sess.job.join(60)
    assert sess.job.status == "stopped"


def test_record_attributions_live(at):
    at.number_input[0].set_value(3)
    box = next(c for c in at.checkbox if c.label == "Record attributions live")
    assert box.value is False  # off by default
    box.check()
    at.button[-1].click().run()
    assert not at.exception, [e.value for e in at.exception]
    sess = at.session_state["ll_job"]
    sess.job.join(60)
    at.run()
    assert sess.status == "finished" and sess.live is not None
    assert [f["epoch"] for f in sess.live.frames] == [1, 2, 3]
    assert sess.live.frames[0]["attributions"].shape == (4, 2)  # 4 samples × 2 moons features
