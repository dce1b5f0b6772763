// DELST losses over a batch of B matched image-gene pairs (docs/delst-method.md §3, §4.4-4.7, §4.9):
//   clip:  Euclidean CLIP loss (cosine logits times a scale, symmetric cross-entropy), no entailment;
//   meru:  hyperbolic contrastive loss + lambda * cross-modal entailment;
//   delst: hyperbolic contrastive loss + lambda * cross-modal entailment + beta * intra-modal (nnz) entailment.
// The pair sets of the intra-modal loss are built in plain JS from the batch's nnz keys (no gradient flows through
// them); the geometry is in lorentz.ts.

import * as tf from '@tensorflow/tfjs';
import { entailmentLoss, entailmentMatrix, pairwiseDistance, safeNorm, type Curvature } from './lorentz.js';

export type LossMode = 'clip' | 'meru' | 'delst';
export type Modality = 'gene' | 'image';
export type CrossDirection = 'geneEntailsImage' | 'imageEntailsGene';
export type IntraPairing = 'allPairs' | 'randomPartner' | 'nearestLowerNnz' | 'quantileLevels';
export type NnzNormalization = 'none' | 'perSectionRank';

export interface LossConfig {
  mode: LossMode;
  /** Weight of the cross-modal entailment (lambda, default 0.2; MERU's entail_weight). */
  lambda: number;
  /** Weight of the intra-modal entailment (beta, default 0.2). */
  beta: number;
  /** Which modality is the parent (generic) side of the cross-modal entailment. */
  crossDirection: CrossDirection;
  /** How parent -> child pairs are drawn inside the batch for the intra-modal entailment. */
  intraPairing: IntraPairing;
  /** Modalities whose embeddings get the intra-modal entailment; the loss is their mean. */
  intraModalities: Modality[];
  /** The nnz key that orders spots: the raw count, or its percentile within its own section. */
  nnzNormalization: NnzNormalization;
  /** delta: p is a parent of q only if key[p] < key[q] - delta (allPairs, randomPartner, nearestLowerNnz). */
  nnzMargin: number;
  /** L, the number of dataset-wide nnz levels for quantileLevels (default 3). */
  quantileLevels: number;
}

/** The DELST defaults of §4: both modalities, all pairs, raw nnz, gene entails image, lambda = beta = 0.2. Frozen:
 * makeLossConfig gives a mutable copy. */
export const DEFAULT_LOSS_CONFIG: Readonly<LossConfig> = Object.freeze({
  mode: 'delst',
  lambda: 0.2,
  beta: 0.2,
  crossDirection: 'geneEntailsImage',
  intraPairing: 'allPairs',
  intraModalities: Object.freeze(['gene', 'image']) as Modality[],
  nnzNormalization: 'none',
  nnzMargin: 0,
  quantileLevels: 3,
});

export interface LossInputs {
  image: tf.Tensor2D;
  /** For meru/delst: hyperboloid space components (after expMap0). For clip: raw projected features. */
  gene: tf.Tensor2D;
  curvature: tf.Scalar;
  /** s, the logit scale, already exponentiated. */
  logitScale: tf.Scalar;
  /** Raw nonzero-gene count per spot in the batch. */
  nnz: Float32Array;
  /** Section index per spot; with perSectionRank and no nnzRankInSection, the batch-local percentile is used. */
  sectionOf?: Int32Array;
  /** Percentile in [0, 1] of each spot's nnz within its section over the whole dataset (percentileWithinSection). */
  nnzRankInSection?: Float32Array;
  /** Dataset-wide level edges for quantileLevels, in nnz-key units (quantileEdges); batch quantiles if absent. */
  nnzQuantileEdges?: number[];
  /**
   * nearestLowerNnz: B x B cosine similarity of the spots' log-normalised expression (expressionSimilarity), read
   * before the gradient tape: the pairing needs plain numbers, and webgpu in Node reads tensors only asynchronously.
   */
  expressionSimilarity?: number[][];
  /** Seeded uniform [0, 1) generator for randomPartner. */
  random?: () => number;
}

export type LossTerms = {
  total: tf.Scalar;
  contrastive: tf.Scalar;
  crossEntailment: tf.Scalar;
  intraEntailment: tf.Scalar;
};

/** Parent -> child index pairs inside a batch (parents[k] entails children[k]). */
export type PairList = { parents: Int32Array; children: Int32Array };

/** A full loss configuration from overrides of the defaults, checked. */
export function makeLossConfig(overrides: Partial<LossConfig> = {}): LossConfig {
  const config: LossConfig = {
    ...DEFAULT_LOSS_CONFIG,
    intraModalities: [...DEFAULT_LOSS_CONFIG.intraModalities],
    ...overrides,
  };
  const nonNegative = (name: string, v: number) => {
    if (!Number.isFinite(v) || v < 0) throw new Error(`loss config: ${name} must be a finite number >= 0, got ${v}`);
  };
  nonNegative('lambda', config.lambda);
  nonNegative('beta', config.beta);
  nonNegative('nnzMargin', config.nnzMargin);
  if (!Number.isInteger(config.quantileLevels) || config.quantileLevels < 2) {
    throw new Error(`loss config: quantileLevels must be an integer >= 2, got ${config.quantileLevels}`);
  }
  if (new Set(config.intraModalities).size !== config.intraModalities.length) {
    throw new Error('loss config: intraModalities has duplicates');
  }
  return config;
}

/** One line for logs and manifests, e.g. "delst λ=0.2 β=0.2 gene⊒image intra=allPairs[gene,image] nnz=none δ=0". */
export function describeLossConfig(config: LossConfig): string {
  if (config.mode === 'clip') return 'clip';
  const cross = config.crossDirection === 'geneEntailsImage' ? 'gene⊒image' : 'image⊒gene';
  const head = `${config.mode} λ=${config.lambda} ${cross}`;
  if (config.mode === 'meru') return head;
  const levels = config.intraPairing === 'quantileLevels' ? `(L=${config.quantileLevels})` : '';
  const intra = `intra=${config.intraPairing}${levels}[${config.intraModalities.join(',')}]`;
  return `${head} β=${config.beta} ${intra} nnz=${config.nnzNormalization} δ=${config.nnzMargin}`;
}

/** Symmetric cross-entropy with the diagonal as target, ½[CE(rows) + CE(columns)], as CLIP and MERU (B x B logits). */
export function symmetricCrossEntropy(logits: tf.Tensor2D): tf.Scalar {
  const diagonal = tf.sum(tf.mul(logits, tf.eye(logits.shape[0])), 1);
  const rows = tf.mean(tf.sub(tf.logSumExp(logits, 1), diagonal));
  const columns = tf.mean(tf.sub(tf.logSumExp(logits, 0), diagonal));
  return tf.mul(0.5, tf.add(rows, columns));
}

/** Hyperbolic contrastive loss (§4.4): logits = -s d(image_i, gene_j), symmetric cross-entropy. */
export function hyperbolicContrastive(
  image: tf.Tensor2D,
  gene: tf.Tensor2D,
  curvature: Curvature,
  logitScale: tf.Scalar | number,
): tf.Scalar {
  return symmetricCrossEntropy(tf.mul(tf.neg(logitScale), pairwiseDistance(image, gene, curvature)));
}

/** Rows scaled to unit length; the safe norm keeps zero rows (and their gradient) finite. */
function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, safeNorm(x, true));
}

/** Euclidean CLIP loss: logits = s cos(image_i, gene_j), symmetric cross-entropy. */
export function clipContrastive(image: tf.Tensor2D, gene: tf.Tensor2D, logitScale: tf.Scalar | number): tf.Scalar {
  const cosine = tf.matMul(l2Normalize(image), l2Normalize(gene), false, true);
  return symmetricCrossEntropy(tf.mul(logitScale, cosine));
}

/** Cross-modal entailment (§4.5), row-paired over the matched pairs, parent side chosen by the direction switch. */
export function crossEntailment(
  image: tf.Tensor2D,
  gene: tf.Tensor2D,
  curvature: Curvature,
  direction: CrossDirection,
): tf.Scalar {
  return direction === 'geneEntailsImage'
    ? entailmentLoss(gene, image, curvature)
    : entailmentLoss(image, gene, curvature);
}

/** Mid-rank percentile in [0, 1] of each value among the values of its own section (ties share a value; 0.5 alone). */
export function percentileWithinSection(values: ArrayLike<number>, sectionOf: ArrayLike<number>): Float32Array {
  const bySection = new Map<number, number[]>();
  for (let i = 0; i < values.length; i++) {
    const list = bySection.get(sectionOf[i]) ?? [];
    list.push(values[i]);
    bySection.set(sectionOf[i], list);
  }
  for (const list of bySection.values()) list.sort((a, b) => a - b);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const sorted = bySection.get(sectionOf[i])!;
    if (sorted.length < 2) {
      out[i] = 0.5;
      continue;
    }
    const less = lowerBound(sorted, values[i]);
    const equal = lowerBound(sorted, values[i], true) - less;
    out[i] = (less + (equal - 1) / 2) / (sorted.length - 1);
  }
  return out;
}

/** Index of the first element >= v (or > v when strict) in an ascending array. */
function lowerBound(sorted: number[], v: number, strict = false): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < v || (strict && sorted[mid] === v)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The L - 1 cut points at probabilities i/L of the values (linear interpolation, numpy's default quantile). */
export function quantileEdges(values: ArrayLike<number>, levels: number): number[] {
  const sorted = Array.from(values).sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  const edges: number[] = [];
  for (let i = 1; i < levels; i++) {
    const pos = (i / levels) * (sorted.length - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, sorted.length - 1);
    edges.push(sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]));
  }
  return edges;
}

/** Level of a key: the number of edges <= key (numpy.digitize), 0 .. edges.length. */
export function levelOf(key: number, edges: readonly number[]): number {
  let level = 0;
  for (const edge of edges) if (key >= edge) level++;
  return level;
}

/** The key that orders spots by genericity (§4.1, §4.6): raw nnz, or its within-section percentile. */
export function nnzKeys(inputs: LossInputs, config: LossConfig): Float32Array {
  if (config.nnzNormalization === 'none') return inputs.nnz;
  if (inputs.nnzRankInSection) return inputs.nnzRankInSection;
  if (inputs.sectionOf) return percentileWithinSection(inputs.nnz, inputs.sectionOf);
  throw new Error("loss: nnzNormalization 'perSectionRank' needs nnzRankInSection (or sectionOf)");
}

/** A PairList from [parent, child] tuples. */
function toPairList(pairs: [number, number][]): PairList {
  return { parents: Int32Array.from(pairs, (pq) => pq[0]), children: Int32Array.from(pairs, (pq) => pq[1]) };
}

/** Pairs (p, q) with key[p] < key[q] - delta, parents in rows: the exact batch expectation. */
function allPairs(keys: Float32Array, delta: number): PairList {
  const pairs: [number, number][] = [];
  for (let p = 0; p < keys.length; p++) {
    for (let q = 0; q < keys.length; q++) {
      if (keys[p] < keys[q] - delta) pairs.push([p, q]);
    }
  }
  return toPairList(pairs);
}

/** One uniformly drawn partner j != i per spot i, oriented lower key -> higher key; pairs within delta are dropped. */
function randomPartnerPairs(keys: Float32Array, delta: number, random: () => number): PairList {
  const pairs: [number, number][] = [];
  const n = keys.length;
  for (let i = 0; i < n && n > 1; i++) {
    let j = Math.min(Math.floor(random() * (n - 1)), n - 2);
    if (j >= i) j++;
    if (keys[i] < keys[j] - delta) pairs.push([i, j]);
    else if (keys[j] < keys[i] - delta) pairs.push([j, i]);
  }
  return toPairList(pairs);
}

/** Cosine similarity between the rows of the expression matrix [B, G], as nested arrays (LossInputs). */
export async function expressionSimilarity(expression: tf.Tensor2D): Promise<number[][]> {
  const similarity = tf.tidy(() => {
    const unit = l2Normalize(expression);
    return tf.matMul(unit, unit, false, true);
  });
  try {
    return (await similarity.array()) as number[][];
  } finally {
    similarity.dispose();
  }
}

/** For each child q, the parent p with key[p] < key[q] - delta most similar to q in expression (lowest index on ties). */
function nearestLowerPairs(keys: Float32Array, delta: number, similarity: number[][]): PairList {
  const pairs: [number, number][] = [];
  for (let q = 0; q < keys.length; q++) {
    let best = -1;
    for (let p = 0; p < keys.length; p++) {
      if (keys[p] < keys[q] - delta && (best < 0 || similarity[p][q] > similarity[best][q])) best = p;
    }
    if (best >= 0) pairs.push([best, q]);
  }
  return toPairList(pairs);
}

/** Pairs across levels only, lower level -> higher level, with levels cut by the given edges. */
function crossLevelPairs(keys: Float32Array, edges: readonly number[]): PairList {
  const levels = Float32Array.from(keys, (k) => levelOf(k, edges));
  return allPairs(levels, 0);
}

/** The level edges for quantileLevels: given dataset-wide edges, else i/L on percentiles, else batch quantiles. */
function levelEdges(keys: Float32Array, inputs: LossInputs, config: LossConfig): number[] {
  if (inputs.nnzQuantileEdges) return inputs.nnzQuantileEdges;
  const L = config.quantileLevels;
  if (config.nnzNormalization === 'perSectionRank') return Array.from({ length: L - 1 }, (_, i) => (i + 1) / L);
  return quantileEdges(keys, L);
}

/** The intra-modal parent -> child pairs of a batch for the configured pairing (§4.6). */
export function intraPairs(inputs: LossInputs, config: LossConfig): PairList {
  const keys = nnzKeys(inputs, config);
  const delta = config.nnzMargin;
  switch (config.intraPairing) {
    case 'allPairs':
      return allPairs(keys, delta);
    case 'randomPartner':
      if (!inputs.random) throw new Error("loss: intraPairing 'randomPartner' needs a seeded random()");
      return randomPartnerPairs(keys, delta, inputs.random);
    case 'nearestLowerNnz':
      if (!inputs.expressionSimilarity) {
        throw new Error("loss: intraPairing 'nearestLowerNnz' needs the expression similarity (expressionSimilarity)");
      }
      if (inputs.expressionSimilarity.length !== keys.length) {
        throw new Error(
          `loss: the expression similarity has ${inputs.expressionSimilarity.length} rows for ${keys.length} spots`,
        );
      }
      return nearestLowerPairs(keys, delta, inputs.expressionSimilarity);
    case 'quantileLevels':
      return crossLevelPairs(keys, levelEdges(keys, inputs, config));
  }
}

/** Row selection as a matmul with a one-hot matrix (its gradient is a matmul too; gather's needs a scatter kernel). */
function selectRows(z: tf.Tensor2D, indices: Int32Array): tf.Tensor2D {
  const n = z.shape[0];
  const onehot = new Float32Array(indices.length * n);
  for (let k = 0; k < indices.length; k++) onehot[k * n + indices[k]] = 1;
  return tf.matMul(tf.tensor2d(onehot, [indices.length, n]), z);
}

/**
 * Mean entailment loss over the pairs within one modality's embeddings z (0 when there are none). Dense pair sets
 * use the masked B x B exterior-angle matrix, sparse ones the row-paired loss on the selected rows.
 */
export function pairEntailment(z: tf.Tensor2D, pairs: PairList, curvature: Curvature): tf.Scalar {
  const count = pairs.parents.length;
  const n = z.shape[0];
  if (count === 0) return tf.scalar(0);
  if (count <= n) return entailmentLoss(selectRows(z, pairs.parents), selectRows(z, pairs.children), curvature);
  const weights = new Float32Array(n * n);
  for (let k = 0; k < count; k++) weights[pairs.parents[k] * n + pairs.children[k]] += 1 / count;
  return tf.sum(tf.mul(tf.tensor2d(weights, [n, n]), entailmentMatrix(z, z, curvature)));
}

/** Intra-modal entailment (§4.6): the pair-mean entailment averaged over the configured modalities. */
export function intraEntailment(inputs: LossInputs, config: LossConfig): tf.Scalar {
  if (config.intraModalities.length === 0) return tf.scalar(0);
  const pairs = intraPairs(inputs, config);
  const terms = config.intraModalities.map((m) => pairEntailment(inputs[m], pairs, inputs.curvature));
  return tf.div(tf.addN(terms), terms.length);
}

/** Throws unless image, gene and nnz describe the same B spots. */
function checkBatch(inputs: LossInputs): void {
  const [b, d] = inputs.image.shape;
  if (inputs.gene.shape[0] !== b || inputs.gene.shape[1] !== d) {
    throw new Error(`loss: image is ${inputs.image.shape}, gene is ${inputs.gene.shape}; they must match`);
  }
  if (inputs.nnz.length !== b) throw new Error(`loss: nnz has ${inputs.nnz.length} entries for ${b} spots`);
}

/** All loss terms of a batch for the configured mode; terms a mode does not use are 0. */
export function computeLoss(inputs: LossInputs, config: LossConfig): LossTerms {
  checkBatch(inputs);
  return tf.tidy(() => {
    const { image, gene, curvature, logitScale } = inputs;
    if (config.mode === 'clip') {
      const contrastive = clipContrastive(image, gene, logitScale);
      const zero = () => tf.scalar(0);
      return { total: tf.clone(contrastive), contrastive, crossEntailment: zero(), intraEntailment: zero() };
    }
    const contrastive = hyperbolicContrastive(image, gene, curvature, logitScale);
    const cross = crossEntailment(image, gene, curvature, config.crossDirection);
    const intra = config.mode === 'delst' ? intraEntailment(inputs, config) : tf.scalar(0);
    let total = tf.add(contrastive, tf.mul(config.lambda, cross));
    if (config.mode === 'delst') total = tf.add(total, tf.mul(config.beta, intra));
    return { total: total as tf.Scalar, contrastive, crossEntailment: cross, intraEntailment: intra };
  });
}
