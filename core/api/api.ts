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
   * `spot_id,label`; also written (atomically) to `path` when one is given: an absolute path of a NEW file (exports
   * never overwrite) in a folder that exists, ending with `.geojson`/`.json` or `.csv` (see core/api/paths.ts).
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

  // --- Training (one run at a time, in a worker thread; models live in `<projectDir>/models/`) ---

  /** Starts a run on open sections; an error when one is running already or there is no project folder. */
  startTraining(request: TrainingRequest): Promise<TrainingStatus>;
  /** Where the run stands (poll it: a few times a second is cheap). */
  getTrainingStatus(): Promise<TrainingStatus>;
  /** Stops the run after its current step; the trainer saves a checkpoint that `resumeTraining` continues. */
  cancelTraining(): Promise<TrainingStatus>;
  /** Continues a library model's run from its last checkpoint (on the sections it was trained on). */
  resumeTraining(modelId: string, epochs?: number | null): Promise<TrainingStatus>;
  /** The model library: the bundled base model (read-only) first, then the project's models, newest first. */
  listModels(): Promise<ModelInfo[]>;
  renameModel(modelId: string, name: string): Promise<ModelInfo[]>;
  /** Deletes a model folder of the library (not the base model, not the one training). */
  deleteModel(modelId: string): Promise<ModelInfo[]>;
  /** Writes the model's current checkpoint as a model folder at `path` (absolute, new, in a folder that exists). */
  exportModel(modelId: string, path: string): Promise<{ readonly path: string }>;
  /** Copies a model folder (exported or a training folder) into the library. */
  importModel(path: string): Promise<ModelInfo>;

  /**
   * Predictions of a library model on an open section with an image: per spot, the class of a linear probe trained
   * on the reference sections' `labelColumn` (undetermined spots left out) and the expression of `genes` from the
   * image alone (nearest reference spots in the embedding space). References default to every other open section
   * with spots and an image, else the section itself (a resubstitution, said in `warnings`). Embeddings are cached
   * per model and section.
   */
  predictSection(sectionId: string, request: PredictionRequest): Promise<SectionPrediction>;
  /**
   * H&E without ST: gives a bare image section (format 'image') spot-sized tiles as its spots, over the detected
   * tissue (within a region when given), replacing earlier tiles; getSpots then gives them and predictSection
   * predicts on them from reference sections with ST (a tiled image is never a reference).
   */
  tileSection(sectionId: string, request: TileRequest): Promise<TileResult>;

  /**
   * Similar tissue: the `k` spots nearest to one spot (index in `getSpots` order, in the tissue) in a library
   * model's image embedding space, over every open section with an image and spots, nearest first; the spot itself
   * comes first, at distance 0. Distances are geodesic on the model's hyperboloid (clip models: Euclidean on the
   * normalised projections). Embeddings are shared with predictSection's cache.
   */
  findSimilarSpots(sectionId: string, spotIndex: number, request: SimilarSpotsRequest): Promise<SimilarSpot[]>;
  /**
   * The hierarchy a hyperbolic model learns, on the Poincaré disk: per in-tissue spot of each section, its image
   * embedding (and with `genes`, the gene encoder's embedding of its counts) at its true Poincaré-ball radius, the
   * angle from a 2-D projection (see `projection`). Generic spots lie near the centre, specific ones near the rim.
   */
  getHyperbolicMap(sectionIds: string[], request: HyperbolicMapRequest): Promise<HyperbolicMap>;
  /** Where the model job of predictSection, findSimilarSpots or getHyperbolicMap stands (poll it while one runs). */
  getInferenceStatus(): Promise<InferenceStatus>;
  /**
   * Stops the running model job at its next batch, and drops the jobs waiting behind it: their calls fail with an
   * error ending in `: cancelled`. Sections fully embedded stay cached; the next call works as usual.
   */
  cancelInference(): Promise<InferenceStatus>;
}

export type InferenceJobKind = 'predict' | 'similar' | 'map';

/**
 * What a model job is doing: loading the model, reading a section (cutting its spot patches), embedding its spots
 * with the image encoder, embedding its counts with the gene encoder, fitting the probe, predicting genes, finding
 * neighbours, laying out the disk.
 */
export type InferencePhase =
  'loading' | 'reading' | 'embedding' | 'genes' | 'fitting' | 'predicting' | 'searching' | 'mapping';

export interface InferenceStatus {
  readonly running: boolean;
  readonly job: InferenceJobKind | null;
  /** The phase of the running job, null before its worker part starts. */
  readonly phase: InferencePhase | null;
  /** The section read or embedded now (reading, embedding, genes), else null. */
  readonly sectionName: string | null;
  /** Spots of `sectionName` embedded so far, of `total` (reading, embedding, genes); else 0 of 0. */
  readonly done: number;
  readonly total: number;
  /**
   * 1-based: which of the `sections` passes this job makes over a section (an image pass per section not cached
   * yet, then a gene pass per section for the map's gene embeddings); 0 outside the embedding.
   */
  readonly section: number;
  readonly sections: number;
  /** The whole job, 0 to 1, never going back: mostly the spots embedded of all it embeds. */
  readonly fraction: number;
  /** Seconds left, from the rate of the embedding so far; null before it is known and after the embedding. */
  readonly etaSeconds: number | null;
  /** ISO time the running job started, else null. */
  readonly startedAt: string | null;
  /** Jobs waiting behind the running one. */
  readonly queued: number;
}

export interface SimilarSpotsRequest {
  readonly modelId: string;
  /** How many spots (1-1000, default 10), the query spot included. */
  readonly k?: number | null;
}

export interface SimilarSpot {
  readonly sectionId: string;
  readonly sectionName: string;
  /** Index in `getSpots` order of its section. */
  readonly spotIndex: number;
  readonly spotId: string;
  readonly distance: number;
}

export interface HyperbolicMapRequest {
  readonly modelId: string;
  /** Also map the gene encoder's embeddings of the spots' counts (sections with counts). */
  readonly genes?: boolean | null;
}

/** Points in the unit disk, one per mapped spot. */
export interface DiskPoints {
  readonly x: number[];
  readonly y: number[];
  /** Poincaré-ball norm tanh(sqrt(c) d(O, z) / 2) of the embedding z, exact: the distance from the centre here. */
  readonly radius: number[];
}

export interface HyperbolicMapSection {
  readonly sectionId: string;
  readonly sectionName: string;
  /** The mapped spots (in the tissue), by index in `getSpots` order. */
  readonly spotIndex: number[];
  readonly image: DiskPoints;
  /** Gene embeddings of the same spots, when asked for and the section has counts. */
  readonly gene: DiskPoints | null;
}

export interface HyperbolicMap {
  readonly modelId: string;
  /** The model's curvature c (curvature -c). */
  readonly curvature: number;
  /** How the angle of each point was chosen (the radius is exact; the angle is a projection). */
  readonly projection: string;
  readonly sections: HyperbolicMapSection[];
}

export interface TileRequest {
  /**
   * Microns per slide pixel. Required where the image does not say (the summary's micronsPerPixel is null): ask the
   * user (0.25 at 40x, 0.5 at 20x); a wrong value tiles at the wrong scale.
   */
  readonly micronsPerPixel?: number | null;
  /** Tile diameter in microns (default: the spot diameter of the open sections with ST, else 100). */
  readonly diameterMicrons?: number | null;
  /** Centre-to-centre distance of neighbouring tiles (default: the diameter, so tiles touch). */
  readonly spacingMicrons?: number | null;
  /** Tile only inside this annotation region of the section (an id from getAnnotations), still skipping glass. */
  readonly regionId?: string | null;
}

export interface TileResult {
  /** The section with its tiles as spots. */
  readonly section: SectionSummary;
  readonly tiles: number;
  readonly diameterMicrons: number;
  readonly spacingMicrons: number;
  /** Share of the image detected as tissue. */
  readonly tissueFraction: number;
}

export interface PredictionRequest {
  readonly modelId: string;
  /** Train a probe on this label column of the reference sections. */
  readonly labelColumn?: string | null;
  /** Open sections whose spots are the references (default: see predictSection). */
  readonly referenceSectionIds?: readonly string[] | null;
  /** Gene symbols to predict (at most 20). */
  readonly genes?: readonly string[] | null;
}

export interface PredictedGene {
  readonly symbol: string;
  /** ln(1 + count / total * targetSum) predicted per spot (getSpots order); null for spots not predicted. */
  readonly predicted: (number | null)[];
  /** The measured values on the same scale, or null where the section has no expression. */
  readonly measured: (number | null)[] | null;
}

export interface SectionPrediction {
  readonly modelId: string;
  readonly referenceSectionIds: readonly string[];
  readonly labelColumn?: string;
  /** The classes the probe was trained on. */
  readonly classes?: string[];
  /** Per spot (getSpots order); null for spots not predicted (outside the tissue). */
  readonly predictedClass?: (string | null)[];
  /** Probability of the predicted class, per spot. */
  readonly probability?: (number | null)[];
  readonly genes: PredictedGene[];
  /** The shared target sum T of the log-normalisation (median spot total of the reference spots). */
  readonly targetSum?: number;
  readonly warnings: string[];
}

export type TrainingPreset = 'quick' | 'full' | 'custom';
export type TrainingModeName = 'clip' | 'meru' | 'delst';

/**
 * quick: the head only, from the base model, on cached backbone features (seconds an epoch; 10 epochs unless
 * given). full: the whole network from the base model (3 epochs unless given). custom: from the base model with
 * the given mode, epochs, batch, λ and β (the backbone frozen when `freezeBackbone`).
 */
export interface TrainingRequest {
  readonly sectionIds: readonly string[];
  readonly preset: TrainingPreset;
  readonly mode?: TrainingModeName | null;
  readonly epochs?: number | null;
  readonly batchSize?: number | null;
  readonly lambda?: number | null;
  readonly beta?: number | null;
  readonly freezeBackbone?: boolean | null;
  /** The model's name in the library (default: the sections' names and the preset). */
  readonly name?: string | null;
  /**
   * Evaluate the finished model on this label column of the chosen sections (a section label column or
   * `annotations`): the result lands in the library entry's `evaluation`. None without one.
   */
  readonly labelColumn?: string | null;
}

/**
 * A library model's evaluation after its run, in the training worker: a linear probe on the frozen image features
 * (undetermined spots left out) and kNN gene expression from the image embeddings, on held-out spots: leave one
 * section out when two or more chosen sections have the label column, else spatial blocks of the labelled section.
 */
export interface ModelEvaluation {
  readonly labelColumn: string;
  readonly protocol: 'leave-one-section-out' | 'spatial-blocks';
  /** Folds with a probe (sections left out, or 1 for the block split). */
  readonly folds: number;
  /** Labelled spots tested by the probe, over all folds. */
  readonly testSpots: number;
  readonly accuracy: number | null;
  readonly balancedAccuracy: number | null;
  readonly macroF1: number | null;
  /** Mean per-gene Pearson r of the kNN prediction over the most variable genes (mean over folds). */
  readonly knnMeanR: number | null;
  /** Genes in that mean. */
  readonly genes: number;
  readonly seconds: number;
  readonly evaluatedAt: string;
  /** Why the evaluation failed (the model itself is fine), else null. */
  readonly error: string | null;
}

export type TrainingState = 'idle' | 'running' | 'done' | 'cancelled' | 'failed';

export interface TrainingLosses {
  readonly loss: number;
  readonly contrastive: number;
  readonly crossEntailment: number;
  readonly intraEntailment: number;
  /** c (null in clip mode). */
  readonly curvature: number | null;
}

export interface TrainingEpoch extends TrainingLosses {
  readonly epoch: number;
  readonly spotsPerSecond: number;
  readonly seconds: number;
}

export interface TrainingStep extends TrainingLosses {
  /** Optimizer steps in all (resumed ones included). */
  readonly globalStep: number;
}

export interface TrainingStatus {
  readonly state: TrainingState;
  /** Where the work runs, e.g. 'CPU via wasm SIMD, 2 threads'; null until the backend has been started once. */
  readonly backend: string | null;
  /** The run's model (its library id) and name, null before the first run. */
  readonly modelId: string | null;
  readonly modelName: string | null;
  readonly preset: TrainingPreset | null;
  /** What the trainer is doing before its steps start (reading, cutting patches, caching features). */
  readonly message: string | null;
  /** 1-based, 0 before the first step. */
  readonly epoch: number;
  readonly epochs: number;
  readonly step: number;
  readonly stepsPerEpoch: number;
  readonly globalStep: number;
  readonly totalSteps: number;
  /** Per epoch (earlier epochs of a resumed run included). */
  readonly history: readonly TrainingEpoch[];
  /** Per step of this run, thinned to at most ~1000 points. */
  readonly steps: readonly TrainingStep[];
  readonly last: TrainingLosses | null;
  readonly spotsPerSecond: number | null;
  readonly etaSeconds: number | null;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly error: string | null;
}

export interface ModelInfo {
  /** 'base' for the bundled base model, else the folder's name under `<projectDir>/models/`. */
  readonly id: string;
  readonly name: string;
  readonly mode: string;
  /** Names of the sections it was trained on. */
  readonly data: readonly string[];
  readonly spots: number;
  readonly epochs: number;
  /** The run's planned epochs (more than `epochs` for a stopped run), null when unknown. */
  readonly plannedEpochs: number | null;
  /** Loss of the last epoch, null without metrics. */
  readonly finalLoss: number | null;
  /** ISO time of its current checkpoint. */
  readonly date: string;
  readonly path: string;
  readonly readOnly: boolean;
  /** The run going on now writes this model. */
  readonly training: boolean;
  /** Held-out metrics of its last run with a label column, null without. */
  readonly evaluation: ModelEvaluation | null;
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
  'startTraining',
  'getTrainingStatus',
  'cancelTraining',
  'resumeTraining',
  'listModels',
  'renameModel',
  'deleteModel',
  'exportModel',
  'importModel',
  'predictSection',
  'tileSection',
  'findSimilarSpots',
  'getHyperbolicMap',
  'getInferenceStatus',
  'cancelInference',
] as const satisfies readonly (keyof StudioApi)[];
export type StudioApiMethod = (typeof STUDIO_API_METHODS)[number];
