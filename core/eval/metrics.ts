// Classification and correlation metrics for the evaluation (docs/delst-method.md §5), on class indices 0..K-1.
//
// Definitions, chosen to match scikit-learn where it has the metric:
// * accuracy: fraction of items whose prediction equals the truth.
// * balanced accuracy: mean per-class recall over the classes present in the truth (sklearn's
//   balanced_accuracy_score; torchmetrics' MulticlassAccuracy(average='macro') as MERU reports it).
// * macro-F1: mean F1 over the classes present in the truth or in the predictions (sklearn's f1_score(average=
//   'macro') labels); a class with no true positives has F1 = 0.
// * macro one-vs-rest AUC: per class, the Mann-Whitney AUC of that class's score column with the class as positives;
//   tied scores count one half (average ranks). Classes with no positives or no negatives in the truth have no AUC:
//   they are skipped and listed. The macro value is the mean over the rest (null when none is left).
// * Pearson correlation: null when either vector is constant (or fewer than 2 items), reported by the caller.

import type { Matrix } from './matrix.js';

/** Confusion counts: counts[t][p] = items of true class t predicted as p, in the order of `classes`. */
export interface ConfusionMatrix {
  readonly classes: string[];
  readonly counts: number[][];
}

export interface PerClassMetrics {
  readonly name: string;
  /** Items of this class in the truth. */
  readonly support: number;
  /** Items predicted as this class. */
  readonly predicted: number;
  /** Recall (null when support = 0). */
  readonly recall: number | null;
  /** Precision (null when nothing was predicted as this class). */
  readonly precision: number | null;
  /** F1 (null when the class is neither in the truth nor in the predictions). */
  readonly f1: number | null;
  /** One-vs-rest AUC (null when skipped: no positives or no negatives, or no scores given). */
  readonly auc: number | null;
}

export interface ClassificationMetrics {
  readonly n: number;
  readonly accuracy: number;
  readonly balancedAccuracy: number;
  readonly macroF1: number;
  /** Mean one-vs-rest AUC over the classes that have one; null when none has (or no scores were given). */
  readonly macroAuc: number | null;
  /** Classes skipped by the AUC (no positives or no negatives in the truth). */
  readonly aucSkipped: string[];
  readonly perClass: PerClassMetrics[];
}

function checkLabels(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, nClasses: number): void {
  if (yTrue.length !== yPred.length) throw new Error(`${yTrue.length} true labels but ${yPred.length} predictions`);
  for (let i = 0; i < yTrue.length; i++) {
    const t = yTrue[i];
    const p = yPred[i];
    if (!(Number.isInteger(t) && t >= 0 && t < nClasses))
      throw new Error(`true label ${t} at ${i} not in 0..${nClasses - 1}`);
    if (!(Number.isInteger(p) && p >= 0 && p < nClasses))
      throw new Error(`prediction ${p} at ${i} not in 0..${nClasses - 1}`);
  }
}

function maxLabel(...arrays: ArrayLike<number>[]): number {
  let m = -1;
  for (const a of arrays) for (let i = 0; i < a.length; i++) m = Math.max(m, a[i]);
  return m + 1;
}

/** Fraction of correct predictions (NaN for no items). */
export function accuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  checkLabels(yTrue, yPred, Math.max(1, maxLabel(yTrue, yPred)));
  let hits = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) hits++;
  return yTrue.length === 0 ? NaN : hits / yTrue.length;
}

/** counts[t][p], K x K. */
export function confusionCounts(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, nClasses: number): number[][] {
  checkLabels(yTrue, yPred, nClasses);
  const counts = Array.from({ length: nClasses }, () => new Array<number>(nClasses).fill(0));
  for (let i = 0; i < yTrue.length; i++) counts[yTrue[i]][yPred[i]]++;
  return counts;
}

/** The confusion matrix with its class names (rows: truth, columns: prediction). */
export function confusionMatrix(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  classes: string[],
): ConfusionMatrix {
  return { classes: [...classes], counts: confusionCounts(yTrue, yPred, classes.length) };
}

/** Mean recall over the classes present in the truth (NaN for no items). */
export function balancedAccuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, nClasses?: number): number {
  const k = nClasses ?? maxLabel(yTrue, yPred);
  const counts = confusionCounts(yTrue, yPred, k);
  let sum = 0;
  let present = 0;
  for (let c = 0; c < k; c++) {
    const support = counts[c].reduce((a, b) => a + b, 0);
    if (support === 0) continue;
    sum += counts[c][c] / support;
    present++;
  }
  return present === 0 ? NaN : sum / present;
}

/** Mean F1 over the classes present in the truth or the predictions (NaN for no items). */
export function macroF1(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, nClasses?: number): number {
  const k = nClasses ?? maxLabel(yTrue, yPred);
  const f1 = perClassF1(confusionCounts(yTrue, yPred, k));
  const defined = f1.filter((v): v is number => v !== null);
  return defined.length === 0 ? NaN : defined.reduce((a, b) => a + b, 0) / defined.length;
}

function perClassF1(counts: number[][]): (number | null)[] {
  const k = counts.length;
  const out: (number | null)[] = [];
  for (let c = 0; c < k; c++) {
    const tp = counts[c][c];
    let support = 0;
    let predicted = 0;
    for (let j = 0; j < k; j++) {
      support += counts[c][j];
      predicted += counts[j][c];
    }
    // F1 = 2tp / (2tp + fp + fn) = 2tp / (support + predicted).
    out.push(support + predicted === 0 ? null : (2 * tp) / (support + predicted));
  }
  return out;
}

/**
 * Mann-Whitney AUC of `scores` for the positives against the negatives: P(score+ > score-) + 0.5 P(score+ = score-),
 * from average ranks. Null when there are no positives or no negatives. NaN scores are rejected.
 */
export function binaryAuc(positive: ArrayLike<boolean>, scores: ArrayLike<number>): number | null {
  const n = scores.length;
  if (positive.length !== n) throw new Error(`${positive.length} labels but ${n} scores`);
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(scores[i])) throw new Error(`score ${i} is NaN`);
    order[i] = i;
  }
  order.sort((a, b) => scores[a] - scores[b]);
  let nPos = 0;
  let rankSumPos = 0;
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && scores[order[end]] === scores[order[start]]) end++;
    // Ranks start+1 .. end share their average.
    const rank = (start + 1 + end) / 2;
    for (let r = start; r < end; r++) {
      if (positive[order[r]]) {
        nPos++;
        rankSumPos += rank;
      }
    }
    start = end;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return null;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Score column c of an n x K score matrix (row-major) as a Float64Array. */
function scoreColumn(scores: Matrix, c: number): Float64Array {
  const out = new Float64Array(scores.rows);
  for (let i = 0; i < scores.rows; i++) out[i] = scores.data[i * scores.cols + c];
  return out;
}

/**
 * Macro one-vs-rest AUC: per-class AUCs (null where skipped), their mean over the classes that have one, and the
 * skipped class indices. `scores` is n x K (e.g. predicted probabilities), column c scoring class c.
 */
export function macroAucOvr(
  yTrue: ArrayLike<number>,
  scores: Matrix,
): { value: number | null; perClass: (number | null)[]; skipped: number[] } {
  if (scores.rows !== yTrue.length) throw new Error(`${yTrue.length} labels but ${scores.rows} score rows`);
  const k = scores.cols;
  const perClass: (number | null)[] = [];
  const skipped: number[] = [];
  for (let c = 0; c < k; c++) {
    const positive = new Array<boolean>(yTrue.length);
    for (let i = 0; i < yTrue.length; i++) positive[i] = yTrue[i] === c;
    const auc = binaryAuc(positive, scoreColumn(scores, c));
    perClass.push(auc);
    if (auc === null) skipped.push(c);
  }
  const defined = perClass.filter((v): v is number => v !== null);
  return { value: defined.length ? defined.reduce((a, b) => a + b, 0) / defined.length : null, perClass, skipped };
}

/**
 * All classification metrics at once. `classes` names the class indices; `scores` (optional, n x classes.length)
 * gives the AUCs. Items whose true class the model could not predict simply count as errors everywhere.
 */
export function classificationMetrics(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  classes: string[],
  scores?: Matrix,
): ClassificationMetrics {
  const k = classes.length;
  const counts = confusionCounts(yTrue, yPred, k);
  const f1 = perClassF1(counts);
  let auc: { value: number | null; perClass: (number | null)[]; skipped: number[] } | null = null;
  if (scores) {
    if (scores.cols !== k) throw new Error(`${k} classes but ${scores.cols} score columns`);
    auc = macroAucOvr(yTrue, scores);
  }
  const perClass: PerClassMetrics[] = classes.map((name, c) => {
    let support = 0;
    let predicted = 0;
    for (let j = 0; j < k; j++) {
      support += counts[c][j];
      predicted += counts[j][c];
    }
    return {
      name,
      support,
      predicted,
      recall: support ? counts[c][c] / support : null,
      precision: predicted ? counts[c][c] / predicted : null,
      f1: f1[c],
      auc: auc ? auc.perClass[c] : null,
    };
  });
  const f1Defined = f1.filter((v): v is number => v !== null);
  return {
    n: yTrue.length,
    accuracy: yTrue.length ? counts.reduce((s, r, c) => s + r[c], 0) / yTrue.length : NaN,
    balancedAccuracy: balancedAccuracy(yTrue, yPred, k),
    macroF1: f1Defined.length ? f1Defined.reduce((a, b) => a + b, 0) / f1Defined.length : NaN,
    macroAuc: auc ? auc.value : null,
    aucSkipped: auc ? auc.skipped.map((c) => classes[c]) : [...classes],
    perClass,
  };
}

/**
 * Pearson correlation of two equal-length vectors in float64 (two-pass, centred). Null when either vector is
 * constant, has fewer than 2 items, or holds a non-finite value: the correlation is undefined there.
 */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number | null {
  const n = a.length;
  if (b.length !== n) throw new Error(`pearson: lengths ${n} and ${b.length} differ`);
  if (n < 2) return null;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) return null;
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma;
    const db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  // Constant up to rounding: the spread is below what summing n values of this size can produce by error alone.
  const tinyA = n * Number.EPSILON * Number.EPSILON * Math.max(1, ma * ma) * n;
  const tinyB = n * Number.EPSILON * Number.EPSILON * Math.max(1, mb * mb) * n;
  if (saa <= tinyA || sbb <= tinyB) return null;
  const r = sab / Math.sqrt(saa * sbb);
  return Math.max(-1, Math.min(1, r));
}

/** Mean and median of the non-null values, and how many were null. */
export function summarise(values: (number | null)[]): {
  mean: number | null;
  median: number | null;
  n: number;
  nulls: number;
} {
  const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
  const n = v.length;
  if (n === 0) return { mean: null, median: null, n: 0, nulls: values.length };
  const mid = n >> 1;
  return {
    mean: v.reduce((a, b) => a + b, 0) / n,
    median: n % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2,
    n,
    nulls: values.length - n,
  };
}
