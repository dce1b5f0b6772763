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
  /** Microns per slide pixel (for a scale bar), or null without a pixel size. */
  readonly micronsPerPixel: number | null;
  readonly labels: Record<string, (string | null)[]>;
}

/** A gene of a section, with how much of it the section holds. */
export interface GeneSummary {
  /** Column of the section's count matrix. */
  readonly index: number;
  readonly symbol: string;
  /** Ensembl id, or null where the format only has symbols. */
  readonly id: string | null;
  /** Sum of its counts over all spots. */
  readonly totalCounts: number;
  /** Spots where it is detected. */
  readonly spots: number;
}

/**
 * One gene over every spot of a section, in `getSpots` order. The arrays travel as base64 of little-endian
 * Float32 (5.3 bytes a spot, against ~2-3 for small integers and ~19 for floats as JSON numbers): decode with
 * `new Float32Array(bytes.buffer)`.
 */
export interface GeneValues {
  readonly gene: GeneSummary;
  readonly encoding: 'float32-base64';
  /** Raw counts. */
  readonly raw: string;
  /** Library-size normalised: ln(1 + raw / spot total * targetSum), 0 for spots without counts. */
  readonly normalised: string;
  /** The library size every spot is scaled to: the median total counts of the section's spots. */
  readonly targetSum: number;
}

/** What one spot holds, for the viewer's hover card. */
export interface SpotDetails {
  readonly index: number;
  readonly id: string;
  readonly inTissue: boolean;
  readonly totalCounts: number;
  /** Genes detected (non-zero counts). */
  readonly nnz: number;
  /** Label column -> this spot's class (null = missing). */
  readonly labels: Record<string, string | null>;
  /** The 10 most expressed genes, by decreasing count. */
  readonly topGenes: { readonly symbol: string; readonly count: number }[];
}

export interface OpenPathResult {
  readonly opened: SectionSummary[];
  /** One line each, naming the file and the problem. */
  readonly failed: string[];
}

/** A path opened successfully, for the slide library's "Recent" list. */
export interface RecentItem {
  /** The absolute path that was opened (a file or a folder). */
  readonly path: string;
  readonly name: string;
  /** The SectionFormat of what it opened, or 'mixed' for a folder of several formats. */
  readonly format: string;
  /** `source` of each section it opened: an open section with one of these is this item, open already. */
  readonly sources: string[];
  /** ISO time of the last open. */
  readonly openedAt: string;
}

export interface StudioApi {
  /** Sections open now (the bundled demo on a fresh start). */
  listSections(): Promise<SectionSummary[]>;
  /**
   * Opens every section found at a path on this machine. Errors name the file and the problem; in a folder of
   * several sections the broken ones come back in `failed` and the others open.
   */
  openPath(path: string): Promise<OpenPathResult>;
  /**
   * Paths opened successfully, the most recent first, each once, at most 20: kept in the project database when
   * there is a project (so they outlive the run), else for this run only.
   */
  listRecent(): Promise<RecentItem[]>;
  /** Closes an open section (its annotations stay in the project); gives the sections still open. */
  closeSection(sectionId: string): Promise<SectionSummary[]>;
  getSpots(sectionId: string): Promise<SectionSpots>;
  /** Builds the pyramid on first call (cached on disk by content), then answers at once. */
  getSlide(sectionId: string): Promise<SlideInfo | null>;
  /**
   * Genes whose symbol or id matches `query` (case-insensitive): exact, then prefix, then substring matches, the
   * most expressed first within each; an empty query gives the most expressed genes. At most `limit` (1-200).
   */
  searchGenes(sectionId: string, query: string, limit?: number): Promise<GeneSummary[]>;
  /** One gene (symbol or id, case-insensitive) over all spots; an error names a gene the section lacks. */
  getGeneValues(sectionId: string, gene: string): Promise<GeneValues>;
  /** One spot by its index in `getSpots` order. */
  getSpotDetails(sectionId: string, spotIndex: number): Promise<SpotDetails>;

  // --- Annotation (the project's class palette; spot labels and regions per section, with undo/redo) ---

  /** The project's class palette, in palette order. */
  listClasses(): Promise<AnnotationClassInfo[]>;
  /** A new class (a free colour when none is given); an error names a duplicate or empty name. */
  createClass(name: string, color?: string | null): Promise<AnnotationClassInfo>;
  renameClass(classId: number, name: string): Promise<AnnotationClassInfo[]>;
  recolorClass(classId: number, color: string): Promise<AnnotationClassInfo[]>;
  /** Puts the palette in the order of `classIds` (every class once). */
  reorderClasses(classIds: number[]): Promise<AnnotationClassInfo[]>;
  /** Deletes a class and its spot labels in every section (regions of it become unclassified). */
  deleteClass(classId: number): Promise<AnnotationClassInfo[]>;
  getAnnotations(sectionId: string): Promise<SectionAnnotations>;
  /** Labels spots (by index in `getSpots` order) with a class, or unlabels them (null): one undo step. */
  labelSpots(sectionId: string, spotIndices: number[], classId: number | null): Promise<SectionAnnotations>;
  /**
   * Keeps a polygon (a ring of [x, y] in SLIDE pixels, as `getSpots` gives positions) as a region; with a class,
   * the spots whose centres fall inside take it too. One undo step.
   */
  addRegion(sectionId: string, polygon: [number, number][], classId: number | null): Promise<SectionAnnotations>;
  deleteRegion(sectionId: string, regionId: string): Promise<SectionAnnotations>;
  undo(sectionId: string): Promise<SectionAnnotations>;
  redo(sectionId: string): Promise<SectionAnnotations>;
  /**
   * A section's annotations as QuPath GeoJSON (full-resolution pixels, every spot a detection) or CSV
   * `spot_id,label`; also written (atomically) to `path`, an absolute path, when one is given.
   */
  exportAnnotations(sectionId: string, format: AnnotationFormat, path?: string | null): Promise<AnnotationExport>;
  /** Imports GeoJSON or CSV text over the section's annotations, as one undo step. */
  importAnnotations(sectionId: string, format: AnnotationFormat, text: string): Promise<AnnotationImportReport>;

  // --- Upload (browser mode: files a browser picked, which the server cannot name by path) ---

  /**
   * Writes files under `<projectDir>/uploads/<name>-<timestamp>/` and opens them as `openPath` would (the folder,
   * or the file when one file was sent). Large uploads come in several calls: the first (no `uploadId`) gives an
   * `uploadId`, the next ones pass it, all but the last with `done: false`; nothing is visible under `uploads/`
   * before the last call, and any error drops the whole upload. Paths are relative and `/`-separated (no `..`,
   * no absolute paths, no NUL); each file and the whole upload have a size limit (2 GiB by default).
   */
  uploadSection(name: string, files: UploadFile[], options?: UploadOptions | null): Promise<UploadSectionResult>;
}

/** A chunk of an uploaded file. */
export interface UploadFile {
  /** Relative to the upload's folder, `/`-separated: `spots.tsv`, `outs/spatial/tissue_hires_image.png`. */
  readonly path: string;
  /** Base64 of the chunk's bytes. */
  readonly data: string;
  /** Where the chunk starts in the file (0 by default); a file's chunks come in order. */
  readonly offset?: number;
}

export interface UploadOptions {
  /** Continues the upload an earlier call began. */
  readonly uploadId?: string | null;
  /** False while more chunks are to come; true (the default) to finish: move into place and open. */
  readonly done?: boolean;
}

export interface UploadSectionResult extends OpenPathResult {
  readonly uploadId: string;
  /** What was opened (the upload's folder, or its one file) once done; null while chunks are still to come. */
  readonly path: string | null;
}

/** The label column under which a section's annotations appear in `labels` of summaries, spots and details. */
export const ANNOTATION_COLUMN = 'annotations';

export type AnnotationFormat = 'geojson' | 'csv';

export interface AnnotationClassInfo {
  readonly id: number;
  readonly name: string;
  /** `#rrggbb`. */
  readonly color: string;
}

export interface AnnotationRegion {
  /** A UUID. */
  readonly id: string;
  readonly classId: number | null;
  readonly name: string | null;
  /** Polygons (each: outer ring, then holes; rings closed) in SLIDE pixels. */
  readonly polygons: [number, number][][][];
}

export interface SectionAnnotations {
  /** Class name per spot, aligned with `getSpots`, null where unlabelled. */
  readonly labels: (string | null)[];
  readonly regions: AnnotationRegion[];
  readonly canUndo: boolean;
  readonly canRedo: boolean;
}

export interface AnnotationExport {
  readonly format: AnnotationFormat;
  /** A file name to offer for download. */
  readonly fileName: string;
  readonly text: string;
  /** Where it was written, or null. */
  readonly path: string | null;
}

export interface AnnotationImportReport {
  readonly spotsChanged: number;
  readonly regionsAdded: number;
  readonly classesCreated: readonly string[];
  readonly warnings: readonly string[];
  readonly annotations: SectionAnnotations;
}

/** The method names, for adapters that route calls by name. */
export const STUDIO_API_METHODS = [
  'listSections',
  'openPath',
  'listRecent',
  'closeSection',
  'getSpots',
  'getSlide',
  'searchGenes',
  'getGeneValues',
  'getSpotDetails',
  'listClasses',
  'createClass',
  'renameClass',
  'recolorClass',
  'reorderClasses',
  'deleteClass',
  'getAnnotations',
  'labelSpots',
  'addRegion',
  'deleteRegion',
  'undo',
  'redo',
  'exportAnnotations',
  'importAnnotations',
  'uploadSection',
] as const satisfies readonly (keyof StudioApi)[];
export type StudioApiMethod = (typeof STUDIO_API_METHODS)[number];
