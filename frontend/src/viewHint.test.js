import { describe, expect, it } from 'vitest';
import { CORNERS, READABLE_ZOOM, readableViewport } from './viewport.js';
import { countInView, hintDue, hintWords } from './viewHint.js';

// a chain of `n` 200 x 90 nodes, 260 px apart (a template's row)
const chain = (n) => Array.from({ length: n }, (_, i) => ({ x: i * 260, y: 0, width: 200, height: 90 }));
const bounds = (boxes) => ({
  x: Math.min(...boxes.map((b) => b.x)),
  y: Math.min(...boxes.map((b) => b.y)),
  width: Math.max(...boxes.map((b) => b.x + b.width)) - Math.min(...boxes.map((b) => b.x)),
  height: Math.max(...boxes.map((b) => b.y + b.height)) - Math.min(...boxes.map((b) => b.y)),
});

describe('what counts as in view', () => {
  const area = { width: 850, height: 560, left: 0, right: 0, corners: false };
  it('counts the boxes shown whole', () => {
    const v = { x: 10, y: 10, zoom: 1 };
    // at zoom 1 from x=10: boxes end at 210, 470, 730, 990 (cut), 1250 (out)
    expect(countInView(chain(5), v, area)).toEqual({ inView: 3, total: 5 });
  });
  it('a box cut by an edge is not in view; one within 1 px of it is', () => {
    expect(countInView([{ x: 0, y: 0, width: 100, height: 50 }], { x: 751, y: 0, zoom: 1 }, area).inView).toBe(1);
    expect(countInView([{ x: 0, y: 0, width: 100, height: 50 }], { x: 752, y: 0, zoom: 1 }, area).inView).toBe(0);
    expect(countInView([{ x: 0, y: 0, width: 100, height: 50 }], { x: 10, y: -5, zoom: 1 }, area).inView).toBe(0);
    expect(countInView([{ x: 0, y: 0, width: 100, height: 50 }], { x: 10, y: 520, zoom: 1 }, area).inView).toBe(0);
  });
  it('a box under the floating palette, under a panel over the right side, or under the open minimap is not in view', () => {
    const box = [{ x: 0, y: 0, width: 100, height: 50 }];
    expect(countInView(box, { x: 100, y: 10, zoom: 1 }, { ...area, left: 232 }).inView).toBe(0);
    expect(countInView(box, { x: 240, y: 10, zoom: 1 }, { ...area, left: 232 }).inView).toBe(1);
    expect(countInView(box, { x: 600, y: 10, zoom: 1 }, { ...area, right: 300 }).inView).toBe(0);
    const corner = { x: 700, y: 480, zoom: 1 }; // bottom right
    expect(countInView(box, corner, area).inView).toBe(1);
    expect(countInView(box, corner, { ...area, corners: CORNERS }).inView).toBe(0);
  });
  it('uses the zoom: the same boxes at a smaller zoom are all in view', () => {
    expect(countInView(chain(5), { x: 10, y: 10, zoom: 0.6 }, area)).toEqual({ inView: 5, total: 5 });
  });
  it('the readable first view of a long chain leaves nodes out; a graph that fits has them all in view', () => {
    const long = chain(24);
    const v = readableViewport(bounds(long), 850, 560, { padding: { left: 28 + 232 } });
    expect(v.zoom).toBe(READABLE_ZOOM);
    const c = countInView(long, v, { ...area, left: 232 });
    expect(c.total).toBe(24);
    expect(c.inView).toBeGreaterThan(0);
    expect(c.inView).toBeLessThan(24);
    const small = chain(3);
    expect(countInView(small, readableViewport(bounds(small), 850, 560, { padding: { left: 28 + 232 } }), { ...area, left: 232 })).toEqual({ inView: 3, total: 3 });
  });
});

describe('when the hint is due', () => {
  it('only while armed by an automatic fit and some node is out of view', () => {
    expect(hintDue(true, { inView: 9, total: 24 })).toBe(true);
    expect(hintDue(false, { inView: 9, total: 24 })).toBe(false); // the user's own view, or Fit's
    expect(hintDue(true, { inView: 24, total: 24 })).toBe(false); // the graph fits
    expect(hintDue(true, { inView: 0, total: 0 })).toBe(false); // an empty canvas
  });
});

describe('the words', () => {
  it('says how many layers are in view and how to see all', () => {
    expect(hintWords({ inView: 9, total: 24 })).toEqual({ text: '9 of 24 layers in view', action: 'Fit to see all', rest: null });
    expect(hintWords({ inView: 0, total: 1 }).text).toBe('0 of 1 layer in view');
  });
  it('names blocks in the collapsed view', () => {
    expect(hintWords({ inView: 4, total: 12 }, { blocks: true }).text).toBe('4 of 12 blocks and layers in view');
  });
  it('does not promise that Fit shows all when it shows the readable view (a graph too big to draw at once)', () => {
    const w = hintWords({ inView: 30, total: 400 }, { fitShowsAll: false });
    expect(w.action).toBeNull();
    expect(w.rest).toBe('drag the canvas to see the rest');
  });
  it('says nothing when every node is in view', () => {
    expect(hintWords({ inView: 24, total: 24 })).toBeNull();
    expect(hintWords({ inView: 0, total: 0 })).toBeNull();
  });
});
