"""End-to-end: train the digits CNN in the browser, open Explain, see the attribution heatmaps.

Uses the app server of ``conftest.py`` (its own ``LAYERLAB_WORKSPACE``, killed by PID) and a Chromium
started here with the flags the project's CI uses. Under ``CI=true`` a missing Chromium is a failure.
"""

from __future__ import annotations

import pytest
from e2e_helpers import ARTIFACTS, goto_page, open_app, shot, start_training, wait_for_value, wait_idle
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HEATMAPS_JS = """() => Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot'))
    .filter(el => el.offsetParent !== null && el.getBoundingClientRect().height > 100)
    .map(el => (el.data || []).filter(t => t.type === 'heatmap').length)
    .reduce((a, b) => a + b, 0)"""


def _train_cnn(page, epochs: int = 3) -> None:
    """The default project is the digits CNN template: train it for a few epochs on the Train page."""
    start_training(page, epochs)
    page.wait_for_selector("text=Test results", timeout=120_000)
    wait_idle(page)


def test_explain_digits_cnn_heatmap(page):
    open_app(page)
    _train_cnn(page)
    goto_page(page, "Explain")
    main = page.locator("[data-testid=stMain]")
    page.wait_for_selector("text=Methods (side by side)", timeout=60_000)
    wait_idle(page)
    # one heatmap per method, plus the overlays
    wait_for_value(page, HEATMAPS_JS, 3, "attribution heatmaps on the Explain page", timeout=60)
    heat = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot .heatmaplayer, "
                        "[data-testid=stPlotlyChart] .js-plotly-plot image").first
    assert heat.count() == 1 and heat.is_visible()
    text = main.inner_text()
    for words in ("Saliency", "Integrated Gradients", "Grad-CAM", "Prediction", "True label"):
        assert words in text, f"{words!r} missing from the Explain page"
    assert "Traceback" not in text
    page.mouse.move(5, 500)  # no hover labels in the screenshot
    shot(page, "explain")

    # every tab renders without an error
    for tab in ("Attention", "Activations & weights", "Trust", "Live"):
        page.get_by_role("tab", name=tab).click()
        wait_idle(page)
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true", timeout=30_000)
        wait_idle(page)  # the tab is shown and the run that draws it has ended
        assert page.locator("[data-testid=stException]").count() == 0, f"exception on the {tab} tab"
        page.screenshot(path=str(ARTIFACTS / f"explain-tab-{tab.split()[0].lower()}.png"), full_page=True)
    page.get_by_role("tab", name="Activations & weights").click()
    wait_idle(page)
    page.get_by_text("ch 0", exact=True).first.wait_for(timeout=30_000)  # the feature-map grid of conv1
    page.get_by_text("conv1.weight", exact=False).first.wait_for(timeout=30_000)  # weight histograms
    shot(page, "explain-activations")
