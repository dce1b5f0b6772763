// The core side of the StudioApi: open sections, their spots and their slides. Shells (Electron IPC, the
// browser-mode server) wrap one Studio and forward calls to it unchanged.

import { resolve } from 'node:path';
import { openSections } from '../readers/open.js';
import { labelCounts, spotDiameterPixels, type Section } from '../section/section.js';
import { SlideCache } from '../slides/pyramid.js';
import type { OpenPathResult, SectionSpots, SectionSummary, SlideInfo, StudioApi } from './api.js';

export class Studio implements StudioApi {
  private readonly sections = new Map<string, Section>();
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
    const opened = sections.map((section) => {
      const id = `s${this.nextId++}`;
      this.sections.set(id, section);
      return summarize(id, section);
    });
    return { opened, failed: failures.map((failure) => failure.message) };
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
      labels: Object.fromEntries([...section.labels].map(([name, column]) => [name, [...column]])),
    };
  }

  async getSlide(sectionId: string): Promise<SlideInfo | null> {
    const { image } = this.section(sectionId);
    return image ? this.slides.pyramid(image) : null;
  }

  private section(id: string): Section {
    const section = this.sections.get(id);
    if (!section) throw new Error(`no open section with id ${id}`);
    return section;
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
