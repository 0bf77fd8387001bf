import { describe, expect, it } from 'vitest';
import { actionFor, keyTargetsCanvas, SHORTCUTS } from './keyboard.js';

const key = (k, mods = {}) => ({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods });

describe('keyboard', () => {
  it('maps keys to actions', () => {
    expect(actionFor(key('Escape'))).toBe('clear');
    expect(actionFor(key('a', { ctrlKey: true }))).toBe('selectAll');
    expect(actionFor(key('A', { metaKey: true, shiftKey: false }))).toBe('selectAll');
    expect(actionFor(key('z', { ctrlKey: true }))).toBe('undo');
    expect(actionFor(key('Z', { ctrlKey: true, shiftKey: true }))).toBe('redo');
    expect(actionFor(key('y', { ctrlKey: true }))).toBe('redo');
    expect(actionFor(key('v', { ctrlKey: true }))).toBe('paste');
    expect(actionFor(key('Delete'))).toBe('delete');
    expect(actionFor(key('Backspace'))).toBe('delete');
    expect(actionFor(key('?', { shiftKey: true }))).toBe('help');
    expect(actionFor(key('f'))).toBe('fit');
    expect(actionFor(key('a'))).toBeNull();
    expect(actionFor(key('c', { altKey: true, ctrlKey: true }))).toBeNull();
  });

  it('every action has a help entry', () => {
    const listed = new Set(SHORTCUTS.map((s) => s.action));
    for (const k of ['Escape', 'Delete', '?', 'f']) expect(listed.has(actionFor(key(k)))).toBe(true);
    for (const k of ['a', 'z', 'y', 'c', 'x', 'v', 'd']) expect(listed.has(actionFor(key(k, { ctrlKey: true })))).toBe(true);
  });

  it('keys reach a visible canvas without a first click, never while typing', () => {
    expect(keyTargetsCanvas({ typing: false, active: false, bodyFocused: true, visible: true })).toBe(true);
    expect(keyTargetsCanvas({ typing: true, active: true, bodyFocused: true, visible: true })).toBe(false);
    expect(keyTargetsCanvas({ typing: false, active: false, bodyFocused: false, visible: true })).toBe(false);
    expect(keyTargetsCanvas({ typing: false, active: false, bodyFocused: true, visible: false })).toBe(false);
    expect(keyTargetsCanvas({ typing: false, active: true, bodyFocused: false, visible: true })).toBe(true);
  });
});
