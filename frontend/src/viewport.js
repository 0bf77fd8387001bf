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
