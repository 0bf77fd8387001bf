"""AppTests: shareable links on the Build page, the Class page (teacher and student), the first-visit guide."""

from __future__ import annotations

import builder
from builder.graph.share import encode_project
from tests.helpers import ME, OTHER, assert_no_exception, open_app


def _graph(at) -> builder.Graph:
    return at.session_state["ll_project"].graph


def test_copy_link_then_open_it_in_another_browser(workspace):
    sender = open_app("app_pages/build.py", owner=ME, template="mlp")
    url = sender.session_state["ll_share_url"]
    assert "?p=1." in url
    sent = sender.session_state["ll_project"]
    # a fresh visitor (the first visit's CNN on the canvas): opened at once, as their own copy
    visitor = open_app("app_pages/build.py", owner=OTHER, query={"p": url.split("?p=", 1)[1]})
    got = _graph(visitor)
    assert [n.model_dump() for n in got.nodes] == [n.model_dump() for n in sent.graph.nodes]
    assert visitor.session_state["ll_data"]["name"] == "moons"
    assert not visitor.session_state["ll_confirm_replace"] if "ll_confirm_replace" in visitor.session_state else True


def test_a_link_asks_before_replacing_work_and_refuses_a_broken_one(workspace):
    link = encode_project(builder.load_template("lstm"))
    at = open_app("app_pages/build.py", owner=ME, template="mlp")  # the visitor has work on the canvas
    at.query_params["p"] = link
    at.run()
    mlp_ids = [n.id for n in builder.load_template("mlp").graph.nodes]
    assert [n.id for n in _graph(at).nodes] == mlp_ids  # not yet: the confirmation is showing
    at.button(key="ll_confirm_replace").click().run()
    assert_no_exception(at)
    assert {n.id for n in _graph(at).nodes} == {n.id for n in builder.load_template("lstm").graph.nodes}
    bad = open_app("app_pages/build.py", owner=OTHER, query={"p": link[: len(link) // 2]})
    assert any("Cannot open the shared link" in e.value for e in bad.error)
