// Tiling (core/slides/tiling.ts) on synthetic masks: the hexagonal grid's geometry, tissue coverage, regions, and
// the section the tiles make; then the StudioApi's tileSection on a real bare image (HER2ST A2's image alone) and
// predictions on its tiles from A1 (needs ../shared/data/her2st).

import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Studio } from '../../core/api/studio.js';
import { imageOnlySection, PIXEL_SIZE_UNKNOWN } from '../../core/readers/image-only.js';
import { coverage, tiledSection, tileGrid } from '../../core/slides/tiling.js';
import type { TissueMask } from '../../core/slides/tissue.js';

/** A mask at half the image's resolution, tissue where `inside(x, y)` holds for the pixel centre (image pixels). */
function mask(imageWidth: number, imageHeight: number, inside: (x: number, y: number) => boolean): TissueMask {
  const width = imageWidth / 2;
  const height = imageHeight / 2;
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) data[y * width + x] = inside(2 * x + 1, 2 * y + 1) ? 1 : 0;
  return { width, height, data, imageWidth, imageHeight, threshold: 0.1, fraction: 0 };
}

describe('tileGrid', () => {
  it('lays a hexagonal grid at the spacing, in image pixels', () => {
    // 2 um/px, 100 um tiles: 50 px apart, rows 43.3 px apart, odd rows shifted by 25 px.
    const grid = tileGrid(null, 1000, 800, { micronsPerPixel: 2 });
    expect(grid.diameterMicrons).toBe(100);
    expect(grid.spacingMicrons).toBe(100);
    const at = (id: string) => grid.ids.indexOf(id);
    const [a, b, c] = [at('tile_0_0'), at('tile_0_1'), at('tile_1_0')];
    expect(grid.x[b] - grid.x[a]).toBeCloseTo(50, 9);
    expect(grid.y[b]).toBe(grid.y[a]);
    expect(grid.y[c] - grid.y[a]).toBeCloseTo(25 * Math.sqrt(3), 9);
    expect(grid.x[c] - grid.x[a]).toBeCloseTo(25, 9);
    // Nearest neighbours (within and across rows) are all one spacing apart.
    expect(Math.hypot(grid.x[c] - grid.x[a], grid.y[c] - grid.y[a])).toBeCloseTo(50, 9);
    for (let i = 0; i < grid.ids.length; i++) {
      expect(grid.x[i]).toBeGreaterThanOrEqual(0);
      expect(grid.x[i]).toBeLessThan(1000);
      expect(grid.y[i]).toBeLessThan(800);
      expect(grid.ids[i]).toBe(`tile_${grid.row[i]}_${grid.col[i]}`);
    }
    // About one tile per hexagon of area (sqrt(3)/2) * 50^2.
    expect(grid.ids.length / ((1000 * 800) / ((Math.sqrt(3) / 2) * 2500))).toBeCloseTo(1, 1);
  });

  it('keeps the tiles over tissue only', () => {
    const disc = (x: number, y: number) => (x - 400) ** 2 + (y - 300) ** 2 <= 200 ** 2;
    const grid = tileGrid(mask(800, 600, disc), 800, 600, {
      micronsPerPixel: 1,
      spacingMicrons: 40,
      diameterMicrons: 40,
    });
    expect(grid.ids.length).toBeGreaterThan(50);
    for (let i = 0; i < grid.ids.length; i++) {
      // Half a disc of tissue at least: the centre is at most a radius (20 px) outside the disc.
      expect(Math.hypot(grid.x[i] - 400, grid.y[i] - 300)).toBeLessThan(220);
    }
    // Every grid position well inside the disc is a tile.
    const all = tileGrid(null, 800, 600, { micronsPerPixel: 1, spacingMicrons: 40 });
    const deep = all.ids.filter((_, i) => Math.hypot(all.x[i] - 400, all.y[i] - 300) < 170);
    for (const id of deep) expect(grid.ids).toContain(id);
    // The count matches the disc's area over a hexagon's.
    expect(grid.ids.length / ((Math.PI * 200 ** 2) / ((Math.sqrt(3) / 2) * 40 ** 2))).toBeCloseTo(1, 1);
  });

  it('skips a background hole and honours the coverage share', () => {
    const ring = (x: number) => x < 200 || x >= 300;
    const grid = tileGrid(mask(500, 200, ring), 500, 200, { micronsPerPixel: 1, spacingMicrons: 20 });
    for (let i = 0; i < grid.ids.length; i++) expect(grid.x[i] < 210 || grid.x[i] >= 290).toBe(true);
    const strict = tileGrid(mask(500, 200, ring), 500, 200, { micronsPerPixel: 1, spacingMicrons: 20, minCoverage: 1 });
    for (let i = 0; i < strict.ids.length; i++) expect(strict.x[i] < 200 || strict.x[i] >= 300).toBe(true);
    expect(strict.ids.length).toBeLessThan(grid.ids.length);
  });

  it('keeps the tiles whose centres are in a region', () => {
    const region = {
      type: 'Polygon' as const,
      coordinates: [
        [
          [100, 100],
          [300, 100],
          [300, 250],
          [100, 250],
          [100, 100],
        ] as [number, number][],
      ],
    };
    const everywhere = mask(400, 400, () => true);
    const grid = tileGrid(everywhere, 400, 400, { micronsPerPixel: 0.5, spacingMicrons: 10, region });
    expect(grid.ids.length).toBeGreaterThan(0);
    for (let i = 0; i < grid.ids.length; i++) {
      expect(grid.x[i]).toBeGreaterThanOrEqual(100);
      expect(grid.x[i]).toBeLessThanOrEqual(300);
      expect(grid.y[i]).toBeGreaterThanOrEqual(100);
      expect(grid.y[i]).toBeLessThanOrEqual(250);
    }
    expect(grid.ids.length / ((200 * 150) / ((Math.sqrt(3) / 2) * 20 ** 2))).toBeCloseTo(1, 1);
  });

  it('rejects a missing or bad pixel size and spacing, naming the option', () => {
    expect(() => tileGrid(null, 100, 100, { micronsPerPixel: undefined as unknown as number })).toThrow(
      /micronsPerPixel is required/,
    );
    expect(() => tileGrid(null, 100, 100, { micronsPerPixel: -1 })).toThrow(/micronsPerPixel must be a positive/);
    expect(() => tileGrid(null, 100, 100, { micronsPerPixel: 1, spacingMicrons: 0 })).toThrow(/spacingMicrons/);
    expect(() => tileGrid(null, 100_000, 100_000, { micronsPerPixel: 0.25, spacingMicrons: 1 })).toThrow(/pixel size/);
  });

  it('measures the tissue share of a disc', () => {
    const left = mask(100, 100, (x) => x < 50);
    expect(coverage(left, 20, 50, 10)).toBe(1);
    expect(coverage(left, 80, 50, 10)).toBe(0);
    expect(coverage(left, 50, 50, 10)).toBeGreaterThan(0.3);
    expect(coverage(left, 50, 50, 10)).toBeLessThan(0.7);
  });
});

describe('tiledSection', () => {
  it('gives an image-only section the tiles as in-tissue spots, in full-resolution pixels', () => {
    const image = { kind: 'file', path: '/x/slide.png', width: 500, height: 400, scale: 0.5 } as const;
    const bare = imageOnlySection('slide', image, null);
    expect(bare.warnings).toEqual([PIXEL_SIZE_UNKNOWN]);
    const grid = tileGrid(null, 500, 400, { micronsPerPixel: 2, diameterMicrons: 55, spacingMicrons: 100 });
    const tiled = tiledSection(bare, grid);
    expect(tiled.spots.ids).toEqual(grid.ids);
    expect(tiled.spots.x[3]).toBeCloseTo(grid.x[3] / 0.5, 9);
    expect(Array.from(tiled.spots.inTissue).every((v) => v === 1)).toBe(true);
    expect(tiled.micronsPerPixel).toBe(1); // 2 um per image pixel = 1 um per full-resolution pixel
    expect(tiled.warnings).toEqual([]); // the pixel size is known now
    expect(tiled.spotDiameterMicrons).toBe(55);
    expect(tiled.spotSpacingMicrons).toBe(100);
    expect(tiled.counts.nSpots).toBe(grid.ids.length);
    expect(tiled.format).toBe('image');
  });
});

const HER2ST = resolve(import.meta.dirname, '../../../shared/data/her2st');
const skipStudio = !existsSync(join(HER2ST, 'A2', 'image.png')) || !existsSync(join(HER2ST, 'A1'));

describe.skipIf(skipStudio)(
  'tileSection and predictions on a bare image (HER2ST A2 image alone, A1 as reference)',
  () => {
    let studio: Studio;
    let tmp: string;
    let bare: string;
    let a1: string;
    /** A2's image: 0.9163 um per full-resolution pixel, image = full resolution * 0.287109. */
    const mpp = 0.9163 / 0.287109;

    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'delst-tile-section-'));
      await copyFile(join(HER2ST, 'A2', 'image.png'), join(tmp, 'A2-he.png'));
      studio = new Studio({ cacheDir: join(tmp, 'cache'), projectDir: join(tmp, 'project') });
      bare = (await studio.openPath(join(tmp, 'A2-he.png'))).opened[0].id;
      a1 = (await studio.openPath(join(HER2ST, 'A1'))).opened[0].id;
    });

    afterAll(async () => {
      await studio?.shutdown();
      await rm(tmp, { recursive: true, force: true });
    });

    it('asks for the pixel size, refuses sections with spots, and will not predict before tiling', async () => {
      await expect(studio.tileSection(bare, {})).rejects.toThrow(
        /pixel size of A2-he is unknown: give micronsPerPixel/,
      );
      await expect(studio.tileSection(a1, { micronsPerPixel: 1 })).rejects.toThrow(/A1 is not a bare H&E image/);
      await expect(studio.tileSection(bare, { micronsPerPixel: -2 })).rejects.toThrow(
        /micronsPerPixel must be a positive/,
      );
      await expect(studio.predictSection(bare, { modelId: 'base', labelColumn: 'pathologist' })).rejects.toThrow(
        /A2-he has no H&E image with spots to predict on: tile it first/,
      );
    });

    it("tiles the whole tissue at the references' spot diameter; getSpots gives the tiles", async () => {
      const result = await studio.tileSection(bare, { micronsPerPixel: mpp });
      expect(result.diameterMicrons).toBe(100); // A1's spots
      expect(result.spacingMicrons).toBe(100);
      expect(result.tissueFraction).toBeGreaterThan(0.2);
      expect(result.tissueFraction).toBeLessThan(0.5);
      // The tissue's area over a hexagon's: one tile each.
      const image = result.section.image!;
      const hexagon = (Math.sqrt(3) / 2) * (100 / mpp) ** 2;
      expect(result.tiles / ((result.tissueFraction * image.width * image.height) / hexagon)).toBeCloseTo(1, 0);
      expect(result.section.spots).toBe(result.tiles);
      const spots = await studio.getSpots(bare);
      expect(spots.ids).toHaveLength(result.tiles);
      expect(spots.diameter).toBeCloseTo(100 / mpp, 6);
      expect(spots.micronsPerPixel).toBeCloseTo(mpp, 6);
      expect(spots.inTissue.every(Boolean)).toBe(true);
    });

    it('tiles a drawn region only, and predicts a class per tile from A1', async () => {
      // A square across the tissue's top edge (image pixels; black background above y = 640).
      const square: [number, number][] = [
        [700, 560],
        [900, 560],
        [900, 760],
        [700, 760],
      ];
      const { regions } = await studio.addRegion(bare, square, null);
      const result = await studio.tileSection(bare, { micronsPerPixel: mpp, regionId: regions[0].id });
      const spots = await studio.getSpots(bare);
      expect(spots.ids).toHaveLength(result.tiles);
      const hexagon = (Math.sqrt(3) / 2) * (100 / mpp) ** 2;
      expect(result.tiles).toBeLessThan((0.8 * 200 * 200) / hexagon); // the glass above the edge is skipped
      expect(result.tiles).toBeGreaterThan(5);
      spots.x.forEach((x, i) => {
        expect(x).toBeGreaterThanOrEqual(700);
        expect(x).toBeLessThanOrEqual(900);
        expect(spots.y[i]).toBeGreaterThanOrEqual(600); // not on the black background
      });
      await expect(
        studio.predictSection(bare, { modelId: 'base', labelColumn: 'pathologist', referenceSectionIds: [bare] }),
      ).rejects.toThrow(/reference section A2-he has no H&E image with spots/);
      const prediction = await studio.predictSection(bare, { modelId: 'base', labelColumn: 'pathologist' });
      expect(prediction.referenceSectionIds).toEqual([a1]);
      expect(prediction.warnings).toEqual([]);
      expect(prediction.predictedClass).toHaveLength(result.tiles);
      for (const c of prediction.predictedClass!) expect(prediction.classes).toContain(c);
    }, 180_000);
  },
);
