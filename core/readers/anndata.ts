// AnnData `.h5ad` (anndata >= 0.8 on-disk spec, docs §3.5) in the scanpy/squidpy Visium layout: X (dense, CSR or
// CSC), obs/var dataframes, obsm['spatial'] (full-resolution x, y), and uns['spatial'][library] with embedded images
// and Space Ranger scale factors. Recognised by content: an HDF5 file whose root says 'anndata' or holds obs/var/X.

import { basename, extname } from 'node:path';
import type { Dataset, File as H5File, Group } from 'h5wasm/node';
import { LATTICES, latticeKind, spaceRangerPixelSize, spotOutsideImage, spotRadiusPixels } from '../section/lattice.js';
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
import { DataError } from './errors.js';
import { ENSEMBL_ID, FLAT_STDEV, checkUnique } from './files.js';
import { attribute, datasetAt, groupAt, isDataset, isGroup, isHdf5, numbersAt, stringsAt, withHdf5 } from './hdf5.js';
import type { SectionReader, SectionSource } from './reader.js';

/** Numeric obs columns that are spot fields, not labels. */
const SPOT_FIELDS = ['in_tissue', 'array_row', 'array_col'] as const;

type Column = { kind: 'numbers'; values: Float64Array } | { kind: 'strings'; values: (string | null)[] } | null;

interface Library {
  name: string;
  scalefactors: Record<string, number>;
  group: Group;
}

export const annDataReader: SectionReader = { format: 'anndata', detect, read };

// ---------------------------------------------------------------------------------------------------------------
// Detection

async function detect(path: string): Promise<SectionSource[]> {
  if (!(await isHdf5(path))) return [];
  // A damaged .h5ad is still this format: `read` will say what is wrong with it.
  const looksLikeIt = await withHdf5(path, 'looking for AnnData groups', isAnnData).catch(
    () => extname(path).toLowerCase() === '.h5ad',
  );
  return looksLikeIt ? [{ format: 'anndata', name: basename(path, extname(path)), path }] : [];
}

function isAnnData(f: H5File): boolean {
  if (attribute(f, 'encoding-type') === 'anndata') return true;
  const keys = new Set(f.keys());
  return keys.has('obs') && keys.has('var') && (keys.has('X') || keys.has('layers'));
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

async function read(source: SectionSource): Promise<Section> {
  const file = source.path;
  return withHdf5(file, 'reading AnnData', (f) => readAnnData(f, file, source.name));
}

function readAnnData(f: H5File, file: string, name: string): Section {
  checkVersion(f, file);
  const warnings: string[] = [];
  const obs = readDataframe(groupAt(f, 'obs'), 'obs');
  checkUnique(obs.index, 'obs index: spot id');
  const n = obs.index.length;
  const genes = readGenes(groupAt(f, 'var'));
  const counts = readCounts(f, n, genes.symbols.length, warnings);
  const field = (key: (typeof SPOT_FIELDS)[number]) => {
    const column = obs.columns.get(key);
    return column?.kind === 'numbers' ? column.values : null;
  };
  const { x, y } = readPositions(f, obs.index);
  const inTissue = field('in_tissue');
  const spots: SpotTable = {
    ids: obs.index,
    x,
    y,
    inTissue: inTissue ? Uint8Array.from(inTissue, (v) => (v ? 1 : 0)) : new Uint8Array(n).fill(1),
    arrayRow: field('array_row') ?? new Float64Array(n).fill(NaN),
    arrayCol: field('array_col') ?? new Float64Array(n).fill(NaN),
  };
  const library = readLibrary(f, warnings);
  const kind = latticeKind(spots);
  const micronsPerPixel = spaceRangerPixelSize(kind, spots, library?.scalefactors ?? {}, warnings);
  const geometry = LATTICES[kind ?? 'hex']; // no array coordinates: assume Visium, by far the common case
  const image = library ? chooseImage(library, spots, file, geometry.spotDiameter, micronsPerPixel, warnings) : null;
  return {
    name,
    format: 'anndata',
    source: file,
    spots,
    genes,
    counts,
    image,
    micronsPerPixel,
    spotDiameterMicrons: geometry.spotDiameter,
    spotSpacingMicrons: geometry.spacing,
    labels: labelColumns(obs.columns, n),
    warnings,
  };
}

/**
 * Old anndata (0.6 and before) stored obs/var as compound datasets: not read here. The 0.7 layout (dataframe
 * groups, categories in obs/__categories) is read by `readColumn`.
 */
function checkVersion(f: H5File, file: string): void {
  const obs = f.get('obs');
  if (isGroup(obs)) return;
  throw new DataError(
    file,
    obs
      ? 'written by an old anndata (obs is a compound dataset, not a dataframe group): this AnnData version is ' +
          'not supported; re-save the file with anndata >= 0.8 (anndata.read_h5ad(path).write_h5ad(new_path))'
      : 'no obs group: not an AnnData file',
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Dataframes (obs, var)

interface Dataframe {
  index: string[];
  columns: Map<string, Column>;
}

function readDataframe(g: Group, what: string): Dataframe {
  const indexKey = attribute(g, '_index') ?? '_index';
  const index = stringsAt(g, String(indexKey));
  const order = attribute(g, 'column-order');
  const names = Array.isArray(order)
    ? order.filter((c): c is string => typeof c === 'string')
    : typeof order === 'string'
      ? [order]
      : g.keys().filter((k) => k !== indexKey && k !== '__categories');
  const columns = new Map<string, Column>();
  for (const name of names) {
    const column = readColumn(g, name);
    if (column && column.values.length !== index.length) {
      throw new Error(`${what} column ${name} has ${column.values.length} values for ${index.length} rows`);
    }
    columns.set(name, column);
  }
  return { index, columns };
}

/** One dataframe column as numbers or strings (null = missing); null for kinds we have no use for. */
function readColumn(g: Group, name: string): Column {
  const entity = g.get(name);
  if (isGroup(entity)) {
    switch (attribute(entity, 'encoding-type')) {
      case 'categorical':
        return categorical(numbersAt(entity, 'codes'), datasetAt(entity, 'categories'));
      case 'nullable-string-array':
        return { kind: 'strings', values: masked(stringsAt(entity, 'values'), numbersAt(entity, 'mask'), null) };
      case 'nullable-integer':
      case 'nullable-boolean': {
        const values = Array.from(numbersAt(entity, 'values'), Number);
        return { kind: 'numbers', values: Float64Array.from(masked(values, numbersAt(entity, 'mask'), NaN)) };
      }
      default:
        return null;
    }
  }
  if (!isDataset(entity)) return null;
  // anndata 0.7 kept categories in obs/__categories/<name>; the codes are the column.
  const legacyCategories = g.get(`__categories/${name}`);
  if (isDataset(legacyCategories)) return categorical(numbersAt(g, name), legacyCategories);
  const value = entity.value;
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return { kind: 'strings', values: value };
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return { kind: 'numbers', values: Float64Array.from(value as ArrayLike<number>, Number) };
  }
  return null;
}

function categorical(codes: ArrayLike<number | bigint>, categoriesSet: Dataset): Column {
  const raw = categoriesSet.value;
  const categories = Array.isArray(raw) || ArrayBuffer.isView(raw) ? Array.from(raw as ArrayLike<unknown>, String) : [];
  const values = Array.from(codes, (code) => {
    const c = Number(code);
    if (c === -1) return null; // missing
    if (!(c >= 0 && c < categories.length)) throw new Error(`category code ${c} out of range`);
    return categories[c];
  });
  return { kind: 'strings', values };
}

function masked<T>(values: T[], mask: ArrayLike<number | bigint>, missing: T): T[] {
  return values.map((v, i) => (Number(mask[i]) ? missing : v));
}

/** Categorical and string obs columns, except spot fields and per-spot unique ids. */
function labelColumns(columns: Map<string, Column>, n: number): Map<string, LabelColumn> {
  const labels = new Map<string, LabelColumn>();
  for (const [name, column] of columns) {
    if (column?.kind !== 'strings' || (SPOT_FIELDS as readonly string[]).includes(name)) continue;
    const values = column.values.map(labelValue);
    const distinct = new Set(values.filter((v) => v !== null)).size;
    if ((n > 1 && distinct === n) || !hasLabels(values)) continue;
    labels.set(name, values);
  }
  return labels;
}

/** var index + optional gene_ids / gene_symbols (or CELLxGENE feature_name): symbols shown, Ensembl ids kept. */
function readGenes(g: Group): GeneTable {
  const frame = readDataframe(g, 'var');
  const text = (key: string) => {
    const column = frame.columns.get(key);
    return column?.kind === 'strings' ? column.values : null;
  };
  const symbols = text('gene_symbols') ?? text('feature_name');
  const ids = text('gene_ids') ?? (symbols ? frame.index : null);
  return {
    symbols: frame.index.map((name, i) => symbols?.[i] || name),
    ids: frame.index.map((name, i) => ids?.[i] || (ENSEMBL_ID.test(name) ? name : null)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Counts, positions

/** layers['counts'] when present (scanpy keeps raw counts there when X is normalised), else X. */
function readCounts(f: H5File, nObs: number, nVar: number, warnings: string[]): SparseCounts {
  const where = f.get('layers/counts') ? 'layers/counts' : 'X';
  if (!f.get(where)) throw new Error('no X matrix');
  const counts = about(where, () => {
    try {
      return matrix(f, where, nObs, nVar);
    } catch (error) {
      // Scaled or log-normalised X is the usual cause: say so next to SparseCounts' own message.
      if (!(error instanceof Error) || !/negative|not finite/.test(error.message)) throw error;
      throw new Error(`${error.message}: these are not raw counts, which DELST needs in X or layers['counts']`, {
        cause: error,
      });
    }
  });
  if (!integerCounts(counts)) warnings.push(`${where} holds non-integer values: it may be normalised, not raw counts`);
  return counts;
}

/** Dense array, or a csr_matrix / csc_matrix group (rows = obs). */
function matrix(f: H5File, where: string, nObs: number, nVar: number): SparseCounts {
  const entity = f.get(where);
  if (isDataset(entity)) {
    const shape = entity.shape ?? [];
    if (shape.length !== 2 || shape[0] !== nObs || shape[1] !== nVar) {
      throw new Error(`dense shape ${shape.join(' x ')}, expected ${nObs} x ${nVar}`);
    }
    return SparseCounts.fromDense(nObs, nVar, Float64Array.from(numbersAt(f, where), Number));
  }
  if (!isGroup(entity)) throw new Error('neither a dataset nor a group');
  const encoding = attribute(entity, 'encoding-type') ?? attribute(entity, 'h5sparse_format');
  const shapeAttribute = attribute(entity, 'shape');
  const shape = Array.isArray(shapeAttribute) ? shapeAttribute.map(Number) : [];
  if (shape[0] !== nObs || shape[1] !== nVar) throw new Error(`shape ${shape.join(' x ')}, expected ${nObs} x ${nVar}`);
  const [indptr, indices, data] = ['indptr', 'indices', 'data'].map((k) => numbersAt(entity, k));
  if (encoding === 'csr_matrix' || encoding === 'csr') return SparseCounts.fromCsr(nObs, nVar, indptr, indices, data);
  if (encoding === 'csc_matrix' || encoding === 'csc') return SparseCounts.fromCsc(nObs, nVar, indptr, indices, data);
  throw new Error(`unsupported matrix encoding "${String(encoding)}"`);
}

function integerCounts(counts: SparseCounts): boolean {
  for (let s = 0; s < counts.nSpots; s++) {
    for (const v of counts.spot(s).values) if (!Number.isInteger(v)) return false;
  }
  return true;
}

/** obsm['spatial']: n x 2 (or more) array of full-resolution x, y. */
function readPositions(f: H5File, ids: readonly string[]): { x: Float64Array; y: Float64Array } {
  const set = f.get('obsm/spatial');
  if (!isDataset(set)) throw new Error("no obsm['spatial']: the file holds no spot positions");
  const shape = set.shape ?? [];
  if (shape.length !== 2 || shape[0] !== ids.length || shape[1] < 2) {
    throw new Error(`obsm/spatial has shape ${shape.join(' x ')}, expected ${ids.length} x 2`);
  }
  const values = numbersAt(f, 'obsm/spatial');
  const width = shape[1];
  const x = Float64Array.from(ids, (_, i) => Number(values[i * width]));
  const y = Float64Array.from(ids, (_, i) => Number(values[i * width + 1]));
  const bad = ids.findIndex((_, i) => !Number.isFinite(x[i]) || !Number.isFinite(y[i]));
  if (bad >= 0) throw new Error(`obsm/spatial: spot ${ids[bad]} has no finite position (${x[bad]}, ${y[bad]})`);
  return { x, y };
}

// ---------------------------------------------------------------------------------------------------------------
// uns['spatial'][library]: scale factors and images

function readLibrary(f: H5File, warnings: string[]): Library | null {
  const spatial = f.get('uns/spatial');
  const names = isGroup(spatial) ? spatial.keys() : [];
  if (!isGroup(spatial) || names.length === 0) {
    warnings.push("no uns['spatial'] library: no image and no scale factors");
    return null;
  }
  if (names.length > 1) warnings.push(`uns['spatial'] holds ${names.length} libraries; using the first, ${names[0]}`);
  const libraryGroup = groupAt(spatial, names[0]);
  const scalefactors: Record<string, number> = {};
  const sf = libraryGroup.get('scalefactors');
  if (isGroup(sf)) {
    for (const key of sf.keys()) {
      // Numeric scalars only; anything else (strings, arrays) is no scale factor of ours.
      const entity = sf.get(key);
      const value = isDataset(entity) && !entity.shape?.length ? Number(entity.value) : NaN;
      if (Number.isFinite(value) && value > 0) scalefactors[key] = value;
    }
  }
  return { name: names[0], scalefactors, group: libraryGroup };
}

/** hires, else lowres; a blank image or one the spots do not fit on is passed over with a warning. */
function chooseImage(
  library: Library,
  spots: SpotTable,
  file: string,
  spotDiameterMicrons: number,
  micronsPerPixel: number | null,
  warnings: string[],
): SectionImage | null {
  const sf = library.scalefactors;
  const radius = spotRadiusPixels(sf.spot_diameter_fullres, spotDiameterMicrons, micronsPerPixel);
  let outside: string | null = null;
  for (const which of ['hires', 'lowres'] as const) {
    const origin = `${file}#${library.group.path.slice(1)}/images/${which}`;
    const set = library.group.get(`images/${which}`);
    const scale = sf[`tissue_${which}_scalef`];
    if (!isDataset(set) || !set.shape?.every((d) => d > 0)) continue; // absent or empty placeholder
    if (!scale) {
      warnings.push(`images/${which} is not used: no tissue_${which}_scalef scale factor`);
      continue;
    }
    const pixels = about(`images/${which}`, () => readPixels(set));
    if (isFlat(pixels.data, pixels.channels)) {
      warnings.push(`images/${which} is blank (a single flat colour, a placeholder) and is not used`);
      continue;
    }
    const problem = spotOutsideImage(spots, { width: pixels.width, height: pixels.height, scale }, radius * scale + 1);
    if (problem) {
      outside ??= `${problem} images/${which} (${pixels.width} x ${pixels.height} px, scale ${scale})`;
      warnings.push(`images/${which} is not used: ${problem} it`);
      continue;
    }
    return { kind: 'pixels', origin, ...pixels, scale };
  }
  if (outside) throw new DataError(file, outside);
  warnings.push('no usable embedded image: spots are shown without H&E');
  return null;
}

/** height x width [x channels] array -> interleaved 8-bit samples; floats in 0..1 are scaled to 0..255. */
function readPixels(set: Dataset): { width: number; height: number; channels: 1 | 3 | 4; data: Uint8Array } {
  const shape = set.shape ?? [];
  const channels = shape.length === 2 ? 1 : shape[2];
  if (shape.length < 2 || shape.length > 3 || (channels !== 1 && channels !== 3 && channels !== 4)) {
    throw new Error(`unsupported image shape ${shape.join(' x ')} (expected height x width x 1, 3 or 4)`);
  }
  const values = set.value;
  if (!ArrayBuffer.isView(values) || values instanceof DataView) throw new Error('image is not a numeric array');
  const numbers =
    values instanceof BigInt64Array || values instanceof BigUint64Array
      ? Float64Array.from(values, Number)
      : (values as ArrayLike<number>);
  return { height: shape[0], width: shape[1], channels, data: toBytes(numbers) };
}

/** 8-bit as is; floats in 0..1 (scanpy's convention) and 0..255 kept; any other range stretched to 0..255. */
function toBytes(values: ArrayLike<number>): Uint8Array {
  if (values instanceof Uint8Array) return values;
  let [min, max] = [Infinity, -Infinity];
  for (let i = 0; i < values.length; i++) {
    min = Math.min(min, values[i]);
    max = Math.max(max, values[i]);
  }
  const isFloat = values instanceof Float32Array || values instanceof Float64Array;
  const [low, high] = min >= 0 && max <= 1 && isFloat ? [0, 1] : min >= 0 && max <= 255 ? [0, 255] : [min, max];
  const factor = high > low ? 255 / (high - low) : 0;
  const clamped = Uint8ClampedArray.from(values, (v) => (v - low) * factor);
  return new Uint8Array(clamped.buffer);
}

/** One flat colour (a placeholder), judged on a sample of at most ~64k pixels. */
function isFlat(data: Uint8Array, channels: number): boolean {
  const pixels = data.length / channels;
  const step = Math.max(1, Math.floor(pixels / 65536));
  const colours = channels === 4 ? 3 : channels;
  for (let c = 0; c < colours; c++) {
    let [count, sum, squares] = [0, 0, 0];
    for (let p = 0; p < pixels; p += step) {
      const v = data[p * channels + c];
      count++;
      sum += v;
      squares += v * v;
    }
    const variance = squares / count - (sum / count) ** 2;
    if (Math.sqrt(Math.max(0, variance)) >= FLAT_STDEV) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** Runs `read`, prefixing any plain error with where in the file it happened. */
function about<T>(where: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof DataError) throw error;
    throw new Error(`${where}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}
