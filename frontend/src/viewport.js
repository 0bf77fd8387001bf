// The first viewport. It shows the whole graph when the graph fits at READABLE_ZOOM or larger; fitting a long
// graph into a small canvas would make text unreadable, so the zoom never goes below READABLE_ZOOM: a graph that
// does not fit at that zoom is shown from its input side (left, centred vertically when it fits in height) and
// the user pans, or presses Fit (which may zoom out further, FIT_ALL_ZOOM).

// At 0.65 a layer's name (14.5 px) renders at >= 9.4 px and the smallest node text (12 px: shapes, port names)
// at >= 7.8 px: read in screenshots of every template. At the former 0.92 (smallest text >= 11 px) the first view
// cut every template at 1440x900 and 900x900 with the palette open (the CNN showed 6 of its 12 nodes, the MLP 4
// of 6); at 0.65, 10 of the 12 show whole (not ResNet and GAN, 24 nodes each; the two 4-layer LSTM templates
// showed 3 of 4 while they were laid out in one row: templates now wrap after 3 columns, builder/graph/layout.py).
export const READABLE_ZOOM = 0.65;
export const MAX_FIT_ZOOM = 1.1;
export const FIT_PADDING = { top: 24, left: 28, right: 28, bottom: 28 };

// bounds: {x, y, width, height} of the nodes (flow coordinates); width/height:
// the canvas size in screen pixels. Returns {x, y, zoom}.
export function readableViewport(bounds, width, height, opts = {}) {
  const minZoom = opts.minZoom ?? READABLE_ZOOM;
  const maxZoom = opts.maxZoom ?? MAX_FIT_ZOOM;
  const pad = { ...FIT_PADDING, ...(opts.padding || {}) };
  const availW = Math.max(1, width - pad.left - pad.right);
  const availH = Math.max(1, height - pad.top - pad.bottom);
  const bw = Math.max(1, bounds.width);
  const bh = Math.max(1, bounds.height);
  const fit = Math.min(availW / bw, availH / bh);
  const zoom = Math.max(minZoom, Math.min(maxZoom, fit));
  const fitsW = bw * zoom <= availW;
  const fitsH = bh * zoom <= availH;
  const x = fitsW ? pad.left + (availW - bw * zoom) / 2 - bounds.x * zoom : pad.left - bounds.x * zoom;
  const y = fitsH ? pad.top + (availH - bh * zoom) / 2 - bounds.y * zoom : pad.top - bounds.y * zoom;
  return { x, y, zoom };
}

// When to fit the view again by itself (the canvas was shown with a wrong size: hidden while another page was
// up, laid out before the page above it, resized). `state`: {wanted: a fit is due (first show, a graph Python
// replaced), auto: the view is still the last automatic fit (the user has not panned or zoomed since),
// fitted: the size {width, height} that fit was made for, or null}. `size`: the canvas's size now.
// Returns true when a fit should be made now: never at a zero size (hidden, not laid out: a fit there puts
// the graph far off screen), when one is due, or when the size changed under an automatic fit.
export function fitDue(state, size, ready = true) {
  if (!ready || !size || size.width < 2 || size.height < 2) return false;
  if (state.wanted) return true;
  if (!state.auto || !state.fitted) return false;
  return Math.abs(state.fitted.width - size.width) >= 1 || Math.abs(state.fitted.height - size.height) >= 1;
}

// The Fit button shows the whole graph: the zoom may go this low (the first view stays readable instead).
export const FIT_ALL_ZOOM = 0.1;
// The minimap (bottom-right, with its margins; opened from the toolbar, where the zoom buttons are) sits over the
// canvas: a fit keeps nodes off it, either in a strip on the right or above it, whichever leaves the larger zoom.
// (`top`: a top-right corner, none since the zoom buttons moved to the toolbar.)
export const CORNERS = { right: 204, top: 0, bottom: 150 };

// Does the box `bounds` (flow coordinates) land on the minimap (bottom-right) or the zoom buttons (top-right) when
// shown with viewport `v` on a `width` x `height` canvas?
export function onCorners(bounds, v, width, height, corners = CORNERS) {
  const x0 = bounds.x * v.zoom + v.x;
  const y0 = bounds.y * v.zoom + v.y;
  const x1 = x0 + bounds.width * v.zoom;
  const y1 = y0 + bounds.height * v.zoom;
  const hits = (b) => x0 < b.x1 && x1 > b.x0 && y0 < b.y1 && y1 > b.y0;
  return (
    hits({ x0: width - corners.right, y0: height - corners.bottom, x1: width, y1: height }) ||
    hits({ x0: width - corners.right, y0: 0, x1: width, y1: corners.top })
  );
}

// Opening the minimap over a view: is a fit due again to keep it off the nodes? `state`: the fit state
// (useViewportFit: `auto`, the view is still the last automatic fit); `boxes`: the nodes' boxes (flow coordinates);
// `v`, `width`, `height`: the view and the canvas's size. True when the view is an automatic fit (the first view,
// or Fit, made while the minimap was closed) and a node lands under the minimap: Fit, then the minimap, covered the
// VAE template's last node at 1440x900 and 900x900. A view the user moved is left alone.
export function refitForMap(state, boxes, v, width, height, corners = CORNERS) {
  if (!state.auto || !corners) return false;
  return boxes.some((b) => onCorners(b, v, width, height, { ...corners, top: 0 }));
}

// readableViewport with the nodes clear of the minimap and zoom buttons (`corners`: false when they are hidden):
// of a strip on the right and a band between the buttons and the minimap, the one that keeps the nodes off both
// (a graph wider than the canvas at the readable zoom overflows to the right: in the strip its right end would sit
// under the minimap), else the one with the larger zoom.
export function clearViewport(bounds, width, height, opts = {}, corners = CORNERS) {
  if (!corners) return readableViewport(bounds, width, height, opts);
  const pad = opts.padding || {};
  const strip = readableViewport(bounds, width, height, { ...opts, padding: { ...pad, right: Math.max(pad.right ?? 0, corners.right) } });
  const band = readableViewport(bounds, width, height, {
    ...opts,
    padding: { ...pad, top: Math.max(pad.top ?? 0, corners.top), bottom: Math.max(pad.bottom ?? 0, corners.bottom) },
  });
  const clear = [strip, band].filter((v) => !onCorners(bounds, v, width, height, corners));
  if (clear.length === 1) return clear[0];
  return band.zoom > strip.zoom + 1e-6 ? band : strip;
}

// How much of the canvas's right side (screen px) panels floating over it hide: `flow` and `panels` are
// client rects ({left, right, top, bottom}). A panel counts when it overlaps the canvas and reaches its right
// edge (the inspector floating over a narrow window); a fit then keeps the nodes left of it.
export function coveredRight(flow, panels) {
  let covered = 0;
  for (const p of panels || []) {
    const overlaps = p.left < flow.right && p.right > flow.left && p.top < flow.bottom && p.bottom > flow.top;
    if (overlaps && p.right >= flow.right - 1) covered = Math.max(covered, flow.right - Math.max(p.left, flow.left));
  }
  return Math.max(0, covered);
}

// How far (screen px) to pan the view so that a node just selected is not hidden by a panel floating over the
// canvas's right side (the inspector that opens for it on a narrow window sat on the very layer clicked).
// `node`, `flow`: client rects ({left, right}); `left`: the free canvas's left edge on screen (right of a palette
// floating over the canvas); `covered`: the width the panels hide on the right (coveredRight). Returns the x
// offset to add to the viewport (negative: the graph moves left), 0 when the node is clear of the panel or no
// panel covers the canvas. A node wider than the free part is aligned with its left edge.
export function revealDx(node, flow, left, covered, pad = 24) {
  if (!(covered > 0)) return 0;
  const freeRight = flow.right - covered - pad;
  const freeLeft = Math.max(flow.left, left) + pad;
  if (node.right <= freeRight) return 0;
  const dx = freeRight - node.right; // negative: move the graph left
  return node.left + dx < freeLeft ? freeLeft - node.left : dx;
}

// The viewport that shows `box` (flow coordinates) inside `free` (the canvas's uncovered part, in px from the
// canvas's top-left: {left, top, right, bottom}) at the same zoom, moved as little as possible, `pad` px inside
// its edges; null when the box is already shown there. A box larger than the free part is aligned top-left.
export function panToShow(box, v, free, pad = 24) {
  const shift = (lo, hi, a, b) => {
    if (a >= lo + pad && b <= hi - pad) return 0;
    if (b - a > hi - lo - 2 * pad || a < lo + pad) return lo + pad - a;
    return hi - pad - b;
  };
  const x0 = box.x * v.zoom + v.x;
  const y0 = box.y * v.zoom + v.y;
  const dx = shift(free.left, free.right, x0, x0 + box.width * v.zoom);
  const dy = shift(free.top, free.bottom, y0, y0 + box.height * v.zoom);
  return dx || dy ? { x: v.x + dx, y: v.y + dy, zoom: v.zoom } : null;
}

// The flow-coordinate rectangle ({x, y, width, height}) seen through the screen rectangle `free` (px from the
// canvas's top-left) with viewport `v`.
export function flowRect(free, v) {
  return {
    x: (free.left - v.x) / v.zoom,
    y: (free.top - v.y) / v.zoom,
    width: Math.max(0, free.right - free.left) / v.zoom,
    height: Math.max(0, free.bottom - free.top) / v.zoom,
  };
}
