"""Canvas UX in headless Chromium at 1440x900 and 900x900 (tests/canvas/demo_app.py): keyboard without a
first click, Ctrl+A -> Esc -> click leaves one node selected, Shift-click toggles, paste offsets and selects,
a big delete offers Undo, the shortcut help, badges and tooltips at screen size at any zoom, and the palette
choice remembered across reloads. Every wait is for a state (DOM or what Python received), never a sleep.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.canvas.test_canvas_browser import (  # noqa: F401 (browser is a fixture)
    Server,
    browser,
    graph_of,
    node_ids,
    reset_graph,
    state,
    wait_state,
)
from tests.serving import ARTIFACTS

pytestmark = pytest.mark.browser

SIZES = [(1440, 900), (900, 900)]


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    srv.stop()


def open_page(browser, server, size):  # noqa: F811 (browser is the fixture)
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.locator(".react-flow__node").first.wait_for(timeout=60_000)
    wait_state(page, lambda s: s["runs"] >= 1)
    page.errors = errors
    return page


def selected(page) -> set[str]:
    return {n.get_attribute("data-id") for n in page.locator(".react-flow__node.selected").all()}


def node(page, nid):
    return page.locator(f'[data-testid="node-{nid}"] .ll-node-sub')


def position(s, nid) -> dict:
    return next(n for n in graph_of(s)["nodes"] if n["id"] == nid)["position"]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_select_all_escape_click_leaves_one_node_selected(browser, server, size):  # noqa: F811
    page = open_page(browser, server, size)
    try:
        # no click first: the shortcut works as soon as the canvas is visible
        page.keyboard.press("Control+a")
        expect(page.locator(".react-flow__node.selected")).to_have_count(2)
        page.keyboard.press("Escape")
        expect(page.locator(".react-flow__node.selected")).to_have_count(0)
        wait_state(page, lambda s: s["result"] is not None and s["result"]["selected"] is None)
        page.keyboard.press("Control+a")
        expect(page.locator(".react-flow__node.selected")).to_have_count(2)
        node(page, "input_2").click()  # a click on a node of a multi-selection reduces it to that node
        expect(page.locator(".react-flow__node.selected")).to_have_count(1)
        assert selected(page) == {"input_2"}
        wait_state(page, lambda s: s["result"]["selected"] == "input_2")
        # Shift-click toggles one node, keeping the rest
        node(page, "input_1").click(modifiers=["Shift"])
        expect(page.locator(".react-flow__node.selected")).to_have_count(2)
        node(page, "input_2").click(modifiers=["Shift"])
        expect(page.locator(".react-flow__node.selected")).to_have_count(1)
        assert selected(page) == {"input_1"}
        node(page, "input_2").click(modifiers=["Control"])
        expect(page.locator(".react-flow__node.selected")).to_have_count(2)
        page.screenshot(path=str(ARTIFACTS / f"canvas-ux-select-{size[0]}.png"))
        assert not page.errors, page.errors
    finally:
        page.context.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_paste_is_offset_and_selected_and_a_big_delete_offers_undo(browser, server, size):  # noqa: F811
    page = open_page(browser, server, size)
    try:
        reset_graph(page)  # the module's server is shared: known graph
        page.locator('[data-testid="node-input_1"]').wait_for()
        node(page, "input_1").click()
        s0 = wait_state(page, lambda s: s["result"]["selected"] == "input_1")
        p0 = position(s0, "input_1")
        page.keyboard.press("Control+c")
        page.keyboard.press("Control+v")
        s1 = wait_state(page, lambda s: len(graph_of(s)["nodes"]) == 3)
        new = (node_ids(s1) - {"input_1", "input_2"}).pop()
        assert s1["result"]["selected"] == new
        assert selected(page) == {new}, "the pasted node is the selection"
        p1 = position(s1, new)
        assert p1["x"] > p0["x"] and p1["y"] > p0["y"], (p0, p1)
        page.keyboard.press("Control+v")  # a second paste lands further away, not on the first copy
        s2 = wait_state(page, lambda s: len(graph_of(s)["nodes"]) == 4)
        newer = (node_ids(s2) - node_ids(s1)).pop()
        assert position(s2, newer)["x"] > p1["x"] and position(s2, newer)["y"] > p1["y"]
        page.keyboard.press("Control+v")
        wait_state(page, lambda s: len(graph_of(s)["nodes"]) == 5)

        # deleting more than a few layers shows a toast with Undo
        page.keyboard.press("Control+a")
        expect(page.locator(".react-flow__node.selected")).to_have_count(5)
        page.keyboard.press("Delete")
        toast = page.locator(".ll-toast", has_text="Deleted 5 layers")
        expect(toast).to_be_visible()
        wait_state(page, lambda s: graph_of(s)["nodes"] == [])
        page.screenshot(path=str(ARTIFACTS / f"canvas-ux-undo-toast-{size[0]}.png"))
        toast.locator("button", has_text="Undo").click()
        wait_state(page, lambda s: len(graph_of(s)["nodes"]) == 5)
        expect(page.locator(".react-flow__node")).to_have_count(5)
        assert not page.errors, page.errors
    finally:
        page.context.close()


def test_help_popover_lists_the_shortcuts(browser, server):  # noqa: F811
    page = open_page(browser, server, SIZES[0])
    try:
        page.keyboard.press("?")
        help_ = page.locator(".ll-help")
        expect(help_).to_be_visible()
        text = help_.inner_text()
        for keys in ("Ctrl+A", "Esc", "Ctrl+V", "Delete", "Shift+drag"):
            assert keys in text, keys
        page.keyboard.press("Escape")
        expect(help_).to_have_count(0)
        page.locator('button[aria-label="Keyboard shortcuts"]').click()
        expect(help_).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "canvas-ux-help.png"))
    finally:
        page.context.close()


def test_badges_and_tooltips_stay_at_screen_size_when_zoomed_out(browser, server):  # noqa: F811
    page = open_page(browser, server, SIZES[0])
    try:
        reset_graph(page)
        page.locator('[data-testid="node-input_1"]').wait_for()
        page.locator('[data-testid="node-input_1"] .ll-node-title').dblclick()
        box = page.locator('[data-testid="node-input_1"] input.ll-rename')
        box.fill("bad")
        box.press("Enter")
        badge = page.locator('[data-testid="badge-input_1"]')
        badge.wait_for()
        page.locator('button[aria-label="Hide palette"]').click()  # it floats over the zoom controls
        flow = page.locator(".ll-flow")
        z0 = float(flow.get_attribute("data-zoom"))
        h0 = badge.bounding_box()["height"]
        settled = """() => [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')].some((h) => {
                 const f = h.shadowRoot && h.shadowRoot.querySelector('.ll-flow');
                 return f && f.dataset.moving === 'false'; })"""
        for _ in range(10):  # a click during the previous zoom's animation may zoom less: click until far enough
            page.locator('.ll-toolbar button[aria-label="Zoom out"]').click()
            page.wait_for_function(settled)
            if float(flow.get_attribute("data-zoom")) < z0 * 0.6:
                break
        z1 = float(flow.get_attribute("data-zoom"))
        h1 = badge.bounding_box()["height"]
        assert abs(h1 - h0) <= 1.0, (z0, z1, h0, h1)
        assert h1 >= 16
        tip = page.locator(".ll-tip.floating")
        size = float("nan")
        for _ in range(5):  # the tooltip appears on hover; measured once it has a size (not mid-layout)
            badge.hover()
            expect(tip).to_be_visible()
            size = tip.evaluate("el => el.offsetHeight ? parseFloat(getComputedStyle(el).fontSize)"
                                " * el.getBoundingClientRect().height / el.offsetHeight : NaN")
            if size == size:
                break
            page.mouse.move(0, 0)
        assert size >= 11, size
        page.screenshot(path=str(ARTIFACTS / "canvas-ux-badge-zoomed-out.png"))
    finally:
        page.context.close()


def test_palette_choice_is_remembered(browser, server):  # noqa: F811
    page = open_page(browser, server, SIZES[0])
    try:
        palette = page.locator(".ll-palette")
        expect(palette).to_be_visible()
        page.locator('button[aria-label="Hide palette"]').click()
        expect(palette).to_have_count(0)
        page.reload()
        page.locator(".react-flow__node").first.wait_for(timeout=60_000)
        expect(page.locator(".ll-palette")).to_have_count(0)
        page.locator('button[aria-label="Show layer palette"]').click()
        expect(page.locator(".ll-palette")).to_be_visible()
        page.locator('button[aria-label="Dock palette"]').click()  # pinned beside the canvas
        expect(page.locator(".ll-root.palette-docked")).to_have_count(1)
        page.reload()
        page.locator(".react-flow__node").first.wait_for(timeout=60_000)
        expect(page.locator(".ll-root.palette-docked")).to_have_count(1)
    finally:
        page.context.close()
