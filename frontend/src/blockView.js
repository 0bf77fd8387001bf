// The collapsed view of a big graph as React Flow elements: layers repositioned by the view's layout,
// one node per collapsed block, one frame per expanded block, aggregated edges. Pure (no React).
import { blockTree, chunkTree, collapsedView, COLLAPSE_ABOVE, initialExpanded } from './blocks.js';
import { blockLayout } from './layout.js';

// Lay out `nodes`/`edges` with the blocks of `tree` collapsed except `expanded`.
// Returns {tree, expanded, nodes (shown layers moved), extraNodes, extraEdges, shown: Set of layer ids}.
export function arrangeBlocks(nodes, edges, tree, expanded) {
  const view = collapsedView(nodes, edges, tree, expanded);
  const nodeById = new Map(nodes.map((n) => [n.id, n]));
  const edgeById = new Map(edges.map((e) => [e.id, e]));
  const { pos, frames } = blockLayout(view, nodeById, edgeById, tree);
  const next = nodes.map((n) => {
    const p = pos.get(n.id);
    return p && (p.x !== n.position.x || p.y !== n.position.y) ? { ...n, position: p } : n;
  });
  const frameNodes = view.frames
    .filter((f) => frames.has(f.block))
    .map((f) => {
      const r = frames.get(f.block);
      return {
        id: f.id, type: 'frame', position: { x: r.x, y: r.y },
        data: { block: f.block, name: f.name, width: r.width, height: r.height, depth: f.depth },
        draggable: false, selectable: false, focusable: false, connectable: false, zIndex: -100 + f.depth,
      };
    });
  const blockNodes = view.blocks.map((b) => ({
    id: b.id, type: 'block', position: pos.get(b.id) || { x: 0, y: 0 },
    data: { name: b.name, count: b.count, inputs: b.inputs, outputs: b.outputs, depth: b.depth },
    draggable: false, selectable: false, connectable: false,
  }));
  const extraEdges = view.aggEdges.map((a) => ({
    id: a.id, source: a.source, target: a.target, sourceHandle: a.sourceHandle, targetHandle: a.targetHandle,
    type: 'agg', data: { count: a.count }, selectable: false, focusable: false,
  }));
  return { tree, expanded, nodes: next, extraNodes: [...frameNodes, ...blockNodes], extraEdges, shown: new Set(view.shown) };
}

// The view a graph opens with: null for a graph small enough to show in full, else its blocks (from the
// module hierarchy in its names, or runs of 50 layers) arranged with initialExpanded open.
export function startBlocks(nodes, edges, force = false) {
  if (!nodes.length || (!force && nodes.length <= COLLAPSE_ABOVE)) return null;
  let tree = blockTree(nodes);
  if (!tree.roots.length) {
    if (nodes.length <= 50) return null;
    tree = chunkTree(nodes);
  }
  return arrangeBlocks(nodes, edges, tree, initialExpanded(tree));
}
