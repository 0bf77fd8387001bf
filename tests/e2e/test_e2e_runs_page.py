"""End-to-end: the Runs page of a finished run asks the browser only for the JavaScript its elements need.

Issue 29: the page showed seconds after the server had drawn it. Streamlit fetches and evaluates each element
kind's JavaScript on first use; the folded Settings (JSON) block was ``st.code``, whose syntax highlighter is 1.5 MB
of it, evaluated on every first load of the page. The settings are a JSON tree now.
"""

from __future__ import annotations

import pytest
from e2e_helpers import end_jobs, person, wait_idle
from playwright.sync_api import expect

import builder
from builder.data.access import SYSTEM
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from tests.helpers import ME
from tests.serving import ARTIFACTS, StreamlitServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPTS_JS = "() => performance.getEntriesByType('resource').map((r) => r.name).filter((n) => n.endsWith('.js'))"


@pytest.fixture
def server(tmp_path):
    """A server whose workspace holds one finished run of ME's."""
    ws = tmp_path / "ws"
    run_training(builder.load_template("mlp"), "moons", {"epochs": 2}, RunStore(ws, actor=SYSTEM), owner=ME)
    with StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": str(ws), "LAYERLAB_TORCH_THREADS": "1"},
                         log_path=ARTIFACTS / "streamlit-runs-page.log") as srv:
        yield srv
    end_jobs(ws)


def test_a_runs_page_loads_no_code_highlighter(browser, server):
    ctx, page = person(browser, server.url, ME.removeprefix("anon:"))
    page.goto(f"{server.url}/runs")
    main = page.locator("[data-testid=stMain]")
    expect(main).to_contain_text("Run details", timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)  # the curves are drawn: the page is complete
    wait_idle(page)
    loaded = page.evaluate(SCRIPTS_JS)
    assert any("PlotlyChart" in s for s in loaded), loaded  # the list is the page's: its charts' code is in it
    assert not [s for s in loaded if "SyntaxHighlighter" in s], "the page fetched st.code's syntax highlighter"
    page.locator("[data-testid=stExpander]", has_text="Settings (JSON)").locator("summary").click()
    expect(page.locator("[data-testid=stJson]").first).to_contain_text("batch_size", timeout=30_000)
    ctx.close()
