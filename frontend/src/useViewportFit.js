// Viewport fit: the first view and Fit, made at the canvas's real size once its nodes are measured and its
// stylesheet applies, again when the size changes under an automatic fit, and clear of the page's panels that
// float over it (data.covers). The pure rules are in viewport.js; this hook holds the state and the effect.
import { useCallback, useEffect, useRef, useState } from 'react';
import { useNodesInitialized } from '@xyflow/react';
import { STYLE_WAIT_MS, hostStyled } from './styleGate.js';
import { CORNERS, FIT_ALL_ZOOM, FIT_PADDING, clearViewport, coveredRight, fitDue, refitForMap } from './viewport.js';
import { useElementSize } from './useSize.js';

export const VISIBLE_ONLY_ABOVE = 300; // render only the elements in the viewport above this many nodes
export const MINIMAP_FROM = 560; // the minimap is hidden in a canvas narrower than this (styles.css)

// `refs`: the flow element (flowRef), the nodes drawn (renderRef), the collapsed view (blocksRef), the minimap's
// state (mapOpenRef), the page's panels (coversRef) and the overlay palette's width (leftInsetRef). `mapOpen`: the
// minimap is shown (opening it over an automatic fit that put nodes under it fits again: viewport.js refitForMap).
export function useViewportFit({ rf, store, refs, glide, closeMenu, mapOpen }) {
  const { flowRef, renderRef, blocksRef, mapOpenRef, coversRef, leftInsetRef } = refs;
  // data-fitted on the flow element counts finished fits (tests wait for it instead of a margin or a sleep).
  // The count lives in the page-level store so it keeps rising across remounts of the host element, but a new
  // mount shows 0 until it has made its own first fit: Streamlit mounts the component again after a template pick
  // (the confirmation above the canvas) and after another page, and the new mount drew its graph for a frame or
  // more at React Flow's default view (zoom 1 at the origin) while showing the last mount's count, so a wait for
  // "a fit after this one" was over before the fit (the 900x900 layout test once read the GAN template's first
  // view with 0 of its 24 nodes in the window). Until that first fit the nodes are not shown (is-unfitted).
  const [fitted, setFitted] = useState(0);
  const fitSeqRef = useRef(store.fitSeq || 0);
  const markFitted = useCallback((seq) => {
    performance.mark?.('layerlab:canvas:fitted'); // the first one: the graph opened (bench/bench_canvas.py)
    setFitted(seq);
  }, []);
  // The view is fitted at the canvas's real size: a fit is made only when the canvas has a size and its nodes
  // are measured, and made again when the size changes under an automatic fit (viewport.js fitDue). A canvas
  // shown again after another page, or fitted while the page above it was still being laid out, otherwise
  // kept a view computed for another size (every node far below the visible area).
  const fitState = useRef({ wanted: true, auto: false, fitted: null });
  // How much of the canvas element `el`'s right side the page's panels floating over it hide now (data.covers:
  // the inspector on a narrow window).
  const coveredNow = useCallback((el) => {
    const panels = (coversRef.current || []).flatMap((sel) => {
      try {
        return [...document.querySelectorAll(sel)].map((e) => e.getBoundingClientRect()).filter((r) => r.width > 0 && r.height > 0);
      } catch {
        return []; // a selector the browser does not know
      }
    });
    return coveredRight(el.getBoundingClientRect(), panels);
  }, []);
  const flowSize = useElementSize(flowRef);
  // A new mount's stylesheet may not apply yet (styleGate.js keeps the host hidden meanwhile): the canvas and its
  // nodes are laid out unstyled, the flow ~3,700 px tall at 900x900, and a fit made then centred the GAN template
  // far below the window; it was made again once the styles applied, but it counted as the first view (the
  // layout test read 0 of 24 nodes in the window). A fit waits for the styles (checked each frame by the effect
  // below), never longer than the gate does.
  const [styleTick, setStyleTick] = useState(0);
  const styleWaitRef = useRef(null); // when a fit first waited for the styles
  const styledOrLate = useCallback((el) => {
    if (hostStyled(el)) return true;
    styleWaitRef.current ??= performance.now();
    return performance.now() - styleWaitRef.current >= STYLE_WAIT_MS;
  }, []);
  const initialView = useCallback(
    (duration = 0, all = false) => {
      const nds = renderRef.current.filter((n) => n.type !== 'frame' || !n.data.depth);
      const el = flowRef.current;
      const size = el ? { width: el.clientWidth, height: el.clientHeight } : null;
      if (nds.length && !fitDue({ wanted: true }, size, !el || styledOrLate(el))) {
        fitState.current = { ...fitState.current, wanted: true, all }; // made when the canvas has a size (the effect below)
        setStyleTick((t) => t + 1);
        return;
      }
      const seq = (fitSeqRef.current = Math.max(fitSeqRef.current, store.fitSeq || 0) + 1);
      store.fitSeq = seq;
      fitState.current = { wanted: false, auto: true, fitted: size, all };
      if (!nds.length || !el) {
        markFitted(seq);
        return;
      }
      const b = rf.getNodesBounds(nds);
      const right = coveredNow(el);
      const padding = { left: FIT_PADDING.left + leftInsetRef.current, ...(right ? { right: FIT_PADDING.right + right } : {}) };
      // a collapsed view is an overview: fit more of it (block names are large enough at 0.6); Fit shows it all
      const minZoom = all ? FIT_ALL_ZOOM : blocksRef.current ? 0.6 : undefined;
      const corners = mapOpenRef.current && size.width >= MINIMAP_FROM ? CORNERS : false;
      const v = clearViewport(b, size.width, size.height, { padding, ...(minZoom ? { minZoom } : {}) }, corners);
      const cur = rf.getViewport();
      const same = Math.abs(cur.x - v.x) < 0.5 && Math.abs(cur.y - v.y) < 0.5 && Math.abs(cur.zoom - v.zoom) < 1e-3;
      const done = duration && !same ? glide(() => rf.setViewport(v, { duration })) : Promise.resolve(rf.setViewport(v));
      done.then(() => setTimeout(() => markFitted(seq), 0));
    },
    [rf, store, markFitted, glide, coveredNow, styledOrLate],
  );
  const nodesInitialized = useNodesInitialized();
  const [fitTick, setFitTick] = useState(0); // a replaced graph asks for a fit (the effect below makes it)
  const viewDone = useRef(false);
  useEffect(() => {
    // every node shown is in React Flow's store and measured (a replaced graph: not yet in the first render)
    const measured = nodesInitialized && renderRef.current.every((n) => rf.getInternalNode(n.id)?.measured?.width);
    if (!fitDue(fitState.current, flowSize, measured)) return undefined;
    if (flowRef.current && !styledOrLate(flowRef.current)) {
      const id = requestAnimationFrame(() => setStyleTick((t) => t + 1));
      return () => cancelAnimationFrame(id);
    }
    if (!viewDone.current) {
      viewDone.current = true;
      performance.mark?.('layerlab:canvas:visible'); // nodes measured and shown (bench/bench_startup.py)
    }
    initialView(0, !!fitState.current.all); // the same kind of fit again: readable, or the whole graph after Fit
    return undefined;
  }, [nodesInitialized, initialView, flowSize, fitTick, styleTick, rf, styledOrLate]);
  useEffect(() => {
    const el = flowRef.current;
    if (!mapOpen || !el || el.clientWidth < MINIMAP_FROM) return;
    const boxes = renderRef.current.filter((n) => n.type !== 'frame').map((n) => rf.getNodesBounds([n]));
    // as Fit does (a readable first view of the VAE at 1440x900 could not clear the corner at its zoom)
    if (refitForMap(fitState.current, boxes, rf.getViewport(), el.clientWidth, el.clientHeight)) initialView(250, renderRef.current.length <= VISIBLE_ONLY_ABOVE);
  }, [mapOpen]); // eslint-disable-line react-hooks/exhaustive-deps
  const userMoved = useCallback(() => {
    fitState.current.auto = false; // the user's own view is kept when the canvas is resized
  }, []);
  const fit = useCallback(() => {
    // the whole graph, unless it is too big to draw all at once (then the readable view from its input side)
    initialView(250, renderRef.current.length <= VISIBLE_ONLY_ABOVE);
    closeMenu();
  }, [initialView, closeMenu]);
  // what the hint under the canvas needs (useViewHint.js: some of the graph lies outside the first view)
  const viewHint = { fitted, fitState, refs, coveredNow };
  return { fitted, fitState, setFitTick, initialView, userMoved, fit, coveredNow, viewHint };
}
