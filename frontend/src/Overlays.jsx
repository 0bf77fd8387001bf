// Context menu, keyboard-help popover and the problems bar under the canvas.
import { CheckIcon, CloseIcon, WarnIcon } from './icons.jsx';
import { formatCount } from './graph.js';
import { GESTURES, SHORTCUTS } from './keyboard.js';

export function ContextMenu({ menu, nodes, selCount, clipboardEmpty, onRename, onDuplicate, onGroup, onDeleteNode, onDeleteEdge, onPaste, onLayout, onFit }) {
  const menuNode = menu.kind === 'node' ? nodes.find((n) => n.id === menu.id) : null;
  return (
    <div className="ll-menu" role="menu" style={{ left: menu.x, top: menu.y }} onPointerDown={(e) => e.stopPropagation()}>
      {menu.kind === 'node' && menuNode && (
        <>
          <div className="ll-menu-title">{selCount > 1 ? `${selCount} layers` : menuNode.data.label || menuNode.id}</div>
          {selCount <= 1 && (
            <button type="button" role="menuitem" onClick={() => onRename(menuNode.id)}>Rename</button>
          )}
          <button type="button" role="menuitem" onClick={() => onDuplicate(menuNode.id)}>
            Duplicate<span className="ll-kbd">Ctrl+D</span>
          </button>
          {selCount > 1 && (
            <button type="button" role="menuitem" onClick={onGroup}>Group as block…</button>
          )}
          <button type="button" role="menuitem" className="danger" onClick={() => onDeleteNode(menuNode.id)}>
            Delete<span className="ll-kbd">Del</span>
          </button>
        </>
      )}
      {menu.kind === 'edge' && (
        <button type="button" role="menuitem" className="danger" onClick={() => onDeleteEdge(menu.id)}>
          Delete connection<span className="ll-kbd">Del</span>
        </button>
      )}
      {menu.kind === 'pane' && (
        <>
          <button type="button" role="menuitem" disabled={clipboardEmpty} onClick={onPaste}>
            Paste here<span className="ll-kbd">Ctrl+V</span>
          </button>
          <button type="button" role="menuitem" onClick={onLayout} disabled={!nodes.length}>Auto-layout</button>
          <button type="button" role="menuitem" onClick={onFit} disabled={!nodes.length}>Fit view<span className="ll-kbd">F</span></button>
        </>
      )}
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

export function ProblemsBar({ annotations, problems, open, setOpen, onFocus }) {
  const totalParams = formatCount(annotations.summary?.total_params);
  const memory = annotations.summary?.memory;
  return (
    <div className="ll-summary">
      <span className="ll-stat"><span className="ll-stat-k">Parameters</span><span className="ll-stat-v" data-testid="total-params">{totalParams ?? '—'}</span></span>
      <span className="ll-stat"><span className="ll-stat-k">Memory</span><span className="ll-stat-v">{memory ? String(memory) : '—'}</span></span>
      <span className="ll-spacer" />
      {problems.length ? (
        <button type="button" className={`ll-problems-btn${open ? ' open' : ''}`} onClick={() => setOpen((o) => !o)} aria-expanded={open}>
          <WarnIcon /> {problems.length} problem{problems.length === 1 ? '' : 's'}
          <span className={`ll-chevron up${open ? ' open' : ''}`} aria-hidden="true">›</span>
        </button>
      ) : (
        <span className="ll-ok"><CheckIcon /> No problems</span>
      )}
      {open && problems.length > 0 && (
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
