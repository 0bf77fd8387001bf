"""DOM measurements of the canvas shared by the browser tests: sizes as the user sees them (after zoom)."""

from __future__ import annotations

# For every node: the smallest effective font size (CSS px on screen) among its title, type, params, port
# names and shape, and the smallest port hit box (handle bounding box on screen). Effective size = computed
# font size x (on-screen height / layout height), i.e. the React Flow zoom and any transform included.
MEASURE_JS = """
() => {
  const hosts = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')];
  const roots = hosts.map((h) => h.shadowRoot).filter(Boolean);
  const root = roots.find((r) => r.querySelector('.ll-root'));
  if (!root) return null;
  const flow = root.querySelector('.ll-flow').getBoundingClientRect();
  const out = { flow: { x: flow.x, y: flow.y, width: flow.width, height: flow.height },
                zoom: Number(root.querySelector('.ll-flow').dataset.zoom), nodes: [] };
  const eff = (el) => {
    const r = el.getBoundingClientRect();
    const h = el.offsetHeight || 1;
    return parseFloat(getComputedStyle(el).fontSize) * (r.height / h);
  };
  for (const n of root.querySelectorAll('.ll-node')) {
    const texts = [...n.querySelectorAll('.ll-node-title, .ll-node-type, .ll-node-params, .ll-port-name, .ll-node-shape')]
      .filter((el) => el.offsetHeight > 0);
    const handles = [...n.parentElement.querySelectorAll('.react-flow__handle')].map((h) => h.getBoundingClientRect());
    const r = n.getBoundingClientRect();
    out.nodes.push({ id: n.dataset.nodeId, minFont: Math.min(...texts.map(eff)),
      minPort: handles.length ? Math.min(...handles.map((b) => Math.min(b.width, b.height))) : null,
      box: { x: r.x, y: r.y, width: r.width, height: r.height } });
  }
  return out;
}
"""


def measure(page) -> dict | None:
    """Canvas geometry, zoom and per-node effective text/port sizes (see MEASURE_JS)."""
    return page.evaluate(MEASURE_JS)
