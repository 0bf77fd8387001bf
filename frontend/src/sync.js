// Python sync as pure functions: the first state, the payload sent on a
// committed change, and merging a graph Python replaced (revision bump).
import { fromPy, toPy } from './graph.js';
import { layeredLayout } from './layout.js';
import { emptyHistory, record, snapshotOf } from './history.js';
import { withMarker } from './clipboard.js';
import { primarySelection } from './selection.js';

// What the canvas starts with: the page-level store's live state when it is at
// least as new as Python's revision (a remount), else Python's graph.
export function initialState(data, store, paletteMap) {
  const revision = Number(data.revision) || 0;
  if (store.nodes && store.revision >= revision) {
    return { nodes: store.nodes, edges: store.edges, revision: store.revision, history: store.history || emptyHistory(), layout: false };
  }
  const g = fromPy(data.graph, paletteMap);
  let nodes = g.nodes;
  if (g.missingPositions && nodes.length) {
    const pos = layeredLayout(nodes, g.edges);
    nodes = nodes.map((n) => ({ ...n, position: pos.get(n.id) || n.position }));
  }
  if (data.selected) nodes = nodes.map((n) => (n.id === data.selected ? { ...n, selected: true } : n));
  const project = Number(data.project) || 0;
  return { nodes, edges: g.edges.map(withMarker), revision, history: replacedHistory(store, project), layout: g.missingPositions, project };
}

// The history of a canvas whose graph Python replaced while it was not shown: for the same project (Data ›
// Fix the graph), the graph it last showed is one undo step away, as for a replacement it received while shown
// (usePythonSync). Another project (a template loaded on the Data page) starts a history of its own: the
// canvas's Undo then asks Python to bring back the whole project it replaced (name, data and settings with the
// graph: undoAcross), never the old graph alone inside the new project.
export function replacedHistory(store, project) {
  if (!store.nodes || !store.nodes.length) return emptyHistory();
  if (store.project != null && store.project !== project) return emptyHistory();
  return record(store.history || emptyHistory(), snapshotOf(store.nodes, store.edges || []));
}

// What the canvas's Undo does: a step of its own history while it has one, else (a project Python put on the
// canvas, with one it replaced to bring back: data.can_undo_replace) the one-shot action asking Python for the
// replaced project; null when there is nothing to undo.
export function undoKind(history, canUndoReplace) {
  if (history.past.length) return 'step';
  return canUndoReplace ? 'replace' : null;
}

// The JSON text sent to Python (compared with the last one sent, so an
// unchanged graph is never sent twice).
export function payloadOf(nodes, edges, selected, revision) {
  return { graph: toPy(nodes, edges), selected, revision };
}

// Merge a graph Python replaced (new revision) into the browser's state.
// Nodes Python gave no position keep their browser position (or are laid out
// when new). When old and new share node ids (an inspector edit, Python-side
// undo: at least half of the ids shared) unchanged node objects and the
// selection are kept; `sameProject` says so (the caller then keeps the view
// instead of fitting it). `newProject`: Python put another project on the
// canvas (a template, a file, a link), never the same one whatever ids the two
// share (the Sentiment LSTM and the Text encoder share tokens, embed and head).
export function mergeFromPython(prevNodes, prevEdges, graph, paletteMap, selected, newProject = false) {
  const g = fromPy(graph, paletteMap);
  let nds = g.nodes;
  if (g.missingPositions && nds.length) {
    const known = new Map(prevNodes.map((n) => [n.id, n.position]));
    if ([...g.unplaced].some((id) => !known.has(id))) {
      const pos = layeredLayout(nds, g.edges);
      nds = nds.map((n) => (g.unplaced.has(n.id) || !known.size ? { ...n, position: pos.get(n.id) || n.position } : n));
    } else {
      nds = nds.map((n) => (g.unplaced.has(n.id) ? { ...n, position: { ...known.get(n.id) } } : n));
    }
  }
  const prevById = new Map(prevNodes.map((n) => [n.id, n]));
  // An edit (inspector, Python-side undo) keeps most ids; a template or a file shares few (e.g. "input").
  const shared = nds.filter((n) => prevById.has(n.id)).length;
  const sameProject = !newProject && shared > 0 && shared >= 0.5 * Math.max(prevNodes.length, nds.length);
  const sel = selected ?? null;
  nds = nds.map((n) => {
    const o = prevById.get(n.id);
    const isSel = sel ? n.id === sel : !!(sameProject && o?.selected);
    if (o && o.position.x === n.position.x && o.position.y === n.position.y && JSON.stringify(o.data) === JSON.stringify(n.data)) {
      return !!o.selected === isSel ? o : { ...o, selected: isSel };
    }
    return isSel ? { ...n, selected: true } : n;
  });
  const prevE = new Map(prevEdges.map((e) => [e.id, e]));
  const edges = g.edges.map((e) => {
    const o = prevE.get(e.id);
    return o && o.source === e.source && o.target === e.target && o.sourceHandle === e.sourceHandle && o.targetHandle === e.targetHandle
      ? o
      : withMarker(e);
  });
  return { nodes: nds, edges, sameProject, missingPositions: g.missingPositions, primary: primarySelection(nds, sel) };
}

// Python echoes back every selection the browser sent (it re-renders with what
// it received). An echo is news only when Python chose the node itself (its
// inspector); a late echo of an older browser selection must not undo a newer
// click. `sent` lists the selections sent and not yet echoed, oldest first.
// Returns whether `sel` is an echo and the list left after it.
export function takeEcho(sent, sel) {
  const i = sent.indexOf(sel ?? null);
  return i < 0 ? { echo: false, sent } : { echo: true, sent: sent.slice(i + 1) };
}

// Python sends the graph, palette and annotations as JSON text (Streamlit would otherwise probe every dict or
// list value for a dataframe and import pandas for it on the first visit). Decode them, reusing the last
// decoded value while the text is unchanged so memoised consumers keep their identity.
export const JSON_KEYS = ['graph', 'palette', 'annotations', 'covers'];

export function decodeData(data, cache = new Map()) {
  const d = data && typeof data === 'object' ? { ...data } : {};
  for (const k of JSON_KEYS) {
    const v = d[k];
    if (typeof v !== 'string') continue;
    const hit = cache.get(k);
    if (hit && hit.text === v) {
      d[k] = hit.value;
      continue;
    }
    let value = null;
    try {
      value = JSON.parse(v);
    } catch {
      value = null; // a broken payload renders as empty, never throws inside the page
    }
    cache.set(k, { text: v, value });
    d[k] = value;
  }
  return d;
}

// Delivery: every payload carries a sequence number (`seq`), and Python's next render of the canvas says the
// last one its run read (`data.ack`, builder.canvas). A payload whose rerun Streamlit dropped (a fragment rerun
// queued behind a full-app run that gave the fragment another id is skipped, its edit left unread) is sent
// again once the page has gone idle without acknowledging it, so a rename on the canvas never silently stays
// in the browser alone (the inspector kept the old name beside a canvas showing the new one).
export const RESEND_AFTER_MS = 1500; // idle this long without an acknowledgement: sent again
export const RESEND_UNKNOWN_MS = 6000; // when the page's run state cannot be read
export const MAX_RESENDS = 3;

// One-shot actions (group into a block, a library model dropped) ride, each with an id, in every payload the
// canvas sends until Python acknowledges a payload that carried them: Python takes each id once
// (builder.canvas.take_events), so a rerun Streamlit dropped loses none and a payload sent again repeats none.
export function queueEvent(events, event, lastId) {
  const id = (Number(lastId) || 0) + 1;
  return { events: [...(events || []), { ...event, id }], id };
}

// The queued actions still to deliver once Python acknowledged `payload` (it took those the payload carried).
export function unackedEvents(events, payload) {
  const taken = new Set((payload?.events || []).map((e) => e.id));
  return (events || []).filter((e) => !taken.has(e.id));
}

// Whether Streamlit runs no script now: true, false, or null when the page does not say (its app element's
// `data-test-script-state`, as the browser tests read it).
export function scriptIdle(doc) {
  const state = doc?.querySelector?.('[data-testid=stApp]')?.getAttribute?.('data-test-script-state');
  return state == null ? null : state === 'notRunning';
}

// Whether the pending payload is due to be sent again. `pending`: `{ payload, since, tries }` (null: none);
// `ack`: what Python acknowledged (null: this canvas's Python does not acknowledge, never resend).
export function resendDue(pending, ack, idle, now) {
  if (!pending || ack == null || Number(ack) >= pending.payload.seq || pending.tries >= MAX_RESENDS || idle === false) return false;
  return now - pending.since >= (idle === null ? RESEND_UNKNOWN_MS : RESEND_AFTER_MS);
}
