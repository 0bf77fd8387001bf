"""End-to-end: train the CNN template on digits in the browser, stop, find the run; two sessions at once."""

from __future__ import annotations

import re
import time

import pytest
from e2e_helpers import (
    curve_points,
    fill_field,
    goto_page,
    open_app,
    pick_template,
    shot,
    wait_for_curve_points,
    wait_idle,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_RE = re.compile(r"run (\d{8}-\d{6}-[0-9a-f]{6})")


def load_cnn(page) -> None:
    # a new visitor's canvas holds this very template: picking it again asks nothing (nothing would be lost)
    pick_template(page, "Small CNN for 8×8 digits", confirm=False)
    page.wait_for_selector("[data-testid=node-conv1]", timeout=30_000)
    wait_idle(page)


def progress(page) -> tuple[float, str]:
    bar = page.locator("[data-testid=stProgress] [role=progressbar]").first
    now = float(bar.get_attribute("aria-valuenow") or 0)
    text = page.locator("[data-testid=stProgress]").first.inner_text()
    return now, text


def start(page, epochs: int) -> float:
    goto_page(page, "Train")
    fill_field(page, "Epochs", epochs)
    if epochs > 50:  # a long run the test stops itself: early stopping (the template's default) off
        fill_field(page, "Early stopping patience", 0)
    t0 = time.perf_counter()
    page.locator("button", has_text="Start training").first.click()
    return t0


def run_id_of(page) -> str:
    page.wait_for_selector("text=/run \\d{8}-/", timeout=30_000)
    m = RUN_RE.search(page.locator("[data-testid=stMain]").inner_text())
    assert m, "the Train page names its run"
    return m.group(1)


def test_train_cnn_on_digits_stop_and_find_run(page):
    open_app(page)
    load_cnn(page)
    page.keyboard.press("Escape")  # close the templates menu
    # the inspector is on (a toggle found off here once made the loop below fail with no word of why)
    expect(page.locator(".st-key-ll_show_inspector input")).to_be_checked(timeout=15_000)
    for attempt in range(4):  # under load the first click can land before the canvas has settled
        page.locator("[data-testid=node-conv2] .ll-node-title").click()  # the inspector shows conv2
        try:
            page.locator("h3:has-text('Conv2d')").wait_for(timeout=15_000)
            break
        except PlaywrightTimeoutError:
            if attempt == 3:
                raise
    wait_idle(page)
    expect(page.locator("[data-testid=stToast]")).to_have_count(0, timeout=15_000)  # the toast has faded
    shot(page, "build-cnn")
    t0 = start(page, 400)
    # the first curve point arrives (first_point_s is recorded, never asserted: a loaded machine is slow)
    wait_for_curve_points(page, 0, timeout=90)
    first_point_s = time.perf_counter() - t0
    run_id = run_id_of(page)
    p1, _ = progress(page)
    n1 = curve_points(page)
    deadline = time.time() + 60  # the page refreshes every 2 s once the first point is shown
    while True:
        p2, text = progress(page)
        n2 = curve_points(page)
        if (n2 > n1 and p2 > p1) or time.time() > deadline:
            break
        page.wait_for_timeout(100)
    assert n2 > n1, "the curve gains points"
    assert p2 > p1, "the progress bar moves"
    assert re.search(r"Epoch \d+/400", text) and "samples/s" in text
    shot(page, "train-live")
    page.locator(".st-key-ll_stop button").click()
    expect(page.locator("[data-testid=stMain]")).to_contain_text("Stopped", timeout=30_000)
    shot(page, "train-stopped")
    goto_page(page, "Runs")
    expect(page.locator("[data-testid=stMain]")).to_contain_text(run_id, timeout=30_000)
    shot(page, "runs")
    print(f"first curve point after {first_point_s:.2f} s")


def test_two_sessions_train_at_once_and_see_only_their_own(browser, app_server):
    pages = []
    try:
        for _ in range(2):
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            pg = ctx.new_page()
            pg.base_url = app_server
            pages.append(pg)
            open_app(pg)
            load_cnn(pg)
        start(pages[0], 400)
        start(pages[1], 400)
        ids = [run_id_of(pg) for pg in pages]
        assert ids[0] != ids[1]
        for pg in pages:
            wait_for_curve_points(pg, 0, timeout=90)
        for pg, mine, other in ((pages[0], ids[0], ids[1]), (pages[1], ids[1], ids[0])):
            text = pg.locator("[data-testid=stMain]").inner_text()
            assert mine in text and other not in text
        for pg in pages:
            pg.locator(".st-key-ll_stop button").click()
        for pg in pages:
            expect(pg.locator("[data-testid=stMain]")).to_contain_text("Stopped", timeout=30_000)
        shot(pages[1], "two-sessions")
    finally:
        for pg in pages:
            pg.context.close()


def test_finished_run_shows_test_results_and_explain_page(page):
    open_app(page)
    load_cnn(page)
    start(page, 15)
    expect(page.locator("[data-testid=stMain]")).to_contain_text("Test results", timeout=120_000)
    main = page.locator("[data-testid=stMain]")
    expect(main).to_contain_text("Accuracy")
    expect(main).to_contain_text("Per class")
    page.locator("text=Confusion matrix (test)").first.wait_for(timeout=30_000)
    shot(page, "train-finished")
    goto_page(page, "Explain")
    wait_idle(page, timeout=120)
    page.wait_for_selector("text=Methods (side by side)", timeout=60_000)  # the finished run is explained
    wait_idle(page)
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.dialogs == []
    shot(page, "explain")


# The live view's progress bar, as a number (the epoch's share of the run).
PROGRESS_JS = """() => { const b = document.querySelector('[data-testid=stProgress] [role=progressbar]');
  return b ? Number(b.getAttribute('aria-valuenow') || 0) : -1; }"""


def test_a_run_stopped_and_resumed_on_the_train_page_is_followed_live(page):
    """Stop, then Resume where Pause was: the page stayed at the stopped epoch, reading "Stopping · place 1 in the
    queue", while the resumed run trained to its end (Resume reran only the view, which did not refresh)."""
    open_app(page)
    load_cnn(page)
    start(page, 400)
    wait_for_curve_points(page, 0, timeout=90)
    main = page.locator("[data-testid=stMain]")
    side = page.locator("[data-testid=stSidebar]")
    # the sidebar's job count follows Pause and Resume on this page (it said "1 training job running" beside
    # "Paused" until one left the page: issue 29)
    page.locator(".st-key-ll_pause button").click()
    expect(main).to_contain_text("Paused", timeout=30_000)
    expect(side).to_contain_text("1 training job paused", timeout=15_000)
    page.locator(".st-key-ll_resume button").click()
    expect(side).to_contain_text("1 training job running", timeout=30_000)
    # the live view reruns the whole page once when the run's status changes (08cec89): a click landing on the
    # button that rerun replaces was lost under load (a fresh clone's run: the run trained to its end)
    wait_idle(page)
    page.locator(".st-key-ll_stop button").click()
    expect(main).to_contain_text("Stopped", timeout=30_000)
    wait_idle(page)
    stopped = page.evaluate(PROGRESS_JS)
    page.locator(".st-key-ll_train_resume button").first.click()
    # the view follows the resumed run: its progress moves on from where it stopped
    page.wait_for_function(f"() => ({PROGRESS_JS})() > {stopped}", timeout=90_000, polling=250)
    expect(page.locator("[data-testid=stMarkdownContainer] strong", has_text="Running").first).to_be_visible(timeout=30_000)
    assert page.locator("[data-testid=stMarkdownContainer] strong", has_text="Stopping").count() == 0
    shot(page, "train-resumed")
    page.locator(".st-key-ll_stop button").click()  # end the long run
    expect(main).to_contain_text("Stopped", timeout=30_000)


# the epoch slider's value as the browser draws it (its thumb's label)
SLIDER_SHOWS_JS = """() => [...document.querySelectorAll('[data-testid=stSliderThumbValue]')].map((e) => e.innerText)"""


def test_after_a_replay_the_epoch_slider_shows_the_epoch_the_charts_show(page):
    """helper-75: when a replay ended, the charts stood at the run's last epoch and the slider under "Epoch shown"
    read 1, at its far left (12-epoch MLP at 900x900 and 1440x900; reloading the page drew 12)."""
    open_app(page)
    load_cnn(page)
    start(page, 3)
    main = page.locator("[data-testid=stMain]")
    expect(main).to_contain_text("Test results", timeout=120_000)
    expect(main.get_by_text("Epoch shown")).to_be_visible(timeout=60_000)  # a quick run's own replay has ended
    wait_idle(page)
    page.locator(".st-key-ll_replay_play button").first.click()  # (a button with help is drawn twice)
    expect(main).to_contain_text("Replaying the run", timeout=30_000)
    expect(main.get_by_text("Epoch shown")).to_be_visible(timeout=60_000)
    wait_idle(page)
    assert page.evaluate(SLIDER_SHOWS_JS) == ["3"]
