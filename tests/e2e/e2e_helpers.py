"""Browser helpers for the LayerLab end-to-end tests (Playwright sync API)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
COOKIE = "layerlab_owner"  # the browser's identity cookie (app_pages/identity.py)


def person(browser, url: str, anon_id: str | None = None, size: tuple[int, int] = (1500, 950)):
    """A browser context and its page on the server at ``url``: a person with the identity ``anon_id`` (the
    cookie's value), or a fresh visitor (None)."""
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
    if anon_id is not None:
        ctx.add_cookies([{"name": COOKIE, "value": anon_id, "url": url}])
    page = ctx.new_page()
    page.base_url = url
    return ctx, page


def end_jobs(ws: Path, launcher: bool = True) -> None:
    """End what a test's server started in workspace ``ws``, by the pids they wrote: the warm launcher
    (SIGTERM; kept with ``launcher=False``, for the next test on the same server) and every job still queued,
    running or paused (SIGKILL: they are processes of their own)."""
    from builder.data.access import SYSTEM
    from builder.jobs import warm
    from builder.runs.store import RunStore

    pidfile = ws / warm.LAUNCHER_PID
    if launcher and pidfile.is_file():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
    if (ws / "layerlab.db").is_file():
        store = RunStore(ws, actor=SYSTEM)
        for r in store.list_runs(limit=100):
            if r["status"] in ("queued", "running", "paused"):
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(store.get(r["id"])["pid"], signal.SIGKILL)


_IDLE_JS = """() => {
    const app = document.querySelector('[data-testid=stApp]');
    return app !== null && app.getAttribute('data-test-script-state') === 'notRunning'
        && document.querySelector('[data-testid=stStatusWidget]') === null;
}"""


def wait_idle(page, timeout: float = 30.0) -> None:
    """Wait until Streamlit is not running a script: the app reports the script state ``notRunning`` (a click
    that asks for a rerun sets ``rerunRequested`` at once) and the status widget is gone.

    Raises:
        TimeoutError: after ``timeout`` seconds, with the last script state and status text seen.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(_IDLE_JS, timeout=timeout * 1000, polling=100)
    except PlaywrightTimeoutError:
        state = page.evaluate("""() => [document.querySelector('[data-testid=stApp]')
                                            ?.getAttribute('data-test-script-state'),
                                        document.querySelector('[data-testid=stStatusWidget]')?.innerText]""")
        raise TimeoutError(f"Streamlit still busy after {timeout:.0f} s: script state {state[0]!r}, "
                           f"status widget {state[1]!r}") from None


NAME_BOX = "[data-testid=stMain] input[aria-label='Name']"  # the inspector's Name box


def expect_name_box(page, value: str, timeout: float = 20.0) -> None:
    """Wait until the inspector's Name box shows ``value``, then until the page is idle with that box alone.

    While a run draws the inspector again, Streamlit shows the new box beside the old one (a new key: it follows the
    graph's label), so the box is found among every Name box first: a locator of one element was a strict-mode
    error there, not a wrong value.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function("""([sel, v]) => [...document.querySelectorAll(sel)].some((e) => e.value === v)""",
                               arg=[NAME_BOX, value], timeout=timeout * 1000, polling=100)
        wait_idle(page)
        page.wait_for_function("""([sel, v]) => { const boxes = [...document.querySelectorAll(sel)];
                                                    return boxes.length === 1 && boxes[0].value === v; }""",
                               arg=[NAME_BOX, value], timeout=timeout * 1000, polling=100)
    except PlaywrightTimeoutError:
        shown = page.evaluate("(sel) => [...document.querySelectorAll(sel)].map((e) => e.value)", NAME_BOX)
        raise AssertionError(f"the inspector's Name boxes show {shown!r}, not {value!r} alone") from None


def identity_cookie(ctx) -> str:
    """The browser's anonymous id: the cookie the server set with the first page (app_pages/identity.py), HttpOnly,
    so that no page of the context can read it from a script."""
    from tests.helpers import until

    cookie = until(lambda: next((c for c in ctx.cookies() if c["name"] == COOKIE), None), "the identity cookie")
    assert cookie["httpOnly"], cookie
    for page in ctx.pages:
        assert COOKIE not in page.evaluate("() => document.cookie"), "a script in the page reads the identity"
    return cookie["value"]


def open_app(page, path: str = "") -> None:
    page.goto(f"{page.base_url}/{path}")
    page.wait_for_selector("h1", timeout=60_000)
    wait_idle(page)


def goto_page(page, title: str, tries: int = 4) -> None:
    """Click a page in the sidebar navigation (again if a rerun swallowed the click)."""
    for i in range(tries):
        page.locator("[data-testid=stSidebarNav] a", has_text=title).first.click()
        try:
            page.wait_for_selector(f"h1:has-text('{title}')", timeout=8_000 if i < tries - 1 else 30_000)
            break
        except Exception:
            if i == tries - 1:
                raise
    wait_idle(page)


def choose_dataset(page, name: str):
    """On the Data page: pick the built-in dataset ``name``; returns its "Load the ... template" button (the data
    does not fit the canvas's network), once shown and the page idle."""
    pick_option(page, page.locator("[data-testid=stSelectbox]", has_text="Dataset").locator("input").first, name)
    load = page.locator(".st-key-ll_fit_template button").first
    load.wait_for(timeout=60_000)
    wait_idle(page)
    return load


def load_fitting_template(page, name: str, *, confirm: bool | None = None) -> None:
    """On the Data page: pick ``name`` and load the template that fits it, answering Replace where the app asks
    (``confirm``: as :func:`pick_template`'s)."""
    choose_dataset(page, name).click()
    answer_replace(page, confirm, done=FITS_JS)


# the canvas's revision of Python's graph (data-revision on its flow element; -1: no canvas on this page)
CANVAS_REVISION_JS = """() => { for (const h of document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')) {
  const f = h.shadowRoot && h.shadowRoot.querySelector('.ll-flow'); if (f) return Number(f.dataset.revision); }
  return -1; }"""
# the Data page says the graph on the canvas fits the chosen data
FITS_JS = """() => [...document.querySelectorAll('[data-testid=stAlert]')].some((a) =>
  a.innerText.includes('The graph trains on this dataset'))"""
_ASKED_JS = "!!document.querySelector('.st-key-ll_confirm_replace button')"


def answer_replace(page, confirm: bool | None = None, *, revision: int | None = None, done: str | None = None) -> None:
    """After a click that replaces the canvas: once the app asked or replaced (the canvas shows a revision after
    ``revision``, or ``done``, a JS function, holds), press Replace where it asks (it asks when the canvas holds
    something of the person's, not for a template as shipped). ``confirm`` True: it must ask; False: it must not;
    None: either."""
    replace = page.locator(".st-key-ll_confirm_replace button")
    if revision is not None and revision >= 0:
        page.wait_for_function(f"(r) => {_ASKED_JS} || ({CANVAS_REVISION_JS})() > r", arg=revision, timeout=30_000)
    elif done is not None:
        page.wait_for_function(f"() => {_ASKED_JS} || ({done})()", timeout=30_000)
    wait_idle(page)
    if confirm is True:
        replace.wait_for(state="visible", timeout=30_000)
    asked = replace.count() > 0
    assert confirm is None or asked == confirm, f"the app {'asked' if asked else 'did not ask'} before replacing"
    if asked:
        replace.click(timeout=30_000)
        # the replacement is done when its confirmation is gone (a click during a rerun is otherwise lost when
        # the test goes on to another page at once)
        replace.wait_for(state="detached", timeout=30_000)
        wait_idle(page)


def fill_field(page, label: str, value) -> None:
    """Type ``value`` into the form field labelled ``label`` and leave it (Tab), as a user does; waits until
    the field shows it."""
    from playwright.sync_api import expect

    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")
    expect(box).to_have_value(str(value))


def start_training(page, epochs: int) -> None:
    """On the Train page: set the epochs, as a user does, and press Start training."""
    goto_page(page, "Train")
    fill_field(page, "Epochs", epochs)
    wait_idle(page, 60)  # the field's rerun (it is the project's setting at once) ended: a click during it can be lost
    page.locator("button", has_text="Start training").first.click()


def new_project(page) -> None:
    """Sidebar › New; confirms the replacement when the canvas holds a project."""
    page.locator("[data-testid=stSidebar] button", has_text="New").first.click()
    confirm = page.locator(".st-key-ll_confirm_replace button")
    empty = page.get_by_text("Start building")
    empty.or_(confirm).first.wait_for(timeout=30_000)
    if confirm.count():
        confirm.click()
    empty.wait_for(timeout=30_000)
    wait_idle(page)


# The app has applied its narrow-window sidebar rule (app_pages/style.py SIDEBAR_JS: collapsed below 1100 px).
SIDEBAR_SETTLED_JS = "() => document.documentElement.dataset.llSidebar === 'settled'"


def collapse_sidebar(page) -> None:
    """Collapse the app sidebar (it floats over the page below 1100 px, where it starts collapsed; Streamlit
    remembers a person's choice)."""
    page.wait_for_function(SIDEBAR_SETTLED_JS, timeout=30_000)  # the app's own collapse is done (no double toggle)
    if page.locator("[data-testid=stSidebar][data-collapsed=false]").count():
        page.locator("[data-testid=stSidebar]").hover()
        page.get_by_role("button", name="Collapse sidebar").click()
        page.locator("[data-testid=stSidebar][data-collapsed=true]").wait_for(state="attached", timeout=10_000)


PROJECT_NAME_JS = """() => (document.querySelector('[data-testid=stSidebar] input[aria-label="Project name"]')
    || {}).value || ''"""


def pick_template(page, title: str, *, confirm: bool | None = None) -> None:
    """Choose a template in the Build page's template picker (:func:`choose_template`), and press Replace where
    the app asks (:func:`answer_replace`: ``confirm`` True, it must ask; False, it must not). Done when the project
    is the template (its name is the template's title): under load a choice made while the first canvas was still
    settling was lost, and the GPT test trained the starting CNN for 240 s waiting for a text sample."""
    for attempt in range(2):
        before = page.evaluate(CANVAS_REVISION_JS)
        choose_template(page, title)
        answer_replace(page, confirm if attempt == 0 else None, revision=before)
        try:
            page.wait_for_function(f"(t) => ({PROJECT_NAME_JS})().includes(t)", arg=title, timeout=30_000)
            return
        except Exception:
            if attempt:
                raise


def choose_template(page, title: str) -> None:
    """Choose a template in the Build page's template picker (a select box that closes after the choice); a
    question the app asks is left unanswered."""
    pick_option(page, page.locator(".st-key-ll_tpl_pick [data-testid=stSelectbox] input").first, title)


def pick_option(page, box, text: str) -> None:
    """Open the select box whose input is ``box`` and click its option containing ``text``. A click that lands
    during a rerun leaves the list closed (seen for templates, and for Data's dataset box in CI): the box is
    opened again until the option shows."""
    import time

    option = page.locator("[role=option]", has_text=text).first
    deadline = time.monotonic() + 30
    while True:
        box.click()
        try:
            option.wait_for(state="visible", timeout=3_000)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            page.keyboard.press("Escape")
    option.click()


def rename_project(page, name: str) -> None:
    """Name the project in the sidebar, as a person does (the canvas then holds something of theirs: replacing it
    asks first); a collapsed sidebar is opened for it and collapsed again."""
    page.wait_for_function(SIDEBAR_SETTLED_JS, timeout=30_000)
    collapsed = page.locator("[data-testid=stSidebar][data-collapsed=true]").count() > 0
    if collapsed:
        page.locator("[data-testid=stExpandSidebarButton]").click()
        page.locator("[data-testid=stSidebar][data-collapsed=false]").wait_for(state="attached", timeout=10_000)
    box = page.locator("[data-testid=stSidebar]").get_by_label("Project name")
    box.fill(name)
    box.press("Enter")
    wait_idle(page)
    if collapsed:
        collapse_sidebar(page)


def pane_box(page) -> dict:
    return page.locator(".react-flow__pane").first.bounding_box()


def drag_from_palette(page, layer_type: str, dx: float, dy: float) -> None:
    """Drag a palette entry onto the canvas at (dx, dy) from the top-left corner of the free canvas (right of
    the palette when it floats over the canvas)."""
    item = page.locator(f"[data-testid=palette-{layer_type}]").first
    item.scroll_into_view_if_needed()
    b = item.bounding_box()
    pane = pane_box(page)
    left = pane["x"]
    floating = page.locator(".ll-palette.is-overlay")
    if floating.count():
        pb = floating.first.bounding_box()
        left = pb["x"] + pb["width"]
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    page.mouse.down()
    tx, ty = left + dx, pane["y"] + dy
    for i in range(1, 11):
        page.mouse.move(b["x"] + (tx - b["x"]) * i / 10, b["y"] + (ty - b["y"]) * i / 10)
    page.mouse.up()


def handle(page, node_id: str, kind: str, port: str | None = None):
    sel = f"[data-testid=node-{node_id}] .react-flow__handle.{kind}"
    if port:
        sel += f"[data-handleid='{port}']"
    return page.locator(sel).first


def stable_box(locator, timeout: float = 5.0) -> dict:
    """The bounding box once it is the same in two animation frames in a row (the canvas may animate its
    viewport after a change).

    Raises:
        TimeoutError: when it is still moving (or not shown) after ``timeout`` seconds, with the last box seen.
    """
    prev = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        box = locator.bounding_box()
        if box is not None and box == prev:
            return box
        prev = box
        locator.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    raise TimeoutError(f"{locator} did not settle within {timeout:.0f} s; last box seen: {prev}")


def connect(page, src: str, dst: str, src_port: str | None = None, dst_port: str | None = None) -> None:
    """Drag from ``src``'s output handle to ``dst``'s input handle."""
    stable_box(handle(page, dst, "target", dst_port))
    a = stable_box(handle(page, src, "source", src_port))
    b = stable_box(handle(page, dst, "target", dst_port))
    ax, ay = a["x"] + a["width"] / 2, a["y"] + a["height"] / 2
    bx, by = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    page.mouse.move(ax, ay)
    page.mouse.down()
    for i in range(1, 13):
        page.mouse.move(ax + (bx - ax) * i / 12, ay + (by - ay) * i / 12)
    page.mouse.up()


def shot(page, name: str) -> None:
    """A screenshot into the ignored test-artifacts/ folder. Tests never write tracked files: README
    screenshots (docs/screenshots) are refreshed by ``make screenshots`` (tests/e2e/screenshots.py)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


CURVE_POINTS_JS = """() => {
    const el = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
    if (!el || !el.data) return 0;
    return el.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
}"""


def curve_points(page) -> int:
    """Number of x values in the live loss chart (plotly's data in the DOM)."""
    return page.evaluate(CURVE_POINTS_JS)


def wait_for_value(page, js: str, at_least: float, what: str, timeout: float = 60.0) -> float:
    """Wait until the page function ``js`` (``() => number``) returns at least ``at_least``; return it.

    Raises:
        TimeoutError: after ``timeout`` seconds, naming ``what`` and the last value seen.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(f"() => ({js})() >= {at_least}", timeout=timeout * 1000, polling=100)
    except PlaywrightTimeoutError:
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last value "
                           f"{page.evaluate(js)!r}, wanted at least {at_least}") from None
    return page.evaluate(js)


def wait_for_curve_points(page, more_than: int = 0, timeout: float = 60.0) -> int:
    """Wait until the live loss chart has more than ``more_than`` points; return how many."""
    return int(wait_for_value(page, CURVE_POINTS_JS, more_than + 1, f"more than {more_than} curve point(s)",
                              timeout))
