"""AppTest: a crafted share link whose built-in dataset's options are not an object (issue 28 item 10's class at
the link door): the Build page of whoever opened it raised ``ValueError: dictionary update sequence element #0
has length 1`` out of check_project; it now says it cannot open the link, in one line, and the canvas is kept."""

from __future__ import annotations

import base64
import json
import zlib

import builder
from builder.graph.share import LINK_VERSION
from tests.helpers import OTHER, assert_no_exception, open_app


def _crafted(dataset) -> str:
    data = json.loads(builder.load_template("lstm").to_json())
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = c.compress(json.dumps({**data, "dataset": dataset}).encode()) + c.flush()
    return f"{LINK_VERSION}." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_link_with_a_malformed_builtin_dataset_is_refused_on_the_page(workspace):
    at = open_app("app_pages/build.py", owner=OTHER, template="mlp",
                  query={"p": _crafted({"kind": "builtin", "name": "moons", "options": "noise"})})
    assert_no_exception(at)
    assert any("Cannot open the shared link" in e.value and "options" in e.value for e in at.error)
    assert {n.id for n in at.session_state["ll_project"].graph.nodes} == \
        {n.id for n in builder.load_template("mlp").graph.nodes}
