import { describe, expect, it } from 'vitest';
import { decodeData, initialState, mergeFromPython, replacedHistory, undoKind, payloadOf, queueEvent, resendDue, unackedEvents, scriptIdle, takeEcho, MAX_RESENDS, RESEND_AFTER_MS, RESEND_UNKNOWN_MS } from './sync.js';
import { indexPalette, makeNode } from './graph.js';

const palette = indexPalette([{ type: 'Linear', inputs: [{ name: 'in' }], outputs: [{ name: 'out' }], params: [] }]);
const pyGraph = (nodes, edges = []) => ({ nodes, edges });
const pyNode = (id, x, y, params = {}) => ({ id, type: 'Linear', label: null, params, position: x == null ? null : { x, y } });

describe('python sync', () => {
  it('the first state comes from Python unless the live store is at least as new', () => {
    const data = { revision: 2, graph: pyGraph([pyNode('a', 0, 0)]), selected: 'a' };
    const s = initialState(data, {}, palette);
    expect(s.nodes.map((n) => [n.id, !!n.selected])).toEqual([['a', true]]);
    const live = { nodes: [makeNode('z', 'Linear', null, {}, { x: 1, y: 1 })], edges: [], revision: 2, history: { past: [1], future: [] } };
    expect(initialState(data, live, palette).nodes[0].id).toBe('z');
    expect(initialState({ ...data, revision: 3 }, live, palette).nodes[0].id).toBe('a');
  });

  it('a graph Python replaced while the canvas was away is one undo step from the one it showed', () => {
    const data = { revision: 3, graph: pyGraph([pyNode('a', 0, 0)]) };
    const live = { nodes: [makeNode('z', 'Linear', null, {}, { x: 1, y: 1 })], edges: [], revision: 2, history: { past: [], future: ['r'] } };
    const s = initialState(data, live, palette);
    expect(s.nodes[0].id).toBe('a');
    expect(s.history.past.map((snap) => snap.nodes.map((n) => n.id))).toEqual([['z']]);
    expect(s.history.future).toEqual([]);
    expect(initialState(data, {}, palette).history).toEqual({ past: [], future: [] }); // a first load: nothing to undo
  });

  it('another project Python put on the canvas while it was away starts its own history', () => {
    const live = { nodes: [makeNode('z', 'Linear', null, {}, { x: 1, y: 1 })], edges: [], revision: 2, project: 4, history: { past: ['e'], future: [] } };
    const same = initialState({ revision: 3, project: 4, graph: pyGraph([pyNode('a', 0, 0)]) }, live, palette);
    expect(same.history.past.length).toBe(2); // Data › Fix the graph: the graph it showed is one step back
    expect(same.project).toBe(4);
    const other = initialState({ revision: 3, project: 5, graph: pyGraph([pyNode('a', 0, 0)]) }, live, palette);
    expect(other.history).toEqual({ past: [], future: [] }); // a template: Undo asks Python for the project
    expect(replacedHistory({}, 1)).toEqual({ past: [], future: [] });
  });

  it('Undo steps through the canvas history, then asks Python for the replaced project', () => {
    expect(undoKind({ past: ['s'], future: [] }, true)).toBe('step');
    expect(undoKind({ past: [], future: [] }, true)).toBe('replace');
    expect(undoKind({ past: [], future: ['f'] }, false)).toBeNull();
  });

  it('lays out a graph without positions', () => {
    const s = initialState({ revision: 1, graph: pyGraph([pyNode('a'), pyNode('b')], [{ source: 'a', target: 'b' }]) }, {}, palette);
    expect(s.layout).toBe(true);
    const [a, b] = s.nodes;
    expect(b.position.x).toBeGreaterThan(a.position.x);
    expect(s.edges[0]).toMatchObject({ sourceHandle: 'out', targetHandle: 'in' });
  });

  it('a replacement sharing ids keeps unchanged node objects and the selection', () => {
    const prev = [{ ...makeNode('a', 'Linear', null, {}, { x: 0, y: 0 }), selected: true }, makeNode('b', 'Linear', null, {}, { x: 300, y: 0 })];
    const m = mergeFromPython(prev, [], pyGraph([pyNode('a', 0, 0), pyNode('b', 300, 0, { out_features: 8 })]), palette, null);
    expect(m.sameProject).toBe(true);
    expect(m.nodes[0]).toBe(prev[0]);
    expect(m.nodes[1]).not.toBe(prev[1]);
    expect(m.nodes[1].data.params).toEqual({ out_features: 8 });
    expect(m.primary).toBe('a');
  });

  it('nodes Python gave no position keep their browser position', () => {
    const prev = [makeNode('a', 'Linear', null, {}, { x: 42, y: 7 })];
    const m = mergeFromPython(prev, [], pyGraph([pyNode('a')]), palette, 'a');
    expect(m.nodes[0].position).toEqual({ x: 42, y: 7 });
    expect(m.nodes[0].selected).toBe(true);
  });

  it('a template sharing a few ids with the old graph is a new project', () => {
    const prev = ['input', 'fc1', 'act1', 'fc2', 'head'].map((id, i) => makeNode(id, 'Linear', null, {}, { x: i * 300, y: 0 }));
    const next = ['image', 'conv1', 'relu1', 'pool1', 'flatten', 'head'].map((id, i) => pyNode(id, i * 300, 0));
    expect(mergeFromPython(prev, [], pyGraph(next), palette, null).sameProject).toBe(false);
    const edited = ['input', 'fc1', 'act1', 'fc2', 'head', 'extra'].map((id, i) => pyNode(id, i * 300, 0));
    expect(mergeFromPython(prev, [], pyGraph(edited), palette, null).sameProject).toBe(true);
  });

  it('a different project is not the same project (the view is refitted)', () => {
    const m = mergeFromPython([makeNode('a', 'Linear', null, {}, { x: 0, y: 0 })], [], pyGraph([pyNode('q', 5, 5)]), palette, null);
    expect(m.sameProject).toBe(false);
  });

  it('a project Python says is another is never the same project, whatever ids it shares', () => {
    // Sentiment LSTM -> Text encoder: tokens, embed and head shared, 3 of 6 ids (the view was kept, not fitted)
    const prev = ['tokens', 'embed', 'lstm', 'head'].map((id, i) => makeNode(id, 'Linear', null, {}, { x: i * 300, y: 0 }));
    const next = ['tokens', 'embed', 'pos', 'encoder', 'pool', 'head'].map((id, i) => pyNode(id, i * 300, 0));
    expect(mergeFromPython(prev, [], pyGraph(next), palette, null).sameProject).toBe(true);
    expect(mergeFromPython(prev, [], pyGraph(next), palette, null, true).sameProject).toBe(false);
  });

  it('payload is Python format with the revision', () => {
    const p = payloadOf([makeNode('a', 'Linear', 'x', { k: 1 }, { x: 1.234, y: 5.678 })], [], 'a', 4);
    expect(p).toEqual({ graph: { nodes: [{ id: 'a', type: 'Linear', label: 'x', params: { k: 1 }, position: { x: 1.2, y: 5.7 } }], edges: [] }, selected: 'a', revision: 4 });
  });
});

describe('selection echoes', () => {
  it('a late echo of an older browser selection is not a command', () => {
    // the browser sent: null (Esc), then "a" (Ctrl+A), then "b" (click)
    let sent = [null, 'a', 'b'];
    let r = takeEcho(sent, null);
    expect(r).toEqual({ echo: true, sent: ['a', 'b'] });
    r = takeEcho(r.sent, 'a');
    expect(r).toEqual({ echo: true, sent: ['b'] });
    r = takeEcho(r.sent, 'b');
    expect(r).toEqual({ echo: true, sent: [] });
    sent = r.sent;
    // then Python's inspector picks "a": not sent by the browser, so it is applied
    expect(takeEcho(sent, 'a')).toEqual({ echo: false, sent: [] });
    expect(takeEcho(['x'], undefined)).toEqual({ echo: false, sent: ['x'] });
  });
});

describe('decodeData', () => {
  it('parses the JSON text Python sends and keeps other keys', () => {
    const d = decodeData({ graph: '{"nodes":[],"edges":[]}', palette: '[{"type":"Linear"}]', annotations: '{}', revision: 3 });
    expect(d).toEqual({ graph: { nodes: [], edges: [] }, palette: [{ type: 'Linear' }], annotations: {}, revision: 3 });
  });

  it('reuses the decoded object while the text is unchanged', () => {
    const cache = new Map();
    const a = decodeData({ annotations: '{"nodes":{}}' }, cache);
    const b = decodeData({ annotations: '{"nodes":{}}' }, cache);
    const c = decodeData({ annotations: '{"nodes":{"x":{}}}' }, cache);
    expect(b.annotations).toBe(a.annotations);
    expect(c.annotations).not.toBe(a.annotations);
  });

  it('passes objects through and turns broken text into null', () => {
    const g = { nodes: [], edges: [] };
    expect(decodeData({ graph: g }).graph).toBe(g);
    expect(decodeData({ graph: '{oops' }).graph).toBeNull();
    expect(decodeData(null)).toEqual({});
  });
});

describe('delivery', () => {
  it('a payload Python has not acknowledged is sent again once the page is idle, a few times at most', () => {
    const p = { payload: { seq: 4 }, since: 1000, tries: 0 };
    expect(resendDue(p, 3, true, 1000 + RESEND_AFTER_MS)).toBe(true);
    expect(resendDue(p, 3, true, 1000 + RESEND_AFTER_MS - 1)).toBe(false); // not yet
    expect(resendDue(p, 4, true, 99999)).toBe(false); // acknowledged
    expect(resendDue(p, 5, true, 99999)).toBe(false); // a later one acknowledged
    expect(resendDue(p, 3, false, 99999)).toBe(false); // a run is going on: it may be reading it
    expect(resendDue(p, 3, null, 1000 + RESEND_AFTER_MS)).toBe(false); // run state unknown: wait longer
    expect(resendDue(p, 3, null, 1000 + RESEND_UNKNOWN_MS)).toBe(true);
    expect(resendDue({ ...p, tries: MAX_RESENDS }, 3, true, 99999)).toBe(false);
    expect(resendDue(p, null, true, 99999)).toBe(false); // a Python that does not acknowledge
    expect(resendDue(null, 3, true, 99999)).toBe(false);
  });

  it('reads the page run state from Streamlit app element', () => {
    const doc = (state) => ({ querySelector: () => (state === undefined ? null : { getAttribute: () => state }) });
    expect(scriptIdle(doc('notRunning'))).toBe(true);
    expect(scriptIdle(doc('running'))).toBe(false);
    expect(scriptIdle(doc('rerunRequested'))).toBe(false);
    expect(scriptIdle(doc(undefined))).toBe(null);
    expect(scriptIdle(undefined)).toBe(null);
  });
});

describe('one-shot actions (queueEvent, unackedEvents)', () => {
  it('numbers each action and keeps it until a payload carrying it is acknowledged', () => {
    let q = queueEvent(undefined, { type: 'group', name: 'a' }, undefined);
    expect(q).toEqual({ events: [{ type: 'group', name: 'a', id: 1 }], id: 1 });
    const first = { seq: 4, events: q.events };
    q = queueEvent(q.events, { type: 'library', name: 'm' }, q.id);
    expect(q.events.map((e) => e.id)).toEqual([1, 2]);
    expect(unackedEvents(q.events, first)).toEqual([{ type: 'library', name: 'm', id: 2 }]); // 1 was taken
    expect(unackedEvents(q.events, { seq: 5 })).toEqual(q.events); // a payload without actions takes none
    expect(unackedEvents(q.events, { seq: 6, events: q.events })).toEqual([]);
    expect(unackedEvents(undefined, first)).toEqual([]);
  });
});
