// The sandboxed preload: exposes exactly `window.delst` to the page. CommonJS (.cts -> .cjs) because sandboxed
// preloads cannot be ES modules. Method names and arguments are checked in the main process.

import { contextBridge, ipcRenderer } from 'electron';

contextBridge.exposeInMainWorld('delst', {
  call: (method: string, args: unknown[]) => ipcRenderer.invoke('delst:api', method, args),
  tileUrlBase: 'delst://tiles',
});
