"""Time to a visible canvas: cold (a fresh ``streamlit run app.py`` process, first visit) and warm (a new
browser session on the same server), measured side by side.

Each round starts a new server (cold) and opens ``--path`` (``/build``, a deep link; ``/`` is what ``make app``
prints) in a new headless Chromium page until the first React Flow node is on screen. The figure is the page's
own mark ``layerlab:canvas:visible`` (set when the canvas has measured and shown its nodes), counted from
navigation start; Playwright's polling adds ~0.2 s on top. Then a second page (warm: new session, same
process, overlapping the background warm-up that imports what the other pages need) and, ``--settle`` seconds
later, a third (settled). Medians over rounds.

    python bench/bench_startup.py [--rounds 3]

Also prints the import time of the modules the Build page needs (``pages.ui``) in a fresh interpreter, and
whether the heavy modules no Build visit needs (torch, Captum, scikit-learn, plotly, pandas) were imported by it
(beyond what ``import streamlit`` loads, which the server has done before any visit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serving import StreamlitServer, launch_chromium  # noqa: E402

HEAVY = ("torch", "captum", "sklearn", "plotly", "pandas", "scipy")
PROBE = """
import sys, time, json
import streamlit  # the server has imported it (and the plotly it loads) before any visit
before = set(sys.modules)
t = time.perf_counter()
c = time.process_time()
import app_pages.ui  # what app.py imports before the first page
t_ui = time.perf_counter() - t
import builder
builder.palette(); builder.infer_shapes(builder.load_template("cnn").graph)
t_all = time.perf_counter() - t
print(json.dumps({"import_ui_s": t_ui, "build_ready_s": t_all, "build_ready_cpu_s": time.process_time() - c,
                  "heavy_loaded": [m for m in HEAVY if m in sys.modules and m not in before]}))
""".replace("HEAVY", repr(HEAVY))


def visit(browser, url: str, path: str = "/build", width: int = 1440, height: int = 900) -> float:
    page = browser.new_page(viewport={"width": width, "height": height})
    t0 = time.perf_counter()
    page.goto(url + path)
    page.locator(".react-flow__node").first.wait_for(timeout=120_000)
    dt = time.perf_counter() - t0
    # the canvas marks when its nodes are measured and shown (frontend/src/App.jsx), from navigation start
    mark = page.evaluate("() => performance.getEntriesByName('layerlab:canvas:visible')[0]?.startTime ?? null")
    page.close()
    return mark / 1000 if mark is not None else dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--path", default="/build", help="address opened: /build (deep link) or /")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds before the third (settled) visit")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = json.loads(subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                                      text=True, check=True).stdout)
    print(f"fresh interpreter: import app_pages.ui {probe['import_ui_s']:.2f} s, build page ready "
          f"{probe['build_ready_s']:.2f} s (CPU {probe['build_ready_cpu_s']:.2f} s: the wall time on an idle core); "
          f"heavy modules loaded: {probe['heavy_loaded'] or 'none'}")
    cold, warm, settled, server_up = [], [], [], []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        for r in range(args.rounds):
            ws = tempfile.mkdtemp(prefix="ll-bench-")
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            with StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": ws}) as srv:
                server_up.append(time.perf_counter() - t0)
                cold.append(visit(browser, srv.url, args.path))
                warm.append(visit(browser, srv.url, args.path))  # while the warm-up imports torch, Captum, scikit-learn
                time.sleep(args.settle)  # a bench may wait a fixed time: the warm-up has finished by then
                settled.append(visit(browser, srv.url, args.path))
            print(f"round {r + 1}: server healthy {server_up[-1]:.2f} s, cold visit {cold[-1]:.2f} s, "
                  f"warm visit {warm[-1]:.2f} s, settled visit {settled[-1]:.2f} s "
                  f"(1-min load {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)")
        browser.close()
    med = statistics.median
    print(f"median over {args.rounds} rounds: server healthy {med(server_up):.2f} s · cold first visit to a "
          f"visible canvas {med(cold):.2f} s · warm (new session, during the warm-up) {med(warm):.2f} s · "
          f"settled (new session {args.settle:g} s later) {med(settled):.2f} s · cold/warm "
          f"{med(c / w for c, w in zip(cold, warm)):.1f}x · machine load {os.getloadavg()[0]:.1f}")
    spread = ", ".join(f"{name} {min(v):.2f}-{max(v):.2f} s" for name, v in
                       (("server", server_up), ("cold", cold), ("warm", warm), ("settled", settled)))
    print(f"spread (min-max over {args.rounds} rounds): {spread}")


if __name__ == "__main__":
    main()
