"""The Chromium of the browser tests (tests/serving.py): no address-bar popup page per tab, and Playwright's own
disabled features kept (Chromium reads only the last ``--disable-features``, so ours must repeat Playwright's)."""

from __future__ import annotations

import pytest

from tests.serving import NO_OMNIBOX_POPUP, chromium_browser

pytestmark = pytest.mark.slow  # a browser


def _disabled(command_line: str) -> list[set[str]]:
    """Every ``--disable-features`` list of a command line, in order.

    >>> [sorted(f) for f in _disabled("chromium --disable-features=B,A --x --disable-features=B,C")]
    [['A', 'B'], ['B', 'C']]
    """
    return [set(a.split("=", 1)[1].split(",")) - {""} for a in command_line.split()
            if a.startswith("--disable-features=")]


def test_a_new_tab_loads_no_address_bar_popup_and_playwrights_disabled_features_stay():
    with chromium_browser() as b:
        ctx = b.new_context()
        page = ctx.new_page()
        page.goto("chrome://version")
        lists = _disabled(page.locator("#command_line").inner_text())
        cdp = b.new_browser_cdp_session()
        urls = [t["url"] for t in cdp.send("Target.getTargets", {"filter": [{}]})["targetInfos"]]
        ctx.close()
    assert lists, "no --disable-features on Chromium's command line"
    effective = lists[-1]  # Chromium keeps the last one
    lost = set().union(*lists) - effective
    assert not lost, f"features Playwright disables that the last --disable-features drops: {sorted(lost)}"
    assert set(NO_OMNIBOX_POPUP) <= effective
    # Chromium 156 opened chrome://omnibox-popup.top-chrome (two WebUI pages, a renderer of their own) for every tab
    assert not [u for u in urls if u.startswith("chrome://omnibox-popup")], urls
