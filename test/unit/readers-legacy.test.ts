// The legacy ST reader on real data: HER2ST (1k array, 30 sections), STUtility's mouse olfactory bulb (2k array,
// four sections in one folder), and broken copies of A1 that must fail with a message naming the file.

import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../../core/readers/errors.js';
import { legacyStReader } from '../../core/readers/legacy-st.js';
import { labelCounts, spotDiameterPixels, type Section } from '../../core/section/section.js';

const data = resolve(import.meta.dirname, '../../../shared/data');
const her2st = join(data, 'her2st');
const mob = join(data, 'stutility-mob');
const HER2ST_SECTIONS = 'A1 A2 A3 A4 A5 A6 B1 B2 B3 B4 B5 B6 D1 D2 D3 D4 D5 D6 E1 E2 E3 F1 F2 F3 G1 G2 G3 H1 H2 H3';

async function readFolder(path: string): Promise<Section[]> {
  const sources = await legacyStReader.detect(path);
  return Promise.all(sources.map((s) => legacyStReader.read(s)));
}

async function readOne(path: string): Promise<Section> {
  const sections = await readFolder(path);
  expect(sections).toHaveLength(1);
  return sections[0];
}

function inTissue(section: Section): number {
  return section.spots.inTissue.reduce((n, v) => n + v, 0);
}

/** Raw counts table as strings, split the plain way: the reader parses bytes, this does not. */
function rawCounts(folder: string): { genes: string[]; rows: string[][] } {
  const lines = gunzipSync(readFileSync(join(folder, 'counts.tsv.gz')))
    .toString('utf8')
    .split('\n');
  return {
    genes: lines[0].split('\t').slice(1),
    rows: lines
      .slice(1)
      .filter(Boolean)
      .map((l) => l.split('\t')),
  };
}

function allSpotsInsideImage(section: Section): boolean {
  const image = section.image!;
  return section.spots.ids.every((_, i) => {
    const x = section.spots.x[i] * image.scale;
    const y = section.spots.y[i] * image.scale;
    return x >= 0 && y >= 0 && x < image.width && y < image.height;
  });
}

describe('legacy ST reader: HER2ST (1k array)', () => {
  let a1: Section;

  beforeAll(async () => {
    a1 = await readOne(join(her2st, 'A1'));
  });

  it('detects a section folder by content and names it after the folder', async () => {
    const sources = await legacyStReader.detect(join(her2st, 'A1'));
    expect(sources).toHaveLength(1);
    expect(sources[0]).toMatchObject({ format: 'legacy-st', name: 'A1', path: join(her2st, 'A1') });
    expect(sources[0].hints).toMatchObject({
      counts: join(her2st, 'A1/counts.tsv.gz'),
      spots: join(her2st, 'A1/spots.tsv'),
      image: join(her2st, 'A1/image.png'),
      labels: join(her2st, 'A1/annotations.tsv'),
      scalefactors: join(her2st, 'A1/scalefactors_json.json'),
    });
    // The her2st/ folder holds 30 sections, one per folder: not a single section nor a STUtility layout.
    expect(await legacyStReader.detect(her2st)).toEqual([]);
    // The counts file alone stands for its section; other formats' files are not legacy ST.
    expect(await legacyStReader.detect(join(her2st, 'A1/counts.tsv.gz'))).toHaveLength(1);
    expect(await legacyStReader.detect(join(data, 'anndata'))).toEqual([]);
  });

  it('reads A1: 346 in-tissue spots, 15,045 gene symbols, image, pixel size, geometry', () => {
    expect(a1.name).toBe('A1');
    expect(a1.format).toBe('legacy-st');
    expect(a1.spots.ids).toHaveLength(346);
    expect(inTissue(a1)).toBe(346);
    expect(a1.counts.nSpots).toBe(346);
    expect(a1.counts.nGenes).toBe(15045);
    expect(a1.genes.symbols).toHaveLength(15045);
    expect(a1.genes.symbols.slice(0, 3)).toEqual(['FO538757.1', 'SAMD11', 'NOC2L']);
    expect(a1.genes.ids.every((id) => id === null)).toBe(true);
    expect(a1.micronsPerPixel).toBe(0.91747);
    expect(a1.spotDiameterMicrons).toBe(100);
    expect(a1.spotSpacingMicrons).toBe(200);
    expect(spotDiameterPixels(a1)).toBeCloseTo(109.0, 0);
    expect(a1.image).toMatchObject({ kind: 'file', path: join(her2st, 'A1/image.png'), width: 2000, scale: 0.287604 });
    expect(allSpotsInsideImage(a1)).toBe(true);
    expect(a1.warnings).toEqual([]);
  });

  it('takes positions from the Spot Detector table, joined on XxY', () => {
    const i = a1.spots.ids.indexOf('10x13');
    // spots.tsv: x=10 y=13 ... pixel_x, pixel_y of that row, read independently.
    const row = readFileSync(join(her2st, 'A1/spots.tsv'), 'utf8')
      .split('\n')
      .map((l) => l.split('\t'))
      .find((r) => r[0] === '10' && r[1] === '13')!;
    expect(a1.spots.x[i]).toBe(Number(row[4]));
    expect(a1.spots.y[i]).toBe(Number(row[5]));
    expect(a1.spots.arrayCol[i]).toBe(10);
    expect(a1.spots.arrayRow[i]).toBe(13);
  });

  it('labels A1 spots with the pathologist regions', () => {
    const pathologist = a1.labels.get('pathologist')!;
    expect(pathologist).toHaveLength(346);
    expect(labelCounts(pathologist, (i) => a1.spots.inTissue[i] === 1)).toEqual({
      'invasive cancer': 282,
      'connective tissue': 24,
      'cancer in situ': 21,
      'adipose tissue': 12,
      undetermined: 5,
      'immune infiltrate': 2,
    });
    expect([...a1.labels.keys()]).toEqual(['pathologist', 'expression_cluster']);
    expect(a1.labels.get('expression_cluster')![a1.spots.ids.indexOf('10x13')]).toBe('cancer 1');
  });

  it('keeps the raw counts: spot-checked against the TSV, every value of two whole rows', () => {
    const raw = rawCounts(join(her2st, 'A1'));
    const samd11 = a1.genes.symbols.indexOf('SAMD11');
    expect(a1.counts.get(a1.spots.ids.indexOf('10x13'), samd11)).toBe(6);
    for (const row of [raw.rows[0], raw.rows[raw.rows.length - 1]]) {
      const spot = a1.spots.ids.indexOf(row[0]);
      const values = row.slice(1).map(Number);
      const dense = new Float64Array(a1.counts.nGenes);
      const { indices, values: nz } = a1.counts.spot(spot);
      indices.forEach((g, k) => (dense[g] = nz[k]));
      expect(Array.from(dense)).toEqual(values);
    }
    let total = 0;
    for (const row of raw.rows) for (let k = 1; k < row.length; k++) total += Number(row[k]);
    expect(a1.counts.spotTotals().reduce((a, b) => a + b, 0)).toBe(total);
  });

  it('gives the same counts per gene as per spot', () => {
    const { counts } = a1;
    const genes = ['SAMD11', 'ERBB2', 'GRB7', 'COL1A1', 'FO538757.1'].map((g) => a1.genes.symbols.indexOf(g));
    genes.push(counts.nGenes - 1);
    for (const g of genes) {
      expect(g).toBeGreaterThanOrEqual(0);
      const byGene = counts.geneDense(g);
      for (let s = 0; s < counts.nSpots; s++) expect(byGene[s]).toBe(counts.get(s, g));
    }
    let nnz = 0;
    for (let g = 0; g < counts.nGenes; g++) nnz += counts.gene(g).indices.length;
    expect(nnz).toBe(counts.nnz);
  });

  it('reads B4 with its full-resolution JPEG', async () => {
    const b4 = await readOne(join(her2st, 'B4'));
    expect(inTissue(b4)).toBe(283);
    expect(b4.image).toMatchObject({ kind: 'file', width: 9272, height: 9923, scale: 1 });
    expect(b4.micronsPerPixel).toBe(0.68776);
    expect(allSpotsInsideImage(b4)).toBe(true);
    // B4's annotations.tsv has an empty pathologist column: no label column for this section.
    expect([...b4.labels.keys()]).toEqual(['expression_cluster']);
  });

  it('reads all 30 sections; spot totals match an independent count', async () => {
    const names = HER2ST_SECTIONS.split(' ');
    let total = 0;
    let expected = 0;
    let dropped = 0;
    for (const name of names) {
      const folder = join(her2st, name);
      const section = await readOne(folder);
      expect(section.name).toBe(name);
      expect(inTissue(section)).toBeGreaterThanOrEqual(270);
      expect(inTissue(section)).toBeLessThanOrEqual(712);
      expect(section.counts.nGenes).toBeGreaterThan(14_000);
      expect(section.micronsPerPixel).toBeGreaterThan(0.5);
      total += inTissue(section);
      expected += independentInTissue(folder);
      dropped += section.warnings.reduce((n, w) => n + Number(/^(\d+) of \d+ spots .* dropped$/.exec(w)?.[1] ?? 0), 0);
      expect(section.image === null).toBe(!['A1', 'A2', 'B4'].includes(name));
    }
    expect(total).toBe(expected);
    // The data README counts 12,534 spots in the counts tables; A2 has two without a position.
    expect(total + dropped).toBe(12_534);
    expect(dropped).toBe(2);
  });
});

/** In-tissue spots with counts, by plain string handling of the two tables. */
function independentInTissue(folder: string): number {
  const ids = gunzipSync(readFileSync(join(folder, 'counts.tsv.gz')))
    .toString('utf8')
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((l) => l.slice(0, l.indexOf('\t')));
  const selected = new Set(
    readFileSync(join(folder, 'spots.tsv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t'))
      .filter((r) => r[6].trim() === '1')
      .map((r) => `${Math.round(Number(r[0]))}x${Math.round(Number(r[1]))}`),
  );
  return ids.filter((id) => selected.has(id)).length;
}

describe('legacy ST reader: STUtility mouse olfactory bulb (2k array)', () => {
  let sections: Section[];

  beforeAll(async () => {
    sections = await readFolder(mob);
  });

  it('finds the four sections of the one folder, paired by name', async () => {
    const sources = await legacyStReader.detect(mob);
    expect(sources.map((s) => s.name)).toEqual(['MOB1', 'MOB2', 'MOB3', 'MOB4']);
    expect(sources[0].hints).toMatchObject({
      counts: join(mob, 'counts/MOB1.tsv.gz'),
      spots: join(mob, 'spots/alignment_table_MOB1.tsv'),
      image: join(mob, 'images/MOB1_HE.jpg'),
      genes: join(mob, 'mouse_genes.tsv.gz'),
    });
  });

  it('reads spots, genes, symbols, pixel size and geometry', () => {
    expect(sections.map(inTissue)).toEqual([379, 407, 438, 403]);
    for (const section of sections) {
      expect(section.counts.nGenes).toBe(1000);
      expect(section.genes.ids.every((id) => /^ENSMUSG\d+\.\d+$/.test(id ?? ''))).toBe(true);
      const mapped = section.genes.symbols.filter((s, i) => s !== section.genes.ids[i]).length;
      expect(mapped).toBeGreaterThan(990);
      const apoe = section.genes.ids.indexOf('ENSMUSG00000002985.16');
      expect(section.genes.symbols[apoe]).toBe('Apoe');
      expect(section.micronsPerPixel! / 4.38).toBeGreaterThan(0.95);
      expect(section.micronsPerPixel! / 4.38).toBeLessThan(1.05);
      expect(section.spotDiameterMicrons).toBe(100);
      expect(section.spotSpacingMicrons).toBeCloseTo(141.4, 1);
      expect(section.image).toMatchObject({ kind: 'file', width: 1905, height: 1905, scale: 1 });
      expect(allSpotsInsideImage(section)).toBe(true);
      expect(section.labels.size).toBe(0);
      // Count spots without a position (off the Spot Detector grid) are dropped, and said so.
      expect(section.warnings.some((w) => /^\d+ of 193\d spots in MOB\d\.tsv\.gz have no position/.test(w))).toBe(true);
    }
    expect(sections[0].spots.ids).toHaveLength(1923);
    expect(sections[0].source).toBe(join(mob, 'counts/MOB1.tsv.gz'));
  });

  it('matches the STUtility merged table: counts of in-tissue spots', () => {
    const merged = readFileSync(join(mob, 'merged/MOB1_spots.tsv'), 'utf8').trim().split('\n').slice(1);
    const section = sections[0];
    for (const line of merged.slice(0, 25)) {
      const [id, , , , , total] = line.split('\t');
      const spot = section.spots.ids.indexOf(id);
      expect(section.spots.inTissue[spot]).toBe(1);
      expect(section.counts.spotTotals()[spot]).toBe(Number(total));
    }
  });
});

describe('legacy ST reader: other layouts', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'legacy-st-layouts-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads genes-as-rows tables as R writes them, gzipped whatever the name says', async () => {
    const raw = rawCounts(join(her2st, 'A1'));
    const genes = raw.genes.slice(0, 200);
    const quote = (s: string) => `"${s}"`;
    // write.table(): quoted names, no corner cell in the header.
    const lines = [raw.rows.map((r) => quote(r[0])).join('\t')];
    genes.forEach((gene, g) => lines.push([quote(gene), ...raw.rows.map((r) => r[g + 1])].join('\t')));
    const folder = join(dir, 'transposed');
    await mkdir(folder);
    await writeFile(join(folder, 'stdata.txt'), gzipSync(lines.join('\n') + '\n'));
    // A Spot Detector table without the `selected` column: every spot counts as under tissue.
    const spots = readFileSync(join(her2st, 'A1/spots.tsv'), 'utf8').split('\n');
    await writeFile(join(folder, 'positions.tsv'), spots.map((l) => l.split('\t').slice(0, 6).join('\t')).join('\n'));
    const section = await readOne(folder);
    expect(section.name).toBe('transposed');
    expect(section.counts.nGenes).toBe(200);
    expect(section.genes.symbols[1]).toBe('SAMD11');
    expect(section.spots.ids).toHaveLength(346);
    expect(inTissue(section)).toBe(346);
    expect(section.counts.get(section.spots.ids.indexOf('10x13'), section.genes.symbols.indexOf('SAMD11'))).toBe(6);
    // No scale factors: the pixel size comes from the 1k lattice (200 um pitch), close to the given 0.91747.
    expect(section.micronsPerPixel! / 0.91747).toBeGreaterThan(0.97);
    expect(section.micronsPerPixel! / 0.91747).toBeLessThan(1.03);
    expect(section.image).toBeNull();
  });

  it('pairs sections kept flat in one folder, as STUtility ships them (MOB1.tsv, alignment_table_MOB1.tsv, MOB1.jpg)', async () => {
    const folder = join(dir, 'flat');
    await mkdir(folder);
    for (const n of [1, 2]) {
      const counts = gunzipSync(await readFile(join(mob, `counts/MOB${n}.tsv.gz`)));
      await writeFile(join(folder, `MOB${n}.tsv`), counts);
      await writeFile(
        join(folder, `alignment_table_MOB${n}.tsv`),
        await readFile(join(mob, `spots/alignment_table_MOB${n}.tsv`)),
      );
      await writeFile(join(folder, `MOB${n}.jpg`), await readFile(join(mob, `images/MOB${n}_HE.jpg`)));
    }
    const sources = await legacyStReader.detect(folder);
    expect(sources.map((s) => [s.name, s.hints?.spots, s.hints?.image])).toEqual([
      ['MOB1', join(folder, 'alignment_table_MOB1.tsv'), join(folder, 'MOB1.jpg')],
      ['MOB2', join(folder, 'alignment_table_MOB2.tsv'), join(folder, 'MOB2.jpg')],
    ]);
    const sections = await Promise.all(sources.map((s) => legacyStReader.read(s)));
    expect(sections.map(inTissue)).toEqual([379, 407]);
    // Without mouse_genes.tsv.gz the Ensembl ids stand in for symbols, and the user is told.
    expect(sections[0].genes.symbols[0]).toBe('ENSMUSG00000064339.1');
    expect(sections[0].warnings).toContain(
      '1000 of 1000 Ensembl gene ids have no symbol (no gene_id/gene_name table found); they are shown by id',
    );
  });

  it('finds a STUtility section from its counts file; a folder of section folders is not itself a section', async () => {
    const sources = await legacyStReader.detect(join(mob, 'counts/MOB3.tsv.gz'));
    expect(sources.map((s) => s.name)).toEqual(['MOB3']);
    const parent = join(dir, 'parent');
    await mkdir(join(parent, 'A1'), { recursive: true });
    for (const name of ['counts.tsv.gz', 'spots.tsv']) {
      await writeFile(join(parent, 'A1', name), await readFile(join(her2st, 'A1', name)));
    }
    expect(await legacyStReader.detect(parent)).toEqual([]);
    expect(await legacyStReader.detect(join(parent, 'A1'))).toHaveLength(1);
  });
});

describe('legacy ST reader: broken inputs fail with the file and the problem', () => {
  let dir: string;
  let counts: string;
  let cases = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'legacy-st-broken-'));
    counts = gunzipSync(await readFile(join(her2st, 'A1/counts.tsv.gz'))).toString('utf8');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A copy of A1 (image only when asked), with some files replaced or left out. */
  async function brokenA1(changes: Record<string, Buffer | string | null>, withImage = false): Promise<string> {
    const folder = join(dir, `case${++cases}`);
    await mkdir(folder);
    const files = ['counts.tsv.gz', 'spots.tsv', 'scalefactors_json.json', 'annotations.tsv'];
    if (withImage) files.push('image.png');
    for (const name of new Set([...files, ...Object.keys(changes)])) {
      const content = name in changes ? changes[name] : await readFile(join(her2st, 'A1', name));
      if (content !== null) await writeFile(join(folder, name), content);
    }
    return folder;
  }

  /** Reads the folder as the app would, or straight from its path when detection finds nothing. */
  async function failure(folder: string): Promise<DataError> {
    const sources = await legacyStReader.detect(folder);
    const source = sources[0] ?? { format: 'legacy-st' as const, name: 'A1', path: folder };
    const error = await legacyStReader.read(source).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DataError);
    return error as DataError;
  }

  const editLine = (text: string, line: number, edit: (fields: string[]) => string[]) =>
    text
      .split('\n')
      .map((l, i) => (i === line - 1 ? edit(l.split('\t')).join('\t') : l))
      .join('\n');

  it('truncated counts.tsv.gz', async () => {
    const gz = await readFile(join(her2st, 'A1/counts.tsv.gz'));
    const folder = await brokenA1({ 'counts.tsv.gz': gz.subarray(0, gz.length >> 1) });
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'counts.tsv.gz'));
    expect(error.message).toMatch(/counts\.tsv\.gz: corrupt or truncated gzip/);
  });

  it('missing spots.tsv', async () => {
    const folder = await brokenA1({ 'spots.tsv': null });
    const error = await failure(folder);
    expect(error.message).toContain(folder);
    expect(error.message).toMatch(/no Spot Detector table .* for counts\.tsv\.gz/);
  });

  it('missing counts table', async () => {
    const folder = await brokenA1({ 'counts.tsv.gz': null });
    expect(await legacyStReader.detect(folder)).toEqual([]);
    const error = await failure(folder);
    expect(error.file).toBe(folder);
    expect(error.message).toMatch(/no legacy ST counts table found/);
  });

  it('duplicate spot id in the counts table', async () => {
    const lines = counts.split('\n');
    const folder = await brokenA1({ 'counts.tsv.gz': gzipSync(counts + lines[1] + '\n') });
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'counts.tsv.gz'));
    expect(error.message).toMatch(/spot id 10x13 appears twice \(line 2 and line 348\)/);
  });

  it('duplicate spot in the Spot Detector table', async () => {
    const spots = readFileSync(join(her2st, 'A1/spots.tsv'), 'utf8');
    const folder = await brokenA1({ 'spots.tsv': spots + spots.split('\n')[1] + '\n' });
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'spots.tsv'));
    expect(error.message).toMatch(/spot 22x12 appears twice \(lines 2 and 350\)/);
  });

  it('a negative count', async () => {
    const folder = await brokenA1({
      'counts.tsv.gz': gzipSync(editLine(counts, 3, (f) => [f[0], '-2', ...f.slice(2)])),
    });
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'counts.tsv.gz'));
    expect(error.message).toMatch(/line 3, column 2 \(10x14 \/ FO538757\.1\): count is negative \(-2\)/);
  });

  it('a NaN count', async () => {
    const folder = await brokenA1({
      'counts.tsv.gz': gzipSync(editLine(counts, 5, (f) => [...f.slice(0, 9), 'NaN', ...f.slice(10)])),
    });
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'counts.tsv.gz'));
    expect(error.message).toMatch(/line 5, column 10 .*: count is not finite \(NaN\)/);
  });

  it('a count that is not a number', async () => {
    const folder = await brokenA1({
      'counts.tsv.gz': gzipSync(editLine(counts, 4, (f) => [...f.slice(0, 3), 'x7', ...f.slice(4)])),
    });
    const error = await failure(folder);
    expect(error.message).toMatch(/counts\.tsv\.gz: line 4, column 4 .*: "x7" is not a number/);
  });

  it('counts and positions that share no spot', async () => {
    const spots = readFileSync(join(her2st, 'A1/spots.tsv'), 'utf8')
      .trim()
      .split('\n')
      .map((l, i) => (i === 0 ? l : l.replace(/^(\d+)/, (x) => String(Number(x) + 100))))
      .join('\n');
    const error = await failure(await brokenA1({ 'spots.tsv': spots }));
    expect(error.file).toMatch(/counts\.tsv\.gz$/);
    expect(error.message).toMatch(/no spot ids in common with spots\.tsv/);
  });

  it('a spot moved outside the image', async () => {
    const spots = readFileSync(join(her2st, 'A1/spots.tsv'), 'utf8');
    const folder = await brokenA1(
      { 'spots.tsv': editLine(spots, 2, (f) => [...f.slice(0, 4), '20000', ...f.slice(5)]) },
      true,
    );
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'spots.tsv'));
    expect(error.message).toMatch(
      /1 in-tissue spots lie outside image\.png \(2000x2138 px at scale 0\.287604\), e\.g\. 22x12/,
    );
  });

  it('truncated image.png', async () => {
    const png = await readFile(join(her2st, 'A1/image.png'));
    const folder = await brokenA1({ 'image.png': png.subarray(0, Math.floor(png.length * 0.6)) });
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'image.png'));
    expect(error.message).toMatch(/PNG image is truncated or corrupt/);
  });

  it('a file named like the image that is no image', async () => {
    const folder = await brokenA1({ 'image.png': 'not an image\n' });
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'image.png'));
    expect(error.message).toMatch(/not a PNG, JPEG or TIFF image/);
  });

  it('a ragged row', async () => {
    const folder = await brokenA1({ 'counts.tsv.gz': gzipSync(editLine(counts, 10, (f) => f.slice(0, -1))) });
    const error = await failure(folder);
    expect(error.file).toBe(join(folder, 'counts.tsv.gz'));
    expect(error.message).toMatch(/line 10 has 15045 fields, expected 15046 \(ragged row\)/);
  });

  it('a ragged Spot Detector row', async () => {
    const spots = readFileSync(join(her2st, 'A1/spots.tsv'), 'utf8');
    const folder = await brokenA1({ 'spots.tsv': editLine(spots, 7, (f) => f.slice(0, 5)) });
    const error = await failure(folder);
    expect(error.message).toMatch(/spots\.tsv: line 7 has 5 fields, expected 7 \(ragged row\)/);
  });
});
