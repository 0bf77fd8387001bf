"""End-to-end: one trust boundary (issue 28) on one server with three browsers. The owner's run, named by a link
or a crafted share link with ``training.init_from``, reaches neither a stranger nor an admin (an admin stops and
deletes, never reads); its owner still opens it."""

from __future__ import annotations

import json

import pytest
from e2e_helpers import open_app, person

from builder.access import SYSTEM
from builder.graph.templates import load_template
from builder.runs import owners
from builder.runs.store import RunStore
from builder.training.pipeline import run_training
from tests.access_registry import _link
from tests.helpers import until
from tests.serving import ARTIFACTS, StreamlitServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OWNER_ID, STRANGER_ID, ADMIN_ID = "5" * 32, "6" * 32, "7" * 32


def _main_text(page) -> str:
    return page.locator("[data-testid=stMain]").inner_text()


def test_a_run_reaches_only_its_owner(browser, tmp_path):
    ws = tmp_path / "ws"
    owner, stranger = "anon:" + OWNER_ID, "anon:" + STRANGER_ID
    rid = run_training(load_template("mlp"), "moons", {"epochs": 1}, RunStore(ws, actor=SYSTEM), owner=owner).run_id
    env = {"LAYERLAB_WORKSPACE": str(ws), "LAYERLAB_ADMINS": "anon:" + ADMIN_ID, "LAYERLAB_TORCH_THREADS": "1"}
    with StreamlitServer("app.py", env=env, log_path=ARTIFACTS / "streamlit-access.log") as server:
        people = {who: person(browser, server.url, anon) for who, anon in
                  (("owner", OWNER_ID), ("stranger", STRANGER_ID), ("admin", ADMIN_ID))}
        for who, (_, page) in people.items():
            for path in (f"runs?run={rid}", f"explain?run={rid}"):
                open_app(page, path)
                text = _main_text(page)
                assert ("of yours" in text) is (who != "owner"), f"{who} on /{path}: {text[:600]}"
        # a crafted share link that starts from the owner's run arrives without it
        project = json.loads(load_template("mlp").model_copy(update={"name": "linked", "training": {
            "init_from": rid, "teacher": rid, "epochs": 2}}).to_json())
        page = people["stranger"][1]
        open_app(page, "build?p=" + _link(project))
        saved = until(lambda: (p := owners.load_autosave(ws, stranger)) and p.name == "linked" and p,
                      "the linked project on the stranger's canvas", page=page)
        assert not set(saved.training or {}) & {"init_from", "teacher"}
        for ctx, _ in people.values():
            ctx.close()
