// Gene prediction from embeddings: nearest-spot (BLEEP-style) predictor, the Lorentz distance against the engine's
// tfjs implementation, ridge regression on an exactly linear map, gene selection and the end-to-end evaluation.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { expMap0, pairwiseDistance } from '../../core/engine/lorentz.js';
import { Rng } from '../../core/engine/random.js';
import {
  chooseRidgeAlpha,
  denseGeneSource,
  euclideanDistance,
  evaluateGenePrediction,
  fitRidge,
  knnPredict,
  lorentzDistance,
  lorentzDistanceBetween,
  nearestNeighbours,
  predictRidge,
  selectGenes,
} from '../../core/eval/gene-prediction.js';
import { fromRows, type Matrix, row } from '../../core/eval/matrix.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function randomMatrix(rows: number, cols: number, seed: number, std = 1): Matrix {
  const rng = new Rng(seed);
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
  return { rows, cols, data };
}

/** Y = X A + c (+ noise), n x G. */
function linearTargets(X: Matrix, A: number[][], c: number[], noise = 0, seed = 0): Matrix {
  const rng = new Rng(seed);
  const G = c.length;
  const data = new Float64Array(X.rows * G);
  for (let i = 0; i < X.rows; i++) {
    for (let g = 0; g < G; g++) {
      let s = c[g];
      for (let j = 0; j < X.cols; j++) s += X.data[i * X.cols + j] * A[j][g];
      data[i * G + g] = s + noise * rng.normal();
    }
  }
  return { rows: X.rows, cols: G, data };
}

describe('nearest-spot predictor', () => {
  it('recovers the training expression exactly with k = 1 when the test spots are the training spots', () => {
    const X = randomMatrix(40, 8, 1);
    const Y = randomMatrix(40, 5, 2);
    for (const distance of [euclideanDistance, lorentzDistance(0.7)]) {
      const pred = knnPredict(X, Y, X, { k: 1, distance });
      expect(Array.from(pred.data)).toEqual(Array.from(Y.data));
    }
  });

  it('weights neighbours by 1/(d + eps) or softmax(-d/tau)', () => {
    const ref = fromRows([[0], [1], [3]]);
    const values = fromRows([[0], [10], [20]]);
    const query = fromRows([[0.5]]);
    // d = 0.5, 0.5, 2.5 -> inverse weights 2, 2, 0.4.
    const inv = knnPredict(ref, values, query, { k: 3, eps: 1e-12 });
    expect(inv.data[0]).toBeCloseTo((10 * 2 + 20 * 0.4) / 4.4, 9);
    // softmax with tau = 1: weights 1, 1, e^-2.
    const soft = knnPredict(ref, values, query, { k: 3, weighting: 'softmax', tau: 1 });
    expect(soft.data[0]).toBeCloseTo((10 + 20 * Math.exp(-2)) / (2 + Math.exp(-2)), 12);
    // k = 2: the two at distance 0.5 (a tie) -> plain mean.
    expect(knnPredict(ref, values, query, { k: 2 }).data[0]).toBeCloseTo(5, 9);
  });

  it('orders neighbours by distance, ties by reference index', () => {
    const nb = nearestNeighbours(fromRows([[2], [0], [1], [-1], [3]]), fromRows([[0.5]]), 4);
    expect(Array.from(nb.index)).toEqual([1, 2, 0, 3]);
    expect(Array.from(nb.distance)).toEqual([0.5, 0.5, 1.5, 1.5]);
    expect(nearestNeighbours(fromRows([[0], [1]]), fromRows([[0]]), 10).k).toBe(2);
  });
});

describe('Lorentz distance', () => {
  it('equals the engine pairwiseDistance (tfjs, cpu backend) on a few points', () => {
    const tangents = [
      [0.3, -0.2, 0.5],
      [1.2, 0.4, -0.7],
      [-0.1, 0.05, 0.02],
      [0.1, -0.1, 0.2],
      [0.5, 0.1, -0.3],
      [0.0, 0.3, 0.1],
    ];
    for (const c of [1, 0.5, 2.3]) {
      const points = tf.tidy(() => expMap0(tf.tensor2d(tangents), c).arraySync() as number[][]);
      const engine = tf.tidy(
        () => pairwiseDistance(tf.tensor2d(points), tf.tensor2d(points), c).arraySync() as number[][],
      );
      const P = fromRows(points);
      for (let i = 0; i < points.length; i++) {
        for (let j = 0; j < points.length; j++) {
          const ours = lorentzDistanceBetween(row(P, i), row(P, j), c);
          // Identical points: acosh(1 + a) ~ sqrt(2a) turns rounding in a (~1e-16) into ~1e-8.
          if (i === j) expect(ours).toBeLessThan(1e-7);
          else expect(Math.abs(ours - engine[i][j])).toBeLessThan(2e-5 * Math.max(1, engine[i][j]));
        }
      }
    }
  });

  it('matches the golden distance of docs/delst-method.md §2.2 and d(O, x) = |v|', () => {
    // c = 1: D[0][0] between expMap0(V_img[0]) and expMap0(V_gene[0]) is 0.374301.
    const x = new Float64Array([0.319364, -0.21291, 0.532274]);
    const v = [0.1, -0.1, 0.2];
    const nv = Math.hypot(...v);
    const y = Float64Array.from(v, (t) => (Math.sinh(nv) * t) / nv);
    expect(lorentzDistanceBetween(x, y, 1)).toBeCloseTo(0.374301, 5);
    expect(lorentzDistanceBetween(new Float64Array(3), y, 1)).toBeCloseTo(nv, 12);
  });
});

describe('ridge regression', () => {
  it('recovers a linear map (tiny alpha, no noise)', () => {
    const X = randomMatrix(200, 5, 3, 2);
    const A = [
      [1, 0, -2],
      [0.5, 3, 0],
      [0, 0, 1],
      [-1, 1, 1],
      [2, -0.5, 0],
    ];
    const c = [4, -1, 0.5];
    const model = fitRidge(X, linearTargets(X, A, c), 1e-10);
    const Xnew = randomMatrix(20, 5, 4, 2);
    const pred = predictRidge(model, Xnew);
    const truth = linearTargets(Xnew, A, c);
    for (let p = 0; p < pred.data.length; p++) expect(pred.data[p]).toBeCloseTo(truth.data[p], 6);
  });

  it('chooses a small alpha for clean linear data and a larger one for noise only; deterministic per seed', () => {
    const X = randomMatrix(150, 6, 5);
    const clean = linearTargets(X, [[1], [2], [0], [0], [-1], [0.5]], [0]);
    const a = chooseRidgeAlpha(X, clean, { seed: 1 });
    expect(a.alpha).toBeLessThanOrEqual(1e-2);
    expect(chooseRidgeAlpha(X, clean, { seed: 1 })).toEqual(a);
    const stronger = fitRidge(X, clean, 100);
    const weaker = fitRidge(X, clean, 0.01);
    const n = (w: Float64Array) => Math.hypot(...w);
    expect(n(stronger.weights)).toBeLessThan(n(weaker.weights));
  });
});

describe('gene selection and evaluation', () => {
  it('selects the most variable training genes, then named ones (case-insensitive), reporting unknown names', () => {
    const genes = ['A', 'B', 'C', 'D'];
    // variances: A 0, B 1, C 4, D 0.25
    const train = fromRows([
      [1, 0, 0, 0],
      [1, 2, 4, 1],
    ]);
    const test = fromRows([[0, 0, 0, 0]]);
    const s = selectGenes(denseGeneSource(genes, train, test), { top: 2, named: ['d', 'B', 'Nope'] });
    expect(s.mostVariable).toEqual([2, 1]);
    expect(s.named).toEqual([3, 1]);
    expect(s.indices).toEqual([2, 1, 3]);
    expect(s.unknown).toEqual(['Nope']);
    expect(s.variance).toEqual([4, 1, 0.25]);
    // A constant gene is never "most variable".
    expect(selectGenes(denseGeneSource(genes, train, test), { top: 10 }).mostVariable).toEqual([2, 1, 3]);
  });

  it('scores both predictors per gene; a linear gene gives ridge r = 1, a constant test gene gives null', () => {
    const trainX = randomMatrix(120, 4, 7);
    const testX = randomMatrix(30, 4, 8);
    const A = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 0],
      [0, 0, 0],
    ];
    const trainY = linearTargets(trainX, A, [0, 0, 0]);
    const testY = linearTargets(testX, A, [0, 0, 0]);
    // Gene 'flat' varies in training but is constant on the test spots.
    for (let i = 0; i < testY.rows; i++) testY.data[i * 3 + 2] = 1;
    for (let i = 0; i < trainY.rows; i++) trainY.data[i * 3 + 2] = i % 2;
    const r = evaluateGenePrediction({
      trainX,
      testX,
      source: denseGeneSource(['g1', 'g2', 'flat'], trainY, testY),
      top: 2,
      named: ['flat', 'missing'],
      knn: { k: 5 },
      seed: 2,
    });
    // The two linear genes are the most variable (in either order), then the named one.
    expect(
      r.genes
        .map((g) => g.name)
        .slice(0, 2)
        .sort(),
    ).toEqual(['g1', 'g2']);
    expect(r.genes[2].name).toBe('flat');
    for (const g of r.genes.slice(0, 2)) {
      expect(g.ridge).toBeCloseTo(1, 4);
      expect(g.knn).toBeGreaterThan(0.8);
      expect(g.mostVariable).toBe(true);
    }
    expect(r.genes[2].ridge).toBeNull();
    expect(r.genes[2].knn).toBeNull();
    expect(r.genes[2].named).toBe(true);
    expect(r.undefinedCorrelation.ridge).toEqual(['flat']);
    expect(r.unknownGenes).toEqual(['missing']);
    expect(r.summary.ridge.n).toBe(2);
    expect(r.summary.ridge.nulls).toBe(1);
    expect(r.summaryMostVariable.ridge.mean).toBeCloseTo(1, 4);
    expect(r.measured.rows).toBe(30);
    expect(r.predicted.knn.cols).toBe(3);
    expect(r.knn).toEqual({ k: 5, weighting: 'inverse', distance: 'euclidean' });
  });
});
