// Legacy Spatial Transcriptomics (Ståhl 2016 "1k" and the later "2k" arrays), as ST Pipeline, ST Spot Detector and
// STUtility leave it: a counts table with `XxY` spot ids against genes (either orientation, often gzipped), a Spot
// Detector table (`x y [new_x new_y] pixel_x pixel_y [selected]`), optionally an H&E image, Space Ranger-style
// scale factors and per-spot annotations. Files are recognised by content (gzip magic, table headers, image
// signatures), not by name, except where names pair several sections of one folder (MOB1 counts <-> MOB1 spots).

import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import sharp from 'sharp';
import type { GeneTable, LabelColumn, Section, SectionImage, SpotTable } from '../section/section.js';
import { SparseCounts } from '../section/sparse-counts.js';
import { DataError, readingFile } from './errors.js';
import type { SectionReader, SectionSource } from './reader.js';

const gunzip = promisify(zlib.gunzip);

/** `10x13` (array column x, row y); older pipelines write adjusted floats such as `10.02x13.05`. */
const SPOT_ID = /^\d+(?:\.\d+)?x\d+(?:\.\d+)?$/;
const ENSEMBL_ID = /^ENS[A-Z]*G\d+(?:\.\d+)?$/;
const TABLE_NAME = /\.(?:tsv|txt|tab)(?:\.gz)?$|\.gz$/i;
const SCALEFACTORS_NAME = /scalefactors.*\.json$/i;
/** Most of a file detection reads to find two lines (a 30k-gene header is ~150 kB gzipped). */
const HEAD_LIMIT = 4 * 1024 * 1024;

/** Legacy ST geometry (see docs §3.4, §3.9): 1k = 100 um spots on a 200 um square grid, one array unit per pitch. */
const ARRAY_1K = { unitMicrons: 200, spotDiameter: 100, spacing: 200 } as const;
/**
 * The 2k array is a checkerboard: only x+y of one parity is printed, so lattice neighbours are diagonal, (1,1)
 * apart. STUtility treats it so (GetSpatNet: 4 neighbours within 1.5 array units for '2k'); its array unit is
 * 100 um, so neighbours sit 141 um apart, and the spots are 100 um across (MOB: radius ~11.4 px at ~4.38 um/px).
 */
const ARRAY_2K = { unitMicrons: 100, spotDiameter: 100, spacing: 100 * Math.SQRT2 } as const;

type ArrayKind = '1k' | '2k';

// ---------------------------------------------------------------------------------------------------------------
// Detection

type FileRole =
  | { role: 'counts'; spotsAsRows: boolean }
  | { role: 'spots' }
  | { role: 'labels' }
  | { role: 'genes' }
  | { role: 'image' }
  | { role: 'scalefactors' };

type Found = FileRole & { path: string };

/** The files one section is read from; all but `counts` optional (a missing spots table is reported by `read`). */
interface SectionFiles {
  layout: 'one' | 'several';
  counts: string;
  spots?: string;
  image?: string;
  labels?: string;
  scalefactors?: string;
  genes?: string;
}

async function detect(path: string): Promise<SectionSource[]> {
  const info = await stat(path).catch(() => null);
  if (!info) return [];
  if (info.isFile()) {
    // A counts file picked by itself stands for its section (STUtility keeps it one level down, in counts/).
    for (const dir of [dirname(path), dirname(dirname(path))]) {
      const sources = (await detectFolder(dir)).filter((s) => s.hints?.counts === path);
      if (sources.length > 0) return sources;
    }
    return [];
  }
  return info.isDirectory() ? detectFolder(path) : [];
}

async function detectFolder(dir: string): Promise<SectionSource[]> {
  const top = await scanFolder(dir);
  const counts = top.filter((f) => f.role === 'counts');
  if (counts.length === 1) return [singleSection(dir, top, counts[0].path)];
  // STUtility layout: several sections in one folder, possibly split into counts/, spots/, images/ subfolders.
  const nested = await Promise.all((await subfolders(dir)).map(scanFolder));
  return multiSection(dir, [...top, ...nested.flat()]);
}

function singleSection(dir: string, found: Found[], counts: string): SectionSource {
  const files: SectionFiles = {
    layout: 'one',
    counts,
    spots: pick(found, 'spots'),
    image: pick(found, 'image'),
    labels: pick(found, 'labels'),
    scalefactors: pick(found, 'scalefactors'),
    genes: pick(found, 'genes'),
  };
  return { format: 'legacy-st', name: basename(dir), path: dir, hints: compact(files) };
}

/**
 * One section per counts file that pairs, by name, with a Spot Detector table (MOB1.tsv.gz with
 * alignment_table_MOB1.tsv); images, labels and scale factors pair the same way.
 */
function multiSection(dir: string, found: Found[]): SectionSource[] {
  const counts = found.filter((f) => f.role === 'counts');
  const names = counts.map((f) => sectionName(f.path));
  // Same names (every folder's counts.tsv.gz) mean a folder of section folders, not one multi-section layout.
  if (new Set(names).size !== names.length) return [];
  const genes = pick(found, 'genes');
  return counts.flatMap((c, i) => {
    const name = names[i];
    const mine = found.filter((f) => f !== c && carriesName(f.path, name));
    const spots = pick(mine, 'spots');
    if (!spots) return [];
    const files: SectionFiles = {
      layout: 'several',
      counts: c.path,
      spots,
      image: pick(mine, 'image'),
      labels: pick(mine, 'labels'),
      scalefactors: pick(mine, 'scalefactors'),
      genes,
    };
    return [{ format: 'legacy-st' as const, name, path: dir, hints: compact(files) }];
  });
}

/** The shortest-named file of a role: `spots.tsv` before `spots_old.tsv`. */
function pick(found: Found[], role: FileRole['role']): string | undefined {
  const matching = found.filter((f) => f.role === role).map((f) => f.path);
  matching.sort((a, b) => basename(a).length - basename(b).length || a.localeCompare(b));
  return matching[0];
}

function compact(files: SectionFiles): Record<string, string> {
  return Object.fromEntries(Object.entries(files).filter((e): e is [string, string] => e[1] !== undefined));
}

/** `MOB1.tsv.gz` -> MOB1, `counts_MOB1.tsv` -> MOB1, `stdata.tsv` -> stdata. */
function sectionName(path: string): string {
  const stem = basename(path).replace(/(\.(?:tsv|txt|tab|csv))?(\.gz)?$/i, '');
  const trimmed = stem.replace(/^(?:counts?|stdata|matrix)[_.-]+|[_.-]+(?:counts?|stdata|matrix)$/i, '');
  return trimmed || stem;
}

/** Whether a file name holds `name` as a whole token: MOB1 is in alignment_table_MOB1.tsv but not in MOB10.tsv. */
function carriesName(path: string, name: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?:^|[^A-Za-z0-9])${escaped}(?:[^A-Za-z0-9]|$)`).test(basename(path));
}

async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
}

async function scanFolder(dir: string): Promise<Found[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const files = entries.filter((e) => e.isFile()).map((e) => join(dir, e.name));
  const roles = await Promise.all(files.map((f) => classifyFile(f).catch(() => null)));
  return files.flatMap((path, i) => (roles[i] ? [{ ...roles[i], path }] : []));
}

async function classifyFile(path: string): Promise<FileRole | null> {
  if (SCALEFACTORS_NAME.test(basename(path))) return { role: 'scalefactors' };
  const head = await readBytes(path, 0, 16);
  if (imageFormat(head)) return { role: 'image' };
  if (!TABLE_NAME.test(basename(path))) return null;
  const lines = await readHeadLines(path, 2);
  return lines ? classifyTable(lines) : null;
}

/** Columns of derived per-spot tables (STUtility's merged/ tables): such tables are neither counts nor labels. */
const POSITION_COLUMNS = new Set([
  'array_x', 'array_y', 'array_row', 'array_col', 'pixel_x', 'pixel_y', 'pixel_x_image', 'pixel_y_image',
  'x', 'y', 'selected', 'in_tissue', 'total_counts',
]); // prettier-ignore

/** What a table is, from its header and its first row. */
function classifyTable(lines: string[]): FileRole | null {
  const header = splitLine(lines[0]);
  const lower = header.map((h) => h.trim().toLowerCase());
  if (['x', 'y', 'pixel_x', 'pixel_y'].every((c) => lower.includes(c))) return { role: 'spots' };
  if (lower.includes('gene_id') && lower.includes('gene_name')) return { role: 'genes' };
  if (lower.some((h) => POSITION_COLUMNS.has(h))) return null;
  const row = lines[1] === undefined ? [] : splitLine(lines[1]);
  const rowName = row[0] ?? '';
  if (lower[0] === 'spot_id') return SPOT_ID.test(rowName) ? { role: 'labels' } : null;
  if (!mostlyNumbers(row.slice(1))) return null;
  if (SPOT_ID.test(rowName) && !mostlySpotIds(header.slice(1))) return { role: 'counts', spotsAsRows: true };
  if (mostlySpotIds(header.slice(1)) && !SPOT_ID.test(rowName)) return { role: 'counts', spotsAsRows: false };
  return null;
}

function mostlyNumbers(fields: string[]): boolean {
  const sample = fields.slice(0, 50);
  return (
    sample.length > 0 && sample.filter((f) => f.trim() !== '' && !Number.isNaN(Number(f))).length >= 0.9 * sample.length
  );
}

function mostlySpotIds(fields: string[]): boolean {
  const sample = fields.filter((f) => f !== '').slice(0, 50);
  return sample.length > 0 && sample.filter((f) => SPOT_ID.test(f)).length >= 0.9 * sample.length;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

async function read(source: SectionSource): Promise<Section> {
  const files = source.hints?.counts ? (source.hints as unknown as SectionFiles) : await locate(source);
  if (!files.spots) {
    throw new DataError(
      source.path,
      `no Spot Detector table (a TSV with columns x, y, pixel_x, pixel_y) found for ${basename(files.counts)}`,
    );
  }
  const [spotTable, matrix, scalefactors, geneMap] = await Promise.all([
    readSpotTable(files.spots),
    readCountsTable(files.counts),
    files.scalefactors ? readScalefactors(files.scalefactors) : Promise.resolve({} as Scalefactors),
    files.genes ? readGeneMap(files.genes) : Promise.resolve(null),
  ]);
  const warnings: string[] = [];
  const joined = joinSpots(matrix, spotTable, warnings);
  const geometry = lattice(spotTable);
  const micronsPerPixel = pixelSize(scalefactors, geometry, files, warnings);
  const kindGeometry = geometry.kind === '2k' ? ARRAY_2K : ARRAY_1K;
  const spotDiameterMicrons = positive(scalefactors.spot_diameter_um) ?? kindGeometry.spotDiameter;
  const spotSpacingMicrons = positive(scalefactors.spot_spacing_um) ?? kindGeometry.spacing;
  const image = files.image ? await readImage(files.image, positive(scalefactors.tissue_hires_scalef) ?? 1) : null;
  if (image) checkSpotsInImage(joined.spots, image, spotDiameterMicrons / micronsPerPixel / 2, files, warnings);
  const labels = files.labels ? await readLabels(files.labels, joined.spots.ids) : new Map<string, LabelColumn>();
  return {
    name: source.name,
    format: 'legacy-st',
    // One section per folder: the folder; several (STUtility): the section's own counts file.
    source: files.layout === 'several' ? files.counts : source.path,
    spots: joined.spots,
    genes: geneTable(matrix.genes, geneMap, files, warnings),
    counts: joined.counts,
    image,
    micronsPerPixel,
    spotDiameterMicrons,
    spotSpacingMicrons,
    labels,
    warnings,
  };
}

/** Finds the files again when a source comes without hints (a path typed by hand). */
async function locate(source: SectionSource): Promise<SectionFiles> {
  const found = await detect(source.path);
  const match = found.find((s) => s.name === source.name) ?? (found.length === 1 ? found[0] : undefined);
  if (!match?.hints?.counts) {
    throw new DataError(
      source.path,
      'no legacy ST counts table found (a TSV, optionally gzipped, with XxY spot ids against gene names)',
    );
  }
  return match.hints as unknown as SectionFiles;
}

// --- Spot Detector table

interface SpotRows {
  readonly file: string;
  /** `round(x)xround(y)` -> row */
  readonly byKey: Map<string, number>;
  readonly x: Float64Array;
  readonly y: Float64Array;
  readonly pixelX: Float64Array;
  readonly pixelY: Float64Array;
  readonly selected: Uint8Array;
}

async function readSpotTable(file: string): Promise<SpotRows> {
  const table = parseTsv(await readText(file), file);
  const column = (name: string) => table.header.findIndex((h) => h.trim().toLowerCase() === name);
  const cols = { x: column('x'), y: column('y'), px: column('pixel_x'), py: column('pixel_y') };
  const selectedCol = column('selected');
  if (Object.values(cols).some((c) => c < 0))
    throw new DataError(file, 'not a Spot Detector table: needs columns x, y, pixel_x, pixel_y');
  const n = table.rows.length;
  const rows = {
    file,
    byKey: new Map<string, number>(),
    x: new Float64Array(n),
    y: new Float64Array(n),
    pixelX: new Float64Array(n),
    pixelY: new Float64Array(n),
    selected: new Uint8Array(n).fill(1),
  };
  table.rows.forEach((row, i) => {
    const line = table.lines[i];
    rows.x[i] = numberAt(row, cols.x, file, line, 'x');
    rows.y[i] = numberAt(row, cols.y, file, line, 'y');
    rows.pixelX[i] = numberAt(row, cols.px, file, line, 'pixel_x');
    rows.pixelY[i] = numberAt(row, cols.py, file, line, 'pixel_y');
    if (selectedCol >= 0) rows.selected[i] = isSelected(row[selectedCol]) ? 1 : 0;
    const key = `${Math.round(rows.x[i])}x${Math.round(rows.y[i])}`;
    const previous = rows.byKey.get(key);
    if (previous !== undefined) {
      throw new DataError(file, `spot ${key} appears twice (lines ${table.lines[previous]} and ${line})`);
    }
    rows.byKey.set(key, i);
  });
  return rows;
}

function numberAt(row: string[], col: number, file: string, line: number, name: string): number {
  const value = Number(row[col]);
  if (row[col].trim() === '' || !Number.isFinite(value)) {
    throw new DataError(file, `line ${line}: ${name} is not a finite number (${JSON.stringify(row[col])})`);
  }
  return value;
}

function isSelected(value: string): boolean {
  const v = value.trim().toLowerCase();
  return v === 'true' || (v !== '' && v !== 'false' && Number(v) !== 0);
}

// --- Counts table

interface CountsMatrix {
  readonly file: string;
  readonly spotIds: string[];
  readonly genes: string[];
  readonly counts: SparseCounts;
  /** 1-based line (spots as rows) or column (spots as columns) of each spot, for messages. */
  readonly spotPlace: string[];
}

async function readCountsTable(file: string): Promise<CountsMatrix> {
  const buf = await readDecompressed(file);
  const role = classifyTable(firstLines(buf, 2));
  if (role?.role !== 'counts') {
    throw new DataError(file, 'not a legacy ST counts table: expected XxY spot ids against gene names');
  }
  const parsed = parseCountsTsv(buf, file);
  const { rowNames, colNames } = parsed;
  const spotIds = role.spotsAsRows ? rowNames : colNames;
  const genes = role.spotsAsRows ? colNames : rowNames;
  const spotPlace = role.spotsAsRows
    ? parsed.rowLines.map((l) => `line ${l}`)
    : colNames.map((_, j) => `column ${j + 2}`);
  checkUnique(spotIds, spotPlace, file);
  const counts = await readingFile(file, 'invalid counts', () =>
    role.spotsAsRows
      ? SparseCounts.fromCsr(rowNames.length, colNames.length, parsed.indptr, parsed.index, parsed.data)
      : SparseCounts.fromCsc(colNames.length, rowNames.length, parsed.indptr, parsed.index, parsed.data),
  );
  return { file, spotIds, genes, counts, spotPlace };
}

function checkUnique(ids: string[], places: string[], file: string): void {
  const seen = new Map<string, number>();
  ids.forEach((id, i) => {
    const first = seen.get(id);
    if (first !== undefined)
      throw new DataError(file, `spot id ${id} appears twice (${places[first]} and ${places[i]})`);
    seen.set(id, i);
  });
}

interface ParsedTsv {
  readonly rowNames: string[];
  readonly colNames: string[];
  /** 1-based file line of each row. */
  readonly rowLines: number[];
  /** CSR over the file's rows. */
  readonly indptr: Float64Array;
  readonly index: Int32Array;
  readonly data: Float64Array;
}

const TAB = 9;
const LF = 10;
const CR = 13;

/**
 * A numeric TSV with a header row and a name column, parsed straight from bytes: HER2ST tables are ~350 x 15k
 * mostly "0" fields, and splitting them into strings would dominate the read. Only non-zero values are kept.
 */
function parseCountsTsv(buf: Buffer, file: string): ParsedTsv {
  let pos = 0;
  const headerEnd = lineEnd(buf, pos);
  const header = splitLine(buf.toString('utf8', pos, trimCr(buf, pos, headerEnd)));
  pos = headerEnd + 1;
  const out = new SparseBuilder(Math.max(1024, buf.length >> 3));
  const rowNames: string[] = [];
  const rowLines: number[] = [];
  let nValues = -1;
  let line = 1;
  while (pos < buf.length) {
    line++;
    const end = lineEnd(buf, pos);
    const stop = trimCr(buf, pos, end);
    if (stop > pos) {
      const fields = parseRow(buf, pos, stop, out, rowNames, { file, line, header });
      if (nValues < 0) nValues = checkHeader(header, fields, file);
      if (fields - 1 !== nValues) {
        throw new DataError(file, `line ${line} has ${fields} fields, expected ${nValues + 1} (ragged row)`);
      }
      rowLines.push(line);
      out.endRow();
    }
    pos = end + 1;
  }
  if (rowNames.length === 0) throw new DataError(file, 'the counts table has a header but no rows');
  const colNames = header.length === nValues ? header : header.slice(1);
  return { rowNames, colNames, rowLines, ...out.finish() };
}

/** Fields in the header vs the first row: R writes the header without the empty corner cell. */
function checkHeader(header: string[], rowFields: number, file: string): number {
  if (header.length === rowFields) return rowFields - 1;
  if (header.length === rowFields - 1 && header[0] !== '') return rowFields - 1;
  throw new DataError(file, `the header has ${header.length} fields but line 2 has ${rowFields} (ragged row)`);
}

interface RowContext {
  readonly file: string;
  readonly line: number;
  readonly header: string[];
}

/** Parses one data line into `out`; returns the number of fields, name included. */
function parseRow(buf: Buffer, start: number, stop: number, out: SparseBuilder, names: string[], ctx: RowContext) {
  let p = start;
  while (p < stop && buf[p] !== TAB) p++;
  const name = unquote(buf.toString('utf8', start, p));
  names.push(name);
  let fields = 1;
  while (p < stop) {
    p++; // past the tab
    const fieldStart = p;
    let value = 0;
    let plain = true;
    for (let c = buf[p]; p < stop && c !== TAB; c = buf[++p]) {
      if (c >= 48 && c <= 57) value = value * 10 + (c - 48);
      else plain = false;
    }
    // Anything but plain digits (floats, exponents, signs, NaN, text) goes the slow way.
    if (!plain || p === fieldStart) value = parseField(buf.toString('latin1', fieldStart, p), name, fields, ctx);
    if (value !== 0) out.push(fields - 1, value);
    fields++;
  }
  return fields;
}

function parseField(text: string, rowName: string, field: number, ctx: RowContext): number {
  const value = text.trim() === '' ? NaN : Number(text);
  const where = `line ${ctx.line}, column ${field + 1} (${rowName} / ${columnName(ctx.header, field)})`;
  if (Number.isNaN(value) && !/^\s*[-+]?nan\s*$/i.test(text)) {
    throw new DataError(ctx.file, `${where}: ${JSON.stringify(text)} is not a number`);
  }
  if (!Number.isFinite(value)) throw new DataError(ctx.file, `${where}: count is not finite (${text})`);
  if (value < 0) throw new DataError(ctx.file, `${where}: count is negative (${text})`);
  return value;
}

function columnName(header: string[], field: number): string {
  // field counts from 1 for the first value; headers may or may not carry the corner cell.
  return (header[0] === '' ? header[field] : header[field - 1]) ?? '?';
}

function firstLines(buf: Buffer, count: number): string[] {
  const lines: string[] = [];
  for (let start = 0; lines.length < count && start < buf.length;) {
    const end = lineEnd(buf, start);
    lines.push(buf.toString('utf8', start, trimCr(buf, start, end)));
    start = end + 1;
  }
  return lines;
}

function lineEnd(buf: Buffer, from: number): number {
  const end = buf.indexOf(LF, from);
  return end < 0 ? buf.length : end;
}

function trimCr(buf: Buffer, start: number, end: number): number {
  return end > start && buf[end - 1] === CR ? end - 1 : end;
}

/** Growable CSR arrays. */
class SparseBuilder {
  private index: Int32Array;
  private data: Float64Array;
  private readonly indptr: number[] = [0];
  private n = 0;

  constructor(capacity: number) {
    this.index = new Int32Array(capacity);
    this.data = new Float64Array(capacity);
  }

  push(col: number, value: number): void {
    if (this.n === this.index.length) this.grow();
    this.index[this.n] = col;
    this.data[this.n++] = value;
  }

  endRow(): void {
    this.indptr.push(this.n);
  }

  finish(): { indptr: Float64Array; index: Int32Array; data: Float64Array } {
    return {
      indptr: Float64Array.from(this.indptr),
      index: this.index.subarray(0, this.n),
      data: this.data.subarray(0, this.n),
    };
  }

  private grow(): void {
    const index = new Int32Array(this.index.length * 2);
    const data = new Float64Array(this.data.length * 2);
    index.set(this.index);
    data.set(this.data);
    this.index = index;
    this.data = data;
  }
}

// --- Joining counts to positions

function joinSpots(
  matrix: CountsMatrix,
  rows: SpotRows,
  warnings: string[],
): { spots: SpotTable; counts: SparseCounts } {
  const keep: number[] = [];
  const rowOf: number[] = [];
  matrix.spotIds.forEach((id, i) => {
    const row = rows.byKey.get(spotKey(id));
    if (row === undefined) return;
    keep.push(i);
    rowOf.push(row);
  });
  const countsName = basename(matrix.file);
  const spotsName = basename(rows.file);
  if (keep.length === 0) {
    throw new DataError(
      matrix.file,
      `no spot ids in common with ${spotsName} (counts ids such as ${matrix.spotIds[0]}; ` +
        `table positions such as ${rows.byKey.keys().next().value ?? 'none'})`,
    );
  }
  const dropped = matrix.spotIds.length - keep.length;
  if (dropped > 0) {
    warnings.push(
      `${dropped} of ${matrix.spotIds.length} spots in ${countsName} have no position in ${spotsName} and were dropped`,
    );
  }
  const counts = dropped > 0 ? matrix.counts.select(keep) : matrix.counts;
  const pickRows = (values: Float64Array) => Float64Array.from(rowOf, (r) => values[r]);
  const spots: SpotTable = {
    ids: keep.map((i) => matrix.spotIds[i]),
    x: pickRows(rows.pixelX),
    y: pickRows(rows.pixelY),
    inTissue: Uint8Array.from(rowOf, (r) => rows.selected[r]),
    arrayRow: Float64Array.from(rowOf, (r) => Math.round(rows.y[r])),
    arrayCol: Float64Array.from(rowOf, (r) => Math.round(rows.x[r])),
  };
  return { spots, counts };
}

/** Counts ids may carry adjusted float coordinates; the Spot Detector table is joined on the rounded array position. */
function spotKey(id: string): string {
  const [x, y] = id.split('x');
  return `${Math.round(Number(x))}x${Math.round(Number(y))}`;
}

// --- Lattice and pixel size

interface Lattice {
  readonly kind: ArrayKind;
  /** Full-resolution pixels per array unit, or null with too few neighbours to tell. */
  readonly pixelsPerUnit: number | null;
}

/**
 * Which array, and its pixel pitch, from the Spot Detector fit. On the 2k checkerboard every printed spot has the
 * same x+y parity and neighbours are diagonal; on the 1k square grid they are one unit apart along x or y.
 * The median over all neighbour pairs shrugs off the odd badly fitted spot.
 */
function lattice(rows: SpotRows): Lattice {
  const n = rows.x.length;
  const parity = new Set<number>();
  for (let i = 0; i < n; i++) parity.add(Math.abs(Math.round(rows.x[i]) + Math.round(rows.y[i])) % 2);
  const kind: ArrayKind = n > 1 && parity.size === 1 ? '2k' : '1k';
  const steps =
    kind === '2k'
      ? [
          [1, 1],
          [1, -1],
        ]
      : [
          [1, 0],
          [0, 1],
        ];
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) {
    const ax = Math.round(rows.x[i]);
    const ay = Math.round(rows.y[i]);
    for (const [dx, dy] of steps) {
      const j = rows.byKey.get(`${ax + dx}x${ay + dy}`);
      if (j === undefined) continue;
      const pixels = Math.hypot(rows.pixelX[j] - rows.pixelX[i], rows.pixelY[j] - rows.pixelY[i]);
      ratios.push(pixels / Math.hypot(dx, dy));
    }
  }
  return { kind, pixelsPerUnit: ratios.length ? median(ratios) : null };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function pixelSize(sf: Scalefactors, geometry: Lattice, files: SectionFiles, warnings: string[]): number {
  const unitMicrons = geometry.kind === '2k' ? ARRAY_2K.unitMicrons : ARRAY_1K.unitMicrons;
  const fromLattice = geometry.pixelsPerUnit ? unitMicrons / geometry.pixelsPerUnit : null;
  const given = positive(sf.microns_per_pixel_fullres);
  if (given) {
    if (fromLattice && Math.abs(fromLattice / given - 1) > 0.1) {
      warnings.push(
        `microns_per_pixel_fullres ${given} disagrees with the ${geometry.kind} array lattice ` +
          `(${fromLattice.toFixed(3)} um/px from ${basename(files.spots ?? '')}); using ${given}`,
      );
    }
    return given;
  }
  if (fromLattice) return fromLattice;
  throw new DataError(
    files.spots ?? files.counts,
    'cannot tell the pixel size: no microns_per_pixel_fullres and too few neighbouring spots to measure the lattice',
  );
}

function positive(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

// --- Scale factors, genes, labels

interface Scalefactors {
  readonly microns_per_pixel_fullres?: unknown;
  readonly tissue_hires_scalef?: unknown;
  readonly spot_diameter_um?: unknown;
  readonly spot_spacing_um?: unknown;
}

async function readScalefactors(file: string): Promise<Scalefactors> {
  const text = await readingFile(file, 'cannot read', () => readFile(file, 'utf8'));
  const parsed: unknown = await readingFile(file, 'not valid JSON', () => JSON.parse(text));
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new DataError(file, 'expected a JSON object of scale factors');
  }
  return parsed as Scalefactors;
}

/** Ensembl id -> symbol, both with and without the version suffix (ENSMUSG00000064339.1). */
async function readGeneMap(file: string): Promise<Map<string, string>> {
  const table = parseTsv(await readText(file), file);
  const lower = table.header.map((h) => h.trim().toLowerCase());
  const idCol = lower.indexOf('gene_id');
  const nameCol = lower.indexOf('gene_name');
  const map = new Map<string, string>();
  for (const row of table.rows) {
    const id = row[idCol];
    const name = row[nameCol];
    if (!id || !name) continue;
    map.set(id, name);
    map.set(id.replace(/\.\d+$/, ''), name);
  }
  return map;
}

function geneTable(
  names: string[],
  geneMap: Map<string, string> | null,
  files: SectionFiles,
  warnings: string[],
): GeneTable {
  const ensembl = names.filter((n) => ENSEMBL_ID.test(n)).length >= 0.9 * names.length;
  if (!ensembl) return { symbols: names, ids: names.map(() => null) };
  const symbols = names.map((id) => geneMap?.get(id) ?? geneMap?.get(id.replace(/\.\d+$/, '')) ?? id);
  const unmapped = symbols.filter((s, i) => s === names[i]).length;
  if (unmapped > 0) {
    const where = files.genes ? `in ${basename(files.genes)}` : '(no gene_id/gene_name table found)';
    warnings.push(`${unmapped} of ${names.length} Ensembl gene ids have no symbol ${where}; they are shown by id`);
  }
  return { symbols, ids: names };
}

/** Every column but the id becomes a label column aligned to the section's spots; missing spots or values -> null. */
async function readLabels(file: string, spotIds: readonly string[]): Promise<Map<string, LabelColumn>> {
  const table = parseTsv(await readText(file), file);
  const byId = new Map<string, number>();
  table.rows.forEach((row, i) => {
    const id = row[0].trim();
    const previous = byId.get(id);
    if (previous !== undefined) {
      throw new DataError(file, `spot ${id} appears twice (lines ${table.lines[previous]} and ${table.lines[i]})`);
    }
    byId.set(id, i);
    if (SPOT_ID.test(id) && !byId.has(spotKey(id))) byId.set(spotKey(id), i);
  });
  const rowOf = spotIds.map((id) => byId.get(id) ?? byId.get(spotKey(id)));
  const labels = new Map<string, LabelColumn>();
  table.header.slice(1).forEach((name, k) => {
    labels.set(
      name.trim(),
      rowOf.map((r) => (r === undefined ? null : labelValue(table.rows[r][k + 1]))),
    );
  });
  return labels;
}

function labelValue(value: string): string | null {
  const v = value.trim();
  return v === '' || v === 'NA' || v === 'nan' ? null : v;
}

// --- Image

type ImageFile = Extract<SectionImage, { kind: 'file' }>;

async function readImage(file: string, scale: number): Promise<ImageFile> {
  const head = await readingFile(file, 'cannot read', () => readBytes(file, 0, 16));
  const format = imageFormat(head);
  if (!format) throw new DataError(file, 'not a PNG, JPEG or TIFF image');
  await checkImageEnd(file, format);
  const meta = await readingFile(file, 'not a readable image', () => sharp(file).metadata());
  if (!meta.width || !meta.height) throw new DataError(file, 'the image has no size');
  return { kind: 'file', path: file, width: meta.width, height: meta.height, scale };
}

function imageFormat(head: Buffer): 'png' | 'jpeg' | 'tiff' | null {
  if (head.length >= 8 && head.readUInt32BE(0) === 0x89504e47 && head.readUInt32BE(4) === 0x0d0a1a0a) return 'png';
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head.length >= 4 && (head.readUInt32BE(0) === 0x49492a00 || head.readUInt32BE(0) === 0x4d4d002a)) return 'tiff';
  return null;
}

/**
 * A truncated PNG or JPEG still has a valid header, so sharp's metadata accepts it and the damage would only show
 * as grey or missing tiles later. Their ends are cheap to check: a PNG ends with its IEND chunk, a JPEG with the
 * EOI marker (FF D9, which cannot occur inside entropy-coded data). Trailing padding is tolerated.
 */
async function checkImageEnd(file: string, format: 'png' | 'jpeg' | 'tiff'): Promise<void> {
  if (format === 'tiff') return;
  const size = (await stat(file)).size;
  const tail = await readBytes(file, Math.max(0, size - 256), 256);
  const ok = format === 'png' ? tail.includes('IEND', 0, 'latin1') : tail.includes(Buffer.from([0xff, 0xd9]));
  if (!ok) {
    const marker = format === 'png' ? 'IEND chunk' : 'end-of-image marker';
    throw new DataError(file, `the ${format.toUpperCase()} image is truncated or corrupt (no ${marker} at the end)`);
  }
}

/** In-tissue spots must lie on the image (a spot radius of slack); off-tissue ones only earn a warning. */
function checkSpotsInImage(
  spots: SpotTable,
  image: ImageFile,
  radiusFullres: number,
  files: SectionFiles,
  warnings: string[],
): void {
  const margin = radiusFullres * image.scale;
  const outside = (i: number) => {
    const x = spots.x[i] * image.scale;
    const y = spots.y[i] * image.scale;
    return x < -margin || y < -margin || x > image.width + margin || y > image.height + margin;
  };
  const inTissue: number[] = [];
  let offTissue = 0;
  for (let i = 0; i < spots.ids.length; i++) {
    if (!outside(i)) continue;
    if (spots.inTissue[i]) inTissue.push(i);
    else offTissue++;
  }
  const imageName = basename(image.path);
  if (inTissue.length > 0) {
    const i = inTissue[0];
    const at = `(${(spots.x[i] * image.scale).toFixed(0)}, ${(spots.y[i] * image.scale).toFixed(0)})`;
    throw new DataError(
      files.spots ?? files.counts,
      `${inTissue.length} in-tissue spots lie outside ${imageName} (${image.width}x${image.height} px at scale ` +
        `${image.scale}), e.g. ${spots.ids[i]} at image pixel ${at}; positions and image do not match`,
    );
  }
  if (offTissue > 0) warnings.push(`${offTissue} spots outside the tissue also lie outside ${imageName}`);
}

// ---------------------------------------------------------------------------------------------------------------
// File helpers

async function readBytes(file: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function isGzip(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** The whole file, gunzipped when it starts with the gzip magic (whatever its name says), without a UTF-8 BOM. */
async function readDecompressed(file: string): Promise<Buffer> {
  const raw = await readingFile(file, 'cannot read', () => readFile(file));
  const buf = isGzip(raw) ? await readingFile(file, 'corrupt or truncated gzip data', () => gunzip(raw)) : raw;
  return buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? buf.subarray(3) : buf;
}

async function readText(file: string): Promise<string> {
  return (await readDecompressed(file)).toString('utf8');
}

/**
 * The first `count` lines, reading (and gunzipping) only as much of the file as needed: detection looks at many
 * files, and a counts header alone can be 100 kB. Null when the file is not text we can read.
 */
async function readHeadLines(file: string, count: number): Promise<string[] | null> {
  const size = (await stat(file)).size;
  for (let length = 64 * 1024; length <= HEAD_LIMIT; length *= 4) {
    const raw = await readBytes(file, 0, Math.min(length, size));
    const text = isGzip(raw)
      ? zlib
          .gunzipSync(raw, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: HEAD_LIMIT * 8 })
          .toString('utf8')
      : raw.toString('utf8');
    if (text.includes('\0')) return null;
    const lines = text.replace(/^\uFEFF/, '').split('\n');
    const complete = raw.length >= size;
    if (lines.length > count || complete) return lines.slice(0, count).map((l) => l.replace(/\r$/, ''));
  }
  return null; // no line breaks in the first megabytes: not a table
}

interface TextTable {
  readonly header: string[];
  readonly rows: string[][];
  /** 1-based file line of each row. */
  readonly lines: number[];
}

/** A small TSV (spots, labels, gene map): header + rows of the same width; blank lines skipped. */
function parseTsv(text: string, file: string): TextTable {
  const all = text.split('\n');
  const header = splitLine(all[0] ?? '');
  if (header.length < 2) throw new DataError(file, 'not a tab-separated table (the header has one column)');
  const rows: string[][] = [];
  const lines: number[] = [];
  for (let i = 1; i < all.length; i++) {
    const raw = all[i].replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const row = raw.split('\t');
    if (row.length !== header.length) {
      throw new DataError(file, `line ${i + 1} has ${row.length} fields, expected ${header.length} (ragged row)`);
    }
    rows.push(row);
    lines.push(i + 1);
  }
  return { header, rows, lines };
}

function splitLine(line: string): string[] {
  return line.replace(/\r$/, '').split('\t').map(unquote);
}

/** R's write.table quotes names: "10x13", "SAMD11". */
function unquote(field: string): string {
  return field.length >= 2 && field[0] === '"' && field[field.length - 1] === '"' ? field.slice(1, -1) : field;
}

export const legacyStReader: SectionReader = { format: 'legacy-st', detect, read };
