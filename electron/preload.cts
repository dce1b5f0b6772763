// The sandboxed preload: exposes exactly `window.delst` to the page, never ipcRenderer itself. CommonJS (.cts ->
// .cjs) because sandboxed preloads cannot be ES modules, nor import our modules: the full check of each call
// (method name, argument count, types and size: electron/security.ts) runs in the main process.

import { contextBridge, ipcRenderer } from 'electron';

contextBridge.exposeInMainWorld('delst', {
  call: (method: unknown, args: unknown) =>
    typeof method === 'string' && Array.isArray(args)
      ? ipcRenderer.invoke('delst:api', method, args)
      : Promise.resolve({ ok: false, error: 'delst.call(method: string, args: unknown[])' }),
  tileUrlBase: 'delst://tiles',
});
