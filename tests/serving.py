"""Shared by the browser tests and bench/bench_app.py: headless Chromium and a real ``streamlit run`` server.

Chromium is Debian's (``/usr/bin/chromium``, or ``$LAYERLAB_CHROMIUM``) driven by the Python ``playwright``
package; ``playwright install`` is never run. Servers listen on 127.0.0.1 only and are stopped by the PID
(process group) this module started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Chromium 156 loads the address bar's suggestion popup (chrome://omnibox-popup.top-chrome, a WebUI page in a
# renderer of its own) for every new tab, also headless: a page load of the app cost the browser 5.4 CPU-s with it and
# 4.0 without (bench/bench_browser.py). Chromium keeps only the last --disable-features, so this one repeats the
# features Playwright (1.65) disables and adds the popup's three (tests/canvas/test_browser_flags.py checks both).
PLAYWRIGHT_DISABLED_FEATURES = (
    "AimEnabled", "AvoidCorsURLLoaderRestartOnRedirect", "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose", "HttpsFirstBalancedModeAutoEnable", "HttpsUpgrades", "LensOverlay", "MediaRouter",
    "NetworkTimeServiceQuerying", "OptimizationHints", "PaintHolding", "PreconnectToSearch", "TcpPortRandomizationWin",
    "ThirdPartyStoragePartitioning", "msEdgeUpdateLaunchServicesPreferredVersion", "msForceBrowserSignIn")
NO_OMNIBOX_POPUP = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup", "WebUIOmniboxFullPopup")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage",
                 "--disable-features=" + ",".join(PLAYWRIGHT_DISABLED_FEATURES + NO_OMNIBOX_POPUP)]


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for cand in (os.environ.get("LAYERLAB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and Path(cand).exists():
            return cand
    return None


def missing(what: str, tests: str = "browser tests") -> None:
    """Skip a test for a missing tool, or fail under CI=true (browser tests, and the other ``tests`` that call
    this, must run in CI)."""
    import pytest

    if CI:
        pytest.fail(f"{what} is required for the {tests} under CI=true")
    pytest.skip(f"{what} not available (under CI=true this is a failure)")


def launch_chromium(playwright):
    """Launch headless Chromium with the project's flags (no background networking, no sync, ...)."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("Chromium not found: apt-get install chromium, or set LAYERLAB_CHROMIUM")
    return playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def chromium_browser():
    """Headless Chromium under Playwright for one test module, closed at the end; a missing Chromium or
    ``playwright`` package skips the test (fails it under CI=true, see :func:`missing`)."""
    if find_chromium() is None:
        missing("Chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright (python) is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def big_graph_page(nodes: int):
    """``(page, page errors)``: tests/canvas/big_app.py serving a generated graph of about ``nodes`` layers,
    opened in headless Chromium at 1400x900 (the big-graph browser tests' fixture)."""
    app = ROOT / "tests" / "canvas" / "big_app.py"
    with StreamlitServer(app, env={"LAYERLAB_BIG_NODES": str(nodes)},
                         extra_args=["--runner.postScriptGC", "false"]) as srv, chromium_browser() as b:
        pg = b.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(srv.url)
        yield pg, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float, poll: float = 0.2) -> tuple[int | None, object]:
    """Poll ``url`` until it answers HTTP 200 while ``proc`` lives: ``(None, None)`` then; ``(exit code, None)``
    when the process ended first; ``(None, last answer)`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = "no answer yet"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return None, None
                last = f"HTTP {r.status}"
        except OSError as e:
            last = e
        if proc.poll() is not None:
            return proc.returncode, None
        if time.monotonic() > deadline:
            return None, last
        time.sleep(poll)  # a poll of another process's port: nothing to wait on but time


class StreamlitServer:
    """``streamlit run SCRIPT`` on 127.0.0.1 and a free port; ``.url`` once healthy; ``.stop()`` ends it."""

    def __init__(self, script: str | Path = "app.py", *, env: dict[str, str] | None = None,
                 extra_args: list[str] | tuple[str, ...] = (), log_path: Path | None = None, timeout: float = 90):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ARTIFACTS.mkdir(exist_ok=True)
        full_env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.log_path = log_path or ARTIFACTS / f"streamlit-{self.port}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1",
             "--server.port", str(self.port), "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false", *extra_args],
            cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        code, last = wait_healthy(self.url + "/_stcore/health", self.proc, timeout, poll=0.3)
        if code is not None:
            raise RuntimeError(f"streamlit exited with code {code}; see {self.log_path}")
        if last is not None:
            raise RuntimeError(f"streamlit did not become healthy within {timeout:.0f} s (last answer from "
                               f"/_stcore/health: {last}); see {self.log_path}")

    def stop(self) -> None:
        """Stop the server this object started (its own process group), then close the log."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if not self.log.closed:
            self.log.close()

    def __enter__(self) -> StreamlitServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
