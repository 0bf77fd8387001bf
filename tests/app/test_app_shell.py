"""AppTest: the shell (navigation, sidebar new/open/save) and that every page loads without exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import builder
from app_pages import nav
from builder.data.access import SYSTEM
from tests.helpers import ME, name_box, open_app, own_work

PAGES = [p.path for p in nav.PAGES]


@pytest.fixture(autouse=True)
def ws(workspace):
    return workspace


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads(page):
    at = open_app(timeout=90)
    assert name_box(at).value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == page.split("/")[1][:-3].capitalize()


def test_sessions_are_independent():
    a = open_app(timeout=90)
    b = open_app(timeout=90)
    a.button(key="ll_new").click().run()  # the untouched starter: emptied at once
    assert a.session_state["ll_project"].graph.nodes == []
    assert b.session_state["ll_project"].graph.nodes
    assert a.session_state["ll_owner"] != b.session_state["ll_owner"]  # no cookie: two people


def test_rename_project_in_the_sidebar():
    at = open_app(timeout=90)
    name_box(at).set_value("My net").run()
    assert at.session_state["ll_project"].name == "My net"
    from app_pages import ui  # noqa: F401  (helpers are importable without a running app)


def _as(owner_id: str) -> AppTest:
    return open_app(owner="anon:" + owner_id * 32, timeout=90)  # what the browser's cookie would give


def test_the_project_is_autosaved_per_owner_and_restored():
    import builder

    mlp = builder.load_template("mlp")
    a = _as("a")
    name_box(a).set_value("Alice's net").run()
    a.selectbox(key="ll_tpl_pick").set_value("mlp").run()
    assert a.session_state["ll_project"].name == "Alice's net"  # replacing a project asks first
    a.button(key="ll_confirm_replace").click().run()
    assert a.session_state["ll_project"].name == mlp.name
    again = _as("a")  # a reload, a new tab or the next day: the same owner gets the project back
    assert again.session_state["ll_project"].name == mlp.name
    assert [n.id for n in again.session_state["ll_project"].graph.nodes] == [n.id for n in mlp.graph.nodes]
    assert again.session_state["ll_data"]["name"] == "moons"
    other = _as("b")  # another person: the default project, not Alice's
    assert other.session_state["ll_project"].name == builder.load_template("cnn").name
    again.button(key="ll_undo_replace").click().run()  # the replaced project comes back
    assert again.session_state["ll_project"].name == "Alice's net"
    assert _as("a").session_state["ll_project"].name == "Alice's net"


def test_cancel_keeps_the_project():
    a = _as("c")
    own_work(a)
    before = a.session_state["ll_project"]
    a.button(key="ll_new").click().run()
    a.button(key="ll_cancel_replace").click().run()
    assert a.session_state["ll_project"] == before and "ll_pending" not in a.session_state


def test_an_unanswered_replacement_is_dropped_on_another_page():
    """Issue 29: a Replace/Cancel question asked on one page (Data's "Load the template", the sidebar's New) and
    left unanswered showed up again at the top of every later page, long after the person moved on."""
    a = _as("d")
    own_work(a)
    before = a.session_state["ll_project"]
    a.button(key="ll_new").click().run()
    assert a.session_state["ll_pending"]  # asked here, at the top of this page
    a.switch_page(nav.TRAIN).run()
    assert not a.exception, [e.value for e in a.exception]
    assert "ll_pending" not in a.session_state
    assert not [b for b in a.button if b.key == "ll_confirm_replace"]
    assert a.session_state["ll_project"] == before  # leaving is a Cancel
    a.switch_page(nav.BUILD).run()
    assert not [b for b in a.button if b.key == "ll_confirm_replace"]
    a.button(key="ll_new").click().run()  # asked again, it is shown again
    assert [b for b in a.button if b.key == "ll_confirm_replace"]


def test_tips_for_students_show_beside_the_panels_and_hide_from_the_sidebar(workspace):
    """The Train page explains its curves for students; the sidebar's toggle hides every tip for the session."""
    from app_pages.tips import TIPS
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    run_training(builder.load_template("cnn"), "digits", {"epochs": 1}, store=RunStore(workspace, actor=SYSTEM), owner=ME,
                 adapt=True)
    at = open_app(nav.TRAIN, owner=ME)
    text = " ".join(c.value for c in at.caption)
    assert TIPS["loss"][0] in text and TIPS["overfitting"][0] in text and TIPS["confusion"][0] in text
    at.toggle(key="ll_tips_toggle").set_value(False).run()
    assert not any(title in c.value for c in at.caption for title, _ in TIPS.values())
    assert at.session_state["ll_tips_hidden"] is True


def test_the_sidebar_says_what_the_jobs_are_doing(workspace):
    """Issue 29, item 11: a queued or paused run was counted as "1 training job running"."""
    from builder.runs.store import RunStore

    RunStore(workspace, actor=SYSTEM).create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 1},
                                                 owner=ME)  # queued: no job slot has taken it yet
    at = open_app(owner=ME, timeout=60)
    labels = [link.label for link in at.get("page_link")]
    assert "1 training job queued" in labels, labels
    assert not any("running" in str(x) for x in labels), labels


def test_picking_the_template_already_on_the_canvas_asks_nothing():
    """Issue 29: picking the CNN template over the untouched starting CNN asked "Replace Small CNN for 8x8 digits
    with Small CNN for 8x8 digits?": nothing would be lost, so it is loaded at once; an edited one still asks."""
    a = _as("e")
    before = a.session_state["ll_project"]
    a.selectbox(key="ll_tpl_pick").set_value("cnn").run()
    assert not a.exception, [e.value for e in a.exception]
    assert "ll_pending" not in a.session_state and not [b for b in a.button if b.key == "ll_confirm_replace"]
    assert a.session_state["ll_project"].name == before.name
    name_box(a).set_value("My CNN").run()
    a.selectbox(key="ll_tpl_pick").set_value("cnn").run()
    assert a.session_state["ll_pending"] and a.session_state["ll_project"].name == "My CNN"


def test_a_first_visitor_picks_templates_without_a_question_and_undo_brings_each_back():
    """A first visitor picking a template was asked "Replace Small CNN for 8×8 digits on the canvas with ...?", about
    a network they never made. A template as shipped is replaced at once (kept for Undo replace); once the
    person changed it (here its name), replacing it asks."""
    a = _as("f")
    for name in ("mlp", "gan"):
        a.selectbox(key="ll_tpl_pick").set_value(name).run()
        assert not a.exception, [e.value for e in a.exception]
        assert "ll_pending" not in a.session_state and not [b for b in a.button if b.key == "ll_confirm_replace"]
        assert a.session_state["ll_project"].name == builder.load_template(name).name
        # the canvas sends the graph back with a layer selected and each edge's ports resolved (a template names
        # none): still the template as shipped (a click on a layer made it "changed")
        g = a.session_state["ll_project"].graph.model_dump(mode="json")
        for e in g["edges"]:
            e["source_port"], e["target_port"] = e.get("source_port") or "out", e.get("target_port") or "in"
        a.session_state["ll_canvas"] = {"value": {"graph": g, "selected": g["nodes"][0]["id"],
                                                  "revision": a.session_state["ll_revision"]}}
        a.run()
        assert a.session_state["ll_selected"] == g["nodes"][0]["id"]
    a.button(key="ll_undo_replace").click().run()  # the replaced template comes back
    assert a.session_state["ll_project"].name == builder.load_template("mlp").name
    own_work(a, "My MLP")
    a.selectbox(key="ll_tpl_pick").set_value("cnn").run()
    assert a.session_state["ll_pending"] and a.session_state["ll_project"].name == "My MLP"


def test_a_template_rewired_between_its_inputs_is_no_longer_the_template_as_shipped():
    """"Is this the template as shipped?" dropped every edge's port, so a GAN whose discriminator's two inputs were
    swapped (the fake images into the concatenation's first input) counted as untouched and was replaced without a
    question: the one network hash (:func:`builder.graph.edit.graph_hash`) counts ports that say which input."""
    a = _as("g")
    a.selectbox(key="ll_tpl_pick").set_value("gan").run()
    g = a.session_state["ll_project"].graph.model_dump(mode="json")
    for e in g["edges"]:
        if e["target"] == "real_fake":
            e["target_port"] = {"0": "1", "1": "0"}[e["target_port"]]
    a.session_state["ll_canvas"] = {"value": {"graph": g, "revision": a.session_state["ll_revision"]}}
    a.run()
    assert not a.exception, [e.value for e in a.exception]
    a.selectbox(key="ll_tpl_pick").set_value("mlp").run()
    assert a.session_state["ll_pending"] and a.session_state["ll_project"].name == builder.load_template("gan").name


def test_an_uncaught_error_shows_its_type_not_the_server_folders_it_names(monkeypatch):
    """Issue 28 (messages carry no secrets): an error no page caught was drawn by Streamlit with its message and
    traceback, which name the server's folders (the install, the workspace, an owner's upload) and can quote a file
    (Streamlit's default ``client.showErrorDetails = "full"``). The visitor sees its type; the server's log keeps
    the rest."""
    from app_pages import ui

    def broken() -> None:
        raise OSError("cannot read /srv/ws/owners/anon-k7x2qd4mzt/uploads/people.csv: first line 'name,diagnosis'")

    monkeypatch.setattr(ui, "show_flash", broken)
    at = AppTest.from_file(str(builder.__file__).replace("builder/__init__.py", "app.py"), default_timeout=90).run()
    assert len(at.exception) == 1
    shown = at.exception[0]
    drawn = " ".join([shown.value, *shown.stack_trace])
    assert shown.proto.type == "OSError"
    assert "/srv/ws" not in drawn and "diagnosis" not in drawn and "site-packages" not in drawn


def test_the_server_records_where_streamlit_keeps_its_secrets_for_the_processes_it_starts(monkeypatch, tmp_path):
    """The app tells the jobs it starts where Streamlit's secrets are, as Streamlit itself resolved them in the server
    (``secrets.files`` from ``--secrets.files``, ``STREAMLIT_SECRETS_FILES`` or a config file, and the config files
    of the server's home and working folder): a job, in another folder with none of those, found only the package's
    ``.streamlit`` and read the others (tests/jobs/test_job_sandbox.py shuts what this records)."""
    from streamlit import config

    from builder.process import landlock

    auth = tmp_path / "auth.toml"
    monkeypatch.delenv(landlock.SECRETS_ENV, raising=False)  # put back as it was afterwards
    before = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(auth)])  # as --secrets.files or STREAMLIT_SECRETS_FILES set it
    try:
        at = AppTest.from_file(str(builder.__file__).replace("builder/__init__.py", "app.py"), default_timeout=90).run()
    finally:
        config.set_option("secrets.files", before)
    assert not at.exception, [e.value for e in at.exception]
    kept = landlock.kept_secrets()
    assert auth in kept, kept
    assert {Path(p) for p in config.get_config_files("config.toml")} <= set(kept), kept
    assert Path.cwd() / ".streamlit" / "config.toml" in kept, kept
    assert Path.cwd() / ".streamlit" / "secrets.toml" in kept, kept  # the default one, though secrets.files names another
