// Similar tissue (issue 5): exact nearest neighbours by Lorentz distance on tiny hand-made embeddings, and through the
// StudioApi with the bundled base model on the demo (HER2ST B4) and HER2ST A1 (needs ../shared/data/her2st/A1).

import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nearestRows } from '../../core/api/similarity.js';
import { Studio } from '../../core/api/studio.js';
import { euclideanDistance, lorentzDistance } from '../../core/eval/gene-prediction.js';
import type { Matrix } from '../../core/eval/matrix.js';
import { demoPath, packageRoot } from '../../core/resources.js';

function matrix(rows: number[][]): Matrix {
  return { rows: rows.length, cols: rows[0].length, data: Float64Array.from(rows.flat()) };
}

describe('nearestRows', () => {
  // Points on one geodesic through the origin of the hyperboloid (c = 1): d((a, 0), (b, 0)) = |asinh a - asinh b|.
  const query = Float64Array.of(0.5, 0);
  const blocks = [
    {
      embeddings: matrix([
        [0, 0],
        [2, 0],
      ]),
    },
    {
      embeddings: matrix([
        [-1, 0],
        [0.6, 0],
        [1, 0],
      ]),
    },
  ];

  it('finds the hand-computed Lorentz neighbours, nearest first, across blocks', () => {
    const found = nearestRows(query, blocks, 4, lorentzDistance(1));
    expect(found.map((n) => [n.part, n.row])).toEqual([
      [1, 1], // 0.6: |asinh 0.6 - asinh 0.5| = 0.0876
      [1, 2], // 1:   0.4002
      [0, 0], // 0:   0.4812
      [0, 1], // 2:   0.9624
    ]);
    const expected = [0.6, 1, 0, 2].map((b) => Math.abs(Math.asinh(b) - Math.asinh(0.5)));
    found.forEach((n, i) => expect(n.distance).toBeCloseTo(expected[i], 12));
  });

  it('differs from the Euclidean order where the geometry does (0 and 1 tie in Euclidean distance)', () => {
    const euclid = nearestRows(query, blocks, 3, euclideanDistance);
    expect(euclid.map((n) => [n.part, n.row])).toEqual([
      [1, 1],
      [0, 0], // a tie at 0.5 with (1, 0): broken by block order
      [1, 2],
    ]);
  });

  it('returns every row when k is larger, and names a dimension mismatch', () => {
    expect(nearestRows(query, blocks, 50, lorentzDistance(1))).toHaveLength(5);
    expect(() => nearestRows(Float64Array.of(1, 2, 3), blocks, 2, euclideanDistance)).toThrow(/2 dimensions/);
  });
});

const A1 = resolve(packageRoot(), '..', 'shared', 'data', 'her2st', 'A1');
const skip = !existsSync(A1);
if (skip) console.log('findSimilarSpots API test skipped: needs ../shared/data/her2st/A1');

describe.skipIf(skip)('findSimilarSpots with the base model', () => {
  let studio: Studio;
  let demo: string;
  let a1: string;

  beforeAll(async () => {
    studio = new Studio({ cacheDir: join(tmpdir(), 'delst-similarity-test-unused') });
    demo = (await studio.openPath(demoPath())).opened[0].id;
    a1 = (await studio.openPath(A1)).opened[0].id;
  });

  afterAll(async () => {
    await studio?.shutdown();
  });

  it('gives the spot itself first at distance ~0, then its neighbours over both sections, sorted', async () => {
    const [model] = await studio.listModels();
    const spots = await studio.getSpots(demo);
    const index = spots.inTissue.indexOf(true);
    const found = await studio.findSimilarSpots(demo, index, { modelId: model.id, k: 400 });
    expect(found).toHaveLength(400);
    expect(found[0]).toMatchObject({ sectionId: demo, spotIndex: index, spotId: spots.ids[index] });
    expect(found[0].distance).toBeLessThan(1e-6);
    for (let i = 1; i < found.length; i++) expect(found[i].distance).toBeGreaterThanOrEqual(found[i - 1].distance);
    // 400 spots out of B4's 283 and A1's 346: both sections take part.
    expect(new Set(found.map((f) => f.sectionId))).toEqual(new Set([demo, a1]));
    const a1Spots = await studio.getSpots(a1);
    for (const f of found.filter((f) => f.sectionId === a1)) {
      expect(a1Spots.inTissue[f.spotIndex]).toBe(true);
      expect(f.spotId).toBe(a1Spots.ids[f.spotIndex]);
      expect(f.sectionName).toBe('A1');
    }
    const few = await studio.findSimilarSpots(demo, index, { modelId: model.id });
    expect(few).toEqual(found.slice(0, 10));
  });

  it('names the errors', async () => {
    const spots = await studio.getSpots(demo);
    const inside = spots.inTissue.indexOf(true);
    const outside = spots.inTissue.indexOf(false);
    await expect(studio.findSimilarSpots(demo, inside, { modelId: 'nope' })).rejects.toThrow(/no model with id nope/);
    await expect(studio.findSimilarSpots(demo, inside, { modelId: 'base', k: 0 })).rejects.toThrow(/k must be/);
    await expect(studio.findSimilarSpots(demo, -1, { modelId: 'base' })).rejects.toThrow(/no spot -1/);
    if (outside >= 0) {
      await expect(studio.findSimilarSpots(demo, outside, { modelId: 'base' })).rejects.toThrow(/outside the tissue/);
    }
  });
});
