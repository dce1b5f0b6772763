// Annotations over the project database: the class palette, spot labels, free regions, and undo/redo.
//
// Every call that changes something is ONE transaction, committed before it returns: the change itself and its
// history record (the change and its inverse, as JSON) go in together, so after a crash the database holds either
// both or neither. Undo applies a change's inverse; redo applies the change again. There is one undo stack per
// section (labels, regions, imports) and one for the project's class palette ('palette'); a new change in a scope
// drops that scope's redo stack. The stacks live in the database, so undo works across sessions.
//
// Classes are referred to by id (ids are never reused). A change that names a class deleted since (an old undo
// step, say) treats it as "unlabelled": deleting a class deletes its labels, and undoing that deletion brings both
// back.

import { randomUUID } from 'node:crypto';
import type { LabelColumn, Section } from '../section/section.js';
import { ProjectDatabase, now, sectionInfo, type OpenOptions } from './database.js';
import { GeometryError, regionGeometry, type RegionGeometry } from './geometry.js';

/** A mistake in a request (unknown class, duplicate name, bad geometry): the message can be shown as is. */
export class AnnotationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnnotationError';
  }
}

export interface AnnotationClass {
  readonly id: number;
  readonly name: string;
  /** `#rrggbb`. */
  readonly color: string;
  /** Order in the palette (ascending). */
  readonly position: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface Region {
  /** A UUID (QuPath's object id when imported from QuPath). */
  readonly id: string;
  readonly sectionId: number;
  readonly classId: number | null;
  /** Full-resolution image pixels. */
  readonly geometry: RegionGeometry;
  readonly name: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface NewRegion {
  readonly geometry: unknown;
  readonly classId?: number | null;
  readonly name?: string | null;
  /** Keep a given UUID (imports); a new one otherwise. */
  readonly id?: string;
}

export interface RegionPatch {
  readonly geometry?: unknown;
  readonly classId?: number | null;
  readonly name?: string | null;
}

/** A section id, or 'palette' for the project's class palette. */
export type HistoryScope = number | 'palette';

export type HistoryState = 'done' | 'undone' | 'dropped';

export interface HistoryEntry {
  readonly id: number;
  readonly scope: HistoryScope;
  /** label, region-add, region-update, region-delete, import, class-create, class-rename, ... */
  readonly kind: string;
  readonly state: HistoryState;
  readonly createdAt: string;
}

/** The tissue classes the HER2ST pathologists used, with distinct colours. */
export const HER2ST_CLASSES: readonly { readonly name: string; readonly color: string }[] = [
  { name: 'invasive cancer', color: '#d62728' },
  { name: 'cancer in situ', color: '#ff7f0e' },
  { name: 'immune infiltrate', color: '#1f77b4' },
  { name: 'breast glands', color: '#2ca02c' },
  { name: 'connective tissue', color: '#e377c2' },
  { name: 'adipose tissue', color: '#f2d21b' },
  { name: 'undetermined', color: '#7f7f7f' },
];

/** Colours for new classes, taken in order, skipping those in use. */
const NEW_CLASS_COLORS = [
  '#9467bd',
  '#17becf',
  '#8c564b',
  '#bcbd22',
  '#393b79',
  '#e7969c',
  '#637939',
  '#7b4173',
  '#aec7e8',
  '#ff9896',
  '#98df8a',
  '#c5b0d5',
  '#c49c94',
  '#dbdb8d',
  '#9edae5',
  '#ad494a',
];

// --- Colours ---

/** `#rrggbb` from `#rgb`, `#rrggbb` (any case) or [r, g, b(, a)]; null when not a colour. */
export function normalizeColor(value: unknown): string | null {
  if (Array.isArray(value) && value.length >= 3) {
    const rgb = value.slice(0, 3);
    if (!rgb.every((v) => typeof v === 'number' && Number.isFinite(v))) return null;
    return (
      '#' +
      rgb
        .map((v) =>
          Math.max(0, Math.min(255, Math.round(v)))
            .toString(16)
            .padStart(2, '0'),
        )
        .join('')
    );
  }
  if (typeof value !== 'string') return null;
  const hex = value.trim().toLowerCase();
  if (/^#[0-9a-f]{6}$/.test(hex)) return hex;
  if (/^#[0-9a-f]{3}$/.test(hex)) return '#' + [...hex.slice(1)].map((c) => c + c).join('');
  return null;
}

export function colorToRgb(color: string): [number, number, number] {
  const hex = normalizeColor(color) ?? '#000000';
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
}

// --- Stored changes ---

interface ClassRow {
  id: number;
  name: string;
  color: string;
  position: number;
  created_at: string;
  updated_at: string;
}

interface RegionRow {
  id: string;
  section_id: number;
  class_id: number | null;
  geometry: string;
  name: string | null;
  created_at: string;
  updated_at: string;
}

interface LabelGroup {
  /** null: unlabelled. */
  readonly class: number | null;
  readonly spots: readonly string[];
}

type Change =
  | { readonly op: 'labels'; readonly section: number; readonly groups: readonly LabelGroup[] }
  | { readonly op: 'region-put'; readonly region: Region }
  | { readonly op: 'region-delete'; readonly id: string }
  | { readonly op: 'region-class'; readonly ids: readonly string[]; readonly class: number | null }
  | { readonly op: 'class-put'; readonly class: AnnotationClass }
  | { readonly op: 'class-update'; readonly id: number; readonly name: string; readonly color: string }
  | { readonly op: 'class-delete'; readonly id: number }
  | { readonly op: 'class-order'; readonly ids: readonly number[] }
  | { readonly op: 'batch'; readonly changes: readonly Change[] };

interface HistoryRow {
  id: number;
  section_id: number | null;
  kind: string;
  change: string;
  inverse: string;
  state: HistoryState;
  created_at: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function classOf(row: ClassRow): AnnotationClass {
  return {
    id: row.id,
    name: row.name,
    color: row.color,
    position: row.position,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function regionOf(row: RegionRow): Region {
  return {
    id: row.id,
    sectionId: row.section_id,
    classId: row.class_id,
    geometry: JSON.parse(row.geometry) as RegionGeometry,
    name: row.name,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function entryOf(row: HistoryRow): HistoryEntry {
  return {
    id: row.id,
    scope: row.section_id ?? 'palette',
    kind: row.kind,
    state: row.state,
    createdAt: row.created_at,
  };
}

function scopeKey(scope: HistoryScope): number | null {
  return scope === 'palette' ? null : scope;
}

function className(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '') throw new AnnotationError('a class needs a name');
  return name.trim();
}

function geometryOf(value: unknown): RegionGeometry {
  try {
    return regionGeometry(value);
  } catch (error) {
    if (error instanceof GeometryError) throw new AnnotationError(`region: ${error.message}`);
    throw error;
  }
}

/** Groups spots by the class they get. */
function groupsOf(assignments: Iterable<[string, number | null]>): LabelGroup[] {
  const byClass = new Map<number | null, string[]>();
  for (const [spot, cls] of assignments) {
    const spots = byClass.get(cls);
    if (spots) spots.push(spot);
    else byClass.set(cls, [spot]);
  }
  return [...byClass].map(([cls, spots]) => ({ class: cls, spots }));
}

/** What an import brings, by class name (see geojson.ts and csv.ts). */
export interface AnnotationImport {
  /** Spot id -> class name, or null to leave the spot unlabelled. */
  readonly labels: ReadonlyMap<string, string | null>;
  readonly regions: readonly {
    readonly id?: string | null;
    readonly geometry: RegionGeometry;
    readonly className: string | null;
    readonly name: string | null;
  }[];
  /**
   * The classes the file names, in the order it names them, with the colour it gives them (or null): classes new
   * to the project are created in that order, with that colour.
   */
  readonly classes?: ReadonlyMap<string, string | null>;
  /** Clear the section's labels first, so they end up exactly as the file says. */
  readonly replaceLabels?: boolean;
  /** Delete the section's regions the import does not bring. */
  readonly replaceRegions?: boolean;
}

export interface ImportResult {
  /** The section's history entry (undo removes the import), or null when nothing changed. */
  readonly change: HistoryEntry | null;
  readonly classesCreated: readonly string[];
  /** Spots whose label changed. */
  readonly spotsChanged: number;
  readonly regionsAdded: number;
  readonly regionsUpdated: number;
  readonly regionsDeleted: number;
}

export class Annotations {
  readonly db: ProjectDatabase;

  constructor(db: ProjectDatabase) {
    this.db = db;
  }

  /**
   * Opens the project in `folder` (creating it when new). A new project gets the HER2ST classes as its palette;
   * one whose palette was edited keeps it, even empty.
   */
  static openProject(folder: string, options?: OpenOptions): Annotations {
    const annotations = new Annotations(ProjectDatabase.open(folder, options));
    const untouched =
      annotations.classes().length === 0 &&
      !annotations.db.get('SELECT 1 AS x FROM history WHERE section_id IS NULL LIMIT 1');
    if (untouched) annotations.addDefaultClasses();
    return annotations;
  }

  close(): void {
    this.db.close();
  }

  // --- Reading ---

  classes(): AnnotationClass[] {
    return this.db.all<ClassRow>('SELECT * FROM classes ORDER BY position, id').map(classOf);
  }

  class(id: number): AnnotationClass | undefined {
    const row = this.db.get<ClassRow>('SELECT * FROM classes WHERE id = ?', [id]);
    return row && classOf(row);
  }

  classByName(name: string): AnnotationClass | undefined {
    const row = this.db.get<ClassRow>('SELECT * FROM classes WHERE name = ?', [name.trim()]);
    return row && classOf(row);
  }

  /** Spot id -> class id, for the labelled spots of a section. */
  spotLabels(sectionId: number): Map<string, number> {
    const rows = this.db.all<{ spot_id: string; class_id: number }>(
      'SELECT spot_id, class_id FROM spot_labels WHERE section_id = ?',
      [sectionId],
    );
    return new Map(rows.map((r) => [r.spot_id, r.class_id]));
  }

  /** Spot id -> class name, for the labelled spots of a section. */
  spotLabelNames(sectionId: number): Map<string, string> {
    const rows = this.db.all<{ spot_id: string; name: string }>(
      'SELECT l.spot_id, c.name FROM spot_labels l JOIN classes c ON c.id = l.class_id WHERE l.section_id = ?',
      [sectionId],
    );
    return new Map(rows.map((r) => [r.spot_id, r.name]));
  }

  /**
   * The annotations of a section as a label column like any other: class names aligned with `spotIds` (a
   * section's `spots.ids`), null where a spot is unlabelled.
   */
  labelColumn(sectionId: number, spotIds: readonly string[]): LabelColumn {
    const names = this.spotLabelNames(sectionId);
    return spotIds.map((id) => names.get(id) ?? null);
  }

  regions(sectionId: number): Region[] {
    return this.db
      .all<RegionRow>('SELECT * FROM regions WHERE section_id = ? ORDER BY created_at, rowid', [sectionId])
      .map(regionOf);
  }

  region(id: string): Region | undefined {
    const row = this.db.get<RegionRow>('SELECT * FROM regions WHERE id = ?', [id]);
    return row && regionOf(row);
  }

  /** The history of a scope, newest first. */
  history(scope: HistoryScope, limit = 100): HistoryEntry[] {
    return this.db
      .all<HistoryRow>('SELECT * FROM history WHERE section_id IS ? ORDER BY id DESC LIMIT ?', [scopeKey(scope), limit])
      .map(entryOf);
  }

  canUndo(scope: HistoryScope): boolean {
    return !!this.db.get("SELECT 1 AS x FROM history WHERE section_id IS ? AND state = 'done' LIMIT 1", [
      scopeKey(scope),
    ]);
  }

  canRedo(scope: HistoryScope): boolean {
    return !!this.db.get("SELECT 1 AS x FROM history WHERE section_id IS ? AND state = 'undone' LIMIT 1", [
      scopeKey(scope),
    ]);
  }

  // --- Class palette ---

  /** Adds the HER2ST classes the palette lacks, as one change; returns those added. */
  addDefaultClasses(): AnnotationClass[] {
    return this.db.transaction(() => {
      const missing = HER2ST_CLASSES.filter((c) => !this.classByName(c.name));
      if (missing.length === 0) return [];
      const created = missing.map((c) => this.newClass(c.name, c.color));
      this.record('palette', 'class-create', this.classCreation(created));
      return created;
    });
  }

  createClass(name: string, color?: string | readonly number[] | null): AnnotationClass {
    return this.db.transaction(() => {
      const created = this.newClass(className(name), color ?? null);
      this.record('palette', 'class-create', this.classCreation([created]));
      return created;
    });
  }

  renameClass(id: number, name: string): AnnotationClass {
    return this.updateClass(id, { name: className(name) }, 'class-rename');
  }

  recolorClass(id: number, color: string | readonly number[]): AnnotationClass {
    const normalized = normalizeColor(color);
    if (!normalized) throw new AnnotationError(`${JSON.stringify(color)} is not a colour (#rrggbb or [r, g, b])`);
    return this.updateClass(id, { color: normalized }, 'class-recolor');
  }

  /** Puts the palette in the order of `ids` (every class, once). */
  reorderClasses(ids: readonly number[]): AnnotationClass[] {
    return this.db.transaction(() => {
      const before = this.classes().map((c) => c.id);
      const given = new Set(ids);
      if (given.size !== ids.length || ids.length !== before.length || before.some((id) => !given.has(id))) {
        throw new AnnotationError('a new class order must list every class of the palette once');
      }
      if (before.every((id, i) => id === ids[i])) return this.classes();
      this.record('palette', 'class-reorder', {
        change: { op: 'class-order', ids: [...ids] },
        inverse: { op: 'class-order', ids: before },
      });
      return this.classes();
    });
  }

  /** Deletes a class with its spot labels (regions of that class become unclassified). Undo brings all back. */
  deleteClass(id: number): HistoryEntry {
    return this.db.transaction(() => {
      const cls = this.requireClass(id);
      const labels = this.db.all<{ section_id: number; spot_id: string }>(
        'SELECT section_id, spot_id FROM spot_labels WHERE class_id = ? ORDER BY section_id',
        [id],
      );
      const bySection = new Map<number, string[]>();
      for (const { section_id, spot_id } of labels) {
        const spots = bySection.get(section_id);
        if (spots) spots.push(spot_id);
        else bySection.set(section_id, [spot_id]);
      }
      const regionIds = this.db.all<{ id: string }>('SELECT id FROM regions WHERE class_id = ?', [id]).map((r) => r.id);
      const inverse: Change[] = [{ op: 'class-put', class: cls }];
      for (const [section, spots] of bySection) inverse.push({ op: 'labels', section, groups: [{ class: id, spots }] });
      if (regionIds.length > 0) inverse.push({ op: 'region-class', ids: regionIds, class: id });
      return this.record('palette', 'class-delete', {
        change: { op: 'class-delete', id },
        inverse: { op: 'batch', changes: inverse },
      });
    });
  }

  // --- Spot labels ---

  /**
   * Labels spots with a class (null: removes their labels). One call is one change (a click, a lasso, a brush
   * stroke). Returns its history entry, or null when no spot changed.
   */
  labelSpots(sectionId: number, spotIds: readonly string[], classId: number | null): HistoryEntry | null {
    return this.db.transaction(() => {
      this.requireSection(sectionId);
      if (classId !== null) this.requireClass(classId);
      const spots = [...new Set(spotIds)];
      const before = this.currentLabels(sectionId, spots);
      const changed = spots.filter((spot) => (before.get(spot) ?? null) !== classId);
      if (changed.length === 0) return null;
      return this.record(sectionId, 'label', {
        change: { op: 'labels', section: sectionId, groups: [{ class: classId, spots: changed }] },
        inverse: {
          op: 'labels',
          section: sectionId,
          groups: groupsOf(changed.map((spot) => [spot, before.get(spot) ?? null])),
        },
      });
    });
  }

  // --- Regions ---

  addRegion(sectionId: number, region: NewRegion): Region {
    return this.db.transaction(() => {
      this.requireSection(sectionId);
      const classId = region.classId ?? null;
      if (classId !== null) this.requireClass(classId);
      let id = region.id ?? randomUUID();
      if (!UUID.test(id)) throw new AnnotationError(`region id ${JSON.stringify(id)} is not a UUID`);
      id = id.toLowerCase();
      if (this.region(id)) throw new AnnotationError(`a region with id ${id} exists already`);
      const time = now();
      const created: Region = {
        id,
        sectionId,
        classId,
        geometry: geometryOf(region.geometry),
        name: region.name ?? null,
        createdAt: time,
        updatedAt: time,
      };
      this.record(sectionId, 'region-add', {
        change: { op: 'region-put', region: created },
        inverse: { op: 'region-delete', id },
      });
      return this.region(id)!;
    });
  }

  /** Changes a region's geometry, class or name; returns the region (unchanged when the patch changes nothing). */
  updateRegion(id: string, patch: RegionPatch): Region {
    return this.db.transaction(() => {
      const old = this.requireRegion(id);
      const classId = patch.classId === undefined ? old.classId : patch.classId;
      if (classId !== null) this.requireClass(classId);
      const updated: Region = {
        ...old,
        classId,
        geometry: patch.geometry === undefined ? old.geometry : geometryOf(patch.geometry),
        name: patch.name === undefined ? old.name : patch.name,
        updatedAt: now(),
      };
      const same =
        updated.classId === old.classId &&
        updated.name === old.name &&
        JSON.stringify(updated.geometry) === JSON.stringify(old.geometry);
      if (same) return old;
      this.record(old.sectionId, 'region-update', {
        change: { op: 'region-put', region: updated },
        inverse: { op: 'region-put', region: old },
      });
      return this.region(id)!;
    });
  }

  deleteRegion(id: string): HistoryEntry {
    return this.db.transaction(() => {
      const old = this.requireRegion(id);
      return this.record(old.sectionId, 'region-delete', {
        change: { op: 'region-delete', id },
        inverse: { op: 'region-put', region: old },
      });
    });
  }

  // --- Undo / redo ---

  /** Undoes the latest change of a scope; returns it, or null when there is nothing to undo. */
  undo(scope: HistoryScope): HistoryEntry | null {
    return this.db.transaction(() => {
      const row = this.db.get<HistoryRow>(
        "SELECT * FROM history WHERE section_id IS ? AND state = 'done' ORDER BY id DESC LIMIT 1",
        [scopeKey(scope)],
      );
      if (!row) return null;
      this.apply(JSON.parse(row.inverse) as Change, now());
      this.db.run("UPDATE history SET state = 'undone' WHERE id = ?", [row.id]);
      return entryOf({ ...row, state: 'undone' });
    });
  }

  /** Redoes the change undone last in a scope (until a new change drops the redo stack). */
  redo(scope: HistoryScope): HistoryEntry | null {
    return this.db.transaction(() => {
      const row = this.db.get<HistoryRow>(
        "SELECT * FROM history WHERE section_id IS ? AND state = 'undone' ORDER BY id LIMIT 1",
        [scopeKey(scope)],
      );
      if (!row) return null;
      this.apply(JSON.parse(row.change) as Change, now());
      this.db.run("UPDATE history SET state = 'done' WHERE id = ?", [row.id]);
      return entryOf({ ...row, state: 'done' });
    });
  }

  // --- Imports ---

  /**
   * Applies an import as one change of the section (classes it names that the palette lacks are created first, as
   * one palette change). Undo on the section takes the import back.
   */
  importAnnotations(sectionId: number, data: AnnotationImport): ImportResult {
    return this.db.transaction(() => {
      this.requireSection(sectionId);
      // Classes first.
      const used = new Set<string>();
      for (const name of data.labels.values()) if (name !== null) used.add(className(name));
      for (const r of data.regions) if (r.className !== null) used.add(className(r.className));
      const named = [...(data.classes?.keys() ?? [])].map(className);
      const created: AnnotationClass[] = [];
      for (const name of new Set([...named.filter((n) => used.has(n)), ...used])) {
        if (!this.classByName(name)) created.push(this.newClass(name, data.classes?.get(name) ?? null));
      }
      if (created.length > 0) this.record('palette', 'class-create', this.classCreation(created));
      const idOf = (name: string | null) => (name === null ? null : this.classByName(name)!.id);

      // Labels: the file's, over the current ones (or over none with `replaceLabels`).
      const current = this.currentSectionLabels(sectionId);
      const target = new Map<string, number | null>(
        data.replaceLabels ? [...current.keys()].map((s) => [s, null]) : [],
      );
      for (const [spot, name] of data.labels) target.set(spot, idOf(name));
      const changed = [...target].filter(([spot, cls]) => (current.get(spot) ?? null) !== cls);
      const changes: Change[] = [];
      const inverses: Change[] = [];
      if (changed.length > 0) {
        changes.push({ op: 'labels', section: sectionId, groups: groupsOf(changed) });
        inverses.push({
          op: 'labels',
          section: sectionId,
          groups: groupsOf(changed.map(([spot]) => [spot, current.get(spot) ?? null])),
        });
      }

      // Regions: same id in this section = the same region, updated; anything else is new.
      const time = now();
      const kept = new Set<string>();
      let added = 0;
      let updated = 0;
      let deleted = 0;
      for (const r of data.regions) {
        const given = r.id && UUID.test(r.id) ? r.id.toLowerCase() : null;
        const existing = given ? this.region(given) : undefined;
        const id = given && !kept.has(given) && (!existing || existing.sectionId === sectionId) ? given : randomUUID();
        kept.add(id);
        const old = existing && existing.id === id ? existing : undefined;
        const region: Region = {
          id,
          sectionId,
          classId: idOf(r.className),
          geometry: r.geometry,
          name: r.name,
          createdAt: old?.createdAt ?? time,
          updatedAt: time,
        };
        if (
          old &&
          old.classId === region.classId &&
          old.name === region.name &&
          JSON.stringify(old.geometry) === JSON.stringify(region.geometry)
        ) {
          continue;
        }
        changes.push({ op: 'region-put', region });
        inverses.push(old ? { op: 'region-put', region: old } : { op: 'region-delete', id });
        if (old) updated++;
        else added++;
      }
      if (data.replaceRegions) {
        for (const old of this.regions(sectionId)) {
          if (kept.has(old.id)) continue;
          changes.push({ op: 'region-delete', id: old.id });
          inverses.push({ op: 'region-put', region: old });
          deleted++;
        }
      }
      const change =
        changes.length === 0
          ? null
          : this.record(sectionId, 'import', {
              change: { op: 'batch', changes },
              inverse: { op: 'batch', changes: inverses.reverse() },
            });
      return {
        change,
        classesCreated: created.map((c) => c.name),
        spotsChanged: changed.length,
        regionsAdded: added,
        regionsUpdated: updated,
        regionsDeleted: deleted,
      };
    });
  }

  // --- Internals ---

  private requireSection(id: number): void {
    if (!this.db.section(id)) throw new AnnotationError(`no section ${id} in this project`);
  }

  private requireClass(id: number): AnnotationClass {
    const cls = this.class(id);
    if (!cls) throw new AnnotationError(`no class ${id} in this project's palette`);
    return cls;
  }

  private requireRegion(id: string): Region {
    const region = this.region(id);
    if (!region) throw new AnnotationError(`no region ${id} in this project`);
    return region;
  }

  private currentLabels(sectionId: number, spots: readonly string[]): Map<string, number> {
    const rows = this.db.all<{ spot_id: string; class_id: number }>(
      'SELECT spot_id, class_id FROM spot_labels WHERE section_id = ? AND spot_id IN (SELECT value FROM json_each(?))',
      [sectionId, JSON.stringify(spots)],
    );
    return new Map(rows.map((r) => [r.spot_id, r.class_id]));
  }

  private currentSectionLabels(sectionId: number): Map<string, number> {
    return this.spotLabels(sectionId);
  }

  /** A class as it would be created (not yet stored: `record` applies it). */
  private newClass(name: string, color: string | readonly number[] | null): AnnotationClass {
    if (this.classByName(name)) throw new AnnotationError(`a class named "${name}" exists already`);
    const given = color === null ? null : normalizeColor(color);
    if (color !== null && !given) throw new AnnotationError(`${JSON.stringify(color)} is not a colour`);
    const time = now();
    const created: AnnotationClass = {
      id: this.nextClassId(),
      name,
      color: given ?? this.freeColor(),
      position: this.nextPosition(),
      createdAt: time,
      updatedAt: time,
    };
    // Stored at once so that several new classes in one change get distinct ids, positions and colours.
    this.putClass(created);
    return created;
  }

  private classCreation(created: readonly AnnotationClass[]): { change: Change; inverse: Change } {
    return {
      change: { op: 'batch', changes: created.map((c) => ({ op: 'class-put', class: c })) },
      inverse: { op: 'batch', changes: created.map((c) => ({ op: 'class-delete', id: c.id })) },
    };
  }

  private nextClassId(): number {
    const seq = this.db.get<{ seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'classes'")?.seq ?? 0;
    const max = this.db.get<{ m: number | null }>('SELECT max(id) AS m FROM classes')?.m ?? 0;
    return Math.max(seq, max) + 1;
  }

  private nextPosition(): number {
    return (this.db.get<{ p: number | null }>('SELECT max(position) AS p FROM classes')?.p ?? -1) + 1;
  }

  private freeColor(): string {
    const used = new Set(this.classes().map((c) => c.color));
    const free = NEW_CLASS_COLORS.find((c) => !used.has(c));
    if (free) return free;
    // Past the list: spread hues by the golden angle.
    const hue = (used.size * 137.508) % 360;
    const c = 0.55;
    const x = c * (1 - Math.abs(((hue / 60) % 2) - 1));
    const [r, g, b] =
      hue < 60
        ? [c, x, 0]
        : hue < 120
          ? [x, c, 0]
          : hue < 180
            ? [0, c, x]
            : hue < 240
              ? [0, x, c]
              : hue < 300
                ? [x, 0, c]
                : [c, 0, x];
    return normalizeColor([(r + 0.25) * 255, (g + 0.25) * 255, (b + 0.25) * 255])!;
  }

  private updateClass(id: number, patch: { name?: string; color?: string }, kind: string): AnnotationClass {
    return this.db.transaction(() => {
      const old = this.requireClass(id);
      const name = patch.name ?? old.name;
      const color = patch.color ?? old.color;
      if (name === old.name && color === old.color) return old;
      if (name !== old.name && this.classByName(name)) {
        throw new AnnotationError(`a class named "${name}" exists already`);
      }
      this.record('palette', kind, {
        change: { op: 'class-update', id, name, color },
        inverse: { op: 'class-update', id, name: old.name, color: old.color },
      });
      return this.class(id)!;
    });
  }

  /** Applies a change and logs it (dropping the scope's redo stack), in the caller's transaction. */
  private record(scope: HistoryScope, kind: string, entry: { change: Change; inverse: Change }): HistoryEntry {
    const time = now();
    this.apply(entry.change, time);
    const key = scopeKey(scope);
    this.db.run("UPDATE history SET state = 'dropped' WHERE section_id IS ? AND state = 'undone'", [key]);
    const id = Number(
      this.db.run('INSERT INTO history (section_id, kind, change, inverse, created_at) VALUES (?, ?, ?, ?, ?)', [
        key,
        kind,
        JSON.stringify(entry.change),
        JSON.stringify(entry.inverse),
        time,
      ]).lastInsertRowid,
    );
    return { id, scope, kind, state: 'done', createdAt: time };
  }

  private classExists(id: number): boolean {
    return !!this.db.get('SELECT 1 AS x FROM classes WHERE id = ?', [id]);
  }

  /** A name free in the palette (a restored class whose name was taken since gets a suffix). */
  private freeName(name: string, id: number): string {
    let candidate = name;
    for (let n = 2; ; n++) {
      const holder = this.db.get<{ id: number }>('SELECT id FROM classes WHERE name = ?', [candidate]);
      if (!holder || holder.id === id) return candidate;
      candidate = `${name} (${n})`;
    }
  }

  private putClass(cls: AnnotationClass): void {
    this.db.run(
      `INSERT INTO classes (id, name, color, position, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, color = excluded.color, position = excluded.position,
         updated_at = excluded.updated_at`,
      [cls.id, this.freeName(cls.name, cls.id), cls.color, cls.position, cls.createdAt, cls.updatedAt],
    );
  }

  private apply(change: Change, time: string): void {
    switch (change.op) {
      case 'batch':
        for (const c of change.changes) this.apply(c, time);
        return;
      case 'labels':
        for (const group of change.groups) {
          const spots = JSON.stringify(group.spots);
          if (group.class === null || !this.classExists(group.class)) {
            this.db.run(
              'DELETE FROM spot_labels WHERE section_id = ? AND spot_id IN (SELECT value FROM json_each(?))',
              [change.section, spots],
            );
          } else {
            this.db.run(
              `INSERT INTO spot_labels (section_id, spot_id, class_id, updated_at)
               SELECT ?, value, ?, ? FROM json_each(?) WHERE true
               ON CONFLICT (section_id, spot_id) DO UPDATE SET class_id = excluded.class_id, updated_at = excluded.updated_at`,
              [change.section, group.class, time, spots],
            );
          }
        }
        return;
      case 'region-put': {
        const r = change.region;
        const classId = r.classId !== null && this.classExists(r.classId) ? r.classId : null;
        this.db.run(
          `INSERT INTO regions (id, section_id, class_id, geometry, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET section_id = excluded.section_id, class_id = excluded.class_id,
             geometry = excluded.geometry, name = excluded.name, updated_at = excluded.updated_at`,
          [r.id, r.sectionId, classId, JSON.stringify(r.geometry), r.name, r.createdAt, time],
        );
        return;
      }
      case 'region-delete':
        this.db.run('DELETE FROM regions WHERE id = ?', [change.id]);
        return;
      case 'region-class': {
        const classId = change.class !== null && this.classExists(change.class) ? change.class : null;
        this.db.run('UPDATE regions SET class_id = ?, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))', [
          classId,
          time,
          JSON.stringify(change.ids),
        ]);
        return;
      }
      case 'class-put':
        this.putClass({ ...change.class, updatedAt: time });
        return;
      case 'class-update':
        if (!this.classExists(change.id)) return;
        this.db.run('UPDATE classes SET name = ?, color = ?, updated_at = ? WHERE id = ?', [
          this.freeName(change.name, change.id),
          change.color,
          time,
          change.id,
        ]);
        return;
      case 'class-delete':
        // Labels go with it (ON DELETE CASCADE); regions become unclassified (ON DELETE SET NULL).
        this.db.run('DELETE FROM classes WHERE id = ?', [change.id]);
        return;
      case 'class-order': {
        const present = this.classes().map((c) => c.id);
        const listed = change.ids.filter((id) => present.includes(id));
        const order = [...listed, ...present.filter((id) => !listed.includes(id))];
        order.forEach((id, position) => {
          this.db.run('UPDATE classes SET position = ?, updated_at = ? WHERE id = ? AND position != ?', [
            position,
            time,
            id,
            position,
          ]);
        });
        return;
      }
    }
  }
}

/**
 * Label columns with a section's annotations added as the column `name`, so training, evaluation and the viewer
 * treat them like any other label column. A column of the file with the same name is kept as `name (file)`.
 */
export function withAnnotationColumn(
  labels: ReadonlyMap<string, LabelColumn>,
  annotations: LabelColumn,
  name: string,
): Map<string, LabelColumn> {
  const merged = new Map<string, LabelColumn>();
  for (const [column, values] of labels) merged.set(column === name ? `${column} (file)` : column, values);
  merged.set(name, annotations);
  return merged;
}

/** The section with its annotations in the project as the label column `name` (registering it there when new). */
export function annotatedSection(section: Section, project: Annotations, name: string): Section {
  const { id } = project.db.registerSection(sectionInfo(section));
  return { ...section, labels: withAnnotationColumn(section.labels, project.labelColumn(id, section.spots.ids), name) };
}
