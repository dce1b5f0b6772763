// The one typed API between the renderer and the core. Electron carries it over IPC (preload bridge), browser
// mode over HTTP on 127.0.0.1; the renderer sees only this interface and plain JSON-able data.

import type { SectionFormat } from '../section/section.js';

export interface SectionSummary {
  /** Stable id for this run of the app. */
  readonly id: string;
  readonly name: string;
  readonly format: SectionFormat;
  readonly source: string;
  /** In-tissue spots that have counts. */
  readonly spots: number;
  readonly genes: number;
  readonly image: { readonly width: number; readonly height: number } | null;
  readonly micronsPerPixel: number | null;
  readonly spotDiameterMicrons: number;
  /** Label column -> class -> count over in-tissue spots. */
  readonly labels: Record<string, Record<string, number>>;
  readonly warnings: readonly string[];
}

/** A slide's DeepZoom pyramid; tiles are fetched through the shell's tile route by `key`. */
export interface SlideInfo {
  /** Content hash of the source image: names the cached pyramid. */
  readonly key: string;
  readonly width: number;
  readonly height: number;
  readonly tileSize: number;
  readonly overlap: number;
  readonly format: 'jpeg' | 'png';
}

/** Spots in slide (pyramid) pixel coordinates, ready to draw. */
export interface SectionSpots {
  readonly ids: string[];
  readonly x: number[];
  readonly y: number[];
  readonly inTissue: boolean[];
  /** Spot diameter in slide pixels (true physical size), or null without a pixel size. */
  readonly diameter: number | null;
  readonly labels: Record<string, (string | null)[]>;
}

export interface OpenPathResult {
  readonly opened: SectionSummary[];
  /** One line each, naming the file and the problem. */
  readonly failed: string[];
}

export interface StudioApi {
  /** Sections open now (the bundled demo on a fresh start). */
  listSections(): Promise<SectionSummary[]>;
  /**
   * Opens every section found at a path on this machine. Errors name the file and the problem; in a folder of
   * several sections the broken ones come back in `failed` and the others open.
   */
  openPath(path: string): Promise<OpenPathResult>;
  getSpots(sectionId: string): Promise<SectionSpots>;
  /** Builds the pyramid on first call (cached on disk by content), then answers at once. */
  getSlide(sectionId: string): Promise<SlideInfo | null>;
}

/** The method names, for adapters that route calls by name. */
export const STUDIO_API_METHODS = [
  'listSections',
  'openPath',
  'getSpots',
  'getSlide',
] as const satisfies readonly (keyof StudioApi)[];
export type StudioApiMethod = (typeof STUDIO_API_METHODS)[number];
