"""AppTest: the pages on a full disk (issue 28 item 11's class: "a full disk is one clear line, with nothing
lost"). Picking a template, starting a run and editing the project met a raw OSError (a traceback on the page)
before every small write went through :func:`builder.data.disk.write_atomic`."""

from __future__ import annotations

import pytest

from tests.helpers import ME, assert_no_exception, button, fill_disk, open_app


@pytest.fixture
def full(small_disk, monkeypatch):
    """The app's workspace on a small disk, opened once by ME with the CNN on the canvas, then filled."""
    ws = small_disk / "ws"
    ws.mkdir()
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(ws))
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    at = open_app(owner=ME)
    at.selectbox(key="ll_tpl_pick").set_value("cnn").run()
    assert_no_exception(at)
    fill_disk(small_disk)
    return at, ws


def test_a_template_on_a_full_disk_leaves_the_canvas_as_it_was(full):
    at, ws = full
    before = at.session_state["ll_project"]
    at.selectbox(key="ll_tpl_pick").set_value("mlp").run()
    if any(b.key == "ll_confirm_replace" for b in at.button):
        at.button(key="ll_confirm_replace").click().run()
    assert_no_exception(at)
    assert at.session_state["ll_project"].graph == before.graph  # not replaced: the old one could not be kept
    said = [t.value for t in at.toast]
    assert any(s.startswith("The canvas was left as it is: the disk is full") for s in said), said
    assert not any(str(ws) in s for s in said)  # no server folder


def test_training_on_a_full_disk_is_one_line_and_records_nothing(full):
    at, ws = full
    at.switch_page("app_pages/train.py").run()
    button(at, "Start training").click().run()
    assert_no_exception(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("the disk is full") and "\n" not in errors[0], errors
    assert str(ws) not in errors[0]
    assert not any((ws / "runs").iterdir())


def test_a_class_on_a_full_disk_is_one_line_naming_no_server_folder(small_disk, monkeypatch):
    """The Classes page showed a kept error through ``md`` only: a full disk's message named the workspace's
    folders to the teacher (five pages did the same; tests/test_escape.py now checks every kept error)."""
    ws = small_disk / "ws"
    ws.mkdir()
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(ws))
    monkeypatch.setenv("LAYERLAB_TEACHERS", "user:teach")
    at = open_app("app_pages/classes.py", owner="user:teach")
    fill_disk(small_disk)
    at.text_input(key="ll_class_name").set_value("ML 101").run()
    at.button(key="ll_class_create").click().run()
    assert_no_exception(at)
    errors = [e.value for e in at.error]
    assert errors and all(e.startswith("the disk is full") for e in errors), errors
    assert not any(str(small_disk) in e for e in errors), errors
