// The gene panel on real HER2ST sections: highly variable genes (deterministic, and equal to an independent numpy
// implementation of scanpy's seurat flavour with batch_key, run once when this test was written), log
// normalisation and nnz checked against the raw counts file rather than against SparseCounts.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  expressionMatrix,
  inTissueSpots,
  panelCoverage,
  panelFromGenes,
  percentileRank,
  selectGenePanel,
  spotNnz,
  validateGenePanel,
  type GenePanel,
} from '../../core/engine/gene-panel.js';
import { openSections } from '../../core/readers/open.js';
import type { Section } from '../../core/section/section.js';

const her2st = join(resolve(import.meta.dirname, '../../../shared/data'), 'her2st');

/** Spot id -> raw counts by gene symbol, parsed the plain way from counts.tsv.gz. */
function rawCounts(folder: string): { genes: string[]; rows: Map<string, number[]> } {
  const lines = gunzipSync(readFileSync(join(folder, 'counts.tsv.gz')))
    .toString('utf8')
    .split('\n')
    .filter(Boolean);
  const rows = new Map(
    lines
      .slice(1)
      .map((l) => l.split('\t'))
      .map((p) => [p[0], p.slice(1).map(Number)]),
  );
  return { genes: lines[0].split('\t').slice(1), rows };
}

let a1: Section;
let a2: Section;
let panel: GenePanel;

beforeAll(async () => {
  a1 = (await openSections(join(her2st, 'A1'))).sections[0];
  a2 = (await openSections(join(her2st, 'A2'))).sections[0];
  panel = selectGenePanel([a1, a2]);
});

describe('highly variable genes on HER2ST A1 + A2', () => {
  it('chooses 1000 genes measured in both sections, the same every time', () => {
    expect(panel.genes).toHaveLength(1000);
    expect(new Set(panel.genes).size).toBe(1000);
    expect(panel.selection).toEqual({
      method: 'seurat-dispersion-per-section',
      sections: ['A1', 'A2'],
      candidates: 14412,
    });
    expect(panelCoverage(a1, panel)).toEqual({ found: 1000, missing: [] });
    expect(panelCoverage(a2, panel).found).toBe(1000);
    expect(selectGenePanel([a1, a2]).genes).toEqual(panel.genes);
    // The numpy reference gives the same 1000 genes in the same order; its first ones:
    expect(panel.genes.slice(0, 6)).toEqual(['IGHA1', 'IGLC3', 'IGHM', 'IGLC2', 'HOOK3', 'IGHG3']);
  });

  it('keeps fewer genes when asked (top N per section depends on N, so not a prefix of the 1000)', () => {
    const small = selectGenePanel([a1, a2], { size: 50 }).genes;
    expect(new Set(small).size).toBe(50);
    expect(small.every((g) => panel.genes.includes(g))).toBe(true);
  });

  it('survives JSON', () => {
    expect(validateGenePanel(JSON.parse(JSON.stringify(panel)))).toEqual(panel);
    expect(() => validateGenePanel({ ...panel, mean: [1] })).toThrow(/mean must hold 1000 numbers/);
  });
});

describe('model input and nnz', () => {
  it('is log1p(count * 1e4 / library size), library size over all genes, by hand on a few spots', () => {
    const raw = rawCounts(join(her2st, 'A1'));
    const spots = inTissueSpots(a1).slice(0, 4);
    const x = expressionMatrix(a1, panel, spots);
    expect(x.length).toBe(4 * 1000);
    const genes = [0, 1, 2, 100, 577, 999];
    spots.forEach((spot, r) => {
      const row = raw.rows.get(a1.spots.ids[spot])!;
      const total = row.reduce((a, b) => a + b, 0);
      for (const j of genes) {
        const count = row[raw.genes.indexOf(panel.genes[j])];
        expect(x[r * 1000 + j]).toBeCloseTo(Math.log1p((count * 1e4) / total), 5);
      }
    });
  });

  it('standardises with the training mean and std when asked', () => {
    const standard = panelFromGenes(panel.genes.slice(0, 20), [a1, a2], { standardize: true });
    const x = [...expressionMatrix(a1, standard), ...expressionMatrix(a2, standard)];
    const n = x.length / 20;
    const column = (j: number) => x.filter((_, k) => k % 20 === j);
    for (const j of [0, 7, 19]) {
      const mean = column(j).reduce((a, b) => a + b, 0) / n;
      const variance = column(j).reduce((a, b) => a + (b - mean) ** 2, 0) / n;
      expect(mean).toBeCloseTo(0, 4);
      expect(variance).toBeCloseTo(1, 4);
    }
  });

  it('gives 0 for a panel gene a section lacks', () => {
    const fixed = panelFromGenes(['NOT-A-GENE', panel.genes[0]], [a1]);
    expect(panelCoverage(a1, fixed)).toEqual({ found: 1, missing: ['NOT-A-GENE'] });
    const x = expressionMatrix(a1, fixed);
    expect(x.filter((_, k) => k % 2 === 0).every((v) => v === 0)).toBe(true);
  });

  it('counts nnz as the genes with a raw count > 0, over the whole transcriptome', () => {
    const raw = rawCounts(join(her2st, 'A1'));
    const spots = inTissueSpots(a1);
    const nnz = spotNnz(a1, spots);
    spots.forEach((spot, r) => {
      expect(nnz[r]).toBe(raw.rows.get(a1.spots.ids[spot])!.filter((v) => v > 0).length);
    });
    const onPanel = spotNnz(a1, spots, panel.genes);
    const panelColumns = panel.genes.map((g) => raw.genes.indexOf(g));
    expect(onPanel[0]).toBe(panelColumns.filter((c) => raw.rows.get(a1.spots.ids[spots[0]])![c] > 0).length);
  });

  it('ranks nnz within a section as percentiles, ties sharing their average rank', () => {
    expect(Array.from(percentileRank([5, 1, 5, 3]))).toEqual([5 / 6, 0, 5 / 6, 1 / 3].map(Math.fround));
    expect(Array.from(percentileRank([7]))).toEqual([0.5]);
    const ranks = percentileRank(spotNnz(a1));
    expect(Math.min(...ranks)).toBe(0);
    expect(Math.max(...ranks)).toBe(1);
  });
});
