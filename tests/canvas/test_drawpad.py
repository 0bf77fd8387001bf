"""The drawing pad's value (JSON text from the browser) is sized before it is parsed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from builder.canvas import drawpad
from builder.errors import ExplainError
from builder.interpret.tryit import MAX_STROKE_POINTS, rasterise_strokes

ROOT = Path(__file__).resolve().parents[2]


def _pad_sends(monkeypatch, raw):
    monkeypatch.setattr(drawpad, "_mounter", lambda: lambda **kw: {"strokes": raw})
    return drawpad.draw_pad(key="k")


def test_a_drawing_the_pad_can_send_is_read(monkeypatch):
    strokes = [[[round(i / MAX_STROKE_POINTS, 3), 0.123] for i in range(MAX_STROKE_POINTS)]]
    raw = json.dumps(strokes, separators=(",", ":"))
    assert len(raw) < drawpad.MAX_STROKES_CHARS
    assert _pad_sends(monkeypatch, raw) == strokes
    assert _pad_sends(monkeypatch, "[[[0.5,") == [] and _pad_sends(monkeypatch, None) == []
    with pytest.raises(ExplainError, match="clear the pad"):  # read as an empty pad beside the drawing on screen
        _pad_sends(monkeypatch, "[" * (drawpad.MAX_STROKES_CHARS + 1))


def test_a_value_longer_than_any_drawing_is_not_parsed(monkeypatch):
    """20 MB of points from a crafted browser grew the server by 302 MB and took 5 s in json.loads, before Try it
    refused more than 5,000 points; now the text's length is checked first."""
    code = textwrap.dedent("""
        import json, re
        from builder.canvas import drawpad
        raw = "[[" + ",".join(["[0.5,0.5]"] * 2_000_000) + "]]"
        drawpad._mounter = lambda: lambda **kw: {"strokes": raw}
        def peak():
            return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        before = peak()
        try:
            drawpad.draw_pad(key="k")
        except Exception as e:  # said, not read as an empty pad
            assert type(e).__name__ == "ExplainError" and "clear the pad" in str(e)
        else:
            raise AssertionError("an oversized drawing read as a drawing")
        print(json.dumps({"grew_mib": (peak() - before) / 1024}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1])["grew_mib"] < 50  # 302 before


def test_a_stroke_too_long_is_refused_before_it_is_converted(monkeypatch):
    import numpy as np

    def refuse(*a, **k):
        raise AssertionError("converted before it was counted")

    stroke = [[0.5, 0.5]] * (2 * MAX_STROKE_POINTS + 1)
    monkeypatch.setattr(np, "asarray", refuse)
    with pytest.raises(ExplainError, match=f"at most {MAX_STROKE_POINTS} points"):
        rasterise_strokes([stroke], (8, 8))
