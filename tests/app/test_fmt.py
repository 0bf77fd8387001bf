"""The pages' number formatting (app_pages/fmt.py)."""

from __future__ import annotations

import pytest

from app_pages.fmt import fmt_duration


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.27, "0.3s"),  # a 3-epoch run on the digits: it read "0s", as if it had not run (issue 29)
    (0.0, "0.0s"), (4.04, "4.0s"), (9.96, "10s"), (42.4, "42s"), (185, "3m 05s"), (3720, "1h 02m"),
    (None, "—"), (float("nan"), "—"),
])
def test_durations_read_as_people_read_them(seconds, shown):
    assert fmt_duration(seconds) == shown
