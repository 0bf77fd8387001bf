// Palette panel: open/closed and docked/overlay, remembered per user (localStorage). By default it
// floats over the canvas (so the canvas keeps the width) and can be pinned beside it.
export const PANEL_KEY = 'layerlab.canvas.panels';
// Below this canvas width the palette overlays the canvas instead of squeezing it.
export const NARROW = 980;

// The browser's localStorage, or null where it is blocked (reading it throws).
export function localStore() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

export function loadPanels(storage) {
  try {
    const v = JSON.parse(storage?.getItem(PANEL_KEY) || '{}');
    return { paletteOpen: v.paletteOpen !== false, paletteDocked: v.paletteDocked === true };
  } catch {
    return { paletteOpen: true, paletteDocked: false };
  }
}

export function savePanels(storage, panels) {
  try {
    storage?.setItem(PANEL_KEY, JSON.stringify({ paletteOpen: !!panels.paletteOpen, paletteDocked: !!panels.paletteDocked }));
  } catch {
    /* storage full or blocked: the choice lasts for this page only */
  }
}

// Docked only when the user wants it and the canvas is wide enough. `aside`: an overlay palette steps aside
// while the page's inspector floats over the canvas's other side (a narrow window with one layer selected: at
// 900x900 the two left a third of the canvas between them); the person's own choice (`panels`) is unchanged, so
// the palette comes back with the selection's end or the Layers button. A docked palette never steps aside.
export function paletteMode(panels, width, aside = false) {
  if (!panels.paletteOpen) return 'closed';
  if (panels.paletteDocked && width >= NARROW) return 'docked';
  return aside ? 'closed' : 'overlay';
}
