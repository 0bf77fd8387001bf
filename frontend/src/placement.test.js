import { describe, expect, it } from 'vitest';
import { GAP, NODE_SIZE, anchorFor, boxOf, clickPlacement, crowds } from './placement.js';
import { flowRect, panToShow } from './viewport.js';

const node = (id, x, y, extra = {}) => ({ id, type: 'layer', position: { x, y }, measured: { width: 200, height: 96 }, ...extra });
const clear = (p, nodes) => nodes.every((n) => !crowds({ ...p, ...NODE_SIZE }, boxOf(n), 0));
const VIEW = { x: 0, y: 0, width: 1000, height: 600 };

describe('click-to-add placement', () => {
  it('puts the first layer at the centre of the visible area', () => {
    expect(clickPlacement([], null, VIEW)).toEqual({ x: 400, y: 245 });
  });
  it('puts the next layer right of the one selected (Input then Linear: linear_1 covered input_1)', () => {
    const nodes = [node('input_1', 400, 245, { selected: true })];
    const p = clickPlacement(nodes, anchorFor(nodes, 'input_1', null), VIEW);
    expect(p).toEqual({ x: 400 + 200 + GAP, y: 245 });
    expect(clear(p, nodes)).toBe(true);
  });
  it('goes below the anchor when its right side is taken or out of view', () => {
    const nodes = [node('a', 700, 100, { selected: true }), node('b', 100, 100)];
    const p = clickPlacement(nodes, 'a', VIEW);
    expect(p).toEqual({ x: 700, y: 100 + 96 + GAP });
  });
  it('with nothing selected, never lands on a node (a Linear clicked on the CNN template covered flatten)', () => {
    // the CNN template's grid: 3 columns by 4 rows filling the view's middle
    const nodes = [];
    for (let r = 0; r < 4; r += 1) for (let c = 0; c < 3; c += 1) nodes.push(node(`n${r}${c}`, 200 + c * 260, 40 + r * 140));
    const p = clickPlacement(nodes, null, VIEW);
    expect(clear(p, nodes)).toBe(true);
    expect(nodes.every((n) => !crowds({ ...p, ...NODE_SIZE }, boxOf(n)))).toBe(true);
  });
  it('falls back to below the graph when the view has no free spot', () => {
    const nodes = [];
    for (let r = 0; r < 6; r += 1) for (let c = 0; c < 6; c += 1) nodes.push(node(`n${r}${c}`, c * 220, r * 110));
    const p = clickPlacement(nodes, null, VIEW);
    expect(clear(p, nodes)).toBe(true);
    expect(p.y).toBeGreaterThanOrEqual(5 * 110 + 96);
  });
  it('anchors on the primary selection, else a selected node, else the one added last', () => {
    const nodes = [node('a', 0, 0, { selected: true }), node('b', 300, 0, { selected: true }), node('c', 600, 0)];
    expect(anchorFor(nodes, 'a', 'c')).toBe('a');
    expect(anchorFor(nodes, 'x', 'c')).toBe('b');
    expect(anchorFor(nodes.map((n) => ({ ...n, selected: false })), null, 'c')).toBe('c');
    expect(anchorFor(nodes.map((n) => ({ ...n, selected: false })), null, 'gone')).toBe(null);
  });
});

describe('showing the placed layer', () => {
  const free = { left: 232, top: 0, right: 900, bottom: 500 };
  it('leaves the view alone when the box is in view', () => {
    expect(panToShow({ x: 300, y: 100, width: 200, height: 96 }, { x: 0, y: 0, zoom: 1 }, free)).toBe(null);
  });
  it('pans the least that brings the box into the free area', () => {
    expect(panToShow({ x: 950, y: 100, width: 200, height: 96 }, { x: 0, y: 0, zoom: 1 }, free)).toEqual({ x: -274, y: 0, zoom: 1 });
    expect(panToShow({ x: 100, y: 600, width: 200, height: 96 }, { x: 0, y: 0, zoom: 0.5 }, free)).toEqual({ x: 206, y: 0, zoom: 0.5 });
  });
  it('maps the free screen area to flow coordinates', () => {
    expect(flowRect(free, { x: -100, y: 50, zoom: 2 })).toEqual({ x: 166, y: -25, width: 334, height: 250 });
  });
});
