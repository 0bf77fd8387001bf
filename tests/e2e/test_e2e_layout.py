"""The app in Chromium at 1440x900 and 900x900: the canvas takes the page, every template is legible at its
default fit (text and ports measured from the DOM), deep links open their page on a first visit, and Enter
in a hyper-parameter field starts no run. Waits are for states (DOM, Streamlit idle), never sleeps."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from e2e_helpers import (
    SIDEBAR_SETTLED_JS,
    choose_dataset,
    collapse_sidebar,
    load_fitting_template,
    pick_template,
    rename_project,
    wait_idle,
)
from playwright.sync_api import expect

import builder
from tests.canvas.measure import measure
from tests.serving import ARTIFACTS

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SIZES = [(1440, 900), (900, 900)]
# the first view's smallest zoom, as the canvas has it
READABLE_ZOOM = float(re.search(r"export const READABLE_ZOOM = ([0-9.]+);",
                                (ROOT / "frontend" / "src" / "viewport.js").read_text(encoding="utf-8")).group(1))
FITTED_JS = """(n) => [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')].some((h) => {
  const f = h.shadowRoot && h.shadowRoot.querySelector('.ll-flow');
  return f && Number(f.dataset.fitted) > n && f.dataset.moving === 'false'; })"""
# every node of the picked template, and no other, is on the canvas (the fit can settle before the last
# nodes of a new graph are rendered)
NODES_ARE_JS = """(ids) => [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')].some((h) => {
  const r = h.shadowRoot && h.shadowRoot.querySelector('.ll-root'); if (!r) return false;
  const got = [...r.querySelectorAll('.ll-node')].map((n) => n.dataset.nodeId);
  return got.length === ids.length && ids.every((i) => got.includes(i)); })"""
# every port of every node has been laid out (a node re-rendered by the rerun that annotates a new graph can
# be measured for a frame with 0 x 0 handles)
PORTS_LAID_OUT_JS = """() => [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')].some((h) => {
  const r = h.shadowRoot && h.shadowRoot.querySelector('.ll-root'); if (!r) return false;
  const hs = [...r.querySelectorAll('.react-flow__node .react-flow__handle')];
  return hs.length > 0 && hs.every((e) => { const b = e.getBoundingClientRect(); return b.width > 0 && b.height > 0; }); })"""
# the rows above the canvas (tag, key or test id, top, height), named in the message when the canvas starts too low
ROWS_ABOVE_JS = """() => [...document.querySelectorAll('.block-container [data-testid=stElementContainer], .block-container [data-testid=stLayoutWrapper]')]
  .filter((e) => !e.parentElement.closest('[data-testid=stElementContainer], [data-testid=stLayoutWrapper]'))
  .map((e) => { const b = e.getBoundingClientRect(); const k = [...e.classList, ...(e.firstElementChild?.classList || [])].find((c) => c.startsWith('st-key-'));
                return `${k || e.firstElementChild?.dataset.testid || e.tagName} @${Math.round(b.top)}+${Math.round(b.height)}`; })"""
FITTED_NOW_JS = """() => { for (const h of document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')) {
  const f = h.shadowRoot && h.shadowRoot.querySelector('.ll-flow'); if (f) return Number(f.dataset.fitted); }
  return -1; }"""


def new_page(browser, size):
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]}, device_scale_factor=1)
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


@contextlib.contextmanager
def visit(browser, url: str, title: str, size=SIZES[0]):
    """A fresh browser context (a first visit) on ``url``, once its page ``title`` is up and idle."""
    page = new_page(browser, size)
    try:
        page.goto(url)
        page.wait_for_selector(f"h1:has-text('{title}')", timeout=90_000)
        wait_idle(page)
        yield page
    finally:
        page.context.close()


def open_build(page, base_url: str) -> None:
    page.goto(f"{base_url}/build")
    page.locator(".react-flow__node").first.wait_for(timeout=90_000)
    page.wait_for_function(FITTED_JS, arg=0, timeout=30_000)
    wait_idle(page)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_canvas_takes_the_page_and_every_template_is_legible(browser, app_server, size):
    page = new_page(browser, size)
    try:
        open_build(page, app_server)
        if size[0] < 1100:  # the sidebar floats over the page there: a user closes it once (remembered)
            collapse_sidebar(page)
        page.wait_for_function("() => document.fonts.status === 'loaded'", timeout=30_000)
        m = measure(page)
        above = page.evaluate(ROWS_ABOVE_JS)  # what the page holds above the canvas, for a failure's message
        if m["flow"]["y"] > size[1] / 3:
            page.screenshot(path=str(ARTIFACTS / f"layout-build-{size[0]}-low-canvas.png"))
        share = m["flow"]["width"] / size[0]
        assert share >= 0.6, f"canvas is {m['flow']['width']:.0f} px = {share:.0%} of {size[0]} px"
        # the canvas takes the page: it started at y = 505 of 900 below the guide card and toolbar (issue 29,
        # item 14); on a first visit (the guide card shown) it starts in the top third and ends in the window
        assert m["flow"]["y"] <= size[1] / 3, f"canvas starts at y = {m['flow']['y']:.0f} of {size[1]} below {above}"
        assert m["flow"]["y"] + m["flow"]["height"] <= size[1], m["flow"]
        assert m["flow"]["height"] >= 0.55 * size[1], f"canvas is {m['flow']['height']:.0f} px tall"
        # the title clears the app's header bar (an opaque 60 px band with the logo)
        title = page.locator("h1").first.bounding_box()
        assert title["y"] + 20 >= 60, f"the page's title starts under the header bar: {title}"
        figures = {}
        current = "cnn"  # a new session starts with the CNN template
        for t in sorted(builder.list_templates(), key=lambda t: t["name"] == current):  # a different one first
            before = page.evaluate(FITTED_NOW_JS)
            pick_template(page, t["title"])
            first = builder.load_template(t["name"]).graph.nodes[0].id
            page.locator(f"[data-testid=node-{first}]").wait_for(timeout=30_000)
            page.wait_for_function(FITTED_JS, arg=before, timeout=30_000)
            ids = [nd.id for nd in builder.load_template(t["name"]).graph.nodes]
            page.wait_for_function(NODES_ARE_JS, arg=ids, timeout=30_000)
            wait_idle(page)
            page.wait_for_function(PORTS_LAID_OUT_JS, timeout=30_000)
            m = measure(page)
            n = len(ids)
            first = nodes_visible(page)  # the first view, as the fit above left it (the view is still)
            assert len(m["nodes"]) == n, (t["name"], len(m["nodes"]), n)
            font = min(x["minFont"] for x in m["nodes"])
            port = min(x["minPort"] for x in m["nodes"] if x["minPort"] is not None)
            figures[t["name"]] = {"zoom": m["zoom"], "min_font_px": round(font, 2), "min_port_px": round(port, 2),
                                  "first_view": f"{first['visible']}/{n}"}
            # the first view never zooms below READABLE_ZOOM (frontend/src/viewport.js): the smallest node text
            # (12 px) at >= 7.8 px, a layer's name (14.5 px) at >= 9.4 px
            assert font >= 12 * READABLE_ZOOM - 0.05, f"{t['name']}: smallest node text {font:.1f} px at zoom {m['zoom']}"
            assert port >= 7, f"{t['name']}: smallest port {port:.1f} px at zoom {m['zoom']}"
            assert ids[0] in first["ids"], (t["name"], first)  # it starts at the graph's input end
            # the template picker closed after the choice
            expect(page.locator("[role=option]")).to_have_count(0)
            # Fit shows every node, right of the floating palette and inside the window (it showed 2 of 4 nodes
            # of a 4-node chain, ResNet at 900x900 6 of 24: issue 29, item 14)
            press_fit(page)
            seen = wait_all_visible(page, n)
            fit_zoom = measure(page)["zoom"]
            figures[t["name"]]["after_fit"] = f"{seen['visible']}/{n} at zoom {fit_zoom:.3f}"
            assert seen["visible"] == n, (t["name"], seen)
            # a graph that Fit shows whole at a legible zoom is whole on the first view too (the first view kept
            # zoom >= 0.92 and cut the CNN to 6 of its 12 nodes, the MLP's right column, at both sizes)
            if fit_zoom >= READABLE_ZOOM:
                assert first["visible"] == n, (t["name"], fit_zoom, first)
            # every template of up to 12 layers opens whole (the two 4-layer LSTM templates, one row of four,
            # showed 3 of 4 on the first view at both sizes: the row needed zoom 0.52-0.55 beside the palette)
            if n <= 12:
                assert first["visible"] == n, (t["name"], first)
        page.screenshot(path=str(ARTIFACTS / f"layout-build-{size[0]}.png"))
        print("FIGURES", size, figures)
        assert not page.errors, page.errors
    finally:
        page.context.close()


@pytest.mark.parametrize("path,title", [("build", "Build"), ("train", "Train"), ("runs", "Runs"),
                                        ("explain", "Explain"), ("data", "Data")])
def test_deep_links_open_their_page_on_a_first_visit(browser, app_server, path, title):
    with visit(browser, f"{app_server}/{path}", title) as page:
        assert page.get_by_text("Page not found").count() == 0
        assert page.url.rstrip("/").endswith(f"/{path}")


def test_runs_deep_link_with_an_unknown_run_is_harmless(browser, app_server):
    with visit(browser, f"{app_server}/runs?run=20990101-000000-abcdef", "Runs") as page:
        assert page.locator("[data-testid=stException]").count() == 0


def test_enter_in_a_hyper_parameter_field_starts_no_run(browser, app_server):
    with visit(browser, f"{app_server}/train", "Train") as page:
        box = page.get_by_label("Epochs", exact=True)
        box.fill("2")
        box.press("Enter")
        wait_idle(page)
        lr = page.get_by_label("Learning rate", exact=True)
        lr.press("Enter")
        wait_idle(page)
        assert page.get_by_text("No training yet").count() >= 1
        assert page.locator("[data-testid=stProgress]").count() == 0
        expect(page.get_by_role("button", name="Start training")).to_be_visible()


# Every node's box lies inside the visible canvas: within the flow element, right of a palette floating over
# its left side and left of the inspector floating over its right side on a narrow window (the minimap and
# controls are small corners, checked by the Fit test below).
NODES_VISIBLE_JS = """() => {
  const hosts = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')];
  const root = hosts.map((h) => h.shadowRoot).filter(Boolean).find((r) => r.querySelector('.ll-root'));
  if (!root) return null;
  const f = root.querySelector('.ll-flow').getBoundingClientRect();
  const pal = root.querySelector('.ll-palette.is-overlay');
  const left = pal ? Math.max(f.left, pal.getBoundingClientRect().right) : f.left;
  let right = Math.min(f.right, window.innerWidth);
  for (const p of document.querySelectorAll('[data-testid="stColumn"]:has(.st-key-ll_inspector)')) { const b = p.getBoundingClientRect();
    if (b.width && b.left < f.right && b.right >= f.right - 1 && b.top < f.bottom && b.bottom > f.top) right = Math.min(right, b.left); }
  const bottom = Math.min(f.bottom, window.innerHeight);
  const nodes = [...root.querySelectorAll('.react-flow__node')];
  const inside = nodes.filter((n) => { const b = n.getBoundingClientRect();
    return b.left >= left - 1 && b.right <= right + 1 && b.top >= Math.max(f.top, 0) - 1 && b.bottom <= bottom + 1; });
  return { total: nodes.length, visible: inside.length, flowTop: f.top, flowHeight: f.height,
           ids: inside.map((n) => n.dataset.id) };
}"""


def nodes_visible(page) -> dict:
    """``{total, visible, flowTop, flowHeight, ids}`` (ids: the visible nodes) of the canvas as the user sees it (see NODES_VISIBLE_JS)."""
    return page.evaluate(NODES_VISIBLE_JS)


def wait_all_visible(page, n: int, timeout: float = 15.0, at_least: int | None = None,
                     including: str | None = None) -> dict:
    """Wait until the canvas shows its ``n`` nodes, ``at_least`` of them (default: all) on screen, ``including``
    that node where given, and the view is still (see NODES_VISIBLE_JS); return what is seen then, or at the
    timeout (the caller asserts on it). A still view of fewer nodes, or without ``including``, is not the state
    waited for: between a page's return and the canvas's fit at its real size the old view shows, still."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    must = f" && s.ids.includes({json.dumps(including)})" if including else ""
    js = f"""() => {{ const s = ({NODES_VISIBLE_JS})(); const f = [...document.querySelectorAll(
      '[data-testid="stBidiComponentIsolated"]')].map((h) => h.shadowRoot && h.shadowRoot.querySelector('.ll-flow'))
      .find(Boolean); return !!s && !!f && f.dataset.moving === 'false' && s.total === {n}
      && s.visible >= {n if at_least is None else at_least}{must}; }}"""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(js, timeout=timeout * 1000, polling=100)
    return nodes_visible(page)


def press_fit(page) -> None:
    """Press the canvas toolbar's Fit and wait until the fit is done and the view still."""
    before = page.evaluate(FITTED_NOW_JS)
    page.locator(".ll-toolbar button", has_text="Fit").first.click()
    page.wait_for_function(FITTED_JS, arg=before, timeout=30_000)


def test_a_returning_user_sees_their_graph(browser, app_server):
    """The view is fitted at the canvas's real size whenever it is shown or resized (issue 29, item 1: every node
    came back 1,500-2,000 px below the visible area, a fit made while the canvas was ~3,600 px tall). A first fit
    in a tall window, the window made 900 px tall, another page and back: on screen are the input node and at least half of the graph."""
    page = new_page(browser, (1440, 2600))
    try:
        open_build(page, app_server)
        pick_template(page, "Transformer-encoder classifier")
        ids = [nd.id for nd in builder.load_template("transformer").graph.nodes]
        page.wait_for_function(NODES_ARE_JS, arg=ids, timeout=30_000)
        page.wait_for_function(FITTED_JS, arg=0, timeout=30_000)
        wait_idle(page)
        page.set_viewport_size({"width": 1440, "height": 900})
        for other in ("", "Train", "Data"):
            if other:
                page.locator("[data-testid=stSidebarNav] a", has_text=other).first.click()
                page.wait_for_selector(f"h1:has-text('{other}')", timeout=30_000)
                wait_idle(page)
                page.locator("[data-testid=stSidebarNav] a", has_text="Build").first.click()
                page.wait_for_function(NODES_ARE_JS, arg=ids, timeout=30_000)
            wait_idle(page)
            seen = wait_all_visible(page, len(ids), at_least=(len(ids) + 1) // 2, including="tokens")
            page.screenshot(path=str(ARTIFACTS / f"layout-return-{other.lower() or 'resized'}.png"))
            # the first view is a readable fit from the input side: the input and most of the graph are on screen
            assert seen["visible"] * 2 >= len(ids) and "tokens" in seen["ids"], (other or "resized", seen)
        assert not page.errors, page.errors
    finally:
        page.context.close()



# The output ports of a node (by id) as drawn.
OUT_PORTS_JS = """(id) => {
  const hosts = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')];
  const root = hosts.map((h) => h.shadowRoot).filter(Boolean).find((r) => r.querySelector('.ll-root'));
  const node = root && root.querySelector(`.react-flow__node[data-id="${id}"]`);
  return node ? [...node.querySelectorAll('.react-flow__handle.source')].map((h) => h.dataset.handleid) : null;
}"""


def test_the_image_input_shows_no_padding_mask_port_and_nothing_covers_nodes(browser, app_server):
    """Issue 29 item 14: the CNN template's image Input showed a ``padding_mask`` port (only a token or sequence
    Input has one; frontend/src/ports.test.js has the rule), and at 1440x900 the minimap sat on ``fc``. The
    starting CNN, as a first visit sees it."""
    page = new_page(browser, (1440, 900))
    try:
        open_build(page, app_server)
        ids = [nd.id for nd in builder.load_template("cnn").graph.nodes]
        page.wait_for_function(NODES_ARE_JS, arg=ids, timeout=30_000)
        page.wait_for_function(PORTS_LAID_OUT_JS, timeout=30_000)
        wait_idle(page)
        page.screenshot(path=str(ARTIFACTS / "layout-cnn-input-ports-1440.png"))
        assert page.evaluate(OUT_PORTS_JS, ids[0]) == ["out"]  # the Input "image": no padding_mask
        assert page.evaluate(OUT_PORTS_JS, "conv1") == ["out"]
        # nothing floats over the nodes (the minimap sat on fc, the zoom buttons on relu1): zoom is in the toolbar
        # and the minimap opens from it
        assert page.locator(".react-flow__minimap").count() == 0
        assert page.locator(".react-flow__controls").count() == 0
        page.locator('.ll-toolbar button[aria-label="Zoom in"]').wait_for()
        assert not page.errors, page.errors
    finally:
        page.context.close()


# Every control of the canvas toolbar (buttons, the cost select, the Find box) with its box on screen and whether
# it lies wholly inside the canvas frame, uncovered at its centre (the Find box was clipped at 1440x900 once the
# toolbar got zoom buttons; the inspector floating at 900 px sat on Cost and Find).
TOOLBAR_JS = """() => {
  const hosts = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')];
  const root = hosts.map((h) => h.shadowRoot).filter(Boolean).find((r) => r.querySelector('.ll-root'));
  const f = root.querySelector('.ll-root').getBoundingClientRect();
  return [...root.querySelectorAll('.ll-toolbar button, .ll-toolbar select, .ll-toolbar input')].map((e) => {
    const b = e.getBoundingClientRect();
    const hit = root.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);  // what a click there reaches
    return { name: e.getAttribute('aria-label') || e.textContent.trim(), left: b.left, right: b.right, width: b.width,
             inside: b.width > 0 && b.left >= f.left - 0.5 && b.right <= f.right + 0.5 && b.top >= f.top - 0.5
                     && b.bottom <= f.bottom + 0.5 && b.right <= window.innerWidth && !!hit && e.contains(hit) }; });
}"""


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_nothing_covers_or_clips_the_canvas(browser, app_server, size):
    """Issue 29: at 1440x900 the toolbar's Find box was clipped; at 900x900 the sidebar floated over the left
    third of Build on a first visit (it now starts collapsed below 1100 px: what a narrow window's menu does) and
    a Fit put the CNN's right column under the inspector floating over the canvas while a layer is selected.
    Fit shows every node of the CNN and the transformer templates in the visible canvas, with a layer selected."""
    page = new_page(browser, size)
    try:
        open_build(page, app_server)
        page.wait_for_function(SIDEBAR_SETTLED_JS, timeout=10_000)
        narrow = size[0] <= 1100
        expect(page.locator("[data-testid=stSidebar]")).to_have_attribute("data-collapsed", str(narrow).lower())
        flow = measure(page)["flow"]
        bar = page.locator("[data-testid=stSidebar]").bounding_box()
        assert bar is None or bar["x"] + bar["width"] <= flow["x"] + 1, (bar, flow)  # beside it, or away
        controls = page.evaluate(TOOLBAR_JS)
        assert len(controls) >= 12, controls
        assert all(c["inside"] for c in controls), [c for c in controls if not c["inside"]]
        assert min(c["width"] for c in controls) >= 28, controls  # none squeezed below its size either
        # the page's Build toolbar says what each button does, in full, on one line (at 900 px they were bare
        # icons: a puzzle for a newcomer)
        # the three download buttons arrive a moment after the popovers (CI measured them before they came)
        tools = ["Import", "PyTorch .py", "Weights", "Project", "Link", "ONNX"]
        page.wait_for_function(f"(want) => JSON.stringify(({BUILD_TOOLS_JS})().map((w) => w.text)) === "
                               "JSON.stringify(want)", arg=tools, timeout=30_000)
        words = page.evaluate(BUILD_TOOLS_JS)
        assert [w["text"] for w in words] == tools, words
        assert all(w["whole"] and w["height"] <= 24 for w in words), words
        for name in ("transformer", "cnn"):  # a new session starts with the CNN: the transformer first
            ids = [nd.id for nd in builder.load_template(name).graph.nodes]
            pick_template(page, builder.load_template(name).name)
            page.wait_for_function(NODES_ARE_JS, arg=ids, timeout=30_000)
            # its toast ("Loaded template …") leaves the guide's buttons free (it sat on How it works and ×)
            page.locator("[data-testid=stToast]").first.wait_for(timeout=10_000)
            hidden = page.evaluate(TOAST_COVERS_JS)
            assert hidden == [], (name, hidden)
            wait_idle(page)
            page.locator(f"[data-testid=node-{ids[1]}]").click()  # a layer selected: the inspector shows it
            page.locator(".st-key-ll_inspector").wait_for(timeout=30_000)
            wait_idle(page)
            # the inspector floating over a narrow window's canvas leaves the toolbar alone (it sat on Cost and Find)
            controls = page.evaluate(TOOLBAR_JS)
            assert all(c["inside"] for c in controls), (name, [c for c in controls if not c["inside"]])
            press_fit(page)
            seen = wait_all_visible(page, len(ids))
            page.screenshot(path=str(ARTIFACTS / f"layout-uncovered-{name}-{size[0]}.png"))
            assert seen["visible"] == len(ids), (name, seen)
        assert not page.errors, page.errors
    finally:
        page.context.close()


# The buttons of the page (the guide's, the toolbar's) a toast covers, by their words.
TOAST_COVERS_JS = """() => { const ts = [...document.querySelectorAll('[data-testid=stToast]')].map((t) => t.getBoundingClientRect());
  return [...document.querySelectorAll('.block-container button')].filter((b) => { const r = b.getBoundingClientRect();
    return r.width > 0 && ts.some((t) => t.left < r.right && r.left < t.right && t.top < r.bottom && r.top < t.bottom); })
    .map((b) => b.innerText.trim()); }"""
# The Build page's toolbar buttons (Import … ONNX): their words, whether each shows whole, and its line height.
BUILD_TOOLS_JS = """() => [...document.querySelectorAll('.st-key-ll_build_tools button')].map((b) => {
  const p = b.querySelector('[data-testid="stMarkdownContainer"]'); if (!p) return null;
  const r = p.getBoundingClientRect(); if (!b.getBoundingClientRect().height) return null;  // a hidden copy
  return {text: p.innerText.trim(), whole: p.scrollWidth <= p.clientWidth + 1 && r.width > 0 &&
          r.right <= b.getBoundingClientRect().right,
          height: Math.round(r.height)}; }).filter((w) => w && w.text)"""
# The canvas toolbar's height and the free canvas's top, as drawn.
TOOLBAR_BOX_JS = """() => { for (const h of document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')) {
  const r = h.shadowRoot && h.shadowRoot.querySelector('.ll-root'); if (!r) continue;
  const t = r.querySelector('.ll-toolbar').getBoundingClientRect();
  return {width: Math.round(t.width), height: Math.round(t.height),
          pane: Math.round(r.querySelector('.react-flow__pane').getBoundingClientRect().y)}; } return null; }"""
WIDTHS = (1920, 1600, 1500, 1440, 1280)


def test_the_canvas_does_not_move_when_layers_arrive_or_are_selected(browser, app_server):
    """The toolbar above the canvas keeps its height whatever the graph holds: at 1600 px it grew a second row when
    the first layer arrived (the cost overlay appeared and pushed the counts down), so the canvas and the palette
    jumped 34 px under the pointer and the next drag from the palette picked up a category header instead of the
    layer (a lost drop). The guide above the canvas changed its height with its text likewise. The starting network,
    empty, one layer, two selected: the same height and canvas top at every width."""
    from e2e_helpers import drag_from_palette, new_project

    page = new_page(browser, (1600, 1000))

    def at_widths() -> dict:
        seen = {}
        for w in WIDTHS:
            page.set_viewport_size({"width": w, "height": 1000})
            page.wait_for_function(f"() => window.innerWidth === {w}")
            seen[w] = page.evaluate("() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => "
                                    f"ok(({TOOLBAR_BOX_JS})()))))")
        page.set_viewport_size({"width": 1600, "height": 1000})
        page.wait_for_function("() => window.innerWidth === 1600")
        return seen

    try:
        open_build(page, app_server)
        template = at_widths()  # the starting network
        new_project(page)
        empty = at_widths()
        drag_from_palette(page, "Input", 120, 200)
        page.locator("[data-testid=node-input_1]").wait_for(timeout=15_000)
        # the graph's annotations arrived: an Input alone is a located problem (no_output: nothing to train)
        page.locator("[data-testid=node-input_1].has-error").wait_for(timeout=30_000)
        wait_idle(page)
        one = at_widths()
        drag_from_palette(page, "Linear", 420, 200)  # right after: nothing moved, so the drop lands
        page.locator("[data-testid=node-linear_1]").wait_for(timeout=15_000)
        wait_idle(page)
        page.locator(".react-flow__pane").first.click(position={"x": 600, "y": 40})
        page.keyboard.press("Control+a")
        expect(page.locator(".ll-counts").first).to_contain_text("2 selected", timeout=10_000)
        selected = at_widths()
        page.screenshot(path=str(ARTIFACTS / "layout-toolbar-two-selected.png"))
        for w in WIDTHS:
            seen = (template[w], empty[w], one[w], selected[w])
            assert len({s["height"] for s in seen}) == 1 and len({s["pane"] for s in seen}) == 1, (w, seen)
            assert empty[w]["height"] < 60, (w, empty[w])  # one row
        assert not page.errors, page.errors
    finally:
        page.context.close()


# The box of node ``id`` on screen, the inspector column's and the floating palette's (null when not shown).
SELECTED_CLEAR_JS = """(id) => {
  const hosts = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')];
  const root = hosts.map((h) => h.shadowRoot).filter(Boolean).find((r) => r.querySelector('.ll-root'));
  const n = root && root.querySelector(`.react-flow__node[data-id="${id}"]`);
  const insp = document.querySelector('[data-testid="stColumn"]:has(.st-key-ll_inspector)');
  const pal = root && root.querySelector('.ll-palette.is-overlay');
  const box = (e) => { if (!e) return null; const b = e.getBoundingClientRect(); return {left: b.left, right: b.right}; };
  return {node: box(n), inspector: box(insp), palette: box(pal),
          moving: root ? root.querySelector('.ll-flow').dataset.moving : null};
}"""


def _select_conv1_narrow(page, app_server) -> None:
    """The Build page with the sidebar collapsed and the CNN's conv1 selected (its inspector open)."""
    open_build(page, app_server)
    collapse_sidebar(page)
    page.locator("[data-testid=node-conv1]").click()
    page.locator(".st-key-ll_inspector").wait_for(timeout=30_000)


def test_the_inspector_does_not_hide_the_layer_it_shows(browser, app_server):
    """At 900x900 the inspector floats over the canvas's right 340 px once a layer is selected: it opened on top of
    the layer just clicked (the CNN's conv1, x 567-750 of a canvas whose free part ended at 550). The view pans that
    layer clear of it. The palette floating on the left steps aside meanwhile (with both open, a third of the
    canvas showed between them, issue 29 item 14) and comes back when the selection ends."""
    page = new_page(browser, (900, 900))
    try:
        _select_conv1_narrow(page, app_server)
        clear = ("(id) => { const s = (" + SELECTED_CLEAR_JS + ")(id); return s.node && s.inspector && s.moving === 'false'"
                 " && s.node.right <= s.inspector.left && !s.palette; }")
        with contextlib.suppress(Exception):
            page.wait_for_function(clear, arg="conv1", timeout=10_000, polling=100)
        seen = page.evaluate(SELECTED_CLEAR_JS, "conv1")
        page.screenshot(path=str(ARTIFACTS / "layout-inspector-reveals-900.png"))
        assert seen["node"]["right"] <= seen["inspector"]["left"], seen
        assert seen["palette"] is None, seen  # stepped aside for the inspector
        assert seen["node"]["left"] >= 0, seen
        page.keyboard.press("Escape")  # the selection ends: the palette is back where the person left it
        page.wait_for_function("(id) => !!(" + SELECTED_CLEAR_JS + ")(id).palette", arg="conv1", timeout=10_000)
        assert not page.errors, page.errors
    finally:
        page.context.close()


# The canvas's status bar (parameters … "No problems") and the inspector floating over a narrow window, as drawn.
STATUS_AND_INSPECTOR_JS = """() => {
  const hosts = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')];
  const root = hosts.map((h) => h.shadowRoot).filter(Boolean).find((r) => r.querySelector('.ll-root'));
  const bar = root && root.querySelector('.ll-summary');
  const ok = root && root.querySelector('.ll-summary .ll-ok, .ll-summary .ll-problems-btn');
  const insp = document.querySelector('[data-testid="stColumn"]:has(.st-key-ll_inspector)');
  const box = (e) => { if (!e) return null; const b = e.getBoundingClientRect();
                       return {left: b.left, right: b.right, top: b.top, bottom: b.bottom}; };
  return {bar: box(bar), status: box(ok), inspector: box(insp), toolbar: box(root && root.querySelector('.ll-toolbar'))};
}"""


def test_the_floating_inspector_leaves_the_status_bar_visible(browser, app_server):
    """At 900x900 the inspector floating bottom-right over the canvas covered the canvas's status bar: its
    "No problems" (or the problems button) and the memory figure were hidden while a layer was selected. It now
    ends above the status bar and still starts below the canvas toolbar."""
    page = new_page(browser, (900, 900))
    try:
        _select_conv1_narrow(page, app_server)
        wait_idle(page)
        seen = page.evaluate(STATUS_AND_INSPECTOR_JS)
        page.screenshot(path=str(ARTIFACTS / "layout-inspector-status-900.png"))
        assert seen["status"] and seen["inspector"], seen
        assert seen["inspector"]["bottom"] <= seen["bar"]["top"] + 0.5, seen  # the status bar shows whole
        assert seen["inspector"]["top"] >= seen["toolbar"]["bottom"] - 0.5, seen  # and the toolbar too
        assert not page.errors, page.errors
    finally:
        page.context.close()


# The guide card's text, as drawn: every piece of it (a text run or an element such as the bold name) and the
# number of lines each takes, and the paragraph's lines in all.
GUIDE_LINES_JS = """() => {
  const p = document.querySelector('.st-key-ll_first_visit [data-testid="stColumn"] [data-testid="stMarkdownContainer"] p');
  if (!p) return null;
  const lines = (rects) => { const tops = [...rects].filter((r) => r.width > 0).map((r) => r.top).sort((a, b) => a - b);
                              return tops.filter((t, i) => i === 0 || t - tops[i - 1] > 8).length; };
  const pieces = [...p.childNodes].map((n) => {
    if (n.nodeType === 3) { const r = document.createRange(); r.selectNodeContents(n);
                            return {text: n.textContent, lines: lines(r.getClientRects())}; }
    return {text: n.textContent, lines: n.getClientRects ? lines(n.getClientRects()) : 0};
  }).filter((x) => x.text.trim());
  const r = document.createRange(); r.selectNodeContents(p);
  return {text: p.innerText, pieces, lines: lines(r.getClientRects())};
}"""


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_guide_card_breaks_its_line_between_phrases(browser, app_server, size):
    """At 900 px the guide card's "1 · Small CNN for 8×8 digits is on the canvas" broke inside its phrase ("is on the
    / canvas"). It says what is on the canvas on one line and names it on the next, each whole."""
    with visit(browser, f"{app_server}/build", "Build", size=size) as page:
        page.locator(".st-key-ll_first_visit").wait_for(timeout=30_000)
        page.wait_for_function(SIDEBAR_SETTLED_JS, timeout=30_000)  # the page's width is final
        if size[0] <= 1100:  # the sidebar starts collapsed there
            page.locator("[data-testid=stSidebar][data-collapsed=true]").wait_for(state="attached", timeout=10_000)
        wait_idle(page)
        # the page's columns settle after the sidebar's collapse (a transition): wait for the lines to be whole
        with contextlib.suppress(Exception):
            page.wait_for_function(f"() => {{ const s = ({GUIDE_LINES_JS})(); return !!s && s.lines <= 2"
                                   " && s.pieces.every((x) => x.lines === 1); }", timeout=10_000, polling=100)
        seen = page.evaluate(GUIDE_LINES_JS)
        page.locator(".st-key-ll_first_visit").screenshot(path=str(ARTIFACTS / f"layout-guide-{size[0]}.png"))
        assert seen and "Small CNN" in seen["text"], seen
        assert all(x["lines"] == 1 for x in seen["pieces"]), seen  # no phrase broken across two lines
        assert seen["lines"] <= 2, seen


# A run's action buttons on the Runs page: their words and whether each shows whole.
RUN_ACTIONS_JS = """() => [...document.querySelectorAll('.st-key-ll_run_actions button')].map((b) => {
  const p = b.querySelector('[data-testid="stMarkdownContainer"]'); if (!p || !b.getBoundingClientRect().height) return null;
  return {text: p.innerText.trim(), whole: p.scrollWidth <= p.clientWidth + 1
          && p.getBoundingClientRect().right <= b.getBoundingClientRect().right + 0.5}; }).filter((w) => w && w.text)"""


def test_a_runs_actions_show_their_words_on_a_narrow_window(browser, app_server):
    """At 900x900 the Runs page's "Open on canvas" showed as "Open on c…" (six buttons with icons in a row)."""
    page = new_page(browser, (900, 900))
    try:
        open_build(page, app_server)
        page.locator(".st-key-ll_train_this button:visible").first.click()  # the guide trains the starting CNN
        page.wait_for_selector("h1:has-text('Train')", timeout=60_000)
        page.locator("[data-testid=stMarkdownContainer] strong", has_text="Finished").first.wait_for(timeout=180_000)
        wait_idle(page)
        page.goto(f"{app_server}/runs")
        page.locator(".st-key-ll_run_actions button").first.wait_for(timeout=60_000)
        wait_idle(page)
        with contextlib.suppress(Exception):  # the row is drawn (all six) and its words are laid out
            page.wait_for_function(f"() => {{ const w = ({RUN_ACTIONS_JS})(); return w.length >= 5"
                                   " && w.every((x) => x.whole); }", timeout=15_000, polling=100)
        words = page.evaluate(RUN_ACTIONS_JS)
        page.screenshot(path=str(ARTIFACTS / "layout-run-actions-900.png"))
        assert "Open on canvas" in [w["text"] for w in words], words
        assert all(w["whole"] for w in words), words
        assert not page.errors, page.errors
    finally:
        page.context.close()


def test_a_replacement_asked_far_down_the_page_is_brought_into_view(browser, app_server):
    """Issue 29: Data's "Load the ... template" (below the preview) asked its Replace/Cancel question at the top of
    the page, out of sight: the click seemed to do nothing. The question is scrolled into view when asked."""
    with visit(browser, f"{app_server}/data", "Data", size=(900, 900)) as page:
        rename_project(page, "My CNN")  # the person's own: replacing it asks
        load = choose_dataset(page, "moons")  # tabular data, the CNN on the canvas
        load.scroll_into_view_if_needed()
        load.click()
        box = page.locator(".st-key-ll_confirm_box")
        box.wait_for(timeout=30_000)
        wait_idle(page)
        expect(box).to_be_in_viewport()
        expect(page.locator(".st-key-ll_confirm_replace button")).to_be_in_viewport()
        header = page.locator("header[data-testid=stHeader]").bounding_box()
        assert box.bounding_box()["y"] >= header["y"] + header["height"] - 1  # its question is not under the header


def test_the_train_pages_figures_show_the_whole_project_name_on_a_narrow_window(browser, app_server):
    """At 900x900 the Train page's Project figure read "Small CNN for 8×8 d…" (a metric's value ended in an
    ellipsis): values wrap, so the whole name is on screen."""
    with visit(browser, f"{app_server}/train", "Train", size=(900, 900)) as page:
        value = page.locator("[data-testid=stMetricValue]").first
        value.wait_for(timeout=60_000)
        wait_idle(page)
        shown = value.evaluate("e => { const p = e.querySelector('p') || e; const r = document.createRange();"
                               " r.selectNodeContents(p); const t = r.getBoundingClientRect(), c = e.getBoundingClientRect();"
                               " const cut = [...e.querySelectorAll('*')].some((x) => x.scrollWidth > x.clientWidth + 1);"
                               " return {text: p.textContent, clipped: cut || t.right > c.right + 1}; }")
        page.screenshot(path=str(ARTIFACTS / "layout-train-figures-900.png"))
        assert shown["text"] == builder.load_template("cnn").name and not shown["clipped"], shown


RANK_BUTTON_JS = """() => { const b = document.querySelector('.st-key-ll_xp_global_go button'); if (!b) return null;
  const p = b.querySelector('[data-testid="stMarkdownContainer"]');
  return {text: p.innerText.trim(), whole: p.scrollWidth <= p.clientWidth + 1}; }"""


def test_explains_ranking_button_shows_its_words_on_a_narrow_window(browser, app_server):
    """At 900x900 Explain's "Rank over 12 test samples" showed as "Rank over 12 tes…" (a fifth of the row), and
    Trust's "Check completeness" as "Check complete…"."""
    page = new_page(browser, (900, 900))
    try:
        page.goto(f"{app_server}/data")
        page.wait_for_selector("h1:has-text('Data')", timeout=90_000)
        wait_idle(page)
        load_fitting_template(page, "iris")  # a table: the page offers the MLP
        page.goto(f"{app_server}/train")
        page.locator("button", has_text="Start training").first.wait_for(timeout=60_000)
        wait_idle(page)
        page.get_by_label("Epochs", exact=True).fill("3")
        page.get_by_label("Epochs", exact=True).press("Tab")
        wait_idle(page)
        page.locator("button", has_text="Start training").first.click()
        page.locator("[data-testid=stMarkdownContainer] strong", has_text="Finished").first.wait_for(timeout=180_000)
        wait_idle(page)
        page.goto(f"{app_server}/explain")
        page.locator(".st-key-ll_xp_global_go button").wait_for(timeout=120_000)
        wait_idle(page)
        words = page.evaluate(RANK_BUTTON_JS)
        page.screenshot(path=str(ARTIFACTS / "layout-explain-ranking-900.png"))
        assert words["text"].startswith("Rank over") and words["whole"], words
        # and Trust's "Check completeness", which read "Check complete…"
        page.get_by_role("tab", name="Trust").click()
        page.locator(".st-key-ll_xp_ig_go button").wait_for(timeout=60_000)
        wait_idle(page)
        words = page.evaluate(RANK_BUTTON_JS.replace("ll_xp_global_go", "ll_xp_ig_go"))
        page.screenshot(path=str(ARTIFACTS / "layout-explain-trust-900.png"))
        assert words["text"] == "Check completeness" and words["whole"], words
        assert not page.errors, page.errors
    finally:
        page.context.close()
