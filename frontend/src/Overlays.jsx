// Context menu, keyboard-help popover and the problems bar under the canvas (with the hint that part of the graph
// lies outside the view).
import { CheckIcon, CloseIcon, FitIcon, WarnIcon } from './icons.jsx';
import { formatCount } from './graph.js';
import { menuItems } from './contextMenu.js';
import { GESTURES, SHORTCUTS } from './keyboard.js';
import { trainableText } from './training.js';
import { problemStatus } from './summary.js';
import { useViewHint } from './useViewHint.js';

// Renders the entries of contextMenu.js's menuItems; `actions` maps each entry's
// action name to the function it runs.
export function ContextMenu({ menu, nodes, selCount, clipboardEmpty, actions }) {
  const { title, items } = menuItems(menu, nodes, selCount, clipboardEmpty);
  return (
    <div className="ll-menu" role="menu" style={{ left: menu.x, top: menu.y }} onPointerDown={(e) => e.stopPropagation()}>
      {title !== null && <div className="ll-menu-title">{title}</div>}
      {items.map((it) => (
        <button
          key={it.action}
          type="button"
          role="menuitem"
          className={it.danger ? 'danger' : undefined}
          disabled={it.disabled}
          onClick={() => actions[it.action](it.arg)}
        >
          {it.label}
          {it.kbd && <span className="ll-kbd">{it.kbd}</span>}
        </button>
      ))}
    </div>
  );
}

export function HelpPanel({ onClose }) {
  return (
    <div className="ll-help" role="dialog" aria-label="Keyboard shortcuts" onPointerDown={(e) => e.stopPropagation()}>
      <div className="ll-help-head">
        <span>Keyboard shortcuts</span>
        <button type="button" className="ll-btn icon" aria-label="Close shortcuts" onClick={onClose}><CloseIcon /></button>
      </div>
      <table className="ll-help-table">
        <tbody>
          {SHORTCUTS.map((s) => (
            <tr key={s.action}><td><kbd>{s.keys}</kbd></td><td>{s.label}</td></tr>
          ))}
          {GESTURES.map((s) => (
            <tr key={s.keys}><td><kbd>{s.keys}</kbd></td><td>{s.label}</td></tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// "9 of 24 layers in view · Fit to see all" (useViewHint.js), in the status bar: there it covers no node and no
// tool, and the bar keeps its height. Its own component: it re-renders as the view pans, the canvas does not.
function ViewHint({ source, onFit }) {
  const hint = useViewHint(source);
  if (!hint) return null;
  return (
    <span className="ll-view-hint" data-testid="ll-view-hint">
      <span className="ll-view-hint-text">{hint.text}</span>
      <span aria-hidden="true">·</span>
      {hint.action ? (
        <button type="button" className="ll-view-hint-btn" title="Show the whole graph (F)" onClick={onFit}>
          <FitIcon /> {hint.action}
        </button>
      ) : (
        <span className="ll-view-hint-text">{hint.rest}</span>
      )}
    </span>
  );
}

export function ProblemsBar({ annotations, problems, nodeCount, open, setOpen, onFocus, viewHint, onFit }) {
  const status = problemStatus(problems, nodeCount);
  const totalParams = formatCount(annotations.summary?.total_params);
  const memory = annotations.summary?.memory;
  const trainable = trainableText(annotations.summary);
  return (
    <div className="ll-summary">
      <span className="ll-stat"><span className="ll-stat-k">Parameters</span><span className="ll-stat-v" data-testid="total-params">{totalParams ?? '—'}</span></span>
      <span className="ll-stat" title="Multiply-adds per sample (matrix products and convolutions)"><span className="ll-stat-k">MACs</span><span className="ll-stat-v" data-testid="total-macs">{annotations.summary?.macs ?? '—'}</span></span>
      {trainable && (
        <span className="ll-stat" title="Parameters that train (the rest is frozen: frozen layers, LoRA bases)"><span className="ll-stat-k">Trainable</span><span className="ll-stat-v" data-testid="trainable-params">{trainable}</span></span>
      )}
      <span className="ll-stat"><span className="ll-stat-k">Memory</span><span className="ll-stat-v">{memory ? String(memory) : '—'}</span></span>
      <span className="ll-spacer" />
      {viewHint && <ViewHint source={viewHint} onFit={onFit} />}
      {status.kind === 'problems' ? (
        <button type="button" className={`ll-problems-btn${open ? ' open' : ''}`} onClick={() => setOpen((o) => !o)} aria-expanded={open}>
          <WarnIcon /> {status.text}
          <span className={`ll-chevron up${open ? ' open' : ''}`} aria-hidden="true">›</span>
        </button>
      ) : status.kind === 'empty' ? (
        <span className="ll-hint" data-testid="ll-empty-hint">{status.text}</span>
      ) : (
        <span className="ll-ok"><CheckIcon /> {status.text}</span>
      )}
      {open && status.kind === 'problems' && (
        <div className="ll-problems" role="list">
          {problems.map((p, i) => (
            <button
              type="button"
              role="listitem"
              key={i}
              className="ll-problem"
              onClick={() => {
                onFocus(p || {});
                setOpen(false);
              }}
            >
              {p?.node ? <span className="ll-chip">{String(p.node)}</span> : p?.edge ? <span className="ll-chip edge">{String(p.edge)}</span> : null}
              <span className="ll-problem-msg">{String(p?.message ?? '')}</span>
            </button>
          ))}
        </div>
      )}
    </div>
  );
}
