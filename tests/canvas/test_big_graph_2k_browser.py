"""A 1,985-node graph (DETR-sized: ResNet backbone and transformer) opens collapsed, a block expands on click,
Auto-layout keeps the collapsed view.

Runs tests/canvas/big_app.py in headless Chromium (the helpers of tests/serving.py). The graph comes without
positions, as an imported file does: before the column layout (frontend/src/layout.js) dagre's recursion
overflowed the stack on it and the canvas never showed. Every wait is for a state of the page, never a
fixed sleep.
"""

from __future__ import annotations

import pytest

from tests.serving import ARTIFACTS, big_graph_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page():
    with big_graph_page(2000) as pe:
        yield pe


def test_2k_graph_opens_collapsed_and_a_block_expands(page):
    pg, errors = page
    flow = pg.locator(".ll-flow")
    flow.wait_for(timeout=60000)
    el = flow.element_handle()  # in the component's shadow root
    pg.wait_for_function("(el) => Number(el.dataset.fitted) >= 1", arg=el, timeout=60000)
    assert not errors, errors
    shown = int(flow.get_attribute("data-shown"))
    assert 0 < shown < 60, f"a 1,985-layer graph must open collapsed; {shown} elements shown"
    assert pg.locator(".react-flow__node-layer").count() < 60
    names = [t.lstrip("▸ ").strip() for t in pg.locator(".ll-block-name").all_inner_texts()]
    assert "transformer" in names, names  # the module hierarchy: backbone and transformer

    # the transformer block expands: its frame appears with the encoder and decoder blocks inside
    pg.locator(".ll-block-btn", has_text="transformer").first.click()
    pg.locator(".ll-frame-head", has_text="transformer").wait_for(timeout=20000)
    pg.locator(".ll-block-name", has_text="transformer.encoder").first.wait_for(timeout=20000)
    assert int(flow.get_attribute("data-shown")) < 60
    # the counts of the layers inside add up to the graph
    counts = [int(t.split()[0]) for t in pg.locator(".ll-block-count").all_inner_texts()]
    assert sum(counts) + pg.locator(".react-flow__node-layer").count() == 1985
    pg.screenshot(path=str(ARTIFACTS / "canvas_2k_expanded.png"))

    # Auto-layout keeps the collapsed view together: the layers shown are arranged with the blocks again
    # (the full layout, kept for Blocks: off, is a ~500,000 px long chain)
    fits = int(flow.get_attribute("data-fitted"))
    pg.locator('button:has-text("Auto-layout")').click()
    pg.wait_for_function("([el, n]) => Number(el.dataset.fitted) > n", arg=[el, fits], timeout=20000)
    xs = pg.locator(".react-flow__node").evaluate_all("els => els.map((e) => new DOMMatrix(getComputedStyle(e).transform).m41)")
    assert len(xs) < 60 and max(xs) - min(xs) < 20000, (len(xs), min(xs), max(xs))
    assert not errors, errors
