import { memo, useContext } from 'react';
import { BaseEdge, EdgeLabelRenderer, getBezierPath } from '@xyflow/react';
import { CanvasContext } from './context.js';
import { useAnnotation } from './annotations.js';

function ShapeEdge({ id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, selected, markerEnd }) {
  const ctx = useContext(CanvasContext);
  const [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, sourcePosition, targetX, targetY, targetPosition });
  const shape = useAnnotation(ctx.annStore, 'edges', id).shape;
  const bad = ctx.problemEdges.has(id);
  // a short, flat edge has no room for its label between the ports: lift it above the line
  const lift = Math.abs(targetX - sourceX) < 30 + 7 * String(shape || '').length && Math.abs(targetY - sourceY) < 40;
  const cls = `ll-edge${selected ? ' is-selected' : ''}${bad ? ' is-bad' : ''}`;
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
