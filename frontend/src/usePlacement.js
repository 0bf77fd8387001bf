// Click-to-add placement: where a layer clicked in the palette lands (placement.js clickPlacement, in the visible
// part of the canvas not under the palette or the page's floating panels) and the pan that shows it
// (viewport.js panToShow). Remembers the node added last: the next click puts its layer beside it.
import { useCallback, useRef } from 'react';
import { anchorFor, clickPlacement } from './placement.js';
import { flowRect, panToShow } from './viewport.js';

export function usePlacement({ rf, flowRef, renderRef, primaryRef, leftInsetRef, coveredNow, glide, userMoved }) {
  const lastRef = useRef(null);
  // the canvas's uncovered part, in px from its top-left (null before it is laid out)
  const freeArea = useCallback(() => {
    const el = flowRef.current;
    if (!el || !el.clientWidth) return null;
    return { left: leftInsetRef.current, top: 0, right: el.clientWidth - coveredNow(el), bottom: el.clientHeight };
  }, [flowRef, leftInsetRef, coveredNow]);
  // The top-left corner (flow coordinates) for a new box of `size` ({width, height}).
  const place = useCallback(
    (size) => {
      const free = freeArea();
      const nodes = renderRef.current;
      const view = free ? flowRect(free, rf.getViewport()) : null;
      return clickPlacement(nodes, anchorFor(nodes, primaryRef.current, lastRef.current), view, size);
    },
    [rf, freeArea, renderRef, primaryRef],
  );
  // Pan (same zoom) so that `box` (flow coordinates) is in view; nothing when it is.
  const reveal = useCallback(
    (box) => {
      const free = freeArea();
      const next = free && panToShow(box, rf.getViewport(), free);
      if (!next) return;
      userMoved();
      glide(() => rf.setViewport(next, { duration: 200 }));
    },
    [rf, freeArea, glide, userMoved],
  );
  const added = useCallback((id) => {
    if (id) lastRef.current = id;
  }, []);
  return { place, reveal, added };
}
