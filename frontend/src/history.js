// Undo/redo history as pure functions over { past, future } (arrays of snapshots).
// A snapshot is { nodes, edges } with positions copied and selection dropped.

export const HISTORY_LIMIT = 100;

export function emptyHistory() {
  return { past: [], future: [] };
}

export function snapshotOf(nodes, edges) {
  return {
    nodes: nodes.map((n) => ({ id: n.id, type: n.type, position: { ...n.position }, data: n.data })),
    edges: edges.map((e) => ({ ...e, selected: false })),
  };
}

// Record `snap` as the state before a change; clears the redo stack.
export function record(history, snap, limit = HISTORY_LIMIT) {
  const past = [...history.past, snap];
  while (past.length > limit) past.shift();
  return { past, future: [] };
}

// Step back: returns { history, snapshot } (snapshot = state to show) or null when there is nothing to undo.
export function undo(history, current) {
  if (!history.past.length) return null;
  const past = history.past.slice(0, -1);
  return { history: { past, future: [...history.future, current] }, snapshot: history.past[history.past.length - 1] };
}

export function redo(history, current, limit = HISTORY_LIMIT) {
  if (!history.future.length) return null;
  const past = [...history.past, current];
  while (past.length > limit) past.shift();
  return { history: { past, future: history.future.slice(0, -1) }, snapshot: history.future[history.future.length - 1] };
}

// Nodes of a restored snapshot, unselected.
export function restoredNodes(snap) {
  return snap.nodes.map((n) => ({ ...n, selected: false }));
}

export function sameGeometry(a, b) {
  if (a.length !== b.length) return false;
  const pos = new Map(a.map((n) => [n.id, n.position]));
  return b.every((n) => {
    const p = pos.get(n.id);
    return p && p.x === n.position.x && p.y === n.position.y;
  });
}
