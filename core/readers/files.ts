// What the format readers share about their input files: reading text (gzipped or not, by content), folders,
// Space Ranger scale factors, checking images cheaply, unique ids, and joining a count matrix to its positions.

import { open, readdir, readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import sharp from 'sharp';
import type { SpotTable } from '../section/section.js';
import type { SparseCounts } from '../section/sparse-counts.js';
import { DataError, readingFile } from './errors.js';

const gunzip = promisify(zlib.gunzip);

/** Ensembl gene ids (ENSG00000141510, ENSMUSG00000064339.1): a gene column holding these is ids, not symbols. */
export const ENSEMBL_ID = /^ENS[A-Z]*G\d+(?:\.\d+)?$/;

// ---------------------------------------------------------------------------------------------------------------
// Files and folders

export async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isFile() ?? false;
}

export async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() ?? false;
}

/** Names of the folders in `dir`, hidden ones left out, in natural order (section2 before section10). */
export async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

/** Up to `length` bytes from `position`. */
export async function readBytes(file: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

export function isGzip(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** The whole file, gunzipped when it starts with the gzip magic (whatever its name says), without a UTF-8 BOM. */
export async function readDecompressed(file: string): Promise<Buffer> {
  const raw = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new DataError(file, error.code === 'ENOENT' ? 'file not found' : `cannot read: ${error.message}`);
  });
  const buf = isGzip(raw) ? await readingFile(file, 'corrupt or truncated gzip data', () => gunzip(raw)) : raw;
  return buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? buf.subarray(3) : buf;
}

export async function readText(file: string): Promise<string> {
  return (await readDecompressed(file)).toString('utf8');
}

// ---------------------------------------------------------------------------------------------------------------
// Scale factors

/** Space Ranger scale factors by name; only positive numbers are kept, so a missing key means "not given". */
export type Scalefactors = Readonly<Partial<Record<string, number>>>;

/** A scalefactors_json.json as Space Ranger writes it (legacy ST folders copy the format). */
export async function readScalefactors(file: string): Promise<Scalefactors> {
  const text = await readText(file);
  const json = await readingFile(file, 'not valid JSON', () => JSON.parse(text) as unknown);
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new DataError(file, 'expected a JSON object of scale factors');
  }
  return Object.fromEntries(
    Object.entries(json).filter(([, v]) => typeof v === 'number' && Number.isFinite(v) && v > 0),
  ) as Scalefactors;
}

// ---------------------------------------------------------------------------------------------------------------
// Images

export type ImageFormat = 'png' | 'jpeg' | 'tiff';

export interface ImageInfo {
  readonly path: string;
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
  readonly hasAlpha: boolean;
}

/** Below this standard deviation (of 0..255 values) in every colour channel an image is one flat colour. */
export const FLAT_STDEV = 2;

const UNDECODABLE = 'cannot decode the image (truncated or corrupt?)';

/** The format from the signature bytes, or null. */
export function imageFormat(head: Buffer): ImageFormat | null {
  if (head.length >= 8 && head.readUInt32BE(0) === 0x89504e47 && head.readUInt32BE(4) === 0x0d0a1a0a) return 'png';
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head.length >= 4 && (head.readUInt32BE(0) === 0x49492a00 || head.readUInt32BE(0) === 0x4d4d002a)) return 'tiff';
  return null;
}

/**
 * Format, size and alpha of an image file, without decoding it (a 9272 x 9923 H&E JPEG takes seconds): the
 * signature, the end of the file, then the header.
 */
export async function inspectImage(path: string): Promise<ImageInfo> {
  const head = await readingFile(path, 'cannot read', () => readBytes(path, 0, 16));
  const format = imageFormat(head);
  if (!format) throw new DataError(path, 'not a PNG, JPEG or TIFF image');
  return readingFile(path, UNDECODABLE, async () => {
    await checkImageEnd(path, format);
    const meta = await sharp(path).metadata();
    if (!meta.width || !meta.height) throw new Error('no image size in the header');
    return { path, format, width: meta.width, height: meta.height, hasAlpha: meta.hasAlpha };
  });
}

/**
 * A truncated PNG or JPEG still has a valid header, so its damage would only show as grey or missing tiles later.
 * Their ends are cheap to check: a PNG ends with its IEND chunk, a JPEG with the EOI marker (FF D9, which cannot
 * occur inside entropy-coded data). Trailing padding is tolerated.
 */
async function checkImageEnd(file: string, format: ImageFormat): Promise<void> {
  if (format === 'tiff') return;
  const size = (await stat(file)).size;
  const tail = await readBytes(file, Math.max(0, size - 256), 256);
  const ok = format === 'png' ? tail.includes('IEND', 0, 'latin1') : tail.includes(Buffer.from([0xff, 0xd9]));
  if (!ok) {
    const marker = format === 'png' ? 'IEND chunk' : 'end-of-image marker';
    throw new Error(`the ${format.toUpperCase()} image is truncated or corrupt (no ${marker} at the end)`);
  }
}

/** One flat colour (a placeholder). Decodes the whole image: only for images that may be placeholders. */
export async function isBlankImage(image: ImageInfo): Promise<boolean> {
  const stats = await readingFile(image.path, UNDECODABLE, () => sharp(image.path).stats());
  const colour = image.hasAlpha ? stats.channels.slice(0, -1) : stats.channels;
  return colour.every((c) => c.stdev < FLAT_STDEV);
}

// ---------------------------------------------------------------------------------------------------------------
// Spot ids and positions

/**
 * Throws naming the first id that appears twice; `where(first, second)` says where its two entries are. A plain
 * Error unless `file` is given: callers reading HDF5 add the file themselves.
 */
export function checkUnique(
  ids: readonly string[],
  what: string,
  where: (first: number, second: number) => string = (a, b) => `entries ${a + 1} and ${b + 1}`,
  file?: string,
): void {
  const seen = new Map<string, number>();
  ids.forEach((id, i) => {
    const first = seen.get(id);
    if (first === undefined) {
      seen.set(id, i);
      return;
    }
    const problem = `${what} ${id} appears twice (${where(first, i)})`;
    throw file === undefined ? new Error(problem) : new DataError(file, problem);
  });
}

/** Per-spot columns of a positions table, one row per position. */
export type PositionColumns = Omit<SpotTable, 'ids'>;

/**
 * The spots of a count matrix (rows = `ids`) that have a position, in matrix order; `rowOf` finds an id's row in
 * `positions`. Spots without one are left out of the counts too; the caller says so (no spot left is its error).
 */
export function joinSpots(
  ids: readonly string[],
  counts: SparseCounts,
  positions: PositionColumns,
  rowOf: (id: string) => number | undefined,
): { spots: SpotTable; counts: SparseCounts } {
  const keep: number[] = [];
  const rows: number[] = [];
  ids.forEach((id, i) => {
    const row = rowOf(id);
    if (row === undefined) return;
    keep.push(i);
    rows.push(row);
  });
  const pick = (column: Float64Array) => Float64Array.from(rows, (r) => column[r]);
  const spots: SpotTable = {
    ids: keep.map((i) => ids[i]),
    x: pick(positions.x),
    y: pick(positions.y),
    inTissue: Uint8Array.from(rows, (r) => positions.inTissue[r]),
    arrayRow: pick(positions.arrayRow),
    arrayCol: pick(positions.arrayCol),
  };
  return { spots, counts: keep.length < ids.length ? counts.select(keep) : counts };
}
