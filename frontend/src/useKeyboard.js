// Document-level shortcuts for the canvas. They work as soon as the canvas is
// visible: keys go to it after a pointer-down inside it, or while nothing else
// on the page has the focus; never while the user types in a field.
import { useEffect, useRef } from 'react';
import { actionFor, keyTargetsCanvas } from './keyboard.js';

function isTextInput(event) {
  const t = event.composedPath?.()[0] || event.target;
  if (!t || t.nodeType !== 1) return false;
  return ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.nodeName) || t.isContentEditable;
}

function isVisible(el) {
  if (!el || !el.isConnected) return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < window.innerHeight;
}

export function useKeyboard(rootRef, handlers) {
  const activeRef = useRef(false);
  const hRef = useRef(handlers);
  hRef.current = handlers;
  useEffect(() => {
    const onPointer = (e) => {
      activeRef.current = !!rootRef.current && e.composedPath().includes(rootRef.current);
    };
    const onKey = (e) => {
      const a = document.activeElement;
      const bodyFocused = !a || a === document.body || a === document.documentElement;
      const ok = keyTargetsCanvas({
        typing: isTextInput(e),
        active: activeRef.current && isVisible(rootRef.current),
        bodyFocused,
        visible: isVisible(rootRef.current),
      });
      if (!ok) return;
      const action = actionFor(e);
      if (!action) return;
      const fn = hRef.current[action];
      if (!fn) return;
      const handled = fn(e);
      if (handled !== false) {
        e.preventDefault();
        e.stopPropagation();
      }
    };
    document.addEventListener('pointerdown', onPointer, true);
    document.addEventListener('keydown', onKey, true);
    return () => {
      document.removeEventListener('pointerdown', onPointer, true);
      document.removeEventListener('keydown', onKey, true);
    };
  }, [rootRef]);
  return activeRef;
}
