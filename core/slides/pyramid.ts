// DeepZoom pyramids of section images, built once with libvips (sharp) and cached on disk by content.
//
// Layout of the cache folder:
//   <cacheDir>/<key>/slide.dzi, slide_files/<level>/<col>_<row>.jpeg   the pyramid
//   <cacheDir>/<key>/slide.json                                       completion marker (written last)
//   <cacheDir>/.keys/<hash of path>.json                              file stat -> key, so reopening skips hashing
//   <cacheDir>/.build-<key>-<pid>-<random>/                           a build in progress (renamed to <key> when done)
//
// A pyramid only ever appears under <key> by an atomic rename of a finished build folder, so a killed build
// leaves a temp folder (removed on the next start), never a half-written pyramid that looks complete.

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fromFile } from 'geotiff';
import sharp, { type Sharp, type SharpOptions } from 'sharp';
import type { SlideInfo } from '../api/api.js';
import { processAlive } from '../process-alive.js';
import { DataError } from '../readers/errors.js';
import type { SectionImage } from '../section/section.js';

/** Tile side without overlap: 254 + 2 x 1 px overlap = 256 px tiles, OpenSeadragon's default for DeepZoom. */
export const TILE_SIZE = 254;
export const TILE_OVERLAP = 1;
const JPEG_QUALITY = 85;
/** Bump when anything above changes: pyramids cached under another recipe are rebuilt. */
const RECIPE = 1;

const MARKER = 'slide.json';
const DZ_NAME = 'slide';
const TEMP_PREFIX = '.build-';
const KEYS_DIR = '.keys';
const KEY_PATTERN = /^[0-9a-f]{64}$/;

/** Temp folders this process is writing now: start-up cleanup must leave them alone. */
const activeBuilds = new Set<string>();

interface Marker {
  readonly recipe: number;
  readonly slide: SlideInfo;
}

export class SlideCache {
  readonly dir: string;
  private readonly building = new Map<string, Promise<SlideInfo>>();
  private readonly ready: Promise<void>;

  constructor(cacheDir: string) {
    this.dir = path.resolve(cacheDir);
    useAllCores();
    // Best effort: a cache folder that cannot be cleaned (or created) shows up as an error of the build itself.
    this.ready = removeStaleBuilds(this.dir).catch(() => undefined);
  }

  /** Resolves once the start-up tidying of the cache folder (created if missing) is over. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  /** The slide's pyramid: built on first call (concurrent calls share one build), read from disk after. */
  async pyramid(image: SectionImage): Promise<SlideInfo> {
    await this.ready;
    const key = await imageKey(image, this.dir);
    const cached = await readMarker(path.join(this.dir, key));
    if (cached) return cached;
    let build = this.building.get(key);
    if (!build) {
      build = this.build(key, image).finally(() => this.building.delete(key));
      this.building.set(key, build);
    }
    return build;
  }

  /** Path of one tile, or null when the tile does not exist or the request could point outside the cache. */
  tileFile(key: string, level: number, col: number, row: number): string | null {
    if (!KEY_PATTERN.test(key) || ![level, col, row].every(isIndex)) return null;
    return this.existingInside(path.join(key, `${DZ_NAME}_files`, String(level), `${col}_${row}.jpeg`));
  }

  /** Path of the slide's `.dzi` descriptor, or null. */
  dziFile(key: string): string | null {
    return KEY_PATTERN.test(key) ? this.existingInside(path.join(key, `${DZ_NAME}.dzi`)) : null;
  }

  private existingInside(relative: string): string | null {
    const file = path.resolve(this.dir, relative);
    // Belt and braces: the inputs are validated, but never hand out a path outside the cache.
    if (!file.startsWith(this.dir + path.sep)) return null;
    return existsSync(file) ? file : null;
  }

  private async build(key: string, image: SectionImage): Promise<SlideInfo> {
    const target = path.join(this.dir, key);
    const temp = path.join(this.dir, `${TEMP_PREFIX}${key}-${process.pid}-${randomBytes(4).toString('hex')}`);
    activeBuilds.add(temp);
    try {
      await fs.mkdir(temp, { recursive: true });
      const { width, height } = await writeTiles(image, path.join(temp, `${DZ_NAME}.dz`));
      const slide: SlideInfo = { key, width, height, tileSize: TILE_SIZE, overlap: TILE_OVERLAP, format: 'jpeg' };
      const marker: Marker = { recipe: RECIPE, slide };
      await fs.writeFile(path.join(temp, MARKER), JSON.stringify(marker));
      await publish(temp, target);
      // Another process may have published the same key first; its pyramid is as good as ours.
      return (await readMarker(target)) ?? slide;
    } finally {
      activeBuilds.delete(temp);
      await fs.rm(temp, { recursive: true, force: true });
    }
  }
}

function isIndex(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/** libvips defaults to one thread on some machines; tiling runs ~2x faster with two. Process-wide setting. */
function useAllCores(): void {
  const cores = os.availableParallelism();
  if (sharp.concurrency() < cores) sharp.concurrency(cores);
}

async function readMarker(slideDir: string): Promise<SlideInfo | null> {
  try {
    const marker = JSON.parse(await fs.readFile(path.join(slideDir, MARKER), 'utf8')) as Marker;
    return marker.recipe === RECIPE ? marker.slide : null;
  } catch {
    return null;
  }
}

/** Moves a finished build to its final place, replacing an outdated (other recipe or unmarked) pyramid. */
async function publish(temp: string, target: string): Promise<void> {
  if (existsSync(target) && !(await readMarker(target))) {
    const trash = `${temp}-old`;
    await fs.rename(target, trash).catch(() => undefined);
    await fs.rm(trash, { recursive: true, force: true });
  }
  try {
    await fs.rename(temp, target);
  } catch (error) {
    // ENOTEMPTY/EEXIST: a concurrent build of the same key won the race.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EPERM') throw error;
  }
}

/** Removes temp folders of builds whose process is gone (killed, crashed, power cut). */
async function removeStaleBuilds(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (const name of await fs.readdir(dir)) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const full = path.join(dir, name);
    const pid = Number(name.slice(TEMP_PREFIX.length).split('-')[1]);
    const stale = pid === process.pid ? !activeBuilds.has(full) : !processAlive(pid);
    if (stale) await fs.rm(full, { recursive: true, force: true });
  }
}

// ---- content keys -------------------------------------------------------------------------------------------

const pixelKeys = new WeakMap<Uint8Array, string>();

/** sha256 of the image content: of the file's bytes, or of the embedded pixels and their shape. */
export async function imageKey(image: SectionImage, cacheDir: string): Promise<string> {
  if (image.kind === 'file') return fileKey(path.resolve(image.path), cacheDir);
  let key = pixelKeys.get(image.data);
  if (!key) {
    const hash = createHash('sha256').update(`pixels ${image.width}x${image.height}x${image.channels}\n`);
    key = hash.update(image.data).digest('hex');
    pixelKeys.set(image.data, key);
  }
  return key;
}

interface KeyMemo {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly key: string;
}

/**
 * Hashing runs at ~0.75 GB/s here: nothing for a 4 MB JPEG, seconds for a multi-GB slide. So the key is remembered
 * per path with the file's size, mtime and inode, and reopening an unchanged file costs one stat.
 */
async function fileKey(file: string, cacheDir: string): Promise<string> {
  const stat = await fs.stat(file).catch((error: unknown) => {
    throw new DataError(file, 'the image file cannot be read', { cause: error });
  });
  if (!stat.isFile()) throw new DataError(file, 'the image path is not a file');
  const memoFile = path.join(cacheDir, KEYS_DIR, `${createHash('sha256').update(file).digest('hex')}.json`);
  const memo = await fs
    .readFile(memoFile, 'utf8')
    .then((text) => JSON.parse(text) as KeyMemo)
    .catch(() => null);
  if (memo && memo.size === stat.size && memo.mtimeMs === stat.mtimeMs && memo.ino === stat.ino) return memo.key;

  const key = await hashFile(file);
  const fresh: KeyMemo = { size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino, key };
  await fs.mkdir(path.dirname(memoFile), { recursive: true });
  await fs.writeFile(memoFile, JSON.stringify(fresh));
  return key;
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  } catch (error) {
    throw new DataError(file, 'the image file cannot be read', { cause: error });
  }
  return hash.digest('hex');
}

// ---- building ------------------------------------------------------------------------------------------------

export interface Source {
  /** Names the input in errors: the image file, or where embedded pixels came from. */
  readonly name: string;
  /** Size of the page that `open` reads. */
  readonly width: number;
  readonly height: number;
  readonly open: () => Sharp;
}

/** Writes `<out without .dz>.dzi` and `_files/`; returns the pyramid's full-resolution size. */
async function writeTiles(image: SectionImage, out: string): Promise<{ width: number; height: number }> {
  const source = image.kind === 'file' ? await fileSource(image.path) : pixelSource(image);
  try {
    const info = await asRgb(source.open())
      .jpeg({ quality: JPEG_QUALITY })
      .tile({ size: TILE_SIZE, overlap: TILE_OVERLAP, layout: 'dz' })
      .toFile(out);
    return { width: info.width, height: info.height };
  } catch (error) {
    throw new DataError(source.name, `cannot build the slide pyramid: ${describe(error)}`, { cause: error });
  }
}

/** Every slide becomes 8-bit sRGB on white: alpha is flattened, grey and 16-bit images are converted. */
export function asRgb(image: Sharp): Sharp {
  return image.flatten({ background: '#ffffff' }).toColourspace('srgb');
}

/**
 * libvips streams from the file (sequential rows for JPEG/PNG, tiles for tiled TIFF), so a slide is never decoded
 * whole into memory. Multi-page TIFFs (pyramidal TIFF, Aperio SVS with thumbnail/label/macro pages) use their
 * largest page, the full-resolution level.
 */
export async function fileSource(file: string): Promise<Source> {
  const options: SharpOptions = { limitInputPixels: false, failOn: 'error' };
  const metadata = await sharp(file, options)
    .metadata()
    .catch((error: unknown) => {
      throw new DataError(file, `not a readable image: ${describe(error)}`, { cause: error });
    });
  const page = metadata.format === 'tiff' ? await fullResolutionPage(file) : 0;
  const { width, height } = page === 0 ? metadata : await sharp(file, { ...options, page }).metadata();
  return { name: file, width, height, open: () => sharp(file, { ...options, page }) };
}

/** TIFF compressions of JPEG 2000 (Aperio 33003/33005, 34712): libvips here has no decoder for them. */
const JPEG_2000 = new Set([33003, 33004, 33005, 34712]);
const J2K_PROBLEM = 'JPEG 2000 compressed TIFF/SVS is not supported (re-save it with JPEG compression)';

/**
 * Index of the TIFF page with the most pixels, read from the page headers. Checks its compression up front:
 * libvips does not always fail on JPEG 2000 tiles (it may return garbage pixels), so they are refused here.
 */
async function fullResolutionPage(file: string): Promise<number> {
  const best = await largestTiffPage(file).catch(() => null);
  if (!best) return 0; // libvips can read it but geotiff cannot parse it: trust libvips' first page
  if (JPEG_2000.has(best.compression)) throw new DataError(file, J2K_PROBLEM);
  return best.page;
}

async function largestTiffPage(file: string): Promise<{ page: number; pixels: number; compression: number }> {
  const tiff = await fromFile(file);
  try {
    let best = { page: 0, pixels: -1, compression: 1 };
    const count = Math.min(await tiff.getImageCount(), 64);
    for (let page = 0; page < count; page++) {
      const ifd = await tiff.getImage(page);
      const pixels = ifd.getWidth() * ifd.getHeight();
      if (pixels > best.pixels) best = { page, pixels, compression: Number(ifd.fileDirectory.getValue('Compression')) };
    }
    return best;
  } finally {
    await tiff.close();
  }
}

export function pixelSource(image: Extract<SectionImage, { kind: 'pixels' }>): Source {
  const { width, height, channels, data, origin } = image;
  if (data.length !== width * height * channels) {
    throw new DataError(origin, `the image has ${data.length} bytes, not ${width}x${height}x${channels}`);
  }
  return { name: origin, width, height, open: () => sharp(data, { raw: { width, height, channels } }) };
}

function describe(error: unknown): string {
  const message = (error instanceof Error ? error.message : String(error)).trim().split('\n')[0];
  return /jp2k|jpeg ?2000/i.test(message) ? J2K_PROBLEM : message;
}
