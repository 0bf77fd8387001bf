"""What one page load of the app costs the browser tests' Chromium, with the test flags (tests/serving.py) and
without the address bar's popup switched off: CPU seconds of every Chromium process of each browser, a new context
and page per load as the browser tests open them, both browsers side by side on one server, loads interleaved.

Usage::

    .venv/bin/python bench/bench_browser.py            # writes the "Browser tests: CPU per page load" section
    .venv/bin/python bench/bench_browser.py --no-write # print only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import commit, conditions, spread, write_section  # noqa: E402
from bench.suite_cpu import proc_cpu  # noqa: E402
from tests.serving import CHROMIUM_ARGS, StreamlitServer, find_chromium  # noqa: E402

SECTION = "## Browser tests: CPU per page load"


def browser_cpu(profile: str) -> float:
    """User + system CPU seconds of the live Chromium processes whose command line names ``profile`` (each
    Playwright launch has a user-data folder of its own). A process that has ended is not counted: read it while
    the page's renderers live."""
    total = 0.0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if profile.encode() not in Path(f"/proc/{p}/cmdline").read_bytes():
                continue
            total += proc_cpu(p)
        except OSError:
            continue
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=6, help="page loads per browser")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    conditions("browser page loads")
    before = [a for a in CHROMIUM_ARGS if not a.startswith("--disable-features=")]  # Playwright's own list stands
    cost: dict[str, list[float]] = {"test flags": [], "popup on": []}
    with tempfile.TemporaryDirectory() as ws, StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": ws}) as srv, \
            sync_playwright() as pw:
        browsers = {name: pw.chromium.launch(executable_path=find_chromium(), args=a)
                    for name, a in (("test flags", CHROMIUM_ARGS), ("popup on", before))}
        profiles = {}
        for name, b in browsers.items():
            page = b.new_context().new_page()
            page.goto("chrome://version")
            line = page.locator("#command_line").inner_text()
            profiles[name] = next(a for a in line.split() if a.startswith("--user-data-dir="))
            page.context.close()
        for _ in range(args.loads + 1):  # the first round warms the server's session code: not counted
            for name, b in browsers.items():
                start = browser_cpu(profiles[name])
                ctx = b.new_context(viewport={"width": 1440, "height": 900})
                page = ctx.new_page()
                page.goto(srv.url)
                page.locator(".react-flow__node").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)  # what the page does right after its first node
                cost[name].append(browser_cpu(profiles[name]) - start)  # before its renderers end with the context
                ctx.close()
                time.sleep(0.5)
        for b in browsers.values():
            b.close()
    cost = {k: v[1:] for k, v in cost.items()}
    ratio = [a / b for a, b in zip(cost["test flags"], cost["popup on"], strict=True)]
    lines = [SECTION, "",
             f"Commit {commit()}. Chromium CPU seconds (all its processes) per load of the app's Build page in a new "
             "context, to the first canvas node + 1.5 s, the two browsers' loads interleaved on one server "
             "(bench/bench_browser.py):", "",
             f"- tests' flags (the address bar's popup off): {spread(cost['test flags'], unit=' CPU-s')}",
             f"- Playwright's flags alone (the popup on): {spread(cost['popup on'], unit=' CPU-s')}",
             f"- ratio, load by load: {spread(ratio)}", ""]
    print("\n".join(lines))
    if not args.no_write:
        write_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
