// The slide library's core: recent paths (in the project database across runs, else in memory), closing a
// section without losing its annotations, and bare H&E images opened as image-only sections.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Studio } from '../../core/api/studio.js';
import { MAX_RECENT, ProjectDatabase } from '../../core/project/database.js';
import { aperioMpp, resolutionMpp } from '../../core/readers/image-only.js';
import { findSections, openSections } from '../../core/readers/open.js';
import { demoPath } from '../../core/resources.js';

let scratch: string;
let png: string;
let jpeg: string;
let tiff: string;
let imageFolder: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'delst-library-'));
  const pink = { width: 320, height: 200, channels: 3 as const, background: { r: 230, g: 170, b: 200 } };
  png = join(scratch, 'slide.png');
  await sharp({ create: pink }).png().toFile(png);
  jpeg = join(scratch, 'he.jpg');
  await sharp({ create: pink }).jpeg().toFile(jpeg);
  // 0.5 um/px: sharp takes xres in pixels per mm (2000/mm = 20,000/cm).
  tiff = join(scratch, 'scan.tif');
  await sharp({ create: pink }).tiff({ xres: 2000, yres: 2000, resolutionUnit: 'cm' }).toFile(tiff);
  imageFolder = join(scratch, 'only-an-image');
  mkdirSync(imageFolder);
  await sharp({ create: pink }).png().toFile(join(imageFolder, 'thumbnail.png'));
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function studioFor(projectDir: string | null): Studio {
  return new Studio({ cacheDir: join(scratch, 'cache'), projectDir });
}

describe('image-only sections', () => {
  it('opens a PNG as a section with no spots and no genes, at its size', async () => {
    const { sections } = await openSections(png);
    expect(sections).toHaveLength(1);
    const [section] = sections;
    expect(section.format).toBe('image');
    expect(section.name).toBe('slide');
    expect(section.spots.ids).toHaveLength(0);
    expect(section.genes.symbols).toHaveLength(0);
    expect(section.counts.nSpots).toBe(0);
    expect(section.image).toMatchObject({ kind: 'file', path: png, width: 320, height: 200, scale: 1 });
    expect(section.micronsPerPixel).toBeNull();
  });

  it('opens a JPEG, and takes the pixel size of a TIFF from its resolution tags', async () => {
    expect((await openSections(jpeg)).sections[0]).toMatchObject({ format: 'image', micronsPerPixel: null });
    const [scan] = (await openSections(tiff)).sections;
    expect(scan.format).toBe('image');
    expect(scan.image).toMatchObject({ width: 320, height: 200 });
    expect(scan.micronsPerPixel).toBeCloseTo(0.5, 6);
  });

  it('reads Aperio MPP and believes only microscope-like resolutions', () => {
    expect(
      aperioMpp(
        'Aperio Image Library v11.2.1 \r\n46000x32914 [0,100 46000x32714] (240x240) JPEG/RGB Q=70|AppMag = 20|MPP = 0.4990|StripeWidth = 2040',
      ),
    ).toBe(0.499);
    expect(aperioMpp('no pixel size here')).toBeNull();
    expect(resolutionMpp(20_000, 3)).toBeCloseTo(0.5, 9);
    expect(resolutionMpp(72, 2)).toBeNull(); // a screen's 72 dpi says nothing about the tissue
    expect(resolutionMpp(null, 3)).toBeNull();
  });

  it('leaves images in folders alone: a folder holding only an image is of unknown format', async () => {
    await expect(findSections(imageFolder)).rejects.toThrow(/unknown format/);
    await expect(findSections(scratch)).rejects.toThrow(/unknown format/);
  });

  it('serves an image-only section through the Studio: no spots, no genes, a slide', async () => {
    const studio = studioFor(null);
    const { opened } = await studio.openPath(png);
    expect(opened[0]).toMatchObject({ format: 'image', spots: 0, genes: 0, image: { width: 320, height: 200 } });
    const spots = await studio.getSpots(opened[0].id);
    expect(spots.ids).toEqual([]);
    expect(spots.micronsPerPixel).toBeNull();
    expect(await studio.searchGenes(opened[0].id, '')).toEqual([]);
    const slide = await studio.getSlide(opened[0].id);
    expect(slide).toMatchObject({ width: 320, height: 200 });
  });
});

describe('recent paths', () => {
  it('keeps opened paths most recent first, each once, in memory without a project', async () => {
    const studio = studioFor(null);
    expect(await studio.listRecent()).toEqual([]);
    await studio.openPath(png);
    await studio.openPath(jpeg);
    await studio.openPath(png);
    const recent = await studio.listRecent();
    expect(recent.map((r) => r.path)).toEqual([png, jpeg]);
    expect(recent[0]).toMatchObject({ name: 'slide', format: 'image', sources: [png] });
    expect(Number.isNaN(Date.parse(recent[0].openedAt))).toBe(false);
    // A path that fails is not recorded.
    await expect(studio.openPath(imageFolder)).rejects.toThrow(/unknown format/);
    expect((await studio.listRecent()).map((r) => r.path)).toEqual([png, jpeg]);
  });

  it('keeps them in the project database, across Studio instances on the same project', async () => {
    const project = join(scratch, 'project-recent');
    const first = studioFor(project);
    await first.openPath(png);
    await first.openPath(tiff);
    await first.openPath(demoPath());
    await first.openPath(tiff);
    first.close();

    const second = studioFor(project);
    const recent = await second.listRecent();
    expect(recent.map((r) => r.path)).toEqual([tiff, demoPath(), png]);
    expect(recent[1].format).not.toBe('image');
    expect(recent[1].sources).toHaveLength(1);
    second.close();
  });

  it('keeps the newest MAX_RECENT', () => {
    const db = ProjectDatabase.open(join(scratch, 'project-many'));
    try {
      for (let i = 0; i < MAX_RECENT + 5; i++) {
        db.addRecent({
          path: `/data/s${i}`,
          name: `s${i}`,
          format: 'image',
          sources: [],
          openedAt: '2025-01-01T00:00:00.000Z',
        });
      }
      db.addRecent({
        path: '/data/s10',
        name: 's10',
        format: 'image',
        sources: [],
        openedAt: '2025-01-01T00:00:00.000Z',
      });
      const paths = db.recent().map((r) => r.path);
      expect(paths).toHaveLength(MAX_RECENT);
      expect(paths[0]).toBe('/data/s10');
      expect(paths[1]).toBe(`/data/s${MAX_RECENT + 4}`);
      expect(paths.filter((p) => p === '/data/s10')).toHaveLength(1);
      expect(paths).not.toContain('/data/s4');
    } finally {
      db.close();
    }
  });
});

describe('closing a section', () => {
  it('closes it without losing its annotations: reopened, they are back', async () => {
    const studio = studioFor(join(scratch, 'project-close'));
    const demo = demoPath();
    const [section] = (await studio.openPath(demo)).opened;
    const [cls] = await studio.listClasses();
    await studio.labelSpots(section.id, [0, 1, 2], cls.id);
    const left = await studio.closeSection(section.id);
    expect(left.some((s) => s.id === section.id)).toBe(false);
    await expect(studio.getSpots(section.id)).rejects.toThrow(/no open section/);
    await expect(studio.closeSection(section.id)).rejects.toThrow(/no open section/);

    const [again] = (await studio.openPath(demo)).opened;
    expect(again.id).not.toBe(section.id);
    const labels = (await studio.getAnnotations(again.id)).labels;
    expect(labels.slice(0, 3)).toEqual([cls.name, cls.name, cls.name]);
    studio.close();
  });
});
