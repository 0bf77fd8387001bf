"""Refresh the documentation's screenshots (docs/screenshots/, shown by README.md and the site): every page at
1440x900 and 900x900 (``make screenshots``).

Not a test (pytest does not collect it) and the only code that writes ``docs/screenshots/``. It starts the app
on 127.0.0.1 with a temporary workspace, opens it in headless Chromium (tests/serving.py), trains the MLP
template on moons for the Train/Runs/Explain pages and writes ``docs/screenshots/<page>-<width>.png``.

    python tests/e2e/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from e2e_helpers import collapse_sidebar, goto_page, pick_template, wait_idle  # noqa: E402

from builder.data.access import SYSTEM  # noqa: E402
from tests.serving import StreamlitServer, launch_chromium  # noqa: E402

FITTED_JS = """() => [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')].some((h) => {
  const f = h.shadowRoot && h.shadowRoot.querySelector('.ll-flow');
  return f && Number(f.dataset.fitted) > 0 && f.dataset.moving === 'false'; })"""


NO_SKELETON_JS = "() => !document.querySelector('[data-testid=stSkeleton]')"


def shoot(page, out: Path, name: str, full: bool = False) -> None:
    page.mouse.move(2, 450)  # no hover effects in the picture
    wait_idle(page)
    page.wait_for_function(NO_SKELETON_JS, timeout=60_000)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    print("wrote", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def train_mlp(page, ws: Path, epochs: int) -> str:
    """Load the MLP-on-moons template, train it, wait for the job; returns the run id."""
    from builder.jobs.queue import wait
    from builder.runs.store import RunStore

    goto_page(page, "Build")
    pick_template(page, "MLP for tabular data")
    page.locator("[data-testid=node-fc1]").wait_for(timeout=60_000)
    goto_page(page, "Train")
    box = page.get_by_label("Epochs", exact=True)
    box.fill(str(epochs))
    box.press("Tab")
    wait_idle(page)
    before = {r["id"] for r in RunStore(ws, actor=SYSTEM).list_runs()}
    page.get_by_role("button", name="Start training").click()
    deadline = time.time() + 60
    while True:
        new = [r["id"] for r in RunStore(ws, actor=SYSTEM).list_runs() if r["id"] not in before]
        if new:
            break
        if time.time() > deadline:
            raise RuntimeError("no run started")
        page.wait_for_timeout(200)
    rid = new[0]
    status = wait(RunStore(ws, actor=SYSTEM), [rid], 600)[rid]
    if status != "finished":
        raise RuntimeError(f"run {rid} ended {status}")
    page.get_by_text("Test results").first.wait_for(timeout=60_000)
    return rid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    ws = Path(tempfile.mkdtemp(prefix="ll-shots-"))
    # the warm job launcher it starts ends itself 20 s after the last job (not the default 10 minutes)
    with StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": str(ws), "LAYERLAB_LAUNCHER_IDLE_S": "20"}) as srv, \
            sync_playwright() as p:
        browser = launch_chromium(p)
        ctx = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        page = ctx.new_page()
        page.goto(f"{srv.url}/build")
        page.locator(".react-flow__node").first.wait_for(timeout=120_000)
        page.wait_for_function(FITTED_JS, timeout=30_000)
        shoot(page, args.out, "build-1440")
        goto_page(page, "Data")
        shoot(page, args.out, "data-1440")
        rid = train_mlp(page, ws, args.epochs)
        page.locator("[data-testid=stPlotlyChart]").nth(3).wait_for(timeout=60_000)
        shoot(page, args.out, "train-1440")
        page.get_by_text("Decision boundary", exact=True).first.scroll_into_view_if_needed()
        shoot(page, args.out, "train-boundary-1440")
        page.goto(f"{srv.url}/runs?run={rid}")
        page.wait_for_selector("h1:has-text('Runs')", timeout=60_000)
        shoot(page, args.out, "runs-1440")
        page.goto(f"{srv.url}/explain?run={rid}")
        page.wait_for_selector("h1:has-text('Explain')", timeout=60_000)
        page.locator("[data-testid=stPlotlyChart]").first.wait_for(timeout=120_000)
        shoot(page, args.out, "explain-1440")
        page.get_by_role("tab", name="Try it").click()
        page.get_by_text("Your input's prediction").first.wait_for(timeout=60_000)
        page.locator("[data-testid=stPlotlyChart]").last.wait_for(timeout=60_000)
        shoot(page, args.out, "explain-try-it-1440")

        page.set_viewport_size({"width": 900, "height": 900})
        for name, path in (("build", "build"), ("data", "data"), ("train", "train"), ("runs", f"runs?run={rid}"),
                           ("explain", f"explain?run={rid}")):
            page.goto(f"{srv.url}/{path}")
            page.wait_for_selector("h1", timeout=60_000)
            wait_idle(page)
            collapse_sidebar(page)  # it floats over the page below 1100 px; remembered once closed
            if name == "build":
                page.wait_for_function(FITTED_JS, timeout=30_000)
            if name in ("explain", "train"):
                page.locator("[data-testid=stPlotlyChart]").first.wait_for(timeout=120_000)
            shoot(page, args.out, f"{name}-900")
        browser.close()


if __name__ == "__main__":
    main()
