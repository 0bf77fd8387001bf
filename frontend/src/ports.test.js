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

describe('a counted number of outputs', () => {
  // The Op's palette entry as Python sends it (builder/graph/layers/op.py: six ports, output_count "outputs").
  const OP = { type: 'Op', output_count: 'outputs',
    outputs: ['out', 'out1', 'out2', 'out3', 'out4', 'out5'].map((name) => ({ name, kind: 'tensor' })) };
  const op = (params) => ({ data: { ltype: 'Op', params } });

  it('shows as many output ports as the operator returns', () => {
    expect(names(nodeOutputs(op({ op: 'aten.relu', outputs: 1 }), OP, {}))).toEqual(['out']);
    expect(names(nodeOutputs(op({ op: 'aten.split', outputs: 3 }), OP, {}))).toEqual(['out', 'out1', 'out2']);
  });

  it('keeps a port an edge still leaves from, and all ports for a count it cannot read', () => {
    expect(names(nodeOutputs(op({ outputs: 1 }), OP, {}, ['out', 'out3']))).toEqual(['out', 'out3']);
    expect(names(nodeOutputs(op({ outputs: 'two' }), OP, {}))).toHaveLength(6);
    expect(names(nodeOutputs(op({}), OP, {}))).toHaveLength(6);
    const withDefault = { ...OP, params: [{ name: 'outputs', type: 'int', default: 1 }] };
    expect(names(nodeOutputs(op({ op: 'aten.relu' }), withDefault, {}))).toEqual(['out']); // left at its default
  });
});
