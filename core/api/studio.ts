// The core side of the StudioApi: open sections, their spots and their slides. Shells (Electron IPC, the
// browser-mode server) wrap one Studio and forward calls to it unchanged.

import { resolve } from 'node:path';
import { openSections } from '../readers/open.js';
import { SectionExpression } from '../section/expression.js';
import { labelCounts, spotDiameterPixels, type Section } from '../section/section.js';
import { SlideCache } from '../slides/pyramid.js';
import type {
  GeneSummary,
  GeneValues,
  OpenPathResult,
  SectionSpots,
  SectionSummary,
  SlideInfo,
  SpotDetails,
  StudioApi,
} from './api.js';

const DEFAULT_GENE_MATCHES = 20;
const MAX_GENE_MATCHES = 200;
const TOP_GENES = 10;

export class Studio implements StudioApi {
  private readonly sections = new Map<string, Section>();
  private readonly expression = new WeakMap<Section, SectionExpression>();
  private nextId = 1;
  readonly slides: SlideCache;

  constructor(options: { cacheDir: string }) {
    this.slides = new SlideCache(options.cacheDir);
  }

  async listSections(): Promise<SectionSummary[]> {
    return [...this.sections].map(([id, section]) => summarize(id, section));
  }

  async openPath(path: string): Promise<OpenPathResult> {
    const { sections, failures } = await openSections(resolve(path));
    const opened = sections.map((section) => this.addSection(section));
    return { opened, failed: failures.map((failure) => failure.message) };
  }

  /**
   * Adds a section built in memory (benchmarks, tests). Not part of the StudioApi: the shells route only the
   * names in STUDIO_API_METHODS, so no renderer can reach it.
   */
  addSection(section: Section): SectionSummary {
    const id = `s${this.nextId++}`;
    this.sections.set(id, section);
    return summarize(id, section);
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
      labels: Object.fromEntries([...section.labels].map(([name, column]) => [name, [...column]])),
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
      labels: Object.fromEntries([...section.labels].map(([name, column]) => [name, column[spotIndex]])),
      topGenes,
    };
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

export function summarize(id: string, section: Section): SectionSummary {
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
    labels: Object.fromEntries([...section.labels].map(([name, column]) => [name, labelCounts(column, inTissue)])),
    warnings: [...section.warnings],
  };
}

/** A Float32Array as base64 of its bytes (little-endian on every platform the app runs on). */
function base64(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}
