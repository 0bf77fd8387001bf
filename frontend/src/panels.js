// Palette panel: open/closed and docked/overlay, remembered per user (localStorage). By default it
// floats over the canvas (so the canvas keeps the width) and can be pinned beside it.
export const PANEL_KEY = 'layerlab.canvas.panels';
// Below this canvas width the palette overlays the canvas instead of squeezing it.
export const NARROW = 980;

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

// Docked only when the user wants it and the canvas is wide enough.
export function paletteMode(panels, width) {
  if (!panels.paletteOpen) return 'closed';
  return panels.paletteDocked && width >= NARROW ? 'docked' : 'overlay';
}
