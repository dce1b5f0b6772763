// Spot-sized tiles over the tissue of an H&E image without spatial transcriptomics, so the image can be embedded
// and predicted on like a section with spots (issue 5, H&E slides without ST).
//
// Geometry: a hexagonal grid (rows `spacing * sqrt(3) / 2` apart, odd rows shifted by half a spacing), as Visium
// lays its spots. A tile is a "spot" of diameter D: the encoder sees the same patch as on a real spot (1.25 D, see
// patches.ts), so D must be the spot diameter of the reference sections the predictions come from (a model sees
// tissue at the scale it was trained at). The default spacing is D, so neighbouring tiles touch and the drawn
// circles cover ~91% of the tissue: a heatmap without gaps, at the resolution of the reference data (and each
// patch still overlaps its neighbours by the 0.25 D of context). A larger spacing gives a sparser, cheaper map.

import { pointInGeometry, type RegionGeometry } from '../project/geometry.js';
import type { Section } from '../section/section.js';
import { PIXEL_SIZE_UNKNOWN } from '../readers/image-only.js';
import { SparseCounts } from '../section/sparse-counts.js';
import { detectTissue, type TissueMask, type TissueOptions } from './tissue.js';

/** Legacy ST spot diameter (HER2ST, the bundled base model's data); a Visium reference would use 55. */
export const DEFAULT_TILE_DIAMETER_MICRONS = 100;
/** More tiles than this is a mistake (a wrong pixel size), not a heatmap anyone waits for. */
export const MAX_TILES = 200_000;
/** Share of a tile's disc that must be tissue. */
const DEFAULT_MIN_COVERAGE = 0.5;

export interface TilingOptions {
  /** Microns per image pixel; required, since a bare image rarely says. */
  readonly micronsPerPixel: number;
  /** Tile ("spot") diameter in microns (default 100). */
  readonly diameterMicrons?: number;
  /** Centre-to-centre distance of neighbouring tiles in microns (default: the diameter). */
  readonly spacingMicrons?: number;
  /** Only tiles whose centres fall inside this polygon (image pixels). */
  readonly region?: RegionGeometry | null;
  /** Share of a tile's disc that must be tissue (default 0.5). */
  readonly minCoverage?: number;
}

export interface TileGrid {
  /** `tile_r_c`: grid row and column. */
  readonly ids: string[];
  /** Tile centres in image pixels. */
  readonly x: Float64Array;
  readonly y: Float64Array;
  readonly row: Float64Array;
  readonly col: Float64Array;
  readonly diameterMicrons: number;
  readonly spacingMicrons: number;
  readonly micronsPerPixel: number;
}

function positive(value: number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number of microns, got ${String(value).slice(0, 32)}`);
  }
  return value;
}

/**
 * Tiles over an image of `width` x `height` pixels: those whose disc is at least `minCoverage` tissue in `mask`
 * (every tile without a mask) and, with a region, whose centre lies in it.
 */
export function tileGrid(mask: TissueMask | null, width: number, height: number, options: TilingOptions): TileGrid {
  const mpp = positive(options.micronsPerPixel, 'micronsPerPixel');
  if (mpp === undefined) throw new RangeError('micronsPerPixel is required: the pixel size of the image is unknown');
  const diameterMicrons = positive(options.diameterMicrons, 'diameterMicrons') ?? DEFAULT_TILE_DIAMETER_MICRONS;
  const spacingMicrons = positive(options.spacingMicrons, 'spacingMicrons') ?? diameterMicrons;
  const minCoverage = options.minCoverage ?? DEFAULT_MIN_COVERAGE;
  const spacing = spacingMicrons / mpp;
  const rowStep = (spacing * Math.sqrt(3)) / 2;
  const rows = Math.floor((height - 1) / rowStep) + 1;
  const cols = Math.floor((width - 1) / spacing) + 1;
  if (!(rows * cols <= MAX_TILES * 20)) {
    throw new RangeError(
      `a ${spacingMicrons} um grid at ${mpp} um/px puts ${rows * cols} tiles on the image: check the pixel size`,
    );
  }
  const radius = Math.min(spacing, diameterMicrons / mpp) / 2;
  const ids: string[] = [];
  const xs: number[] = [];
  const ys: number[] = [];
  const rs: number[] = [];
  const cs: number[] = [];
  // Centred on the image, so the margins left over on either side are equal.
  const y0 = (height - (rows - 1) * rowStep) / 2;
  for (let r = 0; r < rows; r++) {
    const y = y0 + r * rowStep;
    const shift = r % 2 === 1 ? spacing / 2 : 0;
    const x0 = (width - (cols - 1) * spacing - spacing / 2) / 2 + shift;
    for (let c = 0; c < cols; c++) {
      const x = x0 + c * spacing;
      if (x < 0 || x >= width) continue;
      if (options.region && !pointInGeometry(x, y, options.region)) continue;
      if (mask && coverage(mask, x, y, radius) < minCoverage) continue;
      ids.push(`tile_${r}_${c}`);
      xs.push(x);
      ys.push(y);
      rs.push(r);
      cs.push(c);
      if (ids.length > MAX_TILES) {
        throw new RangeError(
          `more than ${MAX_TILES} tiles at a ${spacingMicrons} um spacing: use a larger spacing or a region`,
        );
      }
    }
  }
  return {
    ids,
    x: Float64Array.from(xs),
    y: Float64Array.from(ys),
    row: Float64Array.from(rs),
    col: Float64Array.from(cs),
    diameterMicrons,
    spacingMicrons,
    micronsPerPixel: mpp,
  };
}

/** Offsets (in radii) of the samples of a disc: a 7 x 7 lattice clipped to the unit disc. */
const DISC = (() => {
  const points: [number, number][] = [];
  for (let j = -3; j <= 3; j++) for (let i = -3; i <= 3; i++) if (i * i + j * j <= 9) points.push([i / 3, j / 3]);
  return points;
})();

/** Share of the disc of `radius` image pixels around (x, y) that is tissue (outside the image: not). */
export function coverage(mask: TissueMask, x: number, y: number, radius: number): number {
  const sx = mask.width / mask.imageWidth;
  const sy = mask.height / mask.imageHeight;
  let inside = 0;
  for (const [dx, dy] of DISC) {
    const mx = Math.floor((x + dx * radius) * sx);
    const my = Math.floor((y + dy * radius) * sy);
    if (mx >= 0 && my >= 0 && mx < mask.width && my < mask.height) inside += mask.data[my * mask.width + mx];
  }
  return inside / DISC.length;
}

/**
 * The image-only section with the tiles as its spots (all in tissue, no genes), at the tiles' pixel size and
 * diameter: what the readers would give for a section whose spots are the tiles.
 */
export function tiledSection(section: Section, grid: TileGrid): Section {
  if (!section.image) throw new Error(`${section.name} has no image to tile`);
  const n = grid.ids.length;
  // Tiles are in image pixels; spots are in full-resolution pixels (image = fullres * scale).
  const scale = section.image.scale;
  return {
    ...section,
    spots: {
      ids: grid.ids,
      x: grid.x.map((v) => v / scale),
      y: grid.y.map((v) => v / scale),
      inTissue: new Uint8Array(n).fill(1),
      arrayRow: grid.row,
      arrayCol: grid.col,
    },
    genes: { symbols: [], ids: [] },
    counts: SparseCounts.fromCsr(n, 0, new Array<number>(n + 1).fill(0), [], []),
    micronsPerPixel: grid.micronsPerPixel * scale,
    spotDiameterMicrons: grid.diameterMicrons,
    spotSpacingMicrons: grid.spacingMicrons,
    labels: new Map(),
    // The pixel size is known now (the tiling needed it).
    warnings: section.warnings.filter((w) => w !== PIXEL_SIZE_UNKNOWN),
  };
}

export interface TiledImage {
  readonly section: Section;
  readonly grid: TileGrid;
  readonly mask: TissueMask;
}

/**
 * Tiles the tissue of a section's image (the region's part of it, when given; region in image pixels): detects the
 * tissue, lays the grid and gives the section with the tiles as its spots.
 */
export async function tileImage(
  section: Section,
  options: TilingOptions & { readonly tissue?: TissueOptions },
): Promise<TiledImage> {
  if (!section.image) throw new Error(`${section.name} has no image to tile`);
  const mask = await detectTissue(section.image, options.tissue);
  const grid = tileGrid(mask, section.image.width, section.image.height, options);
  return { section: tiledSection(section, grid), grid, mask };
}
