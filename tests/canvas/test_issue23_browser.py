"""Issue 23 in headless Chromium on the real app: the canvas's cost overlay, and Try it's drawing pad.

One ``streamlit run app.py`` per module with its own ``LAYERLAB_WORKSPACE`` (killed by its process group), the
Chromium the project's CI uses. Waits are for states (DOM conditions, Streamlit's script state), never sleeps.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.serving import ARTIFACTS, StreamlitServer, chromium_browser

pytestmark = pytest.mark.browser

IDLE_JS = """() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'
    && document.querySelector('[data-testid=stStatusWidget]') === null"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ws = tmp_path_factory.mktemp("workspace")
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
    expect(select.locator("option")).to_have_count(4)  # off, parameters, MACs, activation memory (no latency)
    select.select_option("macs")
    cost = page.locator("[data-testid=cost-conv1]")
    expect(cost).to_have_text("9.2k10 %", timeout=10_000)
    expect(page.locator("[data-testid=cost-relu1]")).to_have_text("00 %")
    tint = page.locator("[data-testid=node-conv1]").evaluate("el => getComputedStyle(el).backgroundColor")
    assert tint.startswith("rgba(249, 115, 22"), tint  # orange by its share
    fc = page.locator("[data-testid=node-fc]").evaluate("el => getComputedStyle(el).backgroundColor")
    assert fc != tint  # fc holds most of the MACs: a stronger tint
    select.select_option("params")
    expect(cost).to_have_text("1601.2 %", timeout=10_000)  # 160 of 13,706 parameters
    select.select_option("off")
    expect(cost).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "cost-overlay.png"))
