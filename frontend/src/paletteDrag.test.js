import { describe, expect, it } from 'vitest';
import { inside } from './usePaletteDrag.js';

describe('palette drag', () => {
  const rect = { left: 100, top: 50, right: 900, bottom: 650, width: 800, height: 600 };
  it('drops only inside the canvas', () => {
    expect(inside(rect, 100, 50)).toBe(true);
    expect(inside(rect, 99, 300)).toBe(false);
    expect(inside(null, 1, 1)).toBe(false);
  });
});
