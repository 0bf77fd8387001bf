// Selection as pure functions over React Flow node/edge arrays. Unchanged
// objects are returned as they are so React Flow re-renders only what changed.

const setSel = (item, on) => (!!item.selected === on ? item : { ...item, selected: on });

export function selectedIds(nodes) {
  return nodes.filter((n) => n.selected).map((n) => n.id);
}

export function selectOnly(nodes, edges, nodeId, edgeId = null) {
  return {
    nodes: nodes.map((n) => setSel(n, n.id === nodeId)),
    edges: edges.map((e) => setSel(e, e.id === edgeId)),
  };
}

export function toggle(nodes, nodeId) {
  return nodes.map((n) => (n.id === nodeId ? setSel(n, !n.selected) : n));
}

export function selectAll(nodes) {
  return nodes.map((n) => setSel(n, true));
}

export function clear(nodes, edges) {
  return { nodes: nodes.map((n) => setSel(n, false)), edges: edges.map((e) => setSel(e, false)) };
}

// The node Python's inspector shows: the only selected one, else the last
// clicked (`primary`) if still selected, else the first selected.
export function primarySelection(nodes, primary) {
  const sel = selectedIds(nodes);
  if (sel.length === 0) return null;
  if (sel.length === 1) return sel[0];
  return sel.includes(primary) ? primary : sel[0];
}

// A click on a node: plain click selects only it; with a modifier (Shift,
// Ctrl, Cmd) it toggles the node and keeps the rest.
export function clickNode(nodes, edges, nodeId, additive) {
  if (additive) return { nodes: toggle(nodes, nodeId), edges };
  return selectOnly(nodes, edges, nodeId);
}

// Is anything (node or edge) selected?
export function hasSelection(nodes, edges) {
  return nodes.some((n) => n.selected) || edges.some((e) => e.selected);
}

// A click decided against the selection as it was when the pointer went down
// (`before`, a Set of node ids): React Flow has already changed the selection by
// the time the click arrives, and it keeps a multi-selection when an already
// selected node is clicked. Plain click = only this node; a modifier click
// toggles this node and keeps the others of `before`. Returns {nodes, edges,
// primary}: primary is the clicked node when it ends up selected, else null.
export function clickFrom(nodes, edges, nodeId, additive, before) {
  let r;
  if (additive) {
    const on = !before.has(nodeId);
    r = { nodes: nodes.map((n) => setSel(n, n.id === nodeId ? on : before.has(n.id))), edges };
  } else {
    r = selectOnly(nodes, edges, nodeId);
  }
  return { ...r, primary: r.nodes.find((n) => n.id === nodeId)?.selected ? nodeId : null };
}

// React Flow's node changes: does any of them change the selection, and which
// node is primary afterwards (the one just selected, else `primary` unchanged)?
export function selectChanges(changes, primary) {
  const sel = changes.filter((c) => c.type === 'select');
  const clicked = sel.find((c) => c.selected);
  return { changed: sel.length > 0, primary: clicked ? clicked.id : primary };
}
