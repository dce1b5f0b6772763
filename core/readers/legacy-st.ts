// Legacy Spatial Transcriptomics (Ståhl 2016 "1k" and the later "2k" arrays), as ST Pipeline, ST Spot Detector and
// STUtility leave it: a counts table with `XxY` spot ids against genes (either orientation, often gzipped), a Spot
// Detector table (`x y [new_x new_y] pixel_x pixel_y [selected]`), optionally an H&E image, Space Ranger-style
// scale factors and per-spot annotations. Files are recognised by content (gzip magic, table headers, image
// signatures), not by name, except where names pair several sections of one folder (MOB1 counts <-> MOB1 spots).

import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import zlib from 'node:zlib';
import { LATTICES, type LatticeKind, latticeKind, median, spotsOutsideImage } from '../section/lattice.js';
import {
  hasLabels,
  labelValue,
  type GeneTable,
  type LabelColumn,
  type Section,
  type SectionImage,
  type SpotTable,
} from '../section/section.js';
import { SparseCounts } from '../section/sparse-counts.js';
import { DataError, readingFile } from './errors.js';
import {
  ENSEMBL_ID,
  type PositionColumns,
  type Scalefactors,
  checkUnique,
  imageFormat,
  inspectImage,
  isGzip,
  joinSpots,
  readBytes,
  readDecompressed,
  readScalefactors,
  readText,
  subfolders,
} from './files.js';
import type { SectionReader, SectionSource } from './reader.js';

/** `10x13` (array column x, row y); older pipelines write adjusted floats such as `10.02x13.05`. */
const SPOT_ID = /^\d+(?:\.\d+)?x\d+(?:\.\d+)?$/;
const TABLE_NAME = /\.(?:tsv|txt|tab)(?:\.gz)?$|\.gz$/i;
const IMAGE_NAME = /\.(png|jpe?g|tiff?)$/i;
const SCALEFACTORS_NAME = /scalefactors.*\.json$/i;
/** Most of a file detection reads to find two lines (a 30k-gene header is ~150 kB gzipped). */
const HEAD_LIMIT = 4 * 1024 * 1024;

/**
 * The arrays legacy ST data come from (docs §3.4, §3.9), 1k first as the guess when the spots cannot tell. The 2k
 * array is a checkerboard: STUtility treats it so (GetSpatNet: 4 neighbours within 1.5 array units for '2k'), and
 * its spots are 100 um across (MOB: radius ~11.4 px at ~4.38 um/px).
 */
const ST_ARRAYS: readonly LatticeKind[] = ['st1k', 'st2k'];

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
  const nested = await Promise.all((await subfolders(dir)).map((name) => scanFolder(join(dir, name))));
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

async function scanFolder(dir: string): Promise<Found[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const files = entries.filter((e) => e.isFile()).map((e) => join(dir, e.name));
  const roles = await Promise.all(files.map((f) => classifyFile(f).catch(() => null)));
  return files.flatMap((path, i) => (roles[i] ? [{ ...roles[i], path }] : []));
}

async function classifyFile(path: string): Promise<FileRole | null> {
  if (SCALEFACTORS_NAME.test(basename(path))) return { role: 'scalefactors' };
  const head = await readBytes(path, 0, 16);
  // Named like an image but not one: claim it anyway, so reading says what is wrong instead of dropping the H&E.
  if (imageFormat(head) || IMAGE_NAME.test(basename(path))) return { role: 'image' };
  if (!TABLE_NAME.test(basename(path))) return null;
  const lines = await readHeadLines(path, 2);
  return lines ? classifyTable(lines) : null;
}

/** Columns of derived per-spot tables (STUtility's merged/ tables): such tables are neither counts nor labels. */
const DERIVED_TABLE_COLUMNS = new Set([
  'array_x', 'array_y', 'array_row', 'array_col', 'pixel_x', 'pixel_y', 'pixel_x_image', 'pixel_y_image',
  'x', 'y', 'selected', 'in_tissue', 'total_counts',
]); // prettier-ignore

/** What a table is, from its header and its first row. */
function classifyTable(lines: string[]): FileRole | null {
  const header = splitLine(lines[0]);
  const lower = header.map((h) => h.trim().toLowerCase());
  if (['x', 'y', 'pixel_x', 'pixel_y'].every((c) => lower.includes(c))) return { role: 'spots' };
  if (lower.includes('gene_id') && lower.includes('gene_name')) return { role: 'genes' };
  if (lower.some((h) => DERIVED_TABLE_COLUMNS.has(h))) return null;
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
    files.scalefactors ? readScalefactors(files.scalefactors) : Promise.resolve<Scalefactors>({}),
    files.genes ? readGeneMap(files.genes) : Promise.resolve(null),
  ]);
  const warnings: string[] = [];
  const joined = joinPositions(matrix, spotTable, warnings);
  const kind = latticeKind(spotTable, ST_ARRAYS) ?? ST_ARRAYS[0];
  const micronsPerPixel = pixelSize(scalefactors, kind, spotTable, files, warnings);
  const spotDiameterMicrons = scalefactors.spot_diameter_um ?? LATTICES[kind].spotDiameter;
  const spotSpacingMicrons = scalefactors.spot_spacing_um ?? LATTICES[kind].spacing;
  const image = files.image ? await readImage(files.image, scalefactors.tissue_hires_scalef ?? 1) : null;
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

/** The table as spot columns: x, y = pixel_x, pixel_y; inTissue = selected; array row, col = round(y), round(x). */
interface SpotRows extends PositionColumns {
  readonly file: string;
  /** `round(x)xround(y)` -> row */
  readonly byKey: Map<string, number>;
}

async function readSpotTable(file: string): Promise<SpotRows> {
  const table = parseTsv(await readText(file), file);
  const column = (name: string) => table.header.findIndex((h) => h.trim().toLowerCase() === name);
  const cols = { x: column('x'), y: column('y'), px: column('pixel_x'), py: column('pixel_y') };
  const selectedCol = column('selected');
  if (Object.values(cols).some((c) => c < 0))
    throw new DataError(file, 'not a Spot Detector table: needs columns x, y, pixel_x, pixel_y');
  const n = table.rows.length;
  const rows: SpotRows = {
    file,
    byKey: new Map<string, number>(),
    x: new Float64Array(n),
    y: new Float64Array(n),
    inTissue: new Uint8Array(n).fill(1),
    arrayRow: new Float64Array(n),
    arrayCol: new Float64Array(n),
  };
  table.rows.forEach((row, i) => {
    const line = table.lines[i];
    rows.arrayCol[i] = Math.round(numberAt(row, cols.x, file, line, 'x'));
    rows.arrayRow[i] = Math.round(numberAt(row, cols.y, file, line, 'y'));
    rows.x[i] = numberAt(row, cols.px, file, line, 'pixel_x');
    rows.y[i] = numberAt(row, cols.py, file, line, 'pixel_y');
    if (selectedCol >= 0) rows.inTissue[i] = isSelected(row[selectedCol]) ? 1 : 0;
  });
  const keys = Array.from(rows.arrayCol, (x, i) => `${x}x${rows.arrayRow[i]}`);
  checkUnique(keys, 'spot', (a, b) => `lines ${table.lines[a]} and ${table.lines[b]}`, file);
  keys.forEach((key, i) => rows.byKey.set(key, i));
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
  checkUnique(spotIds, 'spot id', (a, b) => `${spotPlace[a]} and ${spotPlace[b]}`, file);
  const counts = await readingFile(file, 'invalid counts', () =>
    role.spotsAsRows
      ? SparseCounts.fromCsr(rowNames.length, colNames.length, parsed.indptr, parsed.index, parsed.data)
      : SparseCounts.fromCsc(colNames.length, rowNames.length, parsed.indptr, parsed.index, parsed.data),
  );
  return { file, spotIds, genes, counts, spotPlace };
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

function joinPositions(
  matrix: CountsMatrix,
  rows: SpotRows,
  warnings: string[],
): { spots: SpotTable; counts: SparseCounts } {
  const joined = joinSpots(matrix.spotIds, matrix.counts, rows, (id) => rows.byKey.get(spotKey(id)));
  const countsName = basename(matrix.file);
  const spotsName = basename(rows.file);
  if (joined.spots.ids.length === 0) {
    throw new DataError(
      matrix.file,
      `no spot ids in common with ${spotsName} (counts ids such as ${matrix.spotIds[0]}; ` +
        `table positions such as ${rows.byKey.keys().next().value ?? 'none'})`,
    );
  }
  const dropped = matrix.spotIds.length - joined.spots.ids.length;
  if (dropped > 0) {
    warnings.push(
      `${dropped} of ${matrix.spotIds.length} spots in ${countsName} have no position in ${spotsName} and were dropped`,
    );
  }
  return joined;
}

/** Counts ids may carry adjusted float coordinates; the Spot Detector table is joined on the rounded array position. */
function spotKey(id: string): string {
  const [x, y] = id.split('x');
  return `${Math.round(Number(x))}x${Math.round(Number(y))}`;
}

// --- Lattice and pixel size

/**
 * Full-resolution pixels per array unit, from immediate lattice neighbours (1k: one unit along x or y; 2k: one
 * diagonal step), median over all pairs to shrug off the odd badly fitted spot; null with no neighbours. Not
 * latticePixelSize, which also pairs spots across gaps: its MOB pixel sizes differ by up to 0.3%.
 */
function pixelsPerUnit(rows: SpotRows, kind: LatticeKind): number | null {
  const steps =
    kind === 'st2k'
      ? [
          [1, 1],
          [1, -1],
        ]
      : [
          [1, 0],
          [0, 1],
        ];
  const ratios: number[] = [];
  for (let i = 0; i < rows.x.length; i++) {
    for (const [dx, dy] of steps) {
      const j = rows.byKey.get(`${rows.arrayCol[i] + dx}x${rows.arrayRow[i] + dy}`);
      if (j === undefined) continue;
      const pixels = Math.hypot(rows.x[j] - rows.x[i], rows.y[j] - rows.y[i]);
      ratios.push(pixels / Math.hypot(dx, dy));
    }
  }
  return ratios.length ? median(ratios) : null;
}

/** microns_per_pixel_fullres when given (warning when the lattice disagrees), else measured on the lattice. */
function pixelSize(
  sf: Scalefactors,
  kind: LatticeKind,
  rows: SpotRows,
  files: SectionFiles,
  warnings: string[],
): number {
  // One array unit spans LATTICES[kind].row microns (row and column steps are equal on both ST arrays).
  const perUnit = pixelsPerUnit(rows, kind);
  const fromLattice = perUnit ? LATTICES[kind].row / perUnit : null;
  const given = sf.microns_per_pixel_fullres;
  if (given) {
    if (fromLattice && Math.abs(fromLattice / given - 1) > 0.1) {
      warnings.push(
        `microns_per_pixel_fullres ${given} disagrees with the ${kind === 'st2k' ? '2k' : '1k'} array lattice ` +
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

// --- Scale factors, genes, labels

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
    // Not checkUnique: an id that equals an earlier row's rounded alias is a duplicate too.
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
    const column = rowOf.map((r) => (r === undefined ? null : labelValue(table.rows[r][k + 1])));
    // A column with no value on this section's spots (B4's pathologist column) is no label column for it.
    if (hasLabels(column)) labels.set(name.trim(), column);
  });
  return labels;
}

// --- Image

type ImageFile = Extract<SectionImage, { kind: 'file' }>;

async function readImage(file: string, scale: number): Promise<ImageFile> {
  const { width, height } = await inspectImage(file);
  return { kind: 'file', path: file, width, height, scale };
}

/** In-tissue spots must lie on the image (a spot radius of slack); off-tissue ones only earn a warning. */
function checkSpotsInImage(
  spots: SpotTable,
  image: ImageFile,
  radiusFullres: number,
  files: SectionFiles,
  warnings: string[],
): void {
  const outside = spotsOutsideImage(spots, image, radiusFullres * image.scale);
  const inTissue = outside.filter((i) => spots.inTissue[i]);
  const offTissue = outside.length - inTissue.length;
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
// Text tables

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
