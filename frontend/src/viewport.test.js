import { describe, expect, it } from 'vitest';
import { MAX_FIT_ZOOM, READABLE_ZOOM, readableViewport } from './viewport.js';

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

  it('12 px text at the readable zoom is at least 11 px on screen', () => {
    expect(12 * READABLE_ZOOM).toBeGreaterThanOrEqual(11);
  });
});
