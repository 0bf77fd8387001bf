"""Two tabs of one person (one browser context, one cookie): a tab that saves on top of a project another tab
saved after it opened is told so and chooses; neither version is lost (issue 29, item 2: tab A's autosave
silently dropped tab B's edits). Waits are for states, never sleeps."""

from __future__ import annotations

import pytest
from e2e_helpers import fill_field, identity_cookie, open_app, pick_option, wait_idle
from playwright.sync_api import expect

from tests.serving import ARTIFACTS

pytestmark = [pytest.mark.browser]


def project_name(page):
    """The sidebar's project name field (the newest one: a new project renders a new field)."""
    return page.get_by_label("Project name", exact=True).last


def stale_tab(ctx, app_server, page: str = "build"):
    """Tab A opened on ``page`` (its first save done, the person known by cookie), then tab B of the same person
    renamed the project and saved it: A is now stale. Returns A."""
    a = ctx.new_page()
    a.base_url = app_server
    open_app(a, page)
    wait_idle(a)  # its first save is done before B opens (under load B could read the project before it)
    identity_cookie(ctx)  # and the browser knows the person (the server set its cookie with A's page)
    b = ctx.new_page()
    b.base_url = app_server
    open_app(b, "build")  # tab B: the same person, the same project
    wait_idle(b)
    fill_field(b, "Project name", "edited in B")
    # B's rerun with the new name ran (the autosave comes before the page, which shows the name): idle alone
    # could be read before that rerun started, and A then saved first (CI: no prompt in A)
    expect(b.locator("[data-testid=stMain]")).to_contain_text("edited in B", timeout=30_000)
    wait_idle(b)
    return a


def test_a_stale_tab_is_told_and_neither_version_is_lost(browser, app_server):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        a = stale_tab(ctx, app_server)
        fill_field(a, "Project name", "edited in A")  # A still holds the project as it was before B's edit
        wait_idle(a)
        prompt = a.locator(".st-key-ll_stale_box")
        expect(prompt).to_be_visible(timeout=30_000)
        expect(prompt).to_contain_text("changed in another tab")
        # B's version is what is saved: a new tab opens it
        c = ctx.new_page()
        c.base_url = app_server
        open_app(c, "build")
        expect(project_name(c)).to_have_value("edited in B", timeout=30_000)
        c.close()
        # A loads B's version; its own comes back from the history
        a.locator(".st-key-ll_stale_theirs button").click()
        expect(prompt).to_have_count(0, timeout=30_000)
        expect(project_name(a)).to_have_value("edited in B", timeout=30_000)
        wait_idle(a)
        a.locator("[data-testid=stSidebar] button", has_text="Undo replace").first.click()
        wait_idle(a)
        a.screenshot(path=str(ARTIFACTS / "two-tabs-undo.png"))
        expect(project_name(a)).to_have_value("edited in A", timeout=30_000)
    finally:
        ctx.close()


def test_a_stale_tab_is_told_when_its_edit_is_on_the_canvas(browser, app_server):
    """The same, with the stale tab's edit made on the canvas (a node moved: a rerun of the canvas alone). The save
    was refused and the tab's version kept in the history, but the question is asked above the canvas, which only
    a whole-page rerun draws: the tab went on editing, nothing of it saved, and nobody said so."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        a = stale_tab(ctx, app_server)
        a.bring_to_front()
        a.locator("[data-testid=node-conv1]").wait_for(timeout=60_000)
        box = a.locator("[data-testid=node-conv1] .ll-node-title").first.bounding_box()
        x, y = box["x"] + 10, box["y"] + 5
        a.mouse.move(x, y)
        a.mouse.down()
        for i in range(1, 11):
            a.mouse.move(x + 4 * i, y + 3 * i)
        a.mouse.up()
        prompt = a.locator(".st-key-ll_stale_box")
        expect(prompt).to_be_visible(timeout=30_000)
        expect(prompt).to_contain_text("changed in another tab")
    finally:
        ctx.close()


def test_a_stale_tab_is_told_when_its_edit_is_a_dataset(browser, app_server):
    """The same, with the stale tab's change made on the Data page (a dataset picked): its save comes after the
    page is drawn, so the refusal was said nowhere until the next click (issue 29)."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        a = stale_tab(ctx, app_server, "data")
        pick_option(a, a.locator(".st-key-ll_ds_name input").first, "iris")
        expect(a.locator(".st-key-ll_stale_box")).to_contain_text("changed in another tab", timeout=30_000)
    finally:
        ctx.close()
