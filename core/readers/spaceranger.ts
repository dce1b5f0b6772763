// Space Ranger `outs/` (Visium v1/v2, docs §3.1): a 10x feature-barcode matrix (HDF5 or Matrix Market), spot
// positions and scale factors in spatial/, the H&E as downsized PNGs. A folder may be an outs/ folder, hold one, or
// hold several sample folders each with its outs/.

import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { File as H5File, Group } from 'h5wasm/node';
import { LATTICES, spaceRangerPixelSize, spotOutsideImage, spotRadiusPixels } from '../section/lattice.js';
import type { GeneTable, LabelColumn, Section, SectionImage, SpotTable } from '../section/section.js';
import { SparseCounts } from '../section/sparse-counts.js';
import { DataError, readingFile } from './errors.js';
import {
  type PositionColumns,
  type Scalefactors,
  checkUnique,
  inspectImage,
  isBlankImage,
  isDirectory,
  isFile,
  joinSpots,
  readScalefactors,
  readText,
  subfolders,
} from './files.js';
import { isGroup, isHdf5, numbersAt, stringsAt, withHdf5 } from './hdf5.js';
import type { SectionReader, SectionSource } from './reader.js';

/** Visium geometry (docs §3.9): 55 um spots, 100 um apart. */
const VISIUM = LATTICES.hex;
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

interface Positions extends PositionColumns {
  file: string;
  ids: string[];
  index: Map<string, number>;
}

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
  const scalefactors = await readSpatialScalefactors(join(spatial, 'scalefactors_json.json'), warnings);
  const { spots, counts } = joinPositions(data, positions, warnings);
  const micronsPerPixel = spaceRangerPixelSize('hex', positions, scalefactors, warnings);
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
function joinPositions(
  data: MatrixData,
  positions: Positions,
  warnings: string[],
): { spots: SpotTable; counts: SparseCounts } {
  const joined = joinSpots(data.barcodes, data.counts, positions, (barcode) => positions.index.get(barcode));
  if (joined.spots.ids.length === 0) {
    throw new DataError(
      positions.file,
      `no barcode in common with ${data.file} (it has e.g. ${data.barcodes[0] ?? 'none'}, this file ${positions.ids[0]})`,
    );
  }
  const dropped = data.barcodes.length - joined.spots.ids.length;
  if (dropped > 0) {
    warnings.push(
      `${dropped} of ${data.barcodes.length} barcodes of ${basename(data.file)} have no position in ` +
        `${basename(positions.file)} and were left out`,
    );
  }
  return joined;
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
  if (isGroup(matrix)) return matrix;
  for (const key of f.keys()) {
    const group = f.get(key);
    if (isGroup(group) && group.keys().includes('barcodes') && group.keys().includes('genes')) {
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
  if (isGroup(m.get('features'))) {
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
    arrayRow: new Float64Array(n),
    arrayCol: new Float64Array(n),
    x: new Float64Array(n),
    y: new Float64Array(n),
  };
  body.forEach(({ line, cells }, i) => {
    if (cells.length < POSITION_COLUMNS.length) {
      throw new DataError(file, `line ${line}: ${cells.length} columns, expected ${POSITION_COLUMNS.length}`);
    }
    const num = (c: number) => numberCell(cells[columns[c]], file, line, POSITION_COLUMNS[c]);
    const id = cells[columns[0]];
    p.index.set(id, i);
    p.ids.push(id);
    p.inTissue[i] = num(1) ? 1 : 0;
    p.arrayRow[i] = num(2);
    p.arrayCol[i] = num(3);
    p.y[i] = num(4); // pxl_row_in_fullres is y, pxl_col_in_fullres is x
    p.x[i] = num(5);
  });
  checkUnique(p.ids, 'barcode', (a, b) => `lines ${body[a].line} and ${body[b].line}`, file);
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

async function readSpatialScalefactors(file: string, warnings: string[]): Promise<Scalefactors> {
  if (await isFile(file)) return readScalefactors(file);
  warnings.push(`${basename(file)} is missing: no image scale and no spot size in pixels`);
  return {};
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
  const radius = spotRadiusPixels(sf.spot_diameter_fullres, VISIUM.spotDiameter, micronsPerPixel);
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
    if (await isBlankImage(info)) {
      warnings.push(`${file} is blank (a single flat colour, a placeholder) and is not used`);
      continue;
    }
    const problem = spotOutsideImage(spots, { width: info.width, height: info.height, scale }, radius * scale + 1);
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
// Small helpers

async function firstExisting(dir: string, names: readonly string[]): Promise<string | null> {
  for (const name of names) if (await isFile(join(dir, name))) return join(dir, name);
  return null;
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
