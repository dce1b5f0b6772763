// The core side of the StudioApi: open sections, their spots and their slides. Shells (Electron IPC, the
// browser-mode server) wrap one Studio and forward calls to it unchanged.

import { basename, join, resolve } from 'node:path';
import { Annotations, withAnnotationColumn, type AnnotationClass } from '../project/annotations.js';
import { labelsToCsv, importCsvText } from '../project/csv.js';
import { MAX_RECENT, sectionInfo, type RecentRecord } from '../project/database.js';
import { writeFileAtomic } from '../atomic-write.js';
import { annotationsToGeoJson, importGeoJsonText } from '../project/geojson.js';
import { mapGeometry, polygonsOf, spotsInside, type Position } from '../project/geometry.js';
import { openSections } from '../readers/open.js';
import { SectionExpression } from '../section/expression.js';
import { labelCounts, spotDiameterPixels, type LabelColumn, type Section } from '../section/section.js';
import { SlideCache } from '../slides/pyramid.js';
import { DEFAULT_TILE_DIAMETER_MICRONS, tileImage } from '../slides/tiling.js';
import {
  ANNOTATION_COLUMN,
  type AnnotationClassInfo,
  type AnnotationExport,
  type AnnotationFormat,
  type AnnotationImportReport,
  type SectionAnnotations,
  type GeneSummary,
  type GeneValues,
  type OpenPathResult,
  type RecentItem,
  type SectionSpots,
  type SectionSummary,
  type SlideInfo,
  type SpotDetails,
  type StudioApi,
  type UploadFile,
  type UploadOptions,
  type UploadSectionResult,
  type ModelInfo,
  type TrainingRequest,
  type TrainingStatus,
  type PredictionRequest,
  type SectionPrediction,
  type TileRequest,
  type TileResult,
  type SimilarSpot,
  type SimilarSpotsRequest,
  type HyperbolicMap,
  type HyperbolicMapRequest,
  type InferenceStatus,
} from './api.js';
import { newFilePath, newPath, readablePath } from './paths.js';
import { PredictionManager } from './predictions.js';
import { TrainingManager } from './training.js';
import { Uploads, type UploadLimits } from './upload.js';

const DEFAULT_GENE_MATCHES = 20;
const MAX_GENE_MATCHES = 200;
const TOP_GENES = 10;

/** Largest import the API takes (GeoJSON with every spot as a 32-gon runs to ~1 kB a spot). */
const MAX_IMPORT_CHARS = 256 * 1024 * 1024;

export interface StudioOptions {
  /** Where slide pyramids are cached. */
  readonly cacheDir: string;
  /**
   * The project folder (its database holds the class palette, annotations and their history). Without one, the
   * annotation calls fail with a message saying so.
   */
  readonly projectDir?: string | null;
  /** Size limits of `uploadSection` (2 GiB a file and in all by default). */
  readonly uploadLimits?: UploadLimits;
  /** The bundled base model training starts from (default resources/models/delst-base). */
  readonly baseModel?: string;
}

export class Studio implements StudioApi {
  private readonly sections = new Map<string, Section>();
  /** Open section id -> its id in the project database. */
  private readonly projectIds = new Map<string, number>();
  private readonly expression = new WeakMap<Section, SectionExpression>();
  private nextId = 1;
  private annotations: Annotations | null = null;
  /** Recent paths where there is no project (or it cannot be opened), most recent first. */
  private recentInMemory: RecentRecord[] = [];
  readonly slides: SlideCache;
  readonly projectDir: string | null;
  private readonly uploads: Uploads | null;
  readonly training: TrainingManager;
  private readonly predictions: PredictionManager;

  constructor(options: StudioOptions) {
    this.slides = new SlideCache(options.cacheDir);
    this.projectDir = options.projectDir ? resolve(options.projectDir) : null;
    this.uploads = this.projectDir ? new Uploads(join(this.projectDir, 'uploads'), options.uploadLimits) : null;
    this.training = new TrainingManager({
      projectDir: this.projectDir,
      baseModel: options.baseModel,
      section: (id) => {
        const section = this.section(id);
        const spots = summarize(id, section, new Map()).spots;
        return {
          name: section.name,
          source: section.source,
          spots,
          hasImage: section.image !== null,
          labels: this.labelsOf(id, section),
        };
      },
    });
    this.predictions = new PredictionManager({
      listModels: () => this.training.listModels(),
      section: (id) => {
        const section = this.section(id);
        return { id, section, labels: this.labelsOf(id, section) };
      },
      sections: () => [...this.sections].map(([id, section]) => ({ id, section, labels: this.labelsOf(id, section) })),
    });
  }

  /** Closes the project database (tests, shutdown); a later annotation call opens it again. */
  close(): void {
    this.annotations?.close();
    this.annotations = null;
  }

  /**
   * Shutdown: a training run is cancelled, which saves a checkpoint it can resume from; a run that does not stop
   * within `graceMs` (a long step on a slow machine) is ended without one. Then the project is closed.
   */
  async shutdown(graceMs = 15_000): Promise<void> {
    if (this.training.running) {
      this.training.cancel();
      const stopped = await Promise.race([
        this.training.whenIdle().then(() => true),
        new Promise<boolean>((done) => setTimeout(() => done(false), graceMs).unref()),
      ]);
      if (!stopped) console.error('training did not stop in time: ended without a final checkpoint');
    }
    await Promise.all([this.training.terminate(), this.predictions.terminate()]);
    this.close();
  }

  // --- Training ---

  startTraining(request: TrainingRequest): Promise<TrainingStatus> {
    return this.training.start(request);
  }

  async getTrainingStatus(): Promise<TrainingStatus> {
    return this.training.getStatus();
  }

  async cancelTraining(): Promise<TrainingStatus> {
    return this.training.cancel();
  }

  resumeTraining(modelId: string, epochs?: number | null): Promise<TrainingStatus> {
    return this.training.resume(modelId, epochs);
  }

  listModels(): Promise<ModelInfo[]> {
    return this.training.listModels();
  }

  renameModel(modelId: string, name: string): Promise<ModelInfo[]> {
    return this.training.renameModel(modelId, name);
  }

  deleteModel(modelId: string): Promise<ModelInfo[]> {
    return this.training.deleteModel(modelId);
  }

  async exportModel(modelId: string, path: string): Promise<{ path: string }> {
    return this.training.exportModel(modelId, await newPath('exportModel', path));
  }

  importModel(path: string): Promise<ModelInfo> {
    return this.training.importModel(readablePath('importModel', path));
  }

  predictSection(sectionId: string, request: PredictionRequest): Promise<SectionPrediction> {
    return this.predictions.predict(sectionId, request);
  }

  async tileSection(sectionId: string, request: TileRequest): Promise<TileResult> {
    const section = this.section(sectionId);
    if (section.format !== 'image' || !section.image) {
      throw new Error(`tileSection: ${section.name} is not a bare H&E image (it has spots of its own)`);
    }
    if (typeof request !== 'object' || request === null) throw new Error('tileSection: give { micronsPerPixel }');
    const scale = section.image.scale;
    const known = section.micronsPerPixel === null ? null : section.micronsPerPixel / scale;
    const micronsPerPixel = request.micronsPerPixel ?? known;
    if (micronsPerPixel === null) {
      throw new Error(
        `tileSection: the pixel size of ${section.name} is unknown: give micronsPerPixel (0.25 at 40x, 0.5 at 20x)`,
      );
    }
    const region = request.regionId ? this.regionGeometry(sectionId, request.regionId, scale) : null;
    const diameterMicrons = request.diameterMicrons ?? this.referenceSpotDiameter();
    const tiled = await tileImage(section, {
      micronsPerPixel,
      diameterMicrons,
      spacingMicrons: request.spacingMicrons ?? undefined,
      region,
    }).catch((error: unknown) => {
      throw new Error(`tileSection: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    });
    const { grid, mask } = tiled;
    if (grid.ids.length === 0) {
      throw new Error(`tileSection: no tissue found in ${section.name}${region ? ' inside the region' : ''}`);
    }
    this.predictions.forget(section);
    this.sections.set(sectionId, tiled.section);
    return {
      section: summarize(sectionId, tiled.section, this.labelsOf(sectionId, tiled.section)),
      tiles: grid.ids.length,
      diameterMicrons: grid.diameterMicrons,
      spacingMicrons: grid.spacingMicrons,
      tissueFraction: mask.fraction,
    };
  }

  /** A region of the section's annotations, in image pixels. */
  private regionGeometry(sectionId: string, regionId: string, scale: number) {
    const project = this.project();
    const region = typeof regionId === 'string' ? project.region(regionId.toLowerCase()) : undefined;
    if (!region || region.sectionId !== this.projectId(sectionId)) {
      throw new Error(`tileSection: no region ${String(regionId).slice(0, 64)} in this section`);
    }
    return mapGeometry(region.geometry, ([x, y]) => [x * scale, y * scale]);
  }

  /** The spot diameter of the open sections with ST (the references), so tiles are cut at the scale they were. */
  private referenceSpotDiameter(): number {
    const diameters = [...this.sections.values()]
      .filter((s) => s.format !== 'image' && s.image !== null && s.spotDiameterMicrons > 0)
      .map((s) => s.spotDiameterMicrons)
      .sort((a, b) => a - b);
    return diameters.length > 0 ? diameters[diameters.length >> 1] : DEFAULT_TILE_DIAMETER_MICRONS;
  }

  findSimilarSpots(sectionId: string, spotIndex: number, request: SimilarSpotsRequest): Promise<SimilarSpot[]> {
    return this.predictions.findSimilar(sectionId, spotIndex, request);
  }

  getHyperbolicMap(sectionIds: string[], request: HyperbolicMapRequest): Promise<HyperbolicMap> {
    return this.predictions.hyperbolicMap(sectionIds, request);
  }

  async getInferenceStatus(): Promise<InferenceStatus> {
    return this.predictions.status();
  }

  async cancelInference(): Promise<InferenceStatus> {
    return this.predictions.cancel();
  }

  async listSections(): Promise<SectionSummary[]> {
    return [...this.sections].map(([id, section]) => summarize(id, section, this.labelsOf(id, section)));
  }

  async openPath(path: string): Promise<OpenPathResult> {
    const full = resolve(readablePath('openPath', path));
    const { sections, failures } = await openSections(full);
    const opened = sections.map((section) => this.addSection(section));
    this.remember(full, sections);
    return { opened, failed: failures.map((failure) => failure.message) };
  }

  async uploadSection(name: string, files: UploadFile[], options?: UploadOptions | null): Promise<UploadSectionResult> {
    if (!this.uploads) throw new Error('uploading needs a project folder, and none was given');
    const { uploadId, finished } = await this.uploads.write(name, files, options);
    if (!finished) return { uploadId, path: null, opened: [], failed: [] };
    return { ...(await this.openPath(finished.open)), uploadId, path: finished.open };
  }

  async listRecent(): Promise<RecentItem[]> {
    const project = this.recentProject();
    const records = project ? project.db.recent() : this.recentInMemory;
    return records.map((record) => ({ ...record, sources: [...record.sources] }));
  }

  async closeSection(sectionId: string): Promise<SectionSummary[]> {
    this.predictions.forget(this.section(sectionId)); // names an unknown id
    // Only this run's view of it goes: its annotations stay in the project, found again when it is reopened.
    this.sections.delete(sectionId);
    this.projectIds.delete(sectionId);
    return this.listSections();
  }

  /** Records a path that opened, at the top of the recent list (in the project when there is one). */
  private remember(path: string, sections: readonly Section[]): void {
    const formats = [...new Set(sections.map((section) => section.format))];
    const record: RecentRecord = {
      path,
      name: sections.length === 1 ? sections[0].name : basename(path) || path,
      format: formats.length === 1 ? formats[0] : 'mixed',
      sources: sections.map((section) => section.source),
      openedAt: new Date().toISOString(),
    };
    const project = this.recentProject();
    if (project) {
      try {
        project.db.addRecent(record);
        return;
      } catch {
        // A project that cannot be written keeps the list in memory for this run.
      }
    }
    this.recentInMemory = [record, ...this.recentInMemory.filter((r) => r.path !== path)].slice(0, MAX_RECENT);
  }

  /** The project for the recent list, or null without one (or when it cannot be opened). */
  private recentProject(): Annotations | null {
    if (!this.projectDir) return null;
    try {
      return this.project();
    } catch {
      return null;
    }
  }

  /**
   * Adds a section built in memory (benchmarks, tests). Not part of the StudioApi: the shells route only the
   * names in STUDIO_API_METHODS, so no renderer can reach it.
   */
  addSection(section: Section): SectionSummary {
    const id = `s${this.nextId++}`;
    this.sections.set(id, section);
    // Registered in the project at once, so its annotations are found again in the next session.
    // (A project that cannot be opened leaves the section viewable; annotation calls then report why.)
    if (this.projectDir) {
      try {
        this.projectId(id);
      } catch {
        // Reported by the annotation calls.
      }
    }
    return summarize(id, section, this.labelsOf(id, section));
  }

  async getSpots(sectionId: string): Promise<SectionSpots> {
    const section = this.section(sectionId);
    const { spots, image } = section;
    // Slides are drawn in image pixels; spots are stored in full-resolution pixels.
    const scale = image?.scale ?? 1;
    const diameter = spotDiameterPixels(section);
    return {
      ids: [...spots.ids],
      x: Array.from(spots.x, (v) => v * scale),
      y: Array.from(spots.y, (v) => v * scale),
      inTissue: Array.from(spots.inTissue, (v) => v === 1),
      diameter: diameter === null ? null : diameter * scale,
      micronsPerPixel: section.micronsPerPixel ? section.micronsPerPixel / scale : null,
      labels: Object.fromEntries([...this.labelsOf(sectionId, section)].map(([name, column]) => [name, [...column]])),
    };
  }

  async getSlide(sectionId: string): Promise<SlideInfo | null> {
    const { image } = this.section(sectionId);
    return image ? this.slides.pyramid(image) : null;
  }

  async searchGenes(sectionId: string, query: string, limit = DEFAULT_GENE_MATCHES): Promise<GeneSummary[]> {
    if (typeof query !== 'string') throw new Error('searchGenes: the query must be a string');
    if (!Number.isInteger(limit) || limit < 1) throw new Error('searchGenes: the limit must be a positive integer');
    return this.expressionOf(sectionId).searchGenes(query, Math.min(limit, MAX_GENE_MATCHES));
  }

  async getGeneValues(sectionId: string, gene: string): Promise<GeneValues> {
    if (typeof gene !== 'string') throw new Error('getGeneValues: the gene must be a string');
    const section = this.section(sectionId);
    const expression = this.expressionOf(sectionId);
    const index = expression.findGene(gene);
    if (index < 0) throw new Error(`${section.name} has no gene ${JSON.stringify(gene.slice(0, 64))}`);
    const { gene: summary, raw, normalised, targetSum } = expression.expression(index);
    return { gene: summary, encoding: 'float32-base64', raw: base64(raw), normalised: base64(normalised), targetSum };
  }

  async getSpotDetails(sectionId: string, spotIndex: number): Promise<SpotDetails> {
    const section = this.section(sectionId);
    const { spots } = section;
    if (!Number.isInteger(spotIndex) || spotIndex < 0 || spotIndex >= spots.ids.length) {
      throw new Error(`getSpotDetails: no spot ${String(spotIndex).slice(0, 32)} in ${section.name}`);
    }
    const { totalCounts, nnz, topGenes } = this.expressionOf(sectionId).spot(spotIndex, TOP_GENES);
    return {
      index: spotIndex,
      id: spots.ids[spotIndex],
      inTissue: spots.inTissue[spotIndex] === 1,
      totalCounts,
      nnz,
      labels: Object.fromEntries(
        [...this.labelsOf(sectionId, section)].map(([name, column]) => [name, column[spotIndex]]),
      ),
      topGenes,
    };
  }

  // --- Annotation ---

  async listClasses(): Promise<AnnotationClassInfo[]> {
    return this.project().classes().map(classInfo);
  }

  async createClass(name: string, color?: string | null): Promise<AnnotationClassInfo> {
    if (typeof name !== 'string') throw new Error('createClass: the name must be a string');
    if (color !== undefined && color !== null && typeof color !== 'string') {
      throw new Error('createClass: the colour must be a string (#rrggbb)');
    }
    return classInfo(this.project().createClass(name, color ?? null));
  }

  async renameClass(classId: number, name: string): Promise<AnnotationClassInfo[]> {
    if (typeof name !== 'string') throw new Error('renameClass: the name must be a string');
    this.project().renameClass(classIdOf(classId), name);
    return this.listClasses();
  }

  async recolorClass(classId: number, color: string): Promise<AnnotationClassInfo[]> {
    if (typeof color !== 'string') throw new Error('recolorClass: the colour must be a string (#rrggbb)');
    this.project().recolorClass(classIdOf(classId), color);
    return this.listClasses();
  }

  async reorderClasses(classIds: number[]): Promise<AnnotationClassInfo[]> {
    if (!Array.isArray(classIds)) throw new Error('reorderClasses: expected an array of class ids');
    this.project().reorderClasses(classIds.map(classIdOf));
    return this.listClasses();
  }

  async deleteClass(classId: number): Promise<AnnotationClassInfo[]> {
    this.project().deleteClass(classIdOf(classId));
    return this.listClasses();
  }

  async getAnnotations(sectionId: string): Promise<SectionAnnotations> {
    const section = this.section(sectionId);
    const project = this.project();
    const key = this.projectId(sectionId);
    const scale = section.image?.scale ?? 1;
    return {
      labels: [...project.labelColumn(key, section.spots.ids)],
      regions: project.regions(key).map((region) => ({
        id: region.id,
        classId: region.classId,
        name: region.name,
        polygons: polygonsOf(region.geometry).map((rings) =>
          rings.map((ring) => ring.map(([x, y]): [number, number] => [x * scale, y * scale])),
        ),
      })),
      canUndo: project.canUndo(key),
      canRedo: project.canRedo(key),
    };
  }

  async labelSpots(sectionId: string, spotIndices: number[], classId: number | null): Promise<SectionAnnotations> {
    const section = this.section(sectionId);
    if (!Array.isArray(spotIndices)) throw new Error('labelSpots: expected an array of spot indices');
    const { ids } = section.spots;
    const spots = spotIndices.map((index) => {
      if (!Number.isInteger(index) || index < 0 || index >= ids.length) {
        throw new Error(`labelSpots: no spot ${String(index).slice(0, 32)} in ${section.name}`);
      }
      return ids[index];
    });
    this.project().labelSpots(this.projectId(sectionId), spots, classId === null ? null : classIdOf(classId));
    return this.getAnnotations(sectionId);
  }

  async addRegion(sectionId: string, polygon: [number, number][], classId: number | null): Promise<SectionAnnotations> {
    const section = this.section(sectionId);
    if (!Array.isArray(polygon) || polygon.length < 3) throw new Error('addRegion: a polygon needs 3 points or more');
    const scale = section.image?.scale ?? 1;
    // Slide pixels -> full-resolution pixels, where the project keeps geometry.
    const ring: Position[] = polygon.map((point) => {
      if (
        !Array.isArray(point) ||
        point.length !== 2 ||
        !point.every((v) => typeof v === 'number' && Number.isFinite(v))
      )
        throw new Error('addRegion: every point must be [x, y] (finite numbers)');
      return [point[0] / scale, point[1] / scale];
    });
    const [fx, fy] = ring[0];
    const [lx, ly] = ring[ring.length - 1];
    if (fx !== lx || fy !== ly) ring.push([fx, fy]);
    const geometry = { type: 'Polygon' as const, coordinates: [ring] };
    const project = this.project();
    const cls = classId === null ? null : project.class(classIdOf(classId));
    if (classId !== null && !cls) throw new Error(`addRegion: no class with id ${classId}`);
    // Region and the labels of the spots inside it: one change (one undo step).
    const labels = new Map<string, string | null>();
    if (cls) for (const i of spotsInside(geometry, section.spots)) labels.set(section.spots.ids[i], cls.name);
    project.importAnnotations(this.projectId(sectionId), {
      labels,
      regions: [{ geometry, className: cls?.name ?? null, name: null }],
    });
    return this.getAnnotations(sectionId);
  }

  async deleteRegion(sectionId: string, regionId: string): Promise<SectionAnnotations> {
    const project = this.project();
    const region = typeof regionId === 'string' ? project.region(regionId.toLowerCase()) : undefined;
    if (!region || region.sectionId !== this.projectId(sectionId)) {
      throw new Error(`deleteRegion: no region ${String(regionId).slice(0, 64)} in this section`);
    }
    project.deleteRegion(region.id);
    return this.getAnnotations(sectionId);
  }

  async undo(sectionId: string): Promise<SectionAnnotations> {
    this.project().undo(this.projectId(sectionId));
    return this.getAnnotations(sectionId);
  }

  async redo(sectionId: string): Promise<SectionAnnotations> {
    this.project().redo(this.projectId(sectionId));
    return this.getAnnotations(sectionId);
  }

  async exportAnnotations(
    sectionId: string,
    format: AnnotationFormat,
    path?: string | null,
  ): Promise<AnnotationExport> {
    const section = this.section(sectionId);
    const project = this.project();
    const key = this.projectId(sectionId);
    let text: string;
    if (format === 'geojson') {
      const collection = annotationsToGeoJson(project, key, {
        spots: section.spots,
        spotDiameter: spotDiameterPixels(section),
      });
      text = JSON.stringify(collection) + '\n';
    } else if (format === 'csv') {
      text = labelsToCsv(project, key, section.spots.ids);
    } else {
      throw new Error(
        `exportAnnotations: unknown format ${JSON.stringify(String(format).slice(0, 32))} (geojson or csv)`,
      );
    }
    let written: string | null = null;
    if (path !== undefined && path !== null) {
      // A new file only (core/api/paths.ts): an export never overwrites anything.
      written = await newFilePath('exportAnnotations', path, format === 'csv' ? ['.csv'] : ['.geojson', '.json']);
      await writeFileAtomic(written, text);
    }
    const stem = basename(section.name).replace(/[^\w.-]+/g, '_') || 'section';
    return { format, fileName: `${stem}-annotations.${format}`, text, path: written };
  }

  async importAnnotations(sectionId: string, format: AnnotationFormat, text: string): Promise<AnnotationImportReport> {
    const section = this.section(sectionId);
    if (typeof text !== 'string') throw new Error('importAnnotations: the text must be a string');
    if (text.length > MAX_IMPORT_CHARS) throw new Error('importAnnotations: the file is too large');
    const project = this.project();
    const key = this.projectId(sectionId);
    const file = `the uploaded ${format === 'csv' ? 'CSV' : 'GeoJSON'} file`;
    const report =
      format === 'geojson'
        ? importGeoJsonText(project, key, text, file, {
            spots: section.spots,
            spotDiameter: spotDiameterPixels(section),
          })
        : format === 'csv'
          ? importCsvText(project, key, text, file, { spotIds: section.spots.ids })
          : null;
    if (!report) {
      throw new Error(
        `importAnnotations: unknown format ${JSON.stringify(String(format).slice(0, 32))} (geojson or csv)`,
      );
    }
    return {
      spotsChanged: report.spotsChanged,
      regionsAdded: report.regionsAdded,
      classesCreated: report.classesCreated,
      warnings: report.warnings,
      annotations: await this.getAnnotations(sectionId),
    };
  }

  /** The project, opened on first use. */
  private project(): Annotations {
    if (!this.projectDir) throw new Error('annotation needs a project folder, and none was given');
    this.annotations ??= Annotations.openProject(this.projectDir);
    return this.annotations;
  }

  private projectId(sectionId: string): number {
    const section = this.section(sectionId);
    let id = this.projectIds.get(sectionId);
    if (id === undefined) {
      id = this.project().db.registerSection(sectionInfo(section)).id;
      this.projectIds.set(sectionId, id);
    }
    return id;
  }

  /** A section's label columns, with its annotations as the column ANNOTATION_COLUMN when there is a project. */
  private labelsOf(sectionId: string, section: Section): ReadonlyMap<string, LabelColumn> {
    let annotations: LabelColumn;
    try {
      if (!this.projectDir) return section.labels;
      annotations = this.project().labelColumn(this.projectId(sectionId), section.spots.ids);
    } catch {
      return section.labels;
    }
    return withAnnotationColumn(section.labels, annotations, ANNOTATION_COLUMN);
  }

  private section(id: string): Section {
    const section = typeof id === 'string' ? this.sections.get(id) : undefined;
    if (!section) throw new Error(`no open section with id ${String(id).slice(0, 64)}`);
    return section;
  }

  private expressionOf(id: string): SectionExpression {
    const section = this.section(id);
    let expression = this.expression.get(section);
    if (!expression) this.expression.set(section, (expression = new SectionExpression(section)));
    return expression;
  }
}

function classInfo(cls: AnnotationClass): AnnotationClassInfo {
  return { id: cls.id, name: cls.name, color: cls.color };
}

function classIdOf(value: unknown): number {
  if (!Number.isInteger(value)) throw new Error(`not a class id: ${String(value).slice(0, 32)}`);
  return value as number;
}

export function summarize(
  id: string,
  section: Section,
  labels: ReadonlyMap<string, LabelColumn> = section.labels,
): SectionSummary {
  const inTissue = (spot: number) => section.spots.inTissue[spot] === 1;
  let spots = 0;
  section.spots.inTissue.forEach((v) => (spots += v));
  return {
    id,
    name: section.name,
    format: section.format,
    source: section.source,
    spots,
    genes: section.genes.symbols.length,
    image: section.image ? { width: section.image.width, height: section.image.height } : null,
    micronsPerPixel: section.micronsPerPixel,
    spotDiameterMicrons: section.spotDiameterMicrons,
    labels: Object.fromEntries([...labels].map(([name, column]) => [name, labelCounts(column, inTissue)])),
    warnings: [...section.warnings],
  };
}

/** A Float32Array as base64 of its bytes (little-endian on every platform the app runs on). */
function base64(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}
