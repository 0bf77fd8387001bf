import { memo, useContext, useEffect, useRef, useState } from 'react';
import { Handle, Position, useNodeConnections } from '@xyflow/react';
import { CanvasContext } from './context.js';
import { useAnnotation } from './annotations.js';
import { colorFor, formatCount, portsOf, nodeOutputs, outKind, inKind } from './graph.js';
import { healthClass, healthOf } from './health.js';
import { costAlpha, costOf, shareText, COST_LABELS } from './cost.js';
import { trainOf } from './training.js';

function RenameInput({ initial, onDone }) {
  const [value, setValue] = useState(initial);
  const ref = useRef(null);
  const done = useRef(false);
  useEffect(() => {
    ref.current?.focus();
    ref.current?.select();
  }, []);
  const finish = (v) => {
    if (done.current) return;
    done.current = true;
    onDone(v);
  };
  return (
    <input
      ref={ref}
      className="ll-rename nodrag nopan nokey"
      value={value}
      maxLength={80}
      aria-label="Layer name"
      onChange={(e) => setValue(e.target.value)}
      onKeyDown={(e) => {
        e.stopPropagation();
        if (e.key === 'Enter') finish(value);
        if (e.key === 'Escape') finish(null);
      }}
      onBlur={() => finish(value)}
      onPointerDown={(e) => e.stopPropagation()}
    />
  );
}

function LayerNode({ id, data, selected }) {
  const ctx = useContext(CanvasContext);
  const entry = ctx.paletteMap.get(data.ltype);
  const ann = useAnnotation(ctx.annStore, 'nodes', id);
  const errors = Array.isArray(ann.errors) ? ann.errors.filter((m) => m != null).map(String) : [];
  const health = healthOf(ann);
  const cost = costOf(ann, ctx.costMode);
  const train = trainOf(ann);
  const { inputs } = portsOf(entry);
  const leaving = useNodeConnections({ id, handleType: 'source' });
  // an image Input has no padding mask; an Op shows as many outputs as it returns
  const outputs = nodeOutputs({ data }, entry, ann, leaving.map((c) => c.sourceHandle));
  const category = entry?.category || (data.ltype === 'Input' ? 'Inputs' : null);
  const color = colorFor(category);
  const title = data.label || id;
  const params = formatCount(ann.params);
  const macs = Number(ann.macs) > 0 ? formatCount(ann.macs) : null;
  const renaming = ctx.renamingId === id;
  const rows = Math.max(inputs.length, outputs.length);
  const variadic = !!entry?.variadic;

  return (
    <div
      className={`ll-node${selected ? ' is-selected' : ''}${errors.length ? ' has-error' : ''}${entry ? '' : ' is-unknown'}${healthClass(health)}${cost ? ' has-cost' : ''}${train ? train.cls : ''}`}
      style={cost ? { '--cat': color, '--cost-a': costAlpha(cost.share) } : { '--cat': color }}
      data-node-id={id}
      data-testid={`node-${id}`}
    >
      <div className="ll-node-stripe" />
      <div className="ll-node-head" onDoubleClick={(e) => { e.stopPropagation(); ctx.startRename(id); }}>
        {renaming ? (
          <RenameInput initial={data.label || ''} onDone={(v) => ctx.finishRename(id, v)} />
        ) : (
          <span className="ll-node-title" title="Double-click to rename">{title}</span>
        )}
        {errors.length > 0 && (
          <span
            className="ll-badge"
            aria-label={`${errors.length} problem(s): ${errors.join(' ')}`}
            data-testid={`badge-${id}`}
            onPointerEnter={(e) => ctx.showTip(e.currentTarget, errors)}
            onPointerLeave={ctx.hideTip}
          >
            {errors.length}
          </span>
        )}
        {train?.badge && (
          <span className="ll-train-badge" title={train.title} aria-label={train.title} data-testid={`train-${id}`}>
            {train.badge}
          </span>
        )}
        {health && health.lines.length > 0 && (
          <span
            className={`ll-health-badge is-${health.level}`}
            aria-label={`training health ${health.level}: ${health.lines.join(' ')}`}
            data-testid={`health-${id}`}
            onPointerEnter={(e) => ctx.showTip(e.currentTarget, health.lines)}
            onPointerLeave={ctx.hideTip}
          >
            {health.level === 'ok' ? '✓' : '!'}
          </span>
        )}
      </div>
      <div className="ll-node-sub">
        <span className="ll-node-type">{data.ltype}{data.label ? <span className="ll-node-id"> · {id}</span> : null}</span>
        <span className={`ll-node-params${Number(ann.params) === 0 ? ' is-zero' : ''}`}
          title={macs ? `${params} parameters · ${macs} multiply-adds per sample` : undefined}>{params != null ? `${params} params` : ''}</span>
      </div>
      {cost && (
        <div className="ll-node-cost" data-testid={`cost-${id}`} title={`${COST_LABELS[ctx.costMode]}: ${cost.text}, ${shareText(cost.share)} of the network`}>
          <span className="ll-node-cost-v">{cost.text}</span>
          <span className="ll-node-cost-share">{shareText(cost.share)}</span>
        </div>
      )}
      {rows > 0 && (
        <div className="ll-ports">
          {Array.from({ length: rows }).map((_, i) => {
            const ip = inputs[i];
            const op = outputs[i];
            return (
              <div className="ll-port-row" key={i}>
                {ip ? (
                  <>
                    <Handle
                      type="target"
                      position={Position.Left}
                      id={ip.name}
                      className={`ll-handle kind-${inKind(entry, ip.name)}${variadic ? ' is-variadic' : ''}`}
                      title={`${ip.name} (${ip.kind || 'tensor'}${variadic ? ', accepts several' : ''})`}
                    />
                    <span className="ll-port-name in">{ip.name}{variadic ? ' ⋯' : ''}</span>
                  </>
                ) : <span />}
                {op ? (
                  <>
                    <span className="ll-port-name out">{op.name}</span>
                    <Handle
                      type="source"
                      position={Position.Right}
                      id={op.name}
                      className={`ll-handle kind-${outKind({ data }, entry, ann, op.name)}`}
                      title={`${op.name} (${outKind({ data }, entry, ann, op.name)})`}
                    />
                  </>
                ) : <span />}
              </div>
            );
          })}
        </div>
      )}
      <div className="ll-node-shape" title="Output shape">
        {ann.shape ? ann.shape : <span className="ll-muted">shape —</span>}
      </div>
    </div>
  );
}

export default memo(LayerNode);
