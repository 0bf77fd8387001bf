import { describe, expect, it } from 'vitest';
import { BLOCK_DAGRE_MAX, DAGRE_MAX, blockLayout, columnLayout, layeredLayout } from './layout.js';
import { blockTree, collapsedView } from './blocks.js';
import { startBlocks } from './blockView.js';

const node = (id) => ({ id, position: { x: 0, y: 0 }, data: { ltype: 'ReLU', label: null, params: {} } });
const edge = (s, t) => ({ id: `${s}->${t}`, source: s, target: t, sourceHandle: 'out', targetHandle: 'in' });

// A ResNet-like chain of `blocks` residual blocks (names carry the module hierarchy, as the importers write them).
function residual(blocks) {
  const nodes = [node('input')];
  const edges = [];
  let x = 'input';
  for (let b = 0; b < blocks; b += 1) {
    const p = `layer${1 + (b % 4)}_${b}_`;
    const ids = ['conv1', 'bn1', 'relu', 'conv2', 'bn2', 'add'].map((s) => p + s);
    ids.forEach((id, i) => {
      nodes.push(node(id));
      edges.push(edge(i ? ids[i - 1] : x, id));
    });
    edges.push(edge(x, ids[5])); // the skip
    x = ids[5];
  }
  nodes.push(node('output'));
  edges.push(edge(x, 'output'));
  return { nodes, edges };
}

const overlaps = (a, b, w = 200, h = 110) => a.x < b.x + w && b.x < a.x + w && a.y < b.y + h && b.y < a.y + h;

describe('columnLayout', () => {
  it('places every node, inputs left of their outputs, no two nodes overlapping', () => {
    const { nodes, edges } = residual(5);
    const pos = columnLayout(nodes, edges);
    expect(pos.size).toBe(nodes.length);
    for (const e of edges) expect(pos.get(e.source).x).toBeLessThan(pos.get(e.target).x);
    const ps = [...pos.values()];
    for (let i = 0; i < ps.length; i += 1) for (let j = i + 1; j < ps.length; j += 1) expect(overlaps(ps[i], ps[j])).toBe(false);
  });
  it('keeps a chain straight', () => {
    const ids = ['a', 'b', 'c', 'd'];
    const pos = columnLayout(ids.map(node), ids.slice(1).map((id, i) => edge(ids[i], id)));
    expect(new Set(ids.map((id) => pos.get(id).y)).size).toBe(1);
  });
  it('survives cycles, self loops and edges to unknown nodes', () => {
    const pos = columnLayout(['a', 'b', 'c'].map(node), [edge('a', 'b'), edge('b', 'c'), edge('c', 'b'), edge('a', 'a'), edge('a', 'zz')]);
    expect([...pos.keys()].sort()).toEqual(['a', 'b', 'c']);
    for (const p of pos.values()) expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
  });
  it('lays out a 2,000-layer chain (dagre overflowed its stack there)', () => {
    const { nodes, edges } = residual(333);
    expect(nodes.length).toBeGreaterThan(1990);
    const pos = layeredLayout(nodes, edges); // above DAGRE_MAX: columnLayout
    expect(nodes.length).toBeGreaterThan(DAGRE_MAX);
    expect(pos.size).toBe(nodes.length);
    const b = startBlocks(nodes.map((n) => ({ ...n, position: pos.get(n.id) })), edges);
    expect(b.extraNodes.length + b.shown.size).toBeLessThan(60); // opens collapsed
  });
});

describe('blockLayout', () => {
  it('places a view too big for dagre flat, frames around what they hold', () => {
    const { nodes, edges } = residual(60);
    const tree = blockTree(nodes);
    const expanded = new Set(tree.blocks.keys()); // every block open: every layer shown
    const view = collapsedView(nodes, edges, tree, expanded);
    expect(view.shown.length).toBeGreaterThan(BLOCK_DAGRE_MAX);
    const { pos, frames } = blockLayout(view, new Map(nodes.map((n) => [n.id, n])), new Map(edges.map((e) => [e.id, e])), tree);
    expect(pos.size).toBe(view.shown.length);
    expect(frames.size).toBe(view.frames.length);
    for (const f of view.frames) {
      const r = frames.get(f.block);
      for (const id of tree.blocks.get(f.block).members) {
        const p = pos.get(id);
        expect(p.x >= r.x && p.x + 200 <= r.x + r.width && p.y >= r.y && p.y + 110 <= r.y + r.height).toBe(true);
      }
    }
  });
});
