import { describe, expect, it } from 'vitest';
import { BIG_DELETE, copiedMessage, copyTo, createClipboard, deleteItems, insertItems, itemsOf, nextPaste, offersUndo, pasteOrigin, PASTE_OFFSET } from './clipboard.js';
import { indexPalette, makeEdge, makeNode } from './graph.js';

const palette = indexPalette([
  { type: 'Linear', inputs: [{ name: 'in', kind: 'tensor' }], outputs: [{ name: 'out', kind: 'tensor' }], params: [] },
]);
const graph = () => {
  const nodes = [
    { ...makeNode('linear_1', 'Linear', null, { out_features: 4 }, { x: 100, y: 50 }), selected: true },
    { ...makeNode('linear_2', 'Linear', 'two', {}, { x: 400, y: 80 }), selected: true },
    makeNode('linear_3', 'Linear', null, {}, { x: 700, y: 50 }),
  ];
  const edges = [makeEdge('linear_1->linear_2', 'linear_1', 'out', 'linear_2', 'in'), makeEdge('linear_2->linear_3', 'linear_2', 'out', 'linear_3', 'in')];
  return { nodes, edges };
};

describe('clipboard', () => {
  it('copies the nodes and only the edges between them', () => {
    const { nodes, edges } = graph();
    const items = itemsOf(nodes, edges, ['linear_1', 'linear_2']);
    expect(items.nodes.map((n) => n.id)).toEqual(['linear_1', 'linear_2']);
    expect(items.edges.map((e) => e.id)).toEqual(['linear_1->linear_2']);
  });

  it('pastes offset from the originals, further on each paste, with fresh ids, selected', () => {
    const { nodes, edges } = graph();
    const items = itemsOf(nodes, edges, ['linear_1', 'linear_2']);
    const o1 = pasteOrigin(items, 1);
    expect(o1).toEqual({ x: 100 + PASTE_OFFSET, y: 50 + PASTE_OFFSET });
    expect(pasteOrigin(items, 2)).toEqual({ x: 100 + 2 * PASTE_OFFSET, y: 50 + 2 * PASTE_OFFSET });
    const r = insertItems(nodes, edges, items, o1, palette);
    expect(r.created).toEqual(['linear_4', 'linear_5']);
    const pasted = r.nodes.filter((n) => r.created.includes(n.id));
    expect(pasted.map((n) => n.position)).toEqual([{ x: 140, y: 90 }, { x: 440, y: 120 }]);
    expect(pasted.every((n) => n.selected)).toBe(true);
    expect(r.nodes.filter((n) => n.selected).map((n) => n.id)).toEqual(['linear_4', 'linear_5']);
    expect(pasted[1].data.label).toBe('two');
    const newEdge = r.edges.find((e) => e.source === 'linear_4');
    expect(newEdge).toMatchObject({ target: 'linear_5', sourceHandle: 'out', targetHandle: 'in' });
    // the originals are untouched (no node lands on top of another)
    const origPos = new Set(nodes.map((n) => `${n.position.x},${n.position.y}`));
    expect(pasted.some((n) => origPos.has(`${n.position.x},${n.position.y}`))).toBe(false);
  });

  it('lays out items without positions (blocks) and resolves default ports', () => {
    const items = { nodes: [{ id: 'a', type: 'Linear' }, { id: 'b', type: 'Linear' }], edges: [{ id: 'x', source: 'a', target: 'b' }] };
    const r = insertItems([], [], items, { x: 10, y: 20 }, palette, false);
    expect(r.nodes).toHaveLength(2);
    expect(Math.min(...r.nodes.map((n) => n.position.x))).toBe(10);
    expect(r.edges[0]).toMatchObject({ sourceHandle: 'out', targetHandle: 'in' });
    expect(r.nodes.some((n) => n.selected)).toBe(false);
  });

  it('deletes the selection and edges touching it, counting removed nodes', () => {
    const { nodes, edges } = graph();
    const r = deleteItems(nodes, edges);
    expect(r.nodes.map((n) => n.id)).toEqual(['linear_3']);
    expect(r.edges).toEqual([]);
    expect(r.removedNodes).toBe(2);
    expect(deleteItems(nodes.map((n) => ({ ...n, selected: false })), edges)).toBeNull();
    expect(BIG_DELETE).toBeGreaterThanOrEqual(2);
  });

  it('deletes a single edge by id', () => {
    const { nodes, edges } = graph();
    const r = deleteItems(nodes.map((n) => ({ ...n, selected: false })), edges, [], ['linear_2->linear_3']);
    expect(r.nodes).toHaveLength(3);
    expect(r.edges.map((e) => e.id)).toEqual(['linear_1->linear_2']);
    expect(r.removedNodes).toBe(0);
  });

  it('each Ctrl+V of the same copy lands one step further; a new copy starts again', () => {
    const { nodes, edges } = graph();
    expect(nextPaste(createClipboard())).toBeNull();
    let clip = copyTo(createClipboard(), itemsOf(nodes, edges, ['linear_1', 'linear_2']));
    const first = nextPaste(clip);
    expect(first.origin).toEqual({ x: 100 + PASTE_OFFSET, y: 50 + PASTE_OFFSET });
    expect(first.items.nodes.map((n) => n.id)).toEqual(['linear_1', 'linear_2']);
    expect(first.items.edges).toHaveLength(1);
    expect(clip.pastes).toBe(0); // pure: the old clipboard is unchanged
    clip = first.clipboard;
    const second = nextPaste(clip);
    expect(second.origin).toEqual({ x: 100 + 2 * PASTE_OFFSET, y: 50 + 2 * PASTE_OFFSET });
    expect(second.clipboard.pastes).toBe(2);
    expect(copyTo(second.clipboard, itemsOf(nodes, edges, ['linear_3'])).pastes).toBe(0);
  });

  it('says what was copied and offers Undo only for a big delete', () => {
    expect(copiedMessage(1)).toBe('Copied 1 layer');
    expect(copiedMessage(3)).toBe('Copied 3 layers');
    expect(offersUndo(null)).toBe(false);
    expect(offersUndo({ removedNodes: BIG_DELETE })).toBe(false);
    expect(offersUndo({ removedNodes: BIG_DELETE + 1 })).toBe(true);
  });
});
