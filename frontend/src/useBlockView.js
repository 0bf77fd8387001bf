// Big graphs: the collapsed view of blocks (one per module), turning it on and off, expanding a block, and Find,
// which expands the blocks around a hit and centres it; what React Flow draws in that view. The block state
// itself lives in the canvas (its first view and Python's replacements set it too).
import { useCallback, useMemo, useRef } from 'react';
import { arrangeBlocks, startBlocks } from './blockView.js';
import { BLOCK_PREFIX, FRAME_PREFIX, blockTree, expandTo, searchNodes } from './blocks.js';
import { NODE_SIZE } from './placement.js';

const { width: NODE_W, height: NODE_H } = NODE_SIZE;

export function useBlockView({ nodes, edges, blocks, setBlocks, refs, setGraph, rf, userMoved, glide, showToast, initialView }) {
  const { nodesRef, edgesRef, blocksRef, savedPosRef, renderRef, flowRef, primaryRef } = refs;
  blocksRef.current = blocks;
  const arrange = useCallback(
    (tree, expanded) => {
      if (!savedPosRef.current) savedPosRef.current = new Map(nodesRef.current.map((n) => [n.id, n.position]));
      const b = arrangeBlocks(nodesRef.current, edgesRef.current, tree, expanded);
      setBlocks(b);
      setGraph(b.nodes, edgesRef.current);
      return b;
    },
    [setGraph],
  );
  const toggleBlock = useCallback(
    (id) => {
      const b = blocksRef.current;
      if (!b) return;
      const expanded = new Set(b.expanded);
      if (expanded.has(id)) {
        for (const x of [...expanded]) if (x === id || x.startsWith(`${id}.`) || x.startsWith(`${id}_`)) expanded.delete(x);
      } else expanded.add(id);
      const next = arrange(b.tree, expanded);
      // keep the block that was clicked in view: centre on its frame (expanded) or its box (collapsed)
      const fid = FRAME_PREFIX + id.slice(BLOCK_PREFIX.length);
      const el = next.extraNodes.find((n) => n.id === fid || n.id === id);
      if (el) {
        const w = el.data.width || 220;
        const h = el.data.height || 92;
        const z = rf.getZoom();
        const fits = flowRef.current ? Math.min(flowRef.current.clientWidth / (w + 80), flowRef.current.clientHeight / (h + 80)) : z;
        userMoved();
        glide(() => rf.setCenter(el.position.x + w / 2, el.position.y + h / 2, { zoom: Math.max(0.3, Math.min(z, fits, 1)), duration: 250 }));
      }
    },
    [arrange, rf, userMoved, glide],
  );
  const idsKey = useMemo(() => nodes.map((n) => n.id).join('\n'), [nodes]);
  const canBlocks = useMemo(() => !!blocks || (nodes.length > 50 && blockTree(nodesRef.current).roots.length > 0), [idsKey, blocks]); // eslint-disable-line react-hooks/exhaustive-deps
  const toggleBlocks = useCallback(() => {
    if (blocksRef.current) {
      const saved = savedPosRef.current;
      savedPosRef.current = null;
      setBlocks(null);
      if (saved) setGraph(nodesRef.current.map((n) => (saved.has(n.id) ? { ...n, position: saved.get(n.id) } : n)), edgesRef.current);
    } else {
      const b = startBlocks(nodesRef.current, edgesRef.current, true);
      if (!b) return;
      savedPosRef.current = new Map(nodesRef.current.map((n) => [n.id, n.position]));
      setBlocks(b);
      setGraph(b.nodes, edgesRef.current);
    }
    setTimeout(() => initialView(), 60);
  }, [setGraph, initialView]);
  const findRef = useRef({ q: '', index: -1 });
  const onFind = useCallback(
    (query) => {
      const hits = searchNodes(nodesRef.current, query);
      if (!hits.length) {
        showToast(`No layer matches “${String(query).trim()}”`);
        return { index: 0, total: 0 };
      }
      const same = findRef.current.q === query;
      const index = same ? (findRef.current.index + 1) % hits.length : 0;
      findRef.current = { q: query, index };
      const id = hits[index];
      const b = blocksRef.current;
      let nds = nodesRef.current;
      if (b) {
        const expanded = expandTo(b.tree, b.expanded, id);
        if (expanded !== b.expanded) nds = arrange(b.tree, expanded).nodes;
      }
      nds = nds.map((n) => (n.id === id ? { ...n, className: 'll-found', selected: true } : n.className || n.selected ? { ...n, className: undefined, selected: false } : n));
      setGraph(nds, edgesRef.current);
      primaryRef.current = id;
      const n = nds.find((x) => x.id === id);
      userMoved();
      glide(() =>
        rf.setCenter(n.position.x + (n.measured?.width || NODE_W) / 2, n.position.y + (n.measured?.height || NODE_H) / 2, {
          zoom: Math.max(rf.getZoom(), 0.9),
          duration: 300,
        }),
      );
      return { index, total: hits.length };
    },
    [arrange, setGraph, rf, showToast, primaryRef, userMoved, glide],
  );
  // What React Flow draws: in the collapsed view the layers shown (and any added since), the blocks and
  // frames, the edges between shown layers and the aggregated ones.
  const renderNodes = useMemo(() => {
    if (!blocks) return nodes;
    const own = blocks.tree.ownerOf;
    return [...blocks.extraNodes, ...nodes.filter((n) => blocks.shown.has(n.id) || !own.has(n.id))];
  }, [blocks, nodes]);
  const renderEdges = useMemo(() => {
    if (!blocks) return edges;
    const ids = new Set();
    for (const n of renderNodes) if (n.type === 'layer') ids.add(n.id);
    return [...edges.filter((e) => ids.has(e.source) && ids.has(e.target)), ...blocks.extraEdges];
  }, [blocks, edges, renderNodes]);
  renderRef.current = renderNodes;

  return { arrange, toggleBlock, canBlocks, toggleBlocks, onFind, renderNodes, renderEdges };
}
