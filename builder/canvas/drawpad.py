"""A drawing pad for Try it: the user draws with the mouse (or a pen, or a finger); Python gets the strokes.

A Streamlit components v2 component of a few lines of plain JavaScript (no bundle, no dependency): a square
``<canvas>`` that draws light strokes on a dark ground (as the built-in digits are), and a Clear button. On
every pen lift the strokes go to Python as JSON text, each a list of ``[x, y]`` points in [0, 1] (y downwards);
:func:`builder.interpret.tryit.encode_strokes` resamples them to the model's input size. Points closer than 1 %
of the pad to the previous one are skipped, so a drawing is a few hundred points.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from builder.errors import ExplainError

__all__ = ["draw_pad", "PAD_COMPONENT"]

PAD_COMPONENT = "layerlab_draw_pad"
MAX_STROKES_CHARS = 320_000  # the pad's JSON: 5,000 points (tryit.MAX_STROKE_POINTS) of up to 64 characters

_CSS = """
.ll-pad-wrap { display: inline-flex; flex-direction: column; gap: 6px; font: 14px system-ui, sans-serif; }
.ll-pad { background: #0f172a; border-radius: 8px; touch-action: none; cursor: crosshair;
  box-shadow: 0 0 0 1px #cbd5e1; }
.ll-pad-bar { display: flex; gap: 8px; align-items: center; color: #64748b; font-size: 12.5px; }
.ll-pad-clear { border: 1px solid #cbd5e1; background: #fff; border-radius: 6px; padding: 3px 10px; cursor: pointer;
  font: inherit; color: #0f172a; }
.ll-pad-clear:hover { border-color: #2563eb; }
"""

_JS = """
export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const size = Math.max(120, Math.min(480, Number(data?.size) || 240));
  let el = parentElement.querySelector('.ll-pad-wrap');
  if (!el) {
    el = document.createElement('div');
    el.className = 'll-pad-wrap';
    const cv = document.createElement('canvas');
    cv.className = 'll-pad';
    cv.setAttribute('data-testid', 'll-draw-pad');
    cv.setAttribute('aria-label', 'Drawing pad: draw with the mouse');
    const bar = document.createElement('div');
    bar.className = 'll-pad-bar';
    const clear = document.createElement('button');
    clear.type = 'button';
    clear.className = 'll-pad-clear';
    clear.textContent = 'Clear';
    const hint = document.createElement('span');
    hint.textContent = 'Draw with the mouse; the model answers when you lift it.';
    bar.append(clear, hint);
    el.append(cv, bar);
    parentElement.appendChild(el);
    const pad = { strokes: [], cur: null, cv };
    el._pad = pad;
    const ctx = () => cv.getContext('2d');
    pad.redraw = () => {
      const c = ctx();
      c.clearRect(0, 0, cv.width, cv.height);
      c.strokeStyle = '#f8fafc';
      c.fillStyle = '#f8fafc';
      c.lineCap = 'round';
      c.lineJoin = 'round';
      c.lineWidth = cv.width / 14;
      for (const s of pad.strokes) {
        c.beginPath();
        s.forEach(([x, y], i) => (i ? c.lineTo(x * cv.width, y * cv.height) : c.moveTo(x * cv.width, y * cv.height)));
        if (s.length === 1) c.arc(s[0][0] * cv.width, s[0][1] * cv.height, c.lineWidth / 2, 0, 2 * Math.PI);
        c.stroke();
      }
    };
    const at = (e) => {
      const r = cv.getBoundingClientRect();
      const clamp = (v) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000;
      return [clamp((e.clientX - r.left) / r.width), clamp((e.clientY - r.top) / r.height)];
    };
    const send = () => el._api.setStateValue('strokes', JSON.stringify(pad.strokes));
    cv.addEventListener('pointerdown', (e) => {
      e.preventDefault();
      cv.setPointerCapture?.(e.pointerId);
      pad.cur = [at(e)];
      pad.strokes.push(pad.cur);
      pad.redraw();
    });
    cv.addEventListener('pointermove', (e) => {
      if (!pad.cur) return;
      const p = at(e);
      const q = pad.cur[pad.cur.length - 1];
      if (Math.hypot(p[0] - q[0], p[1] - q[1]) < 0.01) return;
      pad.cur.push(p);
      pad.redraw();
    });
    const end = () => {
      if (!pad.cur) return;
      pad.cur = null;
      send();
    };
    cv.addEventListener('pointerup', end);
    cv.addEventListener('pointercancel', end);
    clear.addEventListener('click', () => {
      pad.strokes = [];
      pad.redraw();
      send();
    });
  }
  el._api = { setStateValue };
  const cv = el._pad.cv;
  if (cv.width !== size) {
    cv.width = size;
    cv.height = size;
    cv.style.width = `${size}px`;
    cv.style.height = `${size}px`;
    el._pad.redraw();
  }
}
"""

_mounters: dict[int, Any] = {}


def _mounter() -> Any:
    from streamlit.components.v2.get_bidi_component_manager import (
        get_bidi_component_manager,  # lazy: heavy (streamlit)
    )

    manager = get_bidi_component_manager()
    mount = _mounters.get(id(manager))
    if mount is None:  # registered once per Streamlit runtime, not per rerun
        mount = st.components.v2.component(PAD_COMPONENT, css=_CSS, js=_JS)
        _mounters.clear()
        _mounters[id(manager)] = mount
    return mount


def _noop() -> None:
    return None


def draw_pad(*, key: str, size: int = 240) -> list[list[list[float]]]:
    """Show the drawing pad (``size`` pixels square) and return its strokes (``[]`` before anything is drawn
    or after Clear): each a list of ``[x, y]`` in [0, 1], y downwards. Malformed state reads as no strokes.
    Raises ExplainError for a value longer than any drawing (:data:`MAX_STROKES_CHARS`), before it is parsed."""
    # its height is its content's: a fixed size + 40 px cut the hint under Clear to two of its three lines in
    # the Build page's side panel (200 px pad)
    result = _mounter()(key=key, data={"size": int(size)}, default={"strokes": "[]"}, height="content",
                        on_strokes_change=_noop)
    raw = result.get("strokes") if hasattr(result, "get") else None
    if isinstance(raw, str) and len(raw) > MAX_STROKES_CHARS:  # sized before it is parsed: 20 MB of points were
        # parsed into 300 MB of lists in 5 s (the pad sends 3 decimals: 5,000 points are ~70 KB); said, not read as
        # an empty pad beside the drawing still on screen
        raise ExplainError(f"a drawing is at most {MAX_STROKES_CHARS:,} characters of points; received: "
                           f"{len(raw):,}. Fix: clear the pad and draw the digit with fewer strokes")
    if not isinstance(raw, str):
        return []
    try:
        strokes = json.loads(raw)
    except ValueError:
        return []
    return strokes if isinstance(strokes, list) else []
