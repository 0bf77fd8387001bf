"""AppTest: the shell (navigation, sidebar new/open/save) and that every page loads without exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["pages/build.py", "pages/data.py", "pages/train.py", "pages/runs.py", "pages/explain.py"]


@pytest.fixture(autouse=True)
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(tmp_path / "ws"))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads(page):
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert at.sidebar.text_input(key=f"ll_name_{at.session_state['ll_revision']}").value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == page.split("/")[1][:-3].capitalize()


def test_sessions_are_independent():
    a = AppTest.from_file(APP, default_timeout=90)
    b = AppTest.from_file(APP, default_timeout=90)
    a.run()
    b.run()
    a.button(key="ll_new").click().run()
    assert a.session_state["ll_project"].graph.nodes == []
    assert b.session_state["ll_project"].graph.nodes


def test_rename_project_in_the_sidebar():
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.sidebar.text_input(key=f"ll_name_{at.session_state['ll_revision']}").set_value("My net").run()
    assert at.session_state["ll_project"].name == "My net"
    from pages import ui  # noqa: F401  (helpers are importable without a running app)
