import { createContext } from 'react';

export const CanvasContext = createContext({
  paletteMap: new Map(),
  annStore: null,
  problemEdges: new Set(),
  renamingId: null,
  startRename: () => {},
  finishRename: () => {},
});
