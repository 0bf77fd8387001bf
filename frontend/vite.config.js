import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

// Builds one minified ES module (default export = the Streamlit components v2
// entry point) and one CSS file into the Python package, which serves them.
// File names carry a content hash so browsers never keep a stale bundle;
// builder/canvas/__init__.py finds them with the globs canvas-*.js / canvas-*.css.
export default defineConfig({
  plugins: [react()],
  define: { 'process.env.NODE_ENV': JSON.stringify('production') },
  build: {
    outDir: fileURLToPath(new URL('../builder/canvas/assets', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    minify: true,
    cssCodeSplit: false,
    modulePreload: false,
    copyPublicDir: false,
    rollupOptions: {
      input: fileURLToPath(new URL('./src/index.jsx', import.meta.url)),
      preserveEntrySignatures: 'exports-only',
      output: {
        format: 'es',
        entryFileNames: 'canvas-[hash].js',
        assetFileNames: 'canvas-[hash][extname]',
      },
    },
  },
});
