// Linear probe (docs/delst-method.md §3 and §5): multinomial logistic regression with an L2 penalty, its strength
// chosen on an inner validation split as MERU does, then a final fit on train + val.
//
// Model. Features are standardised with the fit's own training mean and standard deviation (z = (x - mean) / sd;
// constant columns pass through centred). The fit minimises, over W (K x d) and b (K),
//   f(W, b) = (1/n) sum_i [ logsumexp_k(z_i.w_k + b_k) - (z_i.w_{y_i} + b_{y_i}) ] + (l2 / 2) ||W||_F^2
// with the intercepts b not penalised, by full-batch L-BFGS (memory 10, backtracking Armijo line search) from zero
// (or a warm start). Everything is float64 loops in a fixed order, so fits repeat exactly.
//
// C and l2. scikit-learn's LogisticRegression(C) minimises C * sum_i CE_i + ||W||^2 / 2; dividing by C n gives the
// objective above with l2 = 1 / (C n), n the number of samples in that fit. So a C chosen on the inner training part
// keeps its meaning (the same C) in the final fit on more samples, as it does in sklearn. One difference from MERU's
// sklearn probe: we standardise features, which MERU does not; C values are therefore not interchangeable with
// theirs.
//
// C search (MERU): C in {1e-6, 1e-4, 1e-2, 1, 1e2, 1e4, 1e6} scored on the validation part, then 4 rounds of binary
// search in log space: try best / f and best * f with f = 10, then sqrt(10), 10^(1/4), 10^(1/8), keeping the best.
// The score is balanced accuracy (MERU's metric); ties keep the earlier candidate (smaller C in the sweep, the
// current best in the search). Fits during the search warm-start from the previous solution, which changes nothing
// at convergence (the optimum is unique) and saves most of the work.
//
// Classes absent from a fit's training labels are left out of its softmax (probability 0, weights 0).

import { deriveSeed, Rng } from '../engine/random.js';
import {
  assertFinite,
  columnScale,
  type ColumnScale,
  type Matrix,
  selectRows,
  standardise,
  stratifiedSplit,
} from './matrix.js';
import {
  balancedAccuracy,
  classificationMetrics,
  confusionCounts,
  type ClassificationMetrics,
  type ConfusionMatrix,
} from './metrics.js';

/** Scores closer than this are ties (balanced accuracies summed in another order differ in the last bits). */
const SCORE_TOLERANCE = 1e-9;

/** MERU's C sweep. */
export const C_SWEEP = [1e-6, 1e-4, 1e-2, 1, 1e2, 1e4, 1e6] as const;

export interface LogisticModel {
  readonly nClasses: number;
  readonly nFeatures: number;
  /** The training standardisation, applied to every input before the linear map. */
  readonly scaling: ColumnScale;
  /** K x d, row k for class k, on standardised features. */
  readonly weights: Float64Array;
  /** K intercepts. */
  readonly bias: Float64Array;
  /** Classes that had training samples (the others get probability 0). */
  readonly present: boolean[];
  readonly l2: number;
  /** Final objective value. */
  readonly loss: number;
  readonly iterations: number;
  /** Whether the gradient (max-abs) fell below the tolerance or the objective stopped decreasing. */
  readonly converged: boolean;
}

export interface FitOptions {
  /** L-BFGS iterations at most (default 1000, sklearn's max_iter in MERU's probe). */
  maxIter?: number;
  /** Stop when max |gradient| <= gtol (default 1e-7). */
  gtol?: number;
  /** Stop when the objective decreases by less than ftol * max(1, |f|) in an iteration (default 1e-14). */
  ftol?: number;
  /** Start from this model's parameters (same classes and features); its scaling must match the data's. */
  init?: LogisticModel;
}

function checkProblem(X: Matrix, y: ArrayLike<number>, nClasses: number): void {
  if (X.rows !== y.length) throw new Error(`${X.rows} feature rows but ${y.length} labels`);
  if (!(Number.isInteger(nClasses) && nClasses >= 1)) throw new Error(`bad class count ${nClasses}`);
  for (let i = 0; i < y.length; i++) {
    if (!(Number.isInteger(y[i]) && y[i] >= 0 && y[i] < nClasses)) {
      throw new Error(`label ${y[i]} at ${i} not in 0..${nClasses - 1}`);
    }
  }
}

/**
 * Objective and gradient at theta = [w_0 .. w_{K-1} (d each), b_0 .. b_{K-1}] over standardised Z. Writes the
 * gradient into `grad` and returns f.
 */
function objective(
  Z: Matrix,
  y: ArrayLike<number>,
  K: number,
  present: boolean[],
  l2: number,
  theta: Float64Array,
  grad: Float64Array,
): number {
  const n = Z.rows;
  const d = Z.cols;
  const z = Z.data;
  const bOff = K * d;
  grad.fill(0);
  const logits = new Float64Array(K);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      if (!present[k]) continue;
      const w = k * d;
      let s = theta[bOff + k];
      for (let j = 0; j < d; j++) s += z[o + j] * theta[w + j];
      logits[k] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let k = 0; k < K; k++) {
      if (!present[k]) continue;
      logits[k] = Math.exp(logits[k] - max);
      sum += logits[k];
    }
    const yi = y[i];
    // -log p_y = log(sum) - (logit_y - max); logits[] now holds exp(logit - max).
    loss += Math.log(sum) - Math.log(logits[yi]);
    for (let k = 0; k < K; k++) {
      if (!present[k]) continue;
      const r = logits[k] / sum - (k === yi ? 1 : 0);
      if (r === 0) continue;
      grad[bOff + k] += r;
      const w = k * d;
      for (let j = 0; j < d; j++) grad[w + j] += r * z[o + j];
    }
  }
  const inv = n > 0 ? 1 / n : 0;
  let penalty = 0;
  for (let p = 0; p < bOff; p++) {
    grad[p] = grad[p] * inv + l2 * theta[p];
    penalty += theta[p] * theta[p];
  }
  for (let k = 0; k < K; k++) grad[bOff + k] *= inv;
  return loss * inv + 0.5 * l2 * penalty;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Minimises f by L-BFGS from theta (updated in place). */
function lbfgs(
  fg: (theta: Float64Array, grad: Float64Array) => number,
  theta: Float64Array,
  opts: { maxIter: number; gtol: number; ftol: number; memory?: number },
): { loss: number; iterations: number; converged: boolean } {
  const p = theta.length;
  const m = opts.memory ?? 10;
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  let grad = new Float64Array(p);
  let f = fg(theta, grad);
  const dir = new Float64Array(p);
  const alpha = new Float64Array(m);
  const nextTheta = new Float64Array(p);
  let nextGrad = new Float64Array(p);
  let iterations = 0;
  if (maxAbs(grad) <= opts.gtol) return { loss: f, iterations, converged: true };
  while (iterations < opts.maxIter) {
    iterations++;
    // Two-loop recursion: dir = -H grad.
    for (let i = 0; i < p; i++) dir[i] = -grad[i];
    for (let h = S.length - 1; h >= 0; h--) {
      alpha[h] = rho[h] * dot(S[h], dir);
      const yh = Y[h];
      const a = alpha[h];
      for (let i = 0; i < p; i++) dir[i] -= a * yh[i];
    }
    if (S.length) {
      const last = S.length - 1;
      const gamma = dot(S[last], Y[last]) / dot(Y[last], Y[last]);
      for (let i = 0; i < p; i++) dir[i] *= gamma;
    } else {
      // First step: a unit-length move along the steepest descent.
      const gn = Math.sqrt(dot(grad, grad));
      for (let i = 0; i < p; i++) dir[i] /= gn;
    }
    for (let h = 0; h < S.length; h++) {
      const beta = rho[h] * dot(Y[h], dir);
      const sh = S[h];
      const c = alpha[h] - beta;
      for (let i = 0; i < p; i++) dir[i] += c * sh[i];
    }
    let slope = dot(grad, dir);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let i = 0; i < p; i++) dir[i] = -grad[i];
      slope = dot(grad, dir);
    }
    // Backtracking Armijo line search.
    let step = 1;
    let fNew = NaN;
    let accepted = false;
    for (let tries = 0; tries < 40; tries++) {
      for (let i = 0; i < p; i++) nextTheta[i] = theta[i] + step * dir[i];
      fNew = fg(nextTheta, nextGrad);
      if (Number.isFinite(fNew) && fNew <= f + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) return { loss: f, iterations, converged: false };
    const s = new Float64Array(p);
    const yv = new Float64Array(p);
    for (let i = 0; i < p; i++) {
      s[i] = nextTheta[i] - theta[i];
      yv[i] = nextGrad[i] - grad[i];
    }
    const sy = dot(s, yv);
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(yv, yv))) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(yv);
      rho.push(1 / sy);
    }
    const decrease = f - fNew;
    theta.set(nextTheta);
    [grad, nextGrad] = [nextGrad, grad];
    f = fNew;
    if (maxAbs(grad) <= opts.gtol) return { loss: f, iterations, converged: true };
    if (decrease <= opts.ftol * Math.max(1, Math.abs(f))) return { loss: f, iterations, converged: true };
  }
  return { loss: f, iterations, converged: false };
}

/**
 * Fits multinomial logistic regression with L2 strength `l2` (see the header for the objective; l2 = 1/(C n) for
 * sklearn's C). Labels are class indices 0..nClasses-1; classes with no samples get probability 0.
 */
export function fitLogistic(
  X: Matrix,
  y: ArrayLike<number>,
  nClasses: number,
  l2: number,
  options: FitOptions = {},
): LogisticModel {
  checkProblem(X, y, nClasses);
  if (!(l2 >= 0 && Number.isFinite(l2))) throw new Error(`bad L2 strength ${l2}`);
  if (X.rows === 0) throw new Error('cannot fit a classifier on no samples');
  assertFinite(X, 'probe features');
  const scaling = options.init?.scaling ?? columnScale(X);
  const Z = standardise(X, scaling);
  const K = nClasses;
  const d = X.cols;
  const present = new Array<boolean>(K).fill(false);
  for (let i = 0; i < y.length; i++) present[y[i]] = true;
  const theta = new Float64Array(K * d + K);
  const init = options.init;
  if (init) {
    if (init.nClasses !== K || init.nFeatures !== d) throw new Error('warm start from a model of another shape');
    theta.set(init.weights, 0);
    theta.set(init.bias, K * d);
    for (let k = 0; k < K; k++) {
      if (present[k]) continue;
      theta.fill(0, k * d, (k + 1) * d);
      theta[K * d + k] = 0;
    }
  }
  const result = lbfgs((t, g) => objective(Z, y, K, present, l2, t, g), theta, {
    maxIter: options.maxIter ?? 1000,
    gtol: options.gtol ?? 1e-7,
    ftol: options.ftol ?? 1e-14,
  });
  return {
    nClasses: K,
    nFeatures: d,
    scaling,
    weights: theta.slice(0, K * d),
    bias: theta.slice(K * d),
    present,
    l2,
    loss: result.loss,
    iterations: result.iterations,
    converged: result.converged,
  };
}

/** Class probabilities, n x K (absent classes 0). */
export function predictProba(model: LogisticModel, X: Matrix): Matrix {
  if (X.cols !== model.nFeatures) throw new Error(`model has ${model.nFeatures} features, input ${X.cols}`);
  const { mean, scale } = model.scaling;
  const K = model.nClasses;
  const d = model.nFeatures;
  const out = new Float64Array(X.rows * K);
  const z = new Float64Array(d);
  for (let i = 0; i < X.rows; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) z[j] = (X.data[o + j] - mean[j]) / scale[j];
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      if (!model.present[k]) continue;
      let s = model.bias[k];
      const w = k * d;
      for (let j = 0; j < d; j++) s += z[j] * model.weights[w + j];
      out[i * K + k] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let k = 0; k < K; k++) {
      if (!model.present[k]) continue;
      const e = Math.exp(out[i * K + k] - max);
      out[i * K + k] = e;
      sum += e;
    }
    for (let k = 0; k < K; k++) out[i * K + k] = model.present[k] ? out[i * K + k] / sum : 0;
  }
  return { rows: X.rows, cols: K, data: out };
}

/** The most probable class per row (ties: the lower index). */
export function argmaxRows(p: Matrix): Int32Array {
  const out = new Int32Array(p.rows);
  for (let i = 0; i < p.rows; i++) {
    let best = 0;
    for (let k = 1; k < p.cols; k++) if (p.data[i * p.cols + k] > p.data[i * p.cols + best]) best = k;
    out[i] = best;
  }
  return out;
}

export function predictClass(model: LogisticModel, X: Matrix): Int32Array {
  return argmaxRows(predictProba(model, X));
}

/** l2 for sklearn's C with n samples: 1 / (C n). */
export function l2FromC(C: number, n: number): number {
  return 1 / (C * n);
}

export interface L2Choice {
  /** The chosen sklearn-style C. */
  readonly C: number;
  /** l2 = 1/(C n) for the whole set given to chooseL2 (n = all its samples, i.e. train + val). */
  readonly l2: number;
  /** Every C tried, in order, with its validation balanced accuracy. */
  readonly search: { C: number; score: number }[];
  readonly nTrain: number;
  readonly nVal: number;
}

export interface ChooseOptions {
  /** Seed of the stratified inner split (default 0). */
  seed?: number;
  /** Fraction of each class held out for validation (default 0.2). */
  valFraction?: number;
  /** Binary-search rounds after the sweep (default 4, as MERU). */
  rounds?: number;
  /** L-BFGS iterations per search fit (default 1000). */
  maxIter?: number;
}

/**
 * Chooses C (and l2) on a seeded, stratified inner split of (X, y): the sweep, then the log-space binary search.
 * With fewer than two samples in every class there is nothing to validate on: C = 1 is returned with an empty search.
 */
export function chooseL2(X: Matrix, y: ArrayLike<number>, nClasses: number, options: ChooseOptions = {}): L2Choice {
  checkProblem(X, y, nClasses);
  const rng = new Rng(deriveSeed(options.seed ?? 0, 'probe-inner-split'));
  const { first, second } = stratifiedSplit(y, options.valFraction ?? 0.2, () => rng.next());
  if (second.length === 0) {
    return { C: 1, l2: l2FromC(1, X.rows), search: [], nTrain: first.length, nVal: 0 };
  }
  const Xt = selectRows(X, first);
  const yt = Int32Array.from(first, (i) => y[i]);
  const Xv = selectRows(X, second);
  const yv = Int32Array.from(second, (i) => y[i]);
  const maxIter = options.maxIter ?? 1000;
  const search: { C: number; score: number }[] = [];
  const models = new Map<number, LogisticModel>();
  let last: LogisticModel | undefined;
  const score = (C: number): number => {
    const found = search.find((s) => s.C === C);
    if (found) return found.score;
    const model = fitLogistic(Xt, yt, nClasses, l2FromC(C, Xt.rows), { maxIter, init: last });
    last = model;
    models.set(C, model);
    const value = balancedAccuracy(yv, predictClass(model, Xv), nClasses);
    search.push({ C, score: value });
    return value;
  };
  let bestC: number = C_SWEEP[0];
  let best = -Infinity;
  for (const C of C_SWEEP) {
    const s = score(C);
    if (s > best + SCORE_TOLERANCE) {
      best = s;
      bestC = C;
    }
  }
  let factor = 10;
  for (let round = 0; round < (options.rounds ?? 4); round++) {
    const centre = bestC;
    for (const C of [centre / factor, centre * factor]) {
      last = models.get(centre);
      const s = score(C);
      if (s > best + SCORE_TOLERANCE) {
        best = s;
        bestC = C;
      }
    }
    factor = Math.sqrt(factor);
  }
  return { C: bestC, l2: l2FromC(bestC, X.rows), search, nTrain: first.length, nVal: second.length };
}

export type Label = string | null | undefined;

export interface ProbeInput {
  /** Training features, one row per spot. */
  trainX: Matrix;
  /** Training labels per spot (null/undefined: unlabelled, left out). */
  trainY: readonly Label[];
  testX: Matrix;
  /** Test labels per spot, for the metrics (null/undefined: left out of the metrics, still predicted). */
  testY: readonly Label[];
  /** Preferred class order (e.g. the label column's categories); classes not listed follow, sorted. */
  classNames?: readonly string[];
  /** Labels treated as missing (compared trimmed and case-insensitively; default ['undetermined']). */
  dropLabels?: readonly string[];
  seed?: number;
  valFraction?: number;
  maxIter?: number;
  /** Skip the search and use this C. */
  C?: number;
}

export interface ProbeResult {
  /** Classes of the metrics and the confusion matrix: training classes and test classes, in order. */
  readonly classes: string[];
  /** Classes the probe was trained on (the columns of `probabilities`). */
  readonly trainingClasses: string[];
  readonly metrics: ClassificationMetrics;
  readonly confusion: ConfusionMatrix;
  /** Test classes with no training spot: the probe cannot predict them, so each such spot is an error. */
  readonly classesAbsentFromTraining: { name: string; count: number }[];
  readonly chosenC: number;
  /** l2 of the final fit, 1/(C n) with n = labelled training spots. */
  readonly l2: number;
  readonly search: { C: number; score: number }[];
  readonly nTrain: number;
  readonly nTest: number;
  /** Spots left out: unlabelled (null) and dropped labels, per split. */
  readonly leftOut: { train: { unlabelled: number; dropped: number }; test: { unlabelled: number; dropped: number } };
  /** Predicted class for every test row (labelled or not). */
  readonly predictions: string[];
  /** n_test x trainingClasses.length probabilities for every test row. */
  readonly probabilities: Matrix;
  readonly converged: boolean;
  readonly model: LogisticModel;
}

/** Sorts label names by the preferred order, then alphabetically. */
function orderClasses(names: Iterable<string>, preferred: readonly string[] = []): string[] {
  const rank = new Map(preferred.map((name, i) => [name, i] as const));
  return [...new Set(names)].sort((a, b) => {
    const ra = rank.get(a) ?? Infinity;
    const rb = rank.get(b) ?? Infinity;
    if (ra !== rb) return ra - rb;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

function keptLabels(
  labels: readonly Label[],
  drop: Set<string>,
): { kept: number[]; unlabelled: number; dropped: number } {
  const kept: number[] = [];
  let unlabelled = 0;
  let dropped = 0;
  labels.forEach((label, i) => {
    if (label === null || label === undefined || label.trim() === '') unlabelled++;
    else if (drop.has(label.trim().toLowerCase())) dropped++;
    else kept.push(i);
  });
  return { kept, unlabelled, dropped };
}

/**
 * The linear probe end to end: drop unlabelled and `dropLabels` spots, choose C on an inner split of the training
 * spots, fit on all of them, predict every test spot, and score the labelled test spots.
 */
export function linearProbe(input: ProbeInput): ProbeResult {
  const { trainX, trainY, testX, testY } = input;
  if (trainX.rows !== trainY.length) throw new Error(`${trainX.rows} training rows but ${trainY.length} labels`);
  if (testX.rows !== testY.length) throw new Error(`${testX.rows} test rows but ${testY.length} labels`);
  if (trainX.cols !== testX.cols) throw new Error(`training has ${trainX.cols} features, test ${testX.cols}`);
  const drop = new Set((input.dropLabels ?? ['undetermined']).map((l) => l.trim().toLowerCase()));
  const train = keptLabels(trainY, drop);
  const test = keptLabels(testY, drop);
  if (train.kept.length === 0) throw new Error('no labelled training spots');
  const trainingClasses = orderClasses(
    train.kept.map((i) => trainY[i]!.trim()),
    input.classNames,
  );
  const testNames = test.kept.map((i) => testY[i]!.trim());
  const classes = orderClasses([...trainingClasses, ...testNames], input.classNames);
  const trainIndex = new Map(trainingClasses.map((name, k) => [name, k] as const));
  const Xt = selectRows(trainX, train.kept);
  const yt = Int32Array.from(train.kept, (i) => trainIndex.get(trainY[i]!.trim())!);
  const K = trainingClasses.length;
  let chosenC: number;
  let search: { C: number; score: number }[] = [];
  if (input.C !== undefined) chosenC = input.C;
  else {
    const choice = chooseL2(Xt, yt, K, { seed: input.seed, valFraction: input.valFraction, maxIter: input.maxIter });
    chosenC = choice.C;
    search = choice.search;
  }
  const l2 = l2FromC(chosenC, Xt.rows);
  const model = fitLogistic(Xt, yt, K, l2, { maxIter: input.maxIter });
  const probabilities = predictProba(model, testX);
  const predicted = argmaxRows(probabilities);
  const predictions = Array.from(predicted, (k) => trainingClasses[k]);

  // Metrics over `classes`: training-class probabilities spread into their columns, absent classes score 0.
  const classIndex = new Map(classes.map((name, c) => [name, c] as const));
  const colOf = trainingClasses.map((name) => classIndex.get(name)!);
  const nT = test.kept.length;
  const scores = new Float64Array(nT * classes.length);
  const yTrue = new Int32Array(nT);
  const yPred = new Int32Array(nT);
  test.kept.forEach((i, r) => {
    yTrue[r] = classIndex.get(testNames[r])!;
    yPred[r] = colOf[predicted[i]];
    for (let k = 0; k < K; k++) scores[r * classes.length + colOf[k]] = probabilities.data[i * K + k];
  });
  const metrics = classificationMetrics(yTrue, yPred, classes, { rows: nT, cols: classes.length, data: scores });
  const absentCounts = new Map<string, number>();
  for (const name of testNames) if (!trainIndex.has(name)) absentCounts.set(name, (absentCounts.get(name) ?? 0) + 1);
  return {
    classes,
    trainingClasses,
    metrics,
    confusion: { classes: [...classes], counts: confusionCounts(yTrue, yPred, classes.length) },
    classesAbsentFromTraining: orderClasses(absentCounts.keys(), classes).map((name) => ({
      name,
      count: absentCounts.get(name)!,
    })),
    chosenC,
    l2,
    search,
    nTrain: Xt.rows,
    nTest: nT,
    leftOut: {
      train: { unlabelled: train.unlabelled, dropped: train.dropped },
      test: { unlabelled: test.unlabelled, dropped: test.dropped },
    },
    predictions,
    probabilities,
    converged: model.converged,
    model,
  };
}

/** The result as plain JSON data: without the fitted model and the probability matrix (typed arrays). */
export function probeToJson(result: ProbeResult): Omit<ProbeResult, 'model' | 'probabilities'> {
  const { model: _model, probabilities: _probabilities, ...rest } = result;
  return rest;
}
