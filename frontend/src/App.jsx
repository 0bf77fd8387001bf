import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import {
  ReactFlow,
  ReactFlowProvider,
  MiniMap,
  Controls,
  Background,
  BackgroundVariant,
  useReactFlow,
  useNodesInitialized,
  applyNodeChanges,
  applyEdgeChanges,
} from '@xyflow/react';
import LayerNode from './LayerNode.jsx';
import ShapeEdge from './ShapeEdge.jsx';
import Palette from './Palette.jsx';
import { CanvasContext } from './context.js';
import { createAnnotationStore } from './annotations.js';
import { layeredLayout } from './layout.js';
import {
  colorFor,
  connectionProblem,
  defaultParams,
  formatCount,
  freshEdgeId,
  freshId,
  fromPy,
  indexPalette,
  makeEdge,
  makeNode,
  portsOf,
  toPy,
} from './graph.js';
import { CheckIcon, FitIcon, PanelIcon, GroupIcon, LayoutIcon, RedoIcon, TrashIcon, UndoIcon, WarnIcon } from './icons.jsx';

// Fit with room at the bottom for the minimap (bottom-right), so it never hides a node.
const FIT_PADDING = { top: '24px', left: '24px', right: '24px', bottom: '140px' };

const nodeTypes = { layer: LayerNode };
const edgeTypes = { shape: ShapeEdge };
const HISTORY_LIMIT = 100;
const NODE_W = 190;
const NODE_H = 96;
const MARKER = { type: 'arrowclosed', width: 14, height: 14, color: '#94a3b8' };

// Shared between all canvases on the page: Ctrl+C in one, Ctrl+V in another.
const CLIPBOARD = { nodes: [], edges: [], pastes: 0 };

const withMarker = (e) => ({ ...e, markerEnd: MARKER });

function snapshotOf(nodes, edges) {
  return {
    nodes: nodes.map((n) => ({ id: n.id, type: n.type, position: { ...n.position }, data: n.data })),
    edges: edges.map((e) => ({ ...e, selected: false })),
  };
}

function sameGeometry(a, b) {
  if (a.length !== b.length) return false;
  const pos = new Map(a.map((n) => [n.id, n.position]));
  return b.every((n) => {
    const p = pos.get(n.id);
    return p && p.x === n.position.x && p.y === n.position.y;
  });
}

function isTextInput(event) {
  const t = event.composedPath?.()[0] || event.target;
  if (!t || t.nodeType !== 1) return false;
  return ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.nodeName) || t.isContentEditable;
}

export default function App(props) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
}

function initialState(data, store, paletteMap) {
  const revision = Number(data.revision) || 0;
  if (store.nodes && store.revision >= revision) {
    return { nodes: store.nodes, edges: store.edges, revision: store.revision, history: store.history, layout: false };
  }
  const g = fromPy(data.graph, paletteMap);
  let nodes = g.nodes;
  if (g.missingPositions && nodes.length) {
    const pos = layeredLayout(nodes, g.edges);
    nodes = nodes.map((n) => ({ ...n, position: pos.get(n.id) || n.position }));
  }
  if (data.selected) nodes = nodes.map((n) => (n.id === data.selected ? { ...n, selected: true } : n));
  return {
    nodes,
    edges: g.edges.map(withMarker),
    revision,
    history: { past: [], future: [] },
    layout: g.missingPositions,
  };
}

function Canvas({ data, api, store }) {
  // Python sends a new palette object on every rerun: key it by content so that
  // nodes re-render only when the palette really changes.
  const paletteText = JSON.stringify(Array.isArray(data.palette) ? data.palette : []);
  const palette = useMemo(() => JSON.parse(paletteText), [paletteText]);
  const paletteMap = useMemo(() => indexPalette(palette), [palette]);
  const annotations = useMemo(() => (data.annotations && typeof data.annotations === 'object' ? data.annotations : {}), [data.annotations]);
  const height = Math.max(320, Number(data.height) || 640);

  const init = useRef(null);
  if (init.current === null) init.current = initialState(data, store, paletteMap);

  const [nodes, setNodes] = useState(init.current.nodes);
  const [edges, setEdges] = useState(init.current.edges);
  const [commitSeq, setCommitSeq] = useState(init.current.layout ? 1 : 0);
  const [historyTick, setHistoryTick] = useState(0);
  const [menu, setMenu] = useState(null);
  const [toast, setToast] = useState(null);
  const [renamingId, setRenamingId] = useState(null);
  const [groupForm, setGroupForm] = useState(null);
  const [problemsOpen, setProblemsOpen] = useState(false);
  const [ghost, setGhost] = useState(null);
  const [paletteOpen, setPaletteOpen] = useState(store.paletteOpen ?? true);
  useEffect(() => {
    store.paletteOpen = paletteOpen;
  }, [paletteOpen, store]);

  const rf = useReactFlow();
  const rootRef = useRef(null);
  const flowRef = useRef(null);
  // Latest nodes/edges, updated together with every setNodes/setEdges call
  // (never from render, which could be a stale lane).
  const nodesRef = useRef(nodes);
  const edgesRef = useRef(edges);
  const revRef = useRef(init.current.revision);
  const historyRef = useRef(init.current.history);
  const paletteRef = useRef(paletteMap);
  paletteRef.current = paletteMap;
  const annRef = useRef(annotations);
  annRef.current = annotations;
  const annStore = useMemo(() => {
    const st = createAnnotationStore();
    st.set(annotations);
    return st;
  }, []); // eslint-disable-line react-hooks/exhaustive-deps
  // Before paint: only nodes/edges whose annotation changed re-render.
  useLayoutEffect(() => annStore.set(annotations), [annStore, annotations]);
  const apiRef = useRef(api);
  apiRef.current = api;
  const draggingRef = useRef(false);
  const dragSnapRef = useRef(null);
  const boxRef = useRef(false);
  const lastSentRef = useRef(store.lastSent ?? null);
  const primaryRef = useRef(null);
  const activeRef = useRef(false);
  const pySelRef = useRef(data.selected ?? null);
  const toastTimer = useRef(null);

  // Keep the live state in the page-level store so a remount of the host
  // element (Streamlit re-running the effect) does not lose edits.
  useEffect(() => {
    store.nodes = nodes;
    store.edges = edges;
    store.revision = revRef.current;
    store.history = historyRef.current;
  }, [nodes, edges, store]);

  // Fit the graph; when that would make it unreadably small (long chains),
  // show its input side at a readable zoom instead.
  const initialView = useCallback(() => {
    const nds = nodesRef.current;
    const el = flowRef.current;
    if (!nds.length || !el) return;
    const b = rf.getNodesBounds(nds);
    const w = el.clientWidth;
    const hgt = el.clientHeight;
    const fitZoom = Math.min((w * 0.8) / Math.max(b.width, 1), (hgt * 0.8) / Math.max(b.height, 1));
    if (fitZoom >= 0.25) {
      rf.fitView({ padding: FIT_PADDING, maxZoom: 1.1 });
      return;
    }
    const zoom = 0.55;
    const y = b.height * zoom < hgt ? hgt / 2 - (b.y + b.height / 2) * zoom : 40 - b.y * zoom;
    rf.setViewport({ x: 40 - b.x * zoom, y, zoom });
  }, [rf]);
  const nodesInitialized = useNodesInitialized();
  const viewDone = useRef(false);
  useEffect(() => {
    if (nodesInitialized && !viewDone.current) {
      viewDone.current = true;
      initialView();
    }
  }, [nodesInitialized, initialView]);

  const showToast = useCallback((text, kind = 'info') => {
    clearTimeout(toastTimer.current);
    setToast({ text, kind, at: Date.now() });
    toastTimer.current = setTimeout(() => setToast(null), kind === 'error' ? 3200 : 2200);
  }, []);

  const commit = useCallback(() => setCommitSeq((s) => s + 1), []);

  // ---- sending to Python: once per committed change, never per frame ----
  const primarySelection = (nds) => {
    const sel = nds.filter((n) => n.selected).map((n) => n.id);
    if (sel.length === 0) return null;
    if (sel.length === 1) return sel[0];
    return sel.includes(primaryRef.current) ? primaryRef.current : sel[0];
  };

  useEffect(() => {
    if (commitSeq === 0) return;
    if (draggingRef.current || boxRef.current) return; // flushed on drag/box end
    const selected = primarySelection(nodesRef.current);
    primaryRef.current = selected;
    const payload = { graph: toPy(nodesRef.current, edgesRef.current), selected, revision: revRef.current };
    const text = JSON.stringify(payload);
    if (text === lastSentRef.current) return;
    lastSentRef.current = text;
    store.lastSent = text;
    performance.mark?.('layerlab:canvas:send');
    apiRef.current.setStateValue?.('value', payload);
  }, [commitSeq, store]);

  // Timing marks (visible in the browser's performance timeline): data from
  // Python rendered on screen.
  useEffect(() => {
    performance.mark?.('layerlab:canvas:rendered');
  }, [data]);

  // ---- history ----
  const pushHistory = useCallback((snap) => {
    const h = historyRef.current;
    h.past.push(snap || snapshotOf(nodesRef.current, edgesRef.current));
    if (h.past.length > HISTORY_LIMIT) h.past.shift();
    h.future = [];
    setHistoryTick((t) => t + 1);
  }, []);

  // Apply a committed change: record history, set state, send to Python.
  const mutate = useCallback(
    (fn) => {
      const res = fn(nodesRef.current, edgesRef.current);
      if (!res) return false;
      pushHistory();
      nodesRef.current = res.nodes;
      edgesRef.current = res.edges;
      setNodes(res.nodes);
      setEdges(res.edges);
      commit();
      return true;
    },
    [pushHistory, commit],
  );

  const restore = useCallback(
    (snap) => {
      const nds = snap.nodes.map((n) => ({ ...n, selected: false }));
      nodesRef.current = nds;
      edgesRef.current = snap.edges;
      setNodes(nds);
      setEdges(snap.edges);
      commit();
    },
    [commit],
  );

  const undo = useCallback(() => {
    const h = historyRef.current;
    if (!h.past.length) return;
    h.future.push(snapshotOf(nodesRef.current, edgesRef.current));
    restore(h.past.pop());
    setHistoryTick((t) => t + 1);
  }, [restore]);

  const redo = useCallback(() => {
    const h = historyRef.current;
    if (!h.future.length) return;
    h.past.push(snapshotOf(nodesRef.current, edgesRef.current));
    restore(h.future.pop());
    setHistoryTick((t) => t + 1);
  }, [restore]);

  // ---- Python replaces the graph only when the revision increases ----
  useEffect(() => {
    const rev = Number(data.revision) || 0;
    if (rev <= revRef.current) return;
    revRef.current = rev;
    const g = fromPy(data.graph, paletteRef.current);
    let nds = g.nodes;
    if (g.missingPositions && nds.length) {
      // Nodes Python gave no position: keep where they were in the browser;
      // lay out the whole graph only when none of them is known here.
      const known = new Map(nodesRef.current.map((n) => [n.id, n.position]));
      if ([...g.unplaced].some((id) => !known.has(id))) {
        const pos = layeredLayout(nds, g.edges);
        nds = nds.map((n) => (g.unplaced.has(n.id) || !known.size ? { ...n, position: pos.get(n.id) || n.position } : n));
      } else {
        nds = nds.map((n) => (g.unplaced.has(n.id) ? { ...n, position: { ...known.get(n.id) } } : n));
      }
    }
    // Every replacement is undoable here (Ctrl+Z brings back the browser's
    // previous graph and sends it with the new revision). When the graphs share
    // node ids (an edit from the inspector, Python-side undo) the view and the
    // unchanged node objects are kept; otherwise (a file, a template) the view
    // is fitted to the new graph.
    const prev = nodesRef.current;
    const prevById = new Map(prev.map((n) => [n.id, n]));
    const sameProject = nds.some((n) => prevById.has(n.id));
    const sel = data.selected ?? null;
    nds = nds.map((n) => {
      const o = prevById.get(n.id);
      const selected = sel ? n.id === sel : !!(sameProject && o?.selected);
      if (o && o.position.x === n.position.x && o.position.y === n.position.y && JSON.stringify(o.data) === JSON.stringify(n.data)) {
        return o.selected === selected ? o : { ...o, selected };
      }
      return selected ? { ...n, selected } : n;
    });
    pySelRef.current = sel;
    primaryRef.current = sel;
    if (prev.length) {
      historyRef.current.past.push(snapshotOf(prev, edgesRef.current));
      if (historyRef.current.past.length > HISTORY_LIMIT) historyRef.current.past.shift();
    }
    historyRef.current.future = [];
    setHistoryTick((t) => t + 1);
    const prevEdges = new Map(edgesRef.current.map((e) => [e.id, e]));
    nodesRef.current = nds;
    edgesRef.current = g.edges.map((e) => {
      const o = prevEdges.get(e.id);
      return o && o.source === e.source && o.target === e.target && o.sourceHandle === e.sourceHandle && o.targetHandle === e.targetHandle
        ? o
        : withMarker(e);
    });
    setNodes(nds);
    setEdges(edgesRef.current);
    setRenamingId(null);
    setMenu(null);
    // Python already has this graph; only positions it did not give are news.
    lastSentRef.current = JSON.stringify({ graph: toPy(nds, edgesRef.current), selected: primarySelection(nds), revision: rev });
    if (g.missingPositions) commit();
    if (!sameProject) setTimeout(initialView, 80);
  }, [data.revision]); // eslint-disable-line react-hooks/exhaustive-deps

  // ---- Python may select a node (e.g. from its inspector) ----
  useEffect(() => {
    const sel = data.selected ?? null;
    if (sel === pySelRef.current) return;
    pySelRef.current = sel;
    if (sel === primarySelection(nodesRef.current)) return;
    if (sel && !nodesRef.current.some((n) => n.id === sel)) return;
    primaryRef.current = sel;
    const nds = nodesRef.current.map((n) => (n.selected === (n.id === sel) ? n : { ...n, selected: n.id === sel }));
    nodesRef.current = nds;
    setNodes(nds);
    commit();
  }, [data.selected]); // eslint-disable-line react-hooks/exhaustive-deps

  // ---- React Flow change handlers (live, not committed) ----
  const onNodesChange = useCallback(
    (changes) => {
      const nds = applyNodeChanges(changes, nodesRef.current);
      nodesRef.current = nds;
      setNodes(nds);
      if (changes.some((c) => c.type === 'select')) {
        const clicked = changes.find((c) => c.type === 'select' && c.selected);
        if (clicked) primaryRef.current = clicked.id;
        commit();
      }
    },
    [commit],
  );

  const onEdgesChange = useCallback((changes) => {
    const eds = applyEdgeChanges(changes, edgesRef.current);
    edgesRef.current = eds;
    setEdges(eds);
  }, []);

  const onDragStart = useCallback(() => {
    draggingRef.current = true;
    dragSnapRef.current = snapshotOf(nodesRef.current, edgesRef.current);
    setMenu(null);
  }, []);

  const onDragStop = useCallback(() => {
    draggingRef.current = false;
    const snap = dragSnapRef.current;
    dragSnapRef.current = null;
    if (snap && !sameGeometry(snap.nodes, nodesRef.current)) pushHistory(snap);
    commit();
  }, [pushHistory, commit]);

  const onSelectionStart = useCallback(() => {
    boxRef.current = true;
  }, []);
  const onSelectionEnd = useCallback(() => {
    boxRef.current = false;
    commit();
  }, [commit]);

  // ---- connections ----
  const problemFor = useCallback(
    (conn) => connectionProblem(conn, nodesRef.current, edgesRef.current, paletteRef.current, annRef.current.nodes),
    [],
  );

  const isValidConnection = useCallback((conn) => problemFor(conn) === null, [problemFor]);

  const onConnect = useCallback(
    (conn) => {
      const why = problemFor(conn);
      if (why) {
        showToast(why, 'error');
        return;
      }
      mutate((nds, eds) => {
        const taken = new Set(eds.map((e) => e.id));
        const id = freshEdgeId(conn.source, conn.target, taken);
        return { nodes: nds, edges: [...eds, withMarker(makeEdge(id, conn.source, conn.sourceHandle, conn.target, conn.targetHandle))] };
      });
    },
    [problemFor, mutate, showToast],
  );

  const onConnectEnd = useCallback(
    (_event, state) => {
      if (!state || !state.toHandle || state.isValid !== false) return;
      const a = { node: state.fromNode?.id, handle: state.fromHandle?.id ?? null, type: state.fromHandle?.type };
      const b = { node: state.toNode?.id, handle: state.toHandle?.id ?? null };
      const conn = a.type === 'target'
        ? { source: b.node, sourceHandle: b.handle, target: a.node, targetHandle: a.handle }
        : { source: a.node, sourceHandle: a.handle, target: b.node, targetHandle: b.handle };
      if (state.toHandle.type === state.fromHandle?.type) {
        showToast('Connect an output (right side) to an input (left side)', 'error');
        return;
      }
      const why = problemFor(conn);
      if (why) showToast(why, 'error');
    },
    [problemFor, showToast],
  );

  // ---- editing operations ----
  const selectedIds = useCallback(() => nodesRef.current.filter((n) => n.selected).map((n) => n.id), []);

  const deleteSelection = useCallback(
    (extraNodeIds = [], extraEdgeIds = []) => {
      const dn = new Set([...nodesRef.current.filter((n) => n.selected).map((n) => n.id), ...extraNodeIds]);
      const de = new Set([...edgesRef.current.filter((e) => e.selected).map((e) => e.id), ...extraEdgeIds]);
      if (!dn.size && !de.size) return;
      mutate((nds, eds) => ({
        nodes: nds.filter((n) => !dn.has(n.id)),
        edges: eds.filter((e) => !de.has(e.id) && !dn.has(e.source) && !dn.has(e.target)),
      }));
      setMenu(null);
    },
    [mutate],
  );

  // Insert copies of `items` ({nodes, edges} in Python format) with fresh ids,
  // placed so that their top-left corner lands at `origin` (flow coordinates).
  const insertItems = useCallback(
    (items, origin, select = true) => {
      if (!items.nodes.length) return [];
      let created = [];
      mutate((nds, eds) => {
        const takenN = new Set(nds.map((n) => n.id));
        const takenE = new Set(eds.map((e) => e.id));
        const hasPos = items.nodes.every((n) => n.position && Number.isFinite(Number(n.position.x)) && Number.isFinite(Number(n.position.y)));
        let positions;
        if (hasPos) positions = items.nodes.map((n) => ({ x: Number(n.position.x), y: Number(n.position.y) }));
        else {
          const tmp = items.nodes.map((n, i) => makeNode(`__${i}`, n.type, null, {}, { x: 0, y: 0 }));
          const idx = new Map(items.nodes.map((n, i) => [String(n.id), `__${i}`]));
          const tmpEdges = (items.edges || []).filter((e) => idx.has(String(e.source)) && idx.has(String(e.target)))
            .map((e, i) => ({ id: `t${i}`, source: idx.get(String(e.source)), target: idx.get(String(e.target)) }));
          const lay = layeredLayout(tmp, tmpEdges);
          positions = tmp.map((n) => lay.get(n.id) || { x: 0, y: 0 });
        }
        const minX = Math.min(...positions.map((p) => p.x));
        const minY = Math.min(...positions.map((p) => p.y));
        const idMap = new Map();
        const newNodes = items.nodes.map((n, i) => {
          const id = freshId(n.type, takenN);
          idMap.set(String(n.id), id);
          const pos = { x: origin.x + positions[i].x - minX, y: origin.y + positions[i].y - minY };
          return { ...makeNode(id, String(n.type), n.label ?? null, JSON.parse(JSON.stringify(n.params || {})), pos), selected: select };
        });
        const pm = paletteRef.current;
        const newEdges = [];
        for (const e of items.edges || []) {
          const s = idMap.get(String(e.source));
          const t = idMap.get(String(e.target));
          if (!s || !t) continue;
          const sn = newNodes.find((n) => n.id === s);
          const tn = newNodes.find((n) => n.id === t);
          const sh = e.source_port ?? portsOf(pm.get(sn.data.ltype)).outputs[0]?.name ?? null;
          const th = e.target_port ?? portsOf(pm.get(tn.data.ltype)).inputs[0]?.name ?? null;
          newEdges.push(withMarker(makeEdge(freshEdgeId(s, t, takenE), s, sh, t, th)));
        }
        created = newNodes.map((n) => n.id);
        const base = select ? nds.map((n) => (n.selected ? { ...n, selected: false } : n)) : nds;
        const baseEdges = select ? eds.map((e) => (e.selected ? { ...e, selected: false } : e)) : eds;
        return { nodes: [...base, ...newNodes], edges: [...baseEdges, ...newEdges] };
      });
      if (select && created.length) primaryRef.current = created[0];
      return created;
    },
    [mutate],
  );

  const itemsFromSelection = useCallback((ids) => {
    const set = new Set(ids);
    const nds = nodesRef.current.filter((n) => set.has(n.id));
    const eds = edgesRef.current.filter((e) => set.has(e.source) && set.has(e.target));
    return toPy(nds, eds);
  }, []);

  const copySelection = useCallback(() => {
    const ids = selectedIds();
    if (!ids.length) return false;
    const items = itemsFromSelection(ids);
    CLIPBOARD.nodes = items.nodes;
    CLIPBOARD.edges = items.edges;
    CLIPBOARD.pastes = 0;
    showToast(`Copied ${ids.length} layer${ids.length > 1 ? 's' : ''}`);
    return true;
  }, [selectedIds, itemsFromSelection, showToast]);

  const paste = useCallback(() => {
    if (!CLIPBOARD.nodes.length) return;
    CLIPBOARD.pastes += 1;
    const minX = Math.min(...CLIPBOARD.nodes.map((n) => n.position.x));
    const minY = Math.min(...CLIPBOARD.nodes.map((n) => n.position.y));
    const off = 40 * CLIPBOARD.pastes;
    insertItems({ nodes: CLIPBOARD.nodes, edges: CLIPBOARD.edges }, { x: minX + off, y: minY + off });
  }, [insertItems]);

  const duplicate = useCallback(
    (ids) => {
      if (!ids.length) return;
      const items = itemsFromSelection(ids);
      const minX = Math.min(...items.nodes.map((n) => n.position.x));
      const minY = Math.min(...items.nodes.map((n) => n.position.y));
      insertItems(items, { x: minX + 40, y: minY + 40 });
      setMenu(null);
    },
    [itemsFromSelection, insertItems],
  );

  const autoLayout = useCallback(() => {
    if (!nodesRef.current.length) return;
    const pos = layeredLayout(nodesRef.current, edgesRef.current);
    const changed = mutate((nds, eds) => {
      const next = nds.map((n) => {
        const p = pos.get(n.id);
        return p && (p.x !== n.position.x || p.y !== n.position.y) ? { ...n, position: p } : n;
      });
      if (sameGeometry(nds, next)) return null;
      return { nodes: next, edges: eds };
    });
    setMenu(null);
    setTimeout(initialView, changed ? 40 : 0);
  }, [mutate, initialView]);

  const fit = useCallback(() => rf.fitView({ padding: FIT_PADDING, maxZoom: 1.1, minZoom: 0.03, duration: 250 }), [rf]);

  const startRename = useCallback((id) => {
    setMenu(null);
    setRenamingId(id);
  }, []);

  const finishRename = useCallback(
    (id, value) => {
      setRenamingId(null);
      if (value === null) return;
      const label = String(value).trim() || null;
      mutate((nds, eds) => {
        const node = nds.find((n) => n.id === id);
        if (!node || (node.data.label ?? null) === label) return null;
        return { nodes: nds.map((n) => (n.id === id ? { ...n, data: { ...n.data, label } } : n)), edges: eds };
      });
    },
    [mutate],
  );

  const selectOnly = useCallback(
    (id, edgeId = null) => {
      primaryRef.current = id;
      const nds = nodesRef.current.map((n) => (n.selected === (n.id === id) ? n : { ...n, selected: n.id === id }));
      const eds = edgesRef.current.map((e) => (!!e.selected === (e.id === edgeId) ? e : { ...e, selected: e.id === edgeId }));
      nodesRef.current = nds;
      edgesRef.current = eds;
      setNodes(nds);
      setEdges(eds);
      commit();
    },
    [commit],
  );

  const focusProblem = useCallback(
    (p) => {
      let target = null;
      if (p.node && nodesRef.current.some((n) => n.id === p.node)) {
        selectOnly(p.node);
        const n = rf.getInternalNode(p.node);
        if (n) {
          const w = n.measured?.width || NODE_W;
          const h = n.measured?.height || NODE_H;
          target = { x: n.internals.positionAbsolute.x + w / 2, y: n.internals.positionAbsolute.y + h / 2 };
        }
      } else if (p.edge) {
        const e = edgesRef.current.find((x) => x.id === p.edge);
        if (e) {
          selectOnly(null, e.id);
          const a = rf.getInternalNode(e.source);
          const b = rf.getInternalNode(e.target);
          if (a && b) {
            target = {
              x: (a.internals.positionAbsolute.x + b.internals.positionAbsolute.x + (a.measured?.width || NODE_W)) / 2,
              y: (a.internals.positionAbsolute.y + b.internals.positionAbsolute.y + (b.measured?.height || NODE_H)) / 2,
            };
          }
        }
      }
      if (target) rf.setCenter(target.x, target.y, { zoom: Math.max(rf.getZoom(), 1), duration: 300 });
    },
    [rf, selectOnly],
  );

  // ---- grouping into a block (one-shot event to Python) ----
  const openGroup = useCallback(() => {
    if (selectedIds().length < 2) {
      showToast('Select two or more layers to group them (Shift-drag or Ctrl-click)');
      return;
    }
    setMenu(null);
    setGroupForm({ name: '' });
  }, [selectedIds, showToast]);

  const submitGroup = useCallback(
    (name) => {
      const clean = String(name || '').trim();
      const ids = selectedIds();
      if (!clean || ids.length < 2) return;
      apiRef.current.setTriggerValue?.('event', { type: 'group', nodes: ids, name: clean });
      setGroupForm(null);
      showToast(`Creating block “${clean}” from ${ids.length} layers`);
    },
    [selectedIds, showToast],
  );

  // ---- palette: pointer-event drag (HTML5 DnD is unreliable in a shadow root) ----
  const addFromPalette = useCallback(
    (entry, flowPos) => {
      if (entry.block && Array.isArray(entry.block.nodes)) {
        insertItems({ nodes: entry.block.nodes, edges: entry.block.edges || [] }, { x: flowPos.x - NODE_W / 2, y: flowPos.y - NODE_H / 2 });
        return;
      }
      let createdId = null;
      mutate((nds, eds) => {
        const id = freshId(entry.type, new Set(nds.map((n) => n.id)));
        createdId = id;
        const node = { ...makeNode(id, entry.type, null, defaultParams(entry), { x: flowPos.x - NODE_W / 2, y: flowPos.y - NODE_H / 2 }), selected: true };
        return {
          nodes: [...nds.map((n) => (n.selected ? { ...n, selected: false } : n)), node],
          edges: eds.map((e) => (e.selected ? { ...e, selected: false } : e)),
        };
      });
      if (createdId) primaryRef.current = createdId;
    },
    [insertItems, mutate],
  );

  const onPaletteDown = useCallback(
    (entry, e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      activeRef.current = true;
      setMenu(null);
      const start = { x: e.clientX, y: e.clientY };
      let moved = false;
      const overFlow = (x, y) => {
        const r = flowRef.current?.getBoundingClientRect();
        return !!r && x >= r.left && x <= r.right && y >= r.top && y <= r.bottom;
      };
      const rootRect = () => rootRef.current.getBoundingClientRect();
      const move = (ev) => {
        if (!moved && Math.hypot(ev.clientX - start.x, ev.clientY - start.y) < 4) return;
        moved = true;
        const rr = rootRect();
        setGhost({ entry, x: ev.clientX - rr.left, y: ev.clientY - rr.top, over: overFlow(ev.clientX, ev.clientY) });
      };
      const end = (ev) => {
        window.removeEventListener('pointermove', move, true);
        window.removeEventListener('pointerup', end, true);
        window.removeEventListener('pointercancel', cancel, true);
        setGhost(null);
        if (moved) {
          if (overFlow(ev.clientX, ev.clientY)) addFromPalette(entry, rf.screenToFlowPosition({ x: ev.clientX, y: ev.clientY }));
        } else {
          const r = flowRef.current.getBoundingClientRect();
          const jitter = (nodesRef.current.length % 5) * 24;
          addFromPalette(entry, rf.screenToFlowPosition({ x: r.left + r.width / 2 + jitter, y: r.top + r.height / 2 + jitter }));
        }
      };
      const cancel = () => {
        window.removeEventListener('pointermove', move, true);
        window.removeEventListener('pointerup', end, true);
        window.removeEventListener('pointercancel', cancel, true);
        setGhost(null);
      };
      window.addEventListener('pointermove', move, true);
      window.addEventListener('pointerup', end, true);
      window.addEventListener('pointercancel', cancel, true);
    },
    [addFromPalette, rf],
  );

  // ---- keyboard (only while the canvas is the active area of the page) ----
  const handlers = useRef({});
  handlers.current = { undo, redo, copySelection, paste, deleteSelection, duplicate, selectedIds };
  useEffect(() => {
    const onPointer = (e) => {
      activeRef.current = !!rootRef.current && e.composedPath().includes(rootRef.current);
    };
    const onKey = (e) => {
      if (!activeRef.current || isTextInput(e)) return;
      const h = handlers.current;
      const mod = e.ctrlKey || e.metaKey;
      const k = e.key.toLowerCase();
      let handled = true;
      if (e.key === 'Delete' || e.key === 'Backspace') h.deleteSelection();
      else if (mod && k === 'z' && !e.shiftKey) h.undo();
      else if (mod && ((k === 'z' && e.shiftKey) || k === 'y')) h.redo();
      else if (mod && k === 'c') handled = h.copySelection();
      else if (mod && k === 'x') {
        if (h.copySelection()) h.deleteSelection();
      } else if (mod && k === 'v') h.paste();
      else if (mod && k === 'd') h.duplicate(h.selectedIds());
      else if (mod && k === 'a') {
        const nds = nodesRef.current.map((n) => (n.selected ? n : { ...n, selected: true }));
        nodesRef.current = nds;
        setNodes(nds);
        commit();
      } else if (e.key === 'Escape') {
        setMenu(null);
        setGroupForm(null);
        setProblemsOpen(false);
        handled = false;
      } else handled = false;
      if (handled) {
        e.preventDefault();
        e.stopPropagation();
      }
    };
    document.addEventListener('pointerdown', onPointer, true);
    document.addEventListener('keydown', onKey, true);
    return () => {
      document.removeEventListener('pointerdown', onPointer, true);
      document.removeEventListener('keydown', onKey, true);
    };
  }, [commit]);

  // ---- context menu ----
  const openMenu = useCallback((event, kind, id) => {
    event.preventDefault();
    const r = flowRef.current.getBoundingClientRect();
    setMenu({ kind, id, x: event.clientX - r.left, y: event.clientY - r.top, fx: event.clientX, fy: event.clientY });
  }, []);

  const onNodeContextMenu = useCallback(
    (event, node) => {
      if (!node.selected) selectOnly(node.id);
      openMenu(event, 'node', node.id);
    },
    [openMenu, selectOnly],
  );
  const onEdgeContextMenu = useCallback(
    (event, edge) => {
      selectOnly(null, edge.id);
      openMenu(event, 'edge', edge.id);
    },
    [openMenu, selectOnly],
  );
  const onPaneContextMenu = useCallback((event) => openMenu(event, 'pane', null), [openMenu]);
  const onPaneClick = useCallback(() => {
    setMenu(null);
    setProblemsOpen(false);
  }, []);

  // ---- derived view data ----
  const problems = Array.isArray(annotations.summary?.problems) ? annotations.summary.problems : [];
  const problemEdgeKey = problems.filter((p) => p && p.edge).map((p) => String(p.edge)).sort().join('\n');
  const problemEdges = useMemo(() => new Set(problemEdgeKey ? problemEdgeKey.split('\n') : []), [problemEdgeKey]);
  const ctx = useMemo(
    () => ({ paletteMap, annStore, problemEdges, renamingId, startRename, finishRename }),
    [paletteMap, annStore, problemEdges, renamingId, startRename, finishRename],
  );
  const selCount = nodes.reduce((a, n) => a + (n.selected ? 1 : 0), 0);
  const selEdgeCount = edges.reduce((a, e) => a + (e.selected ? 1 : 0), 0);
  const h = historyRef.current;
  void historyTick;
  const totalParams = formatCount(annotations.summary?.total_params);
  const memory = annotations.summary?.memory;
  const miniColor = useCallback((n) => colorFor(paletteRef.current.get(n.data?.ltype)?.category), []);
  const menuNode = menu?.kind === 'node' ? nodes.find((n) => n.id === menu.id) : null;

  return (
    <CanvasContext.Provider value={ctx}>
      <div className="ll-root" ref={rootRef} style={{ height }} onContextMenu={(e) => e.preventDefault()}>
        {paletteOpen && <Palette palette={palette} onPointerDownItem={onPaletteDown} />}
        <div className="ll-main">
          <div className="ll-toolbar" role="toolbar" aria-label="Canvas tools">
            <button
              type="button"
              className={`ll-btn icon${paletteOpen ? ' is-on' : ''}`}
              title={paletteOpen ? 'Hide the layer palette' : 'Show the layer palette'}
              aria-label={paletteOpen ? 'Hide layer palette' : 'Show layer palette'}
              aria-pressed={paletteOpen}
              onClick={() => setPaletteOpen((o) => !o)}
            >
              <PanelIcon />
            </button>
            <span className="ll-sep" />
            <button type="button" className="ll-btn icon" title="Undo (Ctrl+Z)" aria-label="Undo" disabled={!h.past.length} onClick={undo}>
              <UndoIcon />
            </button>
            <button type="button" className="ll-btn icon" title="Redo (Ctrl+Shift+Z / Ctrl+Y)" aria-label="Redo" disabled={!h.future.length} onClick={redo}>
              <RedoIcon />
            </button>
            <span className="ll-sep" />
            <button type="button" className="ll-btn" title="Arrange layers left to right" onClick={autoLayout} disabled={!nodes.length}>
              <LayoutIcon /> <span className="ll-btn-label">Auto-layout</span>
            </button>
            <button type="button" className="ll-btn" title="Fit the whole graph in view" onClick={fit} disabled={!nodes.length}>
              <FitIcon /> <span className="ll-btn-label">Fit</span>
            </button>
            <span className="ll-sep" />
            {groupForm ? (
              <form
                className="ll-group-form"
                onSubmit={(e) => {
                  e.preventDefault();
                  submitGroup(groupForm.name);
                }}
              >
                <input
                  autoFocus
                  className="ll-input"
                  placeholder="Block name"
                  aria-label="Block name"
                  maxLength={60}
                  value={groupForm.name}
                  onChange={(e) => setGroupForm({ name: e.target.value })}
                  onKeyDown={(e) => {
                    if (e.key === 'Escape') setGroupForm(null);
                  }}
                />
                <button type="submit" className="ll-btn primary" disabled={!groupForm.name.trim()}>
                  Create block
                </button>
                <button type="button" className="ll-btn" onClick={() => setGroupForm(null)}>
                  Cancel
                </button>
              </form>
            ) : (
              <button type="button" className="ll-btn" title="Group the selected layers into a reusable block" onClick={openGroup} disabled={selCount < 2}>
                <GroupIcon /> <span className="ll-btn-label">Group as block</span>
              </button>
            )}
            <button
              type="button"
              className="ll-btn icon"
              title="Delete selection (Delete)"
              aria-label="Delete selection"
              disabled={!selCount && !selEdgeCount}
              onClick={() => deleteSelection()}
            >
              <TrashIcon />
            </button>
            <span className="ll-spacer" />
            <span className="ll-counts">
              {selCount > 1 ? `${selCount} selected · ` : ''}
              {nodes.length} layer{nodes.length === 1 ? '' : 's'} · {edges.length} connection{edges.length === 1 ? '' : 's'}
            </span>
          </div>

          <div className={`ll-flow${ghost?.over ? ' is-drop-target' : ''}`} ref={flowRef}>
            <ReactFlow
              nodes={nodes}
              edges={edges}
              nodeTypes={nodeTypes}
              edgeTypes={edgeTypes}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onConnect={onConnect}
              onConnectEnd={onConnectEnd}
              isValidConnection={isValidConnection}
              onNodeDragStart={onDragStart}
              onNodeDragStop={onDragStop}
              onSelectionDragStart={onDragStart}
              onSelectionDragStop={onDragStop}
              onSelectionStart={onSelectionStart}
              onSelectionEnd={onSelectionEnd}
              onNodeContextMenu={onNodeContextMenu}
              onEdgeContextMenu={onEdgeContextMenu}
              onPaneContextMenu={onPaneContextMenu}
              onSelectionContextMenu={(e) => {
                const id = primarySelection(nodesRef.current);
                if (id) openMenu(e, 'node', id);
              }}
              onPaneClick={onPaneClick}
              deleteKeyCode={null}
              zoomOnDoubleClick={false}
              multiSelectionKeyCode={['Control', 'Meta']}
              selectionKeyCode="Shift"
              minZoom={0.03}
              maxZoom={2}
              connectionRadius={24}
              elevateNodesOnSelect
            >
              <Background variant={BackgroundVariant.Dots} gap={18} size={1.2} color="#cbd5e1" />
              <MiniMap
                position="bottom-right"
                pannable
                zoomable
                nodeColor={miniColor}
                nodeStrokeWidth={0}
                nodeBorderRadius={3}
                maskColor="rgba(226,232,240,0.55)"
                style={{ width: 168, height: 108, marginBottom: 24 }}
                ariaLabel="Mini map"
              />
              <Controls position="bottom-left" showInteractive={false} />
            </ReactFlow>
            {nodes.length === 0 && (
              <div className="ll-empty">
                <div className="ll-empty-title">Start building</div>
                <div>Drag a layer from the palette onto the canvas.</div>
              </div>
            )}
            {menu && (
              <div className="ll-menu" role="menu" style={{ left: menu.x, top: menu.y }} onPointerDown={(e) => e.stopPropagation()}>
                {menu.kind === 'node' && menuNode && (
                  <>
                    <div className="ll-menu-title">{selCount > 1 ? `${selCount} layers` : menuNode.data.label || menuNode.id}</div>
                    {selCount <= 1 && (
                      <button type="button" role="menuitem" onClick={() => startRename(menuNode.id)}>Rename</button>
                    )}
                    <button type="button" role="menuitem" onClick={() => duplicate(selCount > 1 ? selectedIds() : [menuNode.id])}>
                      Duplicate<span className="ll-kbd">Ctrl+D</span>
                    </button>
                    {selCount > 1 && (
                      <button type="button" role="menuitem" onClick={openGroup}>Group as block…</button>
                    )}
                    <button type="button" role="menuitem" className="danger" onClick={() => deleteSelection([menuNode.id])}>
                      Delete<span className="ll-kbd">Del</span>
                    </button>
                  </>
                )}
                {menu.kind === 'edge' && (
                  <button type="button" role="menuitem" className="danger" onClick={() => deleteSelection([], [menu.id])}>
                    Delete connection<span className="ll-kbd">Del</span>
                  </button>
                )}
                {menu.kind === 'pane' && (
                  <>
                    <button
                      type="button"
                      role="menuitem"
                      disabled={!CLIPBOARD.nodes.length}
                      onClick={() => {
                        const p = rf.screenToFlowPosition({ x: menu.fx, y: menu.fy });
                        insertItems({ nodes: CLIPBOARD.nodes, edges: CLIPBOARD.edges }, p);
                        setMenu(null);
                      }}
                    >
                      Paste here<span className="ll-kbd">Ctrl+V</span>
                    </button>
                    <button type="button" role="menuitem" onClick={autoLayout} disabled={!nodes.length}>Auto-layout</button>
                    <button type="button" role="menuitem" onClick={() => { fit(); setMenu(null); }} disabled={!nodes.length}>Fit view</button>
                  </>
                )}
              </div>
            )}
            {toast && (
              <div className={`ll-toast ${toast.kind}`} role="status" key={toast.at}>
                {toast.text}
              </div>
            )}
          </div>

          <div className="ll-summary">
            <span className="ll-stat"><span className="ll-stat-k">Parameters</span><span className="ll-stat-v" data-testid="total-params">{totalParams ?? '—'}</span></span>
            <span className="ll-stat"><span className="ll-stat-k">Memory</span><span className="ll-stat-v">{memory ? String(memory) : '—'}</span></span>
            <span className="ll-spacer" />
            {problems.length ? (
              <button type="button" className={`ll-problems-btn${problemsOpen ? ' open' : ''}`} onClick={() => setProblemsOpen((o) => !o)} aria-expanded={problemsOpen}>
                <WarnIcon /> {problems.length} problem{problems.length === 1 ? '' : 's'}
                <span className={`ll-chevron up${problemsOpen ? ' open' : ''}`} aria-hidden="true">›</span>
              </button>
            ) : (
              <span className="ll-ok"><CheckIcon /> No problems</span>
            )}
            {problemsOpen && problems.length > 0 && (
              <div className="ll-problems" role="list">
                {problems.map((p, i) => (
                  <button type="button" role="listitem" key={i} className="ll-problem" onClick={() => focusProblem(p || {})}>
                    {p?.node ? <span className="ll-chip">{String(p.node)}</span> : p?.edge ? <span className="ll-chip edge">{String(p.edge)}</span> : null}
                    <span className="ll-problem-msg">{String(p?.message ?? '')}</span>
                  </button>
                ))}
              </div>
            )}
          </div>
        </div>
        {ghost && (
          <div className={`ll-ghost${ghost.over ? ' over' : ''}`} style={{ left: ghost.x, top: ghost.y, '--cat': colorFor(ghost.entry.category) }}>
            {ghost.entry.type}
          </div>
        )}
      </div>
    </CanvasContext.Provider>
  );
}
