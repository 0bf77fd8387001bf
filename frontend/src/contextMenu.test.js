import { describe, expect, it } from 'vitest';
import { menuAt, menuItems } from './contextMenu.js';

const nodes = [
  { id: 'linear_1', data: { label: null } },
  { id: 'relu_1', data: { label: 'act' } },
];
const labels = (m) => m.items.map((i) => i.label);

describe('context menu', () => {
  it('opens at the click, relative to the canvas, and keeps the screen point', () => {
    const m = menuAt({ clientX: 300, clientY: 200 }, { left: 100, top: 50 }, 'pane', null);
    expect(m).toEqual({ kind: 'pane', id: null, x: 200, y: 150, fx: 300, fy: 200 });
  });

  it('a single node: title, Rename, Duplicate, Delete', () => {
    const m = menuItems({ kind: 'node', id: 'relu_1' }, nodes, 1, true);
    expect(m.title).toBe('act');
    expect(labels(m)).toEqual(['Rename', 'Duplicate', 'Delete']);
    expect(m.items.map((i) => i.arg)).toEqual(['relu_1', 'relu_1', 'relu_1']);
    expect(m.items.find((i) => i.action === 'deleteNode')).toMatchObject({ danger: true, kbd: 'Del' });
    expect(menuItems({ kind: 'node', id: 'linear_1' }, nodes, 0, true).title).toBe('linear_1');
  });

  it('several selected nodes: no Rename, Group as block instead', () => {
    const m = menuItems({ kind: 'node', id: 'linear_1' }, nodes, 2, false);
    expect(m.title).toBe('2 layers');
    expect(labels(m)).toEqual(['Duplicate', 'Group as block…', 'Delete']);
  });

  it('a node that is gone shows an empty menu', () => {
    expect(menuItems({ kind: 'node', id: 'gone' }, nodes, 1, false)).toEqual({ title: null, items: [] });
  });

  it('an edge: Delete connection', () => {
    const m = menuItems({ kind: 'edge', id: 'a->b' }, nodes, 0, false);
    expect(m.items).toEqual([{ action: 'deleteEdge', label: 'Delete connection', kbd: 'Del', danger: true, disabled: false, arg: 'a->b' }]);
  });

  it('the pane: Paste here needs a clipboard, layout and fit need layers', () => {
    const full = menuItems({ kind: 'pane', id: null }, nodes, 0, false);
    expect(labels(full)).toEqual(['Paste here', 'Auto-layout', 'Fit view']);
    expect(full.items.map((i) => i.disabled)).toEqual([false, false, false]);
    const empty = menuItems({ kind: 'pane', id: null }, [], 0, true);
    expect(empty.items.map((i) => i.disabled)).toEqual([true, true, true]);
  });
});
