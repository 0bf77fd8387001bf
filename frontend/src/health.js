// Training health of a node, as Python's annotations carry it (builder.interpret.doctor.health_annotations):
// { level: 'ok' | 'warn' | 'bad', message }. Pure helpers; LayerNode tints and badges from them.

export const HEALTH_LEVELS = ['ok', 'warn', 'bad'];

// The node's health, or null when the annotation has none or an unknown level.
export function healthOf(ann) {
  const h = ann && typeof ann === 'object' ? ann.health : null;
  if (!h || typeof h !== 'object' || !HEALTH_LEVELS.includes(h.level)) return null;
  const lines = String(h.message ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
  return { level: h.level, lines };
}

// The class names a node gets for its health: '' when there is none.
export function healthClass(health) {
  return health ? ` health-${health.level}` : '';
}
