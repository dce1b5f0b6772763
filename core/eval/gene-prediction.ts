// Gene expression from the image alone (issue 5, Evaluation): two predictors from image embeddings to
// log-normalised expression, scored by the per-gene Pearson correlation on the test spots.
//
// (a) Nearest reference spots, BLEEP-style: for each test spot, the k training spots nearest in embedding space
//     (a distance function: Euclidean for features and tangent vectors, the Lorentz geodesic distance for
//     hyperboloid space components), and the weighted mean of their expression. Weights are either
//     'inverse': w = 1 / (d + eps), eps = 1e-6 by default (a reference at distance 0 dominates, so k = 1 or a
//                duplicate spot reproduces its expression exactly), or
//     'softmax': w = exp(-(d - d_min) / tau), tau = 1 by default (the shift by the nearest distance only
//                rescales all weights; tau is in the units of the distance).
//     Neighbour ties are broken by the lower reference index, so results repeat exactly.
// (b) Ridge regression: features standardised with the training mean and sd, targets centred (the intercept is not
//     penalised), W minimising (1/n) ||Y - Z W||^2 + alpha ||W||^2, solved in the primal (Z^T Z / n + alpha I) W =
//     Z^T Y / n by Cholesky (d <= a few hundred). alpha comes from a grid, scored by the mean per-gene R^2 (1 - SSE/SST,
//     every gene weighted equally) on a seeded inner validation split of the training spots (ties keep the
//     smaller alpha). Not the mean Pearson r: r ignores scale, so it barely penalises over-shrinkage and on a few
//     noisy genes picks alpha by chance.
//
// Genes: the most variable ones (population variance of the log-normalised expression over the training spots,
// default 50; ties by column order; constant genes never chosen), plus genes named by the caller. Each gene is
// predicted independently by both predictors, so only the evaluated genes are ever materialised.

import { deriveSeed, Rng } from '../engine/random.js';
import {
  assertFinite,
  columnScale,
  type ColumnScale,
  type Matrix,
  rowViews,
  selectRows,
  standardise,
  stratifiedSplit,
  type Vector,
} from './matrix.js';
import { pearson, summarise } from './metrics.js';

/** Distance between two embedding rows. */
export type DistanceFunction = (a: Vector, b: Vector) => number;

/** Euclidean distance. */
export function euclideanDistance(a: Vector, b: Vector): number {
  let s = 0;
  for (let j = 0; j < a.length; j++) {
    const v = a[j] - b[j];
    s += v * v;
  }
  return Math.sqrt(s);
}

/**
 * Geodesic distance on the hyperboloid of curvature -c between points given by their space components (time
 * components implicit, docs/delst-method.md §2): d = acosh(-c<x,y>_L) / sqrt(c), in float64. Written as
 * acosh(1 + a) with a = cosh(sqrt(c) d) - 1 = xm ym + xm + ym - c x.y, where xm = sqrt(c) x0 - 1 =
 * c|x|^2 / (1 + sqrt(1 + c|x|^2)), which avoids cancellation at short distances (as core/engine/lorentz.ts does).
 * Unlike the engine, which clamps the acosh argument at 1 + 1e-6 for float32 gradients, a is clamped at 0 only.
 */
export function lorentzDistanceBetween(x: Vector, y: Vector, c: number): number {
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let j = 0; j < x.length; j++) {
    xx += x[j] * x[j];
    yy += y[j] * y[j];
    xy += x[j] * y[j];
  }
  const xm = (c * xx) / (1 + Math.sqrt(1 + c * xx));
  const ym = (c * yy) / (1 + Math.sqrt(1 + c * yy));
  const a = Math.max(0, xm * ym + xm + ym - c * xy);
  return Math.log1p(a + Math.sqrt(a * (a + 2))) / Math.sqrt(c);
}

/** The Lorentz geodesic distance for curvature -c as a DistanceFunction. */
export function lorentzDistance(c: number): DistanceFunction {
  if (!(c > 0 && Number.isFinite(c))) throw new Error(`curvature must be positive, got ${c}`);
  return (a, b) => lorentzDistanceBetween(a, b, c);
}

export interface Neighbours {
  readonly k: number;
  /** nQuery x k reference indices, nearest first. */
  readonly index: Int32Array;
  /** nQuery x k distances, matching `index`. */
  readonly distance: Float64Array;
}

/** The k nearest reference rows of every query row (k capped at the reference count; ties: lower index first). */
export function nearestNeighbours(
  refX: Matrix,
  queryX: Matrix,
  k: number,
  distance: DistanceFunction = euclideanDistance,
): Neighbours {
  if (refX.cols !== queryX.cols) throw new Error(`reference has ${refX.cols} dimensions, query ${queryX.cols}`);
  if (refX.rows === 0) throw new Error('no reference spots');
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`k must be a positive integer, got ${k}`);
  const kk = Math.min(k, refX.rows);
  const refs = rowViews(refX);
  const queries = rowViews(queryX);
  const index = new Int32Array(queryX.rows * kk);
  const dist = new Float64Array(queryX.rows * kk);
  const bestI = new Int32Array(kk);
  const bestD = new Float64Array(kk);
  for (let q = 0; q < queries.length; q++) {
    let filled = 0;
    const query = queries[q];
    for (let r = 0; r < refs.length; r++) {
      const d = distance(query, refs[r]);
      if (Number.isNaN(d)) throw new Error(`distance between query ${q} and reference ${r} is NaN`);
      // Sorted insertion into the kk best; a later reference at an equal distance goes after (lower index wins).
      if (filled === kk && d >= bestD[kk - 1]) continue;
      let pos = filled < kk ? filled++ : kk - 1;
      while (pos > 0 && bestD[pos - 1] > d) {
        bestD[pos] = bestD[pos - 1];
        bestI[pos] = bestI[pos - 1];
        pos--;
      }
      bestD[pos] = d;
      bestI[pos] = r;
    }
    index.set(bestI, q * kk);
    dist.set(bestD, q * kk);
  }
  return { k: kk, index, distance: dist };
}

export type NeighbourWeighting = 'inverse' | 'softmax';

export interface KnnOptions {
  /** Neighbours per test spot (default 50). */
  k?: number;
  /** Default: Euclidean. */
  distance?: DistanceFunction;
  /** Default 'inverse'. */
  weighting?: NeighbourWeighting;
  /** 'inverse': w = 1 / (d + eps), default 1e-6. */
  eps?: number;
  /** 'softmax': w = exp(-(d - d_min) / tau), default 1. */
  tau?: number;
}

/** Normalised neighbour weights for one query, in place. */
function neighbourWeights(d: Float64Array, weighting: NeighbourWeighting, eps: number, tau: number): Float64Array {
  const w = new Float64Array(d.length);
  let sum = 0;
  for (let j = 0; j < d.length; j++) {
    w[j] = weighting === 'inverse' ? 1 / (d[j] + eps) : Math.exp(-(d[j] - d[0]) / tau);
    sum += w[j];
  }
  for (let j = 0; j < d.length; j++) w[j] /= sum;
  return w;
}

/**
 * Predicts query targets (nQuery x G) as the weighted mean of the targets (refY, nRef x G) of each query's nearest
 * reference rows.
 */
export function knnPredict(refX: Matrix, refY: Matrix, queryX: Matrix, options: KnnOptions = {}): Matrix {
  if (refY.rows !== refX.rows) throw new Error(`${refX.rows} reference rows but ${refY.rows} target rows`);
  const weighting = options.weighting ?? 'inverse';
  const eps = options.eps ?? 1e-6;
  const tau = options.tau ?? 1;
  if (weighting === 'inverse' && !(eps > 0)) throw new Error('eps must be positive');
  if (weighting === 'softmax' && !(tau > 0)) throw new Error('tau must be positive');
  const nb = nearestNeighbours(refX, queryX, options.k ?? 50, options.distance);
  const G = refY.cols;
  const out = new Float64Array(queryX.rows * G);
  for (let q = 0; q < queryX.rows; q++) {
    const w = neighbourWeights(nb.distance.subarray(q * nb.k, (q + 1) * nb.k), weighting, eps, tau);
    for (let j = 0; j < nb.k; j++) {
      const r = nb.index[q * nb.k + j];
      const wj = w[j];
      for (let g = 0; g < G; g++) out[q * G + g] += wj * refY.data[r * G + g];
    }
  }
  return { rows: queryX.rows, cols: G, data: out };
}

/** Ridge alphas tried by default (features standardised; penalty on the mean squared error). */
export const RIDGE_ALPHAS = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000] as const;

export interface RidgeModel {
  readonly xScale: ColumnScale;
  readonly yMean: Float64Array;
  /** d x G, on standardised features. */
  readonly weights: Float64Array;
  readonly alpha: number;
}

/** Z^T Z / n (d x d, full) and Z^T Yc / n (d x G) for standardised Z and centred Y. */
function normalEquations(Z: Matrix, Y: Matrix, yMean: Float64Array): { gram: Float64Array; rhs: Float64Array } {
  const n = Z.rows;
  const d = Z.cols;
  const G = Y.cols;
  const gram = new Float64Array(d * d);
  const rhs = new Float64Array(d * G);
  const yc = new Float64Array(G);
  for (let i = 0; i < n; i++) {
    const zo = i * d;
    for (let g = 0; g < G; g++) yc[g] = Y.data[i * G + g] - yMean[g];
    for (let a = 0; a < d; a++) {
      const za = Z.data[zo + a];
      if (za === 0) continue;
      const go = a * d;
      for (let b = a; b < d; b++) gram[go + b] += za * Z.data[zo + b];
      const ro = a * G;
      for (let g = 0; g < G; g++) rhs[ro + g] += za * yc[g];
    }
  }
  const inv = 1 / n;
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      gram[a * d + b] *= inv;
      gram[b * d + a] = gram[a * d + b];
    }
  }
  for (let p = 0; p < rhs.length; p++) rhs[p] *= inv;
  return { gram, rhs };
}

/** Solves (gram + alpha I) W = rhs by Cholesky; gram d x d symmetric PSD, rhs d x G. */
function solveRidge(gram: Float64Array, rhs: Float64Array, d: number, G: number, alpha: number): Float64Array {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = gram[i * d + j] + (i === j ? alpha : 0);
      for (let m = 0; m < j; m++) s -= L[i * d + m] * L[j * d + m];
      if (i === j) {
        if (!(s > 0)) throw new Error(`ridge system not positive definite (alpha ${alpha} too small?)`);
        L[i * d + i] = Math.sqrt(s);
      } else L[i * d + j] = s / L[j * d + j];
    }
  }
  const W = new Float64Array(d * G);
  const col = new Float64Array(d);
  for (let g = 0; g < G; g++) {
    // L u = b, then L^T w = u.
    for (let i = 0; i < d; i++) {
      let s = rhs[i * G + g];
      for (let m = 0; m < i; m++) s -= L[i * d + m] * col[m];
      col[i] = s / L[i * d + i];
    }
    for (let i = d - 1; i >= 0; i--) {
      let s = col[i];
      for (let m = i + 1; m < d; m++) s -= L[m * d + i] * col[m];
      col[i] = s / L[i * d + i];
    }
    for (let i = 0; i < d; i++) W[i * G + g] = col[i];
  }
  return W;
}

function columnMeans(Y: Matrix): Float64Array {
  const mean = new Float64Array(Y.cols);
  for (let i = 0; i < Y.rows; i++) for (let g = 0; g < Y.cols; g++) mean[g] += Y.data[i * Y.cols + g];
  for (let g = 0; g < Y.cols; g++) mean[g] /= Math.max(1, Y.rows);
  return mean;
}

function prepareRidge(X: Matrix, Y: Matrix) {
  if (X.rows !== Y.rows) throw new Error(`${X.rows} feature rows but ${Y.rows} target rows`);
  if (X.rows === 0) throw new Error('cannot fit ridge regression on no samples');
  assertFinite(X, 'ridge features');
  assertFinite(Y, 'ridge targets');
  const xScale = columnScale(X);
  const yMean = columnMeans(Y);
  return { xScale, yMean, ...normalEquations(standardise(X, xScale), Y, yMean) };
}

/** Fits ridge regression X (n x d) -> Y (n x G) with strength alpha (> 0). */
export function fitRidge(X: Matrix, Y: Matrix, alpha: number): RidgeModel {
  if (!(alpha > 0 && Number.isFinite(alpha))) throw new Error(`ridge alpha must be positive, got ${alpha}`);
  const { xScale, yMean, gram, rhs } = prepareRidge(X, Y);
  return { xScale, yMean, weights: solveRidge(gram, rhs, X.cols, Y.cols, alpha), alpha };
}

export function predictRidge(model: RidgeModel, X: Matrix): Matrix {
  const d = model.xScale.mean.length;
  if (X.cols !== d) throw new Error(`ridge model has ${d} features, input ${X.cols}`);
  const G = model.yMean.length;
  const out = new Float64Array(X.rows * G);
  const z = new Float64Array(d);
  for (let i = 0; i < X.rows; i++) {
    for (let a = 0; a < d; a++) z[a] = (X.data[i * d + a] - model.xScale.mean[a]) / model.xScale.scale[a];
    const o = i * G;
    for (let g = 0; g < G; g++) out[o + g] = model.yMean[g];
    for (let a = 0; a < d; a++) {
      const za = z[a];
      if (za === 0) continue;
      const wo = a * G;
      for (let g = 0; g < G; g++) out[o + g] += za * model.weights[wo + g];
    }
  }
  return { rows: X.rows, cols: G, data: out };
}

/** Per-column Pearson correlations of two n x G matrices (null where undefined). */
export function columnCorrelations(predicted: Matrix, measured: Matrix): (number | null)[] {
  if (predicted.rows !== measured.rows || predicted.cols !== measured.cols) throw new Error('shape mismatch');
  const out: (number | null)[] = [];
  const a = new Float64Array(predicted.rows);
  const b = new Float64Array(predicted.rows);
  for (let g = 0; g < predicted.cols; g++) {
    for (let i = 0; i < predicted.rows; i++) {
      a[i] = predicted.data[i * predicted.cols + g];
      b[i] = measured.data[i * measured.cols + g];
    }
    out.push(pearson(a, b));
  }
  return out;
}

/** Mean over genes of the validation R^2 = 1 - SSE/SST (genes constant on the validation spots skipped). */
function meanR2(predicted: Matrix, measured: Matrix): number {
  const G = measured.cols;
  const n = measured.rows;
  let sum = 0;
  let count = 0;
  for (let g = 0; g < G; g++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += measured.data[i * G + g];
    mean /= n;
    let sse = 0;
    let sst = 0;
    for (let i = 0; i < n; i++) {
      const y = measured.data[i * G + g];
      sse += (y - predicted.data[i * G + g]) ** 2;
      sst += (y - mean) ** 2;
    }
    if (!(sst > 1e-24 * n * Math.max(1, mean * mean))) continue;
    sum += 1 - sse / sst;
    count++;
  }
  return count ? sum / count : -Infinity;
}

/**
 * Chooses the ridge alpha on a seeded random inner split (valFraction held out): the alpha with the highest mean
 * per-gene R^2 on the held-out spots (genes constant there skipped).
 */
export function chooseRidgeAlpha(
  X: Matrix,
  Y: Matrix,
  options: { alphas?: readonly number[]; seed?: number; valFraction?: number } = {},
): { alpha: number; search: { alpha: number; score: number | null }[] } {
  const alphas = options.alphas ?? RIDGE_ALPHAS;
  if (alphas.length === 0) throw new Error('no ridge alphas to try');
  const rng = new Rng(deriveSeed(options.seed ?? 0, 'ridge-inner-split'));
  const { first, second } = stratifiedSplit(new Int32Array(X.rows), options.valFraction ?? 0.2, () => rng.next());
  if (second.length < 2 || first.length < 1) return { alpha: alphas[0], search: [] };
  const Xt = selectRows(X, first);
  const Yt = selectRows(Y, first);
  const Xv = selectRows(X, second);
  const Yv = selectRows(Y, second);
  const prep = prepareRidge(Xt, Yt);
  const search: { alpha: number; score: number | null }[] = [];
  let best = alphas[0];
  let bestScore = -Infinity;
  for (const alpha of alphas) {
    const model: RidgeModel = {
      xScale: prep.xScale,
      yMean: prep.yMean,
      weights: solveRidge(prep.gram, prep.rhs, X.cols, Y.cols, alpha),
      alpha,
    };
    const score = meanR2(predictRidge(model, Xv), Yv);
    search.push({ alpha, score: Number.isFinite(score) ? score : null });
    if (score > bestScore + 1e-12) {
      bestScore = score;
      best = alpha;
    }
  }
  return { alpha: best, search };
}

/** Log-normalised expression, gene by gene, over the training and the test spots (in trainX / testX row order). */
export interface GeneSource {
  readonly genes: readonly string[];
  train(gene: number): ArrayLike<number>;
  test(gene: number): ArrayLike<number>;
}

/** A GeneSource over dense spot x gene matrices. */
export function denseGeneSource(genes: readonly string[], train: Matrix, test: Matrix): GeneSource {
  if (train.cols !== genes.length || test.cols !== genes.length) {
    throw new Error(`${genes.length} genes but matrices with ${train.cols} and ${test.cols} columns`);
  }
  const col = (m: Matrix, g: number) => {
    const out = new Float64Array(m.rows);
    for (let i = 0; i < m.rows; i++) out[i] = m.data[i * m.cols + g];
    return out;
  };
  return { genes, train: (g) => col(train, g), test: (g) => col(test, g) };
}

export interface GeneSelection {
  /** Evaluated gene columns: the most variable first (by decreasing variance), then the named ones not among them. */
  readonly indices: number[];
  readonly mostVariable: number[];
  readonly named: number[];
  /** Named genes not in the source. */
  readonly unknown: string[];
  /** Training variance of each evaluated gene, matching `indices`. */
  readonly variance: number[];
}

function variance(v: ArrayLike<number>): number {
  const n = v.length;
  if (n === 0) return 0;
  let m = 0;
  for (let i = 0; i < n; i++) m += v[i];
  m /= n;
  let s = 0;
  for (let i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
  return s / n;
}

/**
 * The `top` most variable genes over the training spots plus the named genes (matched exactly, then
 * case-insensitively). Genes with zero variance are never among the most variable.
 */
export function selectGenes(
  source: GeneSource,
  options: { top?: number; named?: readonly string[] } = {},
): GeneSelection {
  const top = options.top ?? 50;
  const G = source.genes.length;
  const variances = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    const v = source.train(g);
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i])) throw new Error(`gene ${source.genes[g]}: non-finite training value at ${i}`);
    }
    variances[g] = variance(v);
  }
  const order = Array.from({ length: G }, (_, g) => g)
    .filter((g) => variances[g] > 0)
    .sort((a, b) => variances[b] - variances[a] || a - b);
  const mostVariable = order.slice(0, Math.max(0, top));
  const exact = new Map<string, number>();
  const lower = new Map<string, number>();
  source.genes.forEach((name, g) => {
    if (!exact.has(name)) exact.set(name, g);
    const key = name.toLowerCase();
    if (!lower.has(key)) lower.set(key, g);
  });
  const named: number[] = [];
  const unknown: string[] = [];
  for (const name of options.named ?? []) {
    const g = exact.get(name) ?? lower.get(name.toLowerCase());
    if (g === undefined) unknown.push(name);
    else if (!named.includes(g)) named.push(g);
  }
  const indices = [...mostVariable, ...named.filter((g) => !mostVariable.includes(g))];
  return { indices, mostVariable, named, unknown, variance: indices.map((g) => variances[g]) };
}

/** Gene columns of a source gathered into an n x G matrix. */
function gather(source: GeneSource, indices: number[], which: 'train' | 'test', rows: number): Matrix {
  const G = indices.length;
  const data = new Float64Array(rows * G);
  indices.forEach((gene, g) => {
    const v = source[which](gene);
    if (v.length !== rows) {
      throw new Error(`gene ${source.genes[gene]}: ${v.length} ${which} values for ${rows} ${which} spots`);
    }
    for (let i = 0; i < rows; i++) data[i * G + g] = v[i];
  });
  return { rows, cols: G, data };
}

export interface GenePredictionInput {
  /** Training (reference) spot embeddings, nTrain x D. */
  trainX: Matrix;
  /** Test spot embeddings, nTest x D. */
  testX: Matrix;
  source: GeneSource;
  /** Most variable genes to evaluate (default 50). */
  top?: number;
  /** Genes to evaluate in addition. */
  named?: readonly string[];
  knn?: KnnOptions;
  /** Name of the kNN distance for the report (default 'euclidean', or 'custom' when a distance is given). */
  distanceName?: string;
  ridgeAlphas?: readonly number[];
  seed?: number;
  valFraction?: number;
  /**
   * Which predictors to run (default both). A predictor left out costs nothing: its predictions are NaN and its
   * correlations null (callers that fit kNN and ridge on different inputs run one each and merge them).
   */
  only?: 'knn' | 'ridge';
}

export interface GeneScore {
  readonly name: string;
  /** Column in the source. */
  readonly index: number;
  readonly variance: number;
  readonly mostVariable: boolean;
  readonly named: boolean;
  /** Pearson r of the kNN prediction on the test spots (null: undefined, a constant vector). */
  readonly knn: number | null;
  readonly ridge: number | null;
}

export type CorrelationSummary = ReturnType<typeof summarise>;

export interface GenePredictionResult {
  readonly genes: GeneScore[];
  /** Over all evaluated genes with a defined correlation (nulls counts the others). */
  readonly summary: { knn: CorrelationSummary; ridge: CorrelationSummary };
  /** Over the most variable genes only. */
  readonly summaryMostVariable: { knn: CorrelationSummary; ridge: CorrelationSummary };
  /** Genes whose correlation is undefined (constant prediction or measurement on the test spots). */
  readonly undefinedCorrelation: { knn: string[]; ridge: string[] };
  readonly unknownGenes: string[];
  readonly knn: { k: number; weighting: NeighbourWeighting; distance: string };
  readonly ridge: { alpha: number; search: { alpha: number; score: number | null }[] };
  readonly nTrain: number;
  readonly nTest: number;
  /** nTest x genes.length, columns in `genes` order. */
  readonly measured: Matrix;
  readonly predicted: { knn: Matrix; ridge: Matrix };
}

/** Both predictors on the selected genes, and their per-gene Pearson correlations on the test spots. */
export function evaluateGenePrediction(input: GenePredictionInput): GenePredictionResult {
  const { trainX, testX, source } = input;
  if (trainX.cols !== testX.cols) throw new Error(`training has ${trainX.cols} dimensions, test ${testX.cols}`);
  assertFinite(trainX, 'training embeddings');
  assertFinite(testX, 'test embeddings');
  const selection = selectGenes(source, { top: input.top, named: input.named });
  const trainY = gather(source, selection.indices, 'train', trainX.rows);
  const measured = gather(source, selection.indices, 'test', testX.rows);
  const knnOptions = input.knn ?? {};
  const skipped = (): Matrix => ({
    rows: testX.rows,
    cols: measured.cols,
    data: new Float64Array(measured.data.length).fill(NaN),
  });
  const knnPred = input.only === 'ridge' ? skipped() : knnPredict(trainX, trainY, testX, knnOptions);
  const choice =
    input.only === 'knn'
      ? { alpha: NaN, search: [] }
      : chooseRidgeAlpha(trainX, trainY, {
          alphas: input.ridgeAlphas,
          seed: input.seed,
          valFraction: input.valFraction,
        });
  const ridgePred = input.only === 'knn' ? skipped() : predictRidge(fitRidge(trainX, trainY, choice.alpha), testX);
  const correlations = (predicted: Matrix, run: boolean) =>
    run ? columnCorrelations(predicted, measured) : new Array<number | null>(measured.cols).fill(null);
  const rKnn = correlations(knnPred, input.only !== 'ridge');
  const rRidge = correlations(ridgePred, input.only !== 'knn');
  const genes: GeneScore[] = selection.indices.map((gene, g) => ({
    name: source.genes[gene],
    index: gene,
    variance: selection.variance[g],
    mostVariable: g < selection.mostVariable.length,
    named: selection.named.includes(gene),
    knn: rKnn[g],
    ridge: rRidge[g],
  }));
  const mv = genes.filter((g) => g.mostVariable);
  return {
    genes,
    summary: { knn: summarise(rKnn), ridge: summarise(rRidge) },
    summaryMostVariable: { knn: summarise(mv.map((g) => g.knn)), ridge: summarise(mv.map((g) => g.ridge)) },
    undefinedCorrelation: {
      knn: genes.filter((g) => g.knn === null).map((g) => g.name),
      ridge: genes.filter((g) => g.ridge === null).map((g) => g.name),
    },
    unknownGenes: selection.unknown,
    knn: {
      k: Math.min(knnOptions.k ?? 50, trainX.rows),
      weighting: knnOptions.weighting ?? 'inverse',
      distance: input.distanceName ?? (knnOptions.distance ? 'custom' : 'euclidean'),
    },
    ridge: { alpha: choice.alpha, search: choice.search },
    nTrain: trainX.rows,
    nTest: testX.rows,
    measured,
    predicted: { knn: knnPred, ridge: ridgePred },
  };
}

/** The result as plain JSON data: without the measured and predicted matrices (typed arrays). */
export function genePredictionToJson(
  result: GenePredictionResult,
): Omit<GenePredictionResult, 'measured' | 'predicted'> {
  const { measured: _measured, predicted: _predicted, ...rest } = result;
  return rest;
}
