"""The hint under the canvas that its first view leaves part of the graph out (issue 29 item 14: the first view of
ResNet or GAN, 24 nodes each, keeps text readable and showed a part of the graph with nothing saying that more lay
outside). In Chromium at 900x900: the ResNet template's hint counts the layers on screen, follows a pan, and goes
with Fit for good; the MLP, whole on its first view, gets none. Waits are for states, never sleeps."""

from __future__ import annotations

import pytest
from e2e_helpers import collapse_sidebar, pick_template, wait_idle
from playwright.sync_api import expect
from test_e2e_layout import (
    FITTED_JS,
    FITTED_NOW_JS,
    NODES_ARE_JS,
    new_page,
    open_build,
    press_fit,
    wait_all_visible,
)

import builder
from tests.serving import ARTIFACTS

pytestmark = [pytest.mark.browser]

HINT = "[data-testid=ll-view-hint]"


def show_template(page, name: str) -> int:
    """Pick the template ``name`` and wait for its first view (fitted, still, every node drawn); its node count."""
    ids = [nd.id for nd in builder.load_template(name).graph.nodes]
    before = page.evaluate(FITTED_NOW_JS)
    pick_template(page, builder.load_template(name).name)
    page.wait_for_function(NODES_ARE_JS, arg=ids, timeout=30_000)
    page.wait_for_function(FITTED_JS, arg=before, timeout=30_000)
    wait_idle(page)
    return len(ids)


def pan(page, dy: float) -> None:
    """Drag the canvas ``dy`` px down from its top-right corner (above the first row: an empty spot)."""
    f = page.locator(".ll-flow").first.bounding_box()
    x, y = f["x"] + f["width"] - 16, f["y"] + 8
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x, y + dy * i / 10)
    page.mouse.up()


def expect_hint_counts(page, n: int) -> int:
    """Once the view is still: the hint says how many of the ``n`` layers are on screen, as measured; returns that."""
    seen = wait_all_visible(page, n, at_least=0)
    assert 0 < seen["visible"] < n, seen
    expect(page.locator(f"{HINT} .ll-view-hint-text")).to_have_text(f"{seen['visible']} of {n} layers in view")
    return seen["visible"]


def test_a_cut_first_view_says_how_much_is_in_view_until_fit(browser, app_server):
    page = new_page(browser, (900, 900))
    try:
        open_build(page, app_server)
        collapse_sidebar(page)
        n = show_template(page, "resnet")
        hint = page.locator(HINT)
        expect(hint).to_be_visible()
        first = expect_hint_counts(page, n)
        # in the status bar under the canvas: over no node and no tool
        bar = page.locator(".ll-summary").first.bounding_box()
        box = hint.bounding_box()
        assert bar["y"] <= box["y"] and box["y"] + box["height"] <= bar["y"] + bar["height"], (bar, box)
        assert box["x"] >= bar["x"] and box["x"] + box["width"] <= bar["x"] + bar["width"], (bar, box)
        expect(hint.get_by_role("button", name="Fit to see all")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "view-hint-resnet-900.png"))
        # a pan moves the last rows out of view: the count follows
        pan(page, 220)
        assert expect_hint_counts(page, n) < first
        # the hint's own Fit shows the whole graph, and the hint is gone
        before = page.evaluate(FITTED_NOW_JS)
        hint.get_by_role("button", name="Fit to see all").click()
        page.wait_for_function(FITTED_JS, arg=before, timeout=30_000)
        assert wait_all_visible(page, n)["visible"] == n
        expect(hint).to_have_count(0)
        # it has said what it had to: panning part of the graph out of view again brings no hint back
        pan(page, 220)
        assert wait_all_visible(page, n, at_least=0)["visible"] < n
        expect(hint).to_have_count(0)

        # the toolbar's Fit ends it as well (the GAN, as cut as ResNet on its first view)
        n = show_template(page, "gan")
        expect(hint).to_be_visible()
        expect_hint_counts(page, n)
        press_fit(page)
        assert wait_all_visible(page, n)["visible"] == n
        expect(hint).to_have_count(0)

        # the MLP fits its first view: no hint, and none when the user pans part of it away
        n = show_template(page, "mlp")
        assert wait_all_visible(page, n)["visible"] == n
        expect(hint).to_have_count(0)
        pan(page, 300)
        assert wait_all_visible(page, n, at_least=0)["visible"] < n
        expect(hint).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "view-hint-mlp-900.png"))
        assert not page.errors, page.errors
    finally:
        page.context.close()
