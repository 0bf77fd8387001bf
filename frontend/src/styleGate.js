// Keep the canvas hidden until its stylesheet applies. Streamlit adds the component's CSS as a <link> in a new
// shadow root whenever it mounts the component again (another page and back; a template picked while a
// confirmation above the canvas shifts the page's elements), and the browser paints before the link loads: the
// palette, toolbar and node text showed for a frame or more as a page of raw buttons and text (caught in a
// 1440x900 screenshot after a template pick). styles.css sets STYLED_VAR on the host; until it reads '1' the
// host is hidden (its size kept, so nothing below jumps), and shown after `limitMs` whatever happens.
export const STYLED_VAR = '--ll-styled';
export const STYLE_WAIT_MS = 3000;

// host: the element to hide; isStyled(): whether the stylesheet applies now; schedule(fn): the next frame
// (requestAnimationFrame); now(): milliseconds. Returns a function that stops waiting (and shows the host).
export function gateUntilStyled(host, isStyled, schedule, now, limitMs = STYLE_WAIT_MS) {
  if (isStyled()) {
    host.style.visibility = '';
    return () => {};
  }
  host.style.visibility = 'hidden';
  const start = now();
  let done = false;
  const show = () => {
    done = true;
    host.style.visibility = '';
  };
  const check = () => {
    if (done) return;
    if (isStyled() || now() - start >= limitMs) show();
    else schedule(check);
  };
  schedule(check);
  return show;
}

// Whether the stylesheet applies to `host` (its computed STYLED_VAR).
export function hostStyled(host) {
  try {
    return getComputedStyle(host).getPropertyValue(STYLED_VAR).trim() === '1';
  } catch {
    return true; // no computed style (detached, a test DOM): never keep it hidden
  }
}
