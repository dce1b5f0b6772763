// The project database: one SQLite file per project folder (`<folder>/delst-project.sqlite`) holding the sections a
// project has seen, the class palette, spot labels, free regions and the undo history.
//
// Durability: WAL journal with synchronous=FULL, so a transaction is on disk (WAL fsynced) before COMMIT returns.
// Every change the app makes is one transaction, so a kill -9 or a power cut loses at most the change in progress,
// and SQLite's recovery on the next open rolls a half-written transaction back (see test/unit/project-database).
//
// Single writer: a project is meant to be open in one process at a time (the Electron main process or the browser
// mode server), through one ProjectDatabase. SQLite's own locks keep a second process from corrupting anything
// (its writes wait up to `busy_timeout`, then fail with SQLITE_BUSY), but the undo stacks assume one user, so the
// shells should not open the same project twice.

import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'libsql';
import { DataError } from '../readers/errors.js';
import type { Section } from '../section/section.js';

export const PROJECT_DB_NAME = 'delst-project.sqlite';

/** `PRAGMA application_id` of a DELST project database: 'DLST'. */
export const APPLICATION_ID = 0x444c5354;

/** How long a write waits for another connection's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

const SQLITE_HEADER = 'SQLite format 3\0';

export interface Migration {
  readonly version: number;
  readonly description: string;
  /** SQL run in the migration's transaction. */
  readonly up: string;
}

/**
 * Forward migrations, in order. Never edit a released one: append a new version. Each runs in its own transaction
 * together with its `schema_version` row, so a failed or killed migration leaves the previous version intact.
 * Ids are AUTOINCREMENT so an id is never reused: the history refers to classes and sections by id.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'sections, class palette, spot labels, regions, history',
    up: `
      CREATE TABLE sections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        source TEXT NOT NULL UNIQUE,
        format TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX sections_fingerprint ON sections(fingerprint);

      CREATE TABLE classes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE CHECK (length(trim(name)) > 0 AND name = trim(name)),
        color TEXT NOT NULL CHECK (color GLOB '#[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
        position INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );

      CREATE TABLE spot_labels (
        section_id INTEGER NOT NULL REFERENCES sections(id) ON DELETE CASCADE,
        spot_id TEXT NOT NULL,
        class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (section_id, spot_id)
      ) WITHOUT ROWID;
      CREATE INDEX spot_labels_class ON spot_labels(class_id);

      -- Geometry: a GeoJSON Polygon or MultiPolygon in full-resolution image pixels (x right, y down).
      CREATE TABLE regions (
        id TEXT PRIMARY KEY,
        section_id INTEGER NOT NULL REFERENCES sections(id) ON DELETE CASCADE,
        class_id INTEGER REFERENCES classes(id) ON DELETE SET NULL,
        geometry TEXT NOT NULL CHECK (json_valid(geometry)),
        name TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX regions_section ON regions(section_id);
      CREATE INDEX regions_class ON regions(class_id);

      -- Append-only log of changes. section_id NULL: a change to the project's class palette.
      -- Only 'state' ever changes: done (on the undo stack), undone (on the redo stack), dropped (a redo
      -- discarded by a newer change).
      CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        section_id INTEGER REFERENCES sections(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        change TEXT NOT NULL CHECK (json_valid(change)),
        inverse TEXT NOT NULL CHECK (json_valid(inverse)),
        state TEXT NOT NULL DEFAULT 'done' CHECK (state IN ('done', 'undone', 'dropped')),
        created_at TEXT NOT NULL
      );
      CREATE INDEX history_scope ON history(section_id, state, id);
      CREATE TRIGGER history_append_only BEFORE UPDATE OF id, section_id, kind, change, inverse, created_at ON history
      BEGIN
        SELECT RAISE(ABORT, 'history is append-only');
      END;
    `,
  },
  {
    version: 2,
    description: 'recently opened paths',
    up: `
      -- What the slide library offers under "Recent": paths opened successfully, at most MAX_RECENT rows; rowid
      -- order is the order of opening. sources: a JSON array of the sources of the sections that path opened.
      CREATE TABLE recent (
        path TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        format TEXT NOT NULL,
        sources TEXT NOT NULL CHECK (json_valid(sources)),
        opened_at TEXT NOT NULL
      );
    `,
  },
];

/** How many recent paths a project keeps. */
export const MAX_RECENT = 20;

/** A path opened successfully, for the slide library's "Recent" list. */
export interface RecentRecord {
  /** The absolute path that was opened (file or folder). */
  readonly path: string;
  readonly name: string;
  /** The SectionFormat of its sections, or 'mixed' for a folder of several formats. */
  readonly format: string;
  /** Sources of the sections it opened (a section's `source`). */
  readonly sources: readonly string[];
  /** ISO time of the last open. */
  readonly openedAt: string;
}

export interface OpenOptions {
  /** Create the folder and the database when missing (default true). */
  readonly create?: boolean;
  /** Migrations to bring the database to (tests pass their own); default MIGRATIONS. */
  readonly migrations?: readonly Migration[];
}

/** What the database keeps about a section: enough to find it again, even after its folder moved. */
export interface SectionInfo {
  readonly name: string;
  readonly source: string;
  /** A SectionFormat ('spaceranger', 'anndata', 'legacy-st'), kept as text so new formats need no migration. */
  readonly format: string;
  readonly fingerprint: string;
}

export interface SectionRecord extends SectionInfo {
  readonly id: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export type SqlValue = string | number | bigint | null | Buffer;

type Statement = Database.Statement;

export function now(): string {
  return new Date().toISOString();
}

/**
 * A content fingerprint of a section: its format, spot ids and positions, and gene list. It lets a project find
 * a section's annotations again after its folder was moved or renamed.
 */
export function sectionFingerprint(section: Section): string {
  const hash = createHash('sha256');
  hash.update(`${section.format}\n${section.spots.ids.length} spots\n`);
  hash.update(section.spots.ids.join('\n'));
  hash.update(new Uint8Array(section.spots.x.buffer, section.spots.x.byteOffset, section.spots.x.byteLength));
  hash.update(new Uint8Array(section.spots.y.buffer, section.spots.y.byteOffset, section.spots.y.byteLength));
  hash.update(`\n${section.genes.symbols.length} genes\n`);
  hash.update(section.genes.symbols.join('\n'));
  return hash.digest('hex');
}

export function sectionInfo(section: Section): SectionInfo {
  return {
    name: section.name,
    source: section.source,
    format: section.format,
    fingerprint: sectionFingerprint(section),
  };
}

function sqliteCode(error: unknown): string {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Reads the first bytes of a file, or null when it is empty. */
function fileHead(file: string, length: number): Buffer | null {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(length);
    const n = readSync(fd, head, 0, length, 0);
    return n === 0 ? null : head.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}

export class ProjectDatabase {
  readonly folder: string;
  readonly file: string;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Statement>();
  private depth = 0;

  private constructor(folder: string, file: string, db: Database.Database) {
    this.folder = folder;
    this.file = file;
    this.db = db;
  }

  /**
   * Opens (creating when needed) the project database of `folder`, checks it (`PRAGMA quick_check`) and brings its
   * schema up to date. Throws a DataError naming the file when it is not a DELST project database, is corrupt, or
   * was written by a newer DELST Studio.
   */
  static open(folder: string, options: OpenOptions = {}): ProjectDatabase {
    const create = options.create ?? true;
    const migrations = options.migrations ?? MIGRATIONS;
    const file = join(folder, PROJECT_DB_NAME);
    const existed = exists(file);
    if (!existed && !create) throw new DataError(file, 'no DELST project database here');
    if (create) mkdirSync(folder, { recursive: true });
    if (existed) {
      // An empty main file is fine: in WAL mode everything may still be in the -wal file.
      let head: Buffer | null;
      try {
        head = fileHead(file, SQLITE_HEADER.length);
      } catch (error) {
        throw new DataError(file, `cannot read the project database: ${reasonOf(error)}`, { cause: error });
      }
      if (head && head.toString('latin1') !== SQLITE_HEADER) {
        throw new DataError(file, 'is not a DELST project database (not an SQLite file)');
      }
    }

    let db: Database.Database;
    try {
      db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
    } catch (error) {
      throw new DataError(file, `cannot open the project database: ${reasonOf(error)}`, { cause: error });
    }
    const project = new ProjectDatabase(folder, file, db);
    try {
      project.configure();
      project.check();
      project.migrate(migrations);
    } catch (error) {
      try {
        db.close();
      } catch {
        // The error that got us here is the one to report.
      }
      if (error instanceof DataError) throw error;
      const code = sqliteCode(error);
      if (code.startsWith('SQLITE_CORRUPT')) {
        throw new DataError(file, `is corrupt (${reasonOf(error)})`, { cause: error });
      }
      if (code.startsWith('SQLITE_NOTADB')) {
        throw new DataError(file, `is corrupt or not a DELST project database (${reasonOf(error)})`, { cause: error });
      }
      throw new DataError(file, `cannot open the project database: ${reasonOf(error)}`, { cause: error });
    }
    return project;
  }

  private configure(): void {
    // quick_check first: on a damaged file it fails (or reports) before any pragma writes to it.
    const check = this.db.prepare('PRAGMA quick_check').all([]) as { quick_check: string }[];
    const problems = check.map((row) => row.quick_check).filter((line) => line !== 'ok');
    if (problems.length > 0) {
      const more = problems.length > 1 ? ` (and ${problems.length - 1} more problems)` : '';
      throw new DataError(this.file, `is corrupt: ${problems[0]}${more}`);
    }
    const mode = (this.db.prepare('PRAGMA journal_mode = WAL').get([]) as { journal_mode: string }).journal_mode;
    if (mode !== 'wal') throw new DataError(this.file, `cannot use a write-ahead log (journal mode ${mode})`);
    this.db.exec('PRAGMA synchronous = FULL');
    this.db.exec('PRAGMA foreign_keys = ON');
    this.db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  }

  /** Tells a DELST database (or a fresh one) from any other SQLite file. */
  private check(): void {
    const applicationId = this.get<{ application_id: number }>('PRAGMA application_id')!.application_id;
    if (applicationId === APPLICATION_ID) return;
    const objects = this.get<{ n: number }>(
      "SELECT count(*) AS n FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
    )!.n;
    if (applicationId !== 0 || objects > 0) {
      throw new DataError(this.file, 'is an SQLite database but not a DELST project database');
    }
  }

  private migrate(migrations: readonly Migration[]): void {
    const latest = migrations.reduce((v, m) => Math.max(v, m.version), 0);
    if (this.pragma('application_id') !== APPLICATION_ID) {
      // A fresh database: mark it as ours together with its version table.
      this.transaction(() => {
        this.db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
        this.db.exec(
          'CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)',
        );
      });
    }
    const current = this.schemaVersion;
    if (current > latest) {
      throw new DataError(
        this.file,
        `was written by a newer DELST Studio (schema version ${current}; this version reads up to ${latest})`,
      );
    }
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (migration.version <= current) continue;
      try {
        this.transaction(() => {
          this.db.exec(migration.up);
          this.run('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)', [
            migration.version,
            migration.description,
            now(),
          ]);
        });
      } catch (error) {
        throw new DataError(
          this.file,
          `cannot upgrade the project database to schema version ${migration.version}: ${reasonOf(error)}`,
          { cause: error },
        );
      }
    }
  }

  /** The schema version the database is at (0 before the first migration). */
  get schemaVersion(): number {
    return this.get<{ v: number | null }>('SELECT max(version) AS v FROM schema_version')?.v ?? 0;
  }

  private statement(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  run(sql: string, params: readonly SqlValue[] = []): { changes: number; lastInsertRowid: number | bigint } {
    return this.statement(sql).run([...params]);
  }

  /** The first row, or undefined (without libsql's extra `_metadata`). */
  get<T extends object>(sql: string, params: readonly SqlValue[] = []): T | undefined {
    const row = this.statement(sql).get([...params]) as (T & { _metadata?: unknown }) | undefined;
    if (!row) return undefined;
    delete row._metadata;
    return row;
  }

  all<T extends object>(sql: string, params: readonly SqlValue[] = []): T[] {
    return this.statement(sql).all([...params]) as T[];
  }

  /** Runs SQL with no parameters and no result (schema changes, pragmas). */
  exec(sql: string): void {
    this.db.exec(sql);
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE, so it never fails half-way for a lock), committed when
   * `fn` returns and rolled back when it throws. A transaction inside another joins it.
   */
  transaction<T>(fn: () => T): T {
    if (this.depth > 0) return fn();
    this.db.exec('BEGIN IMMEDIATE');
    this.depth++;
    try {
      const result = fn();
      this.db.exec('COMMIT');
      return result;
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw error;
    } finally {
      this.depth--;
    }
  }

  get inTransaction(): boolean {
    return this.depth > 0;
  }

  /** `PRAGMA quick_check` lines: ['ok'] for a sound database. */
  quickCheck(): string[] {
    return this.all<{ quick_check: string }>('PRAGMA quick_check').map((row) => row.quick_check);
  }

  /** The current value of a pragma (journal_mode, synchronous, foreign_keys, ...). */
  pragma(name: string): SqlValue {
    if (!/^[a-z_]+$/.test(name)) throw new Error(`not a pragma name: ${name}`);
    const row = this.get<Record<string, SqlValue>>(`PRAGMA ${name}`);
    return row ? Object.values(row)[0] : null;
  }

  // --- Sections ---

  /**
   * The id of a section, registering it when new. Found by source path first; a section whose folder moved is found
   * by its fingerprint (its record then follows it to the new path).
   */
  registerSection(info: SectionInfo): SectionRecord {
    return this.transaction(() => {
      const time = now();
      const bySource = this.get<SectionRow>('SELECT * FROM sections WHERE source = ?', [info.source]);
      const known =
        bySource ??
        this.get<SectionRow>('SELECT * FROM sections WHERE fingerprint = ? ORDER BY updated_at DESC LIMIT 1', [
          info.fingerprint,
        ]);
      if (known) {
        if (
          known.name !== info.name ||
          known.source !== info.source ||
          known.format !== info.format ||
          known.fingerprint !== info.fingerprint
        ) {
          this.run(
            'UPDATE sections SET name = ?, source = ?, format = ?, fingerprint = ?, updated_at = ? WHERE id = ?',
            [info.name, info.source, info.format, info.fingerprint, time, known.id],
          );
        }
        return this.section(known.id)!;
      }
      const id = Number(
        this.run(
          'INSERT INTO sections (name, source, format, fingerprint, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
          [info.name, info.source, info.format, info.fingerprint, time, time],
        ).lastInsertRowid,
      );
      return this.section(id)!;
    });
  }

  section(id: number): SectionRecord | undefined {
    const row = this.get<SectionRow>('SELECT * FROM sections WHERE id = ?', [id]);
    return row && sectionRecord(row);
  }

  sections(): SectionRecord[] {
    return this.all<SectionRow>('SELECT * FROM sections ORDER BY id').map(sectionRecord);
  }

  // --- Recent paths ---

  /** Records a path as opened now (moving it to the top when known), keeping the newest MAX_RECENT. */
  addRecent(item: RecentRecord): void {
    this.transaction(() => {
      // Deleted and inserted again, so its rowid is the largest: rowid order is the order of opening, even for
      // two opens within the same millisecond.
      this.run('DELETE FROM recent WHERE path = ?', [item.path]);
      this.run('INSERT INTO recent (path, name, format, sources, opened_at) VALUES (?, ?, ?, ?, ?)', [
        item.path,
        item.name,
        item.format,
        JSON.stringify(item.sources),
        item.openedAt,
      ]);
      this.run('DELETE FROM recent WHERE rowid NOT IN (SELECT rowid FROM recent ORDER BY rowid DESC LIMIT ?)', [
        MAX_RECENT,
      ]);
    });
  }

  /** Recent paths, the most recent first. */
  recent(): RecentRecord[] {
    return this.all<RecentRow>('SELECT * FROM recent ORDER BY rowid DESC LIMIT ?', [MAX_RECENT]).map((row) => ({
      path: row.path,
      name: row.name,
      format: row.format,
      sources: parseSources(row.sources),
      openedAt: row.opened_at,
    }));
  }

  /**
   * Closes the database, first moving the WAL into the main file so the folder holds one self-contained file
   * (libsql's close leaves the native connection, and so the WAL, to the garbage collector).
   */
  close(): void {
    if (!this.db.open) return;
    try {
      this.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    } catch {
      // Another connection is reading: the WAL stays, which is just as safe.
    }
    this.statements.clear();
    this.db.close();
  }

  get isOpen(): boolean {
    return this.db.open;
  }
}

interface RecentRow {
  path: string;
  name: string;
  format: string;
  sources: string;
  opened_at: string;
}

function parseSources(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    return [];
  }
}

interface SectionRow {
  id: number;
  name: string;
  source: string;
  format: string;
  fingerprint: string;
  created_at: string;
  updated_at: string;
}

function sectionRecord(row: SectionRow): SectionRecord {
  return {
    id: row.id,
    name: row.name,
    source: row.source,
    format: row.format,
    fingerprint: row.fingerprint,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
