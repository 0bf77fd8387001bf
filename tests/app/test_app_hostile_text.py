"""Every page shows a person's own text (a project's, a run's, a class's, a file's, a chosen name) literally: no
link, image, heading, emphasis or HTML formed from it in any Markdown the page sends, whichever page draws it."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

import builder
from builder.data.access import SYSTEM
from builder.data.uploads import UploadFolder
from builder.runs import classes, owners
from builder.runs.store import RunStore
from tests.helpers import ME, assert_no_exception, open_app

MARK = "evilmark"
HOSTILE = f"# {MARK} [x](https://{MARK}.example/a) ![i](https://{MARK}.example/i.png) <b>{MARK}</b> *em* `c` | ~~s~~"
PAGES = ("build", "data", "train", "runs", "explain", "classes", "server")
_RENDER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_FORMED = re.compile(rf"<(a|img|h\d|em|strong|code|del|b)\b[^>]*>[^<]*{MARK}|href=\"[^\"]*{MARK}|<b>{MARK}")


def _bodies(at) -> list[str]:
    """The Markdown of every text element of a page (markdown, captions, alerts, headers)."""
    out = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader", "header", "title"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out


@pytest.fixture
def hostile_workspace(workspace, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TEACHERS", owners.pseudonym(workspace, ME))
    store = RunStore(workspace, actor=SYSTEM)
    project = builder.load_template("mlp").model_copy(update={"name": HOSTILE})
    owners.save_project(workspace, ME, project)
    for status in ("finished", "failed", "stopped"):
        rid = store.create_run(project, "moons", {}, {"epochs": 2}, owner=ME, name=HOSTILE)
        store.update_status(rid, status, message=f"{HOSTILE}\n- forged line\n{HOSTILE}")
    classes.create_class(workspace, ME, HOSTILE[:60], project)
    labels = (f"[a](https://{MARK}.example)", f"<b>{MARK}</b>")
    rows = "\n".join(f"{i % 7},{i % 3},{labels[i % 2]}" for i in range(60))
    UploadFolder(owners.upload_dir(workspace, ME)).save(f"{MARK} *data*.csv",
                                                      f"`{MARK}`,*{MARK}*,label\n{rows}\n".encode())
    return workspace


@pytest.mark.parametrize("page", PAGES)
def test_a_pages_markdown_forms_nothing_from_a_persons_text(hostile_workspace, page):
    at = open_app(f"app_pages/{page}.py", owner=ME)
    assert_no_exception(at)
    bodies = _bodies(at)
    formed = [b for b in bodies if _FORMED.search(_RENDER.render(b))]
    assert not formed, formed[:3]
    if page == "runs":  # the check sees the person's text where a page shows it
        assert any(MARK in b for b in bodies), bodies
