import { describe, expect, it } from 'vitest';
import { EMPTY_HINT, problemStatus } from './summary.js';

describe('the status bar verdict', () => {
  const noInput = { node: null, edge: null, message: 'a graph needs at least one Input node; received: none.' };
  it('an empty canvas shows a neutral hint, not "1 problem" (Build › New showed a red badge)', () => {
    expect(problemStatus([noInput], 0)).toEqual({ kind: 'empty', text: EMPTY_HINT });
    expect(problemStatus([], 0).kind).toBe('empty');
  });
  it('counts the problems of a network with layers', () => {
    expect(problemStatus([noInput], 1)).toEqual({ kind: 'problems', text: '1 problem' });
    expect(problemStatus([noInput, noInput], 3).text).toBe('2 problems');
    expect(problemStatus([], 3)).toEqual({ kind: 'ok', text: 'No problems' });
  });
});
