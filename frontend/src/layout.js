import dagre from '@dagrejs/dagre';

const DEFAULT_W = 200;
const DEFAULT_H = 110;

// Layered left-to-right layout. Returns a Map id -> {x, y} (top-left corner).
export function layeredLayout(nodes, edges) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 36, ranksep: 120, edgesep: 16, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) {
    const w = n.measured?.width || n.width || DEFAULT_W;
    const h = n.measured?.height || n.height || DEFAULT_H;
    g.setNode(n.id, { width: w, height: h });
  }
  for (const e of edges) {
    if (g.hasNode(e.source) && g.hasNode(e.target)) g.setEdge(e.source, e.target, {}, e.id);
  }
  dagre.layout(g);
  const out = new Map();
  for (const n of nodes) {
    const p = g.node(n.id);
    if (!p) continue;
    out.set(n.id, { x: Math.round(p.x - p.width / 2), y: Math.round(p.y - p.height / 2) });
  }
  return out;
}

export const BLOCK_W = 220;
export const BLOCK_H = 92;

// Layered left-to-right layout of a collapsed view (blocks.js collapsedView): the layers and collapsed
// blocks shown, each expanded block a cluster around its members (dagre's compound layout keeps them
// together). `nodeById` gives the shown layers' sizes, `tree` their blocks. Returns {pos: Map id -> {x, y}
// (top-left; layers and collapsed blocks), frames: Map block id -> {x, y, width, height}}.
export function blockLayout(view, nodeById, edgeById, tree) {
  const g = new dagre.graphlib.Graph({ multigraph: true, compound: true });
  g.setGraph({ rankdir: 'LR', nodesep: 30, ranksep: 90, edgesep: 12, marginx: 20, marginy: 40 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const f of view.frames) g.setNode(f.block, { paddingTop: 36 });
  for (const f of view.frames) {
    const p = tree.blocks.get(f.block)?.parent;
    if (p && g.hasNode(p)) g.setParent(f.block, p);
  }
  for (const id of view.shown) {
    const n = nodeById.get(id);
    g.setNode(id, { width: n?.measured?.width || DEFAULT_W, height: n?.measured?.height || DEFAULT_H });
    const owner = tree.ownerOf.get(id);
    if (owner && g.hasNode(owner)) g.setParent(id, owner);
  }
  for (const b of view.blocks) {
    g.setNode(b.id, { width: BLOCK_W, height: BLOCK_H });
    const p = tree.blocks.get(b.id)?.parent;
    if (p && g.hasNode(p)) g.setParent(b.id, p);
  }
  for (const id of view.keptEdges) {
    const e = edgeById.get(id);
    if (e && g.hasNode(e.source) && g.hasNode(e.target)) g.setEdge(e.source, e.target, {}, e.id);
  }
  for (const e of view.aggEdges) if (g.hasNode(e.source) && g.hasNode(e.target)) g.setEdge(e.source, e.target, {}, e.id);
  dagre.layout(g);
  const pos = new Map();
  for (const id of [...view.shown, ...view.blocks.map((b) => b.id)]) {
    const p = g.node(id);
    if (p) pos.set(id, { x: Math.round(p.x - p.width / 2), y: Math.round(p.y - p.height / 2) });
  }
  const frames = new Map();
  for (const f of view.frames) {
    const p = g.node(f.block);
    if (p && Number.isFinite(p.x)) frames.set(f.block, { x: Math.round(p.x - p.width / 2), y: Math.round(p.y - p.height / 2) - 30, width: Math.round(p.width), height: Math.round(p.height) + 30 });
  }
  return { pos, frames };
}
