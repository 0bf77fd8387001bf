// Per-node / per-edge annotation store. Python sends the whole annotation
// table on every rerun; only nodes and edges whose annotation actually changed
// re-render (useSyncExternalStore keyed by id).
import { useCallback, useSyncExternalStore } from 'react';

const EMPTY = Object.freeze({});

export function createAnnotationStore() {
  const tables = { nodes: new Map(), edges: new Map() };
  const texts = { nodes: new Map(), edges: new Map() };
  const listeners = { nodes: new Map(), edges: new Map() };

  function notify(kind, id) {
    const set = listeners[kind].get(id);
    if (set) for (const fn of set) fn();
  }

  function update(kind, incoming) {
    const obj = incoming && typeof incoming === 'object' ? incoming : {};
    const seen = new Set();
    for (const [id, value] of Object.entries(obj)) {
      seen.add(id);
      const text = JSON.stringify(value);
      if (texts[kind].get(id) !== text) {
        texts[kind].set(id, text);
        tables[kind].set(id, value && typeof value === 'object' ? value : EMPTY);
        notify(kind, id);
      }
    }
    for (const id of [...tables[kind].keys()]) {
      if (!seen.has(id)) {
        tables[kind].delete(id);
        texts[kind].delete(id);
        notify(kind, id);
      }
    }
  }

  return {
    set(annotations) {
      update('nodes', annotations?.nodes);
      update('edges', annotations?.edges);
    },
    get(kind, id) {
      return tables[kind].get(id) || EMPTY;
    },
    subscribe(kind, id, fn) {
      if (!listeners[kind].has(id)) listeners[kind].set(id, new Set());
      listeners[kind].get(id).add(fn);
      return () => listeners[kind].get(id)?.delete(fn);
    },
  };
}

export function useAnnotation(store, kind, id) {
  const subscribe = useCallback((fn) => store.subscribe(kind, id, fn), [store, kind, id]);
  const get = useCallback(() => store.get(kind, id), [store, kind, id]);
  return useSyncExternalStore(subscribe, get, get);
}
