// The core side of the viewer's calls (gene search, gene values, spot details) on the bundled demo and on HER2ST
// A1, checked against computations of our own straight from the SparseCounts (row access, not the gene-major
// index the Studio reads genes from).

import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GeneSummary, GeneValues } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { openSections } from '../../core/readers/open.js';
import { demoPath } from '../../core/resources.js';
import type { Section } from '../../core/section/section.js';
import { SparseCounts } from '../../core/section/sparse-counts.js';

const A1 = resolve(import.meta.dirname, '../../../shared/data/her2st/A1');
/** No slide is asked for here: the cache folder is never created. */
const CACHE = join(tmpdir(), 'delst-studio-test-unused');

function decode(base64: string): Float32Array {
  const bytes = new Uint8Array(Buffer.from(base64, 'base64'));
  return new Float32Array(bytes.buffer);
}

/** Library sizes by summing each spot's row. */
function rowTotals(section: Section): number[] {
  return Array.from({ length: section.counts.nSpots }, (_, s) =>
    section.counts.spot(s).values.reduce((sum, v) => sum + v, 0),
  );
}

function medianOf(values: number[]): number {
  const sorted = values.filter((v) => v > 0).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Brute-force gene search: rank every gene by how it matches, then by total counts (summed per spot). */
function expectedSearch(section: Section, query: string, limit: number): string[] {
  const q = query.toLowerCase();
  const totals = geneTotals(section);
  const ranked: { symbol: string; rank: number; total: number }[] = [];
  section.genes.symbols.forEach((symbol, g) => {
    const names = [symbol.toLowerCase(), section.genes.ids[g]?.toLowerCase() ?? ''];
    const rank = names.some((n) => n === q)
      ? 0
      : names.some((n) => n.startsWith(q))
        ? 1
        : names.some((n) => n.includes(q))
          ? 2
          : -1;
    if (rank >= 0) ranked.push({ symbol, rank, total: totals[g] });
  });
  ranked.sort((a, b) => a.rank - b.rank || b.total - a.total || (a.symbol < b.symbol ? -1 : 1));
  return ranked.slice(0, limit).map((r) => r.symbol);
}

const totalsBySection = new WeakMap<Section, Float64Array>();

/** Gene totals by looking up every (spot, gene) cell. */
function geneTotals(section: Section): Float64Array {
  let totals = totalsBySection.get(section);
  if (!totals) {
    totals = new Float64Array(section.counts.nGenes);
    for (let s = 0; s < section.counts.nSpots; s++) {
      for (let g = 0; g < section.counts.nGenes; g++) totals[g] += section.counts.get(s, g);
    }
    totalsBySection.set(section, totals);
  }
  return totals;
}

const cases = [
  { name: 'demo', path: demoPath(), present: existsSync(demoPath()) },
  { name: 'A1', path: A1, present: existsSync(A1) },
];

describe.each(cases)('Studio viewer calls on $name', ({ name, path, present }) => {
  let studio: Studio;
  let id: string;
  let section: Section;

  beforeAll(async () => {
    if (!present) return;
    studio = new Studio({ cacheDir: CACHE });
    const { opened } = await studio.openPath(path);
    id = opened[0].id;
    // The same files read again: the Studio's copy stays private.
    section = (await openSections(path)).sections[0];
  });

  it.skipIf(!present)('searches genes: exact, then prefix, then substring, each by total counts', async () => {
    for (const query of ['ERBB2', 'erb', 'BB2', 'krt', 'mt-', 'x']) {
      const found = await studio.searchGenes(id, query, 15);
      expect(
        found.map((g) => g.symbol),
        query,
      ).toEqual(expectedSearch(section, query, 15));
    }
    const [erbb2] = await studio.searchGenes(id, 'erbb2');
    expect(erbb2.symbol).toBe('ERBB2');
    const g = section.genes.symbols.indexOf('ERBB2');
    expect(erbb2.index).toBe(g);
    const dense = section.counts.geneDense(g);
    expect(erbb2.totalCounts).toBe(dense.reduce((sum, v) => sum + v, 0));
    expect(erbb2.spots).toBe(dense.filter((v) => v > 0).length);
    expect(await studio.searchGenes(id, 'no-such-gene-anywhere')).toEqual([]);
  });

  it.skipIf(!present)('lists the most expressed genes for an empty query, at most `limit`', async () => {
    const top = await studio.searchGenes(id, '', 5);
    expect(top).toHaveLength(5);
    expect(top.map((g) => g.symbol)).toEqual(expectedSearch(section, '', 5));
    expect(await studio.searchGenes(id, '', 1000)).toHaveLength(200);
    await expect(studio.searchGenes(id, 'a', 0)).rejects.toThrow(/limit/);
  });

  it.skipIf(!present)('gives raw and library-size normalised values of one gene for every spot', async () => {
    const values: GeneValues = await studio.getGeneValues(id, 'erbb2');
    expect(values.gene.symbol).toBe('ERBB2');
    expect(values.encoding).toBe('float32-base64');
    const raw = decode(values.raw);
    const normalised = decode(values.normalised);
    const n = section.spots.ids.length;
    expect(raw).toHaveLength(n);
    expect(normalised).toHaveLength(n);
    const g = section.genes.symbols.indexOf('ERBB2');
    const totals = rowTotals(section);
    const target = medianOf(totals);
    expect(values.targetSum).toBe(target);
    for (let s = 0; s < n; s++) {
      const count = section.counts.get(s, g);
      expect(raw[s]).toBe(count);
      const expected = count > 0 ? Math.log(1 + (count / totals[s]) * target) : 0;
      expect(normalised[s]).toBeCloseTo(expected, 5);
    }
    expect(raw.some((v) => v > 0)).toBe(true);
  });

  it.skipIf(!present)('finds genes by id as well as symbol, and names a gene the section lacks', async () => {
    await expect(studio.getGeneValues(id, 'NOT_A_GENE')).rejects.toThrow(`${name} has no gene "NOT_A_GENE"`);
    await expect(studio.getGeneValues('s999', 'ERBB2')).rejects.toThrow(/no open section/);
  });

  it.skipIf(!present)('describes a spot: id, totals, genes detected, labels and top genes', async () => {
    const totals = rowTotals(section);
    const n = section.spots.ids.length;
    for (const s of [0, 1, n >> 1, n - 1]) {
      const details = await studio.getSpotDetails(id, s);
      expect(details.index).toBe(s);
      expect(details.id).toBe(section.spots.ids[s]);
      expect(details.inTissue).toBe(section.spots.inTissue[s] === 1);
      expect(details.totalCounts).toBe(totals[s]);
      // Genes detected, by scanning the dense row.
      let detected = 0;
      const row: { symbol: string; count: number }[] = [];
      for (let g = 0; g < section.counts.nGenes; g++) {
        const count = section.counts.get(s, g);
        if (count > 0) {
          detected++;
          row.push({ symbol: section.genes.symbols[g], count });
        }
      }
      expect(details.nnz).toBe(detected);
      row.sort((a, b) => b.count - a.count || (a.symbol < b.symbol ? -1 : 1));
      expect(details.topGenes).toEqual(row.slice(0, 10));
      for (const [column, labels] of section.labels) expect(details.labels[column]).toBe(labels[s]);
      expect(Object.keys(details.labels).sort()).toEqual([...section.labels.keys()].sort());
    }
    await expect(studio.getSpotDetails(id, n)).rejects.toThrow(/no spot/);
    await expect(studio.getSpotDetails(id, 1.5)).rejects.toThrow(/no spot/);
    await expect(studio.getSpotDetails(id, -1)).rejects.toThrow(/no spot/);
  });

  it.skipIf(!present)('gives the scale bar its microns per slide pixel', async () => {
    const spots = await studio.getSpots(id);
    const scale = section.image?.scale ?? 1;
    expect(spots.micronsPerPixel).toBeCloseTo((section.micronsPerPixel ?? NaN) / scale, 9);
    // The spot diameter in slide pixels times microns per slide pixel is the physical diameter.
    expect((spots.diameter ?? NaN) * (spots.micronsPerPixel ?? NaN)).toBeCloseTo(section.spotDiameterMicrons, 6);
  });
});

describe.skipIf(!existsSync(A1))('ERBB2 on HER2ST A1 (a HER2-positive tumour)', () => {
  it('is higher in invasive cancer than in connective and adipose tissue', async () => {
    const studio = new Studio({ cacheDir: CACHE });
    const [summary] = (await studio.openPath(A1)).opened;
    const values = decode((await studio.getGeneValues(summary.id, 'ERBB2')).normalised);
    const spots = await studio.getSpots(summary.id);
    const mean = (label: string) => {
      const picked = spots.labels.pathologist.flatMap((l, s) => (l === label && spots.inTissue[s] ? [values[s]] : []));
      return picked.reduce((a, b) => a + b, 0) / picked.length;
    };
    expect(mean('invasive cancer')).toBeGreaterThan(mean('connective tissue') + 0.2);
    expect(mean('invasive cancer')).toBeGreaterThan(mean('adipose tissue') + 0.2);
  });
});

describe('Studio.addSection (benchmarks and tests, not the API)', () => {
  it('adds an in-memory section that the viewer calls then serve', async () => {
    const studio = new Studio({ cacheDir: CACHE });
    const counts = SparseCounts.fromDense(3, 2, [1, 0, 4, 2, 0, 0]);
    const section: Section = {
      name: 'tiny',
      format: 'anndata',
      source: 'memory',
      spots: {
        ids: ['a', 'b', 'c'],
        x: Float64Array.of(10, 20, 30),
        y: Float64Array.of(5, 5, 5),
        inTissue: Uint8Array.of(1, 1, 0),
        arrayRow: Float64Array.of(NaN, NaN, NaN),
        arrayCol: Float64Array.of(NaN, NaN, NaN),
      },
      genes: { symbols: ['G1', 'G2'], ids: ['ENSG1', 'ENSG2'] },
      counts,
      image: null,
      micronsPerPixel: 0.5,
      spotDiameterMicrons: 10,
      spotSpacingMicrons: 20,
      labels: new Map([['region', ['x', null, 'y']]]),
      warnings: [],
    };
    const summary = studio.addSection(section);
    expect(summary.spots).toBe(2);
    expect((await studio.listSections()).map((s) => s.id)).toEqual([summary.id]);
    const byId: GeneSummary[] = await studio.searchGenes(summary.id, 'ensg2');
    // Exact id match first, then the other gene whose id starts with it ('ensg1' does not contain 'ensg2').
    expect(byId.map((g) => g.symbol)).toEqual(['G2']);
    expect(Array.from(decode((await studio.getGeneValues(summary.id, 'ENSG1')).raw))).toEqual([1, 4, 0]);
    // Spot totals 1, 6, 0: median of the positive ones is 3.5; G1 at spot b = ln(1 + 4/6 * 3.5).
    const values = await studio.getGeneValues(summary.id, 'g1');
    expect(values.targetSum).toBe(3.5);
    expect(decode(values.normalised)[1]).toBeCloseTo(Math.log1p((4 / 6) * 3.5), 6);
    expect(decode(values.normalised)[2]).toBe(0);
    expect(await studio.getSpotDetails(summary.id, 1)).toEqual({
      index: 1,
      id: 'b',
      inTissue: true,
      totalCounts: 6,
      nnz: 2,
      labels: { region: null },
      topGenes: [
        { symbol: 'G1', count: 4 },
        { symbol: 'G2', count: 2 },
      ],
    });
  });
});
