// The canvas component: wires React Flow to the hooks (history, Python sync,
// selection, clipboard, context menu, keyboard, palette drag) and the pure
// reducers (viewport, connection rules). Logic lives in the .js modules next to
// this file; this file only connects them and renders.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import {
  ReactFlow,
  ReactFlowProvider,
  MiniMap,
  Background,
  BackgroundVariant,
  useReactFlow,
  useStore,
  applyNodeChanges,
  applyEdgeChanges,
} from '@xyflow/react';
import LayerNode from './LayerNode.jsx';
import { AggEdge, BlockNode, FrameNode } from './BlockNode.jsx';
import { startBlocks } from './blockView.js';
import { BLOCK_PREFIX, FRAME_PREFIX } from './blocks.js';
import ShapeEdge from './ShapeEdge.jsx';
import Palette from './Palette.jsx';
import Toolbar from './Toolbar.jsx';
import { ContextMenu, HelpPanel, ProblemsBar } from './Overlays.jsx';
import { CanvasContext } from './context.js';
import { createAnnotationStore } from './annotations.js';
import { activeMode, costModes } from './cost.js';
import { layeredLayout } from './layout.js';
import { colorFor, connectionProblem, defaultParams, freshEdgeId, freshId, indexPalette, makeEdge, makeNode } from './graph.js';
import { sameGeometry, snapshotOf, restoredNodes } from './history.js';
import { extentOf, withMarker } from './clipboard.js';
import { NODE_SIZE } from './placement.js';
import { usePlacement } from './usePlacement.js';
import { initialState, undoKind } from './sync.js';
import { revealDx } from './viewport.js';
import { VISIBLE_ONLY_ABOVE, useViewportFit } from './useViewportFit.js';
import { loadPanels, localStore, paletteMode, savePanels } from './panels.js';
import { useHistory } from './useHistory.js';
import { usePythonSync } from './usePythonSync.js';
import { useKeyboard } from './useKeyboard.js';
import { usePaletteDrag } from './usePaletteDrag.js';
import { entryLabel, libraryEvent } from './library.js';
import { useSelection } from './useSelection.js';
import { useClipboard } from './useClipboard.js';
import { useBlockView } from './useBlockView.js';
import { useContextMenu } from './useContextMenu.js';
import { useFillHeight, useWidth } from './useSize.js';

const nodeTypes = { layer: LayerNode, block: BlockNode, frame: FrameNode };
const edgeTypes = { shape: ShapeEdge, agg: AggEdge };
const isViewId = (id) => id.startsWith(BLOCK_PREFIX) || id.startsWith(FRAME_PREFIX);
const { width: NODE_W, height: NODE_H } = NODE_SIZE;
const PALETTE_OVERLAY_W = 232;

export default function App(props) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
}

function Canvas({ data, api, store }) {
  // Python sends a new palette object on every rerun: key it by content so that
  // nodes re-render only when the palette really changes.
  const paletteText = JSON.stringify(Array.isArray(data.palette) ? data.palette : []);
  const palette = useMemo(() => JSON.parse(paletteText), [paletteText]);
  const paletteMap = useMemo(() => indexPalette(palette), [palette]);
  const annotations = useMemo(() => (data.annotations && typeof data.annotations === 'object' ? data.annotations : {}), [data.annotations]);

  const init = useRef(null);
  if (init.current === null) {
    const first = initialState(data, store, paletteMap);
    if (first.project != null) store.project = first.project; // Python's graph taken: the project it belongs to
    // A big graph opens with its blocks collapsed (never all of it at once); positions of the view are not sent.
    const blocks = startBlocks(first.nodes, first.edges);
    const saved = blocks ? new Map(first.nodes.map((n) => [n.id, n.position])) : null; // the full layout, for Blocks: off
    init.current = { ...first, nodes: blocks ? blocks.nodes : first.nodes, blocks, saved };
  }

  const [nodes, setNodes] = useState(init.current.nodes);
  const [edges, setEdges] = useState(init.current.edges);
  // The collapsed view (blockView.js arrangeBlocks) or null when every layer is shown.
  const [blocks, setBlocks] = useState(init.current.blocks);
  const blocksRef = useRef(blocks);
  const savedPosRef = useRef(init.current.saved); // positions before the view moved them, restored when blocks are turned off
  const [commitSeq, setCommitSeq] = useState(init.current.layout ? 1 : 0);
  const [toast, setToast] = useState(null);
  const [renamingId, setRenamingId] = useState(null);
  const [groupForm, setGroupForm] = useState(null);
  const [problemsOpen, setProblemsOpen] = useState(false);
  const [costChoice, setCostChoice] = useState('off'); // the cost overlay (cost.js), a view setting only
  const [helpOpen, setHelpOpen] = useState(false);
  const [tip, setTip] = useState(null);
  // true while the viewport pans/zooms/animates (exposed as data-moving for tests that wait for it)
  const [moving, setMoving] = useState(false);
  // The programmatic move in flight (null: none). data-moving stays true until *its* animation ends: an earlier
  // glide it interrupted reports its end a tick later, which must not read as "stopped" (a search after a
  // block opened was measured mid-flight). A pan or zoom by the user cancels the token (onMoveStart).
  const glideRef = useRef(null);
  const glide = useCallback((move) => {
    const token = {};
    glideRef.current = token;
    setMoving(true);
    return Promise.resolve(move()).then((r) => {
      if (glideRef.current === token) {
        glideRef.current = null;
        setMoving(false);
      }
      return r;
    });
  }, []);
  const [panels, setPanels] = useState(() => loadPanels(localStore()));
  const [mapOpen, setMapOpen] = useState(false); // the minimap, opened from the toolbar (closed it covers no node)
  const mapOpenRef = useRef(false);
  mapOpenRef.current = mapOpen;
  const renderRef = useRef([]); // the nodes drawn (set with renderNodes below)
  useEffect(() => savePanels(localStore(), panels), [panels]);

  const rf = useReactFlow();
  const rootRef = useRef(null);
  const flowRef = useRef(null);
  const height = useFillHeight(rootRef, Math.max(320, Number(data.height) || 640), data.fill !== false);
  const width = useWidth(rootRef);
  const [paletteAside, setPaletteAside] = useState(false); // stepped aside for the inspector (panels.js)
  const mode = paletteMode(panels, width, paletteAside);
  const zoom = useStore((s) => s.transform[2]);
  // Fit leaves room for a palette floating over the canvas's left side.
  const leftInsetRef = useRef(0);
  const coversRef = useRef([]);
  coversRef.current = Array.isArray(data.covers) ? data.covers : [];
  leftInsetRef.current = mode === 'overlay' ? PALETTE_OVERLAY_W : 0;

  // Latest nodes/edges, updated together with every setNodes/setEdges call.
  const nodesRef = useRef(nodes);
  const edgesRef = useRef(edges);
  const revRef = useRef(init.current.revision);
  const paletteRef = useRef(paletteMap);
  paletteRef.current = paletteMap;
  const annRef = useRef(annotations);
  annRef.current = annotations;
  const annStore = useMemo(() => {
    const st = createAnnotationStore();
    st.set(annotations);
    return st;
  }, []); // eslint-disable-line react-hooks/exhaustive-deps
  useLayoutEffect(() => annStore.set(annotations), [annStore, annotations]);
  const apiRef = useRef(api);
  apiRef.current = api;
  const draggingRef = useRef(false);
  const dragSnapRef = useRef(null);
  const toastTimer = useRef(null);

  const commit = useCallback(() => setCommitSeq((s) => s + 1), []);
  const setGraph = useCallback(
    (nds, eds, doCommit = false) => {
      nodesRef.current = nds;
      edgesRef.current = eds;
      setNodes(nds);
      setEdges(eds);
      if (doCommit) commit();
    },
    [commit],
  );

  const getCurrent = useCallback(() => ({ nodes: nodesRef.current, edges: edgesRef.current }), []);
  const restore = useCallback((snap) => setGraph(restoredNodes(snap), snap.edges, true), [setGraph]);
  const history = useHistory(init.current.history, getCurrent, restore);
  const selection = useSelection({ nodesRef, edgesRef, setGraph, commit });
  const { primaryRef, boxRef, selectOnly, selectedIds, clear: clearSelection } = selection;
  const ctxMenu = useContextMenu({ flowRef, selection });
  const { menu, close: closeMenu } = ctxMenu;

  // Keep the live state in the page-level store so a remount of the host
  // element (Streamlit re-running the effect) does not lose edits.
  useEffect(() => {
    store.nodes = nodes;
    store.edges = edges;
    store.revision = revRef.current;
    store.history = history.ref.current;
  }, [nodes, edges, store, history.ref, history.tick]);

  // data-revision on the flow element: the revision of Python's graph the canvas shows (tests wait for it
  // after Python replaced the graph; a replacement re-renders, so the attribute follows revRef).
  // ---- viewport: fit, but never below a readable zoom (useViewportFit.js) ----
  const { fitted, fitState, setFitTick, initialView, userMoved, fit, coveredNow, viewHint } = useViewportFit({
    rf, store, refs: { flowRef, renderRef, blocksRef, mapOpenRef, coversRef, leftInsetRef }, glide, closeMenu, mapOpen,
  });

  const showToast = useCallback((text, kind = 'info', action = null) => {
    clearTimeout(toastTimer.current);
    setToast({ text, kind, action, at: Date.now() });
    toastTimer.current = setTimeout(() => setToast(null), action ? 7000 : kind === 'error' ? 3200 : 2200);
  }, []);

  const { sendEvent } = usePythonSync({
    data,
    store,
    api,
    commitSeq,
    refs: { nodesRef, edgesRef, revRef, primaryRef, paletteRef, busyRef: { current: () => draggingRef.current || boxRef.current } },
    setGraph,
    history,
    onReplaced: (m) => {
      setRenamingId(null);
      closeMenu();
      if (!m.sameProject) {
        const b = startBlocks(nodesRef.current, edgesRef.current);
        savedPosRef.current = null;
        setBlocks(b);
        if (b) setGraph(b.nodes, edgesRef.current);
      }
      if (m.missingPositions) commit();
      if (!m.sameProject) {
        fitState.current = { ...fitState.current, wanted: true, all: false };
        setFitTick((t) => t + 1);
      }
    },
  });

  // Undo: a step of this project's history, else the project Python replaced, brought back whole by Python.
  const canUndoReplace = !!data.can_undo_replace;
  const canUndoReplaceRef = useRef(canUndoReplace);
  canUndoReplaceRef.current = canUndoReplace;
  const undo = useCallback(() => {
    const kind = undoKind(history.ref.current, canUndoReplaceRef.current);
    if (kind === 'step') return history.undo();
    if (kind === 'replace') sendEvent({ type: 'undo_replace' });
    return kind !== null;
  }, [history, sendEvent]);

  // Apply a committed change: record history, set state, send to Python.
  const mutate = useCallback(
    (fn) => {
      const res = fn(nodesRef.current, edgesRef.current);
      if (!res) return null;
      history.push();
      setGraph(res.nodes, res.edges, true);
      return res;
    },
    [history, setGraph],
  );

  // ---- React Flow change handlers (live, not committed) ----
  const { noteChanges } = selection;
  const onNodesChange = useCallback(
    (all) => {
      const mine = all.filter((c) => c.id && isViewId(c.id));
      if (mine.length) setBlocks((b) => (b ? { ...b, extraNodes: applyNodeChanges(mine, b.extraNodes) } : b));
      const changes = mine.length ? all.filter((c) => !(c.id && isViewId(c.id))) : all;
      if (!changes.length) return;
      const nds = applyNodeChanges(changes, nodesRef.current);
      nodesRef.current = nds;
      setNodes(nds);
      noteChanges(changes);
    },
    [noteChanges],
  );

  const onEdgesChange = useCallback((all) => {
    const changes = all.filter((c) => !String(c.id || '').startsWith('agg:'));
    if (!changes.length) return;
    const eds = applyEdgeChanges(changes, edgesRef.current);
    edgesRef.current = eds;
    setEdges(eds);
  }, []);

  const onDragStart = useCallback(() => {
    draggingRef.current = true;
    dragSnapRef.current = snapshotOf(nodesRef.current, edgesRef.current);
    closeMenu();
  }, [closeMenu]);

  const onDragStop = useCallback(() => {
    draggingRef.current = false;
    const snap = dragSnapRef.current;
    dragSnapRef.current = null;
    if (snap && !sameGeometry(snap.nodes, nodesRef.current)) history.push(snap);
    commit();
  }, [history, commit]);

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
        const id = freshEdgeId(conn.source, conn.target, new Set(eds.map((e) => e.id)));
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
  const clip = useClipboard({ nodesRef, edgesRef, paletteRef, selection, mutate, history, showToast, closeMenu });
  const { insertItems, deleteSelection, duplicate } = clip;

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
    // Blocks on: the new layout is what Blocks: off shows; the collapsed view is arranged again (its layers
    // would otherwise sit at their full-layout places, away from the blocks). blocksRef and arrange are
    // declared below; this runs on a click, after both exist.
    const b = blocksRef.current;
    if (b) {
      savedPosRef.current = null;
      arrange(b.tree, b.expanded);
    }
    closeMenu();
    setTimeout(() => initialView(), changed || b ? 40 : 0);
  }, [mutate, initialView, closeMenu]); // eslint-disable-line react-hooks/exhaustive-deps

  const startRename = useCallback(
    (id) => {
      closeMenu();
      setRenamingId(id);
    },
    [closeMenu],
  );

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

  // Esc: close every overlay, then clear the selection.
  const clearAll = useCallback(() => {
    closeMenu();
    setGroupForm(null);
    setProblemsOpen(false);
    setHelpOpen(false);
    setTip(null);
    clearSelection();
    return true;
  }, [closeMenu, clearSelection]);

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
      if (target) userMoved();
      if (target) glide(() => rf.setCenter(target.x, target.y, { zoom: Math.max(rf.getZoom(), 1), duration: 300 }));
    },
    [rf, selectOnly, userMoved, glide],
  );

  // ---- grouping into a block (one-shot event to Python) ----
  const openGroup = useCallback(() => {
    if (selectedIds().length < 2) {
      showToast('Select two or more layers to group them (Shift-drag or Ctrl-click)');
      return;
    }
    closeMenu();
    setGroupForm({ name: '' });
  }, [selectedIds, showToast, closeMenu]);

  const submitGroup = useCallback(
    (name) => {
      const clean = String(name || '').trim();
      const ids = selectedIds();
      if (!clean || ids.length < 2) return;
      sendEvent({ type: 'group', nodes: ids, name: clean });
      setGroupForm(null);
      showToast(`Creating block “${clean}” from ${ids.length} layers`);
    },
    [selectedIds, showToast, sendEvent],
  );

  // ---- palette: a drop lands where it is dropped, a click in free space beside the anchor (usePlacement.js) ----
  const placer = usePlacement({ rf, flowRef, renderRef, primaryRef, leftInsetRef, coveredNow, glide, userMoved });
  const addFromPalette = useCallback(
    (entry, flowPos, dragged) => {
      const items = entry.block && Array.isArray(entry.block.nodes) ? { nodes: entry.block.nodes, edges: entry.block.edges || [] } : null;
      const size = items ? extentOf(items, NODE_SIZE) : NODE_SIZE;
      const origin = dragged ? { x: flowPos.x - NODE_W / 2, y: flowPos.y - NODE_H / 2 } : placer.place(size);
      const lib = libraryEvent(entry, Date.now());
      let createdId = null;
      if (lib) {
        sendEvent(lib);
        showToast(`Importing ${lib.name}…`);
      } else if (items) {
        createdId = insertItems(items, origin)[0];
      } else {
        mutate((nds, eds) => {
          createdId = freshId(entry.type, new Set(nds.map((n) => n.id)));
          const node = { ...makeNode(createdId, entry.type, null, defaultParams(entry), origin), selected: true };
          return {
            nodes: [...nds.map((n) => (n.selected ? { ...n, selected: false } : n)), node],
            edges: eds.map((e) => (e.selected ? { ...e, selected: false } : e)),
          };
        });
        if (createdId) primaryRef.current = createdId;
      }
      placer.added(createdId);
      if (createdId && !dragged) placer.reveal({ ...origin, ...size });
    },
    [insertItems, mutate, showToast, sendEvent, placer],
  );
  const toFlow = useCallback((p) => rf.screenToFlowPosition(p), [rf]);
  const { ghost, onPointerDown: onPaletteDown } = usePaletteDrag({ flowRef, rootRef, onDrop: addFromPalette, onStart: closeMenu, toFlow });

  // ---- keyboard: active as soon as the canvas is visible ----
  useKeyboard(rootRef, {
    undo: () => undo(),
    redo: () => history.redo(),
    copy: () => clip.copySelection(),
    cut: () => clip.cut(),
    paste: () => clip.paste(),
    duplicate: () => duplicate(selectedIds()),
    delete: () => clip.deleteKey(),
    selectAll: () => selection.selectAll(),
    clear: () => clearAll(),
    fit: () => fit(),
    help: () => setHelpOpen((o) => !o),
  });

  const onPaneClick = useCallback(() => {
    closeMenu();
    setProblemsOpen(false);
    setHelpOpen(false);
  }, [closeMenu]);

  // ---- tooltips at screen size (outside the zoomed viewport) ----
  const showTip = useCallback((el, lines) => {
    const fr = flowRef.current?.getBoundingClientRect();
    const r = el.getBoundingClientRect();
    if (!fr) return;
    setTip({ lines, right: fr.right - r.right - 6, bottom: fr.bottom - r.top + 8, top: r.bottom - fr.top + 8, below: r.top - fr.top < 90 });
  }, []);
  const hideTip = useCallback(() => setTip(null), []);

  // ---- big graphs: blocks collapsed by module, search (useBlockView.js) ----
  const { arrange, toggleBlock, canBlocks, toggleBlocks, onFind, renderNodes, renderEdges } = useBlockView({
    nodes, edges, blocks, setBlocks, setGraph, rf, userMoved, glide, showToast, initialView,
    refs: { nodesRef, edgesRef, blocksRef, savedPosRef, renderRef, flowRef, primaryRef },
  });

  // ---- derived view data ----
  const problems = Array.isArray(annotations.summary?.problems) ? annotations.summary.problems : [];
  const problemEdgeKey = problems.filter((p) => p && p.edge).map((p) => String(p.edge)).sort().join('\n');
  const problemEdges = useMemo(() => new Set(problemEdgeKey ? problemEdgeKey.split('\n') : []), [problemEdgeKey]);
  const costModeList = costModes(annotations.summary);
  const costMode = activeMode(costChoice, costModeList);
  const ctx = useMemo(
    () => ({ paletteMap, annStore, problemEdges, renamingId, startRename, finishRename, showTip, hideTip, toggleBlock, costMode }),
    [paletteMap, annStore, problemEdges, renamingId, startRename, finishRename, showTip, hideTip, toggleBlock, costMode],
  );
  const selCount = nodes.reduce((a, n) => a + (n.selected ? 1 : 0), 0);
  const selEdgeCount = edges.reduce((a, e) => a + (e.selected ? 1 : 0), 0);
  // A layer selected alone opens the page's inspector, which floats over the canvas's right side on a narrow
  // window (data.covers): it sat on the very layer clicked. The inspector comes with Python's rerun for the
  // selection, so watch for it a few seconds and pan that layer clear of it once (viewport.js revealDx). An
  // overlay palette steps aside meanwhile (panels.js paletteMode), and comes back when the selection ends.
  const selectedOne = selCount === 1 ? nodes.find((n) => n.selected)?.id : null;
  useEffect(() => {
    if (!selectedOne) {
      setPaletteAside(false);
      return undefined;
    }
    let frame = 0;
    const until = performance.now() + 4000;
    const step = () => {
      const el = flowRef.current;
      const covered = el ? coveredNow(el) : 0;
      const nodeEl = el && el.querySelector(`.react-flow__node[data-id="${CSS.escape(selectedOne)}"]`);
      if (nodeEl && covered > 0) {
        const overlay = leftInsetRef.current > 0; // an overlay palette: it steps aside, its width is free again
        if (overlay) setPaletteAside(true);
        const f = el.getBoundingClientRect();
        const dx = revealDx(nodeEl.getBoundingClientRect(), f, f.left + (overlay ? 0 : leftInsetRef.current), covered);
        if (dx) {
          const v = rf.getViewport();
          glide(() => rf.setViewport({ ...v, x: v.x + dx }, { duration: 200 }));
        }
        return;
      }
      if (performance.now() < until) frame = requestAnimationFrame(step);
    };
    frame = requestAnimationFrame(step);
    return () => cancelAnimationFrame(frame);
  }, [selectedOne, rf, glide, coveredNow]);
  const miniColor = useCallback(
    (n) => (n.type === 'frame' ? 'rgba(148,163,184,0.18)' : n.type === 'block' ? '#334155' : colorFor(paletteRef.current.get(n.data?.ltype)?.category)),
    [],
  );
  const menuActions = {
    rename: startRename,
    duplicate: (id) => duplicate(selCount > 1 ? selectedIds() : [id]),
    group: openGroup,
    deleteNode: (id) => deleteSelection([id]),
    deleteEdge: (id) => deleteSelection([], [id]),
    paste: () => menu && clip.pasteAt(rf.screenToFlowPosition({ x: menu.fx, y: menu.fy })),
    layout: autoLayout,
    fit,
  };

  const palettePanel = mode !== 'closed' && (
    <Palette
      palette={palette}
      onPointerDownItem={onPaletteDown}
      overlay={mode === 'overlay'}
      docked={panels.paletteDocked}
      onToggleDock={() => setPanels((p) => ({ ...p, paletteDocked: !p.paletteDocked }))}
      onClose={() => setPanels((p) => ({ ...p, paletteOpen: false }))}
    />
  );

  return (
    <CanvasContext.Provider value={ctx}>
      <div
        className={`ll-root palette-${mode}`}
        ref={rootRef}
        style={{ height }}
        onContextMenu={(e) => e.preventDefault()}
        onPointerDownCapture={selection.onPointerDownCapture}
        data-testid="ll-canvas-root"
      >
        {mode === 'docked' && palettePanel}
        <div className="ll-main">
          <Toolbar
            paletteOpen={mode !== 'closed'}
            onTogglePalette={() => {
              setPaletteAside(false); // asked for while it stood aside: it comes back, and stays
              setPanels((p) => ({ ...p, paletteOpen: !(mode !== 'closed') }));
            }}
            canUndo={history.canUndo || canUndoReplace}
            undoTitle={history.canUndo || !canUndoReplace ? null : 'Undo (Ctrl+Z): bring back the project this one replaced, with its data and settings'}
            canRedo={history.canRedo}
            onUndo={undo}
            onRedo={history.redo}
            onLayout={autoLayout}
            onFit={fit}
            onZoomIn={() => glide(() => rf.zoomIn({ duration: 150 }))}
            onZoomOut={() => glide(() => rf.zoomOut({ duration: 150 }))}
            mapOpen={mapOpen}
            onToggleMap={() => setMapOpen((m) => !m)}
            hasNodes={nodes.length > 0}
            groupForm={groupForm}
            setGroupForm={setGroupForm}
            onOpenGroup={openGroup}
            onSubmitGroup={submitGroup}
            selCount={selCount}
            selEdgeCount={selEdgeCount}
            onDelete={() => deleteSelection()}
            nodeCount={nodes.length}
            edgeCount={edges.length}
            canBlocks={canBlocks}
            blocksOn={!!blocks}
            onToggleBlocks={toggleBlocks}
            onFind={onFind}
            costModes={costModeList}
            costMode={costMode}
            onCostMode={setCostChoice}
            helpOpen={helpOpen}
            onToggleHelp={() => setHelpOpen((o) => !o)}
          />
          <div
            className={`ll-flow${ghost?.over ? ' is-drop-target' : ''}${fitted ? '' : ' is-unfitted'}`}
            ref={flowRef}
            style={{ '--ll-zoom': zoom || 1 }}
            data-zoom={(zoom || 1).toFixed(3)}
            data-moving={moving ? 'true' : 'false'}
            data-fitted={fitted}
            data-revision={revRef.current}
            data-blocks={blocks ? blocks.extraNodes.filter((n) => n.type === 'block').length : 0}
            data-shown={renderNodes.length}
          >
            <ReactFlow
              nodes={renderNodes}
              edges={renderEdges}
              onlyRenderVisibleElements={renderNodes.length > VISIBLE_ONLY_ABOVE}
              nodeTypes={nodeTypes}
              edgeTypes={edgeTypes}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onNodeClick={selection.onNodeClick}
              onConnect={onConnect}
              onConnectEnd={onConnectEnd}
              isValidConnection={isValidConnection}
              onNodeDragStart={onDragStart}
              onNodeDragStop={onDragStop}
              onSelectionDragStart={onDragStart}
              onSelectionDragStop={onDragStop}
              onSelectionStart={selection.onSelectionStart}
              onSelectionEnd={selection.onSelectionEnd}
              {...ctxMenu.handlers}
              onPaneClick={onPaneClick}
              onMoveStart={(event) => {
                setMoving(true);
                if (event) {
                  glideRef.current = null; // a pan or zoom by the user (a programmatic move has no event) ends a glide
                  userMoved();
                }
              }}
              onMoveEnd={() => {
                if (!glideRef.current) setMoving(false);
              }}
              deleteKeyCode={null}
              selectionKeyCode="Shift"
              multiSelectionKeyCode={['Control', 'Meta']}
              zoomOnDoubleClick={false}
              minZoom={0.05}
              maxZoom={2}
              connectionRadius={28}
              elevateNodesOnSelect
            >
              <Background variant={BackgroundVariant.Dots} gap={18} size={1.2} color="#cbd5e1" />
              {mapOpen && <MiniMap
                position="bottom-right"
                pannable
                zoomable
                nodeColor={miniColor}
                nodeStrokeWidth={0}
                nodeBorderRadius={3}
                maskColor="rgba(226,232,240,0.55)"
                style={{ width: 168, height: 108, marginBottom: 24 }}
                ariaLabel="Mini map"
              />}
            </ReactFlow>
            {mode === 'overlay' && palettePanel}
            {nodes.length === 0 && (
              <div className="ll-empty">
                <div className="ll-empty-title">Start building</div>
                <div>Drag a layer from the palette onto the canvas, or pick a template.</div>
              </div>
            )}
            {menu && (
              <ContextMenu menu={menu} nodes={nodes} selCount={selCount} clipboardEmpty={clip.isEmpty()} actions={menuActions} />
            )}
            {helpOpen && <HelpPanel onClose={() => setHelpOpen(false)} />}
            {tip && (
              <div className={`ll-tip floating${tip.below ? ' below' : ''}`} role="tooltip" style={tip.below ? { right: tip.right, top: tip.top } : { right: tip.right, bottom: tip.bottom }}>
                {tip.lines.map((m, i) => (
                  <span key={i} className="ll-tip-line">{m}</span>
                ))}
              </div>
            )}
            {toast && (
              <div className={`ll-toast ${toast.kind}${toast.action ? ' has-action' : ''}`} role="status" key={toast.at}>
                <span>{toast.text}</span>
                {toast.action && (
                  <button
                    type="button"
                    className="ll-toast-btn"
                    onClick={() => {
                      toast.action.run();
                      setToast(null);
                    }}
                  >
                    {toast.action.label}
                  </button>
                )}
              </div>
            )}
          </div>
          <ProblemsBar annotations={annotations} problems={problems} nodeCount={nodes.length} open={problemsOpen} setOpen={setProblemsOpen} onFocus={focusProblem} viewHint={viewHint} onFit={fit} />
        </div>
        {ghost && (
          <div className={`ll-ghost${ghost.over ? ' over' : ''}`} style={{ left: ghost.x, top: ghost.y, '--cat': colorFor(ghost.entry.category) }}>
            {entryLabel(ghost.entry)}
          </div>
        )}
      </div>
    </CanvasContext.Provider>
  );
}

