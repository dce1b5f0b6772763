// Linear probe: the L-BFGS logistic regression against a hand-derived optimum and a gradient-zero check, separable
// classes, shrinkage with L2, the seeded C search, and reporting of classes absent from training.

import { describe, expect, it } from 'vitest';
import { Rng } from '../../core/engine/random.js';
import {
  C_SWEEP,
  chooseL2,
  fitLogistic,
  l2FromC,
  linearProbe,
  type LogisticModel,
  predictClass,
  predictProba,
} from '../../core/eval/logistic.js';
import { fromRows, type Matrix } from '../../core/eval/matrix.js';

/** Gaussian blobs: `perClass` points per class around well-separated centres in d dimensions. */
function blobs(nClasses: number, perClass: number, d: number, spread: number, seed: number) {
  const rng = new Rng(seed);
  const rows: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < perClass; i++) {
    for (let k = 0; k < nClasses; k++) {
      rows.push(
        Array.from({ length: d }, (_, j) => (j === k % d ? 6 * (1 + Math.floor(k / d)) : 0) + spread * rng.normal()),
      );
      y.push(k);
    }
  }
  return { X: fromRows(rows), y };
}

/** f(W, b) of logistic.ts's header, recomputed independently in float64 on standardised features. */
function objectiveOf(model: LogisticModel, X: Matrix, y: number[], W: Float64Array, b: Float64Array): number {
  const { mean, scale } = model.scaling;
  const K = model.nClasses;
  const d = X.cols;
  let loss = 0;
  for (let i = 0; i < X.rows; i++) {
    const logits = Array.from({ length: K }, (_, k) => {
      let s = b[k];
      for (let j = 0; j < d; j++) s += ((X.data[i * d + j] - mean[j]) / scale[j]) * W[k * d + j];
      return s;
    });
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, l) => a + Math.exp(l - m), 0));
    loss += lse - logits[y[i]];
  }
  let pen = 0;
  for (const w of W) pen += w * w;
  return loss / X.rows + 0.5 * model.l2 * pen;
}

function norm(a: Float64Array): number {
  return Math.sqrt(a.reduce((s, v) => s + v * v, 0));
}

describe('fitLogistic', () => {
  it('matches the hand-derived optimum of a two-point binary problem', () => {
    // x = -1 (class 0), x = +1 (class 1): already standardised. By symmetry b0 = b1 and w1 = -w0 = w/2, so
    // f(w) = log(1 + e^-w) + l2 w^2 / 4, and f'(w) = 0 gives w = 2 sigmoid(-w) / l2.
    const l2 = 1;
    let lo = 0;
    let hi = 10;
    for (let i = 0; i < 200; i++) {
      const mid = (lo + hi) / 2;
      if (mid - 2 / (1 + Math.exp(mid)) / l2 > 0) hi = mid;
      else lo = mid;
    }
    const wStar = (lo + hi) / 2;
    const model = fitLogistic(fromRows([[-1], [1]]), [0, 1], 2, l2);
    expect(model.converged).toBe(true);
    expect(model.weights[1] - model.weights[0]).toBeCloseTo(wStar, 7);
    expect(model.weights[0]).toBeCloseTo(-model.weights[1], 9);
    expect(model.bias[0] - model.bias[1]).toBeCloseTo(0, 9);
    const p = predictProba(model, fromRows([[1]]));
    expect(p.data[1]).toBeCloseTo(1 / (1 + Math.exp(-wStar)), 7);
  });

  it('stops at a point where the (independently computed) gradient is zero', () => {
    const { X, y } = blobs(3, 15, 4, 3, 11);
    const model = fitLogistic(X, y, 3, 0.05);
    expect(model.converged).toBe(true);
    const W = Float64Array.from(model.weights);
    const b = Float64Array.from(model.bias);
    const h = 1e-5;
    const grads: number[] = [];
    for (const v of [W, b]) {
      for (let p = 0; p < v.length; p++) {
        const keep = v[p];
        v[p] = keep + h;
        const fp = objectiveOf(model, X, y, W, b);
        v[p] = keep - h;
        const fm = objectiveOf(model, X, y, W, b);
        v[p] = keep;
        grads.push((fp - fm) / (2 * h));
      }
    }
    expect(Math.max(...grads.map(Math.abs))).toBeLessThan(1e-6);
    expect(objectiveOf(model, X, y, W, b)).toBeCloseTo(model.loss, 10);
  });

  it('separates separable classes perfectly; probabilities sum to 1', () => {
    const { X, y } = blobs(4, 20, 5, 0.5, 3);
    const model = fitLogistic(X, y, 4, 1e-3);
    expect(Array.from(predictClass(model, X))).toEqual(y);
    const p = predictProba(model, X);
    for (let i = 0; i < p.rows; i++) {
      expect(Array.from(p.data.subarray(i * 4, i * 4 + 4)).reduce((a, v) => a + v, 0)).toBeCloseTo(1, 12);
    }
  });

  it('shrinks the weights as L2 grows', () => {
    const { X, y } = blobs(3, 20, 4, 2, 5);
    const norms = [1e-3, 1e-1, 10].map((l2) => norm(fitLogistic(X, y, 3, l2).weights));
    expect(norms[0]).toBeGreaterThan(norms[1]);
    expect(norms[1]).toBeGreaterThan(norms[2]);
  });

  it('gives classes without training samples probability 0', () => {
    const model = fitLogistic(fromRows([[0], [1], [2], [3]]), [0, 0, 2, 2], 3, 0.1);
    expect(model.present).toEqual([true, false, true]);
    const p = predictProba(model, fromRows([[1.5]]));
    expect(p.data[1]).toBe(0);
    expect(p.data[0] + p.data[2]).toBeCloseTo(1, 12);
  });

  it('rejects bad input', () => {
    expect(() => fitLogistic(fromRows([[0], [1]]), [0, 2], 2, 1)).toThrow(/not in/);
    expect(() => fitLogistic(fromRows([[0], [NaN]]), [0, 1], 2, 1)).toThrow(/non-finite/);
    expect(() => fitLogistic(fromRows([[0], [1]]), [0, 1], 2, -1)).toThrow(/L2/);
  });
});

describe('chooseL2', () => {
  it('is deterministic for a seed and follows the sweep plus 4 binary-search rounds', () => {
    const { X, y } = blobs(3, 20, 6, 4, 7);
    const a = chooseL2(X, y, 3, { seed: 42 });
    const b = chooseL2(X, y, 3, { seed: 42 });
    expect(a).toEqual(b);
    expect(a.search.slice(0, C_SWEEP.length).map((s) => s.C)).toEqual([...C_SWEEP]);
    // At most 2 new candidates per round (a candidate already scored is not refitted).
    expect(a.search.length).toBeLessThanOrEqual(C_SWEEP.length + 8);
    expect(a.search.map((s) => s.C)).toContain(a.C);
    const best = Math.max(...a.search.map((s) => s.score));
    expect(a.search.find((s) => s.C === a.C)!.score).toBeCloseTo(best, 9);
    expect(a.l2).toBeCloseTo(l2FromC(a.C, X.rows), 15);
    expect(a.nTrain + a.nVal).toBe(X.rows);
    expect(a.nVal).toBe(12); // 20% of 20 per class, stratified
  });
});

describe('linearProbe', () => {
  function names(y: number[], labels: string[]): string[] {
    return y.map((k) => labels[k]);
  }

  it('scores separable classes at 1 and leaves out unlabelled and undetermined spots', () => {
    const train = blobs(3, 20, 3, 0.4, 21);
    const test = blobs(3, 6, 3, 0.4, 22);
    const testY: (string | null)[] = names(test.y, ['tumour', 'stroma', 'fat']);
    testY[0] = null;
    testY[1] = 'Undetermined';
    const trainY: (string | null)[] = names(train.y, ['tumour', 'stroma', 'fat']);
    trainY[5] = 'undetermined';
    const r = linearProbe({
      trainX: train.X,
      trainY,
      testX: test.X,
      testY,
      classNames: ['stroma', 'tumour', 'fat'],
      seed: 1,
    });
    expect(r.classes).toEqual(['stroma', 'tumour', 'fat']);
    expect(r.metrics.accuracy).toBe(1);
    expect(r.metrics.balancedAccuracy).toBe(1);
    expect(r.metrics.macroF1).toBe(1);
    expect(r.metrics.macroAuc).toBe(1);
    expect(r.classesAbsentFromTraining).toEqual([]);
    expect(r.nTrain).toBe(59);
    expect(r.nTest).toBe(16);
    expect(r.leftOut).toEqual({ train: { unlabelled: 0, dropped: 1 }, test: { unlabelled: 1, dropped: 1 } });
    // Every test row is predicted, labelled or not.
    expect(r.predictions).toHaveLength(18);
    expect(r.predictions[0]).toBe('tumour');
    expect(r.probabilities.cols).toBe(3);
    expect(C_SWEEP.length).toBeLessThanOrEqual(r.search.length);
  });

  it('reports test classes never seen in training and counts them as errors', () => {
    const train = blobs(2, 15, 2, 0.3, 31);
    const test = blobs(3, 4, 2, 0.3, 32); // class 2 sits at 12 on axis 0, nearest to class 0
    const labels = ['a', 'b', 'c'];
    const r = linearProbe({
      trainX: train.X,
      trainY: names(train.y, labels),
      testX: test.X,
      testY: names(test.y, labels),
      seed: 3,
    });
    expect(r.trainingClasses).toEqual(['a', 'b']);
    expect(r.classes).toEqual(['a', 'b', 'c']);
    expect(r.classesAbsentFromTraining).toEqual([{ name: 'c', count: 4 }]);
    expect(r.metrics.accuracy).toBeCloseTo(8 / 12, 12);
    expect(r.metrics.balancedAccuracy).toBeCloseTo(2 / 3, 12);
    expect(r.confusion.counts[2].reduce((s, v) => s + v, 0)).toBe(4);
    expect(r.confusion.counts[2][2]).toBe(0);
    // The absent class has a constant score 0: its one-vs-rest AUC is 0.5, the others are perfect.
    expect(r.metrics.perClass[2].auc).toBe(0.5);
    expect(r.metrics.perClass[2].recall).toBe(0);
  });

  it('is deterministic for a seed', () => {
    const train = blobs(3, 12, 4, 3, 41);
    const test = blobs(3, 5, 4, 3, 42);
    const labels = ['a', 'b', 'c'];
    const run = () =>
      linearProbe({
        trainX: train.X,
        trainY: names(train.y, labels),
        testX: test.X,
        testY: names(test.y, labels),
        seed: 9,
      });
    const a = run();
    const b = run();
    expect(a.chosenC).toBe(b.chosenC);
    expect(a.search).toEqual(b.search);
    expect(Array.from(a.probabilities.data)).toEqual(Array.from(b.probabilities.data));
  });
});
