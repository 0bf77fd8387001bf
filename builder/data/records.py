"""A field of a record someone else wrote, read as the type LayerLab expects: one rule for a number, one for a text.

A job's JSON, a probe's answer, a metrics dict, a quota file or a user's option may hold anything JSON or a
form can (a crafted run folder holds anything), so every reader takes a number or a text through these.

>>> number(3), number(2.5), number(True), number("2"), number(float("nan")), number(10**400)
(3, 2.5, None, None, None, None)
>>> number(" 2 ", parse=True), number("nan", parse=True, finite=False), number(float("inf"), finite=False)
(2.0, nan, inf)
>>> text("a" * 300) == "a" * 200, text(None), text(["x"], default="—"), text(7)
(True, '?', '—', '7')
"""

from __future__ import annotations

import math
import numbers

__all__ = ["number", "number_list", "text", "TEXT_LIMIT"]

TEXT_LIMIT = 200  # characters of a record's text field that are shown


def number(value: object, *, finite: bool = True, parse: bool = False) -> int | float | None:
    """The real number ``value`` holds, else None.

    A bool is no number. Whole numbers (numpy's included) come back as ``int``, others as ``float``; one too large
    for a float is None. ``finite``: NaN and infinities are None (pass False where they mean something, such as a
    diverged loss). ``parse``: a numeric text (``"2"``, ``" 1e-3 "``, ``"nan"``) counts as its number, for files
    that keep numbers as text (a health log's ``"inf"``, a quota in an environment variable).
    """
    if parse and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    if finite and not math.isfinite(as_float):
        return None
    return int(value) if isinstance(value, numbers.Integral) else as_float


def number_list(value: object, most: int) -> list[int | float] | None:
    """``value`` as a list of at most ``most`` finite numbers (each read by :func:`number`), else None.

    >>> number_list([1, 2.5], 2), number_list([1, 2, 3], 2), number_list([1, True], 2), number_list("12", 2)
    ([1, 2.5], None, None, None)
    """
    if not isinstance(value, list) or len(value) > most:
        return None
    out = [number(x) for x in value]
    return None if any(x is None for x in out) else out


def text(value: object, default: str = "?") -> str:
    """A text field as shown: a text or number clipped to :data:`TEXT_LIMIT` characters, else ``default``."""
    if isinstance(value, str):
        return value[:TEXT_LIMIT]
    n = number(value, finite=False)
    return str(n)[:TEXT_LIMIT] if n is not None else default
