// Spot lattices (docs §3.4, §3.9): which array a section was printed on, how many microns a full-resolution pixel
// spans, and whether the spots fit on an image. Shared by every reader, so one rule decides for every format.

import type { SpotTable } from './section.js';

/** Visium's `spot_diameter_fullres` is a theoretical 65 um circle around its 55 um spots (docs §3.9). */
export const VISIUM_NOMINAL_DIAMETER = 65;

/**
 * Spot lattices by array coordinates. `row`/`col` are microns per array step along a row (same array_row) and
 * along a column (same array_col).
 * - Visium "orange crate" hex: only array_row + array_col even is printed; 2 columns = 100 um, 2 rows = 173.2 um.
 * - Legacy ST 1k: square grid, both parities, 200 um pitch, 100 um spots.
 * - Legacy ST 2k: the checkerboard half of a 100 um square grid, neighbours diagonal (141 um), 100 um spots.
 */
export const LATTICES = {
  hex: { row: 50, col: (100 * Math.sqrt(3)) / 2, spotDiameter: 55, spacing: 100 },
  st1k: { row: 200, col: 200, spotDiameter: 100, spacing: 200 },
  st2k: { row: 100, col: 100, spotDiameter: 100, spacing: 100 * Math.SQRT2 },
} as const;
export type LatticeKind = keyof typeof LATTICES;

/** Array position (NaN where unknown) and full-resolution pixel position of each spot. */
export type LatticePoints = Pick<SpotTable, 'arrayRow' | 'arrayCol' | 'x' | 'y'>;

/** A lattice needs at least this many neighbour pairs before its pixel size is trusted. */
const MIN_PAIRS = 3;

/**
 * Which lattice the array coordinates describe, or null without array coordinates. `kinds` are those the format
 * can hold, the first being the guess when the spots cannot tell (too few of them).
 * Both parities of array_row + array_col: the 1k square grid. One parity: the hex (a row step is 1.73 column
 * steps) or the 2k checkerboard (both steps equal).
 */
export function latticeKind(
  points: LatticePoints,
  kinds: readonly LatticeKind[] = ['hex', 'st1k', 'st2k'],
): LatticeKind | null {
  const { arrayRow: row, arrayCol: col } = points;
  const parities = new Set<number>();
  let placed = 0;
  for (let i = 0; i < row.length; i++) {
    if (!Number.isFinite(row[i]) || !Number.isFinite(col[i])) continue;
    parities.add(Math.abs(row[i] + col[i]) % 2);
    placed++;
  }
  if (parities.size === 0) return null;
  if (parities.size === 2) return 'st1k';
  // A lone spot has one parity on any lattice.
  if (!kinds.includes('hex')) return placed > 1 ? 'st2k' : kinds[0];
  const steps = pairSteps(points);
  if (steps.alongRow.length < MIN_PAIRS || steps.alongCol.length < MIN_PAIRS) return kinds[0];
  return median(steps.alongCol) / median(steps.alongRow) > 1.35 ? 'hex' : 'st2k';
}

interface PairSteps {
  /** Pixels per array step between consecutive spots of one array_row, and of one array_col. */
  alongRow: number[];
  alongCol: number[];
}

/** Consecutive spots of each array_row (and array_col): pixel distance per array step. */
function pairSteps({ arrayRow, arrayCol, x, y }: LatticePoints): PairSteps {
  const steps: PairSteps = { alongRow: [], alongCol: [] };
  const collect = (line: ArrayLike<number>, along: ArrayLike<number>, out: number[]) => {
    const groups = new Map<number, number[]>();
    for (let i = 0; i < line.length; i++) {
      if (!Number.isFinite(line[i]) || !Number.isFinite(along[i])) continue;
      const group = groups.get(line[i]);
      if (group) group.push(i);
      else groups.set(line[i], [i]);
    }
    for (const group of groups.values()) {
      group.sort((a, b) => along[a] - along[b]);
      for (let k = 1; k < group.length; k++) {
        const [a, b] = [group[k - 1], group[k]];
        const step = along[b] - along[a];
        const distance = Math.hypot(x[b] - x[a], y[b] - y[a]);
        if (step > 0 && distance > 0) out.push(distance / step);
      }
    }
  };
  collect(arrayRow, arrayCol, steps.alongRow);
  collect(arrayCol, arrayRow, steps.alongCol);
  return steps;
}

/** Microns per pixel from neighbour distances on the lattice (robust median over pairs), or null if too few. */
export function latticePixelSize(kind: LatticeKind, points: LatticePoints): number | null {
  const lattice = LATTICES[kind];
  const steps = pairSteps(points);
  const estimates = [...steps.alongRow.map((px) => lattice.row / px), ...steps.alongCol.map((px) => lattice.col / px)];
  return estimates.length >= MIN_PAIRS ? median(estimates) : null;
}

/**
 * Microns per full-resolution pixel where Space Ranger scale factors come with the spots (Space Ranger outs/,
 * AnnData's uns['spatial']): explicit microns_per_pixel > spot lattice > nominal spot diameter / spot_diameter_fullres.
 */
export function spaceRangerPixelSize(
  kind: LatticeKind | null,
  points: LatticePoints,
  sf: { readonly microns_per_pixel?: number; readonly spot_diameter_fullres?: number },
  warnings: string[],
): number | null {
  if (sf.microns_per_pixel) return sf.microns_per_pixel;
  const lattice = kind ? latticePixelSize(kind, points) : null;
  // Visium's spot_diameter_fullres is the 65 um theoretical circle; converted legacy ST files give the 100 um spot.
  const diameter = kind && kind !== 'hex' ? LATTICES[kind].spotDiameter : VISIUM_NOMINAL_DIAMETER;
  const nominal = sf.spot_diameter_fullres ? diameter / sf.spot_diameter_fullres : null;
  if (lattice !== null && nominal !== null && Math.abs(lattice / nominal - 1) > 0.1) {
    warnings.push(
      `pixel size from the spot lattice (${lattice.toFixed(4)} um/px) and from spot_diameter_fullres ` +
        `(${nominal.toFixed(4)} um/px) differ by ${Math.round(Math.abs(lattice / nominal - 1) * 100)}%; using the lattice`,
    );
  }
  return lattice ?? nominal;
}

/** Spot radius in full-resolution pixels: half of spot_diameter_fullres, else from the pixel size; 0 if unknown. */
export function spotRadiusPixels(
  spotDiameterFullres: number | undefined,
  spotDiameterMicrons: number,
  micronsPerPixel: number | null,
): number {
  if (spotDiameterFullres) return spotDiameterFullres / 2;
  return micronsPerPixel ? spotDiameterMicrons / micronsPerPixel / 2 : 0;
}

/** An image's size in its own pixels, and the scale from full-resolution pixels (image = fullres * scale). */
export interface ImageFrame {
  readonly width: number;
  readonly height: number;
  readonly scale: number;
}

/** Spots whose centre, scaled into image pixels, lies beyond the image by more than `margin` image pixels. */
export function spotsOutsideImage(spots: Pick<SpotTable, 'x' | 'y'>, image: ImageFrame, margin: number): number[] {
  const outside: number[] = [];
  for (let i = 0; i < spots.x.length; i++) {
    const [ix, iy] = [spots.x[i] * image.scale, spots.y[i] * image.scale];
    if (ix < -margin || iy < -margin || ix > image.width + margin || iy > image.height + margin) outside.push(i);
  }
  return outside;
}

/** The first spot outside the image, as the start of a sentence ("spot X at x=.., y=.. (full-resolution px) lies
 * outside"), or null. */
export function spotOutsideImage(
  spots: Pick<SpotTable, 'ids' | 'x' | 'y'>,
  image: ImageFrame,
  margin: number,
): string | null {
  const [i] = spotsOutsideImage(spots, image, margin);
  if (i === undefined) return null;
  return `spot ${spots.ids[i]} at x=${spots.x[i]}, y=${spots.y[i]} (full-resolution px) lies outside`;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
