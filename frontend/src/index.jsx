// Streamlit components v2 entry point. Streamlit calls the default export on
// mount and again on every data change (with the same parentElement, a shadow
// root) and keeps only the last cleanup function. We keep one React root per
// host element and re-render into it.
import { createRoot } from 'react-dom/client';
import '@xyflow/react/dist/style.css';
import './styles.css';
import App from './App.jsx';
import { decodeData } from './sync.js';
import { gateUntilStyled, hostStyled } from './styleGate.js';

const mounts = new WeakMap(); // parentElement -> { root, host, api, unmountTimer }
const stores = new Map(); // Python key -> live editing state (survives remounts)

export default function mountGraphCanvas(component) {
  const { data, parentElement, setStateValue } = component;
  performance.mark?.('layerlab:canvas:data');
  let entry = mounts.get(parentElement);
  if (!entry) {
    const host = document.createElement('div');
    host.className = 'll-host';
    parentElement.appendChild(host);
    // hidden until Streamlit's stylesheet link in this new shadow root has loaded (styleGate.js)
    const ungate = gateUntilStyled(host, () => hostStyled(host), (fn) => requestAnimationFrame(fn), () => performance.now());
    entry = { root: createRoot(host), host, api: {}, unmountTimer: null, ungate };
    mounts.set(parentElement, entry);
  }
  clearTimeout(entry.unmountTimer);
  entry.unmountTimer = null;
  entry.api.setStateValue = setStateValue;

  const d = decodeData(data, entry.decoded || (entry.decoded = new Map()));
  const key = String(d.key ?? 'canvas');
  if (!stores.has(key)) stores.set(key, {});
  entry.root.render(<App data={d} api={entry.api} store={stores.get(key)} />);

  // A late cleanup from an earlier call may arrive right before the next call:
  // defer the unmount so that a re-render cancels it.
  return () => {
    const e = mounts.get(parentElement);
    if (!e) return;
    clearTimeout(e.unmountTimer);
    e.unmountTimer = setTimeout(() => {
      e.ungate();
      e.root.unmount();
      e.host.remove();
      mounts.delete(parentElement);
    }, 100);
  };
}
