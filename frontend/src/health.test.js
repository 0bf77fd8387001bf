import { describe, expect, it } from 'vitest';
import { healthClass, healthOf } from './health.js';

describe('health', () => {
  it('reads the level and the message lines of a node annotation', () => {
    const ann = { shape: '(32)', health: { level: 'bad', message: 'dead ReLU; received: 100% dead. Fix: ...\nsecond' } };
    expect(healthOf(ann)).toEqual({ level: 'bad', lines: ['dead ReLU; received: 100% dead. Fix: ...', 'second'] });
    expect(healthClass(healthOf(ann))).toBe(' health-bad');
  });

  it('ignores missing, malformed or unknown health', () => {
    expect(healthOf({})).toBeNull();
    expect(healthOf(null)).toBeNull();
    expect(healthOf({ health: 'bad' })).toBeNull();
    expect(healthOf({ health: { level: 'awful', message: 'x' } })).toBeNull();
    expect(healthOf({ health: { level: 'ok' } })).toEqual({ level: 'ok', lines: [] });
    expect(healthClass(null)).toBe('');
  });
});
