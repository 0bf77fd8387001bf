import { describe, expect, it } from 'vitest';
import { emptyHistory, record, redo, restoredNodes, sameGeometry, snapshotOf, undo } from './history.js';

const node = (id, x = 0, y = 0, selected = false) => ({ id, type: 'layer', position: { x, y }, data: { ltype: 'Linear' }, selected });
const snap = (...ids) => snapshotOf(ids.map((id) => node(id)), []);

describe('history', () => {
  it('undo returns the recorded state and moves the current one to the future', () => {
    let h = record(emptyHistory(), snap('a'));
    const cur = snap('a', 'b');
    const r = undo(h, cur);
    expect(r.snapshot.nodes.map((n) => n.id)).toEqual(['a']);
    expect(r.history.past).toHaveLength(0);
    expect(r.history.future).toEqual([cur]);
    h = r.history;
    const r2 = redo(h, r.snapshot);
    expect(r2.snapshot).toBe(cur);
    expect(r2.history.past).toHaveLength(1);
  });

  it('undo and redo on empty stacks return null', () => {
    expect(undo(emptyHistory(), snap())).toBeNull();
    expect(redo(emptyHistory(), snap())).toBeNull();
  });

  it('recording clears the redo stack and respects the limit', () => {
    let h = { past: [], future: [snap('x')] };
    for (let i = 0; i < 5; i += 1) h = record(h, snap(`n${i}`), 3);
    expect(h.future).toEqual([]);
    expect(h.past.map((s) => s.nodes[0].id)).toEqual(['n2', 'n3', 'n4']);
  });

  it('does not mutate the history it is given', () => {
    const h = record(emptyHistory(), snap('a'));
    const frozen = JSON.stringify(h);
    undo(h, snap('b'));
    record(h, snap('c'));
    expect(JSON.stringify(h)).toBe(frozen);
  });

  it('snapshots copy positions and drop selection', () => {
    const n = node('a', 1, 2, true);
    const s = snapshotOf([n], [{ id: 'e', source: 'a', target: 'b', selected: true }]);
    n.position.x = 99;
    expect(s.nodes[0].position).toEqual({ x: 1, y: 2 });
    expect(s.edges[0].selected).toBe(false);
    expect(restoredNodes(s)[0].selected).toBe(false);
  });

  it('sameGeometry compares ids and positions', () => {
    expect(sameGeometry([node('a', 1, 1)], [node('a', 1, 1)])).toBe(true);
    expect(sameGeometry([node('a', 1, 1)], [node('a', 1, 2)])).toBe(false);
    expect(sameGeometry([node('a')], [node('a'), node('b')])).toBe(false);
  });
});
