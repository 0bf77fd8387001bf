// Clipboard hook: copy, cut, paste, duplicate, insert and delete over the
// canvas's live graph, with the pure reducers of clipboard.js. Every change
// goes through `mutate` (history + send to Python).
import { useCallback } from 'react';
import { copiedMessage, copyTo, createClipboard, deleteItems, insertItems as insertPure, itemsOf, nextPaste, offersUndo, pasteOrigin } from './clipboard.js';

// Shared between all canvases on the page: Ctrl+C in one, Ctrl+V in another.
let CLIPBOARD = createClipboard();

export function useClipboard({ nodesRef, edgesRef, paletteRef, selection, mutate, history, showToast, closeMenu }) {
  const { primaryRef, selectedIds } = selection;

  // Insert copies of `items` ({nodes, edges} in Python format) with fresh ids at `origin`.
  const insertItems = useCallback(
    (items, origin, select = true) => {
      if (!items.nodes.length) return [];
      const res = mutate((nds, eds) => insertPure(nds, eds, items, origin, paletteRef.current, select));
      const created = res?.created || [];
      if (select && created.length) primaryRef.current = created[0];
      return created;
    },
    [mutate, paletteRef, primaryRef],
  );

  const deleteSelection = useCallback(
    (extraNodeIds = [], extraEdgeIds = []) => {
      const res = mutate((nds, eds) => deleteItems(nds, eds, extraNodeIds, extraEdgeIds));
      closeMenu();
      if (offersUndo(res)) showToast(`Deleted ${res.removedNodes} layers`, 'info', { label: 'Undo', run: () => history.undo() });
      return true;
    },
    [mutate, closeMenu, showToast, history],
  );

  // The Delete key: handled only when something is selected (else the key goes on).
  const deleteKey = useCallback(() => {
    if (!selectedIds().length && !edgesRef.current.some((e) => e.selected)) return false;
    return deleteSelection();
  }, [selectedIds, edgesRef, deleteSelection]);

  const copySelection = useCallback(() => {
    const ids = selectedIds();
    if (!ids.length) return false;
    CLIPBOARD = copyTo(CLIPBOARD, itemsOf(nodesRef.current, edgesRef.current, ids));
    showToast(copiedMessage(ids.length));
    return true;
  }, [selectedIds, nodesRef, edgesRef, showToast]);

  const cut = useCallback(() => {
    if (copySelection()) deleteSelection();
  }, [copySelection, deleteSelection]);

  const paste = useCallback(() => {
    const next = nextPaste(CLIPBOARD);
    if (!next) return;
    CLIPBOARD = next.clipboard;
    insertItems(next.items, next.origin);
  }, [insertItems]);

  // "Paste here" (context menu): the clipboard's top-left corner at `flowPos`.
  const pasteAt = useCallback(
    (flowPos) => {
      insertItems({ nodes: CLIPBOARD.nodes, edges: CLIPBOARD.edges }, flowPos);
      closeMenu();
    },
    [insertItems, closeMenu],
  );

  const duplicate = useCallback(
    (ids) => {
      if (!ids.length) return;
      const items = itemsOf(nodesRef.current, edgesRef.current, ids);
      insertItems(items, pasteOrigin(items, 1));
      closeMenu();
    },
    [nodesRef, edgesRef, insertItems, closeMenu],
  );

  const isEmpty = () => !CLIPBOARD.nodes.length;

  return { insertItems, deleteSelection, deleteKey, copySelection, cut, paste, pasteAt, duplicate, isEmpty };
}
