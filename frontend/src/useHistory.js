// History hook: the pure reducers of history.js over a ref (the history must
// survive remounts through the page-level store, so it lives outside React state).
import { useCallback, useRef, useState } from 'react';
import * as H from './history.js';

export function useHistory(initial, getCurrent, restore) {
  const ref = useRef(initial || H.emptyHistory());
  const [tick, setTick] = useState(0);
  const bump = useCallback(() => setTick((t) => t + 1), []);

  const push = useCallback(
    (snap) => {
      const cur = getCurrent();
      ref.current = H.record(ref.current, snap || H.snapshotOf(cur.nodes, cur.edges));
      bump();
    },
    [getCurrent, bump],
  );

  const step = useCallback(
    (fn) => {
      const cur = getCurrent();
      const res = fn(ref.current, H.snapshotOf(cur.nodes, cur.edges));
      if (!res) return false;
      ref.current = res.history;
      restore(res.snapshot);
      bump();
      return true;
    },
    [getCurrent, restore, bump],
  );

  // another project on the canvas: its own history (the replaced project comes back through Python, whole)
  const reset = useCallback(() => {
    ref.current = H.emptyHistory();
    bump();
  }, [bump]);

  const undo = useCallback(() => step(H.undo), [step]);
  const redo = useCallback(() => step(H.redo), [step]);

  return { ref, push, reset, undo, redo, canUndo: ref.current.past.length > 0, canRedo: ref.current.future.length > 0, tick };
}
