// HDF5 access for the 10x `.h5` matrix and AnnData `.h5ad` readers. h5wasm aborts or reads garbage on files it
// should refuse, so files are checked before opening, and every failure becomes a DataError naming the file.

import { open, stat } from 'node:fs/promises';
import type { Dataset, File as H5File, Group } from 'h5wasm/node';
import { DataError, readingFile } from './errors.js';
import { isFile } from './files.js';

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Offset of the HDF5 superblock (0, 512, 1024, ... as a user block allows), or -1 when the file is no HDF5. */
async function superblockOffset(file: string): Promise<number> {
  const handle = await open(file, 'r').catch(() => null);
  if (!handle) return -1;
  try {
    const { size } = await handle.stat();
    const probe = Buffer.alloc(HDF5_SIGNATURE.length);
    for (let offset = 0; offset + probe.length <= size; offset = offset === 0 ? 512 : offset * 2) {
      await handle.read(probe, 0, probe.length, offset);
      if (probe.equals(HDF5_SIGNATURE)) return offset;
    }
    return -1;
  } finally {
    await handle.close();
  }
}

/** Content check (signature bytes), not a name check. */
export async function isHdf5(file: string): Promise<boolean> {
  return (await isFile(file)) && (await superblockOffset(file)) >= 0;
}

/**
 * Checks what h5wasm handles badly before opening: a missing file, no HDF5 signature, and truncation (the
 * superblock records the end-of-file address; a copy cut short is smaller).
 */
async function checkHdf5File(file: string): Promise<void> {
  const info = await stat(file).catch(() => null);
  if (!info) throw new DataError(file, 'file not found');
  if (!info.isFile()) throw new DataError(file, 'is a folder, expected an HDF5 file');
  const offset = await superblockOffset(file);
  if (offset < 0) throw new DataError(file, 'not an HDF5 file (no HDF5 signature): damaged, or another format');
  const end = await storedEndOfFile(file, offset);
  if (end !== null && info.size < end) {
    throw new DataError(file, `truncated: ${info.size} bytes on disk, but its HDF5 header says ${end}`);
  }
}

/** base address + end-of-file address from superblock versions 0-3, or null when it cannot tell. */
async function storedEndOfFile(file: string, offset: number): Promise<number | null> {
  const handle = await open(file, 'r');
  try {
    const sb = Buffer.alloc(64);
    const { bytesRead } = await handle.read(sb, 0, sb.length, offset);
    const version = sb[8];
    const sizeOfOffsets = version <= 1 ? sb[13] : sb[9];
    const base = version === 0 ? 24 : version === 1 ? 28 : 12;
    if (sizeOfOffsets !== 8 || version > 3 || base + 3 * 8 > bytesRead) return null;
    const baseAddress = sb.readBigUInt64LE(base);
    const eof = sb.readBigUInt64LE(base + 16); // after the base address and one more address
    if (eof === 0xffffffffffffffffn) return null;
    return Number(baseAddress + eof);
  } finally {
    await handle.close();
  }
}

type Hdf5Library = typeof import('h5wasm/node').default;

let instance = 0;
let library: Promise<Hdf5Library> | null = null;

/**
 * The HDF5 library. Once it has failed inside wasm on a damaged file (abort, memory fault) its state cannot be
 * trusted, and every later read would fail: `discardLibrary` drops it and the next call loads a fresh instance (to
 * Node, the module URL with a new query is a new module, with its own wasm memory).
 */
function hdf5Library(): Promise<Hdf5Library> {
  library ??= (async () => {
    const url = import.meta.resolve('h5wasm/node') + (instance > 0 ? `?instance=${instance}` : '');
    const lib = ((await import(url)) as { default: Hdf5Library }).default;
    // HDF5 errors become exceptions instead of HDF5-DIAG lines on stderr and garbage reads.
    (await lib.ready).activate_throwing_error_handler();
    return lib;
  })();
  return library;
}

function discardLibrary(): void {
  instance++;
  library = null;
}

/** Whether an error came from inside the wasm library (an abort or a memory fault), not from HDF5's checks. */
function isWasmFailure(error: unknown): boolean {
  const errors = [error, error instanceof Error ? error.cause : undefined];
  return errors.some((e) => e instanceof Error && e.name === 'RuntimeError');
}

/** Whether an h5wasm entity is a group (by its tag: entities of a fresh library instance are other classes). */
export function isGroup(entity: unknown): entity is Group {
  return (entity as { type?: string } | null)?.type === 'Group';
}

export function isDataset(entity: unknown): entity is Dataset {
  return (entity as { type?: string } | null)?.type === 'Dataset';
}

/**
 * Opens an HDF5 file read-only and runs `use` on it; any failure (HDF5 errors, h5wasm aborts on damaged files,
 * plain Errors from the model) becomes a DataError naming the file. The file is always closed.
 */
export async function withHdf5<T>(file: string, what: string, use: (f: H5File) => T): Promise<T> {
  await checkHdf5File(file);
  const h5wasm = await hdf5Library();
  try {
    return await readHdf5(h5wasm, file, what, use);
  } catch (error) {
    if (isWasmFailure(error) || isWasmFailure((error as { cause?: unknown })?.cause)) discardLibrary();
    throw error;
  }
}

async function readHdf5<T>(h5wasm: Hdf5Library, file: string, what: string, use: (f: H5File) => T): Promise<T> {
  let f: H5File;
  try {
    f = new h5wasm.File(file, 'r');
  } catch (error) {
    throw new DataError(file, `cannot open the HDF5 file: ${hdf5Reason(error)}`, { cause: error });
  }
  try {
    return await readingFile(file, what, () => {
      try {
        return use(f);
      } catch (error) {
        if (error instanceof DataError) throw error;
        throw new Error(hdf5Reason(error), { cause: error });
      }
    });
  } finally {
    try {
      f.close();
    } catch {
      // A file the library choked on may not close cleanly; there is nothing left to release.
    }
  }
}

/** The root cause from an HDF5-DIAG error stack (its innermost frame), or the message of any other error. */
function hdf5Reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // h5wasm's abort() and wasm memory faults on damaged files surface as WebAssembly RuntimeErrors.
  if (error instanceof Error && error.name === 'RuntimeError')
    return `damaged HDF5 file (the HDF5 library failed: ${message})`;
  if (!message.includes('HDF5-DIAG')) return message;
  const frames = [...message.matchAll(/#\d+:.*?\(\): (.*)$/gm)];
  return `HDF5 error: ${frames.length > 0 ? frames[frames.length - 1][1].trim() : message.split('\n')[0]}`;
}

/** A group at `path` under `parent`; throws when missing or a dataset. */
export function groupAt(parent: Group, path: string): Group {
  const entity = parent.get(path);
  if (!isGroup(entity)) throw new Error(`${path} is ${entity ? 'not a group' : 'missing'}`);
  return entity;
}

/** A dataset at `path` under `g`; throws when missing or a group. */
export function datasetAt(g: Group, path: string): Dataset {
  const entity = g.get(path);
  if (!isDataset(entity)) throw new Error(`${joinPath(g, path)} is ${entity ? 'not a dataset' : 'missing'}`);
  return entity;
}

/** Numeric values of a dataset (BigInt arrays for 64-bit integers, as h5wasm gives them). */
export function numbersAt(g: Group, path: string): ArrayLike<number> | ArrayLike<bigint> {
  const value = datasetAt(g, path).value;
  if (typeof value === 'number' || typeof value === 'bigint') return [value] as number[] | bigint[];
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return value as ArrayLike<number> | ArrayLike<bigint>;
  throw new Error(`${joinPath(g, path)} is not numeric`);
}

export function stringsAt(g: Group, path: string): string[] {
  const value = datasetAt(g, path).value;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new Error(`${joinPath(g, path)} is not a list of strings`);
}

/** An attribute's value (typed arrays as plain arrays), or undefined when absent. */
export function attribute(entity: Group | Dataset, name: string): unknown {
  const attrs = entity.attrs;
  if (!(name in attrs)) return undefined;
  const value = attrs[name].value;
  return ArrayBuffer.isView(value) && !(value instanceof DataView) ? Array.from(value as ArrayLike<unknown>) : value;
}

function joinPath(g: Group, path: string): string {
  return `${g.path === '/' ? '' : g.path}/${path}`;
}
