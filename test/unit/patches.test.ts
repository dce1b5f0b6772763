import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../../core/readers/errors.js';
import type { SectionImage } from '../../core/section/section.js';
import { clearPatchCache, extractPatches, type PatchSection } from '../../core/slides/patches.js';

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'delst-patches-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function section(image: SectionImage | null, spots: [number, number][], micronsPerPixel: number | null = 0.5) {
  return {
    source: '/data/test-section',
    image,
    micronsPerPixel,
    spotDiameterMicrons: 55,
    spots: { x: Float64Array.from(spots, (s) => s[0]), y: Float64Array.from(spots, (s) => s[1]) },
  } satisfies PatchSection;
}

/** Channel `c` of patch `p`, as rows of numbers. */
function channel(data: Uint8Array, size: number, p: number, c: number): number[][] {
  const base = p * size * size * 3;
  return Array.from({ length: size }, (_, y) =>
    Array.from({ length: size }, (_, x) => data[base + (y * size + x) * 3 + c]),
  );
}

/**
 * Synthetic slide: full resolution is 0.5 um/px and the image is stored at half that (scale 0.5), so 1 image px
 * = 1 um. White, with a black 40 um square centred on full-res (400, 300) = image (200, 150), and a red | green
 * split at image x = 300.
 */
const IMAGE = { width: 400, height: 300, scale: 0.5 };
function syntheticPixels(): Buffer {
  const raw = Buffer.alloc(IMAGE.width * IMAGE.height * 3, 255);
  for (let y = 0; y < IMAGE.height; y++) {
    for (let x = 0; x < IMAGE.width; x++) {
      const o = (y * IMAGE.width + x) * 3;
      if (x >= 180 && x < 220 && y >= 130 && y < 170) raw.fill(0, o, o + 3);
      else if (x >= 260) raw.set(x < 300 ? [255, 0, 0] : [0, 255, 0], o);
    }
  }
  return raw;
}

describe('extractPatches on a synthetic slide', () => {
  let image: SectionImage;

  beforeAll(async () => {
    const file = path.join(tmp, 'synthetic.png');
    await sharp(syntheticPixels(), { raw: { width: IMAGE.width, height: IMAGE.height, channels: 3 } }).toFile(file);
    image = { kind: 'file', path: file, ...IMAGE };
  });

  // Darkness summed over a row (1 = black, 0 = white) measures the square's width in patch pixels to a
  // fraction of a pixel, whatever the resampling filter does at the edges.
  const darkWidth = (row: number[]) => row.reduce((sum, v) => sum + (255 - v) / 255, 0);
  const darkCentre = (row: number[]) =>
    row.reduce((sum, v, i) => sum + ((255 - v) / 255) * (i + 0.5), 0) / darkWidth(row);

  for (const pixels of [33, 40, 80, 160]) {
    it(`cuts the right physical size, centred, at ${pixels} px (${pixels < 80 ? 'shrunk' : pixels > 80 ? 'enlarged' : '1:1'})`, async () => {
      const batch = await extractPatches(section(image, [[400, 300]]), [0], { sizeMicrons: 80, pixels });
      expect(batch).toMatchObject({ size: pixels, count: 1, sizeMicrons: 80 });
      expect(batch.data.length).toBe(pixels * pixels * 3);
      // 40 um square in an 80 um patch: half the patch, centred.
      const red = channel(batch.data, pixels, 0, 0);
      const middleRow = red[Math.floor(pixels / 2)];
      const middleColumn = red.map((row) => row[Math.floor(pixels / 2)]);
      expect(Math.abs(darkWidth(middleRow) - pixels / 2)).toBeLessThan(0.15);
      expect(Math.abs(darkWidth(middleColumn) - pixels / 2)).toBeLessThan(0.15);
      expect(Math.abs(darkCentre(middleRow) - pixels / 2)).toBeLessThan(0.1);
      expect(Math.abs(darkCentre(middleColumn) - pixels / 2)).toBeLessThan(0.1);
    });
  }

  it('centres exactly on a colour edge', async () => {
    // Spot on the red | green boundary (image x 300 = full-res 600): left half red, right half green.
    const batch = await extractPatches(section(image, [[600, 100]]), [0], { sizeMicrons: 30, pixels: 24 });
    const green = channel(batch.data, 24, 0, 1)[12];
    const greenWidth = green.reduce((sum, v) => sum + v / 255, 0);
    expect(Math.abs(greenWidth - 12)).toBeLessThan(0.3);
  });

  it('pads with white where the patch leaves the image', async () => {
    // Centred on the image's bottom-right corner: only the top-left quadrant is inside (green there).
    const batch = await extractPatches(section(image, [[800, 600]]), [0], { sizeMicrons: 40, pixels: 20 });
    const [r, g, b] = [0, 1, 2].map((c) => channel(batch.data, 20, 0, c));
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        const inside = x < 10 && y < 10;
        expect([r[y][x], g[y][x], b[y][x]]).toEqual(inside ? [0, 255, 0] : [255, 255, 255]);
      }
    }
    // Far away from the image: all white.
    const lost = await extractPatches(section(image, [[-5000, 10]]), [0], { sizeMicrons: 40, pixels: 20 });
    expect(lost.data.every((v) => v === 255)).toBe(true);
  });

  it('gives the same patches from embedded pixels, in bands and in request order', async () => {
    const spots: [number, number][] = [
      [400, 300],
      [600, 100],
      [10, 590],
      [790, 20],
    ];
    const order = [2, 0, 3, 1, 0];
    const fromFile = await extractPatches(section(image, spots), order, { sizeMicrons: 60, pixels: 32 });
    expect(fromFile.count).toBe(5);
    // Repeated spot: identical patches.
    const patchBytes = 32 * 32 * 3;
    expect(fromFile.data.subarray(patchBytes, 2 * patchBytes)).toEqual(fromFile.data.subarray(4 * patchBytes));

    const pixels: SectionImage = {
      kind: 'pixels',
      origin: 'x.h5ad#img',
      ...IMAGE,
      channels: 3,
      data: new Uint8Array(syntheticPixels()),
    };
    const fromPixels = await extractPatches(section(pixels, spots), order, { sizeMicrons: 60, pixels: 32 });
    expect(maxDifference(fromPixels.data, fromFile.data)).toBeLessThanOrEqual(1);

    // A tiny memory budget forces decoding in horizontal bands: same pixels.
    clearPatchCache();
    const banded = await extractPatches(section(image, spots), order, {
      sizeMicrons: 60,
      pixels: 32,
      memoryBudget: 20_000,
    });
    expect(maxDifference(banded.data, fromFile.data)).toBeLessThanOrEqual(1);
  });

  it('refuses sections without an image or a pixel size, and unknown spots', async () => {
    await expect(extractPatches(section(null, [[1, 1]]), [0])).rejects.toThrow(DataError);
    await expect(extractPatches(section(image, [[1, 1]], null), [0])).rejects.toThrow(/microns per pixel/);
    await expect(extractPatches(section(image, [[1, 1]]), [1])).rejects.toThrow(RangeError);
    await expect(extractPatches(section(image, [[1, 1]]), [0], { pixels: 0 })).rejects.toThrow(RangeError);
    const missing: SectionImage = { kind: 'file', path: path.join(tmp, 'missing.png'), ...IMAGE };
    await expect(extractPatches(section(missing, [[1, 1]]), [0])).rejects.toThrow(/missing\.png/);
    const wrongSize: SectionImage = { ...(image as SectionImage & { kind: 'file' }), width: 800 };
    await expect(extractPatches(section(wrongSize, [[1, 1]]), [0])).rejects.toThrow(/400x300 px.*800x300/);
  });
});

function maxDifference(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe('extractPatches on her2st A1 (2000 px image at scale 0.287604, 0.91747 um/px)', () => {
  it('cuts 112 px patches of tissue at the spots', async () => {
    const dir = path.resolve(import.meta.dirname, '../../../shared/data/her2st/A1');
    const rows = (await fs.readFile(path.join(dir, 'spots.tsv'), 'utf8')).trim().split(/\r?\n/).slice(1);
    const spots = rows.map((line) => line.split('\t')).map((f) => [Number(f[4]), Number(f[5])] as [number, number]);
    const a1 = {
      ...section(
        { kind: 'file', path: path.join(dir, 'image.png'), width: 2000, height: 2138, scale: 0.287604 },
        spots,
      ),
      micronsPerPixel: 0.91747,
      spotDiameterMicrons: 100,
    };
    const picks = [0, 1, 50, 100, 200, 300, spots.length - 1];
    const batch = await extractPatches(a1, picks);
    expect(batch).toMatchObject({ size: 112, count: picks.length, sizeMicrons: 125 });
    expect(batch.data.length).toBe(picks.length * 112 * 112 * 3);

    const patchBytes = 112 * 112 * 3;
    for (let p = 0; p < picks.length; p++) {
      const patch = batch.data.subarray(p * patchBytes, (p + 1) * patchBytes);
      const { mean, spread } = stats(patch);
      // The image's background is black (masked) or white; H&E tissue is mid-bright and textured.
      expect(mean).toBeGreaterThan(60);
      expect(mean).toBeLessThan(230);
      expect(spread).toBeGreaterThan(10);
    }
    // A point outside the tissue (the black mask) is background.
    const background = await extractPatches(
      { ...a1, spots: { x: Float64Array.of(500), y: Float64Array.of(7000) } },
      [0],
    );
    expect(stats(background.data).mean).toBeLessThan(20);
  });
});

function stats(rgb: Uint8Array): { mean: number; spread: number } {
  let sum = 0;
  let squares = 0;
  for (const v of rgb) {
    sum += v;
    squares += v * v;
  }
  const mean = sum / rgb.length;
  return { mean, spread: Math.sqrt(squares / rgb.length - mean * mean) };
}
