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
