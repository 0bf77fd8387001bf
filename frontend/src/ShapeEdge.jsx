import { memo, useContext } from 'react';
import { BaseEdge, EdgeLabelRenderer, getBezierPath } from '@xyflow/react';
import { CanvasContext } from './context.js';
import { useAnnotation } from './annotations.js';
import { PADDING_MASK } from './graph.js';

function ShapeEdge({ id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, selected, markerEnd, sourceHandleId }) {
  const ctx = useContext(CanvasContext);
  const [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, sourcePosition, targetX, targetY, targetPosition });
  const shape = useAnnotation(ctx.annStore, 'edges', id).shape;
  const bad = ctx.problemEdges.has(id);
  // a short, flat edge has no room for its label between the ports: lift it above the line
  const lift = Math.abs(targetX - sourceX) < 30 + 7 * String(shape || '').length && Math.abs(targetY - sourceY) < 40;
  // a padding mask's wire (an Input's padding_mask into a layer's mask port) is dotted: it often runs behind the
  // layers between (Input -> Embedding -> LSTM), where a plain line read as their input
  const mask = sourceHandleId === PADDING_MASK;
  const cls = `ll-edge${selected ? ' is-selected' : ''}${bad ? ' is-bad' : ''}${mask ? ' is-mask' : ''}`;
  return (
    <>
      <BaseEdge id={id} path={path} markerEnd={markerEnd} className={cls} interactionWidth={18} />
      {shape ? (
        <EdgeLabelRenderer>
          <div
            className={`ll-edge-label${selected ? ' is-selected' : ''}${bad ? ' is-bad' : ''}`}
            data-testid={`edge-label-${id}`}
            style={{ transform: `translate(-50%, ${lift ? '-100%' : '-50%'}) translate(${labelX}px, ${labelY - (lift ? 8 : 0)}px)` }}
          >
            {String(shape)}
          </div>
        </EdgeLabelRenderer>
      ) : null}
    </>
  );
}

export default memo(ShapeEdge);
