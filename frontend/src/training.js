// What trains on the canvas (annotations from builder.graph.cost.canvas_annotations: per node `train`, summary
// `trainable`): frozen nodes are dimmed with a lock, LoRA nodes show how much of them trains.
import { formatCount } from './graph.js';

// { cls, badge, title } for a node's `train` annotation, or null when the node has none (everything trains).
export function trainOf(ann) {
  const t = ann?.train;
  if (!t || typeof t !== 'object') return null;
  const trains = formatCount(t.trainable) ?? '0';
  const frozen = formatCount(t.frozen) ?? '0';
  if (t.state === 'frozen') return { cls: ' is-frozen', badge: '🔒', title: `Frozen: its ${frozen} parameters do not train` };
  if (t.state === 'adapter') return { cls: ' is-adapter', badge: `${trains} train`, title: `${trains} adapter parameters train; the base's ${frozen} stay frozen` };
  return { cls: ' is-trainable', badge: null, title: `All ${trains} parameters train` };
}

// The summary bar's "Trainable" text, or null when nothing is frozen.
export function trainableText(summary) {
  const t = summary?.trainable;
  if (!t || typeof t !== 'object') return null;
  return `${formatCount(t.trainable) ?? '0'} of ${formatCount((Number(t.trainable) || 0) + (Number(t.frozen) || 0)) ?? '0'}`;
}
