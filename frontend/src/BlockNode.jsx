// A collapsed block (one box: name, layer count, input and output shapes; click expands it), the frame
// around an expanded block (its header collapses it) and the edge standing for several edges.
import { memo, useContext } from 'react';
import { BaseEdge, getBezierPath, Handle, Position } from '@xyflow/react';
import { CanvasContext } from './context.js';
import { useAnnotation } from './annotations.js';

function Shape({ id }) {
  const { annStore } = useContext(CanvasContext);
  const ann = useAnnotation(annStore, 'nodes', id);
  return ann.shape ? <span className="ll-block-shape">{String(ann.shape)}</span> : null;
}

function BlockNodeView({ id, data }) {
  const { toggleBlock } = useContext(CanvasContext);
  return (
    <div className="ll-block" data-block-id={id}>
      <Handle type="target" position={Position.Left} id="in" isConnectable={false} />
      <button
        type="button"
        className="ll-block-btn nodrag"
        title={`Expand ${data.name} (${data.count} layers)`}
        aria-label={`Expand block ${data.name}`}
        onClick={(e) => {
          e.stopPropagation();
          toggleBlock(id);
        }}
      >
        <span className="ll-block-name">▸ {data.name}</span>
        <span className="ll-block-count">{data.count} layers</span>
        <span className="ll-block-io">
          {data.inputs[0] ? <Shape id={data.inputs[0]} /> : <span className="ll-block-shape">—</span>}
          <span className="ll-block-arrow">→</span>
          {data.outputs[0] ? <Shape id={data.outputs[0]} /> : <span className="ll-block-shape">—</span>}
        </span>
      </button>
      <Handle type="source" position={Position.Right} id="out" isConnectable={false} />
    </div>
  );
}

function FrameNodeView({ data }) {
  const { toggleBlock } = useContext(CanvasContext);
  return (
    <div className={`ll-frame depth-${Math.min(data.depth, 3)}`} style={{ width: data.width, height: data.height }}>
      <button
        type="button"
        className="ll-frame-head nodrag"
        title={`Collapse ${data.name}`}
        aria-label={`Collapse block ${data.name}`}
        onClick={(e) => {
          e.stopPropagation();
          toggleBlock(data.block);
        }}
      >
        ▾ {data.name}
      </button>
    </div>
  );
}

function AggEdgeView({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, data, markerEnd }) {
  const [path, lx, ly] = getBezierPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition });
  return (
    <>
      <BaseEdge path={path} markerEnd={markerEnd} className="ll-agg-edge" />
      {data?.count > 1 && (
        <text x={lx} y={ly - 6} className="ll-agg-count" textAnchor="middle">
          ×{data.count}
        </text>
      )}
    </>
  );
}

export const BlockNode = memo(BlockNodeView);
export const FrameNode = memo(FrameNodeView);
export const AggEdge = memo(AggEdgeView);
