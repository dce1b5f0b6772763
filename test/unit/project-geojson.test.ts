// Import and export of annotations: QuPath-compatible GeoJSON and `spot_id,label` CSV. Export then import gives
// back the same annotations; a file shaped like a QuPath 0.5 export imports; bad files fail with a DataError that
// names the file and the place.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Annotations } from '../../core/project/annotations.js';
import { exportCsv, importCsv, importCsvText, labelsToCsv } from '../../core/project/csv.js';
import {
  annotationsToGeoJson,
  exportGeoJson,
  importGeoJson,
  importGeoJsonText,
  type GeoJsonFeature,
} from '../../core/project/geojson.js';
import type { SpotPositions } from '../../core/project/geometry.js';
import { DataError } from '../../core/readers/errors.js';
import { dataError } from './support/data-error.js';

// A 10 x 8 grid of spots 100 px apart, ids `<col>x<row>`, centres at (100 + 100 col, 100 + 100 row).
const COLS = 10;
const ROWS = 8;
const SPOTS: SpotPositions = (() => {
  const ids: string[] = [];
  const x: number[] = [];
  const y: number[] = [];
  for (let r = 0; r < ROWS; r++) {
    for (let c = 0; c < COLS; c++) {
      ids.push(`${c}x${r}`);
      x.push(100 + 100 * c);
      y.push(100 + 100 * r);
    }
  }
  return { ids, x: Float64Array.from(x), y: Float64Array.from(y) };
})();
const DIAMETER = 50;
const SECTION = { name: 'A1', source: '/data/her2st/A1', format: 'legacy-st', fingerprint: 'c0ffee' };

function rect(x0: number, y0: number, x1: number, y1: number): number[][] {
  return [
    [x0, y0],
    [x1, y0],
    [x1, y1],
    [x0, y1],
    [x0, y0],
  ];
}

let scratch: string;
let count = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'delst-geojson-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function newProject(): { annotations: Annotations; sectionId: number; folder: string } {
  const folder = join(scratch, `project-${++count}`);
  const annotations = Annotations.openProject(folder);
  return { annotations, sectionId: annotations.db.registerSection(SECTION).id, folder };
}

/** Everything a section's annotations consist of, by class name, for comparisons across projects. */
function snapshot(annotations: Annotations, sectionId: number) {
  const classes = new Map(annotations.classes().map((c) => [c.id, c]));
  return {
    labels: annotations.labelColumn(sectionId, SPOTS.ids),
    regions: annotations
      .regions(sectionId)
      .map((r) => ({
        id: r.id,
        name: r.name,
        className: r.classId === null ? null : classes.get(r.classId)!.name,
        geometry: r.geometry,
      }))
      .sort((a, b) => a.id.localeCompare(b.id)),
    colors: Object.fromEntries(annotations.classes().map((c) => [c.name, c.color])),
  };
}

describe('GeoJSON and CSV', () => {
  let project: ReturnType<typeof newProject>;
  let annotations: Annotations;
  let sectionId: number;

  /** Labels of several classes, unlabelled spots inside a classified region, a region with a hole, a multipolygon. */
  function annotate(): void {
    const cls = (name: string) => annotations.classByName(name)!.id;
    const stroma = annotations.createClass('stroma, "loose"', '#123456').id;
    annotations.labelSpots(sectionId, ['0x0', '1x0', '2x0', '0x1'], cls('invasive cancer'));
    annotations.labelSpots(sectionId, ['5x5', '6x5'], cls('breast glands'));
    annotations.labelSpots(sectionId, ['9x7'], stroma);
    annotations.addRegion(sectionId, {
      name: 'Tumour 1',
      classId: cls('invasive cancer'),
      geometry: { type: 'Polygon', coordinates: [rect(50, 50, 450, 450), rect(180, 180, 320, 320)] },
    });
    annotations.addRegion(sectionId, {
      classId: stroma,
      geometry: { type: 'MultiPolygon', coordinates: [[rect(550.25, 550.5, 650, 650)], [rect(850, 50, 950.125, 150)]] },
    });
    annotations.addRegion(sectionId, {
      name: 'tissue edge',
      geometry: { type: 'Polygon', coordinates: [rect(0, 0, 1200, 900)] },
    });
  }

  beforeEach(() => {
    project = newProject();
    annotations = project.annotations;
    sectionId = project.sectionId;
  });

  afterEach(() => {
    annotations.close();
  });

  describe('GeoJSON export', () => {
    it('writes spots as classified 32-gon detections of the true diameter and regions as annotations', () => {
      annotate();
      const collection = annotationsToGeoJson(annotations, sectionId, { spots: SPOTS, spotDiameter: DIAMETER });
      expect(collection.type).toBe('FeatureCollection');
      const detections = collection.features.filter((f) => f.properties.objectType === 'detection');
      const regions = collection.features.filter((f) => f.properties.objectType === 'annotation');
      expect(detections).toHaveLength(SPOTS.ids.length);
      expect(regions).toHaveLength(3);
      for (const f of collection.features)
        expect(f.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(new Set(collection.features.map((f) => f.id)).size).toBe(collection.features.length);

      const spot = detections.find((f) => f.properties.name === '0x0')!;
      expect(spot.properties.classification).toEqual({ name: 'invasive cancer', color: [214, 39, 40] });
      expect(spot.geometry.type).toBe('Polygon');
      const ring = (spot.geometry as Extract<GeoJsonFeature['geometry'], { type: 'Polygon' }>).coordinates[0];
      expect(ring).toHaveLength(33);
      expect(ring[0]).toEqual(ring[32]);
      for (const [x, y] of ring) expect(Math.hypot(x - 100, y - 100)).toBeCloseTo(DIAMETER / 2, 2);
      expect(detections.find((f) => f.properties.name === '3x3')!.properties.classification).toBeUndefined();

      const tumour = regions.find((f) => f.properties.name === 'Tumour 1')!;
      expect(tumour.geometry).toEqual({
        type: 'Polygon',
        coordinates: [rect(50, 50, 450, 450), rect(180, 180, 320, 320)],
      });
      expect(regions.find((f) => f.geometry.type === 'MultiPolygon')!.properties.classification).toEqual({
        name: 'stroma, "loose"',
        color: [0x12, 0x34, 0x56],
      });
      // The same section exports the same ids every time.
      expect(annotationsToGeoJson(annotations, sectionId, { spots: SPOTS, spotDiameter: DIAMETER })).toEqual(
        collection,
      );
    });

    it('writes points without a diameter, labelled spots only when asked, and scales coordinates', () => {
      annotate();
      const collection = annotationsToGeoJson(annotations, sectionId, {
        spots: SPOTS,
        include: 'labelled',
        scale: 0.5,
      });
      const detections = collection.features.filter((f) => f.properties.objectType === 'detection');
      expect(detections).toHaveLength(7);
      expect(detections.find((f) => f.properties.name === '9x7')!.geometry).toEqual({
        type: 'Point',
        coordinates: [500, 400],
      });
      const tumour = collection.features.find((f) => f.properties.name === 'Tumour 1')!;
      expect((tumour.geometry.coordinates as number[][][])[0][2]).toEqual([225, 225]);
    });
  });

  describe('GeoJSON round trip', () => {
    it('export then import into a new project gives back the same annotations, and exports the same file', async () => {
      annotate();
      const file = join(scratch, `roundtrip-${count}.geojson`);
      await exportGeoJson(annotations, sectionId, file, { spots: SPOTS, spotDiameter: DIAMETER });
      const before = snapshot(annotations, sectionId);

      const other = newProject();
      try {
        const report = await importGeoJson(other.annotations, other.sectionId, file, {
          spots: SPOTS,
          spotDiameter: DIAMETER,
        });
        expect(report.warnings).toEqual([]);
        expect(report.detectionsMatched).toBe(SPOTS.ids.length);
        expect(report.classesCreated).toEqual(['stroma, "loose"']);
        const after = snapshot(other.annotations, other.sectionId);
        expect(after).toEqual(before);
        // Unlabelled spots inside the classified tumour region stayed unlabelled.
        expect(after.labels[SPOTS.ids.indexOf('3x3')]).toBeNull();

        const again = join(scratch, `roundtrip-${count}-again.geojson`);
        await exportGeoJson(other.annotations, other.sectionId, again, { spots: SPOTS, spotDiameter: DIAMETER });
        expect(await readFile(again, 'utf8')).toBe(await readFile(file, 'utf8'));
      } finally {
        other.annotations.close();
      }
    });

    it('round-trips through points and a scaled image too', () => {
      annotate();
      const before = snapshot(annotations, sectionId);
      const text = JSON.stringify(annotationsToGeoJson(annotations, sectionId, { spots: SPOTS, scale: 0.25 }));
      const other = newProject();
      try {
        importGeoJsonText(other.annotations, other.sectionId, text, 'scaled.geojson', { spots: SPOTS, scale: 0.25 });
        expect(snapshot(other.annotations, other.sectionId)).toEqual(before);
      } finally {
        other.annotations.close();
      }
    });

    it('imports over existing work as one change that undo takes back; replace makes the section match the file', () => {
      annotate();
      const text = JSON.stringify(annotationsToGeoJson(annotations, sectionId, { spots: SPOTS }));
      const exported = snapshot(annotations, sectionId);
      // Work after the export: a new label and a new region.
      annotations.labelSpots(sectionId, ['7x7'], annotations.classByName('undetermined')!.id);
      annotations.addRegion(sectionId, { geometry: { type: 'Polygon', coordinates: [rect(0, 0, 10, 10)] } });
      const current = snapshot(annotations, sectionId);
      expect(current.regions).toHaveLength(4);

      // Merge (default): the file names every spot, so the labels become the file's; the new region stays.
      const merged = importGeoJsonText(annotations, sectionId, text, 'merge.geojson', { spots: SPOTS });
      expect(merged).toMatchObject({ spotsChanged: 1, regionsAdded: 0, regionsUpdated: 0, regionsDeleted: 0 });
      expect(snapshot(annotations, sectionId)).toEqual({ ...current, labels: exported.labels });

      // Replace: the region the file does not have goes too.
      const replaced = importGeoJsonText(annotations, sectionId, text, 'replace.geojson', {
        spots: SPOTS,
        replace: true,
      });
      expect(replaced).toMatchObject({ spotsChanged: 0, regionsDeleted: 1, regionsAdded: 0 });
      expect(snapshot(annotations, sectionId)).toEqual(exported);
      annotations.undo(sectionId);
      annotations.undo(sectionId);
      expect(snapshot(annotations, sectionId)).toEqual(current);
    });

    it('labels the unlabelled spots inside a classified region when the file lists labelled spots only', () => {
      annotate();
      const text = JSON.stringify(annotationsToGeoJson(annotations, sectionId, { spots: SPOTS, include: 'labelled' }));
      const other = newProject();
      try {
        importGeoJsonText(other.annotations, other.sectionId, text, 'labelled.geojson', { spots: SPOTS });
        const labels = other.annotations.labelColumn(other.sectionId, SPOTS.ids);
        const at = (id: string) => labels[SPOTS.ids.indexOf(id)];
        expect(at('3x3')).toBe('invasive cancer'); // in the tumour region
        expect(at('1x1')).toBeNull(); // in its hole
        expect(at('5x5')).toBe('breast glands'); // a detection wins over the stroma region around it
        expect(at('8x0')).toBe('stroma, "loose"'); // in the multipolygon's second part
      } finally {
        other.annotations.close();
      }
    });
  });

  describe('QuPath GeoJSON import', () => {
    const TUMOUR_ID = '4f6b3c1e-8f0a-4f59-9a43-2a1c5c7f8e21';

    /** Shaped like a QuPath 0.5 "Export objects as GeoJSON" (with hierarchy) of annotations drawn over the spots. */
    function quPathExport() {
      return {
        type: 'FeatureCollection',
        features: [
          {
            type: 'Feature',
            id: TUMOUR_ID,
            geometry: {
              type: 'Polygon',
              coordinates: [rect(50, 50, 450, 450), rect(180, 180, 320, 320)],
              plane: { c: -1, z: 0, t: 0 },
            },
            properties: {
              objectType: 'annotation',
              name: 'Tumour region',
              classification: { name: 'Tumor', color: [200, 0, 0] },
              isLocked: true,
              measurements: { 'Area µm^2': 112345.6, 'Perimeter µm': 1600.2 },
              metadata: { Annotator: 'JF' },
            },
          },
          {
            type: 'Feature',
            id: '0b9cf6a2-51b6-4d0e-8d7b-7b7f5b5e2c10',
            geometry: { type: 'Polygon', coordinates: [rect(550, 50, 750, 250)] },
            properties: {
              objectType: 'annotation',
              classification: { names: ['Tumor', 'Positive'], color: [255, 100, 100] },
            },
          },
          {
            type: 'Feature',
            id: 'a1d3c0de-0000-4000-8000-000000000001',
            geometry: { type: 'Polygon', coordinates: [rect(0, 0, 1200, 900)] },
            properties: {
              objectType: 'annotation',
              name: 'Tissue',
              childObjects: [
                {
                  type: 'Feature',
                  id: 'a1d3c0de-0000-4000-8000-000000000002',
                  geometry: { type: 'Point', coordinates: [800, 800] },
                  properties: {
                    objectType: 'detection',
                    name: '7x7',
                    classification: { name: 'Stroma', color: [150, 200, 150] },
                  },
                },
              ],
            },
          },
          {
            type: 'Feature',
            id: 'a1d3c0de-0000-4000-8000-000000000003',
            geometry: {
              type: 'MultiPoint',
              coordinates: [
                [1003, 698],
                [990, 805],
                [5000, 5000],
              ],
            },
            properties: {
              objectType: 'annotation',
              name: 'Points 1',
              classification: { name: 'Immune', color: [0, 0, 255] },
            },
          },
          {
            type: 'Feature',
            geometry: { type: 'Polygon', coordinates: [rect(950, 50, 1050, 150)] },
            properties: { type: 'annotation', classification: 'Immune' },
          },
          {
            type: 'Feature',
            geometry: { type: 'Polygon', coordinates: [rect(560, 560, 640, 640)] },
            properties: { classification: { name: 'Stroma' } },
          },
          {
            type: 'Feature',
            id: 'a1d3c0de-0000-4000-8000-000000000004',
            geometry: { type: 'Polygon', coordinates: [rect(0, 0, 1, 1).map(([x, y]) => [x + 100, y + 100])] },
            properties: {
              objectType: 'detection',
              name: '0x0',
              classification: { name: 'Stroma', color: [150, 200, 150] },
            },
          },
          {
            type: 'Feature',
            geometry: { type: 'Point', coordinates: [400, 400] },
            properties: { objectType: 'detection', name: '3x3', measurements: { 'ERBB2 counts': 12 } },
          },
          {
            type: 'Feature',
            geometry: { type: 'Point', coordinates: [900, 100] },
            properties: {
              object_type: 'detection',
              name: '8x0',
              classification: { name: 'Necrosis', colorRGB: -16744448 },
            },
          },
          {
            type: 'Feature',
            geometry: {
              type: 'LineString',
              coordinates: [
                [0, 0],
                [100, 100],
              ],
            },
            properties: { objectType: 'annotation', name: 'Ruler' },
          },
          {
            type: 'Feature',
            geometry: { type: 'Point', coordinates: [9000, 9000] },
            properties: { objectType: 'cell', name: 'nope' },
          },
        ],
      };
    }

    const EXPECTED: Record<string, string> = {
      '0x0': 'Stroma',
      '1x0': 'Tumor',
      '2x0': 'Tumor',
      '3x0': 'Tumor',
      '0x1': 'Tumor',
      '3x1': 'Tumor',
      '0x2': 'Tumor',
      '3x2': 'Tumor',
      '0x3': 'Tumor',
      '1x3': 'Tumor',
      '2x3': 'Tumor',
      '5x0': 'Tumor: Positive',
      '6x0': 'Tumor: Positive',
      '5x1': 'Tumor: Positive',
      '6x1': 'Tumor: Positive',
      '9x6': 'Immune',
      '9x7': 'Immune',
      '9x0': 'Immune',
      '8x0': 'Necrosis',
      '5x5': 'Stroma',
      '7x7': 'Stroma',
    };

    function check(report: ReturnType<typeof importGeoJsonText>): void {
      const labels = annotations.labelColumn(sectionId, SPOTS.ids);
      const got = Object.fromEntries(SPOTS.ids.flatMap((id, i) => (labels[i] === null ? [] : [[id, labels[i]]])));
      expect(got).toEqual(EXPECTED);
      expect(report.classesCreated).toEqual(['Tumor', 'Tumor: Positive', 'Stroma', 'Immune', 'Necrosis']);
      expect(annotations.classByName('Tumor')!.color).toBe('#c80000');
      expect(annotations.classByName('Stroma')!.color).toBe('#96c896');
      expect(annotations.classByName('Necrosis')!.color).toBe('#008000');
      expect(report.detectionsMatched).toBe(4);
      expect(report.warnings).toEqual([
        '1 of 5 detections are not named after a spot of this section and were skipped (first: "nope")',
        '1 feature skipped: a LineString encloses no area',
      ]);
      const regions = annotations.regions(sectionId);
      expect(regions).toHaveLength(5);
      const tumour = annotations.region(TUMOUR_ID)!;
      expect(tumour).toMatchObject({ name: 'Tumour region', classId: annotations.classByName('Tumor')!.id });
      expect(tumour.geometry.coordinates).toHaveLength(2);
      expect(regions.find((r) => r.name === 'Tissue')!.classId).toBeNull();
    }

    it('reads a QuPath 0.5 export: classes, derived classes, points, holes, aliases, nested children', () => {
      const report = importGeoJsonText(
        annotations,
        sectionId,
        JSON.stringify(quPathExport(), null, 2),
        'qupath.geojson',
        {
          spots: SPOTS,
          spotDiameter: DIAMETER,
        },
      );
      check(report);
      // The whole import is one change.
      expect(annotations.history(sectionId).map((h) => h.kind)).toEqual(['import']);
      annotations.undo(sectionId);
      expect(annotations.spotLabels(sectionId).size).toBe(0);
      expect(annotations.regions(sectionId)).toEqual([]);
    });

    it('reads a bare array of features the same way', () => {
      check(
        importGeoJsonText(annotations, sectionId, JSON.stringify(quPathExport().features), 'bare.json', {
          spots: SPOTS,
          spotDiameter: DIAMETER,
        }),
      );
    });

    it('skips point annotations it cannot place without a spot diameter, and says so', () => {
      const report = importGeoJsonText(annotations, sectionId, JSON.stringify(quPathExport()), 'q.geojson', {
        spots: SPOTS,
      });
      expect(report.warnings).toContain('1 point annotations skipped: no spot diameter to match them to spots');
      expect(annotations.labelColumn(sectionId, ['9x6', '9x0'])).toEqual([null, 'Immune']);
    });
  });

  describe('bad GeoJSON files', () => {
    const bad = (text: string) =>
      dataError(() => importGeoJsonText(annotations, sectionId, text, '/in/bad.geojson', { spots: SPOTS }));

    it('names the file and the line and column of a JSON syntax error', () => {
      const error = bad('{\n  "type": "FeatureCollection",\n  "features": [\n    {"type": "Feature",}\n  ]\n}\n');
      expect(error.file).toBe('/in/bad.geojson');
      expect(error.problem).toMatch(/^is not valid JSON: line 4, column 24 /);
      expect(bad('{"type": "FeatureCollection", "features": [').problem).toMatch(
        /^is not valid JSON: unexpected end of file/,
      );
      expect(bad('  \n').problem).toBe('is empty');
    });

    it('names the feature with the problem', () => {
      const feature = (geometry: unknown, properties: unknown = {}) =>
        JSON.stringify({
          type: 'FeatureCollection',
          features: [
            { type: 'Feature', geometry: null, properties: {} },
            { type: 'Feature', geometry, properties },
          ],
        });
      expect(
        bad(
          feature({
            type: 'Polygon',
            coordinates: [
              [
                [0, 0],
                [1, 0],
                [1, 'x'],
                [0, 0],
              ],
            ],
          }),
        ).problem,
      ).toBe('feature 1: geometry: polygon outer ring, position 2 is not an [x, y] pair of finite numbers');
      expect(bad(feature({ type: 'Circle', coordinates: [0, 0] })).problem).toBe(
        'feature 1: geometry type "Circle" is not a GeoJSON geometry',
      );
      expect(bad(feature({ type: 'Point', coordinates: [0] })).problem).toBe(
        'feature 1: Point coordinates is not an [x, y] pair of numbers',
      );
      expect(bad(feature({ type: 'Point', coordinates: [0, 0] }, { classification: 42 })).problem).toBe(
        'feature 1: classification is neither an object nor a string',
      );
      expect(
        bad(feature({ type: 'Point', coordinates: [0, 0] }, { classification: { color: [1, 2, 3] } })).problem,
      ).toBe('feature 1: classification has no name');
      expect(bad(JSON.stringify([{ type: 'Feature', geometry: null }, 7])).problem).toBe(
        'feature 1: is not a GeoJSON feature object',
      );
      expect(
        bad(JSON.stringify({ type: 'FeatureCollection', features: [{ geometry: null, properties: [] }] })).problem,
      ).toBe('feature 0: properties is not an object');
    });

    it('refuses JSON that is not annotations, and detections for another section', () => {
      expect(bad('{"hello": "world"}').problem).toMatch(/^is not GeoJSON annotations/);
      const otherSection = annotationsToGeoJson(annotations, sectionId, {
        spots: { ids: ['AAAC-1', 'AAAG-1'], x: [1, 2], y: [1, 2] },
      });
      expect(bad(JSON.stringify(otherSection)).problem).toMatch(
        /^none of its 2 detections is named after a spot of this section \(first: "AAAC-1"\)/,
      );
      expect(annotations.history(sectionId)).toEqual([]);
    });

    it('reports a missing file as a DataError', async () => {
      await expect(
        importGeoJson(annotations, sectionId, join(scratch, 'missing.geojson'), { spots: SPOTS }),
      ).rejects.toThrow(DataError);
    });
  });

  describe('CSV', () => {
    it('export then import gives back the same labels, odd class names included', async () => {
      annotate();
      const file = join(scratch, `labels-${count}.csv`);
      expect(await exportCsv(annotations, sectionId, file, SPOTS.ids)).toEqual({ rows: SPOTS.ids.length });
      const text = await readFile(file, 'utf8');
      expect(text.split('\n').slice(0, 3)).toEqual(['spot_id,label', '0x0,invasive cancer', '1x0,invasive cancer']);
      expect(text).toContain('9x7,"stroma, ""loose"""\n');
      expect(text).toContain('\n3x3,\n');

      const other = newProject();
      try {
        other.annotations.labelSpots(other.sectionId, ['3x3'], other.annotations.classByName('undetermined')!.id);
        const report = await importCsv(other.annotations, other.sectionId, file, { spotIds: SPOTS.ids });
        expect(report).toMatchObject({ rows: SPOTS.ids.length, classesCreated: ['stroma, "loose"'], warnings: [] });
        expect(other.annotations.labelColumn(other.sectionId, SPOTS.ids)).toEqual(
          annotations.labelColumn(sectionId, SPOTS.ids),
        );
      } finally {
        other.annotations.close();
      }
      // Without spot ids: the labelled spots only, sorted.
      expect(labelsToCsv(annotations, sectionId).split('\n')).toHaveLength(1 + 7 + 1);
    });

    it('reads what spreadsheets and pandas write', () => {
      const text =
        '\uFEFFbarcode\tpathologist\tcluster\r\n0x0\tinvasive cancer\tc1\r\n1x0\tNA\tc2\r\n2x0\t  immune infiltrate \tc3\r\n\r\n';
      const report = importCsvText(annotations, sectionId, text, 'labels.tsv', { spotIds: SPOTS.ids });
      expect(report.rows).toBe(3);
      expect(annotations.labelColumn(sectionId, ['0x0', '1x0', '2x0'])).toEqual([
        'invasive cancer',
        null,
        'immune infiltrate',
      ]);
      importCsvText(annotations, sectionId, ',label\n"3x0","multi\nline"\n9x9,x\n', 'pandas.csv', {
        spotIds: SPOTS.ids,
      });
      expect(annotations.labelColumn(sectionId, ['3x0'])).toEqual(['multi\nline']);
    });

    it('replaces the labels when asked, leaving regions alone, as one change', () => {
      annotate();
      importCsvText(annotations, sectionId, 'spot_id,label\n4x4,necrosis\n', 'one.csv', {
        spotIds: SPOTS.ids,
        replace: true,
      });
      expect([...annotations.spotLabelNames(sectionId)]).toEqual([['4x4', 'necrosis']]);
      expect(annotations.regions(sectionId)).toHaveLength(3);
      annotations.undo(sectionId);
      expect(annotations.spotLabelNames(sectionId).size).toBe(7);
    });

    it('names the file and line of what is wrong', () => {
      const bad = (text: string) =>
        dataError(() => importCsvText(annotations, sectionId, text, '/in/labels.csv', { spotIds: SPOTS.ids })).message;
      expect(bad('')).toBe('/in/labels.csv: is empty');
      expect(bad('spot_id,label\n0x0,"tumour\n1x0,x\n')).toBe('/in/labels.csv: line 2: a quoted field is never closed');
      expect(bad('a,b,c\n0x0,1,2\n')).toMatch(
        /^\/in\/labels.csv: line 1: no label column \(expected a header "spot_id,label"/,
      );
      expect(bad('spot_id,label\n0x0,a\n1x0\n')).toBe('/in/labels.csv: line 3: expected 2 fields, found 1');
      expect(bad('spot_id,label\n0x0,a\n1x0,b\n0x0,c\n')).toBe(
        '/in/labels.csv: line 4: spot "0x0" appears again with another label (first on line 2)',
      );
      expect(bad('spot_id,label\nAAAC-1,a\nAAAG-1,b\n')).toBe(
        '/in/labels.csv: none of its 2 spot ids is a spot of this section (first: "AAAC-1"); is it for another section?',
      );
      expect(annotations.history(sectionId)).toEqual([]);
    });
  });

  describe('atomic export files', () => {
    it('replaces an existing file whole and leaves no temporary file behind', async () => {
      annotate();
      const dir = join(scratch, `exports-${count}`);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir);
      const file = join(dir, 'A1.geojson');
      await writeFile(file, 'old contents');
      await exportGeoJson(annotations, sectionId, file, { spots: SPOTS, spotDiameter: DIAMETER });
      await exportCsv(annotations, sectionId, join(dir, 'A1.csv'), SPOTS.ids);
      expect((await readdir(dir)).sort()).toEqual(['A1.csv', 'A1.geojson']);
      expect(JSON.parse(await readFile(file, 'utf8')).features).toHaveLength(SPOTS.ids.length + 3);
    });

    it('leaves nothing when the write fails', async () => {
      const file = join(scratch, 'no-such-folder', 'A1.geojson');
      await expect(exportGeoJson(annotations, sectionId, file, {})).rejects.toThrow(/ENOENT/);
      expect(existsSync(join(scratch, 'no-such-folder'))).toBe(false);
    });
  });
});
