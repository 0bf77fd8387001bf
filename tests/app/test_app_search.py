"""AppTest: the Train page's Search mode (node parameters marked searchable, live trials, best onto the canvas)."""

from __future__ import annotations

import pytest

from builder.data.access import SYSTEM
from tests.helpers import open_app


@pytest.fixture
def at(workspace, monkeypatch):
    monkeypatch.setenv("LAYERLAB_MAX_JOBS", "2")
    app = open_app("app_pages/train.py", template="mlp")  # MLP on moons
    app.session_state["ll_train_mode"] = "Search"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _submit(at):
    next(b for b in at.button if b.label == "Start search").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_search_form_lists_the_canvas_nodes_numeric_params(at):
    assert at.text_input(key="ll_s_tr_lr").value == "1e-4..1e-1:log"
    keys = {t.key for t in at.text_input}
    assert {"ll_s_node_fc1.out_features", "ll_s_node_fc2.out_features"} <= keys
    assert "ll_s_node_head.out_features" not in keys  # the data fixes the output width: not a search dimension
    assert at.selectbox(key="ll_s_objective").options[:2] == ["Validation loss (minimise)",
                                                              "Validation accuracy (maximise)"]


def test_bad_spec_is_a_located_error_and_nothing_starts(at):
    at.text_input(key="ll_s_node_fc1.out_features").set_value("64..8")
    at.text_input(key="ll_s_tr_lr").set_value("0..1:log")
    _submit(at)
    err = at.error[0].value
    assert "search space has 2 problem(s)" in err and "node fc1" in err and "search lr" in err
    assert "ll_study" not in at.session_state


def test_block_repeats_are_typed_and_checked(at):
    at.text_area(key="ll_s_blocks").set_value("block:fc1..act1=0..2\n")  # (B, 2) in, (B, 32) out
    _submit(at)
    err = at.error[0].value
    assert "search space has 1 problem(s)" in err and "must give back its input shape" in err
    assert "ll_study" not in at.session_state


@pytest.mark.slow
def test_search_runs_shows_trials_and_puts_the_best_on_the_canvas(at, tmp_path):
    ws = tmp_path / "ws"
    at.text_input(key="ll_s_node_fc1.out_features").set_value("{4,24}")
    at.text_input(key="ll_s_tr_lr").set_value("1e-2..1e-1:log")
    at.number_input(key="ll_s_trials").set_value(2)
    at.number_input(key="ll_s_epochs").set_value(2)
    at.text_input(key="ll_s_name").set_value("app-study")
    _submit(at)
    study = at.session_state["ll_study"]
    assert study["name"] == "app-study" and study["trials"] == 2  # "Trials 0 / 2" before the runner records it
    assert study["proc"].wait(timeout=600) == 0  # the study process, with its trial jobs, ends
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert len(table) == 2 and set(table["state"]) <= {"complete", "pruned"}
    assert not [w.value for w in at.warning if "failed" in w.value]  # the line of a failed trial: none here
    assert set(table["fc1.out_features"]) <= {4, 24}
    labels = {m.label: m.value for m in at.metric}
    assert labels["Study"].replace("\\", "") == "app-study" and labels["Trials"] == "2 / 2"
    best = table.sort_values("value").iloc[0]
    at.button(key="ll_s_canvas").click().run()
    assert not at.exception, [e.value for e in at.exception]
    proj = at.session_state["ll_project"]
    assert proj.graph.node("fc1").params["out_features"] == int(best["fc1.out_features"])
    assert proj.training["lr"] == pytest.approx(best["lr"])
    at.switch_page("app_pages/train.py").run()
    at.session_state["ll_train_mode"] = "Search"
    at.run()
    at.button(key="ll_s_retrain").click().run()  # retrain the best trial with 3x the epochs
    assert not at.exception, [e.value for e in at.exception]
    from builder.jobs.queue import wait
    from builder.runs.store import RunStore

    rid = at.session_state["ll_run"]
    rs = RunStore(ws, actor=SYSTEM)
    assert wait(rs, [rid], timeout=300)[rid] == "finished"
    run = rs.get(rid)
    fc1 = next(n for n in run["project"]["graph"]["nodes"] if n["id"] == "fc1")
    assert run["config"]["epochs"] == 6 and fc1["params"]["out_features"] == int(best["fc1.out_features"])
    at.run()
    assert at.session_state["ll_train_mode"] == "Train"


def test_mlflow_setting_is_the_visitors_own_and_checked(at, monkeypatch, tmp_path):
    import json
    import os

    from builder.tracking_destinations import owner_setting, resolve_tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset-after-test")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    ws = tmp_path / "ws"
    assert at.text_input(key="ll_mlflow_uri").disabled  # the admin allows no tracker by default
    allowed = f"sqlite:///{tmp_path / 'ann.db'}"
    (ws / "server.json").write_text(json.dumps({"tracking": {"allow": [allowed]}}), encoding="utf-8")
    at.run()
    at.text_input(key="ll_mlflow_uri").set_value("http://10.0.0.1:5000").run()  # an internal address
    assert "only where its admin allows" in at.error[0].value and "MLFLOW_TRACKING_URI" not in os.environ
    at.text_input(key="ll_mlflow_uri").set_value(allowed).run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the setting is this visitor's, not the server process's
    assert owner_setting(ws, at.session_state["ll_owner"]) == allowed
    assert resolve_tracking(ws, "anon:" + "f" * 32) is None  # another visitor's runs go nowhere


def test_the_servers_tracker_credentials_are_never_shown_to_a_visitor(at, tmp_path):
    """The Train page's MLflow box names the server's default tracker and the admin's allow-list to every visitor
    (issue 28): without the credentials in them (a password, a token as the user name, a token in the query)."""
    import json

    ws = tmp_path / "ws"
    (ws / "server.json").write_text(json.dumps({"tracking": {
        "uri": "https://admin:S3CRETPW@mlflow.example.org",
        "allow": ["https://robot:ALLOWPW@ml.school.org", "https://TOKENUSER0123@ml2.school.org/x",
                  "https://ml3.school.org/?token=QUERYTOKEN9&experiment=a"]}}), encoding="utf-8")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    box = at.text_input(key="ll_mlflow_uri")
    shown = " ".join([*(c.value for c in at.caption), box.help or "", box.placeholder or "", box.value or "",
                      *(e.value for e in at.error)])
    assert "example" in shown and "ml3" in shown, shown  # the trackers are named
    for secret in ("S3CRETPW", "ALLOWPW", "TOKENUSER0123", "QUERYTOKEN9"):
        assert secret not in shown, shown


def _forms(node):
    for c in (node.children.values() if isinstance(getattr(node, "children", None), dict) else []):
        if getattr(c, "type", None) == "form":
            yield c
        yield from _forms(c)


@pytest.mark.parametrize("mode", ["Search", "Cross-validate"])
def test_enter_in_a_field_never_starts_a_search_or_folds(workspace, mode):
    """Usability review: Enter after typing a learning-rate range in Search's first field started a 20-trial search
    at once (the search form submitted on Enter; the Train and Cross-validate forms never did). Only the button
    starts work."""
    from builder.runs.store import RunStore

    app = open_app("app_pages/train.py", template="mlp")
    app.session_state["ll_train_mode"] = mode
    app.run()
    # no form (its values lived in the browser until submitted: a page trip lost them); a field typed and
    # committed with Enter is a rerun with its value, and nothing starts
    assert not list(_forms(app.main)), f"{mode} has no form"
    if mode == "Search":
        next(t for t in app.text_input if t.key == "ll_s_tr_lr").input("1e-3..1e-1:log").run()
        next(n for n in app.number_input if n.label == "Trials").set_value(3).run()
    else:
        next(n for n in app.number_input if n.label == "Folds (K)").set_value(3).run()
    assert not app.exception, [e.value for e in app.exception]
    assert RunStore(workspace, actor=SYSTEM).list_runs() == []
    assert not app.session_state["ll_cv_jobs"] if "ll_cv_jobs" in app.session_state else True


def test_search_and_fold_settings_and_the_mode_survive_a_page_trip(workspace):
    """Usability review: on Train › Search, Batch size {32,64} and Trials 7, then Data and back: the page came back
    in Train mode and the Search form at its defaults (Trials 20); Cross-validate's folds likewise. The mode and
    these fields are now kept for the session (they are not the project's settings)."""
    app = open_app("app_pages/train.py", template="mlp")
    app.session_state["ll_train_mode"] = "Search"
    app.run()
    next(n for n in app.number_input if n.label == "Trials").set_value(7).run()
    batch = next(t for t in app.text_input if t.key == "ll_s_tr_batch_size")
    batch.input("{32,64}").run()
    app.switch_page("app_pages/data.py").run()
    app.switch_page("app_pages/train.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.session_state["ll_train_mode"] == "Search"
    assert next(n for n in app.number_input if n.label == "Trials").value == 7
    assert next(t for t in app.text_input if t.key == "ll_s_tr_batch_size").value == "{32,64}"
    app.session_state["ll_train_mode"] = "Cross-validate"
    app.run()
    next(n for n in app.number_input if n.label == "Folds (K)").set_value(3).run()
    app.switch_page("app_pages/data.py").run()
    app.switch_page("app_pages/train.py").run()
    assert next(n for n in app.number_input if n.label == "Folds (K)").value == 3
