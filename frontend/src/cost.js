// The cost overlay: which cost a node shows and how strongly it is tinted. Python computes the values
// (builder.graph.cost.cost_overlay): per node `cost: { mode: [text, share] }` and `summary.cost_modes`.
// Pure helpers; the Toolbar picks the mode, LayerNode shows the value and the tint.

export const COST_LABELS = {
  off: 'Cost: off',
  params: 'Parameters',
  macs: 'Multiply-adds',
  memory: 'Activation memory',
  latency: 'Measured latency',
};

// The modes the toolbar offers: 'off' and the ones Python sent values for (known ones, in its order).
export function costModes(summary) {
  const sent = Array.isArray(summary?.cost_modes) ? summary.cost_modes : [];
  return ['off', ...sent.filter((m) => m !== 'off' && Object.hasOwn(COST_LABELS, m))];
}

// The mode to show: the chosen one while Python still sends it, else 'off' (latency goes with its run).
export function activeMode(mode, modes) {
  return modes.includes(mode) ? mode : 'off';
}

// A node's value in a mode: { text, share } (share clamped to 0..1) or null when it has none.
export function costOf(ann, mode) {
  if (!mode || mode === 'off') return null;
  const entry = ann && typeof ann === 'object' && ann.cost && typeof ann.cost === 'object' ? ann.cost[mode] : null;
  if (!Array.isArray(entry) || entry.length < 2) return null;
  const share = Number(entry[1]);
  return { text: String(entry[0]), share: Number.isFinite(share) ? Math.min(1, Math.max(0, share)) : 0 };
}

// Tint strength for a share of the total: square root so that a 1 % node is still visible next to a 60 % one.
export function costAlpha(share) {
  const s = Number.isFinite(share) ? Math.min(1, Math.max(0, share)) : 0;
  return s > 0 ? Math.round((0.08 + 0.62 * Math.sqrt(s)) * 100) / 100 : 0;
}

// "12.5 %" for the node's tooltip.
export function shareText(share) {
  const pct = share * 100;
  return `${pct >= 10 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)} %`;
}
