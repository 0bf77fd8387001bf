// The context menu as pure functions: where it opens and which entries it shows.
// The menu remembers the click point both relative to the canvas (x, y: where
// it is drawn) and on screen (fx, fy: where "Paste here" puts the layers).

export function menuAt(event, rect, kind, id) {
  return { kind, id, x: event.clientX - rect.left, y: event.clientY - rect.top, fx: event.clientX, fy: event.clientY };
}

// Title and entries for `menu` ({kind: 'node' | 'edge' | 'pane', id}). Every
// entry names the action it runs (with `arg`), its label, an optional shortcut
// hint, whether it is dangerous (red) and whether it is disabled.
export function menuItems(menu, nodes, selCount, clipboardEmpty) {
  const item = (action, label, extra = {}) => ({ action, label, kbd: null, danger: false, disabled: false, arg: undefined, ...extra });
  if (menu.kind === 'node') {
    const node = nodes.find((n) => n.id === menu.id);
    if (!node) return { title: null, items: [] };
    const many = selCount > 1;
    const items = [];
    if (!many) items.push(item('rename', 'Rename', { arg: node.id }));
    items.push(item('duplicate', 'Duplicate', { kbd: 'Ctrl+D', arg: node.id }));
    if (many) items.push(item('group', 'Group as block…'));
    items.push(item('deleteNode', 'Delete', { kbd: 'Del', danger: true, arg: node.id }));
    return { title: many ? `${selCount} layers` : node.data.label || node.id, items };
  }
  if (menu.kind === 'edge') {
    return { title: null, items: [item('deleteEdge', 'Delete connection', { kbd: 'Del', danger: true, arg: menu.id })] };
  }
  if (menu.kind === 'pane') {
    const empty = !nodes.length;
    return {
      title: null,
      items: [
        item('paste', 'Paste here', { kbd: 'Ctrl+V', disabled: clipboardEmpty }),
        item('layout', 'Auto-layout', { disabled: empty }),
        item('fit', 'Fit view', { kbd: 'F', disabled: empty }),
      ],
    };
  }
  return { title: null, items: [] };
}
