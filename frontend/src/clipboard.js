// Copy, paste, duplicate, insert and delete as pure functions. Items are in
// Python's graph format ({nodes, edges} as produced by toPy).
import { freshEdgeId, freshId, makeEdge, makeNode, portResolver, toPy } from './graph.js';
import { layeredLayout } from './layout.js';

export const PASTE_OFFSET = 40;
// Deleting more nodes than this at once shows an "Undo" toast.
export const BIG_DELETE = 3;

export const MARKER = { type: 'arrowclosed', width: 14, height: 14, color: '#94a3b8' };
export const withMarker = (e) => ({ ...e, markerEnd: MARKER });

// The given nodes and the edges between them, in Python format.
export function itemsOf(nodes, edges, ids) {
  const set = new Set(ids);
  return toPy(
    nodes.filter((n) => set.has(n.id)),
    edges.filter((e) => set.has(e.source) && set.has(e.target)),
  );
}

export function topLeft(items) {
  return {
    x: Math.min(...items.nodes.map((n) => Number(n.position?.x) || 0)),
    y: Math.min(...items.nodes.map((n) => Number(n.position?.y) || 0)),
  };
}

// Where the `count`-th paste of `items` goes: down-right of the originals, one
// more step per paste, so copies never land on top of each other.
export function pasteOrigin(items, count, step = PASTE_OFFSET) {
  const p = topLeft(items);
  return { x: p.x + step * count, y: p.y + step * count };
}

function positionsOf(items) {
  const hasPos = items.nodes.every((n) => n.position && Number.isFinite(Number(n.position.x)) && Number.isFinite(Number(n.position.y)));
  if (hasPos) return items.nodes.map((n) => ({ x: Number(n.position.x), y: Number(n.position.y) }));
  const tmp = items.nodes.map((n, i) => makeNode(`__${i}`, n.type, null, {}, { x: 0, y: 0 }));
  const idx = new Map(items.nodes.map((n, i) => [String(n.id), `__${i}`]));
  const tmpEdges = (items.edges || [])
    .filter((e) => idx.has(String(e.source)) && idx.has(String(e.target)))
    .map((e, i) => ({ id: `t${i}`, source: idx.get(String(e.source)), target: idx.get(String(e.target)) }));
  const lay = layeredLayout(tmp, tmpEdges);
  return tmp.map((n) => lay.get(n.id) || { x: 0, y: 0 });
}

// The size ({width, height}, flow px) `items` take when inserted: their laid-out positions plus one `node`
// size ({width, height}) for the last row and column.
export function extentOf(items, node) {
  if (!items.nodes.length) return { ...node };
  const ps = positionsOf(items);
  const xs = ps.map((p) => p.x);
  const ys = ps.map((p) => p.y);
  return { width: Math.max(...xs) - Math.min(...xs) + node.width, height: Math.max(...ys) - Math.min(...ys) + node.height };
}

// Insert copies of `items` with fresh ids, their top-left corner at `origin`.
// With `select`, the copies become the selection. Returns {nodes, edges, created}.
export function insertItems(nodes, edges, items, origin, paletteMap, select = true) {
  if (!items.nodes.length) return { nodes, edges, created: [] };
  const takenN = new Set(nodes.map((n) => n.id));
  const takenE = new Set(edges.map((e) => e.id));
  const positions = positionsOf(items);
  const minX = Math.min(...positions.map((p) => p.x));
  const minY = Math.min(...positions.map((p) => p.y));
  const idMap = new Map();
  const newNodes = items.nodes.map((n, i) => {
    const id = freshId(n.type, takenN);
    idMap.set(String(n.id), id);
    const pos = { x: origin.x + positions[i].x - minX, y: origin.y + positions[i].y - minY };
    return { ...makeNode(id, String(n.type), n.label ?? null, JSON.parse(JSON.stringify(n.params || {})), pos), selected: select };
  });
  const byId = new Map(newNodes.map((n) => [n.id, n]));
  const newEdges = [];
  const resolve = portResolver(paletteMap);
  for (const e of items.edges || []) {
    const s = idMap.get(String(e.source));
    const t = idMap.get(String(e.target));
    if (!s || !t) continue;
    const { sh, th } = resolve(byId.get(s), byId.get(t), e.source_port, e.target_port);
    newEdges.push(withMarker(makeEdge(freshEdgeId(s, t, takenE), s, sh, t, th)));
  }
  const base = select ? nodes.map((n) => (n.selected ? { ...n, selected: false } : n)) : nodes;
  const baseEdges = select ? edges.map((e) => (e.selected ? { ...e, selected: false } : e)) : edges;
  return { nodes: [...base, ...newNodes], edges: [...baseEdges, ...newEdges], created: newNodes.map((n) => n.id) };
}

// Remove the selected nodes/edges plus the extra ids, and every edge touching a
// removed node. Returns null when there is nothing to delete.
export function deleteItems(nodes, edges, extraNodeIds = [], extraEdgeIds = []) {
  const dn = new Set([...nodes.filter((n) => n.selected).map((n) => n.id), ...extraNodeIds]);
  const de = new Set([...edges.filter((e) => e.selected).map((e) => e.id), ...extraEdgeIds]);
  if (!dn.size && !de.size) return null;
  const keptNodes = nodes.filter((n) => !dn.has(n.id));
  return {
    nodes: keptNodes,
    edges: edges.filter((e) => !de.has(e.id) && !dn.has(e.source) && !dn.has(e.target)),
    removedNodes: nodes.length - keptNodes.length,
  };
}

// A shared clipboard: Ctrl+C in one canvas, Ctrl+V in another.
export function createClipboard() {
  return { nodes: [], edges: [], pastes: 0 };
}

export function copyTo(clipboard, items) {
  return { nodes: items.nodes, edges: items.edges, pastes: 0 };
}

// The next Ctrl+V: the items to insert and where (one more PASTE_OFFSET step than
// the last paste of the same copy), with the clipboard counting this paste.
// Returns null when the clipboard is empty.
export function nextPaste(clipboard) {
  if (!clipboard.nodes.length) return null;
  const next = { ...clipboard, pastes: clipboard.pastes + 1 };
  return { clipboard: next, items: { nodes: next.nodes, edges: next.edges }, origin: pasteOrigin(next, next.pastes) };
}

// What the toast says after a copy.
export function copiedMessage(count) {
  return `Copied ${count} layer${count > 1 ? 's' : ''}`;
}

// Does a delete (deleteItems' result) remove enough layers to offer Undo in a toast?
export function offersUndo(res) {
  return !!res && res.removedNodes > BIG_DELETE;
}
