import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fromFile } from 'geotiff';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../../core/readers/errors.js';
import type { SectionImage } from '../../core/section/section.js';
import { SlideCache, TILE_OVERLAP, TILE_SIZE } from '../../core/slides/pyramid.js';

const A1 = path.resolve(import.meta.dirname, '../../../shared/data/her2st/A1/image.png');
const A1_SIZE = { width: 2000, height: 2138 };

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'delst-pyramid-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function fileImage(file: string, width: number, height: number): SectionImage {
  return { kind: 'file', path: file, width, height, scale: 1 };
}

// Four flat colours, one per quadrant: any misplaced or mis-coloured tile shows in its mean colour.
const QUADRANTS = [
  [200, 30, 30],
  [30, 200, 30],
  [30, 30, 200],
  [220, 200, 40],
];
function quadrants(width: number, height: number): Buffer {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const colour = QUADRANTS[(x < width / 2 ? 0 : 1) + (y < height / 2 ? 0 : 2)];
      raw.set(colour, (y * width + x) * 3);
    }
  }
  return raw;
}

async function meanColour(input: Sharp): Promise<number[]> {
  const { data, info } = await input.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const sums = [0, 0, 0];
  for (let i = 0; i < data.length; i++) sums[i % 3] += data[i];
  return sums.map((s) => s / (info.width * info.height));
}

function expectClose(actual: number[], expected: number[], tolerance: number): void {
  actual.forEach((value, i) => expect(Math.abs(value - expected[i])).toBeLessThanOrEqual(tolerance));
}

async function levels(cache: SlideCache, key: string): Promise<number[]> {
  const files = path.join(cache.dir, key, 'slide_files');
  return (await fs.readdir(files)).filter((name) => /^\d+$/.test(name)).map(Number);
}

/** The top (full-resolution) level's tile (col, row) must show the same region of `source`. */
async function expectTileMatches(cache: SlideCache, key: string, source: Sharp, col: number, row: number) {
  const top = Math.max(...(await levels(cache, key)));
  const tile = cache.tileFile(key, top, col, row);
  expect(tile).not.toBeNull();
  const { width, height } = await sharp(tile!).metadata();
  const left = col * TILE_SIZE - (col > 0 ? TILE_OVERLAP : 0);
  const topPx = row * TILE_SIZE - (row > 0 ? TILE_OVERLAP : 0);
  const region = source.extract({ left, top: topPx, width, height });
  expectClose(await meanColour(sharp(tile!)), await meanColour(region), 3);
}

describe('SlideCache on a real slide (her2st A1, 2000 x 2138 PNG)', () => {
  let cacheDir: string;
  let key: string;

  beforeAll(async () => {
    cacheDir = path.join(tmp, 'a1');
    const slide = await new SlideCache(cacheDir).pyramid(fileImage(A1, A1_SIZE.width, A1_SIZE.height));
    key = slide.key;
    expect(slide).toEqual({ key, ...A1_SIZE, tileSize: TILE_SIZE, overlap: TILE_OVERLAP, format: 'jpeg' });
    expect(key).toMatch(/^[0-9a-f]{64}$/);
  });

  it('has ceil(log2(max side)) + 1 levels, from 1 px up to full resolution', async () => {
    const cache = new SlideCache(cacheDir);
    const found = (await levels(cache, key)).sort((a, b) => a - b);
    const count = Math.ceil(Math.log2(Math.max(A1_SIZE.width, A1_SIZE.height))) + 1;
    expect(found).toEqual([...Array(count).keys()]);
    expect(await sharp(cache.tileFile(key, 0, 0, 0)!).metadata()).toMatchObject({ width: 1, height: 1 });
    // Tile 0_0 of the top level: TILE_SIZE plus the overlap on its right and bottom edges.
    const corner = await sharp(cache.tileFile(key, count - 1, 0, 0)!).metadata();
    expect(corner).toMatchObject({ format: 'jpeg', width: TILE_SIZE + 1, height: TILE_SIZE + 1 });
    const dzi = await fs.readFile(cache.dziFile(key)!, 'utf8');
    expect(dzi).toMatch(/TileSize="254"/);
    expect(dzi).toMatch(/Width="2000"/);
  });

  it('tiles show the pixels of the source region', async () => {
    const cache = new SlideCache(cacheDir);
    // Tissue (textured), the black mask and the corner with the annotation thumbnail.
    for (const [col, row] of [
      [3, 4],
      [0, 0],
      [7, 1],
      [7, 8],
    ]) {
      await expectTileMatches(cache, key, sharp(A1), col, row);
    }
  });

  it('opens a second time from disk without rebuilding', async () => {
    const marker = path.join(cacheDir, key, 'slide.json');
    const tile = path.join(cacheDir, key, 'slide_files', '11', '0_0.jpeg');
    const before = [(await fs.stat(marker)).mtimeMs, (await fs.stat(tile)).mtimeMs];
    const slide = await new SlideCache(cacheDir).pyramid(fileImage(A1, A1_SIZE.width, A1_SIZE.height));
    expect(slide.key).toBe(key);
    expect([(await fs.stat(marker)).mtimeMs, (await fs.stat(tile)).mtimeMs]).toEqual(before);
    expect((await fs.readdir(cacheDir)).filter((name) => name.startsWith('.build-'))).toEqual([]);
  });

  it('tileFile refuses anything that could leave the cache, and answers null for missing tiles', () => {
    const cache = new SlideCache(cacheDir);
    expect(cache.tileFile(key, 11, 0, 0)).toBe(path.join(cacheDir, key, 'slide_files', '11', '0_0.jpeg'));
    expect(cache.tileFile(key, 11, 999, 0)).toBeNull();
    expect(cache.tileFile(key, 40, 0, 0)).toBeNull();
    for (const bad of ['..', '../' + key, `${key}/..`, key.toUpperCase(), key.slice(1), `${key}0`, '', '/etc']) {
      expect(cache.tileFile(bad, 0, 0, 0)).toBeNull();
    }
    for (const index of [-1, 1.5, NaN, Infinity, -0.5, 2 ** 60]) {
      expect(cache.tileFile(key, index, 0, 0)).toBeNull();
      expect(cache.tileFile(key, 11, index, 0)).toBeNull();
      expect(cache.tileFile(key, 11, 0, index)).toBeNull();
    }
    expect(cache.dziFile('../x')).toBeNull();
  });
});

describe('SlideCache builds', () => {
  const size = { width: 700, height: 500 };
  let png: string;

  beforeAll(async () => {
    png = path.join(tmp, 'quadrants.png');
    await sharp(quadrants(size.width, size.height), { raw: { ...size, channels: 3 } }).toFile(png);
  });

  it('once for concurrent requests, and rebuilds over a killed build', async () => {
    const cacheDir = path.join(tmp, 'concurrent');
    const image = fileImage(png, size.width, size.height);
    const cache = new SlideCache(cacheDir);
    let maxBuilds = 0;
    const watch = setInterval(() => {
      if (!existsSync(cacheDir)) return;
      const building = readdirSync(cacheDir).filter((name) => name.startsWith('.build-')).length;
      maxBuilds = Math.max(maxBuilds, building);
    }, 2);
    const [a, b, c] = await Promise.all([cache.pyramid(image), cache.pyramid(image), cache.pyramid(image)]);
    clearInterval(watch);
    expect(maxBuilds).toBeLessThanOrEqual(1);
    expect(b).toEqual(a);
    expect(c).toEqual(a);

    // A build killed mid-way leaves a temp folder; one that lost its marker is not complete either.
    const stale = path.join(cacheDir, `.build-${a.key}-999999999-dead`);
    await fs.mkdir(path.join(stale, 'slide_files'), { recursive: true });
    await fs.rm(path.join(cacheDir, a.key, 'slide.json'));
    const rebuilt = await new SlideCache(cacheDir).pyramid(image);
    expect(rebuilt).toEqual(a);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(path.join(cacheDir, a.key, 'slide.json'))).toBe(true);
  });

  it('from a tiled pyramidal JPEG TIFF, at full resolution', async () => {
    const big = { width: 1200, height: 1000 };
    const raw = quadrants(big.width, big.height);
    const tiff = path.join(tmp, 'pyramidal.tif');
    await sharp(raw, { raw: { ...big, channels: 3 } })
      .tiff({ tile: true, pyramid: true, compression: 'jpeg', tileWidth: 256, tileHeight: 256, quality: 90 })
      .toFile(tiff);
    expect((await sharp(tiff).metadata()).pages).toBeGreaterThan(1);
    const cache = new SlideCache(path.join(tmp, 'tiff'));
    const slide = await cache.pyramid(fileImage(tiff, big.width, big.height));
    expect(slide).toMatchObject(big);
    const source = () => sharp(raw, { raw: { ...big, channels: 3 } });
    await expectTileMatches(cache, slide.key, source(), 0, 0);
    await expectTileMatches(cache, slide.key, source(), 4, 3);
  });

  it('from an Aperio SVS-like file (YCbCr JPEG tiles with JPEGTables, thumbnail page)', async () => {
    const big = { width: 1000, height: 800 };
    const raw = quadrants(big.width, big.height);
    const svs = path.join(tmp, 'slide.svs');
    await writeSvsLike(svs, raw, big.width, big.height);
    const tiff = await fromFile(svs);
    const description = await (await tiff.getImage(0)).fileDirectory.loadValue('ImageDescription');
    expect(String(description)).toMatch(/^Aperio Image Library/);
    expect(await tiff.getImageCount()).toBe(2);

    const cache = new SlideCache(path.join(tmp, 'svs'));
    const slide = await cache.pyramid(fileImage(svs, big.width, big.height));
    expect(slide).toMatchObject(big);
    const source = () => sharp(raw, { raw: { ...big, channels: 3 } });
    await expectTileMatches(cache, slide.key, source(), 0, 0);
    await expectTileMatches(cache, slide.key, source(), 3, 3);
    await expectTileMatches(cache, slide.key, source(), 1, 2);

    // Thumbnail first: the full-resolution page is still the one tiled.
    const flipped = path.join(tmp, 'thumbnail-first.tif');
    await writeSvsLike(flipped, raw, big.width, big.height, { thumbnailFirst: true });
    expect(await new SlideCache(path.join(tmp, 'svs2')).pyramid(fileImage(flipped, 1, 1))).toMatchObject(big);
  });

  it('from embedded pixels (RGB and RGBA, alpha onto white)', async () => {
    const rgb = quadrants(size.width, size.height);
    const cache = new SlideCache(path.join(tmp, 'pixels'));
    const image: SectionImage = {
      kind: 'pixels',
      origin: 'test.h5ad#uns/spatial/lib/images/hires',
      ...size,
      channels: 3,
      data: new Uint8Array(rgb),
      scale: 0.5,
    };
    const slide = await cache.pyramid(image);
    expect(slide).toMatchObject(size);
    await expectTileMatches(cache, slide.key, sharp(rgb, { raw: { ...size, channels: 3 } }), 2, 1);

    const rgba = new Uint8Array(size.width * size.height * 4); // transparent black: white once flattened
    const clear = await cache.pyramid({ ...image, channels: 4, data: rgba });
    expect(clear.key).not.toBe(slide.key);
    expectClose(await meanColour(sharp(cache.tileFile(clear.key, 10, 1, 1)!)), [255, 255, 255], 1);

    await expect(cache.pyramid({ ...image, data: new Uint8Array(10) })).rejects.toThrow(/test\.h5ad.*bytes/);
  });
});

describe('SlideCache errors name the file', () => {
  it('for truncated JPEGs, non-images, missing files and JPEG 2000 TIFFs', async () => {
    const cache = new SlideCache(path.join(tmp, 'errors'));
    const noise = {
      width: 600,
      height: 400,
      channels: 3 as const,
      noise: { type: 'gaussian' as const, mean: 128, sigma: 40 },
    };
    const jpeg = await sharp({ create: { ...noise, background: '#fff' } })
      .jpeg()
      .toBuffer();
    const truncated = path.join(tmp, 'truncated.jpg');
    await fs.writeFile(truncated, jpeg.subarray(0, jpeg.length / 2));
    await expectDataError(cache.pyramid(fileImage(truncated, 600, 400)), truncated, /premature end|truncated/i);

    const garbage = path.join(tmp, 'garbage.png');
    await fs.writeFile(garbage, 'this is not an image');
    await expectDataError(cache.pyramid(fileImage(garbage, 1, 1)), garbage, /not a readable image/);

    const missing = path.join(tmp, 'missing.jpg');
    await expectDataError(cache.pyramid(fileImage(missing, 1, 1)), missing, /cannot be read/);

    // libvips here has no JPEG 2000 codec: Aperio J2K slides (compression 33003) fail with a clear message.
    const j2k = path.join(tmp, 'j2k.svs');
    const tiff = await sharp({ create: { ...noise, background: '#fff' } })
      .tiff({ tile: true, compression: 'jpeg' })
      .toBuffer();
    await fs.writeFile(j2k, setTag(tiff, 259, 33003));
    await expectDataError(cache.pyramid(fileImage(j2k, 600, 400)), j2k, /JPEG 2000/);
    expect((await fs.readdir(cache.dir)).filter((name) => name.startsWith('.build-'))).toEqual([]);
  });
});

async function expectDataError(promise: Promise<unknown>, file: string, problem: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DataError);
  expect((error as DataError).file).toBe(file);
  expect((error as DataError).message).toContain(file);
  expect((error as DataError).problem).toMatch(problem);
}

// ---- a minimal TIFF writer for SVS-like test files -----------------------------------------------------------

/** Sets a SHORT tag of IFD0 in a little-endian classic TIFF (to fake a compression scheme). */
function setTag(tiff: Buffer, tag: number, value: number): Buffer {
  const out = Buffer.from(tiff);
  const ifd = out.readUInt32LE(4);
  for (let i = 0; i < out.readUInt16LE(ifd); i++) {
    const entry = ifd + 2 + 12 * i;
    if (out.readUInt16LE(entry) === tag) out.writeUInt16LE(value, entry + 8);
  }
  return out;
}

/** Splits a baseline JPEG into its tables (for the JPEGTables tag) and the abbreviated image stream. */
function splitJpeg(jpeg: Buffer): { tables: Buffer; image: Buffer } {
  const SOI = Buffer.from([0xff, 0xd8]);
  const tables: Buffer[] = [SOI];
  const image: Buffer[] = [SOI];
  for (let i = 2; ;) {
    const marker = jpeg[i + 1];
    const segment = jpeg.subarray(i, i + 2 + jpeg.readUInt16BE(i + 2));
    if (marker === 0xda) {
      image.push(jpeg.subarray(i)); // start of scan: the rest is entropy-coded data up to EOI
      break;
    }
    if (marker === 0xdb || marker === 0xc4) tables.push(segment);
    else if (marker < 0xe0 || marker > 0xef) image.push(segment); // Aperio tiles carry no JFIF/APPn
    i += segment.length;
  }
  tables.push(Buffer.from([0xff, 0xd9]));
  return { tables: Buffer.concat(tables), image: Buffer.concat(image) };
}

type Entry = [tag: number, type: number, count: number, value: number | Buffer];

/**
 * Writes what an Aperio SVS looks like to a TIFF reader: full resolution as 240 px JPEG tiles (YCbCr 4:2:0,
 * abbreviated streams with shared JPEGTables) and an Aperio ImageDescription, then a stripped RGB thumbnail page.
 */
async function writeSvsLike(
  file: string,
  raw: Buffer,
  width: number,
  height: number,
  options = { thumbnailFirst: false },
) {
  const T = 240;
  const tiles: Buffer[] = [];
  let tables: Buffer | undefined;
  for (let y = 0; y < height; y += T) {
    for (let x = 0; x < width; x += T) {
      const w = Math.min(T, width - x);
      const h = Math.min(T, height - y);
      const jpeg = await sharp(raw, { raw: { width, height, channels: 3 } })
        .extract({ left: x, top: y, width: w, height: h })
        .extend({ right: T - w, bottom: T - h, background: '#ffffff' })
        .jpeg({ quality: 90, optimiseCoding: false, chromaSubsampling: '4:2:0' })
        .toBuffer();
      const split = splitJpeg(jpeg);
      if (tables && !tables.equals(split.tables)) throw new Error('tiles need different JPEG tables');
      tables = split.tables;
      tiles.push(split.image);
    }
  }
  const thumb = { width: Math.ceil(width / 8), height: Math.ceil(height / 8) };
  const thumbPixels = await sharp(raw, { raw: { width, height, channels: 3 } })
    .resize(thumb.width, thumb.height)
    .raw()
    .toBuffer();
  const description = `Aperio Image Library v12.0.15 \r\n${width}x${height} [0,0 ${width}x${height}] (${T}x${T}) JPEG/RGB Q=90|AppMag = 20|MPP = 0.4990\0`;

  const full: Entry[] = [
    [256, 4, 1, width],
    [257, 4, 1, height],
    [258, 3, 3, shorts([8, 8, 8])],
    [259, 3, 1, 7],
    [262, 3, 1, 6],
    [270, 2, description.length, Buffer.from(description, 'latin1')],
    [277, 3, 1, 3],
    [284, 3, 1, 1],
    [322, 3, 1, T],
    [323, 3, 1, T],
    [324, 4, tiles.length, Buffer.concat(tiles)], // offsets patched in by writeTiff
    [325, 4, tiles.length, longs(tiles.map((t) => t.length))],
    [347, 7, tables!.length, tables!],
    [530, 3, 2, shorts([2, 2])],
  ];
  const thumbnail: Entry[] = [
    [254, 4, 1, 1], // reduced-resolution image
    [256, 4, 1, thumb.width],
    [257, 4, 1, thumb.height],
    [258, 3, 3, shorts([8, 8, 8])],
    [259, 3, 1, 1],
    [262, 3, 1, 2],
    [273, 4, 1, thumbPixels], // strip offset patched in by writeTiff
    [277, 3, 1, 3],
    [278, 4, 1, thumb.height],
    [279, 4, 1, thumbPixels.length],
  ];
  const pages = options.thumbnailFirst ? [thumbnail, full] : [full, thumbnail];
  await fs.writeFile(file, writeTiff(pages, tiles));
}

function shorts(values: number[]): Buffer {
  const b = Buffer.alloc(2 * values.length);
  values.forEach((v, i) => b.writeUInt16LE(v, 2 * i));
  return b;
}
function longs(values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32LE(v, 4 * i));
  return b;
}

/**
 * Little-endian classic TIFF. Buffer values longer than 4 bytes go after the header; the TileOffsets (324) value
 * is the concatenated tiles and StripOffsets (273) the strip itself: both are written, then pointed at.
 */
function writeTiff(pages: Entry[][], tiles: Buffer[]): Buffer {
  const chunks: Buffer[] = [Buffer.alloc(8)];
  let size = 8;
  const append = (data: Buffer): number => {
    const at = size;
    chunks.push(data, Buffer.alloc(data.length % 2));
    size += data.length + (data.length % 2);
    return at;
  };
  const ifds = pages.map((entries) =>
    entries.map(([tag, type, count, value]): [number, number, number, number | Buffer] => {
      if (tag === 324) {
        const first = append(value as Buffer);
        const offsets: number[] = [];
        tiles.reduce((at, tile) => (offsets.push(at), at + tile.length), first);
        return [tag, type, count, count === 1 ? offsets[0] : append(longs(offsets))];
      }
      if (tag === 273) return [tag, type, count, append(value as Buffer)];
      if (Buffer.isBuffer(value) && value.length > 4) return [tag, type, count, append(value)];
      return [tag, type, count, value];
    }),
  );
  const ifdOffsets: number[] = [];
  ifds.forEach((entries) => {
    const ifd = Buffer.alloc(2 + 12 * entries.length + 4);
    ifd.writeUInt16LE(entries.length, 0);
    entries.forEach(([tag, type, count, value], i) => {
      const at = 2 + 12 * i;
      ifd.writeUInt16LE(tag, at);
      ifd.writeUInt16LE(type, at + 2);
      ifd.writeUInt32LE(count, at + 4);
      if (Buffer.isBuffer(value)) value.copy(ifd, at + 8);
      else if (type === 3 && count === 1) ifd.writeUInt16LE(value, at + 8);
      else ifd.writeUInt32LE(value, at + 8);
    });
    ifdOffsets.push(append(ifd));
  });
  // Link the IFDs: header -> first, each -> next, last -> 0.
  const out = Buffer.concat(chunks);
  out.write('II', 0, 'latin1');
  out.writeUInt16LE(42, 2);
  out.writeUInt32LE(ifdOffsets[0], 4);
  ifds.forEach((entries, i) => {
    out.writeUInt32LE(ifdOffsets[i + 1] ?? 0, ifdOffsets[i] + 2 + 12 * entries.length);
  });
  return out;
}
