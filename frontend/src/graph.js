// Pure helpers: palette lookup, port kinds, fresh ids, Python <-> React Flow
// conversion and connection rules. No React in here.

export const CATEGORY_ORDER = [
  'Inputs', 'Dense', 'Convolution', 'Pooling', 'Normalisation', 'Recurrent',
  'Attention', 'Activation', 'Merge', 'Reshape', 'Blocks', 'Pretrained',
];

export const CATEGORY_COLORS = {
  Inputs: '#0284c7',
  Dense: '#4f46e5',
  Convolution: '#7c3aed',
  Pooling: '#c026d3',
  Normalisation: '#0d9488',
  Recurrent: '#ea580c',
  Attention: '#db2777',
  Activation: '#16a34a',
  Merge: '#ca8a04',
  Reshape: '#64748b',
  Blocks: '#0f172a',
  Pretrained: '#b45309',
};

export function colorFor(category) {
  return CATEGORY_COLORS[category] || '#64748b';
}

const DEFAULT_IN = [{ name: 'in', kind: 'tensor' }];
const DEFAULT_OUT = [{ name: 'out', kind: 'tensor' }];

export function indexPalette(palette) {
  const map = new Map();
  for (const entry of palette || []) {
    if (entry && typeof entry.type === 'string') map.set(entry.type, entry);
  }
  return map;
}

export function portsOf(entry) {
  if (!entry) return { inputs: DEFAULT_IN, outputs: DEFAULT_OUT };
  return {
    inputs: Array.isArray(entry.inputs) ? entry.inputs : DEFAULT_IN,
    outputs: Array.isArray(entry.outputs) ? entry.outputs : DEFAULT_OUT,
  };
}

// Does `node` offer its `padding_mask` output? Only an Input that yields a sequence does: token ids (Python's
// annotation out_kind "tokens") or (B, T, F) features (its annotated shape has three dimensions); before Python
// has answered, the node's own modality says it. Other layers keep every port of their palette entry.
export function offersPaddingMask(node, ann) {
  if (node?.data?.ltype !== 'Input') return true;
  if (ann?.out_kind === 'tokens') return true;
  const shape = typeof ann?.shape === 'string' && ann.shape.startsWith('(') ? ann.shape : null;
  if (shape) return shape.split(',').length === 3;
  const modality = node?.data?.params?.modality;
  return modality === 'tokens' || modality === 'sequence';
}

// The output ports `node` shows: its palette entry's, less a padding mask it does not offer, and for an entry
// whose count of outputs is a parameter (an Op's `outputs`: Python's LayerSpec.output_count) that many, plus any
// further port an edge still leaves from (`used`), so no drawn edge loses its end while Python says why.
export function nodeOutputs(node, entry, ann, used = []) {
  let { outputs } = portsOf(entry);
  const key = entry?.output_count;
  const given = node?.data?.params?.[key];
  const fallback = Array.isArray(entry?.params) ? entry.params.find((p) => p?.name === key)?.default : undefined;
  const n = key ? Number(given ?? fallback) : NaN; // a parameter left at its default is not in the node's params
  if (Number.isInteger(n) && n >= 1) outputs = outputs.filter((p, i) => i < n || used.includes(p.name));
  return offersPaddingMask(node, ann) ? outputs : outputs.filter((p) => p.name !== PADDING_MASK);
}

// Kind of the tensors leaving `node` through output port `portName`.
export function outKind(node, entry, ann, portName) {
  if (portName === PADDING_MASK && node?.data?.ltype === 'Input') return MASK; // (B, T) booleans, True = padding
  if (ann && (ann.out_kind === 'tensor' || ann.out_kind === 'tokens')) return ann.out_kind;
  const params = node?.data?.params || {};
  if (node?.data?.ltype === 'Input') return params.modality === 'tokens' ? 'tokens' : 'tensor';
  const { outputs } = portsOf(entry);
  const port = outputs.find((p) => p.name === portName) || outputs[0];
  return port?.kind || 'tensor';
}

export function inKind(entry, portName) {
  const { inputs } = portsOf(entry);
  const port = inputs.find((p) => p.name === portName) || inputs[0];
  return port?.kind || 'tensor';
}

function clone(value) {
  if (value === undefined) return null;
  return JSON.parse(JSON.stringify(value));
}

export function defaultParams(entry) {
  const params = {};
  for (const spec of entry?.params || []) {
    if (spec && typeof spec.name === 'string') params[spec.name] = clone(spec.default);
  }
  return params;
}

export function idBase(type) {
  const base = String(type || 'node')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return base || 'node';
}

// Fresh, type-based id ("linear_3"): one above the highest suffix in use, so
// deleted ids are not reused while their history is still around.
export function freshId(type, taken) {
  const base = idBase(type);
  let n = 1;
  const prefix = `${base}_`;
  for (const id of taken) {
    if (id.startsWith(prefix)) {
      const rest = id.slice(prefix.length);
      if (/^\d+$/.test(rest)) n = Math.max(n, Number(rest) + 1);
    }
  }
  while (taken.has(`${base}_${n}`)) n += 1;
  const id = `${base}_${n}`;
  taken.add(id);
  return id;
}

export function freshEdgeId(source, target, taken) {
  let id = `${source}->${target}`;
  let n = 2;
  while (taken.has(id)) {
    id = `${source}->${target}#${n}`;
    n += 1;
  }
  taken.add(id);
  return id;
}

function num(v, fallback = 0) {
  const x = Number(v);
  return Number.isFinite(x) ? x : fallback;
}

export function makeNode(id, type, label, params, position) {
  return {
    id,
    type: 'layer',
    position: { x: num(position?.x), y: num(position?.y) },
    data: { ltype: type, label: label ?? null, params: params || {} },
  };
}

export function makeEdge(id, source, sourceHandle, target, targetHandle) {
  return { id, source, target, sourceHandle, targetHandle, type: 'shape' };
}

// Ports an edge leaves unnamed (null or ""), resolved as Python does
// (_resolve_port in builder/graph/shapes.py): the first output; for a merge its
// one input; else the first input no earlier edge into that node took (query,
// then key, then value of an attention layer), else the first input.
// `resolver()` remembers the ports taken, per target node, in edge order.
export function portResolver(paletteMap) {
  const taken = new Map(); // target id -> Set of its input ports already fed
  const named = (p) => (p === null || p === undefined || p === '' ? null : p);
  return (src, tgt, sourcePort, targetPort) => {
    const outs = portsOf(paletteMap.get(src.data.ltype)).outputs;
    const tEntry = paletteMap.get(tgt.data.ltype);
    const ins = portsOf(tEntry).inputs;
    if (!taken.has(tgt.id)) taken.set(tgt.id, new Set());
    const fed = taken.get(tgt.id);
    let th = named(targetPort);
    if (th === null) th = (tEntry?.variadic ? null : ins.find((p) => !fed.has(p.name))?.name) ?? ins[0]?.name ?? null;
    fed.add(th);
    return { sh: named(sourcePort) ?? outs[0]?.name ?? null, th };
  };
}

// Python graph -> React Flow nodes/edges. Unnamed ports are resolved (portResolver)
// so that every handle id is explicit.
export function fromPy(graph, paletteMap) {
  const nodes = [];
  const byId = new Map();
  const unplaced = new Set();
  let missingPositions = false;
  for (const n of graph?.nodes || []) {
    if (!n || n.id == null || byId.has(String(n.id))) continue;
    const id = String(n.id);
    if (!n.position || !Number.isFinite(Number(n.position.x)) || !Number.isFinite(Number(n.position.y))) {
      missingPositions = true;
      unplaced.add(id);
    }
    const node = makeNode(id, String(n.type), n.label, n.params ? clone(n.params) : {}, n.position);
    nodes.push(node);
    byId.set(id, node);
  }
  const edges = [];
  const seen = new Set();
  const resolve = portResolver(paletteMap);
  for (const e of graph?.edges || []) {
    if (!e || !byId.has(String(e.source)) || !byId.has(String(e.target))) continue;
    const src = byId.get(String(e.source));
    const tgt = byId.get(String(e.target));
    const { sh, th } = resolve(src, tgt, e.source_port, e.target_port);
    let id = e.id != null ? String(e.id) : freshEdgeId(src.id, tgt.id, seen);
    if (seen.has(id) && e.id != null) id = freshEdgeId(src.id, tgt.id, seen);
    seen.add(id);
    edges.push(makeEdge(id, src.id, sh, tgt.id, th));
  }
  return { nodes, edges, missingPositions, unplaced };
}

const round1 = (v) => Math.round(v * 10) / 10;

export function toPy(nodes, edges) {
  return {
    nodes: nodes.map((n) => ({
      id: n.id,
      type: n.data.ltype,
      label: n.data.label ?? null,
      params: n.data.params || {},
      position: { x: round1(n.position.x), y: round1(n.position.y) },
    })),
    edges: edges.map((e) => ({
      id: e.id,
      source: e.source,
      target: e.target,
      source_port: e.sourceHandle ?? null,
      target_port: e.targetHandle ?? null,
    })),
  };
}

function reaches(from, to, edges) {
  // Is `to` reachable from `from` following edge direction?
  const out = new Map();
  for (const e of edges) {
    if (!out.has(e.source)) out.set(e.source, []);
    out.get(e.source).push(e.target);
  }
  const stack = [from];
  const seen = new Set([from]);
  while (stack.length) {
    const cur = stack.pop();
    if (cur === to) return true;
    for (const nxt of out.get(cur) || []) {
      if (!seen.has(nxt)) {
        seen.add(nxt);
        stack.push(nxt);
      }
    }
  }
  return false;
}

// Layer types whose input takes token ids as well as float tensors and passes
// the kind on (Python: Output, Identity and the shape ops keep `t.kind` in
// builder/graph/layers/; every other layer refuses token ids). Python's
// palette declares their port as "tensor"; a palette port of kind "any" says
// the same and needs no entry here. tests/canvas/connection_cases.json checks
// both sides give the same answers (frontend/src/connection.test.js and
// tests/graph/test_connection_rules.py).
export const ANY = 'any';
// A padding mask (an Input's `padding_mask` port; Python: spec.MASK) feeds only mask ports (attention, recurrent, Mean).
export const MASK = 'mask';
export const PADDING_MASK = 'padding_mask';
const KIND_AGNOSTIC = new Set(['Output', 'Identity', 'Flatten', 'Unflatten', 'Reshape', 'Permute']);

// Does input port `portName` of a layer of `entry` take tensors of `kind`?
export function accepts(entry, portName, kind) {
  const pk = inKind(entry, portName);
  if (pk === MASK || kind === MASK) return pk === kind; // a padding mask goes into mask ports only
  return pk === ANY || pk === kind || (!!entry && KIND_AGNOSTIC.has(entry.type));
}

// Variadic layers (Add, Concat) also take inputs numbered "0", "1", ... (ASCII digits, as Python).
const NUMBERED_PORT = /^[0-9]{1,6}$/;

// Why a connection is refused, or null when it is allowed: {code, message}.
// The codes are Python's problem codes for the same edge (builder.validate),
// plus "port_kind" (Python: a shape error on the target about token ids) and
// "incomplete" (no Python counterpart: React Flow gave no node).
export function connectionCheck(conn, nodes, edges, paletteMap, annNodes) {
  const no = (code, message) => ({ code, message });
  const { source, target } = conn;
  if (!source || !target) return no('incomplete', 'Incomplete connection');
  if (source === target) return no('self_loop', 'A layer cannot feed itself');
  const src = nodes.find((n) => n.id === source);
  const tgt = nodes.find((n) => n.id === target);
  if (!src || !tgt) return no('dangling_edge', 'Unknown layer');
  const srcEntry = paletteMap.get(src.data.ltype);
  const tgtEntry = paletteMap.get(tgt.data.ltype);
  const { inputs } = portsOf(tgtEntry);
  const { outputs } = portsOf(srcEntry);
  const sh = conn.sourceHandle ?? null;
  if (srcEntry && sh !== null && !outputs.some((p) => p.name === sh)) return no('bad_port', `${src.data.ltype} has no output "${sh}"`);
  if (!inputs.length) return no('bad_port', `${tgt.data.ltype} takes no inputs`);
  const th = conn.targetHandle ?? inputs[0]?.name ?? null;
  const numbered = !!tgtEntry?.variadic && NUMBERED_PORT.test(String(th));
  if (!numbered && !inputs.some((p) => p.name === th)) return no('bad_port', `${tgt.data.ltype} has no input "${th}"`);
  const sk = outKind(src, srcEntry, annNodes?.[source], conn.sourceHandle);
  if (!accepts(tgtEntry, numbered ? inputs[0].name : th, sk)) {
    const tk = inKind(tgtEntry, th);
    if (sk === 'tokens') return no('port_kind', `Token ids must go through an Embedding first; ${tgt.data.ltype} needs float features`);
    if (tk === 'tokens') return no('port_kind', `${tgt.data.ltype} needs token ids (an Input with modality "tokens")`);
    return no('port_kind', `Port kinds differ: ${sk} → ${tk}`);
  }
  if (edges.some((e) => e.source === source && e.target === target && (e.sourceHandle ?? null) === sh && e.targetHandle === th)) {
    return no('duplicate_edge', 'These ports are already connected');
  }
  if (!tgtEntry?.variadic && edges.some((e) => e.target === target && e.targetHandle === th)) {
    return no('extra_input', `"${th}" of ${tgt.id} already has an input; only merge layers take several`);
  }
  if (reaches(target, source, edges)) return no('cycle', 'That connection would create a cycle');
  return null;
}

// The message of connectionCheck, or null when the connection is allowed.
export function connectionProblem(conn, nodes, edges, paletteMap, annNodes) {
  return connectionCheck(conn, nodes, edges, paletteMap, annNodes)?.message ?? null;
}

const COUNT_UNITS = [['k', 1e3], ['M', 1e6], ['B', 1e9]];

// A count as people read it, as Python writes it (builder.graph.report.human_count; both are tested on
// counts.cases.json): three significant digits, trailing zeros dropped, the next unit when rounding reaches 1000.
export function formatCount(n) {
  if (n == null || n === '' || !Number.isFinite(Number(n))) return null;
  const v = Math.trunc(Number(n));
  const a = Math.abs(v);
  if (a < 1000) return String(v);
  let i = COUNT_UNITS.findLastIndex(([, div]) => a >= div);
  for (;;) {
    const x = a / COUNT_UNITS[i][1];
    const s = x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0);
    if (Number(s) >= 1000 && i < COUNT_UNITS.length - 1) { i += 1; continue; }
    const t = s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
    return `${v < 0 ? '-' : ''}${t}${COUNT_UNITS[i][0]}`;
  }
}
