// Rules for file paths that come through the API, i.e. from the renderer (what a user typed, or what a compromised
// page sends):
// - Reads (openPath, importModel): a desktop app exists to open the user's own files, so any readable path may be
//   read; it must be a plain path (a non-empty string without NUL, of sane length).
// - Writes (exportAnnotations, exportModel): only NEW files or folders, at an absolute path in a folder that exists,
//   files with their format's extension. An export never overwrites, and never writes through a link to, anything
//   that exists (the project database, a document, a system file). Everything else the app writes lies inside the
//   project folder or the slide cache under names it makes itself (uploads, models, pyramids).

import { lstat, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, resolve } from 'node:path';

/** Longer than any real path (PATH_MAX is 4096 on Linux), short enough to quote in an error. */
const MAX_PATH_CHARS = 4096;

/** `path` shortened for an error message. */
function shown(path: unknown): string {
  return JSON.stringify(String(path).slice(0, 200));
}

/** A path the API may read from: checked for shape only (see above). */
export function readablePath(what: string, path: unknown): string {
  if (typeof path !== 'string' || path.trim() === '') throw new Error(`${what}: the path must be a non-empty string`);
  if (path.length > MAX_PATH_CHARS) throw new Error(`${what}: the path is too long (${path.length} characters)`);
  if (path.includes('\0')) throw new Error(`${what}: refused path ${shown(path)} (it holds a NUL character)`);
  return path;
}

/** An absolute path where nothing exists yet (not even a dangling link), in a folder that exists. */
export async function newPath(what: string, path: unknown): Promise<string> {
  readablePath(what, path);
  const given = path as string;
  if (!isAbsolute(given)) throw new Error(`${what}: the path must be absolute, not ${shown(given)}`);
  const target = resolve(given);
  if (await exists(target))
    throw new Error(`${what}: ${target} exists already; choose a new name (exports never overwrite)`);
  const folder = dirname(target);
  const info = await stat(folder).catch(() => null);
  if (!info?.isDirectory()) throw new Error(`${what}: the folder ${folder} does not exist`);
  return target;
}

/** A new file (see newPath) whose name ends with one of `extensions` (lower case, with the dot). */
export async function newFilePath(what: string, path: unknown, extensions: readonly string[]): Promise<string> {
  const target = await newPath(what, path);
  if (!extensions.includes(extname(target).toLowerCase())) {
    throw new Error(`${what}: the file name must end with ${extensions.join(' or ')}: ${shown(target)}`);
  }
  return target;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw error;
  }
}
