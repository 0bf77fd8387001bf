"""Server start, this tree against another revision, side by side: ``streamlit run app.py`` from process start to
its health check, and to the first node on the canvas of a first visit (headless Chromium, 1440x900).

The other revision is checked out in a temporary git worktree and run with this virtualenv (its ``PYTHONPATH``
first, so its ``app.py``, ``app_pages`` and ``builder`` are the ones served). Rounds alternate old and new; the
figures are medians, and the ratios new / old.

    python bench/bench_serve.py --baseline 7a0154a [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serving import free_port, launch_chromium, wait_healthy  # noqa: E402


def one_round(root: Path, browser) -> tuple[float, float]:
    """(seconds to the health check, seconds to the first node) for a fresh server of ``root``."""
    port = free_port()
    env = {**os.environ, "LAYERLAB_WORKSPACE": tempfile.mkdtemp(prefix="bench-serve-"), "PYTHONPATH": str(root),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.headless", "true",
                             "--server.fileWatcherType", "none"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        code, last = wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, 90, poll=0.05)
        if code is not None or last is not None:
            raise RuntimeError(f"the server of {root} did not start (exit code {code}, last answer {last})")
        health = time.perf_counter() - t0
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator(".react-flow__node").first.wait_for(timeout=120_000)
        first = time.perf_counter() - t0
        page.close()
        return health, first
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="the git revision to compare with (e.g. a commit id)")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.baseline],
                       check=True)
        try:
            got: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
            with sync_playwright() as pw:
                browser = launch_chromium(pw)
                for _ in range(args.rounds):
                    got["old"].append(one_round(old, browser))
                    got["new"].append(one_round(ROOT, browser))
                browser.close()
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    med = {k: (statistics.median(h for h, _ in v), statistics.median(f for _, f in v)) for k, v in got.items()}
    print(f"{'':6} {'health s':>9} {'first node s':>13}   ({args.rounds} rounds, interleaved; medians)")
    for k in ("old", "new"):
        print(f"{k:6} {med[k][0]:9.2f} {med[k][1]:13.2f}")
    print(f"{'new/old':6} {med['new'][0] / med['old'][0]:9.3f} {med['new'][1] / med['old'][1]:13.3f}")


if __name__ == "__main__":
    main()
