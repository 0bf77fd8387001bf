// The hint that the first view leaves part of the graph outside the canvas (issue 29 item 14: the first view of
// ResNet or GAN, 24 nodes each, showed a few of them at the readable zoom and nothing said more lay outside): what
// counts as in view, when the hint is due, and its words. useViewHint.js holds the state; Overlays.jsx draws it.
import { onCorners } from './viewport.js';

// How many of `boxes` (the nodes' boxes, flow coordinates) the canvas shows whole with viewport `v`. `area`: the
// canvas's size {width, height} in px, the width a palette floating over its left side hides (`left`), the width
// panels floating over its right side hide (`right`, viewport.js coveredRight) and the minimap's corner
// (`corners`: viewport.js CORNERS, or false when it is closed). A node cut by an edge or under the minimap is not
// in view; `tol` px over an edge is (the browser tests measure whole boxes on screen the same way).
// Returns {inView, total}.
export function countInView(boxes, v, area, tol = 1) {
  const x0 = (area.left || 0) - tol;
  const x1 = area.width - (area.right || 0) + tol;
  const y1 = area.height + tol;
  let inView = 0;
  for (const b of boxes) {
    const left = b.x * v.zoom + v.x;
    const top = b.y * v.zoom + v.y;
    const whole = left >= x0 && left + b.width * v.zoom <= x1 && top >= -tol && top + b.height * v.zoom <= y1;
    if (whole && !(area.corners && onCorners(b, v, area.width, area.height, { ...area.corners, top: 0 }))) inView += 1;
  }
  return { inView, total: boxes.length };
}

// Is the hint still due? `armed`: the view is an automatic readable fit (the first view, or the same fit made again
// at a new size), or the user's pans and zooms since; `count`: countInView now. Once every node has been in view
// (the graph fits, Fit was pressed, or the user panned over the rest) the hint has said what it had to say: it
// stays away until the next automatic fit, even when the user pans part of the graph out of view again.
export function hintDue(armed, count) {
  return !!armed && count.total > 0 && count.inView < count.total;
}

// The hint's words: {text, action} ("9 of 24 layers in view", "Fit to see all"), or null when `count` has every
// node in view. `blocks`: the collapsed view is shown (it draws blocks beside layers); `fitShowsAll`: Fit shows the
// whole graph (above useViewportFit.js VISIBLE_ONLY_ABOVE nodes it shows the readable view instead, and saying "Fit
// to see all" would be untrue: the hint says to drag the canvas).
export function hintWords(count, { blocks = false, fitShowsAll = true } = {}) {
  if (!(count.total > 0) || count.inView >= count.total) return null;
  const noun = blocks ? 'blocks and layers' : count.total === 1 ? 'layer' : 'layers';
  return {
    text: `${count.inView} of ${count.total} ${noun} in view`,
    action: fitShowsAll ? 'Fit to see all' : null,
    rest: fitShowsAll ? null : 'drag the canvas to see the rest',
  };
}
