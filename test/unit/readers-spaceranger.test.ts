// Space Ranger outs/ reader on the real fixtures (numbers checked against the raw files by small independent
// parsers here), and on broken copies of them built in a temp folder.

import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import h5wasm from 'h5wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../../core/readers/errors.js';
import { spaceRangerReader } from '../../core/readers/spaceranger.js';
import type { Section } from '../../core/section/section.js';

const DATA = path.resolve(import.meta.dirname, '../../../shared/data');
const HEART = path.join(DATA, 'fixtures/visium-outs-scanpy-heart');
const BRAIN = path.join(DATA, 'fixtures/visium-outs-seurat-mousebrain');
const SPE = path.join(DATA, 'fixtures/visium-outs-spatialexperiment');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'delst-spaceranger-'));
  await h5wasm.ready;
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function readOne(folder: string): Promise<Section> {
  const sources = await spaceRangerReader.detect(folder);
  expect(sources).toHaveLength(1);
  return spaceRangerReader.read(sources[0]);
}

/** A writable copy of a fixture folder under the temp dir (the shared data is read-only). */
async function copyFixture(from: string, name: string): Promise<string> {
  const to = path.join(tmp, name);
  await cp(from, to, { recursive: true });
  await chmod(to, 0o755);
  for (const entry of await readdir(to, { recursive: true, withFileTypes: true })) {
    await chmod(path.join(entry.parentPath, entry.name), entry.isDirectory() ? 0o755 : 0o644);
  }
  return to;
}

/** The DataError a read of `folder` fails with. */
async function readError(folder: string): Promise<DataError> {
  const error = await readOne(folder).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DataError);
  return error as DataError;
}

/** Independent read of a 10x .h5: CSC over features x barcodes. */
function rawH5(file: string) {
  const f = new h5wasm.File(file, 'r');
  try {
    const get = (p: string) => (f.get(p) as InstanceType<typeof h5wasm.Dataset>).value;
    return {
      barcodes: get('matrix/barcodes') as string[],
      ids: get('matrix/features/id') as string[],
      names: get('matrix/features/name') as string[],
      indptr: Array.from(get('matrix/indptr') as ArrayLike<number>, Number),
      indices: Array.from(get('matrix/indices') as ArrayLike<number>, Number),
      data: Array.from(get('matrix/data') as ArrayLike<number>, Number),
    };
  } finally {
    f.close();
  }
}

/** Independent parse of a header-less tissue_positions_list.csv: barcode -> row cells. */
async function rawPositions(file: string): Promise<Map<string, string[]>> {
  const text = await readFile(file, 'utf8');
  const rows = text
    .trim()
    .split('\n')
    .map((l) => l.trim().split(','));
  return new Map(rows.map((r) => [r[0], r]));
}

function expectSpotsInsideImage(section: Section): void {
  const image = section.image!;
  for (let i = 0; i < section.spots.ids.length; i++) {
    expect(section.spots.x[i] * image.scale).toBeGreaterThanOrEqual(0);
    expect(section.spots.x[i] * image.scale).toBeLessThanOrEqual(image.width);
    expect(section.spots.y[i] * image.scale).toBeGreaterThanOrEqual(0);
    expect(section.spots.y[i] * image.scale).toBeLessThanOrEqual(image.height);
  }
}

describe('spaceRangerReader on the fixtures', () => {
  it('reads the scanpy heart outs/ (10x h5, header-less positions, blank hires placeholder)', async () => {
    const section = await readOne(HEART);
    const raw = rawH5(path.join(HEART, 'filtered_feature_bc_matrix.h5'));
    const positions = await rawPositions(path.join(HEART, 'spatial/tissue_positions_list.csv'));
    expect(positions.size).toBe(4992);

    expect(section.name).toBe('visium-outs-scanpy-heart');
    expect(section.format).toBe('spaceranger');
    expect(section.spots.ids).toEqual(raw.barcodes);
    expect(section.spots.ids).toHaveLength(100);
    expect(section.genes.symbols).toHaveLength(100);
    expect(section.genes.ids[0]).toBe('ENSG00000243485');
    expect(section.counts.nnz).toBe(656);
    expect(section.counts.nnz).toBe(raw.indptr[raw.indptr.length - 1]);
    // Every stored entry of barcode 7 (a contiguous chunk in the file) comes back at (spot 7, gene).
    for (let k = raw.indptr[7]; k < raw.indptr[8]; k++) {
      expect(section.counts.get(7, raw.indices[k])).toBe(raw.data[k]);
    }
    // pxl_row_in_fullres is y, pxl_col_in_fullres is x.
    const row = positions.get(raw.barcodes[3])!;
    expect([section.spots.y[3], section.spots.x[3]]).toEqual([Number(row[4]), Number(row[5])]);
    expect([section.spots.arrayRow[3], section.spots.arrayCol[3], section.spots.inTissue[3]]).toEqual([
      Number(row[2]),
      Number(row[3]),
      Number(row[1]),
    ]);

    // The hires PNG is an all-black placeholder: lowres is used instead, with a warning.
    expect(section.image).toEqual({
      kind: 'file',
      path: path.join(HEART, 'spatial/tissue_lowres_image.png'),
      width: 600,
      height: 600,
      scale: 0.045004502,
    });
    expect(section.warnings.join('\n')).toMatch(/tissue_hires_image\.png is blank/);
    expectSpotsInsideImage(section);

    // Lattice estimate agrees with 10x's 65 um / spot_diameter_fullres (89.4275 px) within 1%.
    expect(section.micronsPerPixel!).toBeGreaterThan(0.7);
    expect(section.micronsPerPixel!).toBeLessThan(0.76);
    expect(Math.abs(section.micronsPerPixel! / (65 / 89.42751063343188) - 1)).toBeLessThan(0.01);
    expect(section.spotDiameterMicrons).toBe(55);
    expect(section.spotSpacingMicrons).toBe(100);
    expect(section.labels.size).toBe(0);
  });

  it('reads the Seurat mouse brain outs/ (gene symbols, lowres only)', async () => {
    const section = await readOne(BRAIN);
    const raw = rawH5(path.join(BRAIN, 'filtered_feature_bc_matrix.h5'));
    const positions = await rawPositions(path.join(BRAIN, 'spatial/tissue_positions_list.csv'));

    expect(section.spots.ids).toHaveLength(2695);
    expect(section.spots.ids).toEqual(raw.barcodes);
    expect(section.genes.symbols.slice(0, 3)).toEqual(['Xkr4', 'Gm1992', 'Gm37381']);
    expect(section.genes.ids[0]).toBe('ENSMUSG00000051951');
    expect(section.counts.nnz).toBe(50355);
    const totals = section.counts.spotTotals();
    const rawTotal = (s: number) => raw.data.slice(raw.indptr[s], raw.indptr[s + 1]).reduce((a, b) => a + b, 0);
    for (const s of [0, 1000, 2694]) expect(totals[s]).toBe(rawTotal(s));
    // A filtered matrix holds in-tissue spots only.
    const inTissue = raw.barcodes.filter((b) => positions.get(b)![1] === '1').length;
    expect(inTissue).toBe(2695);
    expect(section.spots.inTissue.every((v) => v === 1)).toBe(true);

    expect(section.image).toMatchObject({ kind: 'file', width: 600, height: 599, scale: 0.051635113 });
    expectSpotsInsideImage(section);
    expect(Math.abs(section.micronsPerPixel! / (65 / 89.47248494250101) - 1)).toBeLessThan(0.01);
    expect(section.warnings).toEqual([]);
  });

  it('finds two samples in a folder of <sample>/outs/ and reads their Matrix Market matrices', async () => {
    const sources = await spaceRangerReader.detect(SPE);
    expect(sources.map((s) => [s.name, s.hints?.kind])).toEqual([
      ['section1', 'mex'],
      ['section2', 'mex'],
    ]);
    const [one, two] = await Promise.all(sources.map((s) => spaceRangerReader.read(s)));
    const mtx = (await readFile(path.join(SPE, 'section1/outs/raw_feature_bc_matrix/matrix.mtx'), 'utf8'))
      .trim()
      .split('\n')
      .slice(2)
      .map((l) => l.split(' ').map(Number));
    expect(mtx).toHaveLength(338);

    expect(one.spots.ids).toHaveLength(50);
    expect(one.genes.symbols).toHaveLength(50);
    expect(one.genes.symbols[0]).toBe('Xkr4');
    expect(one.counts.nnz).toBe(338);
    // Every Matrix Market entry (feature, barcode, value; 1-based) lands at (spot, gene).
    for (const [feature, barcode, value] of mtx) expect(one.counts.get(barcode - 1, feature - 1)).toBe(value);
    expect(one.warnings).toEqual([]);
    expect(one.image).toMatchObject({ width: 576, height: 600, scale: 0.051033426 });
    expectSpotsInsideImage(one);
    expect(Math.abs(one.micronsPerPixel! / (65 / 89.44476048022638) - 1)).toBeLessThan(0.01);

    // section2's positions list lacks one of the 50 barcodes: dropped with a warning.
    expect(two.spots.ids).toHaveLength(49);
    expect(two.counts.nSpots).toBe(49);
    expect(two.warnings).toEqual([
      '1 of 50 barcodes of matrix.mtx have no position in tissue_positions_list.csv and were left out',
    ]);
  });

  it('claims no folder without outs/ data, and no file', async () => {
    expect(await spaceRangerReader.detect(path.join(DATA, 'her2st/A1'))).toEqual([]);
    expect(await spaceRangerReader.detect(path.join(DATA, 'fixtures'))).toEqual([]);
    expect(await spaceRangerReader.detect(path.join(HEART, 'filtered_feature_bc_matrix.h5'))).toEqual([]);
    expect(await spaceRangerReader.detect(path.join(DATA, 'nowhere'))).toEqual([]);
  });
});

describe('spaceRangerReader on other layouts', () => {
  it('reads gzipped Matrix Market files and a Space Ranger 2 tissue_positions.csv with a header', async () => {
    const outs = path.join(await copyFixture(path.join(SPE, 'section1'), 'gz-sample'), 'outs');
    const mex = path.join(outs, 'raw_feature_bc_matrix');
    for (const name of ['matrix.mtx', 'barcodes.tsv', 'features.tsv']) {
      await writeFile(path.join(mex, `${name}.gz`), gzipSync(await readFile(path.join(mex, name))));
      await unlink(path.join(mex, name));
    }
    const list = await readFile(path.join(outs, 'spatial/tissue_positions_list.csv'), 'utf8');
    const header = 'barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\n';
    await writeFile(path.join(outs, 'spatial/tissue_positions.csv'), header + list);
    await unlink(path.join(outs, 'spatial/tissue_positions_list.csv'));

    const section = await readOne(path.dirname(outs));
    const original = await readOne(path.join(SPE, 'section1'));
    expect(section.name).toBe('gz-sample');
    expect(section.spots).toEqual(original.spots);
    expect(section.counts.nnz).toBe(original.counts.nnz);
    expect(Array.from(section.counts.spotTotals())).toEqual(Array.from(original.counts.spotTotals()));
  });

  it('adds Space Ranger clusterings from analysis/clustering as labels', async () => {
    const outs = await copyFixture(BRAIN, 'clusters');
    const raw = rawH5(path.join(BRAIN, 'filtered_feature_bc_matrix.h5'));
    const dir = path.join(outs, 'analysis/clustering/gene_expression_graphclust');
    await mkdir(dir, { recursive: true });
    const rows = raw.barcodes.slice(0, 10).map((b, i) => `${b},${(i % 3) + 1}`);
    await writeFile(path.join(dir, 'clusters.csv'), ['Barcode,Cluster', ...rows].join('\n'));
    const section = await readOne(outs);
    const graphclust = section.labels.get('graphclust')!;
    expect(graphclust.slice(0, 4)).toEqual(['1', '2', '3', '1']);
    expect(graphclust.filter((v) => v !== null)).toHaveLength(10);
  });

  it('keeps only Gene Expression features of a 10x h5 and reads Cell Ranger h5 by signature', async () => {
    const outs = await copyFixture(BRAIN, 'antibody');
    const raw = rawH5(path.join(BRAIN, 'filtered_feature_bc_matrix.h5'));
    const barcodes = raw.barcodes.slice(0, 3);
    // GEO-style name: sample prefix before filtered_feature_bc_matrix.h5.
    await unlink(path.join(outs, 'filtered_feature_bc_matrix.h5'));
    writeTenxH5(path.join(outs, 'GSM1_filtered_feature_bc_matrix.h5'), {
      barcodes,
      features: [
        ['ENSG1', 'GENE1', 'Gene Expression'],
        ['CD3', 'CD3_TotalSeqB', 'Antibody Capture'],
        ['ENSG2', 'GENE2', 'Gene Expression'],
      ],
      // barcode chunks: (feature, count)
      chunks: [
        [
          [0, 5],
          [1, 7],
        ],
        [[2, 1]],
        [
          [1, 2],
          [2, 3],
        ],
      ],
    });
    const section = await readOne(outs);
    expect(section.genes).toEqual({ symbols: ['GENE1', 'GENE2'], ids: ['ENSG1', 'ENSG2'] });
    expect(section.spots.ids).toEqual(barcodes);
    expect([0, 1, 2].map((s) => [section.counts.get(s, 0), section.counts.get(s, 1)])).toEqual([
      [5, 0],
      [0, 1],
      [0, 3],
    ]);
  });
});

describe('spaceRangerReader on broken input', () => {
  it('says which positions file is missing', async () => {
    const outs = await copyFixture(HEART, 'no-positions');
    await unlink(path.join(outs, 'spatial/tissue_positions_list.csv'));
    const error = await readError(outs);
    expect(error.file).toBe(path.join(outs, 'spatial/tissue_positions.csv'));
    expect(error.message).toMatch(/missing: spatial\/ has no tissue_positions\.csv or tissue_positions_list\.csv/);
  });

  it('reports a truncated HDF5 matrix', async () => {
    const outs = await copyFixture(BRAIN, 'truncated-h5');
    const file = path.join(outs, 'filtered_feature_bc_matrix.h5');
    await truncate(file, 100_000);
    const error = await readError(outs);
    expect(error.file).toBe(file);
    expect(error.message).toBe(`${file}: truncated: 100000 bytes on disk, but its HDF5 header says 232331`);
  });

  it('reports damaged HDF5 bytes as a DataError, not a crash', async () => {
    const outs = await copyFixture(HEART, 'corrupt-h5');
    const file = path.join(outs, 'filtered_feature_bc_matrix.h5');
    const bytes = await readFile(file);
    for (let i = 4495; i < 4495 + 64; i++) bytes[i] ^= 0x5a; // inside a compressed chunk
    await writeFile(file, bytes);
    const error = await readError(outs);
    expect(error.file).toBe(file);
    expect(error.message).toMatch(/reading the count matrix: (HDF5 error|damaged HDF5 file)/);
    // The HDF5 library is still usable afterwards.
    expect((await readOne(HEART)).spots.ids).toHaveLength(100);
  });

  it('reports a matrix file that is no HDF5 at all', async () => {
    const outs = await copyFixture(HEART, 'not-h5');
    const file = path.join(outs, 'filtered_feature_bc_matrix.h5');
    await writeFile(file, 'barcode,count\n');
    const error = await readError(outs);
    expect(error.message).toBe(`${file}: not an HDF5 file (no HDF5 signature): damaged, or another format`);
  });

  it('reports a truncated PNG', async () => {
    const outs = await copyFixture(BRAIN, 'truncated-png');
    const file = path.join(outs, 'spatial/tissue_lowres_image.png');
    await truncate(file, 200_000);
    const error = await readError(outs);
    expect(error.file).toBe(file);
    expect(error.message).toMatch(/cannot decode the image \(truncated or corrupt\?\)/);
  });

  it('reports a barcode listed twice in the positions', async () => {
    const outs = await copyFixture(HEART, 'duplicate-positions');
    const file = path.join(outs, 'spatial/tissue_positions_list.csv');
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    await writeFile(file, [...lines, lines[1]].join('\n'));
    const error = await readError(outs);
    expect(error.file).toBe(file);
    expect(error.message).toMatch(/barcode TACCGATCCAACACTT-1 appears twice \(lines 2 and 4993\)/);
  });

  it('reports positions that share no barcode with the matrix', async () => {
    const outs = await copyFixture(HEART, 'no-shared');
    const file = path.join(outs, 'spatial/tissue_positions_list.csv');
    await writeFile(file, (await readFile(file, 'utf8')).replaceAll('-1,', '-9,'));
    const error = await readError(outs);
    expect(error.file).toBe(file);
    expect(error.message).toMatch(/no barcode in common with .*filtered_feature_bc_matrix\.h5/);
  });

  it('reports a spot far outside the image', async () => {
    const outs = await copyFixture(BRAIN, 'outside');
    const file = path.join(outs, 'spatial/tissue_positions_list.csv');
    const barcode = rawH5(path.join(BRAIN, 'filtered_feature_bc_matrix.h5')).barcodes[0];
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace(new RegExp(`^${barcode},(.*),(\\d+)$`, 'm'), `${barcode},$1,10000000`));
    const error = await readError(outs);
    expect(error.file).toBe(file);
    expect(error.message).toMatch(
      new RegExp(`spot ${barcode} at x=10000000, .* lies outside tissue_lowres_image\\.png \\(600 x 599 px`),
    );
  });

  it('reports a negative count in a Matrix Market file', async () => {
    const outs = path.join(await copyFixture(path.join(SPE, 'section1'), 'negative-mtx'), 'outs');
    const file = path.join(outs, 'raw_feature_bc_matrix/matrix.mtx');
    await writeFile(file, (await readFile(file, 'utf8')).replace('\n13 1 1\n', '\n13 1 -4\n'));
    const error = await readError(path.dirname(outs));
    expect(error.file).toBe(file);
    expect(error.message).toMatch(/bad Matrix Market file: count at spot 0, gene 12 is negative \(-4\)/);
  });

  it('reports a truncated Matrix Market file', async () => {
    const outs = path.join(await copyFixture(path.join(SPE, 'section1'), 'short-mtx'), 'outs');
    const file = path.join(outs, 'raw_feature_bc_matrix/matrix.mtx');
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    await writeFile(file, lines.slice(0, 100).join('\n'));
    const error = await readError(path.dirname(outs));
    expect(error.message).toMatch(/matrix\.mtx: bad Matrix Market file: truncated: 98 of the 338 entries/);
  });

  it('reports negative counts and duplicate barcodes in a 10x h5', async () => {
    const raw = rawH5(path.join(BRAIN, 'filtered_feature_bc_matrix.h5'));
    const negative = await copyFixture(BRAIN, 'negative-h5');
    const file = path.join(negative, 'filtered_feature_bc_matrix.h5');
    const features = [['ENSG1', 'GENE1', 'Gene Expression']];
    writeTenxH5(file, { barcodes: raw.barcodes.slice(0, 2), features, chunks: [[[0, 3]], [[0, -2]]] });
    expect((await readError(negative)).message).toBe(
      `${file}: reading the count matrix: count at spot 1, gene 0 is negative (-2)`,
    );

    const duplicate = await copyFixture(BRAIN, 'duplicate-h5');
    const file2 = path.join(duplicate, 'filtered_feature_bc_matrix.h5');
    writeTenxH5(file2, { barcodes: [raw.barcodes[0], raw.barcodes[0]], features, chunks: [[[0, 3]], [[0, 2]]] });
    expect((await readError(duplicate)).message).toMatch(/reading the count matrix: barcode .* appears twice/);
  });
});

/** A minimal Cell Ranger 3 style .h5 (written with h5wasm) from per-barcode (feature, count) chunks. */
function writeTenxH5(
  file: string,
  spec: { barcodes: string[]; features: string[][]; chunks: [number, number][][] },
): void {
  const f = new h5wasm.File(file, 'w');
  try {
    const m = f.create_group('matrix');
    const entries = spec.chunks.flat();
    const indptr = [0];
    for (const chunk of spec.chunks) indptr.push(indptr[indptr.length - 1] + chunk.length);
    m.create_dataset({ name: 'barcodes', data: spec.barcodes });
    m.create_dataset({ name: 'data', data: new Int32Array(entries.map((e) => e[1])) });
    m.create_dataset({ name: 'indices', data: new Int32Array(entries.map((e) => e[0])) });
    m.create_dataset({ name: 'indptr', data: new Int32Array(indptr) });
    m.create_dataset({ name: 'shape', data: new Int32Array([spec.features.length, spec.barcodes.length]) });
    const features = m.create_group('features');
    features.create_dataset({ name: 'id', data: spec.features.map((r) => r[0]) });
    features.create_dataset({ name: 'name', data: spec.features.map((r) => r[1]) });
    features.create_dataset({ name: 'feature_type', data: spec.features.map((r) => r[2]) });
  } finally {
    f.close();
  }
}
