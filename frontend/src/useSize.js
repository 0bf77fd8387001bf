// Size hooks for the widget: its height (fills the window with `fill`) and its width.
import { useLayoutEffect, useState } from 'react';

// Height of the widget: `minHeight` at least; with `fill`, down to the bottom of
// the window (the canvas takes the page).
export function useFillHeight(rootRef, minHeight, fill) {
  const [height, setHeight] = useState(minHeight);
  useLayoutEffect(() => {
    if (!fill) {
      setHeight(minHeight);
      return undefined;
    }
    const measure = () => {
      const el = rootRef.current;
      if (!el) return;
      const top = el.getBoundingClientRect().top + (document.scrollingElement?.scrollTop || 0);
      let scroller = el.parentNode;
      let extra = 0;
      while (scroller) {
        if (scroller.nodeType === 11) scroller = scroller.host; // out of the shadow root
        if (!scroller || scroller.nodeType !== 1) break;
        if (scroller.scrollHeight > scroller.clientHeight && /(auto|scroll)/.test(getComputedStyle(scroller).overflowY)) {
          extra = scroller.scrollTop;
          break;
        }
        scroller = scroller.parentNode;
      }
      setHeight(Math.max(minHeight, Math.round(window.innerHeight - (top + extra) - 12)));
    };
    measure();
    window.addEventListener('resize', measure);
    // the page above the canvas changes height (a guide hidden, an error shown): measure again
    const page = document.querySelector('[data-testid="stMainBlockContainer"]') || document.body;
    const ro = typeof ResizeObserver === 'function' ? new ResizeObserver(measure) : null;
    ro?.observe(page);
    return () => {
      window.removeEventListener('resize', measure);
      ro?.disconnect();
    };
  }, [rootRef, minHeight, fill]);
  return height;
}

export function useWidth(ref) {
  const [w, setW] = useState(1200);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    setW(el.clientWidth || 1200);
    const ro = new ResizeObserver(() => setW(el.clientWidth || 1200));
    ro.observe(el);
    return () => ro.disconnect();
  }, [ref]);
  return w;
}

// The element's own size ({width, height}, 0 x 0 while hidden or not laid out), kept up to date.
export function useElementSize(ref) {
  const [size, setSize] = useState({ width: 0, height: 0 });
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    const read = () =>
      setSize((s) => (s.width === el.clientWidth && s.height === el.clientHeight ? s : { width: el.clientWidth, height: el.clientHeight }));
    read();
    const ro = new ResizeObserver(read);
    ro.observe(el);
    return () => ro.disconnect();
  }, [ref]);
  return size;
}
