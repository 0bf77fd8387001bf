// Keyboard shortcuts: one table drives both the key handler and the help popover.

export const SHORTCUTS = [
  { action: 'undo', keys: 'Ctrl+Z', label: 'Undo' },
  { action: 'redo', keys: 'Ctrl+Shift+Z / Ctrl+Y', label: 'Redo' },
  { action: 'selectAll', keys: 'Ctrl+A', label: 'Select all layers' },
  { action: 'clear', keys: 'Esc', label: 'Clear the selection, close menus' },
  { action: 'copy', keys: 'Ctrl+C', label: 'Copy' },
  { action: 'cut', keys: 'Ctrl+X', label: 'Cut' },
  { action: 'paste', keys: 'Ctrl+V', label: 'Paste (offset, selected)' },
  { action: 'duplicate', keys: 'Ctrl+D', label: 'Duplicate' },
  { action: 'delete', keys: 'Delete / Backspace', label: 'Delete the selection' },
  { action: 'fit', keys: 'F', label: 'Fit: show the whole graph' },
  { action: 'help', keys: '?', label: 'Show these shortcuts' },
];

// Mouse gestures, listed in the help popover too.
export const GESTURES = [
  { keys: 'Click', label: 'Select one layer' },
  { keys: 'Shift/Ctrl+click', label: 'Add or remove a layer from the selection' },
  { keys: 'Shift+drag', label: 'Box-select' },
  { keys: 'Drag / scroll', label: 'Pan / zoom' },
  { keys: 'Double-click a title', label: 'Rename' },
];

// The action for a keydown event ({key, ctrlKey, metaKey, shiftKey, altKey}), or null.
export function actionFor(e) {
  const mod = e.ctrlKey || e.metaKey;
  const k = String(e.key || '').toLowerCase();
  if (e.altKey) return null;
  if (e.key === 'Delete' || e.key === 'Backspace') return mod ? null : 'delete';
  if (e.key === 'Escape') return 'clear';
  if (mod) {
    if (k === 'z') return e.shiftKey ? 'redo' : 'undo';
    if (k === 'y') return 'redo';
    if (k === 'a') return 'selectAll';
    if (k === 'c') return 'copy';
    if (k === 'x') return 'cut';
    if (k === 'v') return 'paste';
    if (k === 'd') return 'duplicate';
    return null;
  }
  if (e.key === '?') return 'help';
  if (k === 'f' && !e.shiftKey) return 'fit';
  return null;
}

// Should a keydown reach the canvas? Not while typing in a field, and not when
// another widget of the page has the focus (the canvas is "active" after a
// pointer-down in it, or while nothing else is focused and it is visible).
export function keyTargetsCanvas({ typing, active, bodyFocused, visible }) {
  if (typing) return false;
  if (active) return true;
  return !!(bodyFocused && visible);
}
