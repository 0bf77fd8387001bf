"""Example budgets of properties that set their own (slow per example): ``@settings(max_examples=budget(40))``.

Under CI's and the default profile a budget is what it says; under ``make fuzz`` (profile ``fuzz``) it is
:data:`FUZZ_FACTOR` times more, so the nightly run carries volume for these properties too (an explicit
``max_examples`` overrides the profile's, which would otherwise leave them at their CI size).
"""

from __future__ import annotations

from hypothesis import settings

FUZZ_FACTOR = 25
"""How many times its CI budget a property with its own budget runs under ``make fuzz``."""


def budget(n: int) -> int:
    """``n`` examples, or ``n`` × :data:`FUZZ_FACTOR` under the fuzz profile (read when the test is decorated)."""
    return n * FUZZ_FACTOR if settings.default.max_examples >= 10_000 else n
