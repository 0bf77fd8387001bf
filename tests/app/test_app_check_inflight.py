"""Two checks on the Explain page: a check still computing in an earlier script run (Streamlit starts the run of a
second click at once) is waited for, so both results are shown (issue 29, item 17)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _second_click() -> None:
    """The run of a second click, while the first check (started by the run before) still computes."""
    import threading
    import time

    import streamlit as st

    from app_pages.explain_checks import INFLIGHT_KEY, await_check

    items = st.session_state.setdefault("items", {})
    key = ("sanity", 0)
    if "first" not in st.session_state:
        st.session_state.first = True
        flight = st.session_state[INFLIGHT_KEY] = {key}

        def first_check() -> None:  # the earlier run: its result lands a moment later
            time.sleep(0.3)
            items[key] = "sanity result"
            flight.discard(key)

        threading.Thread(target=first_check, daemon=True).start()
    await_check(items, key, "The sanity check")
    st.markdown(str(items.get(key, "no sanity result")))


def test_a_check_in_flight_is_waited_for_not_dropped():
    at = AppTest.from_function(_second_click, default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.markdown] == ["sanity result"]
