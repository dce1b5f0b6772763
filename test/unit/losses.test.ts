// DELST losses: the intra-modal all-pairs golden value of docs/delst-method.md §2.2, the three modes, the cross
// direction switch, and each intra-modal pairing (pairs, value, finite gradient, the no-pair case).

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  clipContrastive,
  computeLoss,
  DEFAULT_LOSS_CONFIG,
  describeLossConfig,
  expressionSimilarity,
  intraPairs,
  levelOf,
  makeLossConfig,
  pairEntailment,
  percentileWithinSection,
  quantileEdges,
  type LossConfig,
  type LossInputs,
  type PairList,
} from '../../core/engine/losses.js';
import { entailmentLoss, expMap0 } from '../../core/engine/lorentz.js';
import { Rng } from '../../core/engine/random.js';
import { SCALE, V_GENE, V_IMG } from './support/golden-batch.js';

/** Seeded uniform [0, 1) from the engine's generator. */
function mulberry32(seed: number): () => number {
  const generator = new Rng(seed);
  return () => generator.next();
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// §2.2 at c = 1: contrastive loss and gene -> image entailment of the golden batch.
const GOLDEN_CONT = 0.747453;
const GOLDEN_CROSS = 0.703678;
// §2.2 intra-modal all-pairs on the gene points, nnz [100, 300, 200]: pairs (0->1), (0->2), (2->1).
const GOLDEN_INTRA_PAIRS = [1.179986, 1.388733, 1.443873];
const GOLDEN_INTRA = 1.33753;

/** The scalar value of a tensor made in a tidy scope. */
function value(fn: () => tf.Tensor): number {
  return tf.tidy(fn).dataSync()[0];
}

/** Loss inputs for the golden batch at c = 1 (hyperboloid points), with the given nnz and extras. */
function goldenInputs(extra: Partial<LossInputs> = {}): LossInputs {
  const c = tf.scalar(1);
  return {
    image: expMap0(tf.tensor2d(V_IMG), c),
    gene: expMap0(tf.tensor2d(V_GENE), c),
    curvature: c,
    logitScale: tf.scalar(SCALE),
    nnz: Float32Array.from([100, 300, 200]),
    ...extra,
  };
}

/** All four terms as numbers. */
function terms(inputs: LossInputs, config: LossConfig) {
  const t = computeLoss(inputs, config);
  const out = {
    total: t.total.dataSync()[0],
    contrastive: t.contrastive.dataSync()[0],
    crossEntailment: t.crossEntailment.dataSync()[0],
    intraEntailment: t.intraEntailment.dataSync()[0],
  };
  tf.dispose([t.total, t.contrastive, t.crossEntailment, t.intraEntailment]);
  return out;
}

/** Pairs as "p>q" strings, sorted, for set comparisons. */
function pairSet(pairs: PairList): string[] {
  return Array.from(pairs.parents, (p, k) => `${p}>${pairs.children[k]}`).sort();
}

/** Four spots at the origin with the given nnz: inputs where only the pairing rule matters. */
function pairingInputs(nnz: Float32Array): LossInputs {
  return { image: tf.zeros([4, 2]), gene: tf.zeros([4, 2]), curvature: tf.scalar(1), logitScale: tf.scalar(1), nnz };
}

function disposeInputs(inputs: LossInputs): void {
  tf.dispose([inputs.image, inputs.gene, inputs.curvature, inputs.logitScale]);
}

const intraOnly = (overrides: Partial<LossConfig> = {}) => makeLossConfig({ intraModalities: ['gene'], ...overrides });

describe('intra-modal all-pairs golden value (§2.2)', () => {
  it('pairs (0->1), (0->2), (2->1) with the per-pair losses and mean 1.33753', () => {
    tf.tidy(() => {
      const inputs = goldenInputs();
      const pairs = intraPairs(inputs, intraOnly());
      expect(pairSet(pairs)).toEqual(['0>1', '0>2', '2>1']);
      const perPair = [
        [0, 1],
        [0, 2],
        [2, 1],
      ].map(([p, q]) =>
        value(() => pairEntailment(inputs.gene, { parents: Int32Array.of(p), children: Int32Array.of(q) }, 1)),
      );
      perPair.forEach((v, i) => expect(Math.abs(v - GOLDEN_INTRA_PAIRS[i])).toBeLessThan(1e-5));
      expect(Math.abs(terms(inputs, intraOnly()).intraEntailment - GOLDEN_INTRA)).toBeLessThan(1e-5);
    });
  });

  it('the masked B x B path (more pairs than rows) gives the same mean as the row-paired path', () => {
    tf.tidy(() => {
      const { gene } = goldenInputs();
      const doubled: PairList = { parents: Int32Array.of(0, 0, 2, 0, 0, 2), children: Int32Array.of(1, 2, 1, 1, 2, 1) };
      expect(Math.abs(value(() => pairEntailment(gene, doubled, 1)) - GOLDEN_INTRA)).toBeLessThan(1e-5);
      // Gradients of both paths agree (pairwise exterior-angle matrix vs row-paired angles).
      const single: PairList = { parents: Int32Array.of(0, 0, 2), children: Int32Array.of(1, 2, 1) };
      const grad = (pairs: PairList) =>
        Array.from(
          tf
            .grad((z: tf.Tensor) => pairEntailment(z as tf.Tensor2D, pairs, 1))(gene)
            .dataSync(),
        );
      const a = grad(single);
      const b = grad(doubled);
      a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(1e-5));
    });
  });
});

describe('modes', () => {
  it('clip: cosine contrastive only, entailment terms zero', () => {
    tf.tidy(() => {
      const image = tf.tensor2d(V_IMG);
      const gene = tf.tensor2d(V_GENE);
      const t = terms(
        { image, gene, curvature: tf.scalar(1), logitScale: tf.scalar(SCALE), nnz: Float32Array.of(100, 300, 200) },
        makeLossConfig({ mode: 'clip' }),
      );
      expect(t.crossEntailment).toBe(0);
      expect(t.intraEntailment).toBe(0);
      expect(t.total).toBe(t.contrastive);
      expect(Math.abs(t.contrastive - value(() => clipContrastive(image, gene, SCALE)))).toBeLessThan(1e-6);
      // Rescaling the features does not change cosine logits.
      const scaled = terms(
        {
          image: tf.mul(image, 7) as tf.Tensor2D,
          gene: tf.mul(gene, 0.1) as tf.Tensor2D,
          curvature: tf.scalar(1),
          logitScale: tf.scalar(SCALE),
          nnz: Float32Array.of(100, 300, 200),
        },
        makeLossConfig({ mode: 'clip' }),
      );
      expect(Math.abs(scaled.total - t.total)).toBeLessThan(1e-5);
    });
  });

  it('meru: golden contrastive + lambda * golden cross entailment, intra zero', () => {
    tf.tidy(() => {
      const t = terms(goldenInputs(), makeLossConfig({ mode: 'meru', lambda: 0.3 }));
      expect(Math.abs(t.contrastive - GOLDEN_CONT)).toBeLessThan(1e-5);
      expect(Math.abs(t.crossEntailment - GOLDEN_CROSS)).toBeLessThan(1e-5);
      expect(t.intraEntailment).toBe(0);
      expect(Math.abs(t.total - (t.contrastive + 0.3 * t.crossEntailment))).toBeLessThan(1e-6);
    });
  });

  it('delst: total = contrastive + lambda * cross + beta * intra', () => {
    tf.tidy(() => {
      const config = makeLossConfig({ lambda: 0.2, beta: 0.5 });
      const t = terms(goldenInputs(), config);
      expect(Math.abs(t.contrastive - GOLDEN_CONT)).toBeLessThan(1e-5);
      expect(Math.abs(t.crossEntailment - GOLDEN_CROSS)).toBeLessThan(1e-5);
      expect(t.intraEntailment).toBeGreaterThan(0);
      expect(Math.abs(t.total - (t.contrastive + 0.2 * t.crossEntailment + 0.5 * t.intraEntailment))).toBeLessThan(
        1e-6,
      );
    });
  });

  it('intra is the mean over the configured modalities; none configured gives 0', () => {
    tf.tidy(() => {
      const intra = (m: ('gene' | 'image')[]) =>
        terms(goldenInputs(), makeLossConfig({ intraModalities: m })).intraEntailment;
      expect(Math.abs(intra(['gene']) - GOLDEN_INTRA)).toBeLessThan(1e-5);
      expect(Math.abs(intra(['gene', 'image']) - (intra(['gene']) + intra(['image'])) / 2)).toBeLessThan(1e-6);
      expect(intra([])).toBe(0);
    });
  });

  it('defaults, validation and description', () => {
    expect(DEFAULT_LOSS_CONFIG).toMatchObject({
      mode: 'delst',
      lambda: 0.2,
      beta: 0.2,
      crossDirection: 'geneEntailsImage',
      intraPairing: 'allPairs',
      intraModalities: ['gene', 'image'],
      nnzNormalization: 'none',
      nnzMargin: 0,
      quantileLevels: 3,
    });
    expect(makeLossConfig()).toEqual({ ...DEFAULT_LOSS_CONFIG });
    expect(() => makeLossConfig({ lambda: -1 })).toThrow(/lambda/);
    expect(() => makeLossConfig({ quantileLevels: 1 })).toThrow(/quantileLevels/);
    expect(() => makeLossConfig({ intraModalities: ['gene', 'gene'] })).toThrow(/duplicates/);
    expect(describeLossConfig(makeLossConfig())).toBe(
      'delst λ=0.2 gene⊒image β=0.2 intra=allPairs[gene,image] nnz=none δ=0',
    );
    expect(describeLossConfig(makeLossConfig({ mode: 'clip' }))).toBe('clip');
  });

  it('computeLoss keeps only the four returned tensors, all distinct', () => {
    for (const mode of ['clip', 'meru', 'delst'] as const) {
      tf.tidy(() => {
        const inputs = goldenInputs();
        const before = tf.memory().numTensors;
        const t = computeLoss(inputs, makeLossConfig({ mode }));
        expect(new Set([t.total, t.contrastive, t.crossEntailment, t.intraEntailment]).size).toBe(4);
        expect(tf.memory().numTensors).toBe(before + 4);
        tf.dispose([t.total, t.contrastive, t.crossEntailment, t.intraEntailment]);
      });
    }
  });

  it('mismatched batches are refused', () => {
    tf.tidy(() => {
      const inputs = goldenInputs({ nnz: Float32Array.of(1, 2) });
      expect(() => computeLoss(inputs, DEFAULT_LOSS_CONFIG)).toThrow(/nnz/);
    });
  });
});

describe('cross-entailment direction', () => {
  it('imageEntailsGene equals geneEntailsImage with the modalities swapped, and differs from it', () => {
    tf.tidy(() => {
      const inputs = goldenInputs();
      const meru = (dir: LossConfig['crossDirection'], i: LossInputs) =>
        terms(i, makeLossConfig({ mode: 'meru', crossDirection: dir })).crossEntailment;
      const forward = meru('geneEntailsImage', inputs);
      const reverse = meru('imageEntailsGene', inputs);
      const swapped = meru('geneEntailsImage', { ...inputs, image: inputs.gene, gene: inputs.image });
      expect(Math.abs(forward - GOLDEN_CROSS)).toBeLessThan(1e-5);
      expect(Math.abs(reverse - swapped)).toBeLessThan(1e-7);
      expect(Math.abs(reverse - value(() => entailmentLoss(inputs.image, inputs.gene, 1)))).toBeLessThan(1e-7);
      expect(Math.abs(reverse - forward)).toBeGreaterThan(1e-3);
    });
  });
});

describe('intra-modal pairings', () => {
  // Six spots in two sections; spot 5 repeats spot 0's embeddings (identical points) with a higher nnz.
  const B = 6;
  const D = 4;
  const tangents = (seed: number) => {
    const rnd = mulberry32(seed);
    const rows = Array.from({ length: B }, () => Array.from({ length: D }, () => (rnd() - 0.5) * 1.5));
    rows[5] = rows[0].slice();
    return rows;
  };
  const vImg = tangents(11);
  const vGene = tangents(12);
  const nnz = Float32Array.of(900, 2500, 1200, 400, 2500, 3100);
  const sectionOf = Int32Array.of(0, 0, 0, 1, 1, 1);
  const expression = tf.tensor2d(Array.from({ length: B }, (_, i) => vGene[i].map((v) => Math.abs(v) + i * 0.01)));
  let similarity: number[][];
  beforeAll(async () => {
    similarity = await expressionSimilarity(expression);
  });

  /** Inputs built from tangent tensors, so that gradients reach the tangents and log c. */
  const build = (vi: tf.Tensor, vg: tf.Tensor, logC: tf.Tensor, extra: Partial<LossInputs>): LossInputs => {
    const c = tf.exp(logC) as tf.Scalar;
    return {
      image: expMap0(vi as tf.Tensor2D, c),
      gene: expMap0(vg as tf.Tensor2D, c),
      curvature: c,
      logitScale: tf.scalar(SCALE),
      nnz,
      sectionOf,
      expressionSimilarity: similarity,
      random: mulberry32(7),
      ...extra,
    };
  };

  /** The intra term and the gradients of the total with respect to both tangents and log c. */
  const run = (config: LossConfig, extra: Partial<LossInputs> = {}) =>
    tf.tidy(() => {
      const args = [tf.tensor2d(vImg), tf.tensor2d(vGene), tf.scalar(Math.log(0.8))];
      const intra = computeLoss(build(args[0], args[1], args[2], extra), config).intraEntailment.dataSync()[0];
      const grads = tf.grads((vi, vg, lc) => computeLoss(build(vi, vg, lc, extra), config).total)(args);
      const flat = grads.flatMap((g) => Array.from(g.dataSync()));
      return { intra, grads: flat };
    });

  const pairings: LossConfig['intraPairing'][] = ['allPairs', 'randomPartner', 'nearestLowerNnz', 'quantileLevels'];
  for (const pairing of pairings) {
    for (const nnzNormalization of ['none', 'perSectionRank'] as const) {
      it(`${pairing}, nnz ${nnzNormalization}: finite value and finite gradient (identical points in the batch)`, () => {
        const r = run(makeLossConfig({ intraPairing: pairing, nnzNormalization }));
        expect(Number.isFinite(r.intra)).toBe(true);
        expect(r.intra).toBeGreaterThanOrEqual(0);
        expect(r.grads.length).toBe(2 * B * D + 1);
        expect(r.grads.every(Number.isFinite)).toBe(true);
      });
    }
  }

  /** Loss inputs for pair construction only (no gradients). */
  const pairInputs = (extra: Partial<LossInputs> = {}): LossInputs =>
    build(tf.tensor2d(vImg), tf.tensor2d(vGene), tf.scalar(0), extra);

  it('allPairs: parent = lower nnz key, child = higher, margin delta honoured, ties excluded', () => {
    const inputs = pairInputs();
    const pairs = intraPairs(inputs, makeLossConfig());
    for (let k = 0; k < pairs.parents.length; k++) {
      expect(nnz[pairs.parents[k]]).toBeLessThan(nnz[pairs.children[k]]);
    }
    // 6 spots, nnz values with one tie (2500, 2500): 15 unordered pairs minus the tie.
    expect(pairs.parents.length).toBe(14);
    const margin = intraPairs(inputs, makeLossConfig({ nnzMargin: 1000 }));
    // delta = 1000 on nnz [900, 2500, 1200, 400, 2500, 3100]: only children above 1900 (spots 1, 4, 5) remain.
    expect(pairSet(margin)).toEqual(['0>1', '0>4', '0>5', '2>1', '2>4', '2>5', '3>1', '3>4', '3>5']);
  });

  it('randomPartner: reproducible with a seeded generator, one draw per spot, oriented by nnz', () => {
    const config = makeLossConfig({ intraPairing: 'randomPartner' });
    const a = intraPairs(pairInputs({ random: mulberry32(3) }), config);
    const b = intraPairs(pairInputs({ random: mulberry32(3) }), config);
    expect(pairSet(a)).toEqual(pairSet(b));
    expect(a.parents.length).toBeLessThanOrEqual(B);
    expect(a.parents.length).toBeGreaterThan(0);
    for (let k = 0; k < a.parents.length; k++) {
      expect(a.parents[k]).not.toBe(a.children[k]);
      expect(nnz[a.parents[k]]).toBeLessThan(nnz[a.children[k]]);
    }
    expect(run(config, { random: mulberry32(3) }).intra).toBe(run(config, { random: mulberry32(3) }).intra);
    // Different seeds draw different partners somewhere across a few tries.
    const sets = new Set(
      [1, 2, 3, 4, 5].map((s) => pairSet(intraPairs(pairInputs({ random: mulberry32(s) }), config)).join()),
    );
    expect(sets.size).toBeGreaterThan(1);
    expect(() => intraPairs(pairInputs({ random: undefined }), config)).toThrow(/random/);
  });

  it('nearestLowerNnz: each child takes the most similar lower-nnz spot (constructed case)', async () => {
    // Spot 1 can only take 0; spot 2 resembles 1 (not 0); spot 3 resembles 0 (not 1 or 2); spot 0 has no parent.
    const expr = tf.tensor2d([
      [1, 0, 0],
      [0, 1, 0],
      [0, 1, 0.1],
      [1, 0, 0.1],
    ]);
    const similarity = await expressionSimilarity(expr);
    expr.dispose();
    expect(similarity[2][1]).toBeCloseTo(1 / Math.sqrt(1.01), 6);
    expect(similarity[3][0]).toBeCloseTo(1 / Math.sqrt(1.01), 6);
    expect(similarity[1][0]).toBe(0);
    tf.tidy(() => {
      const c = tf.scalar(1);
      const z = expMap0(
        tf.tensor2d([
          [0.2, 0.1, 0],
          [0.5, -0.3, 0.2],
          [0.1, 0.6, -0.4],
          [0.7, 0.2, 0.3],
        ]),
        c,
      );
      const inputs: LossInputs = {
        image: z,
        gene: z,
        curvature: c,
        logitScale: tf.scalar(SCALE),
        nnz: Float32Array.of(10, 20, 30, 40),
        expressionSimilarity: similarity,
      };
      const config = intraOnly({ intraPairing: 'nearestLowerNnz' });
      const pairs = intraPairs(inputs, config);
      expect(pairSet(pairs)).toEqual(['0>1', '0>3', '1>2']);
      const expected = value(() => entailmentLoss(tf.gather(z, [0, 1, 0]), tf.gather(z, [1, 2, 3]), c));
      expect(Math.abs(terms(inputs, config).intraEntailment - expected)).toBeLessThan(1e-6);
      // With a margin of 15: spot 1 has no parent, spot 2 can only take spot 0, spot 3 still prefers 0 over 1.
      expect(pairSet(intraPairs(inputs, intraOnly({ intraPairing: 'nearestLowerNnz', nnzMargin: 15 })))).toEqual([
        '0>2',
        '0>3',
      ]);
      expect(() => intraPairs({ ...inputs, expressionSimilarity: undefined }, config)).toThrow(/expression/);
      expect(() => intraPairs({ ...inputs, expressionSimilarity: similarity.slice(1) }, config)).toThrow(/3 rows/);
    });
  });

  it('quantileLevels: only cross-level pairs, lower level -> higher level', () => {
    expect(quantileEdges([10, 20, 30, 40], 3)).toEqual([20, 30]);
    expect(quantileEdges([1, 2, 3, 4, 5], 2)).toEqual([3]);
    expect([10, 20, 30, 40].map((k) => levelOf(k, [20, 30]))).toEqual([0, 1, 2, 2]);
    const base = pairingInputs(Float32Array.of(10, 20, 30, 40));
    const config = makeLossConfig({ intraPairing: 'quantileLevels' });
    // Dataset-wide edges [15, 35]: levels [0, 1, 1, 2]; spots 1 and 2 share a level, so no 1>2 pair.
    expect(pairSet(intraPairs({ ...base, nnzQuantileEdges: [15, 35] }, config))).toEqual([
      '0>1',
      '0>2',
      '0>3',
      '1>3',
      '2>3',
    ]);
    // Without edges: batch quantiles [20, 30], levels [0, 1, 2, 2]; spots 2 and 3 share the top level.
    expect(pairSet(intraPairs(base, config))).toEqual(['0>1', '0>2', '0>3', '1>2', '1>3']);
    disposeInputs(base);
  });

  it('perSectionRank: uses the within-section percentile, not the raw count', () => {
    expect(Array.from(percentileWithinSection([5, 5, 7], [0, 0, 0]))).toEqual([0.25, 0.25, 1]);
    expect(Array.from(percentileWithinSection([3, 9], [0, 1]))).toEqual([0.5, 0.5]);
    // Section 0 is shallow, section 1 deep: raw nnz orders all of section 0 below all of section 1.
    const base = pairingInputs(Float32Array.of(100, 200, 1000, 3000));
    const rank = percentileWithinSection(base.nnz, [0, 0, 1, 1]);
    expect(Array.from(rank)).toEqual([0, 1, 0, 1]);
    const config = makeLossConfig({ nnzNormalization: 'perSectionRank', nnzMargin: 0.1 });
    const expected = ['0>1', '0>3', '2>1', '2>3'];
    expect(pairSet(intraPairs({ ...base, nnzRankInSection: rank }, config))).toEqual(expected);
    // The precomputed dataset-wide rank wins over the batch-local fallback from sectionOf.
    const datasetRank = Float32Array.of(0.9, 0.1, 0.5, 0.55);
    expect(
      pairSet(intraPairs({ ...base, nnzRankInSection: datasetRank, sectionOf: Int32Array.of(0, 0, 1, 1) }, config)),
    ).toEqual(['1>0', '1>2', '1>3', '2>0', '3>0'].sort());
    expect(pairSet(intraPairs({ ...base, sectionOf: Int32Array.of(0, 0, 1, 1) }, config))).toEqual(expected);
    expect(pairSet(intraPairs(base, makeLossConfig()))).toEqual(['0>1', '0>2', '0>3', '1>2', '1>3', '2>3']);
    expect(() => intraPairs(base, config)).toThrow(/perSectionRank/);
    disposeInputs(base);
  });

  for (const pairing of pairings) {
    it(`${pairing}: no pairs gives 0, not NaN, with a finite gradient`, () => {
      const tied = new Float32Array(B).fill(1000);
      const r = run(makeLossConfig({ intraPairing: pairing }), { nnz: tied, nnzQuantileEdges: [500, 2000] });
      expect(r.intra).toBe(0);
      expect(r.grads.every(Number.isFinite)).toBe(true);
    });
  }

  it('a margin larger than every gap leaves no pairs: 0', () => {
    expect(run(makeLossConfig({ nnzMargin: 1e6 })).intra).toBe(0);
  });
});
