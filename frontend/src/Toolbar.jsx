import { memo, useState } from 'react';
import { COST_LABELS } from './cost.js';
import { FitIcon, GroupIcon, HelpIcon, LayoutIcon, MapIcon, PanelIcon, RedoIcon, TrashIcon, UndoIcon, ZoomInIcon, ZoomOutIcon } from './icons.jsx';

function Toolbar(p) {
  const hasCost = !!p.costModes && p.costModes.length > 1;
  return (
    <div className="ll-toolbar" role="toolbar" aria-label="Canvas tools">
      <button
        type="button"
        className={`ll-btn${p.paletteOpen ? ' is-on' : ''}`}
        title={p.paletteOpen ? 'Hide the layer palette' : 'Show the layer palette'}
        aria-label={p.paletteOpen ? 'Hide layer palette' : 'Show layer palette'}
        aria-pressed={p.paletteOpen}
        onClick={p.onTogglePalette}
      >
        <PanelIcon /> <span className="ll-btn-label">Layers</span>
      </button>
      <span className="ll-sep" />
      <button type="button" className="ll-btn icon" title={p.undoTitle || 'Undo (Ctrl+Z)'} aria-label="Undo" disabled={!p.canUndo} onClick={p.onUndo}>
        <UndoIcon />
      </button>
      <button type="button" className="ll-btn icon" title="Redo (Ctrl+Shift+Z / Ctrl+Y)" aria-label="Redo" disabled={!p.canRedo} onClick={p.onRedo}>
        <RedoIcon />
      </button>
      <span className="ll-sep" />
      <button type="button" className="ll-btn" title="Arrange layers left to right" aria-label="Auto-layout" onClick={p.onLayout} disabled={!p.hasNodes}>
        <LayoutIcon /> <span className="ll-btn-label wide-only">Auto-layout</span>
      </button>
      <button type="button" className="ll-btn" title="Show the whole graph (F)" onClick={p.onFit} disabled={!p.hasNodes}>
        <FitIcon /> <span className="ll-btn-label">Fit</span>
      </button>
      {/* zoom and the minimap live here, not over the canvas: floating there they sat on nodes */}
      <button type="button" className="ll-btn icon" title="Zoom out" aria-label="Zoom out" onClick={p.onZoomOut}>
        <ZoomOutIcon />
      </button>
      <button type="button" className="ll-btn icon" title="Zoom in" aria-label="Zoom in" onClick={p.onZoomIn}>
        <ZoomInIcon />
      </button>
      <button
        type="button"
        className={`ll-btn icon${p.mapOpen ? ' is-on' : ''}`}
        title={p.mapOpen ? 'Hide the minimap' : 'Show a minimap of the whole graph (bottom right)'}
        aria-label="Minimap"
        aria-pressed={!!p.mapOpen}
        onClick={p.onToggleMap}
      >
        <MapIcon />
      </button>
      <span className="ll-sep" />
      {p.groupForm ? (
        <form
          className="ll-group-form"
          onSubmit={(e) => {
            e.preventDefault();
            p.onSubmitGroup(p.groupForm.name);
          }}
        >
          <input
            autoFocus
            className="ll-input"
            placeholder="Block name"
            aria-label="Block name"
            maxLength={60}
            value={p.groupForm.name}
            onChange={(e) => p.setGroupForm({ name: e.target.value })}
            onKeyDown={(e) => {
              if (e.key === 'Escape') p.setGroupForm(null);
            }}
          />
          <button type="submit" className="ll-btn primary" disabled={!p.groupForm.name.trim()}>
            Create block
          </button>
          <button type="button" className="ll-btn" onClick={() => p.setGroupForm(null)}>
            Cancel
          </button>
        </form>
      ) : (
        <button type="button" className="ll-btn" title="Group the selected layers into a reusable block" aria-label="Group as block" onClick={p.onOpenGroup} disabled={p.selCount < 2}>
          <GroupIcon /> <span className="ll-btn-label wide-only">Group as block</span>
        </button>
      )}
      <button
        type="button"
        className="ll-btn icon"
        title="Delete selection (Delete)"
        aria-label="Delete selection"
        disabled={!p.selCount && !p.selEdgeCount}
        onClick={p.onDelete}
      >
        <TrashIcon />
      </button>
      {/* The counts are the toolbar's flexible gap (no width of their own, shortened with an ellipsis), and the
          cost overlay is always there (disabled on an empty canvas): the toolbar keeps its height when the first
          layer arrives or layers are selected, so the canvas and the palette never jump under the pointer. */}
      <span className="ll-counts">
        {p.selCount > 1 ? `${p.selCount} selected · ` : ''}
        {p.nodeCount} layer{p.nodeCount === 1 ? '' : 's'} · {p.edgeCount} connection{p.edgeCount === 1 ? '' : 's'}
      </span>
      {p.canBlocks && (
        <button
          type="button"
          className={`ll-btn${p.blocksOn ? ' is-on' : ''}`}
          title={p.blocksOn ? 'Show every layer (no blocks)' : 'Collapse the graph into blocks by module'}
          aria-pressed={p.blocksOn}
          onClick={p.onToggleBlocks}
        >
          <span className="ll-btn-label">{p.blocksOn ? 'Blocks: on' : 'Blocks: off'}</span>
        </button>
      )}
      <select
        className={`ll-input ll-cost-select${p.costMode !== 'off' ? ' is-on' : ''}`}
        aria-label="Cost overlay"
        title={hasCost ? "Tint layers by their share of the network's cost and show each layer's value" : 'The cost overlay needs layers on the canvas'}
        value={hasCost ? p.costMode : 'off'}
        disabled={!hasCost}
        onChange={(e) => p.onCostMode(e.target.value)}
      >
        {(hasCost ? p.costModes : ['off']).map((m) => (
          <option key={m} value={m}>{m === 'off' ? COST_LABELS.off : `Cost: ${COST_LABELS[m]}`}</option>
        ))}
      </select>
      <FindBox onFind={p.onFind} disabled={!p.hasNodes} />
      <button
        type="button"
        className={`ll-btn icon${p.helpOpen ? ' is-on' : ''}`}
        title="Keyboard shortcuts (?)"
        aria-label="Keyboard shortcuts"
        aria-expanded={p.helpOpen}
        onClick={p.onToggleHelp}
      >
        <HelpIcon />
      </button>
    </div>
  );
}

// Search box: Enter finds the next layer whose name, label or type contains the text.
function FindBox({ onFind, disabled }) {
  const [q, setQ] = useState('');
  const [hit, setHit] = useState(null);
  return (
    <form
      className="ll-find"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        setHit(onFind(q));
      }}
    >
      <input
        className="ll-input nokey"
        type="search"
        placeholder="Find layer…"
        aria-label="Find layer"
        maxLength={120}
        value={q}
        disabled={disabled}
        onChange={(e) => {
          setQ(e.target.value);
          setHit(null);
        }}
        onKeyDown={(e) => e.stopPropagation()}
      />
      <span className="ll-find-count" aria-live="polite">
        {hit ? (hit.total ? `${hit.index + 1}/${hit.total}` : 'none') : ''}
      </span>
    </form>
  );
}

export default memo(Toolbar);
