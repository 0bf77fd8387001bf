// The status bar's verdict on the network (Overlays.jsx ProblemsBar).
// An empty canvas is no error: Python's validator reports "a graph needs at least one Input node" for it (true:
// it cannot train), and the bar showed it as a red "1 problem" on a canvas that had only just been made. It shows
// a neutral hint instead; the empty canvas's own card says how to start.
export const EMPTY_HINT = 'Empty network: add an Input layer to start';

// `problems`: the summary's problems (Python); `nodeCount`: the layers on the canvas. Returns {kind, text}: kind
// 'empty' (a neutral hint), 'problems' (the red button, `text` its words) or 'ok'.
export function problemStatus(problems, nodeCount) {
  if (!nodeCount) return { kind: 'empty', text: EMPTY_HINT };
  const n = Array.isArray(problems) ? problems.length : 0;
  if (n) return { kind: 'problems', text: `${n} problem${n === 1 ? '' : 's'}` };
  return { kind: 'ok', text: 'No problems' };
}
