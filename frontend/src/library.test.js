import { describe, expect, it } from 'vitest';
import { entryLabel, libraryEvent } from './library.js';

describe('library palette entries', () => {
  const bert = { type: 'library:tiny-bert', label: 'tiny-bert', category: 'Pretrained', library: { name: 'tiny-bert', size: '4.4k params' } };
  it('show their name, not their palette type', () => {
    expect(entryLabel(bert)).toBe('tiny-bert');
    expect(entryLabel({ type: 'Linear' })).toBe('Linear');
  });
  it('send a one-shot import event by name; layers send none', () => {
    expect(libraryEvent(bert, 7)).toEqual({ type: 'library', name: 'tiny-bert', nonce: 7 });
    expect(libraryEvent(bert, 8)).not.toEqual(libraryEvent(bert, 7));
    expect(libraryEvent({ type: 'Linear', category: 'Dense' }, 1)).toBeNull();
    expect(libraryEvent({ type: 'x', library: { name: '' } }, 1)).toBeNull();
  });
});
