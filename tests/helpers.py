"""Shared test helpers: the AppTest opener, and waits that fail loudly (what was waited for, the last state seen).

Fixtures (the workspace environment) are in tests/conftest.py; browser helpers in tests/e2e/e2e_helpers.py.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
# where the sandbox installs its seccomp filter (builder.process.sandbox._seccomp)
SECCOMP = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")
#: an anonymous owner, as the browser's cookie gives one
ME, OTHER = "anon:" + "a" * 32, "anon:" + "b" * 32

T = TypeVar("T")


def until(pred: Callable[[], T], what: str, timeout: float = 60.0, *, poll: float = 0.05,
          state: Callable[[], Any] | None = None, page: Any = None) -> T:
    """Poll ``pred`` until it returns something truthy and return that (between polls a Playwright ``page``,
    when given, keeps handling its events: ``page.wait_for_timeout``).

    Raises (pytest.fail) after ``timeout`` seconds, naming ``what`` and the last state seen: ``state()`` when
    given, else the last value of ``pred``.
    """
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= end:
            last = state() if state is not None else value
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")
        if page is not None:
            page.wait_for_timeout(poll * 1000)
        else:
            time.sleep(poll)


def wait_for_status(store, run_id: str, statuses: Collection[str], timeout: float = 180.0) -> dict:
    """The run's row once its status is one of ``statuses`` (a job polled through the run store).

    Raises (pytest.fail) after ``timeout`` seconds with the run's last status, epochs done and message.
    """
    def row() -> dict:
        return store.get(run_id)

    def seen() -> dict:
        r = row()
        return {k: r.get(k) for k in ("status", "epochs_done", "message")}

    return until(lambda: (r := row())["status"] in statuses and r, f"run {run_id} to be {'/'.join(statuses)}",
                 timeout, state=seen)


def wait_for_epochs(store, run_id: str, epochs: int = 1, timeout: float = 180.0) -> dict:
    """The run's row once it has recorded at least ``epochs`` epochs (pytest.fail after ``timeout``)."""
    return until(lambda: ((r := store.get(run_id))["epochs_done"] or 0) >= epochs and r,
                 f"run {run_id} to record {epochs} epoch(s)", timeout,
                 state=lambda: {k: store.get(run_id).get(k) for k in ("status", "epochs_done", "message")})


def assert_no_exception(app) -> None:
    """An AppTest run raised nothing (the exceptions' messages otherwise)."""
    assert not app.exception, [e.value for e in app.exception]


def open_app(page: str | None = None, *, owner: str | None = None, template: str | None = None,
             query: Mapping[str, str] | None = None, timeout: float = 120) -> Any:
    """The app in an AppTest, run once, optionally as ``owner``, with ``template`` on the canvas (the
    replacement confirmed) and then on ``page`` (``app_pages/<name>.py``) with ``query`` parameters.

    The workspace comes from ``LAYERLAB_WORKSPACE`` (the ``workspace`` fixture sets it).
    """
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(APP, default_timeout=timeout)
    if owner is not None:
        app.session_state["ll_owner"] = owner  # what this browser's cookie would give
    app.run()  # `/` redirects to /build (and drops its query): a deep link is the page's own query below
    if template is not None:
        app.selectbox(key="ll_tpl_pick").set_value(template).run()
        if any(b.key == "ll_confirm_replace" for b in app.button):  # not asked when it is already on the canvas
            app.button(key="ll_confirm_replace").click().run()
    for k, v in (query or {}).items():
        app.query_params[k] = v
    if page is not None:
        app.switch_page(page).run()
    assert_no_exception(app)
    return app


def name_box(app):
    """The sidebar's Project name box (its key follows the revision and the name it shows: app_pages/ui.py)."""
    return next(t for t in app.sidebar.text_input if t.label == "Project name")


def own_work(app, name: str = "My network") -> None:
    """Name the project in the sidebar, as a person does: the canvas then holds something of theirs, and replacing
    it asks first (a template as shipped, the first visit's starter, is replaced at once)."""
    name_box(app).set_value(name).run()
    assert app.session_state["ll_project"].name == name


def button(app, label: str) -> Any:
    """The button labelled ``label`` (never ``button[-1]``: the sidebar has buttons of its own)."""
    found = [b for b in app.button if b.label == label]
    assert found, f"no button {label!r}; there are {[b.label for b in app.button]}"
    return found[0]


def count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[tuple[tuple, dict]]:
    """The calls of ``module.name`` from now on, as ``(args, kwargs)``: the real function still runs (a spy, not
    a mock), wherever our code imported it by name (``from builder.graph.shapes import infer_shapes``)."""
    import sys

    real, calls = getattr(module, name), []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if str(getattr(mod, "__name__", "")).split(".")[0] in ("builder", "app_pages") and \
                mod.__dict__.get(name) is real:
            monkeypatch.setattr(mod, name, counting)
    return calls


def fill_disk(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` until ``leave`` bytes (about) are free; the filler file, to delete for room."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > leave:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
    return filler


def shades_zip(per_class: int = 6, vary: int = 256) -> bytes:
    """A tiny image set as a zip's bytes: ``dark/`` and ``light/`` with ``per_class`` grey 10x10 PNGs each (shade 20 or
    230 plus ``i % vary``): two classes any model tells apart."""
    import io
    import zipfile

    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for cls, shade in (("dark", 20), ("light", 230)):
            for i in range(per_class):
                b = io.BytesIO()
                Image.new("L", (10, 10), shade + i % vary).save(b, format="PNG")
                z.writestr(f"{cls}/{i}.png", b.getvalue())
    return buf.getvalue()
