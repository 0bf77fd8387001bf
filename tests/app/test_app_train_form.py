"""AppTest: a hyper-parameter typed on the Train page is the project's setting at once: a visit to another page, a
reload, the Project file and a share link keep it (they lost it until a run was started: the fields lived in an
``st.form`` that reached the project only with Start training)."""

from __future__ import annotations

from builder.graph.share import decode_project, share_url
from tests.helpers import ME, button, open_app


def _box(at, label: str):
    return next(n for n in at.number_input if n.label == label)


def test_typed_settings_are_the_projects_before_any_run(workspace):
    at = open_app("app_pages/train.py", owner=ME, template="mlp")
    _box(at, "Epochs").set_value(7).run()
    _box(at, "Learning rate").set_value(0.02).run()
    next(s for s in at.selectbox if s.label == "Optimizer").set_value("sgd").run()
    _box(at, "Early stopping patience").set_value(0).run()
    assert not at.exception, [e.value for e in at.exception]
    training = at.session_state["ll_project"].training
    assert (training["epochs"], training["lr"], training["optimizer"], training["early_stopping"]) == (
        7, 0.02, "sgd", None)
    # a share link carries them (the link box encodes this project)
    linked = decode_project(share_url("/build", at.session_state["ll_project"]).split("p=", 1)[1])
    assert (linked.training["epochs"], linked.training["lr"]) == (7, 0.02)
    # another page and back
    at.switch_page("app_pages/data.py").run()
    at.switch_page("app_pages/train.py").run()
    assert (_box(at, "Epochs").value, _box(at, "Learning rate").value) == (7, 0.02)
    # a reload: a new session of the same owner reads them from the autosaved project
    again = open_app("app_pages/train.py", owner=ME)
    assert (_box(again, "Epochs").value, _box(again, "Learning rate").value) == (7, 0.02)
    assert next(s for s in again.selectbox if s.label == "Optimizer").value == "sgd"
    assert button(again, "Start training")  # the run still starts from the button alone


def test_settings_changed_elsewhere_refill_the_fields(workspace):
    """The fields keep what was typed only while the project's settings are the ones they were filled from: Undo
    replace (or a link, an opened file, another template) pressed while the Train page is open fills them again
    from the project now on the canvas, instead of showing, and then starting a run with, the other one's."""
    at = open_app("app_pages/train.py", owner=ME, template="mlp")  # the starting CNN is in the history
    _box(at, "Epochs").set_value(7).run()
    _box(at, "Early stopping patience").set_value(0).run()
    next(b for b in at.sidebar.button if b.label == "Undo replace").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["ll_project"].name.startswith("Small CNN")
    assert _box(at, "Epochs").value == 20
    assert _box(at, "Early stopping patience").value == 4
