"""AppTest: the Runs page lists, compares, resumes, opens and deletes runs from the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import builder
from builder.pipeline import run_training
from builder.runs import RunStore

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def ws(tmp_path, monkeypatch):
    path = tmp_path / "ws"
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(path))
    return path


def open_runs(timeout: int = 90) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=timeout)
    app.run()
    app.switch_page("pages/runs.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_empty_state(ws):
    at = open_runs()
    assert any("No runs yet" in i.value for i in at.info)


def test_lists_compares_and_deletes(ws):
    store = RunStore(ws)
    a = run_training(builder.load_template("mlp"), "moons", {"epochs": 2}, store=store).run_id
    b = run_training(builder.load_template("mlp"), "moons", {"epochs": 3, "lr": 0.01}, store=store).run_id
    at = open_runs()
    assert at.dataframe, "the runs table is shown"
    df = at.dataframe[0].value
    assert set(df["run"]) == {a, b}
    assert set(df["status"]) == {"✔ finished"}
    assert df["params"].notna().all()
    pick = at.multiselect(key="ll_runs_pick")
    pick.set_value([a, b]).run()
    assert any("Comparing 2 runs" in s.value for s in at.subheader)
    pick = at.multiselect(key="ll_runs_pick")
    pick.set_value([a]).run()
    at.button(key=f"ll_delc_{a}").click().run()
    assert not at.exception
    ids = {r["id"] for r in RunStore(ws).list_runs()}
    assert ids == {b}


def test_resume_a_stopped_run_and_open_its_project(ws):
    store = RunStore(ws)
    job = run_training(builder.load_template("mlp"), "moons", {"epochs": 400}, store=store, background=True)
    job.stop()
    job.join(60)
    rid = job.run_id
    assert store.get(rid)["status"] == "stopped"
    at = open_runs()
    at.multiselect(key="ll_runs_pick").set_value([rid]).run()
    resume = at.button(key=f"ll_resume_{rid}")
    assert not resume.disabled
    resume.click().run()
    assert not at.exception, [e.value for e in at.exception]
    sess = at.session_state["ll_job"]
    assert sess.run_id == rid
    sess.job.stop()
    sess.job.join(60)
    at.switch_page("pages/runs.py").run()
    at.multiselect(key="ll_runs_pick").set_value([rid]).run()
    at.button(key=f"ll_open_{rid}").click().run()
    assert not at.exception
    assert at.session_state["ll_project"].name == builder.load_template("mlp").name
    assert at.session_state["ll_data"]["name"] == "moons"
