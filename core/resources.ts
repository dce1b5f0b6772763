// Where the files shipped with the app live, whether run from the repo, from dist/ or from a packaged app.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: the folder holding package.json and resources/ (dist/core/ is two levels below it). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package root not found');
    dir = parent;
  }
  return dir;
}

/**
 * `p` moved from a packaged app's `app.asar` archive to `app.asar.unpacked` beside it, where electron-builder puts
 * the files that must be opened by a real path (native libraries, wasm read by worker threads, images libvips
 * decodes); any other path is returned unchanged.
 */
export function unpackedPath(p: string): string {
  return p.replace(/([\\/])app\.asar(?=[\\/]|$)/, '$1app.asar.unpacked');
}

/** The bundled demo section (HER2ST B4, downsized by scripts/make-demo.ts); unpacked, as sharp reads its image. */
export function demoPath(): string {
  return unpackedPath(resolve(packageRoot(), 'resources', 'demo'));
}

/** The bundled base model users fine-tune from (made by scripts/pretrain-base.ts). */
export function baseModelPath(): string {
  return resolve(packageRoot(), 'resources', 'models', 'delst-base');
}
