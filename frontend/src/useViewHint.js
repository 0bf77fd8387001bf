// The "9 of 24 layers in view · Fit to see all" hint under the canvas: armed by each automatic readable fit, counted
// again as the view moves, gone for good once every node has been in view. The rules are in viewHint.js.
import { useEffect, useState } from 'react';
import { useReactFlow, useStore } from '@xyflow/react';
import { CORNERS } from './viewport.js';
import { countInView, hintDue, hintWords } from './viewHint.js';
import { MINIMAP_FROM, VISIBLE_ONLY_ABOVE } from './useViewportFit.js';

const NONE = { inView: 0, total: 0 };

// `source`: what useViewportFit returns as `viewHint` ({fitted: the count of finished fits, fitState: its fit state
// (`all`: the last fit was Fit's whole graph; `wanted`: a fit is due), refs, coveredNow}). Returns hintWords's
// {text, action, rest}, or null when no hint is due. Call it from a small component: it re-renders on every pan
// frame while armed (the canvas does not).
export function useViewHint({ fitted, fitState, refs, coveredNow }) {
  const { flowRef, renderRef, leftInsetRef, mapOpenRef } = refs;
  const rf = useReactFlow();
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (fitted) setArmed(!fitState.current.all); // the first view (or its refit at a new size): readable, maybe cut
  }, [fitted, fitState]);
  const transform = useStore((s) => (armed ? s.transform : null)); // no re-render on a pan once disarmed
  const el = flowRef.current;
  const nodes = armed && transform && el ? renderRef.current.filter((n) => n.type !== 'frame') : [];
  const count = nodes.length
    ? countInView(
        nodes.map((n) => rf.getNodesBounds([n])),
        { x: transform[0], y: transform[1], zoom: transform[2] },
        {
          width: el.clientWidth,
          height: el.clientHeight,
          left: leftInsetRef.current,
          right: coveredNow(el),
          corners: mapOpenRef.current && el.clientWidth >= MINIMAP_FROM ? CORNERS : false,
        },
      )
    : NONE;
  const due = hintDue(armed, count);
  useEffect(() => {
    if (armed && !due) setArmed(false); // everything has been in view: the hint has done its job
  }, [armed, due]);
  // a fit on its way (Fit pressed: its glide runs; a new graph: its first view is due) ends the hint at once
  if (!due || fitState.current.all || fitState.current.wanted) return null;
  return hintWords(count, { blocks: nodes.some((n) => n.type === 'block'), fitShowsAll: renderRef.current.length <= VISIBLE_ONLY_ABOVE });
}
