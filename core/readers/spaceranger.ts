// Space Ranger `outs/` (Visium v1/v2, docs §3.1): a 10x feature-barcode matrix (HDF5 or Matrix Market), spot
// positions and scale factors in spatial/, the H&E as downsized PNGs. A folder may be an outs/ folder, hold one, or
// hold several sample folders each with its outs/.
// The HDF5 access and spot-lattice helpers at the end are shared with the AnnData reader.

import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import h5wasm from 'h5wasm/node';
import type { Dataset, File as H5File, Group } from 'h5wasm/node';
import sharp from 'sharp';
import type { GeneTable, LabelColumn, Section, SectionImage, SpotTable } from '../section/section.js';
import { SparseCounts } from '../section/sparse-counts.js';
import { DataError, readingFile } from './errors.js';
import type { SectionReader, SectionSource } from './reader.js';

const gunzip = promisify(zlib.gunzip);

/** Visium geometry (docs §3.9): 55 um spots, 100 um apart; `spot_diameter_fullres` is a theoretical 65 um circle. */
const VISIUM = { spotDiameter: 55, spacing: 100, nominalDiameter: 65 } as const;
/** `<kind>_feature_bc_matrix.h5` or the `<kind>_feature_bc_matrix/` Matrix Market folder, filtered first. */
const MATRIX_KINDS = ['filtered', 'raw'] as const;
/** Space Ranger >= 2.0 writes the first (with a header), older versions the second (usually without). */
const POSITION_FILES = ['tissue_positions.csv', 'tissue_positions_list.csv'];
const POSITION_COLUMNS = [
  'barcode',
  'in_tissue',
  'array_row',
  'array_col',
  'pxl_row_in_fullres',
  'pxl_col_in_fullres',
] as const;
const IMAGES = [
  { file: 'tissue_hires_image.png', scalef: 'tissue_hires_scalef' },
  { file: 'tissue_lowres_image.png', scalef: 'tissue_lowres_scalef' },
] as const;
const GENE_EXPRESSION = 'Gene Expression';

interface MatrixLocation {
  kind: 'h5' | 'mex';
  path: string;
}

/** A count matrix with barcodes as rows (spots), whatever its file layout. */
interface MatrixData {
  file: string;
  barcodes: string[];
  genes: GeneTable;
  counts: SparseCounts;
}

interface Positions {
  file: string;
  ids: string[];
  index: Map<string, number>;
  inTissue: Uint8Array;
  row: Float64Array;
  col: Float64Array;
  x: Float64Array;
  y: Float64Array;
}

type Scalefactors = Readonly<Record<string, number>>;

export const spaceRangerReader: SectionReader = { format: 'spaceranger', detect, read };

// ---------------------------------------------------------------------------------------------------------------
// Detection

async function detect(path: string): Promise<SectionSource[]> {
  if (!(await isDirectory(path))) return [];
  const here = await sampleAt(path);
  if (here) return [here];
  // A folder of Space Ranger sample folders (section1/outs, section2/outs, ...). Other subfolders are left to the
  // caller's search of collections, so that a folder of assorted data is not claimed for the samples alone.
  const found: SectionSource[] = [];
  for (const name of await subfolders(path)) {
    const outs = join(path, name, 'outs');
    const sample = (await isDirectory(outs)) ? await sampleAt(outs) : null;
    if (sample) found.push(sample);
  }
  return found;
}

/** The sample whose outs/ folder is `dir` itself or `dir/outs`, or null. */
async function sampleAt(dir: string): Promise<SectionSource | null> {
  for (const outs of [dir, join(dir, 'outs')]) {
    if (!(await isDirectory(join(outs, 'spatial')))) continue;
    const matrix = await findMatrix(outs);
    if (matrix) {
      return {
        format: 'spaceranger',
        name: sampleName(outs),
        path: outs,
        hints: { matrix: matrix.path, kind: matrix.kind },
      };
    }
  }
  return null;
}

function sampleName(outs: string): string {
  return basename(outs) === 'outs' ? basename(dirname(outs)) : basename(outs);
}

/**
 * The count matrix of an outs/ folder, filtered before raw: an HDF5 file (recognised by its signature; GEO
 * downloads prefix the name with the sample), else the Matrix Market folder. An `.h5` without the signature is
 * still returned last, so that `read` can say what is wrong with it.
 */
async function findMatrix(outs: string): Promise<MatrixLocation | null> {
  const names = (await readdir(outs).catch(() => [] as string[])).sort();
  const h5Files: string[] = [];
  for (const kind of MATRIX_KINDS) {
    const h5 = names.filter((n) => n.endsWith(`${kind}_feature_bc_matrix.h5`)).map((n) => join(outs, n));
    h5Files.push(...h5);
    for (const file of h5) if (await isHdf5(file)) return { kind: 'h5', path: file };
    const mex = join(outs, `${kind}_feature_bc_matrix`);
    if (await isDirectory(mex)) return { kind: 'mex', path: mex };
  }
  return h5Files.length > 0 ? { kind: 'h5', path: h5Files[0] } : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

async function read(source: SectionSource): Promise<Section> {
  const outs = source.path;
  const matrix = source.hints?.matrix
    ? { kind: source.hints.kind === 'mex' ? 'mex' : 'h5', path: source.hints.matrix }
    : await findMatrix(outs);
  if (!matrix) {
    throw new DataError(outs, 'no count matrix: expected filtered_feature_bc_matrix.h5 or a Matrix Market folder');
  }
  const data = matrix.kind === 'h5' ? await readH5Matrix(matrix.path) : await readMex(matrix.path);
  const spatial = join(outs, 'spatial');
  const positions = await readPositions(spatial);
  const warnings: string[] = [];
  const scalefactors = await readScalefactors(join(spatial, 'scalefactors_json.json'), warnings);
  const { spots, counts } = joinSpots(data, positions, warnings);
  const micronsPerPixel = visiumPixelSize(positions, scalefactors, warnings);
  const image = await chooseImage(spatial, scalefactors, spots, positions.file, micronsPerPixel, warnings);
  const labels = await readClusters(outs, spots.ids, warnings);
  return {
    name: source.name,
    format: 'spaceranger',
    source: outs,
    spots,
    genes: data.genes,
    counts,
    image,
    micronsPerPixel,
    spotDiameterMicrons: VISIUM.spotDiameter,
    spotSpacingMicrons: VISIUM.spacing,
    labels,
    warnings,
  };
}

/** Spots = matrix barcodes that have a position, in matrix order. */
function joinSpots(
  data: MatrixData,
  positions: Positions,
  warnings: string[],
): { spots: SpotTable; counts: SparseCounts } {
  const keep: number[] = [];
  const rows: number[] = [];
  data.barcodes.forEach((barcode, i) => {
    const row = positions.index.get(barcode);
    if (row === undefined) return;
    keep.push(i);
    rows.push(row);
  });
  if (keep.length === 0) {
    throw new DataError(
      positions.file,
      `no barcode in common with ${data.file} (it has e.g. ${data.barcodes[0] ?? 'none'}, this file ${positions.ids[0]})`,
    );
  }
  const dropped = data.barcodes.length - keep.length;
  if (dropped > 0) {
    warnings.push(
      `${dropped} of ${data.barcodes.length} barcodes of ${basename(data.file)} have no position in ` +
        `${basename(positions.file)} and were left out`,
    );
  }
  const pick = (column: Float64Array) => Float64Array.from(rows, (r) => column[r]);
  const spots: SpotTable = {
    ids: keep.map((i) => data.barcodes[i]),
    x: pick(positions.x),
    y: pick(positions.y),
    inTissue: Uint8Array.from(rows, (r) => positions.inTissue[r]),
    arrayRow: pick(positions.row),
    arrayCol: pick(positions.col),
  };
  return { spots, counts: dropped > 0 ? data.counts.select(keep) : data.counts };
}

// ---------------------------------------------------------------------------------------------------------------
// Count matrix: 10x HDF5

/** 10x `.h5`: CSC over features x barcodes, i.e. one contiguous chunk per barcode = CSR over spots. */
async function readH5Matrix(file: string): Promise<MatrixData> {
  return withHdf5(file, 'reading the count matrix', (f) => {
    const m = matrixGroup(f);
    const barcodes = stringsAt(m, 'barcodes');
    checkUnique(barcodes, 'barcode');
    const features = featuresOf(m);
    const shape = Array.from(numbersAt(m, 'shape'), Number);
    if (shape.length !== 2 || shape[0] !== features.ids.length || shape[1] !== barcodes.length) {
      throw new Error(
        `shape ${shape.join(' x ')} does not match ${features.ids.length} features x ${barcodes.length} barcodes`,
      );
    }
    const chunks = { indptr: numbersAt(m, 'indptr'), index: numbersAt(m, 'indices'), data: numbersAt(m, 'data') };
    return { file, barcodes, ...geneExpressionOnly(features, barcodes.length, chunks) };
  });
}

/** `matrix` (Cell Ranger >= 3), or the one genome group of the older layout (`GRCh38/genes`, `gene_names`). */
function matrixGroup(f: H5File): Group {
  const matrix = f.get('matrix');
  if (matrix instanceof h5wasm.Group) return matrix;
  for (const key of f.keys()) {
    const group = f.get(key);
    if (group instanceof h5wasm.Group && group.keys().includes('barcodes') && group.keys().includes('genes')) {
      return group;
    }
  }
  throw new Error('no "matrix" group: this is not a 10x feature-barcode matrix');
}

interface Features {
  ids: string[];
  names: string[];
  types: string[] | null;
}

function featuresOf(m: Group): Features {
  if (m.get('features') instanceof h5wasm.Group) {
    const types = m.get('features/feature_type') ? stringsAt(m, 'features/feature_type') : null;
    return { ids: stringsAt(m, 'features/id'), names: stringsAt(m, 'features/name'), types };
  }
  return { ids: stringsAt(m, 'genes'), names: stringsAt(m, 'gene_names'), types: null };
}

type Index = ArrayLike<number | bigint>;

/**
 * Keeps 'Gene Expression' features only (antibody capture and probe controls are no genes), then builds the
 * spots x genes matrix from per-barcode chunks. SparseCounts throws plain Errors: the caller names the file.
 */
function geneExpressionOnly(
  features: Features,
  nSpots: number,
  chunks: { indptr: Index; index: Index; data: Index },
): { genes: GeneTable; counts: SparseCounts } {
  const kept = features.ids.flatMap((_, i) => (!features.types || features.types[i] === GENE_EXPRESSION ? [i] : []));
  if (kept.length === 0) throw new Error(`no "${GENE_EXPRESSION}" features`);
  const genes: GeneTable = {
    symbols: kept.map((i) => features.names[i] || features.ids[i]),
    ids: kept.map((i) => features.ids[i] || null),
  };
  if (kept.length === features.ids.length) {
    return { genes, counts: SparseCounts.fromCsr(nSpots, kept.length, chunks.indptr, chunks.index, chunks.data) };
  }
  const newIndex = new Int32Array(features.ids.length).fill(-1);
  kept.forEach((old, i) => (newIndex[old] = i));
  const indptr = new Float64Array(nSpots + 1);
  const index: number[] = [];
  const data: number[] = [];
  for (let s = 0; s < nSpots; s++) {
    for (let k = Number(chunks.indptr[s]); k < Number(chunks.indptr[s + 1]); k++) {
      const gene = newIndex[Number(chunks.index[k])];
      if (gene === undefined) throw new Error(`feature index ${chunks.index[k]} out of range`);
      if (gene < 0) continue;
      index.push(gene);
      data.push(Number(chunks.data[k]));
    }
    indptr[s + 1] = index.length;
  }
  return { genes, counts: SparseCounts.fromCsr(nSpots, kept.length, indptr, index, data) };
}

// ---------------------------------------------------------------------------------------------------------------
// Count matrix: Matrix Market folder (matrix.mtx, barcodes.tsv, features.tsv or genes.tsv, each maybe gzipped)

async function readMex(dir: string): Promise<MatrixData> {
  const matrixFile = await required(dir, ['matrix.mtx.gz', 'matrix.mtx']);
  const barcodeFile = await required(dir, ['barcodes.tsv.gz', 'barcodes.tsv']);
  const featureFile = await required(dir, ['features.tsv.gz', 'features.tsv', 'genes.tsv.gz', 'genes.tsv']);
  const barcodes = nonEmptyLines(await readText(barcodeFile)).map((line) => line.split('\t')[0]);
  await readingFile(barcodeFile, 'bad barcode list', () => checkUnique(barcodes, 'barcode'));
  const features = parseFeatures(await readText(featureFile));
  const text = await readText(matrixFile);
  return readingFile(matrixFile, 'bad Matrix Market file', () => {
    const chunks = parseMtx(text, features.ids.length, barcodes.length);
    return { file: matrixFile, barcodes, ...geneExpressionOnly(features, barcodes.length, chunks) };
  });
}

async function required(dir: string, names: string[]): Promise<string> {
  const file = await firstExisting(dir, names);
  if (!file) throw new DataError(join(dir, names[names.length - 1]), `missing (looked for ${names.join(', ')})`);
  return file;
}

/** features.tsv: id, name, type; genes.tsv (Cell Ranger 2): id, name. */
function parseFeatures(text: string): Features {
  const rows = nonEmptyLines(text).map((line) => line.split('\t'));
  const hasTypes = rows.every((r) => r.length >= 3);
  return {
    ids: rows.map((r) => r[0]),
    names: rows.map((r) => r[1] ?? r[0]),
    types: hasTypes ? rows.map((r) => r[2]) : null,
  };
}

/** Coordinate format over features x barcodes (1-based), regrouped into one chunk per barcode. */
function parseMtx(text: string, nFeatures: number, nBarcodes: number): { indptr: Index; index: Index; data: Index } {
  const lines = text.split('\n');
  const header = lines[0] ?? '';
  const format = /^%%MatrixMarket\s+matrix\s+coordinate\s+(integer|real|pattern)\s+general/i.exec(header);
  if (!format) throw new Error(`not a Matrix Market coordinate matrix (header "${header.slice(0, 60)}")`);
  const pattern = format[1].toLowerCase() === 'pattern';
  let at = 1;
  while (at < lines.length && lines[at].startsWith('%')) at++;
  const [nRows, nCols, nnz] = (lines[at++] ?? '').trim().split(/\s+/).map(Number);
  if (!Number.isInteger(nnz) || nnz < 0) throw new Error(`line ${at}: bad size line (rows, columns, entries)`);
  if (nRows !== nFeatures || nCols !== nBarcodes) {
    throw new Error(`size ${nRows} x ${nCols} does not match ${nFeatures} features x ${nBarcodes} barcodes`);
  }
  const feature = new Int32Array(nnz);
  const barcode = new Int32Array(nnz);
  const value = new Float64Array(nnz);
  let k = 0;
  for (; at < lines.length; at++) {
    const line = lines[at].trim();
    if (line === '') continue;
    if (k >= nnz) throw new Error(`more entries than the ${nnz} the header announces (line ${at + 1})`);
    const cells = line.split(/\s+/);
    const r = Number(cells[0]);
    const c = Number(cells[1]);
    if (!(Number.isInteger(r) && r >= 1 && r <= nRows && Number.isInteger(c) && c >= 1 && c <= nCols)) {
      throw new Error(`line ${at + 1}: entry "${line}" lies outside the ${nRows} x ${nCols} matrix`);
    }
    feature[k] = r - 1;
    barcode[k] = c - 1;
    value[k] = pattern ? 1 : Number(cells[2]);
    k++;
  }
  if (k < nnz) throw new Error(`truncated: ${k} of the ${nnz} entries the header announces`);
  return groupByBarcode(nBarcodes, feature, barcode, value);
}

/** Counting sort of coordinate entries into per-barcode chunks, O(nnz). */
function groupByBarcode(nBarcodes: number, feature: Int32Array, barcode: Int32Array, value: Float64Array) {
  const indptr = new Float64Array(nBarcodes + 1);
  for (const b of barcode) indptr[b + 1]++;
  for (let b = 0; b < nBarcodes; b++) indptr[b + 1] += indptr[b];
  const next = indptr.slice(0, nBarcodes);
  const index = new Int32Array(feature.length);
  const data = new Float64Array(feature.length);
  for (let k = 0; k < feature.length; k++) {
    const at = next[barcode[k]]++;
    index[at] = feature[k];
    data[at] = value[k];
  }
  return { indptr, index, data };
}

// ---------------------------------------------------------------------------------------------------------------
// spatial/: positions, scale factors, images

async function readPositions(spatial: string): Promise<Positions> {
  const file = await firstExisting(spatial, POSITION_FILES);
  if (!file) {
    if (await firstExisting(spatial, ['tissue_positions.parquet'])) {
      throw new DataError(join(spatial, 'tissue_positions.parquet'), 'Visium HD positions (parquet) are not supported');
    }
    throw new DataError(join(spatial, POSITION_FILES[0]), `missing: spatial/ has no ${POSITION_FILES.join(' or ')}`);
  }
  const rows = csvRows(await readText(file));
  // Header or not: squidpy's rule, the first cell is "barcode" (docs §3.1).
  const hasHeader = rows.length > 0 && rows[0].cells[0] === 'barcode';
  const columns = hasHeader ? headerColumns(rows[0].cells, file) : POSITION_COLUMNS.map((_, i) => i);
  const body = hasHeader ? rows.slice(1) : rows;
  if (body.length === 0) throw new DataError(file, 'no spots');
  const n = body.length;
  const p: Positions = {
    file,
    ids: [],
    index: new Map(),
    inTissue: new Uint8Array(n),
    row: new Float64Array(n),
    col: new Float64Array(n),
    x: new Float64Array(n),
    y: new Float64Array(n),
  };
  body.forEach(({ line, cells }, i) => {
    if (cells.length < POSITION_COLUMNS.length) {
      throw new DataError(file, `line ${line}: ${cells.length} columns, expected ${POSITION_COLUMNS.length}`);
    }
    const num = (c: number) => numberCell(cells[columns[c]], file, line, POSITION_COLUMNS[c]);
    const id = cells[columns[0]];
    const seen = p.index.get(id);
    if (seen !== undefined) {
      throw new DataError(file, `barcode ${id} appears twice (lines ${body[seen].line} and ${line})`);
    }
    p.index.set(id, i);
    p.ids.push(id);
    p.inTissue[i] = num(1) ? 1 : 0;
    p.row[i] = num(2);
    p.col[i] = num(3);
    p.y[i] = num(4); // pxl_row_in_fullres is y, pxl_col_in_fullres is x
    p.x[i] = num(5);
  });
  return p;
}

function headerColumns(header: string[], file: string): number[] {
  return POSITION_COLUMNS.map((name) => {
    const at = header.indexOf(name);
    if (at < 0) throw new DataError(file, `header has no "${name}" column`);
    return at;
  });
}

function numberCell(cell: string, file: string, line: number, name: string): number {
  const value = cell.trim() === '' ? NaN : Number(cell);
  if (!Number.isFinite(value)) throw new DataError(file, `line ${line}: ${name} is not a number ("${cell}")`);
  return value;
}

async function readScalefactors(file: string, warnings: string[]): Promise<Scalefactors> {
  if (!(await isFile(file))) {
    warnings.push(`${basename(file)} is missing: no image scale and no spot size in pixels`);
    return {};
  }
  const text = await readText(file);
  const json = await readingFile(file, 'not valid JSON', () => JSON.parse(text) as unknown);
  if (!json || typeof json !== 'object') throw new DataError(file, 'expected a JSON object of scale factors');
  return Object.fromEntries(
    Object.entries(json).filter(([, v]) => typeof v === 'number' && Number.isFinite(v) && v > 0),
  ) as Scalefactors;
}

/** Microns per full-resolution pixel: explicit (Space Ranger HD) > spot lattice > 65 / spot_diameter_fullres. */
function visiumPixelSize(p: Positions, sf: Scalefactors, warnings: string[]): number | null {
  if (sf.microns_per_pixel) return sf.microns_per_pixel;
  const lattice = latticePixelSize('hex', p.row, p.col, p.x, p.y);
  const nominal = sf.spot_diameter_fullres ? VISIUM.nominalDiameter / sf.spot_diameter_fullres : null;
  crossCheckPixelSize(lattice, nominal, 'spot_diameter_fullres', warnings);
  return lattice ?? nominal;
}

/**
 * Hires PNG (scale tissue_hires_scalef), else lowres. A blank placeholder (one flat colour) or an image the spots
 * do not fit on is passed over with a warning; spots that fit on no image are a DataError about the positions.
 */
async function chooseImage(
  spatial: string,
  sf: Scalefactors,
  spots: SpotTable,
  positionsFile: string,
  micronsPerPixel: number | null,
  warnings: string[],
): Promise<SectionImage | null> {
  const radius = sf.spot_diameter_fullres
    ? sf.spot_diameter_fullres / 2
    : micronsPerPixel
      ? VISIUM.spotDiameter / micronsPerPixel / 2
      : 0;
  let outside: DataError | null = null;
  for (const { file, scalef } of IMAGES) {
    const path = join(spatial, file);
    if (!(await isFile(path))) continue;
    const scale = sf[scalef];
    if (!scale) {
      warnings.push(`${file} is not used: scalefactors_json.json has no ${scalef}`);
      continue;
    }
    const info = await inspectImage(path);
    if (info.blank) {
      warnings.push(`${file} is blank (a single flat colour, a placeholder) and is not used`);
      continue;
    }
    const problem = spotOutsideImage(spots, info.width, info.height, scale, radius * scale + 1);
    if (problem) {
      outside ??= new DataError(
        positionsFile,
        `${problem} ${file} (${info.width} x ${info.height} px, scale ${scale})`,
      );
      warnings.push(`${file} is not used: ${problem} it`);
      continue;
    }
    return { kind: 'file', path, width: info.width, height: info.height, scale };
  }
  if (outside) throw outside;
  warnings.push('no usable tissue image in spatial/: spots are shown without H&E');
  return null;
}

/** Size from the header; a full decode (stats) both catches truncated files and tells a blank placeholder. */
async function inspectImage(path: string): Promise<{ width: number; height: number; blank: boolean }> {
  return readingFile(path, 'cannot decode the image (truncated or corrupt?)', async () => {
    const meta = await sharp(path).metadata();
    const stats = await sharp(path).stats();
    const colour = meta.hasAlpha ? stats.channels.slice(0, -1) : stats.channels;
    const blank = colour.every((c) => c.stdev < FLAT_STDEV);
    if (!meta.width || !meta.height) throw new Error('no image size in the header');
    return { width: meta.width, height: meta.height, blank };
  });
}

/** Below this standard deviation (of 0..255 values) in every colour channel an image is one flat colour. */
export const FLAT_STDEV = 2;

/** Space Ranger's own clusterings (analysis/clustering/<method>/clusters.csv), when present: optional extras. */
async function readClusters(
  outs: string,
  ids: readonly string[],
  warnings: string[],
): Promise<Map<string, LabelColumn>> {
  const labels = new Map<string, LabelColumn>();
  const root = join(outs, 'analysis', 'clustering');
  for (const method of await subfolders(root)) {
    const file = join(root, method, 'clusters.csv');
    if (!(await isFile(file))) continue;
    try {
      const rows = csvRows(await readText(file)).slice(1);
      const byBarcode = new Map(rows.map((r) => [r.cells[0], r.cells[1] ?? null] as const));
      labels.set(
        method.replace(/^gene_expression_/, ''),
        ids.map((id) => byBarcode.get(id) ?? null),
      );
    } catch (error) {
      warnings.push(`${file} was not read: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return labels;
}

// ---------------------------------------------------------------------------------------------------------------
// Small file helpers

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() ?? false;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isFile() ?? false;
}

async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

async function firstExisting(dir: string, names: readonly string[]): Promise<string | null> {
  for (const name of names) if (await isFile(join(dir, name))) return join(dir, name);
  return null;
}

/** A text file, gunzipped when it starts with the gzip magic (whatever its name). */
async function readText(file: string): Promise<string> {
  const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new DataError(file, error.code === 'ENOENT' ? 'file not found' : `cannot read: ${error.message}`);
  });
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes.toString('utf8');
  const plain = await readingFile(file, 'cannot decompress (truncated or corrupt gzip?)', () => gunzip(bytes));
  return plain.toString('utf8');
}

function nonEmptyLines(text: string): string[] {
  return text.split(/\r?\n/).filter((line) => line.trim() !== '');
}

/** Plain CSV as Space Ranger writes it (no embedded commas); quotes around cells are dropped. Lines are 1-based. */
function csvRows(text: string): { line: number; cells: string[] }[] {
  return text
    .split(/\r?\n/)
    .map((line, i) => ({ line: i + 1, cells: line.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1')) }))
    .filter((row) => row.cells.length > 1 || row.cells[0] !== '');
}

// ---------------------------------------------------------------------------------------------------------------
// Shared with anndata.ts: HDF5 access that turns every failure into a DataError

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Offset of the HDF5 superblock (0, 512, 1024, ... as a user block allows), or -1 when the file is no HDF5. */
async function superblockOffset(file: string): Promise<number> {
  const handle = await open(file, 'r').catch(() => null);
  if (!handle) return -1;
  try {
    const { size } = await handle.stat();
    const probe = Buffer.alloc(HDF5_SIGNATURE.length);
    for (let offset = 0; offset + probe.length <= size; offset = offset === 0 ? 512 : offset * 2) {
      await handle.read(probe, 0, probe.length, offset);
      if (probe.equals(HDF5_SIGNATURE)) return offset;
    }
    return -1;
  } finally {
    await handle.close();
  }
}

/** Content check (signature bytes), not a name check. */
export async function isHdf5(file: string): Promise<boolean> {
  return (await isFile(file)) && (await superblockOffset(file)) >= 0;
}

/**
 * Checks what h5wasm handles badly before opening: a missing file, no HDF5 signature, and truncation (the
 * superblock records the end-of-file address; a copy cut short is smaller).
 */
async function checkHdf5File(file: string): Promise<void> {
  const info = await stat(file).catch(() => null);
  if (!info) throw new DataError(file, 'file not found');
  if (!info.isFile()) throw new DataError(file, 'is a folder, expected an HDF5 file');
  const offset = await superblockOffset(file);
  if (offset < 0) throw new DataError(file, 'not an HDF5 file (no HDF5 signature): damaged, or another format');
  const end = await storedEndOfFile(file, offset);
  if (end !== null && info.size < end) {
    throw new DataError(file, `truncated: ${info.size} bytes on disk, but its HDF5 header says ${end}`);
  }
}

/** base address + end-of-file address from superblock versions 0-3, or null when it cannot tell. */
async function storedEndOfFile(file: string, offset: number): Promise<number | null> {
  const handle = await open(file, 'r');
  try {
    const sb = Buffer.alloc(64);
    const { bytesRead } = await handle.read(sb, 0, sb.length, offset);
    const version = sb[8];
    const sizeOfOffsets = version <= 1 ? sb[13] : sb[9];
    const base = version === 0 ? 24 : version === 1 ? 28 : 12;
    if (sizeOfOffsets !== 8 || version > 3 || base + 3 * 8 > bytesRead) return null;
    const baseAddress = sb.readBigUInt64LE(base);
    const eof = sb.readBigUInt64LE(base + 16); // after the base address and one more address
    if (eof === 0xffffffffffffffffn) return null;
    return Number(baseAddress + eof);
  } finally {
    await handle.close();
  }
}

let throwingErrors = false;

/**
 * Opens an HDF5 file read-only and runs `use` on it; any failure (HDF5 errors, h5wasm aborts on damaged files,
 * plain Errors from the model) becomes a DataError naming the file. The file is always closed.
 */
export async function withHdf5<T>(file: string, what: string, use: (f: H5File) => T): Promise<T> {
  await checkHdf5File(file);
  const module = await h5wasm.ready;
  if (!throwingErrors) {
    // HDF5 errors become exceptions instead of HDF5-DIAG lines on stderr and garbage reads.
    module.activate_throwing_error_handler();
    throwingErrors = true;
  }
  let f: H5File;
  try {
    f = new h5wasm.File(file, 'r');
  } catch (error) {
    throw new DataError(file, `cannot open the HDF5 file: ${hdf5Reason(error)}`, { cause: error });
  }
  try {
    return await readingFile(file, what, () => {
      try {
        return use(f);
      } catch (error) {
        if (error instanceof DataError) throw error;
        throw new Error(hdf5Reason(error), { cause: error });
      }
    });
  } finally {
    try {
      f.close();
    } catch {
      // A file the library choked on may not close cleanly; there is nothing left to release.
    }
  }
}

/** The root cause from an HDF5-DIAG error stack (its innermost frame), or the message of any other error. */
function hdf5Reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // h5wasm's abort() and wasm memory faults on damaged files surface as WebAssembly RuntimeErrors.
  if (error instanceof Error && error.name === 'RuntimeError')
    return `damaged HDF5 file (the HDF5 library failed: ${message})`;
  if (!message.includes('HDF5-DIAG')) return message;
  const frames = [...message.matchAll(/#\d+:.*?\(\): (.*)$/gm)];
  return `HDF5 error: ${frames.length > 0 ? frames[frames.length - 1][1].trim() : message.split('\n')[0]}`;
}

/** A dataset at `path` under `g`; throws when missing or a group. */
export function datasetAt(g: Group, path: string): Dataset {
  const entity = g.get(path);
  if (!(entity instanceof h5wasm.Dataset))
    throw new Error(`${joinPath(g, path)} is ${entity ? 'not a dataset' : 'missing'}`);
  return entity;
}

/** Numeric values of a dataset (BigInt arrays for 64-bit integers, as h5wasm gives them). */
export function numbersAt(g: Group, path: string): ArrayLike<number> | ArrayLike<bigint> {
  const value = datasetAt(g, path).value;
  if (typeof value === 'number' || typeof value === 'bigint') return [value] as number[] | bigint[];
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return value as ArrayLike<number> | ArrayLike<bigint>;
  throw new Error(`${joinPath(g, path)} is not numeric`);
}

export function stringsAt(g: Group, path: string): string[] {
  const value = datasetAt(g, path).value;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new Error(`${joinPath(g, path)} is not a list of strings`);
}

function joinPath(g: Group, path: string): string {
  return `${g.path === '/' ? '' : g.path}/${path}`;
}

/** Throws naming the first id that appears twice. */
export function checkUnique(ids: readonly string[], what: string): void {
  const seen = new Map<string, number>();
  ids.forEach((id, i) => {
    const first = seen.get(id);
    if (first !== undefined) throw new Error(`${what} ${id} appears twice (entries ${first + 1} and ${i + 1})`);
    seen.set(id, i);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Shared with anndata.ts: spot lattices and pixel size

/**
 * Spot lattices by array coordinates (docs §3.4, §3.9). `row`/`col` are microns per array step along a row
 * (same array_row) and along a column (same array_col).
 * - Visium "orange crate" hex: only array_row + array_col even is printed; 2 columns = 100 um, 2 rows = 173.2 um.
 * - Legacy ST 1k: square grid, both parities, 200 um pitch, 100 um spots.
 * - Legacy ST 2k: the checkerboard half of a 100 um square grid, neighbours diagonal (141 um), 100 um spots.
 */
export const LATTICES = {
  hex: { row: 50, col: (100 * Math.sqrt(3)) / 2, spotDiameter: VISIUM.spotDiameter, spacing: VISIUM.spacing },
  st1k: { row: 200, col: 200, spotDiameter: 100, spacing: 200 },
  st2k: { row: 100, col: 100, spotDiameter: 100, spacing: 100 * Math.SQRT2 },
} as const;
export type LatticeKind = keyof typeof LATTICES;

/** A lattice needs at least this many neighbour pairs before its pixel size is trusted. */
const MIN_PAIRS = 3;

interface PairSteps {
  /** Pixels per array step between consecutive spots of one array_row, and of one array_col. */
  alongRow: number[];
  alongCol: number[];
}

/** Consecutive spots of each array_row (and array_col): pixel distance per array step. */
function pairSteps(row: ArrayLike<number>, col: ArrayLike<number>, x: ArrayLike<number>, y: ArrayLike<number>) {
  const steps: PairSteps = { alongRow: [], alongCol: [] };
  const collect = (line: ArrayLike<number>, along: ArrayLike<number>, out: number[]) => {
    const groups = new Map<number, number[]>();
    for (let i = 0; i < line.length; i++) {
      if (!Number.isFinite(line[i]) || !Number.isFinite(along[i])) continue;
      const group = groups.get(line[i]);
      if (group) group.push(i);
      else groups.set(line[i], [i]);
    }
    for (const group of groups.values()) {
      group.sort((a, b) => along[a] - along[b]);
      for (let k = 1; k < group.length; k++) {
        const [a, b] = [group[k - 1], group[k]];
        const step = along[b] - along[a];
        const distance = Math.hypot(x[b] - x[a], y[b] - y[a]);
        if (step > 0 && distance > 0) out.push(distance / step);
      }
    }
  };
  collect(row, col, steps.alongRow);
  collect(col, row, steps.alongCol);
  return steps;
}

/** Which lattice the array coordinates describe, or null without array coordinates. */
export function latticeKind(
  row: ArrayLike<number>,
  col: ArrayLike<number>,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
): LatticeKind | null {
  const parities = new Set<number>();
  for (let i = 0; i < row.length; i++) {
    if (Number.isFinite(row[i]) && Number.isFinite(col[i])) parities.add(Math.abs(row[i] + col[i]) % 2);
  }
  if (parities.size === 0) return null;
  if (parities.size === 2) return 'st1k';
  // One parity: hex (a row step is 1.73 column steps) or the 2k checkerboard (both steps equal).
  const steps = pairSteps(row, col, x, y);
  if (steps.alongRow.length < MIN_PAIRS || steps.alongCol.length < MIN_PAIRS) return 'hex';
  return median(steps.alongCol) / median(steps.alongRow) > 1.35 ? 'hex' : 'st2k';
}

/** Microns per pixel from neighbour distances on the lattice (robust median over pairs), or null if too few. */
export function latticePixelSize(
  kind: LatticeKind,
  row: ArrayLike<number>,
  col: ArrayLike<number>,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
): number | null {
  const lattice = LATTICES[kind];
  const steps = pairSteps(row, col, x, y);
  const estimates = [...steps.alongRow.map((px) => lattice.row / px), ...steps.alongCol.map((px) => lattice.col / px)];
  return estimates.length >= MIN_PAIRS ? median(estimates) : null;
}

/** Warns when two pixel-size estimates disagree by more than 10%. */
export function crossCheckPixelSize(
  lattice: number | null,
  nominal: number | null,
  nominalFrom: string,
  warnings: string[],
): void {
  if (lattice === null || nominal === null || Math.abs(lattice / nominal - 1) <= 0.1) return;
  warnings.push(
    `pixel size from the spot lattice (${lattice.toFixed(4)} um/px) and from ${nominalFrom} ` +
      `(${nominal.toFixed(4)} um/px) differ by ${Math.round(Math.abs(lattice / nominal - 1) * 100)}%; using the lattice`,
  );
}

/**
 * The first spot whose centre, scaled into image pixels, lies beyond the image by more than `margin` pixels,
 * as the start of a sentence ("spot X at x=.., y=.. (full-resolution px) lies outside"), or null.
 */
export function spotOutsideImage(
  spots: Pick<SpotTable, 'ids' | 'x' | 'y'>,
  width: number,
  height: number,
  scale: number,
  margin: number,
): string | null {
  for (let i = 0; i < spots.ids.length; i++) {
    const [ix, iy] = [spots.x[i] * scale, spots.y[i] * scale];
    if (ix < -margin || iy < -margin || ix > width + margin || iy > height + margin) {
      return `spot ${spots.ids[i]} at x=${spots.x[i]}, y=${spots.y[i]} (full-resolution px) lies outside`;
    }
  }
  return null;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
