// Selection hook: the pure reducers of selection.js over the canvas's live
// nodes/edges. Owns the primary node (the one Python's inspector shows), the
// selection as it was when the pointer went down (clicks are decided against
// it) and the box-select flag (no send to Python while a box is drawn).
import { useCallback, useRef } from 'react';
import * as Sel from './selection.js';

export function useSelection({ nodesRef, edgesRef, setGraph, commit }) {
  const primaryRef = useRef(null);
  const beforeRef = useRef(new Set());
  const boxRef = useRef(false);

  const selectedIds = useCallback(() => Sel.selectedIds(nodesRef.current), [nodesRef]);
  const primary = useCallback(() => Sel.primarySelection(nodesRef.current, primaryRef.current), [nodesRef]);

  const selectOnly = useCallback(
    (id, edgeId = null) => {
      primaryRef.current = id;
      const r = Sel.selectOnly(nodesRef.current, edgesRef.current, id, edgeId);
      setGraph(r.nodes, r.edges, true);
    },
    [nodesRef, edgesRef, setGraph],
  );

  const clear = useCallback(() => {
    if (!Sel.hasSelection(nodesRef.current, edgesRef.current)) return;
    primaryRef.current = null;
    const r = Sel.clear(nodesRef.current, edgesRef.current);
    setGraph(r.nodes, r.edges, true);
  }, [nodesRef, edgesRef, setGraph]);

  const selectAll = useCallback(() => {
    setGraph(Sel.selectAll(nodesRef.current), edgesRef.current, true);
  }, [nodesRef, edgesRef, setGraph]);

  // React Flow handlers.
  const onPointerDownCapture = useCallback(() => {
    beforeRef.current = new Set(Sel.selectedIds(nodesRef.current));
  }, [nodesRef]);

  const onNodeClick = useCallback(
    (event, node) => {
      const additive = event.shiftKey || event.ctrlKey || event.metaKey;
      const r = Sel.clickFrom(nodesRef.current, edgesRef.current, node.id, additive, beforeRef.current);
      primaryRef.current = r.primary;
      setGraph(r.nodes, r.edges, true);
    },
    [nodesRef, edgesRef, setGraph],
  );

  // After React Flow applied node changes: remember the node just selected and
  // commit when the selection changed. Returns whether it did.
  const noteChanges = useCallback(
    (changes) => {
      const r = Sel.selectChanges(changes, primaryRef.current);
      primaryRef.current = r.primary;
      if (r.changed) commit();
      return r.changed;
    },
    [commit],
  );

  const onSelectionStart = useCallback(() => {
    boxRef.current = true;
  }, []);
  const onSelectionEnd = useCallback(() => {
    boxRef.current = false;
    commit();
  }, [commit]);

  return {
    primaryRef,
    boxRef,
    selectedIds,
    primary,
    selectOnly,
    clear,
    selectAll,
    onPointerDownCapture,
    onNodeClick,
    noteChanges,
    onSelectionStart,
    onSelectionEnd,
  };
}
