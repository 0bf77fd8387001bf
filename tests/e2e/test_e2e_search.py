"""End-to-end: a search over the network drawn on the canvas, in the browser: the study runs in its own
process, its trials show live, and the best trial's parameters land on the canvas."""

from __future__ import annotations

import re

import pytest
from e2e_helpers import fill_field, goto_page, open_app, pick_template, wait_idle
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def metric(page, label: str):
    return page.locator("[data-testid=stMetric]", has_text=label).first


def test_search_runs_live_and_puts_the_best_on_the_canvas(page):
    open_app(page)
    pick_template(page, "MLP for tabular data")  # MLP on moons: fc1 (2 -> 32), fc2, head
    goto_page(page, "Train")
    page.locator("[data-testid=stButtonGroup] button", has_text="Search").first.click()
    start = page.get_by_role("button", name=re.compile("Start search"))
    start.wait_for(timeout=30_000)
    wait_idle(page)

    # the canvas nodes' parameters are searchable: fc1's width from a choice list
    page.locator("[data-testid=stExpander] summary", has_text="Searchable node parameters").click()
    fill_field(page, "fc1.out_features", "{4,24}")
    fill_field(page, "Trials", "2")
    fill_field(page, "Epochs per trial", "2")
    fill_field(page, "Study name", "e2e-study")
    wait_idle(page)  # the last field's rerun ended: a click during it can be lost
    start.click()

    # the study shows up running, then both trials finish (each trial is a job; the page polls the study)
    expect(metric(page, "Study")).to_contain_text("e2e-study", timeout=60_000)
    expect(metric(page, "Trials")).to_contain_text("2 / 2", timeout=300_000)
    expect(metric(page, "Status")).to_contain_text("finished", timeout=120_000)
    best = page.get_by_text(re.compile(r"Best so far: .*fc1\.out_features=(4|24)\b"))
    expect(best).to_be_visible(timeout=30_000)
    width = int(re.search(r"fc1\.out_features=(\d+)", best.inner_text()).group(1))

    # the best trial onto the canvas: the Build page shows fc1 with that width (2 inputs: 3 x width params)
    page.locator(".st-key-ll_s_canvas button").click()
    page.wait_for_selector("h1:has-text('Build')", timeout=30_000)
    node = page.locator("[data-testid=node-fc1]")
    expect(node).to_contain_text(f"{3 * width} params", timeout=30_000)
