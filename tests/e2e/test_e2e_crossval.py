"""End-to-end: Train › Cross-validate with a graph that crashes torch. The folds are jobs (sandboxed processes
of their own): the crashing fold is a failed run with one line, the other fold finishes, and the server goes on
answering this browser and another page.

The crash is the job test hook ``LAYERLAB_TEST_CRASH_JOB`` (read only inside the sandboxed job process): the job
of fold 1 dies by SIGSEGV before it builds the model, as a segfault in torch's native code would.
"""

from __future__ import annotations

import re
import urllib.request

import pytest
from e2e_helpers import end_jobs, fill_field, goto_page, open_app, person, wait_idle
from playwright.sync_api import expect

from builder.data.access import SYSTEM
from builder.jobs import queue as jobs
from builder.jobs.job_sandbox import TEST_CRASH_ENV
from builder.runs.store import RunStore
from tests.serving import ARTIFACTS, StreamlitServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ENV = {"LAYERLAB_TORCH_THREADS": "1", "LAYERLAB_MAX_JOBS": "2", "LAYERLAB_LAUNCHER_IDLE_S": "30",
       TEST_CRASH_ENV: "fold 1/"}


@pytest.fixture
def server(tmp_path):
    ws = tmp_path / "ws"
    with StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": str(ws), **ENV},
                         log_path=ARTIFACTS / "streamlit-crossval.log") as srv:
        yield srv, ws
    end_jobs(ws)


def test_a_crashing_fold_fails_with_one_line_and_the_server_keeps_serving(browser, server):
    srv, ws = server
    pid = srv.proc.pid
    ctx, page = person(browser, srv.url)
    open_app(page)  # the first visit's CNN on 8x8 digits (small: cross-validation is offered)
    goto_page(page, "Train")
    page.locator("[data-testid=stButtonGroup] button", has_text="Cross-validate").first.click()
    go = page.get_by_role("button", name=re.compile("Run cross-validation"))
    go.wait_for(timeout=30_000)
    wait_idle(page)
    fill_field(page, "Folds (K)", "2")
    fill_field(page, "Epochs per fold", "1")
    wait_idle(page)  # the last field's rerun ended: a click during it can be lost
    go.click()

    main = page.locator("[data-testid=stMain]")
    # fold 1's job died by SIGSEGV: one line on the page; fold 2 trained in its own process and finished
    crash = page.locator("[data-testid=stAlertContentError]", has_text="Fold 1")
    expect(crash).to_contain_text("SIGSEGV", timeout=240_000)
    message = crash.first.locator("[data-testid=stMarkdownContainer]").first.inner_text().strip()  # not the icon
    assert "SIGSEGV" in message and "\n" not in message
    expect(main).to_contain_text("runs tagged crossval=", timeout=60_000)
    store = RunStore(ws, actor=SYSTEM)
    runs = sorted(store.list_runs(limit=10), key=lambda r: r["tags"]["fold"])
    statuses = jobs.wait(store, [r["id"] for r in runs], 240)
    assert [statuses[r["id"]] for r in runs] == ["failed", "finished"], [store.get(r["id"])["message"] for r in runs]
    expect(page.locator("[data-testid=stMetric]", has_text="accuracy").first).to_be_visible(timeout=60_000)

    # the same server process answers: its health endpoint, another page of this browser and another person
    assert srv.proc.poll() is None and srv.proc.pid == pid
    with urllib.request.urlopen(f"{srv.url}/_stcore/health", timeout=30) as r:
        assert r.status == 200
    goto_page(page, "Runs")
    expect(main).to_contain_text("Run details", timeout=60_000)
    expect(main).to_contain_text(re.compile("|".join(r["id"] for r in runs)), timeout=30_000)
    other_ctx, other = person(browser, srv.url)
    other.goto(f"{srv.url}/runs")
    expect(other.locator("[data-testid=stMain]")).to_contain_text("No runs yet", timeout=60_000)  # not this one's
    other_ctx.close()
    ctx.close()
