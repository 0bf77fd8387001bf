import { createContext } from 'react';

export const CanvasContext = createContext({
  paletteMap: new Map(),
  annotations: {},
  problemEdges: new Set(),
  renamingId: null,
  startRename: () => {},
  finishRename: () => {},
});
