"""Issue 23 in headless Chromium on the real app: the canvas's cost overlay, and Try it's drawing pad.

One ``streamlit run app.py`` per module with its own ``LAYERLAB_WORKSPACE`` (killed by its process group), the
Chromium the project's CI uses. Waits are for states (DOM conditions, Streamlit's script state), never sleeps.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

import builder
from builder.data.access import SYSTEM
from builder.runs import owners
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from tests.serving import ARTIFACTS, StreamlitServer, chromium_browser

pytestmark = pytest.mark.browser

IDLE_JS = """() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'
    && document.querySelector('[data-testid=stStatusWidget]') === null"""


# Whether an element is cut off at its bottom by an ancestor that clips (crossing shadow roots): null when whole,
# else the clipping ancestor's class and both bottoms.
CLIPPED_JS = """el => { const r = el.getBoundingClientRect(); let n = el;
  while (true) { n = n.parentNode; if (n && n.nodeType === 11) n = n.host;
    if (!n || n.nodeType !== 1) return null;
    const q = n.getBoundingClientRect();
    if (getComputedStyle(n).overflowY !== 'visible' && q.bottom < r.bottom - 1)
      return {by: String(n.className).slice(0, 80), bottom: r.bottom, clip: q.bottom}; } }"""


BROWSER_ID = "0123456789abcdef0123456789abcdef"  # the browser's anonymous owner id (cookie layerlab_owner)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a workspace holding one finished run of the starting digits CNN, owned by the test browser."""
    ws = tmp_path_factory.mktemp("workspace")
    run_training(builder.load_template("cnn"), "digits", {"epochs": 4, "seed": 0}, store=RunStore(ws, actor=SYSTEM),
                 owner=owners.anonymous_owner(BROWSER_ID))
    with StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": str(ws), "LAYERLAB_TORCH_THREADS": "1",
                                        "LAYERLAB_LAUNCHER_IDLE_S": "20"},
                         log_path=ARTIFACTS / "streamlit-issue23.log") as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as b:
        yield b


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    ctx.add_cookies([{"name": "layerlab_owner", "value": BROWSER_ID, "url": server.url}])
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url)
    pg.wait_for_selector("h1", timeout=60_000)
    pg.wait_for_function(IDLE_JS, timeout=60_000)
    yield pg
    ctx.close()
    assert errors == []


def test_cost_overlay_tints_and_labels_nodes(page):
    """The starting project is the digits CNN: conv1 has 9,216 of its 91,776 multiply-adds per sample (10 %)."""
    page.wait_for_selector("[data-testid=node-conv1]", timeout=60_000)
    assert page.locator("[data-testid=cost-conv1]").count() == 0  # off by default
    select = page.get_by_label("Cost overlay")
    # off, parameters, MACs, activation memory, and the measured latency the finished run recorded (latency.json)
    expect(select.locator("option")).to_have_count(5)
    select.select_option("macs")
    cost = page.locator("[data-testid=cost-conv1]")
    expect(cost).to_have_text("9.22k10 %", timeout=10_000)
    expect(page.locator("[data-testid=cost-relu1]")).to_have_text("00 %")
    tint = page.locator("[data-testid=node-conv1]").evaluate("el => getComputedStyle(el).backgroundColor")
    assert tint.startswith("rgba(249, 115, 22"), tint  # orange by its share
    fc = page.locator("[data-testid=node-fc]").evaluate("el => getComputedStyle(el).backgroundColor")
    assert fc != tint  # fc holds most of the MACs: a stronger tint
    select.select_option("params")
    expect(cost).to_have_text("1601.2 %", timeout=10_000)  # 160 of 13,706 parameters
    select.select_option("latency")
    expect(cost).to_contain_text(" ms", timeout=10_000)  # conv1's measured time in the run
    select.select_option("off")
    expect(cost).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "cost-overlay.png"))


def _draw(page, pad, points) -> float:
    """Draw one stroke through ``points`` (fractions of the pad); seconds from the pen lift until the prediction
    and the attribution heatmap are shown."""
    box = pad.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + points[0][0] * w, y0 + points[0][1] * h)
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(x0 + fx * w, y0 + fy * h, steps=4)
    started = time.monotonic()
    page.mouse.up()
    page.locator(".st-key-ll_try_answer-build [data-testid=stMetricValue]").wait_for(timeout=30_000)
    page.locator(".st-key-ll_try_pic-build [data-testid=stImage] img, "
                 "[data-testid=stPlotlyChart] .js-plotly-plot .heatmaplayer").first.wait_for(timeout=30_000)
    return time.monotonic() - started


def test_draw_a_digit_beside_the_canvas(page):
    """Build › Try it on the trained CNN run: draw a 7 with the mouse, see a prediction and an attribution; clear
    and draw a 1. The latency is reported (the attribution is a picture: no plotting bundle to load first). At
    1440x900, where the side panel is narrow (the pad's hint wraps to three lines)."""
    page.set_viewport_size({"width": 1440, "height": 900})
    page.wait_for_selector("[data-testid=node-conv1]", timeout=60_000)
    page.locator(".st-key-ll_side_view button", has_text="Try it").click()
    pad = page.locator("[data-testid=ll-draw-pad]")
    pad.wait_for(timeout=60_000)
    page.wait_for_function(IDLE_JS, timeout=60_000)
    # the hint under the pad is whole: the pad's fixed height cut it to two of its three lines in this panel
    hint = page.locator(".ll-pad-bar span").first
    assert hint.evaluate(CLIPPED_JS) is None, hint.evaluate(CLIPPED_JS)
    answer = page.locator(".st-key-ll_try_answer-build [data-testid=stMetricValue]")
    first = _draw(page, pad, [(0.25, 0.2), (0.5, 0.2), (0.75, 0.2), (0.65, 0.45), (0.55, 0.65), (0.45, 0.85)])
    assert answer.inner_text().strip() in [str(c) for c in range(10)]
    page.screenshot(path=str(ARTIFACTS / "tryit-draw.png"))
    page.get_by_role("button", name="Clear").click()
    answer.wait_for(state="detached", timeout=30_000)
    page.wait_for_function(IDLE_JS, timeout=60_000)
    second = _draw(page, pad, [(0.5, 0.15), (0.5, 0.5), (0.5, 0.85)])
    assert answer.inner_text().strip() in [str(c) for c in range(10)]
    line = f"pen lift to prediction + attribution: first {first:.3f} s, second {second:.3f} s\n"
    (ARTIFACTS / "tryit-draw-latency.txt").write_text(line)
    print(line)
