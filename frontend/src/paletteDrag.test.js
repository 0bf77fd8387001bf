import { describe, expect, it } from 'vitest';
import { clickDropPoint, inside } from './usePaletteDrag.js';

describe('palette drag', () => {
  const rect = { left: 100, top: 50, right: 900, bottom: 650, width: 800, height: 600 };
  it('drops only inside the canvas', () => {
    expect(inside(rect, 100, 50)).toBe(true);
    expect(inside(rect, 99, 300)).toBe(false);
    expect(inside(null, 1, 1)).toBe(false);
  });
  it('clicked items land near the centre, stepped so they do not stack', () => {
    expect(clickDropPoint(rect, 0)).toEqual({ x: 500, y: 350 });
    expect(clickDropPoint(rect, 1)).toEqual({ x: 524, y: 374 });
    expect(clickDropPoint(rect, 5)).toEqual(clickDropPoint(rect, 0));
  });
});
