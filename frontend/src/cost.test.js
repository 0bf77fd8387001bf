import { describe, expect, it } from 'vitest';
import { activeMode, costAlpha, costModes, costOf, shareText } from './cost.js';

describe('cost overlay', () => {
  it('offers off and the modes Python sent values for', () => {
    expect(costModes({ cost_modes: ['params', 'macs', 'memory'] })).toEqual(['off', 'params', 'macs', 'memory']);
    expect(costModes({ cost_modes: ['params', 'latency', 'bogus'] })).toEqual(['off', 'params', 'latency']);
    expect(costModes({})).toEqual(['off']);
    expect(costModes(null)).toEqual(['off']);
  });

  it('falls back to off when the chosen mode is no longer sent', () => {
    expect(activeMode('latency', ['off', 'params'])).toBe('off');
    expect(activeMode('params', ['off', 'params'])).toBe('params');
  });

  it('reads a node value and clamps its share', () => {
    const ann = { cost: { params: ['1.2k', 0.25], macs: ['9.2k', 1.7], memory: ['bad'] } };
    expect(costOf(ann, 'params')).toEqual({ text: '1.2k', share: 0.25 });
    expect(costOf(ann, 'macs')).toEqual({ text: '9.2k', share: 1 });
    expect(costOf(ann, 'memory')).toBeNull();
    expect(costOf(ann, 'latency')).toBeNull();
    expect(costOf(ann, 'off')).toBeNull();
    expect(costOf({}, 'params')).toBeNull();
    expect(costOf({ cost: { params: ['3', 'x'] } }, 'params')).toEqual({ text: '3', share: 0 });
  });

  it('tints more for a bigger share, nothing for none', () => {
    expect(costAlpha(0)).toBe(0);
    expect(costAlpha(1)).toBe(0.7);
    expect(costAlpha(0.01)).toBeGreaterThan(0.08);
    expect(costAlpha(0.25)).toBeLessThan(costAlpha(0.5));
    expect(costAlpha(NaN)).toBe(0);
    expect(shareText(0.125)).toBe('13 %');
    expect(shareText(0.051)).toBe('5.1 %');
    expect(shareText(0)).toBe('0 %');
  });
});
