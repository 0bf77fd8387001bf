import { memo, useMemo, useState } from 'react';
import { CATEGORY_ORDER, colorFor } from './graph.js';
import { CloseIcon, PinIcon } from './icons.jsx';
import { entryLabel } from './library.js';

function groupPalette(palette, query) {
  const q = query.trim().toLowerCase();
  const groups = new Map();
  for (const entry of palette || []) {
    if (!entry || typeof entry.type !== 'string') continue;
    const cat = entry.category || 'Other';
    if (q) {
      const hay = `${entryLabel(entry)} ${cat} ${entry.description || ''}`.toLowerCase();
      if (!q.split(/\s+/).every((w) => hay.includes(w))) continue;
    }
    if (!groups.has(cat)) groups.set(cat, []);
    groups.get(cat).push(entry);
  }
  const order = (c) => {
    const i = CATEGORY_ORDER.indexOf(c);
    return i < 0 ? CATEGORY_ORDER.length : i;
  };
  return [...groups.entries()].sort((a, b) => order(a[0]) - order(b[0]) || a[0].localeCompare(b[0]));
}

function Palette({ palette, onPointerDownItem, overlay, docked, onToggleDock, onClose }) {
  const [query, setQuery] = useState('');
  const [collapsed, setCollapsed] = useState(() => new Set());
  const groups = useMemo(() => groupPalette(palette, query), [palette, query]);
  const searching = query.trim() !== '';

  return (
    <aside className={`ll-palette${overlay ? ' is-overlay' : ''}`} aria-label="Layer palette" onPointerDown={(e) => e.stopPropagation()}>
      <div className="ll-palette-head">
        <div className="ll-palette-title">
          <span>Layers</span>
          <span className="ll-spacer" />
          <button
            type="button"
            className={`ll-btn icon small${docked ? ' is-on' : ''}`}
            title={docked ? 'Float the palette over the canvas' : 'Dock the palette beside the canvas (wide windows)'}
            aria-label={docked ? 'Float palette' : 'Dock palette'}
            aria-pressed={!!docked}
            onClick={onToggleDock}
          >
            <PinIcon />
          </button>
          <button type="button" className="ll-btn icon small" title="Hide the palette" aria-label="Hide palette" onClick={onClose}>
            <CloseIcon />
          </button>
        </div>
        <input
          className="ll-search"
          type="search"
          placeholder="Search layers…"
          aria-label="Search layers"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Escape') setQuery('');
          }}
        />
      </div>
      <div className="ll-palette-list">
        {groups.length === 0 && <div className="ll-palette-empty">No layer matches “{query}”.</div>}
        {groups.map(([cat, entries]) => {
          const open = searching || !collapsed.has(cat);
          return (
            <section key={cat} className="ll-cat" data-category={cat}>
              <button
                type="button"
                className="ll-cat-head"
                aria-expanded={open}
                onClick={() =>
                  setCollapsed((prev) => {
                    const next = new Set(prev);
                    if (next.has(cat)) next.delete(cat);
                    else next.add(cat);
                    return next;
                  })
                }
              >
                <span className="ll-cat-dot" style={{ background: colorFor(cat) }} />
                <span className="ll-cat-name">{cat}</span>
                <span className="ll-cat-count">{entries.length}</span>
                <span className={`ll-chevron${open ? ' open' : ''}`} aria-hidden="true">›</span>
              </button>
              {open && (
                <div className="ll-cat-items">
                  {entries.map((entry) => (
                    <div
                      key={entry.type}
                      className="ll-item"
                      role="button"
                      tabIndex={0}
                      data-type={entry.type}
                      data-testid={`palette-${entry.type}`}
                      title={entry.description ? `${entryLabel(entry)}: ${entry.description}` : entryLabel(entry)}
                      style={{ '--cat': colorFor(cat) }}
                      onPointerDown={(e) => onPointerDownItem(entry, e)}
                    >
                      <span className="ll-item-name">{entryLabel(entry)}</span>
                      {entry.library ? (
                        <span className={`ll-item-size${entry.library.fits === false ? ' too-big' : ''}`} data-testid={`palette-size-${entry.library.name}`}>
                          {entry.library.size}
                        </span>
                      ) : entry.description ? <span className="ll-item-desc">{entry.description}</span> : null}
                    </div>
                  ))}
                </div>
              )}
            </section>
          );
        })}
      </div>
      <div className="ll-palette-foot">Drag onto the canvas, or click to add</div>
    </aside>
  );
}

export default memo(Palette);
