// Where a layer clicked in the palette (not dragged) lands: in free space, never on a node. Next to the anchor
// (the layer selected, else the one added last) when there is one, else in a free spot of the visible area
// nearest its centre, else below the graph. Clicks used to land at the canvas's centre: Input then Linear put
// linear_1 over input_1 and its out port, and a Linear clicked on the CNN template covered `flatten`.
export const NODE_SIZE = { width: 200, height: 110 }; // a layer node before it is measured (styles.css .ll-node)
export const GAP = 40; // free space kept between the new box and every node (flow px)

// A node's box in flow coordinates ({x, y, width, height}), from its measured size when it has one.
export function boxOf(node) {
  return {
    x: node.position.x,
    y: node.position.y,
    width: node.measured?.width || node.width || NODE_SIZE.width,
    height: node.measured?.height || node.height || NODE_SIZE.height,
  };
}

// Does box `a` come closer than `gap` to box `b`?
export function crowds(a, b, gap = GAP) {
  return a.x < b.x + b.width + gap && a.x + a.width + gap > b.x && a.y < b.y + b.height + gap && a.y + a.height + gap > b.y;
}

const free = (box, boxes, gap) => !boxes.some((b) => crowds(box, b, gap));
const inView = (box, view) => !view || (box.x >= view.x && box.y >= view.y && box.x + box.width <= view.x + view.width && box.y + box.height <= view.y + view.height);

// Places next to `a` (a box) for a box of `size`: right of it, below it, diagonally, above it, then further right.
function besideAnchor(a, size, gap) {
  const right = a.x + a.width + gap;
  const below = a.y + a.height + gap;
  const out = [
    { x: right, y: a.y },
    { x: a.x, y: below },
    { x: right, y: below },
    { x: a.x, y: a.y - size.height - gap },
  ];
  for (let k = 1; k <= 12; k += 1) {
    out.push({ x: right + k * (size.width + gap), y: a.y });
    out.push({ x: a.x, y: below + k * (size.height + gap) });
  }
  return out;
}

// Places on a grid over the visible area `view`, nearest its centre first.
function inVisibleArea(view, size, gap) {
  const stepX = (size.width + gap) / 2;
  const stepY = (size.height + gap) / 2;
  const cx = view.x + view.width / 2 - size.width / 2;
  const cy = view.y + view.height / 2 - size.height / 2;
  const nx = Math.floor(view.width / 2 / stepX);
  const ny = Math.floor(view.height / 2 / stepY);
  const out = [];
  for (let i = -nx; i <= nx; i += 1) for (let j = -ny; j <= ny; j += 1) out.push({ x: cx + i * stepX, y: cy + j * stepY });
  return out.sort((p, q) => Math.hypot(p.x - cx, p.y - cy) - Math.hypot(q.x - cx, q.y - cy));
}

// The top-left corner (flow coordinates) for a new box of `size` ({width, height}) among `nodes` (React Flow
// nodes). `anchorId`: the node to put it next to (null: none); `view`: the visible, uncovered part of the canvas
// in flow coordinates ({x, y, width, height}; null: unknown). Beside the anchor, a place in view is preferred;
// the result never comes within `gap` of a node, and when no place in view is free it may lie outside the view
// (the caller pans to it: viewport.js panToShow).
export function clickPlacement(nodes, anchorId, view, size = NODE_SIZE, gap = GAP) {
  const boxes = nodes.map(boxOf);
  const anchor = anchorId ? nodes.find((n) => n.id === anchorId) : null;
  const box = (p) => ({ ...p, width: size.width, height: size.height });
  const firstFree = (cands, needView) => cands.find((p) => free(box(p), boxes, gap) && (!needView || inView(box(p), view)));
  if (!boxes.length && view) return { x: view.x + view.width / 2 - size.width / 2, y: view.y + view.height / 2 - size.height / 2 };
  if (anchor) {
    const cands = besideAnchor(boxOf(anchor), size, gap);
    const p = firstFree(cands, true) || firstFree(cands, false);
    if (p) return p;
  }
  const p = view ? firstFree(inVisibleArea(view, size, gap), true) : null;
  if (p) return p;
  // below the whole graph, at its left edge: always free
  const left = Math.min(...boxes.map((b) => b.x));
  const bottom = Math.max(...boxes.map((b) => b.y + b.height));
  return { x: Number.isFinite(left) ? left : 0, y: Number.isFinite(bottom) ? bottom + gap : 0 };
}

// The anchor for a click: the primary selected node when it is selected, else any selected node, else the node
// added last (when it still exists), else null.
export function anchorFor(nodes, primaryId, lastAddedId) {
  const selected = nodes.filter((n) => n.selected && n.type === 'layer');
  if (primaryId && selected.some((n) => n.id === primaryId)) return primaryId;
  if (selected.length) return selected[selected.length - 1].id;
  return lastAddedId && nodes.some((n) => n.id === lastAddedId) ? lastAddedId : null;
}
