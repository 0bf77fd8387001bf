import dagre from '@dagrejs/dagre';

const DEFAULT_W = 200;
const DEFAULT_H = 110;
// Above this many nodes dagre is too slow (4 s for 500 nodes on a busy 2-core machine) and its recursion
// overflows the stack on long chains (2,000 layers): the linear-time columnLayout places them instead.
export const DAGRE_MAX = 150;

const sizeOf = (n) => ({ w: n.measured?.width || n.width || DEFAULT_W, h: n.measured?.height || n.height || DEFAULT_H });

// Layered left-to-right layout. Returns a Map id -> {x, y} (top-left corner).
export function layeredLayout(nodes, edges) {
  if (nodes.length > DAGRE_MAX) return columnLayout(nodes, edges);
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 36, ranksep: 120, edgesep: 16, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) {
    const { w, h } = sizeOf(n);
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

// Layered left-to-right layout in time linear in the graph, without recursion (any size): a column per
// longest-path rank from the inputs (file order for nodes on a cycle); in a column each node sits at the
// mean height of its inputs, pushed down only as far as needed to keep `nodesep` between nodes, so chains
// stay straight and branches sit side by side. Returns a Map id -> {x, y} (top-left corner).
export function columnLayout(nodes, edges, { nodesep = 36, ranksep = 120 } = {}) {
  const index = new Map();
  nodes.forEach((n, i) => index.set(n.id, i));
  const preds = nodes.map(() => []);
  const succs = nodes.map(() => []);
  for (const e of edges) {
    const s = index.get(e.source);
    const t = index.get(e.target);
    if (s === undefined || t === undefined || s === t) continue;
    preds[t].push(s);
    succs[s].push(t);
  }
  // Kahn's order; what a cycle leaves unvisited follows in file order.
  const indeg = preds.map((p) => p.length);
  const order = [];
  const seen = new Uint8Array(nodes.length);
  const queue = [];
  for (let i = 0; i < nodes.length; i += 1) if (!indeg[i]) queue.push(i);
  for (let q = 0; q < queue.length; q += 1) {
    const v = queue[q];
    seen[v] = 1;
    order.push(v);
    for (const w of succs[v]) if (--indeg[w] === 0) queue.push(w);
  }
  for (let i = 0; i < nodes.length; i += 1) if (!seen[i]) order.push(i);
  const rank = new Int32Array(nodes.length).fill(-1);
  for (const v of order) {
    let r = 0;
    for (const p of preds[v]) if (rank[p] >= 0) r = Math.max(r, rank[p] + 1);
    rank[v] = r;
  }
  const columns = [];
  for (const v of order) (columns[rank[v]] ||= []).push(v);
  const size = nodes.map(sizeOf);
  const cy = new Float64Array(nodes.length); // centre heights
  const out = new Map();
  let x = 0;
  for (const col of columns) {
    if (!col) continue;
    const want = col.map((v, k) => {
      const ps = preds[v].filter((p) => rank[p] >= 0 && rank[p] < rank[v]);
      return ps.length ? ps.reduce((a, p) => a + cy[p], 0) / ps.length : k * (DEFAULT_H + nodesep);
    });
    const byWant = col.map((v, k) => k).sort((a, b) => want[a] - want[b] || a - b);
    let bottom = -Infinity;
    let shift = 0;
    for (const k of byWant) {
      const v = col[k];
      const top = Math.max(want[k] - size[v].h / 2, bottom + nodesep);
      cy[v] = top + size[v].h / 2;
      bottom = top + size[v].h;
      shift += cy[v] - want[k];
    }
    shift /= col.length; // spread the push-downs evenly above and below
    let width = 0;
    for (const v of col) {
      cy[v] -= shift;
      width = Math.max(width, size[v].w);
    }
    for (const v of col) out.set(nodes[v].id, { x: Math.round(x + (width - size[v].w) / 2), y: Math.round(cy[v] - size[v].h / 2) });
    x += width + ranksep;
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
  const count = view.shown.length + view.blocks.length;
  if (count <= BLOCK_DAGRE_MAX) {
    try {
      return dagreBlockLayout(view, nodeById, edgeById, tree);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err; // dagre's recursion overflowed: place it flat below
    }
  }
  return flatBlockLayout(view, nodeById, edgeById, tree);
}

// Above this many things shown dagre's compound layout is too slow; flatBlockLayout places them.
export const BLOCK_DAGRE_MAX = 300;

function dagreBlockLayout(view, nodeById, edgeById, tree) {
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

// The same without clusters, for views too big for dagre: columnLayout of the layers and blocks shown, each
// frame the box around what it holds (frames may then overlap things outside them).
function flatBlockLayout(view, nodeById, edgeById, tree) {
  const items = [
    ...view.shown.map((id) => ({ id, ...sizeOf(nodeById.get(id) || {}) })),
    ...view.blocks.map((b) => ({ id: b.id, w: BLOCK_W, h: BLOCK_H })),
  ];
  const links = [...view.keptEdges.map((id) => edgeById.get(id)).filter(Boolean), ...view.aggEdges];
  const pos = columnLayout(items.map((it) => ({ id: it.id, width: it.w, height: it.h })), links, { nodesep: 30, ranksep: 90 });
  const open = new Set(view.frames.map((f) => f.block));
  const boxes = new Map();
  for (const it of items) {
    const p = pos.get(it.id);
    let b = tree.blocks.has(it.id) ? tree.blocks.get(it.id).parent : tree.ownerOf.get(it.id);
    for (; b; b = tree.blocks.get(b)?.parent ?? null) {
      if (!open.has(b)) continue;
      const r = boxes.get(b) || { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
      r.x0 = Math.min(r.x0, p.x);
      r.y0 = Math.min(r.y0, p.y);
      r.x1 = Math.max(r.x1, p.x + it.w);
      r.y1 = Math.max(r.y1, p.y + it.h);
      boxes.set(b, r);
    }
  }
  const frames = new Map();
  for (const f of view.frames) {
    const r = boxes.get(f.block);
    if (!r) continue;
    const pad = 12 + 8 * Math.max(0, 3 - f.depth); // outer frames a little wider than the ones inside
    frames.set(f.block, { x: r.x0 - pad, y: r.y0 - pad - 36, width: r.x1 - r.x0 + 2 * pad, height: r.y1 - r.y0 + 2 * pad + 36 });
  }
  return { pos, frames };
}
