// The project database: creation, pragmas, migrations, refusing files that are not ours or are damaged, and the
// crash test: a writer process killed with SIGKILL at random moments never loses a committed change and never
// leaves one half-applied.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'libsql';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Annotations } from '../../core/project/annotations.js';
import {
  APPLICATION_ID,
  MIGRATIONS,
  PROJECT_DB_NAME,
  ProjectDatabase,
  type Migration,
} from '../../core/project/database.js';
import { dataError } from './support/data-error.js';

const root = resolve(import.meta.dirname, '../..');
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'delst-project-db-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let folderCount = 0;
function freshFolder(): string {
  return join(scratch, `project-${++folderCount}`);
}

const section = { name: 'A1', source: '/data/her2st/A1', format: 'legacy-st', fingerprint: 'f00d' };

describe('opening a project database', () => {
  it('creates the folder and a WAL database with synchronous=FULL, foreign keys and the latest schema', () => {
    const folder = freshFolder();
    const db = ProjectDatabase.open(folder);
    try {
      expect(db.file).toBe(join(folder, PROJECT_DB_NAME));
      expect(db.pragma('journal_mode')).toBe('wal');
      expect(db.pragma('synchronous')).toBe(2); // FULL
      expect(db.pragma('foreign_keys')).toBe(1);
      expect(db.pragma('application_id')).toBe(APPLICATION_ID);
      expect(db.schemaVersion).toBe(MIGRATIONS.at(-1)!.version);
      expect(db.quickCheck()).toEqual(['ok']);
      const tables = db
        .all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .map((t) => t.name);
      expect(tables).toEqual(
        expect.arrayContaining(['classes', 'history', 'regions', 'schema_version', 'sections', 'spot_labels']),
      );
    } finally {
      db.close();
    }
  });

  it('keeps what was committed across close and reopen, and finds a moved section by its fingerprint', () => {
    const folder = freshFolder();
    let db = ProjectDatabase.open(folder);
    const a1 = db.registerSection(section);
    expect(db.registerSection(section).id).toBe(a1.id);
    const b1 = db.registerSection({ ...section, name: 'B1', source: '/data/her2st/B1', fingerprint: 'beef' });
    expect(b1.id).not.toBe(a1.id);
    db.close();

    db = ProjectDatabase.open(folder);
    try {
      expect(db.sections().map((s) => s.name)).toEqual(['A1', 'B1']);
      // The A1 folder moved: same content, new path.
      const moved = db.registerSection({ ...section, source: '/elsewhere/A1' });
      expect(moved.id).toBe(a1.id);
      expect(db.section(a1.id)!.source).toBe('/elsewhere/A1');
    } finally {
      db.close();
    }
  });

  it('refuses to create a database when told not to', () => {
    const folder = freshFolder();
    const error = dataError(() => ProjectDatabase.open(folder, { create: false }));
    expect(error.file).toBe(join(folder, PROJECT_DB_NAME));
  });

  it('migrates an empty database file from version 0', () => {
    const folder = freshFolder();
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, PROJECT_DB_NAME), '');
    const db = ProjectDatabase.open(folder);
    try {
      expect(db.schemaVersion).toBe(MIGRATIONS.at(-1)!.version);
      expect(db.all('SELECT version FROM schema_version')).toEqual(MIGRATIONS.map((m) => ({ version: m.version })));
    } finally {
      db.close();
    }
  });

  it('runs forward migrations in order, keeping the data; a failing one changes nothing', () => {
    const folder = freshFolder();
    let db = ProjectDatabase.open(folder, { migrations: MIGRATIONS });
    const a1 = db.registerSection(section);
    db.close();

    const v2: Migration = {
      version: MIGRATIONS.length + 1,
      description: 'test: section notes',
      up: "ALTER TABLE sections ADD COLUMN note TEXT NOT NULL DEFAULT ''; CREATE TABLE extra (x INTEGER);",
    };
    db = ProjectDatabase.open(folder, { migrations: [...MIGRATIONS, v2] });
    expect(db.schemaVersion).toBe(v2.version);
    expect(db.get<{ name: string; note: string }>('SELECT name, note FROM sections WHERE id = ?', [a1.id])).toEqual({
      name: 'A1',
      note: '',
    });
    db.close();

    const broken: Migration = {
      version: v2.version + 1,
      description: 'test: fails half-way',
      up: 'CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);',
    };
    const error = dataError(() => ProjectDatabase.open(folder, { migrations: [...MIGRATIONS, v2, broken] }));
    expect(error.problem).toMatch(`cannot upgrade the project database to schema version ${broken.version}`);
    db = ProjectDatabase.open(folder, { migrations: [...MIGRATIONS, v2] });
    try {
      expect(db.schemaVersion).toBe(v2.version);
      expect(db.get("SELECT name FROM sqlite_master WHERE name = 'half'")).toBeUndefined();
    } finally {
      db.close();
    }
  });

  it('refuses a database written by a newer DELST Studio', () => {
    const folder = freshFolder();
    const future: Migration = { version: 99, description: 'from the future', up: 'CREATE TABLE future (x INTEGER);' };
    ProjectDatabase.open(folder, { migrations: [...MIGRATIONS, future] }).close();
    const error = dataError(() => ProjectDatabase.open(folder));
    expect(error.message).toContain(PROJECT_DB_NAME);
    expect(error.problem).toMatch(/newer DELST Studio \(schema version 99/);
  });

  it('refuses a file that is not SQLite, naming it', async () => {
    const folder = freshFolder();
    mkdirSync(folder, { recursive: true });
    const file = join(folder, PROJECT_DB_NAME);
    await writeFile(file, 'spot_id,label\n10x13,invasive cancer\n'.repeat(50));
    const error = dataError(() => ProjectDatabase.open(folder));
    expect(error.file).toBe(file);
    expect(error.message).toBe(`${file}: is not a DELST project database (not an SQLite file)`);
  });

  it('refuses an SQLite database of another application', () => {
    const folder = freshFolder();
    mkdirSync(folder, { recursive: true });
    const file = join(folder, PROJECT_DB_NAME);
    const other = new Database(file);
    other.exec('CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)');
    other.close();
    const error = dataError(() => ProjectDatabase.open(folder));
    expect(error.problem).toBe('is an SQLite database but not a DELST project database');
  });

  it('refuses a corrupt database with a clear message', async () => {
    const folder = freshFolder();
    const db = ProjectDatabase.open(folder);
    const a1 = db.registerSection(section);
    const annotations = new Annotations(db);
    annotations.addDefaultClasses();
    const spots = Array.from({ length: 3000 }, (_, i) => `${Math.floor(i / 60)}x${i % 60}`);
    annotations.labelSpots(a1.id, spots, annotations.classes()[0].id);
    db.close(); // checkpoints the WAL into the main file

    // Overwrite the middle of the file (b-tree pages of the labels) with garbage.
    const file = join(folder, PROJECT_DB_NAME);
    const size = readFileSync(file).length;
    expect(size).toBeGreaterThan(8 * 4096);
    const handle = await open(file, 'r+');
    await handle.write(Buffer.alloc(4 * 4096, 0xa5), 0, 4 * 4096, Math.floor(size / 2 / 4096) * 4096);
    await handle.close();

    const error = dataError(() => ProjectDatabase.open(folder));
    expect(error.file).toBe(file);
    expect(error.problem).toMatch(/corrupt/);
  });
});

// --- The crash test ---

/**
 * Transpiles core modules (and the relative modules they import) to plain JS in `outDir`, keeping the layout,
 * so a child `node` can import the current source without a build. `node_modules` is linked in for libsql.
 */
async function transpileForChild(outDir: string, entries: string[]): Promise<void> {
  const seen = new Set<string>();
  const queue = entries.map((e) => resolve(root, e));
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      fileName: file,
    }).outputText;
    const target = join(outDir, relative(root, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, js);
    for (const match of source.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) {
      queue.push(resolve(dirname(file), `${match[1]}.ts`));
    }
  }
  await symlink(join(root, 'node_modules'), join(outDir, 'node_modules'), 'dir');
}

/**
 * The writer's strokes, as a plain JS module both the child and this test import: stroke `k` labels 250 of 1500
 * spots with one class of the palette, or erases them (null).
 */
const STROKES_MODULE = `
export function stroke(k, classIds) {
  const start = (k * 977) % 1500;
  const spots = [];
  for (let i = 0; i < 250; i++) spots.push('s' + ((start + i * 3) % 1500));
  const pick = k % (classIds.length + 1);
  return { spots, classId: pick === classIds.length ? null : classIds[pick] };
}
`;

type Stroke = (k: number, classIds: readonly number[]) => { spots: string[]; classId: number | null };
let stroke: Stroke;

/** Labels after strokes 1..k, replayed in memory, and how many of those strokes changed anything. */
function replay(k: number, classIds: readonly number[]): { labels: Map<string, number>; changes: number } {
  const labels = new Map<string, number>();
  let changes = 0;
  for (let j = 1; j <= k; j++) {
    const { spots, classId } = stroke(j, classIds);
    let changed = false;
    for (const s of spots) {
      if ((labels.get(s) ?? null) !== classId) changed = true;
      if (classId === null) labels.delete(s);
      else labels.set(s, classId);
    }
    if (changed) changes++;
  }
  return { labels, changes };
}

function sameLabels(a: Map<string, number>, b: Map<string, number>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

const CHILD = (moduleDir: string, strokes: string) => `
import { ProjectDatabase } from ${JSON.stringify(pathToFileURL(join(moduleDir, 'core/project/database.js')).href)};
import { Annotations } from ${JSON.stringify(pathToFileURL(join(moduleDir, 'core/project/annotations.js')).href)};
import { stroke } from ${JSON.stringify(pathToFileURL(strokes).href)};
const [folder, sectionArg, firstArg, classArg] = process.argv.slice(2);
const sectionId = Number(sectionArg);
const classIds = JSON.parse(classArg);
const annotations = new Annotations(ProjectDatabase.open(folder));
process.stdout.write('ready\\n');
for (let k = Number(firstArg); ; k++) {
  const { spots, classId } = stroke(k, classIds);
  const entry = annotations.labelSpots(sectionId, spots, classId);
  // Printed only once labelSpots has returned, i.e. once the change is committed (stdout to a pipe is synchronous).
  process.stdout.write(k + ' ' + (entry ? entry.id : 'none') + '\\n');
}
`;

interface ChildRun {
  strokes: number[];
  entries: number[];
}

/** Runs the writer until SIGKILL at a random moment after its first commit; returns what it reported as committed. */
function runAndKill(script: string, args: string[], killAfterMs: number): Promise<ChildRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      // Armed at the first committed stroke, so a slow start on a loaded machine cannot leave a round empty.
      if (!timer && /^ready\n\d+ \S+\n/.test(out)) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') {
        reject(new Error(`writer ended with code ${code}, signal ${signal}: ${err}`));
        return;
      }
      const lines = out.split('\n').slice(1);
      lines.pop(); // possibly a partial line
      const strokes: number[] = [];
      const entries: number[] = [];
      for (const line of lines) {
        const [k, id] = line.split(' ');
        strokes.push(Number(k));
        if (id !== 'none') entries.push(Number(id));
      }
      resolvePromise({ strokes, entries });
    });
  });
}

describe('kill -9 safety', () => {
  it('a writer killed at random moments loses no committed change and leaves none half-applied', async () => {
    const work = join(scratch, 'kill');
    const moduleDir = join(work, 'modules');
    await transpileForChild(moduleDir, ['core/project/database.ts', 'core/project/annotations.ts']);
    const strokes = join(work, 'strokes.mjs');
    writeFileSync(strokes, STROKES_MODULE);
    stroke = ((await import(pathToFileURL(strokes).href)) as { stroke: Stroke }).stroke;
    const script = join(work, 'writer.mjs');
    writeFileSync(script, CHILD(moduleDir, strokes));

    const folder = join(work, 'project');
    const setup = Annotations.openProject(folder);
    const sectionId = setup.db.registerSection(section).id;
    const classIds = setup.classes().map((c) => c.id);
    setup.close();

    let last = 0; // last stroke known to be committed
    let reported = 0;
    const rounds = 8;
    for (let round = 0; round < rounds; round++) {
      const killAfter = 40 + Math.floor(Math.random() * 400);
      const run = await runAndKill(
        script,
        [folder, String(sectionId), String(last + 1), JSON.stringify(classIds)],
        killAfter,
      );
      expect(run.strokes.length, `round ${round}: the writer committed nothing in ${killAfter} ms`).toBeGreaterThan(0);
      const lastReported = run.strokes.at(-1)!;
      reported += run.strokes.length;

      // Reopen as the app would after a crash: recovery, quick_check, then the checks.
      const annotations = new Annotations(ProjectDatabase.open(folder, { create: false }));
      try {
        expect(annotations.db.quickCheck()).toEqual(['ok']);
        const history = annotations.history(sectionId, 1_000_000);
        const ids = new Set(history.map((h) => h.id));
        for (const id of run.entries) expect(ids.has(id), `change ${id} was reported committed`).toBe(true);

        // The labels must be exactly those after the last reported stroke, or after one more (committed, killed
        // before it could print): anything else would be a lost or half-applied stroke.
        // The history must hold exactly one entry per stroke that changed something, no more, no less.
        const labels = annotations.spotLabels(sectionId);
        const atReported = replay(lastReported, classIds);
        const atNext = replay(lastReported + 1, classIds);
        let expected: { labels: Map<string, number>; changes: number };
        if (sameLabels(labels, atReported.labels)) [last, expected] = [lastReported, atReported];
        else if (sameLabels(labels, atNext.labels)) [last, expected] = [lastReported + 1, atNext];
        else throw new Error(`round ${round}: labels match neither stroke ${lastReported} nor ${lastReported + 1}`);
        expect(history.length, `round ${round}: history entries`).toBe(expected.changes);
      } finally {
        annotations.close();
      }
    }
    expect(reported).toBeGreaterThan(rounds);

    // The history is complete too: undoing every change, newest first, leaves the section unlabelled.
    const annotations = new Annotations(ProjectDatabase.open(folder, { create: false }));
    try {
      const done = annotations.history(sectionId, 1_000_000).filter((h) => h.state === 'done').length;
      expect(done).toBeGreaterThan(0);
      let undone = 0;
      while (annotations.undo(sectionId)) undone++;
      expect(undone).toBe(done);
      expect(annotations.spotLabels(sectionId).size).toBe(0);
      expect(annotations.db.quickCheck()).toEqual(['ok']);
    } finally {
      annotations.close();
    }
  }, 120_000);
});
