import { describe, expect, it } from 'vitest';
import table from './counts.cases.json';
import { formatCount } from './graph.js';

describe('formatCount', () => {
  it('writes every count of the shared table as Python does (tests/graph/test_report_counts.py)', () => {
    for (const [n, text] of table.cases) expect(formatCount(n)).toBe(text);
  });

  it('is null for what is no count', () => {
    expect(formatCount(null)).toBeNull();
    expect(formatCount('x')).toBeNull();
    expect(formatCount('')).toBeNull();
  });
});
