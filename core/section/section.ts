// The one in-memory model of an ST section, whatever format it was read from.
// Readers build it; everything above (slides, training, the API, the UI) reads only this.

import type { SparseCounts } from './sparse-counts.js';

/** 'image': a bare H&E image opened on its own (no spots, no genes). */
export type SectionFormat = 'spaceranger' | 'anndata' | 'legacy-st' | 'image';

/** Spots as columns (typed arrays), so 100k-spot sections stay compact and fast to scan. */
export interface SpotTable {
  /** Barcode or `XxY` id, unique within the section. */
  readonly ids: readonly string[];
  /** Spot centre in full-resolution image pixels (x to the right, y down). */
  readonly x: Float64Array;
  readonly y: Float64Array;
  /** 1 when the spot lies under tissue. */
  readonly inTissue: Uint8Array;
  /** Array (lattice) position; NaN where the format does not give one. */
  readonly arrayRow: Float64Array;
  readonly arrayCol: Float64Array;
}

export interface GeneTable {
  /** Gene symbols as shown to users (falls back to the id where no symbol is known). */
  readonly symbols: readonly string[];
  /** Stable ids (Ensembl), or null where the format only has symbols. */
  readonly ids: readonly (string | null)[];
}

/**
 * The H&E image a section refers to. Spots are in full-resolution pixels; the image may be a downsized copy,
 * so `scale` maps full-resolution pixels to image pixels (image = fullres * scale), as Space Ranger's
 * `tissue_hires_scalef` does.
 */
export type SectionImage =
  | {
      readonly kind: 'file';
      readonly path: string;
      readonly width: number;
      readonly height: number;
      readonly scale: number;
    }
  | {
      /** Pixels embedded in the data file itself (AnnData `uns/spatial/<library>/images/hires`). */
      readonly kind: 'pixels';
      /** `file.h5ad#uns/spatial/lib/images/hires`: names where the pixels came from. */
      readonly origin: string;
      readonly width: number;
      readonly height: number;
      readonly channels: 1 | 3 | 4;
      /** Interleaved 8-bit samples, row-major. */
      readonly data: Uint8Array;
      readonly scale: number;
    };

/** A per-spot categorical column: pathologist regions, clusters, annotations. null = missing. */
export type LabelColumn = readonly (string | null)[];

/** The spellings R, pandas and spreadsheets use for a missing label. */
const MISSING_LABELS = new Set(['', 'NA', 'nan', 'NaN', 'None']);

/** A label as read from a file: trimmed, or null where the file means "missing". */
export function labelValue(raw: string | null): string | null {
  const value = raw?.trim() ?? '';
  return MISSING_LABELS.has(value) ? null : value;
}

/** Whether a column has any label at all (a column empty on a section is no label column for it). */
export function hasLabels(column: LabelColumn): boolean {
  return column.some((value) => value !== null);
}

export interface Section {
  /** Short name shown to users (folder or library name). */
  readonly name: string;
  readonly format: SectionFormat;
  /** The file or folder the section was read from. */
  readonly source: string;
  /** Spots that have counts, in count-matrix row order. */
  readonly spots: SpotTable;
  readonly genes: GeneTable;
  /** Spots x genes raw counts. */
  readonly counts: SparseCounts;
  readonly image: SectionImage | null;
  /** Microns per full-resolution pixel, or null where nothing in the data tells. */
  readonly micronsPerPixel: number | null;
  /** Physical spot diameter: 55 um for Visium, 100 um for legacy ST. */
  readonly spotDiameterMicrons: number;
  /** Centre-to-centre distance of lattice neighbours: 100 um Visium, 200 um legacy ST. */
  readonly spotSpacingMicrons: number;
  /** Per-spot label columns by name, aligned with `spots`. */
  readonly labels: ReadonlyMap<string, LabelColumn>;
  /** Things a user should know that did not stop the read (spots dropped for lack of positions, ...). */
  readonly warnings: readonly string[];
}

/** Spot diameter in full-resolution pixels (to draw spots at true size), or null without a pixel size. */
export function spotDiameterPixels(section: Section): number | null {
  return section.micronsPerPixel ? section.spotDiameterMicrons / section.micronsPerPixel : null;
}

/** Class -> count for one label column, missing values left out; classes in order of decreasing count. */
export function labelCounts(column: LabelColumn, include?: (spot: number) => boolean): Record<string, number> {
  const counts = new Map<string, number>();
  column.forEach((value, spot) => {
    if (value === null || (include && !include(spot))) return;
    counts.set(value, (counts.get(value) ?? 0) + 1);
  });
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}
