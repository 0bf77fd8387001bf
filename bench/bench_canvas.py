"""Canvas with big graphs: time to first render and frames per second during a scripted pan/zoom.

    .venv/bin/python bench/bench_canvas.py [--sizes 500 2000] [--rounds 5] [--gesture-rounds 1] [--open-only]
        [--screenshots DIR]

Serves tests/canvas/big_app.py (a graph with a ResNet-style module hierarchy, DETR-style above 1,000 nodes)
on 127.0.0.1 and opens it in headless Chromium (/usr/bin/chromium, software rendering: --disable-gpu).
Open time = navigation start -> the canvas's first fitted view (``data-fitted`` >= 1) with every shown
node measured; it includes Streamlit's start of the page. The page's own marks split it: ``data`` (the
component first called with Python's data), ``visible`` (nodes measured and shown), ``fitted`` (the first
fitted view; bundles without that mark: when Playwright saw it), each from navigation start.
``--rounds N`` opens each size N times, each with a fresh server and page, and prints the open figures as
median (spread: p10-p90, min-max below 5 rounds; bench/results.py), after the conditions line. The first
``--gesture-rounds`` of them (default 1) also run the gestures below, printed the same way (n=1: a single
value, said so by the count). Frames per second = requestAnimationFrame
callbacks counted in the page during 3 s of mouse-wheel zooms and drags, then again with every layer shown
("Blocks: off"). Then one block is expanded by a click and a node is found with the search box.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import conditions, spread  # noqa: E402
from tests.serving import StreamlitServer, launch_chromium  # noqa: E402

APP = ROOT / "tests" / "canvas" / "big_app.py"
FLOW = ".ll-flow"

FPS_JS = """async (ms) => {
  let frames = 0; let worst = 0; let last = performance.now(); const t0 = last;
  await new Promise((done) => {
    const tick = (t) => { frames += 1; worst = Math.max(worst, t - last); last = t;
      if (t - t0 < ms) requestAnimationFrame(tick); else done(); };
    requestAnimationFrame(tick);
  });
  return { fps: frames / ((last - t0) / 1000), worst_ms: worst };
}"""


def gesture(page, box, seconds: float) -> None:
    """Wheel zooms and mouse drags over the canvas for about ``seconds``."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        page.mouse.move(cx, cy)
        page.mouse.wheel(0, -120 if k % 4 < 2 else 120)
        page.mouse.move(cx - 100, cy)
        page.mouse.down()
        for i in range(8):
            page.mouse.move(cx - 100 + 25 * i * (1 if k % 2 else -1), cy + 10 * i)
        page.mouse.up()
        k += 1


def measure(page, box) -> dict:
    """FPS while the gesture runs (the counter runs in the page, the gesture from Python)."""
    handle = page.evaluate_handle(f"() => {{ window.__fps = ({FPS_JS})(3000); return 1; }}")
    handle.dispose()
    gesture(page, box, 3.0)
    return page.evaluate("() => window.__fps")


MARKS_JS = """(el) => {
  const at = (name) => { const m = performance.getEntriesByName(name); return m.length ? m[0].startTime : null; };
  return { data_ms: at('layerlab:canvas:data'), visible_ms: at('layerlab:canvas:visible'),
           fitted_ms: at('layerlab:canvas:fitted') ?? performance.now(),
           shown: el.dataset.shown, blocks: el.dataset.blocks };
}"""


def run(size: int, shots: Path | None, browser, open_only: bool = False) -> dict:
    server = StreamlitServer(APP, env={"LAYERLAB_BIG_NODES": str(size)}, extra_args=["--runner.postScriptGC", "false"])
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        t0 = time.perf_counter()
        page.goto(server.url)
        flow = page.locator(FLOW)
        flow.wait_for(timeout=60000)
        el = flow.element_handle()  # inside the component's shadow root: handed to the page functions
        page.wait_for_function("(el) => Number(el.dataset.fitted) >= 1", arg=el, timeout=60000)
        opened = time.perf_counter() - t0
        info = flow.evaluate(MARKS_JS)  # the page's marks, since navigation start in the page's clock
        if open_only:
            page.close()
            return {"size": size, "open_s": opened, **info, "errors": errors}
        box = flow.bounding_box()
        if shots:
            page.screenshot(path=str(shots / f"canvas_{size}_collapsed.png"))
        collapsed = measure(page, box)
        # expand the first block shown, then find a node deep inside another one
        # the gestures moved the view: fit it again (the canvas's F key; the drags made it the active widget),
        # then a block box inside the canvas's visible part, as tests/canvas/test_big_graph_browser.py picks it
        page.keyboard.press("f")
        page.wait_for_timeout(300)
        page.wait_for_function("(el) => el.dataset.moving === 'false'", arg=el, timeout=10000)
        buttons = page.locator(".ll-block-btn")
        inside = [buttons.nth(i) for i in range(buttons.count())
                  if (bb := buttons.nth(i).bounding_box()) and box["x"] < bb["x"] + 20 < box["x"] + box["width"] - 40
                  and box["y"] < bb["y"] + 10 < box["y"] + box["height"] - 10]
        if not inside:
            raise RuntimeError(f"no block box inside the visible canvas at {size} nodes")
        t1 = time.perf_counter()
        inside[0].click()
        page.wait_for_selector(".ll-frame-head", timeout=10000)
        expand_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        find = page.locator(".ll-find input")
        find.fill("layer4_1_conv2")
        find.press("Enter")
        page.wait_for_selector(".react-flow__node.ll-found", timeout=10000)
        find_s = time.perf_counter() - t1
        if shots:
            page.screenshot(path=str(shots / f"canvas_{size}_found.png"))
        # every layer shown (React Flow renders only what is in the viewport)
        t1 = time.perf_counter()
        page.get_by_role("button", name="Blocks: on").click()
        page.wait_for_function(f"(el) => Number(el.dataset.shown) >= {size // 2}", arg=el, timeout=30000)
        page.wait_for_function("(el) => el.dataset.moving === 'false'", arg=el, timeout=10000)
        all_s = time.perf_counter() - t1
        full = measure(page, box)
        if shots:
            page.screenshot(path=str(shots / f"canvas_{size}_all.png"))
        page.close()
        return {"size": size, "open_s": opened, **info, "fps_collapsed": collapsed["fps"],
                "worst_collapsed_ms": collapsed["worst_ms"], "expand_s": expand_s, "find_s": find_s,
                "show_all_s": all_s, "fps_all": full["fps"], "worst_all_ms": full["worst_ms"], "errors": errors}
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--rounds", type=int, default=1, help="fresh opens per size (medians printed)")
    ap.add_argument("--gesture-rounds", type=int, default=1, help="rounds (of --rounds) that also run the gestures")
    ap.add_argument("--open-only", action="store_true", help="measure the open only (no gestures, expand, find)")
    ap.add_argument("--screenshots", type=Path, default=None)
    a = ap.parse_args()
    if a.screenshots:
        a.screenshots.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    conditions(f"Canvas with big graphs: bench/bench_canvas.py --sizes {' '.join(map(str, a.sizes))} --rounds "
               f"{a.rounds} --gesture-rounds {a.gesture_rounds}" + (" --open-only" if a.open_only else ""))
    rows = []
    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            for size in a.sizes:
                for k in range(a.rounds):
                    rows.append(run(size, a.screenshots, b, open_only=a.open_only or k >= a.gesture_rounds))
        finally:
            b.close()
    print_opens(rows)
    rows = [r for r in rows if "fps_collapsed" in r]
    if not rows:
        return
    print("\nGestures, per size: median (spread, n rounds)")
    keys = [("open (s)", "open_s", 2), ("fps pan+zoom (collapsed)", "fps_collapsed", 0),
            ("worst frame, collapsed (ms)", "worst_collapsed_ms", 0), ("expand (s)", "expand_s", 2),
            ("find (s)", "find_s", 2), ("show all (s)", "show_all_s", 2), ("fps pan+zoom (all)", "fps_all", 0),
            ("worst frame, all (ms)", "worst_all_ms", 0)]
    print("| nodes | shown / blocks | " + " | ".join(k[0] for k in keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for size in dict.fromkeys(r["size"] for r in rows):
        rs = [r for r in rows if r["size"] == size]
        print(f"| {size} | {rs[0]['shown']} / {rs[0]['blocks']} | "
              + " | ".join(spread([r[k] for r in rs], digits=d) for _, k, d in keys) + " |")

def print_opens(rows: list[dict]) -> None:
    """Open figures per size from the page's marks: median (spread) over the rounds, in seconds."""
    def fig(vals: list) -> str:
        vals = [v for v in vals if v is not None]
        return spread(vals, 1e-3) if vals else "-"

    print("| nodes | rounds | data (s) | visible (s) | fitted (s) | shown / blocks |")
    print("|---|---|---|---|---|---|")
    for size in dict.fromkeys(r["size"] for r in rows):
        rs = [r for r in rows if r["size"] == size]
        print(f"| {size} | {len(rs)} | {fig([r['data_ms'] for r in rs])} | {fig([r['visible_ms'] for r in rs])} | "
              f"{fig([r['fitted_ms'] for r in rs])} | {rs[0]['shown']} / {rs[0]['blocks']} |")
        for r in rs:
            if r["errors"]:
                print(f"  page errors at {size}: {r['errors'][:3]}")


if __name__ == "__main__":
    main()
