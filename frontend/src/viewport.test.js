import { describe, expect, it } from 'vitest';
import { CORNERS, FIT_ALL_ZOOM, MAX_FIT_ZOOM, READABLE_ZOOM, clearViewport, fitDue, onCorners, readableViewport, coveredRight, refitForMap, revealDx } from './viewport.js';

describe('readable viewport', () => {
  it('a small graph is centred, never zoomed above the max', () => {
    const v = readableViewport({ x: 0, y: 0, width: 200, height: 100 }, 1000, 600);
    expect(v.zoom).toBe(MAX_FIT_ZOOM);
    expect(v.x + (200 * v.zoom) / 2).toBeCloseTo(28 + (1000 - 56) / 2);
  });

  it('a long chain is not shrunk below the readable zoom; it starts at its input side', () => {
    const v = readableViewport({ x: 50, y: 10, width: 4000, height: 120 }, 900, 600);
    expect(v.zoom).toBe(READABLE_ZOOM);
    expect(v.x).toBeCloseTo(28 - 50 * READABLE_ZOOM);
    // fits in height: centred vertically
    const mid = v.y + (10 + 60) * v.zoom;
    expect(mid).toBeGreaterThan(250);
    expect(mid).toBeLessThan(350);
  });

  it('a graph that fits exactly uses the fitting zoom', () => {
    const v = readableViewport({ x: 0, y: 0, width: 944, height: 100 }, 1000, 600);
    expect(v.zoom).toBeCloseTo(1);
  });

  it('at the readable zoom a layer name (14.5 px) is at least 9 px on screen, the smallest text (12 px) 7.5 px', () => {
    expect(14.5 * READABLE_ZOOM).toBeGreaterThanOrEqual(9);
    expect(12 * READABLE_ZOOM).toBeGreaterThanOrEqual(7.5);
  });

  it('a graph that fits at a legible zoom is shown whole on the first view (the CNN showed 6 of its 12 nodes)', () => {
    // the CNN template (3 columns x 4 rows, ~745 x 670 px) on the 887 x 580 px canvas at 1440x900, the open
    // palette floating over its left 256 px
    const b = { x: 0, y: 0, width: 745, height: 670 };
    const v = readableViewport(b, 887, 580, { padding: { left: 28 + 256 } });
    expect(v.zoom).toBeLessThan(0.92);
    expect(v.zoom).toBeGreaterThanOrEqual(READABLE_ZOOM);
    expect(v.x).toBeGreaterThanOrEqual(28 + 256 - 0.5);
    expect(v.x + b.width * v.zoom).toBeLessThanOrEqual(887 - 28 + 0.5);
    expect(v.y).toBeGreaterThanOrEqual(24 - 0.5);
    expect(v.y + b.height * v.zoom).toBeLessThanOrEqual(580 - 28 + 0.5);
  });
});

describe('fit again at the real size', () => {
  const size = { width: 900, height: 600 };
  it('never fits a hidden or unlaid canvas, even when a fit is due', () => {
    expect(fitDue({ wanted: true, auto: true, fitted: null }, { width: 0, height: 0 })).toBe(false);
    expect(fitDue({ wanted: true, auto: true, fitted: null }, { width: 900, height: 1 })).toBe(false);
    expect(fitDue({ wanted: true, auto: true, fitted: null }, null)).toBe(false);
    expect(fitDue({ wanted: true, auto: true, fitted: null }, size, false)).toBe(false);
  });
  it('fits when due once the canvas has a size', () => {
    expect(fitDue({ wanted: true, auto: false, fitted: null }, size)).toBe(true);
  });
  it('fits again when the size changes under an automatic fit (the canvas was ~3,600 px tall at the first)', () => {
    expect(fitDue({ wanted: false, auto: true, fitted: { width: 900, height: 3600 } }, size)).toBe(true);
    expect(fitDue({ wanted: false, auto: true, fitted: { ...size } }, size)).toBe(false);
  });
  it('keeps a view the user moved', () => {
    expect(fitDue({ wanted: false, auto: false, fitted: { width: 900, height: 3600 } }, size)).toBe(false);
  });
});

describe('Fit shows the whole graph clear of the minimap and zoom buttons', () => {
  const inside = (v, b, x0, y0, x1, y1) =>
    b.x * v.zoom + v.x >= x0 - 0.5 && b.y * v.zoom + v.y >= y0 - 0.5 &&
    (b.x + b.width) * v.zoom + v.x <= x1 + 0.5 && (b.y + b.height) * v.zoom + v.y <= y1 + 0.5;
  it('a 4-node chain fits a 600 px wide canvas (Fit showed 2 of 4)', () => {
    const b = { x: 0, y: 0, width: 4 * 200 + 3 * 60, height: 110 };
    const v = clearViewport(b, 860, 640, { minZoom: FIT_ALL_ZOOM, padding: { left: 28 + 256 } });
    expect(inside(v, b, 256, 0, 860 - CORNERS.right, 640) || inside(v, b, 256, CORNERS.top, 860, 640 - CORNERS.bottom)).toBe(true);
  });
  it('a tall graph keeps off the minimap and the zoom buttons', () => {
    const b = { x: 0, y: 0, width: 300, height: 2400 };
    const v = clearViewport(b, 1100, 600, { minZoom: FIT_ALL_ZOOM });
    const right = 1100 - CORNERS.right;
    const clearStrip = inside(v, b, 0, 0, right, 600);
    const clearBand = inside(v, b, 0, CORNERS.top, 1100, 600 - CORNERS.bottom);
    expect(clearStrip || clearBand).toBe(true);
  });
  it('a graph wider than the canvas at the readable zoom keeps its right end off the minimap', () => {
    // both fits are clamped to the readable zoom (a tie): the strip would put the overflowing right end (the
    // CNN template's fc at 1440x900) under the minimap, the band between the buttons and the minimap does not
    const b = { x: 0, y: 0, width: 2400, height: 380 };
    const v = clearViewport(b, 1000, 600);
    expect(v.zoom).toBeCloseTo(READABLE_ZOOM);
    expect(onCorners(b, v, 1000, 600)).toBe(false);
  });
  it('without the corners it is the readable viewport', () => {
    const b = { x: 0, y: 0, width: 200, height: 100 };
    expect(clearViewport(b, 1000, 600, {}, false)).toEqual(readableViewport(b, 1000, 600));
  });
});

describe('coveredRight', () => {
  const flow = { left: 24, right: 876, top: 300, bottom: 850 };
  it('is the width of a panel floating over the right side', () => {
    // the inspector floating at 900x900: from x = 550 to the window's right edge
    expect(coveredRight(flow, [{ left: 550, right: 890, top: 70, bottom: 690 }])).toBe(326);
  });
  it('ignores panels beside the canvas, above it, or not reaching its right edge', () => {
    expect(coveredRight(flow, [{ left: 890, right: 1130, top: 300, bottom: 850 }])).toBe(0); // docked beside it
    expect(coveredRight(flow, [{ left: 550, right: 890, top: 0, bottom: 200 }])).toBe(0); // above it
    expect(coveredRight(flow, [{ left: 300, right: 500, top: 400, bottom: 500 }])).toBe(0); // a tooltip inside
    expect(coveredRight(flow, [])).toBe(0);
  });
  it('takes the widest of several panels', () => {
    expect(coveredRight(flow, [{ left: 700, right: 900, top: 300, bottom: 400 }, { left: 600, right: 880, top: 500, bottom: 600 }])).toBe(276);
  });
});

describe('a selected node is revealed from under a floating panel', () => {
  const flow = { left: 25, right: 875 };
  it('a node under the inspector moves left of it', () => {
    // the CNN's conv1 at 900x900: x 567..750, the inspector floating over the right 340 px (x >= 535)
    const dx = revealDx({ left: 567, right: 750 }, flow, 272, 340);
    expect(750 + dx).toBeLessThanOrEqual(875 - 340 - 24 + 1e-9);
    expect(567 + dx).toBeGreaterThanOrEqual(272 + 24 - 1e-9); // and stays right of the palette
  });
  it('a node clear of the panel, or no panel: no move', () => {
    expect(revealDx({ left: 300, right: 480 }, flow, 272, 340)).toBe(0);
    expect(revealDx({ left: 567, right: 750 }, flow, 272, 0)).toBe(0);
  });
  it('a node wider than the free part is aligned with its left edge', () => {
    expect(revealDx({ left: 500, right: 900 }, flow, 272, 340)).toBe(296 - 500);
  });
});

describe('opening the minimap over a fit', () => {
  // the VAE template after Fit at 1440x900 with the minimap closed: its last node (recon_loss) ends ~30 px from the
  // canvas's bottom-right corner, where the minimap opens
  const boxes = [{ x: 0, y: 0, width: 200, height: 110 }, { x: 560, y: 420, width: 200, height: 110 }];
  const v = { x: 60, y: 20, zoom: 1 };
  it('fits again when a node would sit under the minimap', () => {
    expect(refitForMap({ auto: true }, boxes, v, 850, 570)).toBe(true);
  });
  it('and the fit made with the minimap open keeps every node off it', () => {
    const b = { x: 0, y: 0, width: 760, height: 530 };
    const fitV = clearViewport(b, 850, 570, { minZoom: FIT_ALL_ZOOM });
    expect(refitForMap({ auto: true }, boxes, fitV, 850, 570)).toBe(false);
  });
  it('leaves a view the user moved, or nodes clear of the corner, alone', () => {
    expect(refitForMap({ auto: false }, boxes, v, 850, 570)).toBe(false);
    expect(refitForMap({ auto: true }, boxes.slice(0, 1), v, 850, 570)).toBe(false);
    expect(refitForMap({ auto: true }, boxes, v, 850, 570, false)).toBe(false);
  });
});
