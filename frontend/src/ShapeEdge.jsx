import { memo, useContext } from 'react';
import { BaseEdge, EdgeLabelRenderer, getBezierPath } from '@xyflow/react';
import { CanvasContext } from './context.js';
import { useAnnotation } from './annotations.js';

function ShapeEdge({ id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, selected, markerEnd }) {
  const ctx = useContext(CanvasContext);
  const [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, sourcePosition, targetX, targetY, targetPosition });
  const shape = useAnnotation(ctx.annStore, 'edges', id).shape;
  const bad = ctx.problemEdges.has(id);
  const cls = `ll-edge${selected ? ' is-selected' : ''}${bad ? ' is-bad' : ''}`;
  return (
    <>
      <BaseEdge id={id} path={path} markerEnd={markerEnd} className={cls} interactionWidth={18} />
      {shape ? (
        <EdgeLabelRenderer>
          <div
            className={`ll-edge-label${selected ? ' is-selected' : ''}${bad ? ' is-bad' : ''}`}
            data-testid={`edge-label-${id}`}
            style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}
          >
            {String(shape)}
          </div>
        </EdgeLabelRenderer>
      ) : null}
    </>
  );
}

export default memo(ShapeEdge);
