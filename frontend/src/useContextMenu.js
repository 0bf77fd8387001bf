// Context-menu hook: which menu is open and where (pure parts in contextMenu.js).
// A right-click on a node outside the selection selects it first; on an edge
// selects that edge; on a box selection opens the menu of its primary node.
import { useCallback, useState } from 'react';
import { menuAt } from './contextMenu.js';

export function useContextMenu({ flowRef, selection }) {
  const [menu, setMenu] = useState(null);
  const { selectOnly, primary } = selection;

  const close = useCallback(() => setMenu(null), []);
  const open = useCallback(
    (event, kind, id) => {
      event.preventDefault();
      setMenu(menuAt(event, flowRef.current.getBoundingClientRect(), kind, id));
    },
    [flowRef],
  );

  const onNodeContextMenu = useCallback(
    (event, node) => {
      if (!node.selected) selectOnly(node.id);
      open(event, 'node', node.id);
    },
    [open, selectOnly],
  );
  const onEdgeContextMenu = useCallback(
    (event, edge) => {
      selectOnly(null, edge.id);
      open(event, 'edge', edge.id);
    },
    [open, selectOnly],
  );
  const onPaneContextMenu = useCallback((event) => open(event, 'pane', null), [open]);
  const onSelectionContextMenu = useCallback(
    (event) => {
      const id = primary();
      if (id) open(event, 'node', id);
    },
    [open, primary],
  );

  return { menu, close, handlers: { onNodeContextMenu, onEdgeContextMenu, onPaneContextMenu, onSelectionContextMenu } };
}
