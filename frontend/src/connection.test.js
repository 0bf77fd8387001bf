// The browser's connection rule (graph.js connectionCheck) on the cases shared with
// Python (tests/canvas/connection_cases.json, checked there by tests/graph/test_connection_rules.py).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { accepts, connectionCheck, connectionProblem, fromPy, indexPalette, makeNode } from './graph.js';
import { insertItems } from './clipboard.js';

const DATA = JSON.parse(readFileSync(new URL('../../tests/canvas/connection_cases.json', import.meta.url), 'utf8'));
const palette = indexPalette(DATA.palette);

function check(c) {
  const { nodes, edges } = fromPy(c.graph, palette);
  const ann = Object.fromEntries(Object.entries(c.out_kinds).map(([id, kind]) => [id, { out_kind: kind }]));
  const conn = { source: c.connect.source, sourceHandle: c.connect.source_port, target: c.connect.target, targetHandle: c.connect.target_port };
  return connectionCheck(conn, nodes, edges, palette, ann);
}

describe('connection rules shared with Python', () => {
  it('has cases for every kind of port and every reason', () => {
    expect(DATA.cases.length).toBeGreaterThan(100);
    const codes = new Set(DATA.cases.map((c) => c.expect.code).filter(Boolean));
    for (const code of ['port_kind', 'self_loop', 'dangling_edge', 'bad_port', 'duplicate_edge', 'extra_input', 'cycle']) {
      expect(codes.has(code), code).toBe(true);
    }
  });

  it.each(DATA.cases.map((c) => [c.id, c]))('%s', (_id, c) => {
    const r = check(c);
    if (c.expect.allowed) expect(r).toBeNull();
    else expect(r?.code).toBe(c.expect.code);
  });
});

describe('connection rules: browser-only details', () => {
  const nodes = [makeNode('x', 'Input', null, { modality: 'tokens' }, {}), makeNode('f', 'Flatten', null, {}, {}), makeNode('l', 'Linear', null, {}, {})];

  it('reports an incomplete connection and keeps the message API', () => {
    expect(connectionCheck({ source: 'x', target: null }, nodes, [], palette, {})).toEqual({ code: 'incomplete', message: 'Incomplete connection' });
    expect(connectionProblem({ source: 'x', sourceHandle: 'out', target: 'l', targetHandle: 'in' }, nodes, [], palette, {})).toMatch(/Embedding/);
    expect(connectionProblem({ source: 'x', sourceHandle: 'out', target: 'f', targetHandle: 'in' }, nodes, [], palette, {})).toBeNull();
  });

  it('without Python annotations a token Input is known by its modality; other outputs are float', () => {
    expect(connectionCheck({ source: 'x', sourceHandle: 'out', target: 'l', targetHandle: 'in' }, nodes, [], palette, undefined)?.code).toBe('port_kind');
    expect(connectionCheck({ source: 'f', sourceHandle: 'out', target: 'l', targetHandle: 'in' }, nodes, [], palette, undefined)).toBeNull();
  });

  it('a palette port of kind "any" takes both kinds', () => {
    const entry = { type: 'Future', inputs: [{ name: 'in', kind: 'any' }] };
    expect(accepts(entry, 'in', 'tokens')).toBe(true);
    expect(accepts(entry, 'in', 'tensor')).toBe(true);
    expect(accepts(palette.get('Linear'), 'in', 'tokens')).toBe(false);
    expect(accepts(palette.get('Embedding'), 'in', 'tensor')).toBe(false);
  });
});

describe('ports a Python graph leaves unnamed are resolved as Python does', () => {
  const n = (id, type) => ({ id, type, position: { x: 0, y: 0 } });
  const ports = (edges) => edges.map((e) => [e.sourceHandle, e.targetHandle]);

  it('attention: query, then key, then value; named ports count as taken', () => {
    const g = {
      nodes: [n('q', 'Input'), n('k', 'Input'), n('v', 'Input'), n('m', 'MultiheadAttention')],
      edges: [{ source: 'q', target: 'm' }, { source: 'k', target: 'm', target_port: '' }, { source: 'v', target: 'm', source_port: '' }],
    };
    expect(ports(fromPy(g, palette).edges)).toEqual([['out', 'query'], ['out', 'key'], ['out', 'value']]);
    const named = { ...g, edges: [{ source: 'q', target: 'm', target_port: 'key' }, { source: 'k', target: 'm' }] };
    expect(ports(fromPy(named, palette).edges)).toEqual([['out', 'key'], ['out', 'query']]);
  });

  it('a merge takes every unnamed edge into its one input; a full single input stays the first', () => {
    const g = {
      nodes: [n('x', 'Input'), n('y', 'Input'), n('a', 'Add'), n('l', 'Linear')],
      edges: [{ source: 'x', target: 'a' }, { source: 'y', target: 'a' }, { source: 'x', target: 'l' }, { source: 'y', target: 'l' }],
    };
    expect(ports(fromPy(g, palette).edges).map(([, t]) => t)).toEqual(['in', 'in', 'in', 'in']);
  });

  it('a pasted block resolves its ports the same way', () => {
    const items = { nodes: [{ id: 'q', type: 'Input' }, { id: 'k', type: 'Input' }, { id: 'm', type: 'MultiheadAttention' }], edges: [{ source: 'q', target: 'm' }, { source: 'k', target: 'm' }] };
    const r = insertItems([], [], items, { x: 0, y: 0 }, palette, false);
    expect(r.edges.map((e) => e.targetHandle)).toEqual(['query', 'key']);
  });
});
