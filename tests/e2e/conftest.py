"""End-to-end fixtures: a real ``streamlit run app.py`` on 127.0.0.1 and headless Chromium (Playwright).

Under ``CI=true`` these tests never skip; without CI they skip when Chromium or Playwright is missing.
The server gets its own ``LAYERLAB_WORKSPACE`` (a temp dir) and is killed by PID at the end.
Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.serving import ARTIFACTS, StreamlitServer, chromium_browser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """Start the app with its own workspace; yields its base URL."""
    ws = tmp_path_factory.mktemp("workspace")
    library = ws.parent / "model-library"  # empty until a test saves a model there (model_library fixture)
    library.mkdir(exist_ok=True)
    try:
        # two jobs may run at once (two browser sessions train side by side); one torch thread each
        server = StreamlitServer("app.py", env={"LAYERLAB_WORKSPACE": str(ws), "LAYERLAB_MAX_JOBS": "2",
                                               "LAYERLAB_TORCH_THREADS": "1", "LAYERLAB_LAUNCHER_IDLE_S": "30",
                                               "LAYERLAB_MODEL_LIBRARY": str(library)},
                                 log_path=ARTIFACTS / "streamlit-server.log")
    except RuntimeError as e:
        pytest.fail(str(e))
    with server:
        yield server.url


@pytest.fixture(scope="session")
def model_library(app_server, tmp_path_factory):
    """The session server's model library folder (``LAYERLAB_MODEL_LIBRARY``; a model saved there shows in the
    palette of the next page load)."""
    return tmp_path_factory.getbasetemp() / "model-library"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, one per test module (so a module may start its own Playwright)."""
    with chromium_browser() as b:
        yield b


@pytest.fixture
def page(browser, app_server, request):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000}, device_scale_factor=1)
    pg = ctx.new_page()
    pg.dialogs = []  # any alert() would land here
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.base_url = app_server
    yield pg
    with contextlib.suppress(Exception):
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
    ctx.close()
