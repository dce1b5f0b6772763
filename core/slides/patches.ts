// Square H&E patches around spots at a fixed physical size, resampled to N x N px: the image half of the
// image-gene models.
//
// Speed: calling sharp once per spot would decode a 9000 px JPEG once per spot. Instead the image is decoded once,
// already shrunk so that a patch spans about N px (sharp/libvips), and every patch is then cut from that raster
// with bilinear sampling in JS. Images whose shrunk copy would not fit the memory budget are decoded in
// horizontal bands instead, each band holding whole patches.

import { stat } from 'node:fs/promises';
import path from 'node:path';
import { DataError } from '../readers/errors.js';
import type { Section, SectionImage, SpotTable } from '../section/section.js';
import { asRgb, fileSource, pixelSource } from './pyramid.js';

export const DEFAULT_PATCH_PIXELS = 112;
/** Patch side relative to the spot diameter: the spot plus a margin of context. */
export const DEFAULT_PATCH_SPOT_DIAMETERS = 1.25;
const DEFAULT_MEMORY_BUDGET = 1 << 30;
const WHITE = 255;

export interface PatchOptions {
  /** Side of the square in microns (default 1.25 spot diameters). */
  readonly sizeMicrons?: number;
  /** Side of the output patches in pixels (default 112). */
  readonly pixels?: number;
  /** Most bytes of decoded image held at once; larger images are decoded in bands (default 1 GiB). */
  readonly memoryBudget?: number;
}

export interface PatchBatch {
  /** `count` patches of `size` x `size` RGB pixels, row-major, in the order the spots were asked for. */
  readonly data: Uint8Array;
  readonly size: number;
  readonly count: number;
  readonly sizeMicrons: number;
}

/** What patch cutting needs of a section (a whole Section will do). */
export type PatchSection = Pick<Section, 'source' | 'image' | 'micronsPerPixel' | 'spotDiameterMicrons'> & {
  readonly spots: Pick<SpotTable, 'x' | 'y'>;
};

/**
 * Cuts the square patch centred on each spot. Spots are indices into `section.spots`; parts of a patch outside
 * the image are white.
 */
export async function extractPatches(
  section: PatchSection,
  spots: ArrayLike<number>,
  options: PatchOptions = {},
): Promise<PatchBatch> {
  const plan = planPatches(section, options);
  const centres = spotCentres(section, spots, plan);
  const data = new Uint8Array(spots.length * plan.size * plan.size * 3).fill(WHITE);
  for (const band of bands(centres, plan)) {
    if (band.patches.length === 0) continue;
    const raster = await decode(plan, band.top, band.rows);
    for (const patch of band.patches) cutPatch(raster, centres[patch], plan, data, patch * plan.size * plan.size * 3);
  }
  return { data, size: plan.size, count: spots.length, sizeMicrons: plan.sizeMicrons };
}

// ---- geometry -------------------------------------------------------------------------------------------------

interface Plan {
  readonly image: SectionImage;
  readonly size: number;
  readonly sizeMicrons: number;
  /** The decoded raster: the image shrunk (never enlarged) so that a patch spans about `size` px. */
  readonly width: number;
  readonly height: number;
  /** Patch side in raster pixels (x and y differ by rounding of the raster size). */
  readonly sideX: number;
  readonly sideY: number;
  readonly memoryBudget: number;
}

function planPatches(section: PatchSection, options: PatchOptions): Plan {
  const { image, micronsPerPixel } = section;
  if (!image) throw new DataError(section.source, 'the section has no H&E image to cut patches from');
  if (!micronsPerPixel) throw new DataError(section.source, 'the pixel size (microns per pixel) is unknown');
  const size = options.pixels ?? DEFAULT_PATCH_PIXELS;
  const sizeMicrons = options.sizeMicrons ?? DEFAULT_PATCH_SPOT_DIAMETERS * section.spotDiameterMicrons;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`patch pixels must be a positive integer: ${size}`);
  if (!(sizeMicrons > 0)) throw new RangeError(`patch size must be positive: ${sizeMicrons} um`);

  const side = (sizeMicrons / micronsPerPixel) * image.scale; // in image pixels
  const shrink = Math.min(1, size / side);
  const width = Math.max(1, Math.round(image.width * shrink));
  const height = Math.max(1, Math.round(image.height * shrink));
  return {
    image,
    size,
    sizeMicrons,
    width,
    height,
    sideX: side * (width / image.width),
    sideY: side * (height / image.height),
    memoryBudget: options.memoryBudget ?? DEFAULT_MEMORY_BUDGET,
  };
}

interface Centre {
  /** Patch centre in raster pixels (continuous: pixel i spans [i, i+1)). */
  readonly x: number;
  readonly y: number;
}

function spotCentres(section: PatchSection, spots: ArrayLike<number>, plan: Plan): Centre[] {
  const { x, y } = section.spots;
  const toRasterX = (plan.image.scale * plan.width) / plan.image.width;
  const toRasterY = (plan.image.scale * plan.height) / plan.image.height;
  return Array.from(spots, (spot) => {
    if (!Number.isInteger(spot) || spot < 0 || spot >= x.length) {
      throw new RangeError(`no spot ${spot} (the section has ${x.length})`);
    }
    return { x: x[spot] * toRasterX, y: y[spot] * toRasterY };
  });
}

interface Band {
  /** First raster row and number of rows to decode. */
  readonly top: number;
  readonly rows: number;
  /** Positions (in the request) of the patches that lie wholly inside this band. */
  readonly patches: number[];
}

/** Groups patches into bands of raster rows: one band for the whole image when it fits the memory budget. */
function bands(centres: readonly Centre[], plan: Plan): Band[] {
  const drawable = centres.flatMap((c, i) => (Number.isFinite(c.x) && Number.isFinite(c.y) ? [i] : []));
  const rowBytes = plan.width * 3;
  if (plan.height * rowBytes <= plan.memoryBudget) return [{ top: 0, rows: plan.height, patches: drawable }];

  const span = (i: number): [number, number] => {
    const top = Math.floor(centres[i].y - plan.sideY / 2) - 1;
    const bottom = Math.ceil(centres[i].y + plan.sideY / 2) + 1;
    return [clamp(top, 0, plan.height), clamp(bottom, 0, plan.height)];
  };
  const bandRows = Math.max(Math.floor(plan.memoryBudget / rowBytes), Math.ceil(plan.sideY) + 4);
  const order = drawable.filter((i) => span(i)[1] > span(i)[0]).sort((a, b) => span(a)[0] - span(b)[0]);
  const result: Band[] = [];
  for (let k = 0; k < order.length;) {
    const top = span(order[k])[0];
    const bottom = Math.min(plan.height, top + bandRows);
    const patches: number[] = [];
    // All patches have the same height, so their bottoms are sorted like their tops.
    while (k < order.length && span(order[k])[1] <= bottom) patches.push(order[k++]);
    result.push({ top, rows: bottom - top, patches });
  }
  return result;
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), high);
}

// ---- decoding -----------------------------------------------------------------------------------------------

interface Raster {
  /** RGB rows `top .. top + rows` of the `width`-wide decoded image. */
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly top: number;
}

async function decode(plan: Plan, top: number, rows: number): Promise<Raster> {
  const whole = top === 0 && rows === plan.height;
  const data = whole ? await cachedWhole(plan) : await decodeRows(plan, top, rows);
  return { data, width: plan.width, height: plan.height, top };
}

async function decodeRows(plan: Plan, top: number, rows: number): Promise<Uint8Array> {
  const { image, width, height } = plan;
  const source = image.kind === 'file' ? await fileSource(image.path) : pixelSource(image);
  if (source.width !== image.width || source.height !== image.height) {
    // Spots are placed through the section's image size: another size would misplace every patch.
    const sizes = `${source.width}x${source.height} px, but the section says ${image.width}x${image.height}`;
    throw new DataError(source.name, `the image is ${sizes}`);
  }
  if (image.kind === 'pixels' && image.channels === 3 && width === image.width && top === 0 && rows === height) {
    return image.data; // already RGB at the right size
  }
  try {
    let pipeline = asRgb(source.open());
    if (width !== image.width || height !== image.height) {
      // fastShrinkOnLoad off: JPEG shrink-on-load may round sizes, which would shift patch centres.
      pipeline = pipeline.resize(width, height, { fit: 'fill', fastShrinkOnLoad: false });
    }
    if (top !== 0 || rows !== height) pipeline = pipeline.extract({ left: 0, top, width, height: rows });
    const buffer = await pipeline.raw().toBuffer();
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new DataError(source.name, `cannot decode the image: ${reason}`, { cause: error });
  }
}

// A few decoded rasters stay in memory: training and the UI ask for patches of the same slide again and again.
const CACHE_ENTRIES = 2;
const rasterCache = new Map<string, Promise<Uint8Array>>();
const pixelIds = new WeakMap<Uint8Array, number>();
let nextPixelId = 1;

async function cachedWhole(plan: Plan): Promise<Uint8Array> {
  const key = `${await imageIdentity(plan.image)}@${plan.width}x${plan.height}`;
  let raster = rasterCache.get(key);
  if (raster) {
    rasterCache.delete(key); // re-insert: Map order is the LRU order
  } else {
    raster = decodeRows(plan, 0, plan.height);
    raster.catch(() => rasterCache.delete(key));
  }
  rasterCache.set(key, raster);
  while (rasterCache.size > CACHE_ENTRIES) rasterCache.delete(rasterCache.keys().next().value!);
  return raster;
}

async function imageIdentity(image: SectionImage): Promise<string> {
  if (image.kind === 'pixels') {
    if (!pixelIds.has(image.data)) pixelIds.set(image.data, nextPixelId++);
    return `pixels:${pixelIds.get(image.data)}`;
  }
  const file = path.resolve(image.path);
  const info = await stat(file).catch(() => null);
  return `file:${file}:${info?.size}:${info?.mtimeMs}`;
}

/** Drops the decoded images kept between calls. */
export function clearPatchCache(): void {
  rasterCache.clear();
}

// ---- sampling -----------------------------------------------------------------------------------------------

/** Where one output column (or row) samples the raster: two neighbouring pixels and the weight of the second. */
interface Taps {
  /** Index of the first pixel, or -1 where the sample falls outside the image (white). */
  readonly first: Int32Array;
  readonly second: Int32Array;
  readonly weight: Float64Array;
}

/** Output pixel i samples at the centre of the i-th of `n` equal steps across [centre - side/2, centre + side/2]. */
function taps(centre: number, side: number, n: number, extent: number): Taps {
  const first = new Int32Array(n);
  const second = new Int32Array(n);
  const weight = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = centre - side / 2 + ((i + 0.5) * side) / n;
    if (!(u >= 0 && u < extent)) {
      first[i] = second[i] = -1;
      continue;
    }
    // Pixel k's centre is at k + 0.5; clamp so samples in the image's outer half-pixel repeat the edge.
    const p = clamp(u - 0.5, 0, extent - 1);
    first[i] = Math.floor(p);
    second[i] = Math.min(first[i] + 1, extent - 1);
    weight[i] = p - first[i];
  }
  return { first, second, weight };
}

function cutPatch(raster: Raster, centre: Centre, plan: Plan, out: Uint8Array, at: number): void {
  const n = plan.size;
  const cols = taps(centre.x, plan.sideX, n, raster.width);
  const rows = taps(centre.y, plan.sideY, n, raster.height);
  const { data, width, top } = raster;
  let o = at;
  for (let j = 0; j < n; j++) {
    if (rows.first[j] < 0) {
      o += n * 3; // the output starts white
      continue;
    }
    const row0 = (rows.first[j] - top) * width * 3;
    const row1 = (rows.second[j] - top) * width * 3;
    const fy = rows.weight[j];
    for (let i = 0; i < n; i++, o += 3) {
      if (cols.first[i] < 0) continue;
      const fx = cols.weight[i];
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const a0 = row0 + cols.first[i] * 3;
      const a1 = row0 + cols.second[i] * 3;
      const b0 = row1 + cols.first[i] * 3;
      const b1 = row1 + cols.second[i] * 3;
      // Weights sum to 1, so the result stays in 0..255; + 0.5 then truncation rounds.
      out[o] = data[a0] * w00 + data[a1] * w01 + data[b0] * w10 + data[b1] * w11 + 0.5;
      out[o + 1] = data[a0 + 1] * w00 + data[a1 + 1] * w01 + data[b0 + 1] * w10 + data[b1 + 1] * w11 + 0.5;
      out[o + 2] = data[a0 + 2] * w00 + data[a1 + 2] * w01 + data[b0 + 2] * w10 + data[b1 + 2] * w11 + 0.5;
    }
  }
}
