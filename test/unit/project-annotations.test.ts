// Annotations over the project database: the class palette, spot labels, regions, undo/redo per section and for
// the palette, atomicity of each change, and annotations as a label column.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { AnnotationError, Annotations, HER2ST_CLASSES, type AnnotationClass } from '../../core/project/annotations.js';
import { ProjectDatabase } from '../../core/project/database.js';
import { labelCounts } from '../../core/section/section.js';

let scratch: string;
let folderCount = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'delst-annotations-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const SPOT_IDS = Array.from({ length: 40 }, (_, i) => `${Math.floor(i / 8) + 1}x${(i % 8) + 1}`);

function square(x: number, y: number, size: number): number[][][] {
  return [
    [
      [x, y],
      [x + size, y],
      [x + size, y + size],
      [x, y + size],
      [x, y],
    ],
  ];
}

describe('annotations', () => {
  let folder: string;
  let annotations: Annotations;
  let a1: number;
  let b1: number;
  let byName: (name: string) => AnnotationClass;

  beforeEach(() => {
    folder = join(scratch, `project-${++folderCount}`);
    annotations = Annotations.openProject(folder);
    a1 = annotations.db.registerSection({ name: 'A1', source: '/d/A1', format: 'legacy-st', fingerprint: 'a' }).id;
    b1 = annotations.db.registerSection({ name: 'B1', source: '/d/B1', format: 'legacy-st', fingerprint: 'b' }).id;
    byName = (name) => annotations.classByName(name)!;
  });

  afterEach(() => {
    if (annotations.db.isOpen) annotations.close();
  });

  function reopen(): void {
    annotations.close();
    annotations = Annotations.openProject(folder);
  }

  describe('class palette', () => {
    it('starts a new project with the HER2ST pathologist classes, in order, with distinct colours', () => {
      const classes = annotations.classes();
      expect(classes.map((c) => c.name)).toEqual(HER2ST_CLASSES.map((c) => c.name));
      expect(classes.map((c) => c.name)).toEqual([
        'invasive cancer',
        'cancer in situ',
        'immune infiltrate',
        'breast glands',
        'connective tissue',
        'adipose tissue',
        'undetermined',
      ]);
      expect(new Set(classes.map((c) => c.color)).size).toBe(classes.length);
      for (const c of classes) expect(c.color).toMatch(/^#[0-9a-f]{6}$/);
      // Reopening does not add them again; a palette emptied on purpose stays empty.
      reopen();
      expect(annotations.classes()).toHaveLength(HER2ST_CLASSES.length);
      for (const c of annotations.classes()) annotations.deleteClass(c.id);
      reopen();
      expect(annotations.classes()).toEqual([]);
    });

    it('creates, renames, recolours and reorders classes, each persisted at once', () => {
      const stroma = annotations.createClass('  stroma ', '#ABC');
      expect(stroma).toMatchObject({ name: 'stroma', color: '#aabbcc', position: HER2ST_CLASSES.length });
      const auto = annotations.createClass('necrosis');
      expect(annotations.classes().filter((c) => c.color === auto.color)).toHaveLength(1);

      annotations.renameClass(stroma.id, 'tumour stroma');
      annotations.recolorClass(stroma.id, [10, 20, 30]);
      const order = annotations.classes().map((c) => c.id);
      const reordered = [auto.id, stroma.id, ...order.filter((id) => id !== auto.id && id !== stroma.id)];
      annotations.reorderClasses(reordered);

      reopen();
      expect(annotations.classes().map((c) => c.id)).toEqual(reordered);
      expect(annotations.class(stroma.id)).toMatchObject({ name: 'tumour stroma', color: '#0a141e' });
    });

    it('refuses duplicate names, bad colours, partial orders and unknown classes', () => {
      expect(() => annotations.createClass('invasive cancer')).toThrow(AnnotationError);
      expect(() => annotations.createClass('   ')).toThrow('a class needs a name');
      expect(() => annotations.createClass('x', 'red')).toThrow(AnnotationError);
      expect(() => annotations.renameClass(byName('undetermined').id, 'invasive cancer')).toThrow(/exists already/);
      expect(() => annotations.recolorClass(byName('undetermined').id, '#12345')).toThrow(/not a colour/);
      expect(() => annotations.reorderClasses([byName('undetermined').id])).toThrow(/every class/);
      expect(() => annotations.labelSpots(a1, ['1x1'], 9999)).toThrow(/no class 9999/);
      expect(() => annotations.labelSpots(9999, ['1x1'], null)).toThrow(/no section 9999/);
      // Nothing of the above reached the history.
      expect(annotations.history('palette').map((h) => h.kind)).toEqual(['class-create']);
    });

    it('deletes a class with its labels; undo brings back the class, its labels and its regions', () => {
      const cancer = byName('invasive cancer');
      annotations.labelSpots(a1, ['1x1', '1x2'], cancer.id);
      annotations.labelSpots(b1, ['2x1'], cancer.id);
      annotations.labelSpots(a1, ['1x3'], byName('breast glands').id);
      const region = annotations.addRegion(a1, {
        geometry: { type: 'Polygon', coordinates: square(0, 0, 10) },
        classId: cancer.id,
      });

      annotations.deleteClass(cancer.id);
      expect(annotations.classByName('invasive cancer')).toBeUndefined();
      expect([...annotations.spotLabelNames(a1)]).toEqual([['1x3', 'breast glands']]);
      expect(annotations.spotLabels(b1).size).toBe(0);
      expect(annotations.region(region.id)!.classId).toBeNull();

      reopen();
      annotations.undo('palette');
      expect(annotations.class(cancer.id)).toMatchObject({ name: 'invasive cancer', color: cancer.color });
      expect(annotations.classes()[0].id).toBe(cancer.id);
      expect(annotations.labelColumn(a1, ['1x1', '1x2', '1x3'])).toEqual([
        'invasive cancer',
        'invasive cancer',
        'breast glands',
      ]);
      expect(annotations.labelColumn(b1, ['2x1'])).toEqual(['invasive cancer']);
      expect(annotations.region(region.id)!.classId).toBe(cancer.id);

      annotations.redo('palette');
      expect(annotations.class(cancer.id)).toBeUndefined();
      expect(annotations.labelColumn(a1, ['1x1'])).toEqual([null]);
    });

    it('undoes and redoes palette edits in one linear stack', () => {
      const glands = byName('breast glands');
      annotations.renameClass(glands.id, 'glands');
      annotations.recolorClass(glands.id, '#000000');
      annotations.undo('palette');
      expect(annotations.class(glands.id)).toMatchObject({ name: 'glands', color: glands.color });
      annotations.undo('palette');
      expect(annotations.class(glands.id)!.name).toBe('breast glands');
      annotations.redo('palette');
      expect(annotations.class(glands.id)!.name).toBe('glands');

      annotations.deleteClass(glands.id); // drops the recolour from the redo stack
      const again = annotations.createClass('glands');
      annotations.undo('palette'); // the creation
      annotations.undo('palette'); // the deletion
      expect(annotations.class(glands.id)).toMatchObject({ name: 'glands', color: glands.color });
      expect(annotations.class(again.id)).toBeUndefined();
      annotations.redo('palette');
      annotations.redo('palette');
      expect(annotations.class(glands.id)).toBeUndefined();
      expect(annotations.class(again.id)).toMatchObject({ name: 'glands' });
      expect(annotations.redo('palette')).toBeNull();
      expect(annotations.history('palette').map((h) => [h.kind, h.state])).toEqual([
        ['class-create', 'done'],
        ['class-delete', 'done'],
        ['class-recolor', 'dropped'],
        ['class-rename', 'done'],
        ['class-create', 'done'],
      ]);
    });
  });

  describe('spot labels', () => {
    it('labels spots as one change, skips spots already so, and erases with null', () => {
      const cancer = byName('invasive cancer').id;
      const entry = annotations.labelSpots(a1, ['1x1', '1x2', '1x2', '1x3'], cancer);
      expect(entry).toMatchObject({ scope: a1, kind: 'label', state: 'done' });
      expect(annotations.labelSpots(a1, ['1x1', '1x2'], cancer)).toBeNull();
      expect(annotations.labelSpots(a1, ['1x9'], null)).toBeNull();
      annotations.labelSpots(a1, ['1x2'], null);
      expect(annotations.labelColumn(a1, ['1x1', '1x2', '1x3', '1x4'])).toEqual([
        'invasive cancer',
        null,
        'invasive cancer',
        null,
      ]);
      expect(annotations.history(a1)).toHaveLength(2);
    });

    it('is a label column like any other', () => {
      annotations.labelSpots(a1, SPOT_IDS.slice(0, 10), byName('invasive cancer').id);
      annotations.labelSpots(a1, SPOT_IDS.slice(10, 14), byName('adipose tissue').id);
      const column = annotations.labelColumn(a1, SPOT_IDS);
      expect(column).toHaveLength(SPOT_IDS.length);
      expect(column.filter((v) => v === null)).toHaveLength(SPOT_IDS.length - 14);
      expect(labelCounts(column)).toEqual({ 'invasive cancer': 10, 'adipose tissue': 4 });
      // Labels of one section do not leak into another.
      expect(annotations.labelColumn(b1, SPOT_IDS).every((v) => v === null)).toBe(true);
    });

    it('undoes and redoes per section, across sessions; a new change drops the redo stack', () => {
      const cancer = byName('invasive cancer').id;
      const glands = byName('breast glands').id;
      annotations.labelSpots(a1, ['1x1', '1x2'], cancer);
      annotations.labelSpots(b1, ['1x1'], glands);
      annotations.labelSpots(a1, ['1x2', '1x3'], glands);
      const read = (section: number) => annotations.labelColumn(section, ['1x1', '1x2', '1x3']);

      expect(annotations.undo(a1)).toMatchObject({ kind: 'label', state: 'undone' });
      expect(read(a1)).toEqual(['invasive cancer', 'invasive cancer', null]);
      expect(read(b1)).toEqual(['breast glands', null, null]);
      reopen();
      expect(annotations.canRedo(a1)).toBe(true);
      annotations.redo(a1);
      expect(read(a1)).toEqual(['invasive cancer', 'breast glands', 'breast glands']);
      annotations.undo(a1);
      annotations.undo(a1);
      expect(read(a1)).toEqual([null, null, null]);
      expect(annotations.undo(a1)).toBeNull();
      expect(annotations.canUndo(a1)).toBe(false);
      expect(read(b1)).toEqual(['breast glands', null, null]);

      annotations.redo(a1);
      expect(read(a1)).toEqual(['invasive cancer', 'invasive cancer', null]);
      annotations.labelSpots(a1, ['1x3'], cancer); // drops the other undone change
      expect(annotations.canRedo(a1)).toBe(false);
      expect(annotations.redo(a1)).toBeNull();
      expect(read(a1)).toEqual(['invasive cancer', 'invasive cancer', 'invasive cancer']);
      expect(annotations.history(a1).map((h) => h.state)).toEqual(['done', 'dropped', 'done']);
      annotations.undo(b1);
      expect(read(b1)).toEqual([null, null, null]);
    });

    it('an old undo step naming a deleted class leaves the spots unlabelled', () => {
      const cancer = byName('invasive cancer').id;
      const glands = byName('breast glands').id;
      annotations.labelSpots(a1, ['1x1'], cancer);
      annotations.labelSpots(a1, ['1x1'], glands);
      annotations.deleteClass(cancer);
      annotations.undo(a1); // back to "invasive cancer", which is gone
      expect(annotations.labelColumn(a1, ['1x1'])).toEqual([null]);
      annotations.undo('palette'); // restoring the class restores the labels it had when deleted (none)
      expect(annotations.labelColumn(a1, ['1x1'])).toEqual([null]);
      annotations.redo(a1);
      expect(annotations.labelColumn(a1, ['1x1'])).toEqual(['breast glands']);
    });

    it('commits each change whole or not at all', () => {
      const cancer = byName('invasive cancer').id;
      annotations.labelSpots(a1, ['1x1'], cancer);
      // Make the history insert fail after the labels were written: the labels must roll back with it.
      const db = annotations.db;
      const run = db.run.bind(db);
      db.run = (sql, params) => {
        if (sql.startsWith('INSERT INTO history')) throw new Error('disk full (simulated)');
        return run(sql, params);
      };
      try {
        expect(() => annotations.labelSpots(a1, ['1x1', '1x2'], byName('breast glands').id)).toThrow(/simulated/);
        expect(() => annotations.createClass('x')).toThrow(/simulated/);
      } finally {
        db.run = run;
      }
      expect(annotations.labelColumn(a1, ['1x1', '1x2'])).toEqual(['invasive cancer', null]);
      expect(annotations.classByName('x')).toBeUndefined();
      expect(annotations.history(a1)).toHaveLength(1);
      expect(db.inTransaction).toBe(false);
    });

    it('keeps the history append-only', () => {
      annotations.labelSpots(a1, ['1x1'], byName('invasive cancer').id);
      expect(() => annotations.db.run("UPDATE history SET change = '{}'")).toThrow(/append-only/);
    });

    it('labels 50,000 spots in one stroke, one transaction', () => {
      const spots = Array.from({ length: 50_000 }, (_, i) => `spot-${i}`);
      const started = performance.now();
      annotations.labelSpots(a1, spots, byName('invasive cancer').id);
      const column = annotations.labelColumn(a1, spots);
      annotations.undo(a1);
      expect(performance.now() - started).toBeLessThan(3000);
      expect(column.every((v) => v === 'invasive cancer')).toBe(true);
      expect(annotations.spotLabels(a1).size).toBe(0);
    });
  });

  describe('regions', () => {
    const withHole = {
      type: 'Polygon',
      coordinates: [
        [
          [0, 0],
          [100, 0],
          [100, 100],
          [0, 100],
        ], // left open on purpose: closed on the way in
        [
          [40, 40],
          [60, 40],
          [60, 60],
          [40, 60],
          [40, 40],
        ],
      ],
    };

    it('adds, updates and deletes polygons and multipolygons, with undo and redo', () => {
      const region = annotations.addRegion(a1, {
        geometry: withHole,
        classId: byName('invasive cancer').id,
        name: 'Tumour 1',
      });
      expect(region.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(region.geometry.coordinates[0]).toHaveLength(5); // closed
      const multi = annotations.addRegion(a1, {
        geometry: { type: 'MultiPolygon', coordinates: [square(200, 200, 10), square(300, 300, 10)] },
      });
      expect(multi.classId).toBeNull();

      const moved = annotations.updateRegion(region.id, {
        geometry: { type: 'Polygon', coordinates: square(5, 5, 50) },
        name: 'T1',
      });
      expect(moved).toMatchObject({ name: 'T1', classId: region.classId, createdAt: region.createdAt });
      expect(annotations.updateRegion(region.id, { name: 'T1' })).toEqual(moved); // no change, no history
      annotations.deleteRegion(multi.id);
      expect(annotations.regions(a1).map((r) => r.id)).toEqual([region.id]);
      expect(annotations.regions(b1)).toEqual([]);

      reopen();
      annotations.undo(a1); // the deletion
      expect(annotations.region(multi.id)).toMatchObject({ geometry: multi.geometry });
      annotations.undo(a1); // the update
      expect(annotations.region(region.id)).toMatchObject({ name: 'Tumour 1', geometry: region.geometry });
      annotations.undo(a1);
      annotations.undo(a1);
      expect(annotations.regions(a1)).toEqual([]);
      annotations.redo(a1);
      expect(annotations.region(region.id)).toMatchObject({ name: 'Tumour 1', geometry: region.geometry });
      expect(annotations.history(a1).map((h) => h.kind)).toEqual([
        'region-delete',
        'region-update',
        'region-add',
        'region-add',
      ]);
    });

    it('refuses broken geometry with a message saying what is wrong', () => {
      const broken: [unknown, RegExp][] = [
        [
          {
            type: 'LineString',
            coordinates: [
              [0, 0],
              [1, 1],
            ],
          },
          /not a Polygon or MultiPolygon/,
        ],
        [
          {
            type: 'Polygon',
            coordinates: [
              [
                [0, 0],
                [1, 1],
                [0, 0],
              ],
            ],
          },
          /fewer than 3 distinct corners/,
        ],
        [
          {
            type: 'Polygon',
            coordinates: [
              [
                [0, 0],
                [1, 'a'],
                [2, 2],
                [0, 0],
              ],
            ],
          },
          /position 1 is not an \[x, y\] pair/,
        ],
      ];
      for (const [geometry, message] of broken) expect(() => annotations.addRegion(a1, { geometry })).toThrow(message);
      expect(() => annotations.addRegion(a1, { geometry: withHole, id: 'not-a-uuid' })).toThrow(/not a UUID/);
      expect(annotations.regions(a1)).toEqual([]);
    });
  });

  it('reads a database another ProjectDatabase wrote (one writer at a time)', () => {
    annotations.labelSpots(a1, ['1x1'], byName('undetermined').id);
    const reader = new Annotations(ProjectDatabase.open(folder, { create: false }));
    try {
      expect(reader.labelColumn(a1, ['1x1'])).toEqual(['undetermined']);
    } finally {
      reader.close();
    }
  });
});
