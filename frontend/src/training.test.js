import { describe, expect, it } from 'vitest';
import { trainOf, trainableText } from './training.js';

describe('trainable vs frozen on the canvas', () => {
  it('dims a frozen node with a lock', () => {
    const t = trainOf({ train: { state: 'frozen', trainable: 0, frozen: 1200 } });
    expect(t.cls).toBe(' is-frozen');
    expect(t.badge).toBe('🔒');
    expect(t.title).toContain('Frozen');
  });
  it('shows what a LoRA node trains', () => {
    const t = trainOf({ train: { state: 'adapter', trainable: 16, frozen: 20 } });
    expect(t.cls).toBe(' is-adapter');
    expect(t.badge).toBe('16 train');
    expect(t.title).toContain('base');
  });
  it('leaves nodes alone when nothing is frozen', () => {
    expect(trainOf({ params: 10 })).toBeNull();
    expect(trainOf({ train: { state: 'trainable', trainable: 10, frozen: 0 } }).badge).toBeNull();
    expect(trainableText({})).toBeNull();
    expect(trainableText({ trainable: { trainable: 26, frozen: 20, adapter: 16 } })).toBe('26 of 46');
  });
});
