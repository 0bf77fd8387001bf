"""AppTest: workflow guarantees of issue 11 — Enter in a hyper-parameter field starts no run, early stopping is on by default,
every page has an empty state that says what to do next, deep links select their run, and 2-D toy data get a
live decision boundary on the Train page."""

from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from builder.data.access import SYSTEM
from tests.helpers import APP, button, open_app


@pytest.fixture
def at(workspace, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    return open_app()


def _forms(node):
    for c in (node.children.values() if isinstance(getattr(node, "children", None), dict) else []):
        if getattr(c, "type", None) == "form":
            yield c
        yield from _forms(c)


def _empty_project(at):
    from app_pages.ui import new_project

    at.session_state["ll_project"] = new_project()
    at.session_state["ll_revision"] = at.session_state["ll_revision"] + 1


def test_hyper_parameter_fields_never_start_a_run_on_enter(at, workspace):
    """Enter in a field commits its value (a rerun with it) and starts nothing: only Start training does. The fields
    are no form (a form kept what was typed from the project until Start: a page trip lost it), so no field
    submits anything."""
    from builder.runs.store import RunStore

    at.switch_page("app_pages/train.py").run()
    assert not list(_forms(at.main)), "no form: each field is the project's setting as soon as it is typed"
    for label, value in (("Epochs", 3), ("Learning rate", 0.02), ("Seed", 4)):
        next(n for n in at.number_input if n.label == label).set_value(value).run()  # typed, then Enter
    assert not at.exception, [e.value for e in at.exception]
    assert "ll_run" not in at.session_state or not at.session_state["ll_run"]
    assert RunStore(workspace, actor=SYSTEM).list_runs() == []
    assert at.session_state["ll_project"].training["epochs"] == 3


def test_early_stopping_is_on_by_default_and_editable(at):
    from builder.training.config import TrainConfig

    assert TrainConfig().early_stopping == 5 and TrainConfig().early_stopping_delta > 0
    proj = at.session_state["ll_project"]
    at.session_state["ll_project"] = proj.model_copy(update={"training": {}})  # no template settings
    at.switch_page("app_pages/train.py").run()
    patience = at.number_input(key="ll_hp_patience")
    assert patience.value == 5 and "On by default" in patience.help
    assert not patience.disabled  # shown and editable (0 turns it off)


def test_templates_carry_epochs_and_patience():
    import builder
    from builder.graph.templates import OBJECTIVE_TEMPLATES

    for t in builder.list_templates():
        tr = builder.load_template(t["name"]).training or {}
        if t["name"] == "gan":  # many short epochs and no early stopping: its losses fight, a falling val loss
            assert tr["early_stopping"] is None  # means little. 1,000 epochs took a newcomer ~2.5 min on a loaded
            # server; 400 take ~21-26 s on one free core (74-79 % of samples confidently recognised, every digit,
            # seeds 0-2; 81-85 % at 1,000), and the grid is readable from the first minute
            assert 1 <= tr["epochs"] <= 400
            continue
        assert 1 <= tr.get("epochs", 0) <= 60 and tr.get("early_stopping", 0) >= 1, t["name"]
    assert set(OBJECTIVE_TEMPLATES) <= {t["name"] for t in builder.list_templates()}  # in the Build page's picker
    assert builder.load_template("transformer").training["epochs"] <= 15


def test_train_page_empty_canvas_points_to_build_and_data(at):
    _empty_project(at)
    at.switch_page("app_pages/train.py").run()
    assert any("canvas is empty" in w.value for w in at.warning)
    links = [p.proto.page for p in at.get("page_link")]
    assert any(p == "build" for p in links) and any(p == "data" for p in links)


def test_train_page_without_a_chosen_dataset_offers_the_data_page(at):
    proj = at.session_state["ll_project"]
    at.session_state["ll_project"] = proj.model_copy(update={"training": {}, "dataset": None})
    at.session_state["ll_data"] = None
    at.switch_page("app_pages/train.py").run()
    assert any("No dataset chosen yet" in i.value for i in at.info)
    assert any(p.proto.page == "data" for p in at.get("page_link"))


def test_data_page_empty_canvas_links_to_build(at):
    _empty_project(at)
    at.switch_page("app_pages/data.py").run()
    assert any("canvas is empty" in i.value for i in at.info)
    assert any(p.proto.page == "build" for p in at.get("page_link"))


def test_runs_and_explain_empty_states(at):
    at.switch_page("app_pages/runs.py").run()
    assert any("No runs yet" in i.value for i in at.info)
    assert any(p.proto.page == "train" for p in at.get("page_link"))
    at.switch_page("app_pages/explain.py").run()
    assert any("No trained model yet" in m.value for m in at.markdown)
    assert any(p.proto.page == "train" for p in at.get("page_link"))


def test_build_page_empty_canvas_says_what_to_do(at):
    _empty_project(at)
    at.run()
    assert "Drag layers from the palette" in at.markdown[0].value or any(
        "Drag layers" in m.value for m in at.markdown)
    assert at.selectbox(key="ll_tpl_pick").placeholder.startswith("Templates")


def _train_mlp(at, epochs: int) -> str:
    """Load the MLP-on-moons template, train it as a job (its own process) and wait for the end."""
    from builder.jobs.queue import wait
    from builder.runs.store import RunStore

    at.selectbox(key="ll_tpl_pick").set_value("mlp").run()
    assert at.selectbox(key="ll_tpl_pick").value is None  # the picker closed after the choice
    if any(b.key == "ll_confirm_replace" for b in at.button):  # asked over the person's own work only
        at.button(key="ll_confirm_replace").click().run()
    at.switch_page("app_pages/train.py").run()
    at.number_input[0].set_value(epochs)
    button(at, "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    rid = at.session_state["ll_run"]
    assert wait(RunStore(os.environ["LAYERLAB_WORKSPACE"], actor=SYSTEM), [rid], 180) == {rid: "finished"}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return rid


def test_moons_training_draws_a_live_decision_boundary(at):
    rid = _train_mlp(at, 2)
    from builder.interpret.boundary import latest_boundary
    from builder.runs.store import RunStore

    # the job stored a grid with each epoch's metrics; the Train page draws the latest one
    grid, points = latest_boundary(RunStore(os.environ["LAYERLAB_WORKSPACE"], actor=SYSTEM).metrics(rid, "epoch"))
    assert grid is not None and grid["epoch"] == 2 and len(grid["z"]) == 40
    assert points is not None and len(points["x"]) > 50
    assert len(at.get("plotly_chart")) >= 4  # loss, metric, lr and the decision boundary
    assert any("Decision boundary" in m.value for m in at.markdown)


def test_deep_link_selects_the_run_on_runs_and_explain(at):
    rid = _train_mlp(at, 1)
    at.query_params["run"] = rid
    at.session_state["ll_run_focus"] = None
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="ll_runs_pick").value == [rid]
    at.switch_page("app_pages/explain.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="ll_xp_model").value == f"run:{rid}"
    bad = AppTest.from_file(APP, default_timeout=120)
    bad.query_params["run"] = "../../etc"
    bad.switch_page("app_pages/runs.py").run()
    assert not bad.exception
