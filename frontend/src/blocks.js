// Blocks of a big graph from the source's module hierarchy, as pure functions (no React): the block tree
// read from node names ("layer1.0.conv1" or the importers' "layer1_0_conv1"), the collapsed view (what is
// shown, edges between collapsed blocks aggregated) and search.

export const COLLAPSE_ABOVE = 150; // graphs with more layers open with their blocks collapsed
export const BLOCK_PREFIX = 'blk:';
export const FRAME_PREFIX = 'frm:';

// The scope tokens of a node: its dotted label when it has one, else its id, split on "." and "_".
export function scopeTokens(node) {
  const label = node?.data?.label;
  const text = typeof label === 'string' && label.includes('.') ? label : String(node?.id ?? '');
  return text.split(/[._]+/).filter(Boolean);
}

const isNum = (t) => /^[0-9]+$/.test(t);

// The block tree: a prefix of scope tokens is a block when at least two layers share it and it is a module
// (some member goes two tokens deeper, or a member's next token is a name, not a counter, or the names are
// dotted labels, where "enc.0" is a module: "relu_3" and
// "add_7" make no block, "layer1_0_conv1" makes "layer1" and "layer1_0"). A block holding exactly the
// same layers as its only child block is dropped (a wrapper module adds nothing).
// Returns {blocks: Map id -> {id, name, parent, depth, members: [node ids, all depths], children: [block ids]},
//          ownerOf: Map node id -> innermost block id or null, roots: [block ids]}.
export function blockTree(nodes) {
  const toks = new Map();
  const stats = new Map(); // prefix key -> {count, deep, named}
  for (const n of nodes) {
    const t = scopeTokens(n);
    const dotted = typeof n?.data?.label === 'string' && n.data.label.includes('.'); // "enc.0": a module, not a counter
    toks.set(n.id, t);
    for (let k = 1; k < t.length; k += 1) {
      const key = t.slice(0, k).join('.');
      let s = stats.get(key);
      if (!s) stats.set(key, (s = { count: 0, deep: false, named: false }));
      s.count += 1;
      if (t.length - k >= 2) s.deep = true;
      else if (dotted || !isNum(t[k])) s.named = true;
    }
  }
  const isBlock = (key) => {
    const s = stats.get(key);
    return !!s && s.count >= 2 && (s.deep || s.named);
  };
  const blocks = new Map();
  const ownerOf = new Map();
  for (const n of nodes) {
    const t = toks.get(n.id);
    let parent = null;
    for (let k = 1; k < t.length; k += 1) {
      const key = t.slice(0, k).join('.');
      if (!isBlock(key)) continue;
      const id = BLOCK_PREFIX + key;
      let b = blocks.get(id);
      if (!b) {
        b = { id, name: key, parent, depth: 0, members: [], children: [] };
        blocks.set(id, b);
        if (parent) blocks.get(parent).children.push(id);
      }
      b.members.push(n.id);
      parent = id;
    }
    ownerOf.set(n.id, parent);
  }
  // Drop wrappers: a block whose members are exactly those of its one child block.
  for (const b of [...blocks.values()]) {
    if (b.children.length === 1 && blocks.get(b.children[0]).members.length === b.members.length) {
      const child = blocks.get(b.children[0]);
      child.parent = b.parent;
      if (b.parent) {
        const p = blocks.get(b.parent);
        p.children = p.children.map((c) => (c === b.id ? child.id : c));
      }
      blocks.delete(b.id);
    }
  }
  const roots = [];
  for (const b of blocks.values()) {
    let d = 0;
    for (let p = b.parent; p; p = blocks.get(p).parent) d += 1;
    b.depth = d;
    if (!b.parent) roots.push(b.id);
  }
  return { blocks, ownerOf, roots };
}

// Block ids from the outermost to the innermost block holding node `id`.
export function ancestors(tree, id) {
  const out = [];
  for (let b = tree.ownerOf.get(id) ?? null; b; b = tree.blocks.get(b)?.parent ?? null) out.push(b);
  return out.reverse();
}

// What node `id` is shown as: itself, or its outermost collapsed block.
export function shownAs(tree, expanded, id) {
  for (const b of ancestors(tree, id)) if (!expanded.has(b)) return b;
  return id;
}

// The view with `expanded` blocks open: the layers shown, the collapsed blocks shown (with their layer
// counts and the layers their edges enter and leave), the expanded blocks (frames) and the edges, an edge
// between two things shown once with the number of edges it stands for.
export function collapsedView(nodes, edges, tree, expanded) {
  const rep = new Map();
  const shown = [];
  const hidden = new Set();
  for (const n of nodes) {
    const r = shownAs(tree, expanded, n.id);
    rep.set(n.id, r);
    if (r === n.id) shown.push(n.id);
    else hidden.add(n.id);
  }
  const collapsed = new Map(); // block id -> {id, name, depth, count, inputs: [node ids feeding it], outputs: [member ids leaving]}
  const frames = [];
  for (const b of tree.blocks.values()) {
    if (!openChain(tree, expanded, b.parent)) continue; // inside a collapsed block
    if (expanded.has(b.id)) frames.push({ id: FRAME_PREFIX + b.id.slice(BLOCK_PREFIX.length), block: b.id, name: b.name, depth: b.depth });
    else collapsed.set(b.id, { id: b.id, name: b.name, depth: b.depth, count: b.members.length, inputs: [], outputs: [] });
  }
  const agg = new Map();
  const keptEdges = [];
  for (const e of edges) {
    const s = rep.get(e.source);
    const t = rep.get(e.target);
    if (s === undefined || t === undefined || s === t) continue;
    if (s === e.source && t === e.target) {
      keptEdges.push(e.id);
      continue;
    }
    if (collapsed.has(t) && !collapsed.get(t).inputs.includes(e.source)) collapsed.get(t).inputs.push(e.source);
    if (collapsed.has(s) && !collapsed.get(s).outputs.includes(e.source)) collapsed.get(s).outputs.push(e.source);
    const sh = collapsed.has(s) ? 'out' : e.sourceHandle;
    const th = collapsed.has(t) ? 'in' : e.targetHandle;
    const id = `agg:${s}:${sh ?? ''}->${t}:${th ?? ''}`;
    const a = agg.get(id);
    if (a) a.count += 1;
    else agg.set(id, { id, source: s, target: t, sourceHandle: sh, targetHandle: th, count: 1 });
  }
  return { shown, hidden, blocks: [...collapsed.values()], frames, keptEdges, aggEdges: [...agg.values()] };
}

// Are block `id` and every block around it expanded (true for no block)?
function openChain(tree, expanded, id) {
  for (let b = id; b; b = tree.blocks.get(b)?.parent ?? null) if (!expanded.has(b)) return false;
  return true;
}

// Layers whose id, label or type contain `query` (case-insensitive): exact id or label first, then names
// that start with it, then the rest; at most `limit`.
export function searchNodes(nodes, query, limit = 50) {
  const q = String(query || '').trim().toLowerCase();
  if (!q) return [];
  const scored = [];
  for (const n of nodes) {
    const id = String(n.id).toLowerCase();
    const label = String(n.data?.label ?? '').toLowerCase();
    const type = String(n.data?.ltype ?? '').toLowerCase();
    let score = -1;
    if (id === q || label === q) score = 0;
    else if (id.startsWith(q) || label.startsWith(q)) score = 1;
    else if (id.includes(q) || label.includes(q)) score = 2;
    else if (type.includes(q)) score = 3;
    if (score >= 0) scored.push([score, scored.length, n.id]);
  }
  scored.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return scored.slice(0, limit).map((s) => s[2]);
}

// `expanded` plus every block holding node `id` (so that search can show it).
export function expandTo(tree, expanded, id) {
  const need = ancestors(tree, id).filter((b) => !expanded.has(b));
  if (!need.length) return expanded;
  return new Set([...expanded, ...need]);
}

// A tree for a big graph whose names carry no hierarchy: consecutive runs of `size` layers (file order,
// which importers write in execution order), named "layers 1–50", ...
export function chunkTree(nodes, size = 50) {
  const blocks = new Map();
  const ownerOf = new Map();
  const roots = [];
  for (let i = 0; i < nodes.length; i += size) {
    const part = nodes.slice(i, i + size);
    const id = `${BLOCK_PREFIX}#${i / size}`;
    blocks.set(id, { id, name: `layers ${i + 1}–${i + part.length}`, parent: null, depth: 0, members: part.map((n) => n.id), children: [] });
    roots.push(id);
    for (const n of part) ownerOf.set(n.id, id);
  }
  return { blocks, ownerOf, roots };
}

// The blocks to open first: the biggest collapsed block is expanded while fewer than `few` things would be
// shown and opening it keeps the view at most `many` things (a graph wrapped in one or two modules opens
// one level down).
export function initialExpanded(tree, few = 6, many = 40) {
  const expanded = new Set();
  let shown = tree.roots.length + [...tree.ownerOf.values()].filter((b) => b === null).length;
  const open = [...tree.roots];
  while (shown < few && open.length) {
    open.sort((a, b) => tree.blocks.get(b).members.length - tree.blocks.get(a).members.length);
    const b = tree.blocks.get(open.shift());
    const direct = b.members.filter((id) => tree.ownerOf.get(id) === b.id).length;
    const next = shown - 1 + b.children.length + direct;
    if (next > many) break;
    expanded.add(b.id);
    shown = next;
    open.push(...b.children);
  }
  return expanded;
}
