// The initial / "Fit" viewport. Fitting a long graph into a small canvas would
// make text unreadable, so the zoom never goes below READABLE_ZOOM: a graph
// that does not fit at that zoom is shown from its input side (left, centred
// vertically when it fits in height) and the user pans or scrolls to the rest.

// At 0.92, the smallest node text (12 px) renders at >= 11 px.
export const READABLE_ZOOM = 0.92;
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
// The minimap (bottom-right, with its margins) and the zoom buttons (top-right) sit over the canvas: a fit keeps
// nodes off them, either in a strip on the right (clear of both) or below the buttons and above the minimap,
// whichever leaves the larger zoom.
export const CORNERS = { right: 204, top: 54, bottom: 150 };

// readableViewport with the nodes clear of the minimap and zoom buttons (`corners`: false when they are hidden).
export function clearViewport(bounds, width, height, opts = {}, corners = CORNERS) {
  if (!corners) return readableViewport(bounds, width, height, opts);
  const pad = opts.padding || {};
  const strip = readableViewport(bounds, width, height, { ...opts, padding: { ...pad, right: Math.max(pad.right ?? 0, corners.right) } });
  const band = readableViewport(bounds, width, height, {
    ...opts,
    padding: { ...pad, top: Math.max(pad.top ?? 0, corners.top), bottom: Math.max(pad.bottom ?? 0, corners.bottom) },
  });
  return band.zoom > strip.zoom + 1e-6 ? band : strip;
}
