// Builds the renderer (Svelte + OpenSeadragon) into dist/renderer, with relative asset URLs so the same build
// loads from the browser-mode server (http://127.0.0.1:PORT/) and from Electron (delst://app/).

import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [svelte({ configFile: false })],
  build: {
    outDir: fileURLToPath(new URL('../dist/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // Chromium and Electron support module preloading natively; the polyfill is not needed.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1024,
  },
});
