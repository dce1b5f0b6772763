// The annotation calls of the StudioApi on the bundled demo, through a Studio with a temporary project folder:
// labels by spot index, regions in slide pixels, undo/redo, GeoJSON/CSV round trips, the 'annotations' label
// column, and persistence across Studio instances on the same project folder.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATION_COLUMN, type SectionSpots } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { HER2ST_CLASSES } from '../../core/project/annotations.js';
import { demoPath } from '../../core/resources.js';

const demo = demoPath();
/** No slide is asked for here: the cache folder is never created. */
const CACHE = join(tmpdir(), 'delst-studio-test-unused');

/** In-tissue spot indices nearest a point (slide pixels), nearest first. */
function nearest(spots: SectionSpots, x: number, y: number, n: number): number[] {
  return spots.ids
    .map((_, i) => i)
    .filter((i) => spots.inTissue[i])
    .sort((a, b) => Math.hypot(spots.x[a] - x, spots.y[a] - y) - Math.hypot(spots.x[b] - x, spots.y[b] - y))
    .slice(0, n);
}

describe.skipIf(!existsSync(demo))('annotation API on the demo', () => {
  let scratch: string;
  let projectDir: string;
  let studio: Studio;
  let id: string;
  let spots: SectionSpots;
  const studios: Studio[] = [];

  function newStudio(dir = projectDir): Studio {
    const s = new Studio({ cacheDir: CACHE, projectDir: dir });
    studios.push(s);
    return s;
  }

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-annotation-api-'));
    projectDir = join(scratch, 'project');
    studio = newStudio();
    [{ id }] = (await studio.openPath(demo)).opened;
    spots = await studio.getSpots(id);
  });

  afterAll(() => {
    for (const s of studios) s.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('starts with the HER2ST classes and no labels; the annotations column is there, empty', async () => {
    const classes = await studio.listClasses();
    expect(classes.map((c) => c.name)).toEqual(HER2ST_CLASSES.map((c) => c.name));
    const annotations = await studio.getAnnotations(id);
    expect(annotations.labels).toHaveLength(spots.ids.length);
    expect(annotations.labels.every((l) => l === null)).toBe(true);
    expect(annotations.regions).toEqual([]);
    expect(annotations.canUndo).toBe(false);
    expect(spots.labels[ANNOTATION_COLUMN]).toEqual(annotations.labels);
    const [summary] = await studio.listSections();
    expect(summary.labels[ANNOTATION_COLUMN]).toEqual({});
  });

  it('labels spots by index, counts them in the summary, undoes and redoes', async () => {
    const [cancer, , immune] = await studio.listClasses();
    const picked = nearest(spots, spots.x[0], spots.y[0], 5);
    let annotations = await studio.labelSpots(id, picked.slice(0, 3), cancer.id);
    expect(picked.slice(0, 3).map((i) => annotations.labels[i])).toEqual(Array(3).fill(cancer.name));
    expect(annotations.labels.filter((l) => l !== null)).toHaveLength(3);
    expect(annotations.canUndo).toBe(true);
    annotations = await studio.labelSpots(id, picked.slice(2), immune.id);
    expect(picked.map((i) => annotations.labels[i])).toEqual([
      cancer.name,
      cancer.name,
      immune.name,
      immune.name,
      immune.name,
    ]);
    const [summary] = await studio.listSections();
    expect(summary.labels[ANNOTATION_COLUMN]).toEqual({ [immune.name]: 3, [cancer.name]: 2 });
    expect((await studio.getSpots(id)).labels[ANNOTATION_COLUMN][picked[4]]).toBe(immune.name);
    expect((await studio.getSpotDetails(id, picked[0])).labels[ANNOTATION_COLUMN]).toBe(cancer.name);

    // One stroke is one step back.
    annotations = await studio.undo(id);
    expect(picked.map((i) => annotations.labels[i])).toEqual([cancer.name, cancer.name, cancer.name, null, null]);
    expect(annotations.canRedo).toBe(true);
    annotations = await studio.redo(id);
    expect(picked.map((i) => annotations.labels[i])[4]).toBe(immune.name);
    // Erase.
    annotations = await studio.labelSpots(id, [picked[4]], null);
    expect(annotations.labels[picked[4]]).toBeNull();
    await expect(studio.labelSpots(id, [spots.ids.length], cancer.id)).rejects.toThrow(/no spot/);
    await expect(studio.labelSpots(id, [0], 9999)).rejects.toThrow(/class/);
  });

  it('keeps a polygon (slide pixels) as a region and labels the spots inside, as one step', async () => {
    const glands = (await studio.listClasses()).find((c) => c.name === 'breast glands')!;
    const inside = nearest(spots, spots.x[spots.x.length >> 1], spots.y[spots.y.length >> 1], 12);
    const xs = inside.map((i) => spots.x[i]);
    const ys = inside.map((i) => spots.y[i]);
    const pad = 0.5;
    const [x0, x1, y0, y1] = [
      Math.min(...xs) - pad,
      Math.max(...xs) + pad,
      Math.min(...ys) - pad,
      Math.max(...ys) + pad,
    ];
    const polygon: [number, number][] = [
      [x0, y0],
      [x1, y0],
      [x1, y1],
      [x0, y1],
    ];
    const expected = spots.ids
      .map((_, i) => i)
      .filter((i) => spots.x[i] > x0 && spots.x[i] < x1 && spots.y[i] > y0 && spots.y[i] < y1);
    expect(expected.length).toBeGreaterThanOrEqual(inside.length);
    const before = await studio.getAnnotations(id);
    let annotations = await studio.addRegion(id, polygon, glands.id);
    for (const i of expected) expect(annotations.labels[i]).toBe(glands.name);
    expect(annotations.regions).toHaveLength(1);
    const [region] = annotations.regions;
    expect(region.classId).toBe(glands.id);
    // Back in slide pixels, closed.
    const ring = region.polygons[0][0];
    expect(ring).toHaveLength(5);
    expect(ring[0][0]).toBeCloseTo(x0, 6);
    expect(ring[2][1]).toBeCloseTo(y1, 6);
    annotations = await studio.undo(id);
    expect(annotations.regions).toEqual([]);
    expect(annotations.labels).toEqual(before.labels);
    annotations = await studio.redo(id);
    expect(annotations.regions).toHaveLength(1);
    // A region without a class labels nothing; deleting one is a step too.
    const unclassified = await studio.addRegion(
      id,
      [
        [1, 1],
        [5, 1],
        [5, 5],
      ],
      null,
    );
    expect(unclassified.regions).toHaveLength(2);
    expect(unclassified.labels).toEqual(annotations.labels);
    const after = await studio.deleteRegion(id, unclassified.regions[1].id);
    expect(after.regions.map((r) => r.id)).toEqual([region.id]);
    await expect(studio.addRegion(id, [[1, 1]], null)).rejects.toThrow(/3 points/);
  });

  it('exports GeoJSON that imports into a fresh project with the same labels and regions', async () => {
    const labels = (await studio.getAnnotations(id)).labels;
    const file = join(scratch, 'export.geojson');
    const exported = await studio.exportAnnotations(id, 'geojson', file);
    expect(exported.path).toBe(file);
    expect(readFileSync(file, 'utf8')).toBe(exported.text);
    expect(exported.fileName).toMatch(/-annotations\.geojson$/);
    const collection = JSON.parse(exported.text) as { features: { properties: { name?: string } }[] };
    const labelled = spots.ids.filter((_, i) => labels[i] !== null);
    const names = new Set(collection.features.map((f) => f.properties.name));
    for (const spot of labelled) expect(names.has(spot)).toBe(true);

    const fresh = newStudio(join(scratch, 'fresh-geojson'));
    const [{ id: freshId }] = (await fresh.openPath(demo)).opened;
    const report = await fresh.importAnnotations(freshId, 'geojson', exported.text);
    expect(report.annotations.labels).toEqual(labels);
    expect(report.annotations.regions).toHaveLength(1);
    expect(report.spotsChanged).toBe(labelled.length);
    // Undo takes the whole import back.
    expect((await fresh.undo(freshId)).labels.every((l) => l === null)).toBe(true);
  });

  it('exports CSV that imports into a fresh project with the same labels', async () => {
    const labels = (await studio.getAnnotations(id)).labels;
    const exported = await studio.exportAnnotations(id, 'csv');
    expect(exported.path).toBeNull();
    expect(exported.text.split('\n')[0]).toBe('spot_id,label');
    const fresh = newStudio(join(scratch, 'fresh-csv'));
    const [{ id: freshId }] = (await fresh.openPath(demo)).opened;
    const report = await fresh.importAnnotations(freshId, 'csv', exported.text);
    expect(report.annotations.labels).toEqual(labels);
    await expect(fresh.importAnnotations(freshId, 'csv', 'spot_id,label\nnope,x\n')).rejects.toThrow(
      /none of its 1 spot ids/,
    );
    await expect(studio.exportAnnotations(id, 'csv', 'relative.csv')).rejects.toThrow(/absolute/);
  });

  it('edits the class palette', async () => {
    const created = await studio.createClass('necrosis', '#112233');
    expect(created).toMatchObject({ name: 'necrosis', color: '#112233' });
    await expect(studio.createClass('necrosis')).rejects.toThrow();
    let classes = await studio.renameClass(created.id, 'necrotic tissue');
    expect(classes.at(-1)?.name).toBe('necrotic tissue');
    classes = await studio.recolorClass(created.id, '#abcdef');
    expect(classes.at(-1)?.color).toBe('#abcdef');
    const order = classes.map((c) => c.id);
    classes = await studio.reorderClasses([created.id, ...order.slice(0, -1)]);
    expect(classes[0].id).toBe(created.id);
    // A deleted class takes its labels with it.
    await studio.labelSpots(id, [1], created.id);
    classes = await studio.deleteClass(created.id);
    expect(classes.map((c) => c.id)).not.toContain(created.id);
    expect((await studio.getAnnotations(id)).labels[1]).not.toBe('necrotic tissue');
  });

  it('keeps the labels for the next Studio on the same project folder', async () => {
    const labels = (await studio.getAnnotations(id)).labels;
    expect(labels.some((l) => l !== null)).toBe(true);
    const [summary] = await studio.listSections();
    studio.close();
    const next = newStudio();
    const [reopened] = (await next.openPath(demo)).opened;
    expect((await next.getAnnotations(reopened.id)).labels).toEqual(labels);
    expect(reopened.labels[ANNOTATION_COLUMN]).toEqual(summary.labels[ANNOTATION_COLUMN]);
    expect((await next.getAnnotations(reopened.id)).regions).toHaveLength(1);
    expect((await next.getAnnotations(reopened.id)).canUndo).toBe(true);
  });

  it('refuses annotation calls without a project folder, and shows no annotations column', async () => {
    const bare = new Studio({ cacheDir: CACHE });
    const [summary] = (await bare.openPath(demo)).opened;
    expect(summary.labels[ANNOTATION_COLUMN]).toBeUndefined();
    await expect(bare.listClasses()).rejects.toThrow(/project folder/);
  });
});
