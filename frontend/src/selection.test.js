import { describe, expect, it } from 'vitest';
import { clear, clickFrom, clickNode, hasSelection, primarySelection, selectAll, selectChanges, selectOnly, selectedIds, toggle } from './selection.js';

const nodes = (sel = []) => ['a', 'b', 'c'].map((id) => ({ id, selected: sel.includes(id) }));
const edges = (sel = []) => ['e1', 'e2'].map((id) => ({ id, selected: sel.includes(id) }));

describe('selection', () => {
  it('Ctrl+A, Esc, click leaves exactly one node selected', () => {
    let n = selectAll(nodes());
    expect(selectedIds(n)).toEqual(['a', 'b', 'c']);
    ({ nodes: n } = clear(n, edges()));
    expect(selectedIds(n)).toEqual([]);
    ({ nodes: n } = clickNode(n, edges(), 'b', false));
    expect(selectedIds(n)).toEqual(['b']);
  });

  it('a plain click on a node of a multi-selection reduces it to that node', () => {
    const r = clickNode(nodes(['a', 'b', 'c']), edges(['e1']), 'c', false);
    expect(selectedIds(r.nodes)).toEqual(['c']);
    expect(r.edges.every((e) => !e.selected)).toBe(true);
  });

  it('a modifier click toggles one node and keeps the others', () => {
    let r = clickNode(nodes(['a']), edges(), 'b', true);
    expect(selectedIds(r.nodes)).toEqual(['a', 'b']);
    r = clickNode(r.nodes, r.edges, 'a', true);
    expect(selectedIds(r.nodes)).toEqual(['b']);
  });

  it('keeps unchanged objects (React Flow re-renders only what changed)', () => {
    const before = nodes(['a']);
    const after = toggle(before, 'b');
    expect(after[0]).toBe(before[0]);
    expect(after[2]).toBe(before[2]);
    expect(after[1]).not.toBe(before[1]);
  });

  it('selectOnly can select an edge instead of nodes', () => {
    const r = selectOnly(nodes(['a']), edges(), null, 'e2');
    expect(selectedIds(r.nodes)).toEqual([]);
    expect(r.edges.map((e) => !!e.selected)).toEqual([false, true]);
  });

  it('primarySelection prefers the last clicked node when still selected', () => {
    expect(primarySelection(nodes(), 'a')).toBeNull();
    expect(primarySelection(nodes(['b']), 'a')).toBe('b');
    expect(primarySelection(nodes(['a', 'c']), 'c')).toBe('c');
    expect(primarySelection(nodes(['a', 'c']), 'b')).toBe('a');
  });

  it('a click is decided against the selection before the pointer went down', () => {
    // React Flow already reduced {a, b} to {b} when the click arrives; a Ctrl-click on b
    // must toggle b off the selection as it was ({a, b}) and keep a.
    const r = clickFrom(nodes(['b']), edges(), 'b', true, new Set(['a', 'b']));
    expect(selectedIds(r.nodes)).toEqual(['a']);
    expect(r.primary).toBeNull();
    const add = clickFrom(nodes([]), edges(['e1']), 'c', true, new Set(['a']));
    expect(selectedIds(add.nodes)).toEqual(['a', 'c']);
    expect(add.primary).toBe('c');
    expect(add.edges.map((e) => !!e.selected)).toEqual([true, false]); // a modifier click keeps edges
  });

  it('a plain click selects only the node and makes it primary, whatever was selected before', () => {
    const r = clickFrom(nodes(['a', 'b']), edges(['e2']), 'b', false, new Set(['a', 'b']));
    expect(selectedIds(r.nodes)).toEqual(['b']);
    expect(r.edges.every((e) => !e.selected)).toBe(true);
    expect(r.primary).toBe('b');
  });

  it('select changes: the node just selected becomes primary; other changes leave it', () => {
    expect(selectChanges([{ type: 'position', id: 'a' }], 'b')).toEqual({ changed: false, primary: 'b' });
    expect(selectChanges([{ type: 'select', id: 'a', selected: false }], 'b')).toEqual({ changed: true, primary: 'b' });
    expect(selectChanges([{ type: 'select', id: 'a', selected: false }, { type: 'select', id: 'c', selected: true }], 'a'))
      .toEqual({ changed: true, primary: 'c' });
  });

  it('hasSelection sees nodes and edges', () => {
    expect(hasSelection(nodes(), edges())).toBe(false);
    expect(hasSelection(nodes(['c']), edges())).toBe(true);
    expect(hasSelection(nodes(), edges(['e1']))).toBe(true);
  });
});
