// AnnData reader on the HER2ST h5ad files and the squidpy/stLearn fixtures (numbers checked against the raw HDF5
// and against the legacy HER2ST folders), and on small h5ad files written here with h5wasm.

import { chmod, copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import h5wasm from 'h5wasm/node';
import type { Group } from 'h5wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { annDataReader } from '../../core/readers/anndata.js';
import { DataError } from '../../core/readers/errors.js';
import { labelCounts, type Section } from '../../core/section/section.js';

const DATA = path.resolve(import.meta.dirname, '../../../shared/data');
const A1 = path.join(DATA, 'anndata/her2st_A1.h5ad');
const B4 = path.join(DATA, 'anndata/her2st_B4.h5ad');
const SQUIDPY = path.join(DATA, 'fixtures/anndata-squidpy/test_data.h5ad');
const STLEARN = path.join(DATA, 'fixtures/stlearn-bc-blockA-labels/test_data.h5');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'delst-anndata-'));
  await h5wasm.ready;
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function readOne(file: string): Promise<Section> {
  const sources = await annDataReader.detect(file);
  expect(sources).toHaveLength(1);
  return annDataReader.read(sources[0]);
}

async function readError(file: string): Promise<DataError> {
  const error = await annDataReader.read({ format: 'anndata', name: 'x', path: file }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DataError);
  expect((error as DataError).file).toBe(file);
  return error as DataError;
}

/** Independent read of a few datasets of an HDF5 file. */
function rawValues(file: string, paths: string[]): unknown[] {
  const f = new h5wasm.File(file, 'r');
  try {
    return paths.map((p) => (f.get(p) as InstanceType<typeof h5wasm.Dataset>).value);
  } finally {
    f.close();
  }
}

async function scalefactorsJson(section: string): Promise<Record<string, number>> {
  return JSON.parse(await readFile(path.join(DATA, 'her2st', section, 'scalefactors_json.json'), 'utf8'));
}

describe('annDataReader on HER2ST h5ad (legacy ST in the Visium layout)', () => {
  it('reads A1: counts, spot fields, pathologist labels, pixel size and the embedded hires image', async () => {
    const section = await readOne(A1);
    const [obsIndex, inTissue, varIndex, indptr, codes, categories] = rawValues(A1, [
      'obs/_index',
      'obs/in_tissue',
      'var/_index',
      'X/indptr',
      'obs/pathologist_label/codes',
      'obs/pathologist_label/categories',
    ]) as [string[], BigInt64Array, string[], Int32Array, Int8Array, string[]];

    expect(section.name).toBe('her2st_A1');
    expect(section.format).toBe('anndata');
    expect(section.spots.ids).toEqual(obsIndex);
    expect(section.spots.ids).toHaveLength(346);
    expect(section.spots.ids[0]).toBe('22x12');
    expect(Array.from(inTissue).filter((v) => v === 1n)).toHaveLength(346);
    expect(section.spots.inTissue.reduce((a, b) => a + b, 0)).toBe(346);
    expect(section.genes.symbols).toEqual(varIndex);
    expect(section.genes.symbols).toHaveLength(15045);
    expect(section.genes.ids.every((id) => id === null)).toBe(true);
    expect(section.counts.nnz).toBe(indptr[346]);
    expect(section.counts.nnz).toBe(799594);
    expect(section.warnings).toEqual([]);

    // Pathologist regions, as counted from the raw codes.
    const expected = {
      'invasive cancer': 282,
      'connective tissue': 24,
      'cancer in situ': 21,
      'adipose tissue': 12,
      undetermined: 5,
      'immune infiltrate': 2,
    };
    const fromCodes: Record<string, number> = {};
    for (const c of codes) fromCodes[categories[c]] = (fromCodes[categories[c]] ?? 0) + 1;
    expect(fromCodes).toEqual(expected);
    expect(labelCounts(section.labels.get('pathologist_label')!)).toEqual(expected);
    expect([...section.labels.keys()]).toEqual([
      'section',
      'patient',
      'cluster',
      'cluster_annotation',
      'pathologist_label',
      'stereoscope_major_top',
    ]);

    // Legacy ST geometry, and a lattice pixel size within 0.5% of the HER2ST folder's 0.91747 um/px.
    expect(section.spotDiameterMicrons).toBe(100);
    expect(section.spotSpacingMicrons).toBe(200);
    const { microns_per_pixel_fullres } = await scalefactorsJson('A1');
    expect(microns_per_pixel_fullres).toBe(0.91747);
    expect(Math.abs(section.micronsPerPixel! / microns_per_pixel_fullres - 1)).toBeLessThan(0.005);

    const image = section.image!;
    expect(image.kind).toBe('pixels');
    if (image.kind !== 'pixels') return;
    expect([image.width, image.height, image.channels, image.data.length]).toEqual([1871, 2000, 3, 1871 * 2000 * 3]);
    expect(image.scale).toBeCloseTo(0.2690402245088868, 12);
    expect(image.origin).toBe(`${A1}#uns/spatial/her2st_A1/images/hires`);
    for (let i = 0; i < section.spots.ids.length; i++) {
      expect(section.spots.x[i] * image.scale).toBeGreaterThan(0);
      expect(section.spots.x[i] * image.scale).toBeLessThan(image.width);
      expect(section.spots.y[i] * image.scale).toBeGreaterThan(0);
      expect(section.spots.y[i] * image.scale).toBeLessThan(image.height);
    }
  });

  it('gives A1 the same counts and positions as the legacy HER2ST folder', async () => {
    const section = await readOne(A1);
    const lines = gunzipSync(await readFile(path.join(DATA, 'her2st/A1/counts.tsv.gz')))
      .toString('utf8')
      .trimEnd() // the header starts with an empty cell
      .split('\n');
    const genes = lines[0].split('\t').slice(1);
    expect(genes).toEqual(section.genes.symbols);
    const totals = section.counts.spotTotals();
    const spotIndex = new Map(section.spots.ids.map((id, i) => [id, i]));
    expect(lines.length - 1).toBe(346);
    for (const line of lines.slice(1)) {
      const [id, ...values] = line.split('\t');
      const total = values.reduce((sum, v) => sum + Number(v), 0);
      expect(totals[spotIndex.get(id)!]).toBe(total);
    }
    // spots.tsv: x y new_x new_y pixel_x pixel_y selected; first row is spot 22x12.
    const spot = (await readFile(path.join(DATA, 'her2st/A1/spots.tsv'), 'utf8')).split('\n')[1].split('\t');
    expect(`${spot[0]}x${spot[1]}`).toBe('22x12');
    expect(section.spots.x[0]).toBeCloseTo(Number(spot[4]), 1);
    expect(section.spots.y[0]).toBeCloseTo(Number(spot[5]), 1);
  });

  it('reads B4 with its own pixel size', async () => {
    const section = await readOne(B4);
    expect(section.spots.ids).toHaveLength(283);
    expect(section.genes.symbols).toHaveLength(15289);
    expect(section.counts.nnz).toBe(400805);
    const { microns_per_pixel_fullres } = await scalefactorsJson('B4');
    expect(Math.abs(section.micronsPerPixel! / microns_per_pixel_fullres - 1)).toBeLessThan(0.005);
    expect(section.image).toMatchObject({ kind: 'pixels', width: 1869, height: 2000, channels: 3 });
    expect([section.spotDiameterMicrons, section.spotSpacingMicrons]).toEqual([100, 200]);
    // B4's obs stores missing labels as the category "NA": missing, and an all-missing column is dropped.
    expect(section.labels.has('pathologist_label')).toBe(false);
    const annotation = section.labels.get('cluster_annotation')!;
    expect(annotation.filter((v) => v === null)).toHaveLength(61);
    expect(annotation).not.toContain('NA');
  });
});

describe('annDataReader on the squidpy and stLearn fixtures', () => {
  it('reads the squidpy Visium h5ad: leiden labels, Ensembl ids, the lowres image that covers the spots', async () => {
    const section = await readOne(SQUIDPY);
    const [indptr, codes] = rawValues(SQUIDPY, ['X/indptr', 'obs/leiden/codes']) as [Int32Array, Int8Array];
    expect(section.spots.ids).toHaveLength(49);
    expect(section.genes.symbols).toHaveLength(1999);
    expect(section.counts.nnz).toBe(indptr[49]);
    expect(section.genes.symbols[1]).toBe('St18');
    expect(section.genes.ids[1]).toBe('ENSMUSG00000033740');
    const leiden = section.labels.get('leiden')!;
    expect(new Set(leiden).size).toBe(5);
    expect(leiden.filter((v) => v === '0')).toHaveLength(Array.from(codes).filter((c) => c === 0).length);
    expect([...section.labels.keys()]).toEqual(['leiden']);

    // No array coordinates: Visium geometry and 65 um / spot_diameter_fullres.
    expect(section.micronsPerPixel).toBeCloseTo(65 / 89.44476048022638, 10);
    expect([section.spotDiameterMicrons, section.spotSpacingMicrons]).toEqual([55, 100]);

    // The 100 x 100 hires is noise far smaller than the spot area; the 49 x 88 lowres covers the spots.
    expect(section.image).toMatchObject({ kind: 'pixels', width: 49, height: 88, channels: 3, scale: 0.051033426 });
    expect(section.warnings).toEqual([
      'X holds non-integer values: it may be normalised, not raw counts',
      'images/hires is not used: spot AACGCGAACGGCAACA-1 at x=544, y=798 (full-resolution px) lies outside it',
    ]);
  });

  it('recognises the stLearn .h5 by content and refuses its scaled (negative) X', async () => {
    expect(await annDataReader.detect(STLEARN)).toEqual([{ format: 'anndata', name: 'test_data', path: STLEARN }]);
    const error = await readError(STLEARN);
    expect(error.message).toMatch(/X: count at spot 0, gene 0 is negative .*: these are not raw counts/);
  });

  it('claims no folder, no 10x matrix and no non-HDF5 file', async () => {
    expect(await annDataReader.detect(path.join(DATA, 'anndata'))).toEqual([]);
    expect(
      await annDataReader.detect(
        path.join(DATA, 'fixtures/visium-outs-seurat-mousebrain/filtered_feature_bc_matrix.h5'),
      ),
    ).toEqual([]);
    expect(await annDataReader.detect(path.join(DATA, 'her2st/A1/spots.tsv'))).toEqual([]);
  });
});

describe('annDataReader on written and broken files', () => {
  it('reads a minimal h5ad: CSC X, categorical with missing values, hex lattice pixel size', async () => {
    const file = path.join(tmp, 'minimal.h5ad');
    writeH5ad(file, {});
    const section = await readOne(file);
    expect(section.spots.ids).toEqual(['s0', 's1', 's2', 's3', 's4', 's5']);
    expect(section.genes).toEqual({ symbols: ['A', 'B'], ids: ['ENSG0A', 'ENSG0B'] });
    expect(section.counts.nnz).toBe(4);
    expect([
      section.counts.get(0, 0),
      section.counts.get(1, 1),
      section.counts.get(5, 0),
      section.counts.get(5, 1),
    ]).toEqual([3, 1, 2, 7]);
    expect(section.labels.get('region')).toEqual(['tumour', null, 'stroma', 'tumour', 'tumour', 'stroma']);
    expect(section.labels.has('barcode')).toBe(false); // unique per spot: an id, not a label
    // Hex rows 100 px per 2 columns = 100 um: 1 um/px.
    expect(section.micronsPerPixel).toBeCloseTo(1, 10);
    expect(section.image).toMatchObject({ kind: 'pixels', width: 40, height: 30, channels: 3, scale: 0.1 });
  });

  it('reads dense X', async () => {
    const file = path.join(tmp, 'dense.h5ad');
    writeH5ad(file, { dense: true });
    const section = await readOne(file);
    expect([section.counts.get(0, 0), section.counts.get(5, 1), section.counts.nnz]).toEqual([3, 7, 4]);
  });

  it('reads anndata 0.7 categoricals (codes + obs/__categories)', async () => {
    const file = path.join(tmp, 'categories-0.7.h5ad');
    writeH5ad(file, { legacyCategories: true });
    const section = await readOne(file);
    expect(section.labels.get('region')).toEqual(['tumour', null, 'stroma', 'tumour', 'tumour', 'stroma']);
  });

  it('reports negative counts, duplicate spot ids and spots outside the image', async () => {
    const negative = path.join(tmp, 'negative.h5ad');
    writeH5ad(negative, { data: [3, 1, 2, -7] });
    expect((await readError(negative)).message).toMatch(/X: count at spot 5, gene 1 is negative \(-7\)/);

    const duplicate = path.join(tmp, 'duplicate.h5ad');
    writeH5ad(duplicate, { ids: ['s0', 's1', 's2', 's3', 's1', 's5'] });
    expect((await readError(duplicate)).message).toMatch(/obs index: spot id s1 appears twice/);

    const outside = path.join(tmp, 'outside.h5ad');
    writeH5ad(outside, { farSpot: true });
    expect((await readError(outside)).message).toMatch(
      /spot s2 at x=10000000, y=100 \(full-resolution px\) lies outside images\/hires \(40 x 30 px/,
    );
  });

  it('refuses old AnnData files with a compound obs, saying the version is unsupported', async () => {
    const file = path.join(tmp, 'old.h5ad');
    const f = new h5wasm.File(file, 'w');
    f.create_dataset({ name: 'obs', data: new Map([['n_counts', new Float32Array([1, 2])]]) });
    f.create_dataset({ name: 'var', data: new Map([['n_cells', new Float32Array([1])]]) });
    f.create_dataset({ name: 'X', data: new Float32Array([1, 2]), shape: [2, 1] });
    f.close();
    expect(await annDataReader.detect(file)).toHaveLength(1);
    expect((await readError(file)).message).toMatch(
      /written by an old anndata \(obs is a compound dataset, not a dataframe group\): this AnnData version is not supported; re-save the file with anndata >= 0\.8/,
    );
  });

  it('reports a truncated h5ad, still recognised as one', async () => {
    const file = path.join(tmp, 'truncated.h5ad');
    await copyFile(A1, file);
    await chmod(file, 0o644);
    await truncate(file, 3_000_000);
    expect(await annDataReader.detect(file)).toHaveLength(1);
    expect((await readError(file)).message).toBe(
      `${file}: truncated: 3000000 bytes on disk, but its HDF5 header says 6680228`,
    );
  });

  it('reports damaged bytes inside an h5ad as a DataError, and keeps reading good files', async () => {
    const bytes = await readFile(A1);
    for (const offset of [1_837_062, 2_004_068, 3_006_102]) {
      const file = path.join(tmp, `damaged-${offset}.h5ad`);
      const copy = Buffer.from(bytes);
      for (let i = offset; i < offset + 64; i++) copy[i] ^= 0x5a;
      await writeFile(file, copy);
      expect((await readError(file)).message).toMatch(/reading AnnData: (HDF5 error|damaged HDF5 file)/);
    }
    expect((await readOne(SQUIDPY)).spots.ids).toHaveLength(49);
  });

  it('reports a file that is no HDF5', async () => {
    const file = path.join(tmp, 'text.h5ad');
    await writeFile(file, 'not hdf5\n');
    expect(await annDataReader.detect(file)).toEqual([]);
    expect((await readError(file)).message).toBe(
      `${file}: not an HDF5 file (no HDF5 signature): damaged, or another format`,
    );
  });
});

interface H5adSpec {
  ids?: string[];
  /** CSC data for entries (s0,A) (s1,B) (s5,A) (s5,B). */
  data?: number[];
  dense?: boolean;
  farSpot?: boolean;
  legacyCategories?: boolean;
}

/**
 * A small anndata >= 0.8 file: 6 spots on two Visium hex rows 100 px per 2 columns apart (1 um/px), 2 genes, a
 * categorical with a missing code, a per-spot id column, and a 40 x 30 hires image at scale 0.1.
 */
function writeH5ad(file: string, spec: H5adSpec): void {
  const ids = spec.ids ?? ['s0', 's1', 's2', 's3', 's4', 's5'];
  const data = spec.data ?? [3, 1, 2, 7];
  const f = new h5wasm.File(file, 'w');
  try {
    f.create_attribute('encoding-type', 'anndata');
    f.create_attribute('encoding-version', '0.1.0');
    const obs = dataframe(f.create_group('obs'), ids, ['in_tissue', 'array_row', 'array_col', 'region', 'barcode']);
    obs.create_dataset({ name: 'in_tissue', data: new BigInt64Array(6).fill(1n) });
    obs.create_dataset({ name: 'array_row', data: new BigInt64Array([0n, 0n, 0n, 1n, 1n, 1n]) });
    obs.create_dataset({ name: 'array_col', data: new BigInt64Array([0n, 2n, 4n, 1n, 3n, 5n]) });
    const codes = new Int8Array([1, -1, 0, 1, 1, 0]);
    if (spec.legacyCategories) {
      // anndata 0.7: the codes are the column, the categories live in obs/__categories.
      obs.create_dataset({ name: 'region', data: codes });
      obs.create_group('__categories').create_dataset({ name: 'region', data: ['stroma', 'tumour'] });
    } else {
      const region = obs.create_group('region');
      encode(region, 'categorical');
      region.create_dataset({ name: 'codes', data: codes });
      region.create_dataset({ name: 'categories', data: ['stroma', 'tumour'] });
    }
    obs.create_dataset({ name: 'barcode', data: ids.map((id) => `bc-${id}`) });
    const variables = dataframe(f.create_group('var'), ['A', 'B'], ['gene_ids']);
    variables.create_dataset({ name: 'gene_ids', data: ['ENSG0A', 'ENSG0B'] });
    if (spec.dense) {
      const dense = new Float32Array(12);
      [dense[0], dense[3], dense[10], dense[11]] = data;
      f.create_dataset({ name: 'X', data: dense, shape: [6, 2] });
    } else {
      const x = f.create_group('X');
      encode(x, 'csc_matrix');
      x.create_attribute('shape', new BigInt64Array([6n, 2n]));
      x.create_dataset({ name: 'data', data: new Float32Array([data[0], data[2], data[1], data[3]]) });
      x.create_dataset({ name: 'indices', data: new Int32Array([0, 5, 1, 5]) });
      x.create_dataset({ name: 'indptr', data: new Int32Array([0, 2, 4]) });
    }
    // Hex lattice: columns 2 apart = 100 um = 100 px; rows sqrt(3)/2 * 100 px apart.
    const row = [0, 0, 0, 1, 1, 1];
    const col = [0, 2, 4, 1, 3, 5];
    const xy = row.flatMap((r, i) => [col[i] * 50 + 20, r * 86.60254037844386 + 100]);
    if (spec.farSpot) xy[4] = 1e7;
    f.create_group('obsm').create_dataset({ name: 'spatial', data: new Float64Array(xy), shape: [6, 2] });
    const library = f.create_group('uns').create_group('spatial').create_group('lib');
    const sf = library.create_group('scalefactors');
    sf.create_dataset({ name: 'tissue_hires_scalef', data: 0.1 });
    sf.create_dataset({ name: 'spot_diameter_fullres', data: 65 });
    const pixels = Uint8Array.from({ length: 30 * 40 * 3 }, (_, i) => (i * 37) % 256);
    library.create_group('images').create_dataset({ name: 'hires', data: pixels, shape: [30, 40, 3] });
  } finally {
    f.close();
  }
}

function dataframe(g: Group, index: string[], columns: string[]): Group {
  encode(g, 'dataframe');
  g.create_attribute('_index', '_index');
  g.create_attribute('column-order', columns);
  g.create_dataset({ name: '_index', data: index });
  return g;
}

function encode(g: Group, type: string): void {
  g.create_attribute('encoding-type', type);
  g.create_attribute('encoding-version', '0.2.0');
}
