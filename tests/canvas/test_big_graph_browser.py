"""A ~500-node graph with a module hierarchy opens collapsed, a block expands on click, search finds a node.

Runs tests/canvas/big_app.py in headless Chromium (the helpers of tests/serving.py); every wait is for a
state of the page, never a fixed sleep.
"""

from __future__ import annotations

import pytest

from tests.serving import ARTIFACTS, big_graph_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page():
    with big_graph_page(500) as pe:
        yield pe


def test_big_graph_opens_collapsed_expands_and_finds(page):
    pg, errors = page
    flow = pg.locator(".ll-flow")
    flow.wait_for(timeout=60000)
    el = flow.element_handle()  # in the component's shadow root
    pg.wait_for_function("(el) => Number(el.dataset.fitted) >= 1", arg=el, timeout=60000)
    shown = int(flow.get_attribute("data-shown"))
    assert 0 < shown < 60, f"a 497-layer graph must open collapsed; {shown} elements shown"
    assert int(flow.get_attribute("data-blocks")) >= 1
    assert pg.locator(".react-flow__node-layer").count() < 60

    # a click on a block box expands it: a frame with its name appears, its child blocks are shown
    vb = flow.bounding_box()
    buttons = pg.locator(".ll-block-btn")
    first = next(buttons.nth(i) for i in range(buttons.count())
                 if vb["x"] < buttons.nth(i).bounding_box()["x"] + 20 < vb["x"] + vb["width"] - 40)
    name = first.locator(".ll-block-name").inner_text().lstrip("▸ ").strip()
    first.click()
    pg.locator(".ll-frame-head", has_text=name).wait_for(timeout=10000)

    # search finds a layer inside another collapsed block: its blocks open, the node is selected and in view
    box = pg.locator(".ll-find input")
    box.fill("layer3_2_bn2")
    box.press("Enter")
    found = pg.locator(".react-flow__node.ll-found")
    found.wait_for(timeout=10000)
    assert found.get_attribute("data-id") == "layer3_2_bn2"
    pg.wait_for_function("(el) => el.dataset.moving === 'false'", arg=el, timeout=10000)
    fb, vb = found.bounding_box(), flow.bounding_box()
    assert vb["x"] <= fb["x"] + fb["width"] / 2 <= vb["x"] + vb["width"]
    pg.locator('.ll-toolbar button[aria-label="Minimap"]').click()  # opened from the toolbar (closed by default)
    pg.locator(".react-flow__minimap-mask").wait_for(timeout=10000)  # the minimap shows the viewport
    pg.screenshot(path=str(ARTIFACTS / "canvas_big_found.png"))

    # collapsing the frame hides its layers again (its header may be panned out of view: dispatch the click)
    pg.locator(".ll-frame-head", has_text=name).first.dispatch_event("click")
    pg.locator(".ll-frame-head", has_text=name).wait_for(state="detached", timeout=10000)
    assert not errors, errors
