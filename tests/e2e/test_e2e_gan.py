"""End-to-end: a user picks the GAN template, starts training and watches the generator's sample grid appear on
the Train page and change from epoch to epoch (issue 18)."""

from __future__ import annotations

import time

import pytest
from e2e_helpers import open_app, pick_template, shot, start_training, wait_idle
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The sample grid's epoch (from its title) and its rendered image (the heatmap drawn as a data URL), or null.
GRID_JS = """() => {
    const el = document.querySelector('.st-key-ll_fig_samples .js-plotly-plot');
    const img = el && el.querySelector('image');
    const title = el && el.layout && el.layout.title && el.layout.title.text;
    const m = title ? /after epoch (\\d+)/.exec(title) : null;
    return m && img ? [Number(m[1]), img.getAttribute('href') || img.getAttribute('xlink:href') || ''] : null;
}"""


def grid(page):
    """``(epoch, image)`` of the sample grid on screen, or None."""
    got = page.evaluate(GRID_JS)
    return tuple(got) if got else None


def wait_for_grid(page, after: tuple | None, timeout: float) -> tuple:
    """Wait until the sample grid shows, and when ``after`` is given, a later epoch with another image."""
    end = time.monotonic() + timeout
    while True:
        now = grid(page)
        if now and (after is None or (now[0] > after[0] and now[1] != after[1])):
            return now
        if time.monotonic() > end:
            raise TimeoutError(f"the sample grid did not {'appear' if after is None else 'change'} within "
                               f"{timeout:.0f} s; last epoch seen {now[0] if now else None}")
        page.wait_for_timeout(100)


def test_gan_template_trains_and_the_sample_grid_changes(page):
    t0 = time.perf_counter()
    open_app(page)
    pick_template(page, "GAN (MLP, digits)")
    page.wait_for_selector("[data-testid=node-g_fc1]", timeout=30_000)  # the generator is on the canvas
    page.wait_for_selector("[data-testid=node-d_loss_fake]", timeout=30_000)  # and its objective
    wait_idle(page)
    start_training(page, 300)  # the test stops the run once it has seen the grid change
    first = wait_for_grid(page, None, timeout=60)
    shot(page, "gan-grid-first")
    later = wait_for_grid(page, first, timeout=30)
    shot(page, "gan-grid-later")
    assert later[0] > first[0] and later[1] != first[1]
    page.locator(".st-key-ll_stop button").click()
    expect(page.locator("[data-testid=stMain]")).to_contain_text("Stopped", timeout=30_000)
    print(f"grid after epoch {first[0]}, then epoch {later[0]}; {time.perf_counter() - t0:.1f} s in all")
