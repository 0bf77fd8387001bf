"""The canvas takes the page: first visit (cold and warm), where the canvas starts and how much of the window it
takes, and how many nodes of every template are on screen at its first view and after Fit, at 1440x900 and
900x900 (issue 29, items 1 and 14).

One fresh ``streamlit run app.py`` (its own workspace) and headless Chromium. Cold = the first visit to
``/build`` on the new server, warm = a second browser session, both to the canvas's own mark
``layerlab:canvas:visible``. Per size, a fresh browser context (a first visit: the guide card is shown, the
palette open; at 900 px the sidebar is collapsed, as a user does once) opens Build, then picks every template
and counts the nodes whose box is wholly inside the visible canvas (inside the window, right of a floating
palette) at the automatic view and after pressing Fit. Writes the section in bench/RESULTS.md.

    python bench/bench_layout.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import builder  # noqa: E402
from bench.bench_startup import visit as first_visit  # noqa: E402
from bench.results import write_section  # noqa: E402
from tests.serving import StreamlitServer, launch_chromium  # noqa: E402

SIZES = [(1440, 900), (900, 900)]


def measure_size(browser, url: str, size: tuple[int, int]) -> dict:
    """Canvas top/height/share and, per template, nodes visible at the first view and after Fit."""
    from e2e_helpers import collapse_sidebar, pick_template, wait_idle
    from test_e2e_layout import (
        FITTED_JS,
        NODES_ARE_JS,
        nodes_visible,
        open_build,
        press_fit,
        wait_all_visible,
    )

    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]}, device_scale_factor=1)
    page = ctx.new_page()
    try:
        open_build(page, url)
        if size[0] < 1100:
            collapse_sidebar(page)
            wait_idle(page)
        seen = nodes_visible(page)
        out = {"top": seen["flowTop"], "height": seen["flowHeight"],
               "share": seen["flowHeight"] * page.evaluate(
                   "() => { const h = [...document.querySelectorAll('[data-testid=\"stBidiComponentIsolated\"]')]"
                   ".map((e) => e.shadowRoot && e.shadowRoot.querySelector('.ll-flow')).find(Boolean);"
                   " return h.getBoundingClientRect().width; }") / (size[0] * size[1]), "templates": {}}
        page.screenshot(path=str(ROOT / "test-artifacts" / f"bench-layout-{size[0]}.png"))
        for t in sorted(builder.list_templates(), key=lambda t: t["name"] == "cnn"):
            ids = [n.id for n in builder.load_template(t["name"]).graph.nodes]
            pick_template(page, t["title"])
            page.wait_for_function(NODES_ARE_JS, arg=ids, timeout=30_000)
            page.wait_for_function(FITTED_JS, arg=0, timeout=30_000)
            wait_idle(page)
            first = wait_all_visible(page, len(ids), timeout=3)
            press_fit(page)
            fit = wait_all_visible(page, len(ids), timeout=3)
            out["templates"][t["name"]] = (first["visible"], fit["visible"], len(ids))
            page.screenshot(path=str(ROOT / "test-artifacts" / f"bench-layout-{size[0]}-{t['name']}.png"))
        return out
    finally:
        ctx.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        ws = tempfile.mkdtemp(prefix="ll-bench-layout-")
        with StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": ws}) as srv:
            cold = first_visit(browser, srv.url)
            warm = first_visit(browser, srv.url)
            rows = {size: measure_size(browser, srv.url, size) for size in SIZES}
        browser.close()
    load = os.getloadavg()[0]
    lines = [f"## Canvas takes the page (bench/bench_layout.py, issue 29, {time.strftime('%Y-%m-%d')})", "",
             f"First visit to a visible canvas on a fresh `streamlit run app.py`: cold {cold:.2f} s, warm (a second "
             f"session) {warm:.2f} s; machine load {load:.1f} on a shared 2-core CPU.", "",
             "| window | canvas top (px) | canvas height (px) | canvas share of the window |",
             "|---|---|---|---|"]
    for size, r in rows.items():
        lines.append(f"| {size[0]}x{size[1]} | {r['top']:.0f} ({r['top'] / size[1]:.0%}) | {r['height']:.0f} | "
                     f"{r['share']:.0%} |")
    lines += ["", "Nodes wholly on screen (inside the window, right of the floating palette, first visit with the "
              "guide card shown): first view / after Fit / total.", "",
              "| template | " + " | ".join(f"{w}x{h}" for w, h in SIZES) + " |", "|---|" + "---|" * len(SIZES)]
    for name in rows[SIZES[0]]["templates"]:
        cells = ["{} / {} / {}".format(*rows[s]["templates"][name]) for s in SIZES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section("## Canvas takes the page (bench/bench_layout.py", text)


if __name__ == "__main__":
    main()
