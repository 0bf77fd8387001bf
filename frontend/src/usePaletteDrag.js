// Palette drag: pointer events (HTML5 drag-and-drop is unreliable inside the
// shadow root). A short press without movement is a click: `onDrop(entry, null, false)`, and the canvas picks
// a free place for the layer (placement.js).
import { useCallback, useState } from 'react';

export const DRAG_THRESHOLD = 4;

export function inside(rect, x, y) {
  return !!rect && x >= rect.left && x <= rect.right && y >= rect.top && y <= rect.bottom;
}

export function usePaletteDrag({ flowRef, rootRef, onDrop, onStart, toFlow }) {
  const [ghost, setGhost] = useState(null);
  const onPointerDown = useCallback(
    (entry, e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      onStart?.();
      const start = { x: e.clientX, y: e.clientY };
      let moved = false;
      const flowRect = () => flowRef.current?.getBoundingClientRect();
      const move = (ev) => {
        if (!moved && Math.hypot(ev.clientX - start.x, ev.clientY - start.y) < DRAG_THRESHOLD) return;
        moved = true;
        const rr = rootRef.current.getBoundingClientRect();
        setGhost({ entry, x: ev.clientX - rr.left, y: ev.clientY - rr.top, over: inside(flowRect(), ev.clientX, ev.clientY) });
      };
      const stop = () => {
        window.removeEventListener('pointermove', move, true);
        window.removeEventListener('pointerup', end, true);
        window.removeEventListener('pointercancel', stop, true);
        setGhost(null);
      };
      const end = (ev) => {
        stop();
        const r = flowRect();
        if (moved) {
          if (inside(r, ev.clientX, ev.clientY)) onDrop(entry, toFlow({ x: ev.clientX, y: ev.clientY }), true);
        } else if (r) {
          onDrop(entry, null, false);
        }
      };
      window.addEventListener('pointermove', move, true);
      window.addEventListener('pointerup', end, true);
      window.addEventListener('pointercancel', stop, true);
    },
    [flowRef, rootRef, onDrop, onStart, toFlow],
  );
  return { ghost, onPointerDown };
}
