import { describe, expect, it } from 'vitest';
import { nodeOutputs, offersPaddingMask } from './graph.js';

// The Input's palette entry as Python sends it (builder/graph/layers/core.py: outputs out and padding_mask).
const INPUT = { type: 'Input', outputs: [{ name: 'out', kind: 'tensor' }, { name: 'padding_mask', kind: 'mask' }] };
const input = (params) => ({ data: { ltype: 'Input', params } });
const names = (ports) => ports.map((p) => p.name);

describe('padding mask port', () => {
  it('an image or vector Input shows no padding_mask', () => {
    expect(names(nodeOutputs(input({ modality: 'image' }), INPUT, { shape: '(B, 1, 8, 8)', out_kind: 'tensor' }))).toEqual(['out']);
    expect(names(nodeOutputs(input({ modality: 'auto' }), INPUT, { shape: '(B, 4)', out_kind: 'tensor' }))).toEqual(['out']);
    expect(offersPaddingMask(input({ modality: 'image' }), {})).toBe(false); // before Python answered
  });

  it('a token or sequence Input shows it', () => {
    expect(names(nodeOutputs(input({ modality: 'auto' }), INPUT, { shape: '(B, 16)', out_kind: 'tokens' }))).toEqual(['out', 'padding_mask']);
    expect(offersPaddingMask(input({ modality: 'auto' }), { shape: '(B, 16, 8)', out_kind: 'tensor' })).toBe(true);
    expect(offersPaddingMask(input({ modality: 'tokens' }), {})).toBe(true);
    expect(offersPaddingMask(input({ modality: 'sequence' }), { shape: '?' })).toBe(true);
  });

  it('other layers keep their ports', () => {
    const mha = { type: 'MultiheadAttention', outputs: [{ name: 'out' }, { name: 'padding_mask' }] };
    expect(names(nodeOutputs({ data: { ltype: 'MultiheadAttention' } }, mha, {}))).toEqual(['out', 'padding_mask']);
  });
});
