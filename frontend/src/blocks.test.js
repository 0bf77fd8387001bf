import { describe, expect, it } from 'vitest';
import { ancestors, blockTree, chunkTree, collapsedView, expandTo, initialExpanded, searchNodes } from './blocks.js';
import { startBlocks } from './blockView.js';

const node = (id, ltype = 'ReLU', label = null) => ({ id, position: { x: 0, y: 0 }, data: { ltype, label, params: {} } });
const edge = (s, t) => ({ id: `${s}->${t}`, source: s, target: t, sourceHandle: 'out', targetHandle: 'in' });

// input -> layer1_0_{conv1,bn1} -> layer1_1_{conv1,bn1} -> relu_1 -> relu_2 -> fc
const ids = ['input', 'layer1_0_conv1', 'layer1_0_bn1', 'layer1_1_conv1', 'layer1_1_bn1', 'relu_1', 'relu_2', 'fc'];
const nodes = ids.map((id) => node(id, id.includes('conv') ? 'Conv2d' : 'ReLU'));
const edges = ids.slice(1).map((id, i) => edge(ids[i], id));

describe('blockTree', () => {
  it('reads modules from names, not counters', () => {
    const t = blockTree(nodes);
    expect([...t.blocks.keys()].sort()).toEqual(['blk:layer1', 'blk:layer1.0', 'blk:layer1.1']);
    expect(t.roots).toEqual(['blk:layer1']);
    expect(t.ownerOf.get('relu_1')).toBe(null); // "relu_1", "relu_2": counters, no block
    expect(ancestors(t, 'layer1_1_bn1')).toEqual(['blk:layer1', 'blk:layer1.1']);
    expect(t.blocks.get('blk:layer1').members).toHaveLength(4);
  });
  it('prefers a dotted label and drops wrapper modules', () => {
    const t = blockTree([node('a', 'ReLU', 'model.enc.0'), node('b', 'ReLU', 'model.enc.1'), node('c', 'ReLU', 'model.dec.x')]);
    expect([...t.blocks.keys()]).not.toContain('blk:model.dec'); // one member
    expect(t.blocks.has('blk:model.enc')).toBe(true);
    expect(t.blocks.get('blk:model')?.members ?? ['a', 'b', 'c']).toHaveLength(3);
  });
});

describe('collapsedView', () => {
  const t = blockTree(nodes);
  it('collapses a block to one box and aggregates its edges', () => {
    const v = collapsedView(nodes, edges, t, new Set());
    expect(v.shown).toEqual(['input', 'relu_1', 'relu_2', 'fc']);
    expect(v.blocks.map((b) => [b.id, b.count])).toEqual([['blk:layer1', 4]]);
    expect(v.aggEdges.map((e) => [e.source, e.target])).toEqual([['input', 'blk:layer1'], ['blk:layer1', 'relu_1']]);
    expect(v.blocks[0].inputs).toEqual(['input']);
    expect(v.blocks[0].outputs).toEqual(['layer1_1_bn1']);
    expect(v.keptEdges).toEqual(['relu_1->relu_2', 'relu_2->fc']);
  });
  it('expanding shows child blocks inside a frame; edges between collapsed blocks are merged', () => {
    const v = collapsedView(nodes, [...edges, edge('layer1_0_conv1', 'layer1_1_conv1')], t, new Set(['blk:layer1']));
    expect(v.frames.map((f) => f.block)).toEqual(['blk:layer1']);
    expect(v.blocks.map((b) => b.id)).toEqual(['blk:layer1.0', 'blk:layer1.1']);
    const between = v.aggEdges.find((e) => e.source === 'blk:layer1.0' && e.target === 'blk:layer1.1');
    expect(between.count).toBe(2);
  });
  it('every layer is shown exactly once: by itself or by its outermost collapsed block', () => {
    for (const open of [[], ['blk:layer1'], ['blk:layer1', 'blk:layer1.0'], ['blk:layer1.0']]) {
      const v = collapsedView(nodes, edges, t, new Set(open));
      const inBlocks = v.blocks.reduce((a, b) => a + b.count, 0);
      expect(v.shown.length + inBlocks).toBe(nodes.length);
    }
  });
});

describe('search', () => {
  it('ranks exact, prefix, substring, then type; expandTo opens the blocks around a hit', () => {
    expect(searchNodes(nodes, 'FC')).toEqual(['fc']);
    expect(searchNodes(nodes, 'layer1_1')).toEqual(['layer1_1_conv1', 'layer1_1_bn1']);
    expect(searchNodes(nodes, 'conv2d')).toEqual(['layer1_0_conv1', 'layer1_1_conv1']);
    expect(searchNodes(nodes, '  ')).toEqual([]);
    const t = blockTree(nodes);
    const open = expandTo(t, new Set(), 'layer1_1_bn1');
    expect([...open].sort()).toEqual(['blk:layer1', 'blk:layer1.1']);
    expect(collapsedView(nodes, edges, t, open).shown).toContain('layer1_1_bn1');
    expect(expandTo(t, open, 'layer1_1_conv1')).toBe(open);
  });
});

describe('big graphs open collapsed', () => {
  it('runs of 50 when names carry no hierarchy; the first view stays small', () => {
    const chain = Array.from({ length: 400 }, (_, i) => node(`relu_${i}`));
    const t = chunkTree(chain);
    expect(t.roots).toHaveLength(8);
    expect(t.blocks.get('blk:#0').name).toBe('layers 1–50');
    const b = startBlocks(chain, chain.slice(1).map((n, i) => edge(chain[i].id, n.id)));
    expect(b.shown.size + b.extraNodes.filter((n) => n.type === 'block').length).toBeLessThanOrEqual(60);
    expect(b.extraEdges.length).toBeGreaterThan(0);
    expect(initialExpanded(t).size).toBeLessThanOrEqual(1);
  });
  it('small graphs are shown in full', () => {
    expect(startBlocks(nodes, edges)).toBe(null);
  });
});
