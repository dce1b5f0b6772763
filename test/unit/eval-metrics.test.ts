// Evaluation metrics against values computed by hand (see the comments next to each expectation).

import { describe, expect, it } from 'vitest';
import { fromRows } from '../../core/eval/matrix.js';
import {
  accuracy,
  balancedAccuracy,
  binaryAuc,
  classificationMetrics,
  confusionMatrix,
  macroAucOvr,
  macroF1,
  pearson,
  summarise,
} from '../../core/eval/metrics.js';

// Truth and predictions over 3 classes. Confusion (rows truth, columns predicted):
//   class 0: [2, 1, 0]   class 1: [0, 2, 0]   class 2: [0, 1, 0]
const Y_TRUE = [0, 0, 0, 1, 1, 2];
const Y_PRED = [0, 1, 0, 1, 1, 1];

describe('classification metrics', () => {
  it('confusion matrix keeps the class order', () => {
    const cm = confusionMatrix(Y_TRUE, Y_PRED, ['a', 'b', 'c']);
    expect(cm.classes).toEqual(['a', 'b', 'c']);
    expect(cm.counts).toEqual([
      [2, 1, 0],
      [0, 2, 0],
      [0, 1, 0],
    ]);
  });

  it('accuracy, balanced accuracy and macro-F1', () => {
    expect(accuracy(Y_TRUE, Y_PRED)).toBeCloseTo(4 / 6, 12);
    // recalls 2/3, 2/2, 0/1
    expect(balancedAccuracy(Y_TRUE, Y_PRED, 3)).toBeCloseTo((2 / 3 + 1 + 0) / 3, 12);
    // F1 = 2tp / (support + predicted): 4/5, 4/6, 0
    expect(macroF1(Y_TRUE, Y_PRED, 3)).toBeCloseTo((0.8 + 2 / 3 + 0) / 3, 12);
  });

  it('balanced accuracy averages over classes in the truth only; macro-F1 over truth or predictions', () => {
    const t = [0, 0, 1];
    const p = [0, 3, 1];
    // recall(0) = 1/2, recall(1) = 1; classes 2 and 3 are not in the truth.
    expect(balancedAccuracy(t, p, 4)).toBeCloseTo(0.75, 12);
    // F1: class 0 = 2/3, class 1 = 1, class 3 (predicted, never true) = 0; class 2 (nowhere) left out.
    expect(macroF1(t, p, 4)).toBeCloseTo((2 / 3 + 1 + 0) / 3, 12);
  });

  it('binary AUC counts ties as one half', () => {
    // positives 0.8, 0.5; negatives 0.5, 0.2, 0.5: wins 3 + (0.5 + 1 + 0.5) = 5 of 6 pairs.
    expect(binaryAuc([true, true, false, false, false], [0.8, 0.5, 0.5, 0.2, 0.5])).toBeCloseTo(5 / 6, 12);
    expect(binaryAuc([true, false], [0.3, 0.3])).toBe(0.5);
    expect(binaryAuc([true, true], [0.1, 0.2])).toBeNull();
    expect(binaryAuc([false, false], [0.1, 0.2])).toBeNull();
  });

  it('macro one-vs-rest AUC skips classes without positives (or negatives) and reports them', () => {
    const yTrue = [0, 0, 1, 1, 0];
    const scores = fromRows([
      [0.9, 0.1, 0.0],
      [0.4, 0.3, 0.3],
      [0.4, 0.5, 0.1],
      [0.1, 0.8, 0.1],
      [0.6, 0.3, 0.1],
    ]);
    // class 0: positives .9 .4 .6 vs negatives .4 .1 -> (2 + 1.5 + 2) / 6; class 1: 6/6; class 2: no positives.
    const auc = macroAucOvr(yTrue, scores);
    expect(auc.perClass[0]).toBeCloseTo(5.5 / 6, 12);
    expect(auc.perClass[1]).toBe(1);
    expect(auc.perClass[2]).toBeNull();
    expect(auc.skipped).toEqual([2]);
    expect(auc.value).toBeCloseTo((5.5 / 6 + 1) / 2, 12);

    const all = classificationMetrics(yTrue, [0, 1, 1, 1, 0], ['x', 'y', 'z'], scores);
    expect(all.aucSkipped).toEqual(['z']);
    expect(all.macroAuc).toBeCloseTo((5.5 / 6 + 1) / 2, 12);
    expect(all.accuracy).toBeCloseTo(4 / 5, 12);
    expect(all.perClass.map((c) => c.support)).toEqual([3, 2, 0]);
    expect(all.perClass[2].recall).toBeNull();
    expect(all.perClass[2].f1).toBeNull();
  });

  it('rejects labels out of range', () => {
    expect(() => balancedAccuracy([0, 5], [0, 1], 3)).toThrow(/not in/);
    expect(() => accuracy([0, 1], [0])).toThrow();
  });
});

describe('pearson', () => {
  it('matches the hand-computed value', () => {
    // centred a = (-1, 0, 1), b = (-7/3, -1/3, 8/3): sab = 5, saa = 2, sbb = 38/3.
    expect(pearson([1, 2, 3], [2, 4, 7])).toBeCloseTo(5 / Math.sqrt(2 * (38 / 3)), 12);
    expect(pearson([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
  });

  it('is null when undefined: constant vectors, fewer than 2 items, non-finite values', () => {
    expect(pearson([1, 2, 3], [5, 5, 5])).toBeNull();
    expect(pearson([0.1, 0.1, 0.1], [1, 2, 3])).toBeNull();
    expect(pearson([1], [2])).toBeNull();
    expect(pearson([1, NaN, 3], [1, 2, 3])).toBeNull();
  });

  it('summarise gives mean and median over defined values and counts the nulls', () => {
    expect(summarise([0.1, null, 0.5, 0.3])).toEqual({ mean: expect.closeTo(0.3, 12), median: 0.3, n: 3, nulls: 1 });
    expect(summarise([0.2, 0.4])).toMatchObject({ median: expect.closeTo(0.3, 12) });
    expect(summarise([null])).toEqual({ mean: null, median: null, n: 0, nulls: 1 });
  });
});
