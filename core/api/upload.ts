// Uploads for browser mode: files a browser picked (a section's folder, or one .h5ad or image), sent through the
// API in base64 chunks and written under `<projectDir>/uploads/`. Each upload is staged in a hidden folder of its
// own and moved into place with one rename when complete, so a section folder is never seen half written; names
// are checked so nothing can be written outside the staging folder.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { UploadFile, UploadOptions } from './api.js';

export interface UploadLimits {
  /** Largest file, in bytes (2 GiB by default). */
  readonly maxFileBytes?: number;
  /** Largest upload, all files together, in bytes (2 GiB by default). */
  readonly maxTotalBytes?: number;
  /** Most files in one upload (10,000 by default). */
  readonly maxFiles?: number;
}

export const DEFAULT_UPLOAD_LIMITS: Required<UploadLimits> = {
  maxFileBytes: 2 * 1024 ** 3,
  maxTotalBytes: 2 * 1024 ** 3,
  maxFiles: 10_000,
};

const MAX_NAME_CHARS = 200;
const MAX_PATH_CHARS = 1024;
const MAX_SEGMENT_CHARS = 255;
const MAX_DEPTH = 16;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

interface Pending {
  readonly name: string;
  readonly dir: string;
  /** Relative path -> bytes written so far. */
  readonly sizes: Map<string, number>;
  total: number;
}

/** A finished upload: where it now lies, and what to open (the folder, or the file when only one was sent). */
export interface FinishedUpload {
  readonly folder: string;
  readonly open: string;
}

export class Uploads {
  private readonly pending = new Map<string, Pending>();
  private readonly limits: Required<UploadLimits>;

  constructor(
    /** `<projectDir>/uploads`. */
    readonly root: string,
    limits: UploadLimits = {},
  ) {
    this.limits = { ...DEFAULT_UPLOAD_LIMITS, ...limits };
  }

  /**
   * Writes one batch of chunks; finishes (moves the upload into place) when `options.done` is not false. Gives the
   * upload's id, and where it lies once finished. Any error drops the whole upload.
   */
  async write(
    name: string,
    files: readonly UploadFile[],
    options: UploadOptions | null | undefined,
  ): Promise<{ uploadId: string; finished: FinishedUpload | null }> {
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw new Error('uploadSection: the options must be an object');
    }
    const uploadId = options?.uploadId ?? null;
    const done = options?.done ?? true;
    if (typeof done !== 'boolean') throw new Error('uploadSection: done must be true or false');
    if (!Array.isArray(files)) throw new Error('uploadSection: the files must be an array');

    let id: string;
    let upload: Pending;
    if (uploadId === null) {
      const safe = safeName(name);
      id = randomBytes(12).toString('hex');
      upload = { name: safe, dir: join(this.root, `.partial-${id}`), sizes: new Map(), total: 0 };
      await mkdir(upload.dir, { recursive: true });
      this.pending.set(id, upload);
    } else {
      const found = typeof uploadId === 'string' ? this.pending.get(uploadId) : undefined;
      if (!found) throw new Error(`uploadSection: no upload in progress with id ${String(uploadId).slice(0, 64)}`);
      id = uploadId;
      upload = found;
    }

    try {
      for (const file of files) await this.writeChunk(upload, file);
      if (!done) return { uploadId: id, finished: null };
      this.pending.delete(id);
      return { uploadId: id, finished: await this.finish(upload) };
    } catch (error) {
      this.pending.delete(id);
      await rm(upload.dir, { recursive: true, force: true });
      throw error;
    }
  }

  private async writeChunk(upload: Pending, file: UploadFile): Promise<void> {
    if (!file || typeof file !== 'object') throw new Error('uploadSection: each file must be {path, data, offset}');
    const path = checkedPath(file.path);
    const offset = file.offset ?? 0;
    if (typeof file.data !== 'string' || file.data.length % 4 !== 0 || !BASE64.test(file.data)) {
      throw new Error(`uploadSection: ${path}: the data must be base64`);
    }
    const written = upload.sizes.get(path);
    if (written === undefined && upload.sizes.size >= this.limits.maxFiles) {
      throw new Error(`uploadSection: more than ${this.limits.maxFiles} files`);
    }
    // Chunks of a file come in order, each where the last one ended.
    if (!Number.isSafeInteger(offset) || offset !== (written ?? 0)) {
      throw new Error(`uploadSection: ${path}: chunk at ${String(offset)}, expected ${written ?? 0}`);
    }
    const bytes = Buffer.from(file.data, 'base64');
    if (offset + bytes.length > this.limits.maxFileBytes) {
      throw new Error(`uploadSection: ${path} is larger than the limit of ${this.limits.maxFileBytes} bytes`);
    }
    if (upload.total + bytes.length > this.limits.maxTotalBytes) {
      throw new Error(`uploadSection: the upload is larger than the limit of ${this.limits.maxTotalBytes} bytes`);
    }
    // A file path that runs through another file (a/b and then a/b/c), or the other way round, is refused.
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) {
      if (upload.sizes.has(segments.slice(0, i).join('/'))) throw new Error(`uploadSection: ${path}: not a folder`);
    }
    if (written === undefined && [...upload.sizes.keys()].some((p) => p.startsWith(`${path}/`))) {
      throw new Error(`uploadSection: ${path}: a folder of that name was uploaded`);
    }
    const target = join(upload.dir, ...segments);
    await mkdir(dirname(target), { recursive: true });
    const handle = await open(target, written === undefined ? 'wx' : 'r+');
    try {
      if (bytes.length > 0) await handle.write(bytes, 0, bytes.length, offset);
      await handle.sync();
    } finally {
      await handle.close();
    }
    upload.sizes.set(path, offset + bytes.length);
    upload.total += bytes.length;
  }

  private async finish(upload: Pending): Promise<FinishedUpload> {
    if (upload.sizes.size === 0) throw new Error('uploadSection: no files were uploaded');
    const stamp = new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
    let folder = join(this.root, `${upload.name}-${stamp}`);
    for (let n = 2; existsSync(folder); n++) folder = join(this.root, `${upload.name}-${stamp}-${n}`);
    await rename(upload.dir, folder);
    const paths = [...upload.sizes.keys()];
    const single = paths.length === 1 && !paths[0].includes('/');
    return { folder, open: single ? join(folder, paths[0]) : folder };
  }

  /** Drops uploads left unfinished (shutdown). */
  async abandon(): Promise<void> {
    const dirs = [...this.pending.values()].map((upload) => upload.dir);
    this.pending.clear();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }
}

/** A folder name from what the user picked: letters, digits, `.`, `_` and `-`; never hidden, never empty. */
export function safeName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_CHARS || name.includes('\0')) {
    throw new Error(`uploadSection: the name must be 1-${MAX_NAME_CHARS} characters`);
  }
  const safe = name
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._-]+/, '')
    .slice(0, 64);
  return safe || 'upload';
}

/**
 * A relative path of an uploaded file, `/`-separated: no NUL, no backslash, not absolute (nor a drive letter),
 * no empty, `.` or `..` segment. Refused with the path named (shortened) otherwise.
 */
export function checkedPath(path: unknown): string {
  const shown = JSON.stringify(String(path).slice(0, 80));
  if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH_CHARS) {
    throw new Error(`uploadSection: bad file path ${shown}`);
  }
  if (/[\0\\]/.test(path) || path.startsWith('/') || /^[A-Za-z]:/.test(path)) {
    throw new Error(`uploadSection: refused file path ${shown} (absolute, NUL or backslash)`);
  }
  const segments = path.split('/');
  if (
    segments.length > MAX_DEPTH ||
    segments.some((s) => s === '' || s === '.' || s === '..' || s.length > MAX_SEGMENT_CHARS)
  ) {
    throw new Error(`uploadSection: refused file path ${shown} (empty, '.' or '..' parts)`);
  }
  return path;
}
