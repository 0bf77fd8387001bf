import { describe, expect, it } from 'vitest';
import { loadPanels, NARROW, paletteMode, PANEL_KEY, savePanels } from './panels.js';

const memory = () => {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)) };
};

describe('panels', () => {
  it('defaults to an open palette floating over the canvas and remembers the choice', () => {
    const s = memory();
    expect(loadPanels(s)).toEqual({ paletteOpen: true, paletteDocked: false });
    savePanels(s, { paletteOpen: true, paletteDocked: true });
    expect(loadPanels(s)).toEqual({ paletteOpen: true, paletteDocked: true });
    savePanels(s, { paletteOpen: false, paletteDocked: false });
    expect(loadPanels(s)).toEqual({ paletteOpen: false, paletteDocked: false });
  });

  it('survives broken or missing storage', () => {
    const s = memory();
    s.setItem(PANEL_KEY, '{not json');
    expect(loadPanels(s).paletteOpen).toBe(true);
    expect(loadPanels(null).paletteOpen).toBe(true);
    expect(() => savePanels({ setItem: () => { throw new Error('quota'); } }, { paletteOpen: true })).not.toThrow();
  });

  it('overlays instead of squeezing a narrow canvas', () => {
    const open = { paletteOpen: true, paletteDocked: true };
    expect(paletteMode(open, NARROW + 100)).toBe('docked');
    expect(paletteMode(open, NARROW - 100)).toBe('overlay');
    expect(paletteMode({ ...open, paletteDocked: false }, 2000)).toBe('overlay');
    expect(paletteMode({ ...open, paletteOpen: false }, 2000)).toBe('closed');
  });

  it('steps an overlay palette aside for the inspector, never a docked one', () => {
    const open = { paletteOpen: true, paletteDocked: true };
    expect(paletteMode(open, NARROW - 100, true)).toBe('closed'); // docked wanted, too narrow: an overlay
    expect(paletteMode({ ...open, paletteDocked: false }, 2000, true)).toBe('closed');
    expect(paletteMode(open, NARROW + 100, true)).toBe('docked');
    expect(paletteMode(open, NARROW - 100, false)).toBe('overlay');
  });
});
