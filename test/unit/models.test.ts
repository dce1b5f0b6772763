// The DELST models: shapes, parameter counts, BatchNorm running statistics, MERU's clamps, and finite gradients for
// every trainable param. Forward-only checks run on the 'cpu' reference backend; the backward pass through the
// convolutions runs on 'wasm' with our kernels (the backend the app trains on without a GPU).

import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, useCpuReferenceBackend } from '../../core/engine/backend.js';
import { ConfigError, DEFAULT_MODEL_CONFIG, resolveModelConfig, type ModelConfig } from '../../core/engine/config.js';
import { pairwiseDistance } from '../../core/engine/lorentz.js';
import { DelstModel, HEAD } from '../../core/engine/models/delst-model.js';
import { addBatchNorm, applyBatchNorm } from '../../core/engine/models/image-encoder.js';
import { ParamStore } from '../../core/engine/params.js';
import { Rng } from '../../core/engine/random.js';

const TINY: ModelConfig = resolveModelConfig({
  image: { inputSize: 32, stemWidth: 8, stageWidths: [8, 16], blocksPerStage: [1, 1] },
  gene: { panelSize: 20, hidden: 16 },
  embedDim: 8,
});

function inputs(batch: number, config: ModelConfig, seed = 1): { patches: tf.Tensor4D; expression: tf.Tensor2D } {
  const rng = new Rng(seed);
  const n = config.image.inputSize;
  const pixels = Float32Array.from({ length: batch * n * n * 3 }, () => rng.int(256));
  const genes = Float32Array.from({ length: batch * config.gene.panelSize }, () =>
    rng.chance(0.3) ? rng.uniform(0, 4) : 0,
  );
  return {
    patches: tf.tensor4d(pixels, [batch, n, n, 3]),
    expression: tf.tensor2d(genes, [batch, config.gene.panelSize]),
  };
}

function scalar(model: DelstModel, name: string): number {
  return model.store.get(name).dataSync()[0];
}

describe('model configuration', () => {
  it('fills defaults and names the bad setting', () => {
    expect(resolveModelConfig()).toEqual(DEFAULT_MODEL_CONFIG);
    expect(() => resolveModelConfig({ image: { stageWidths: [32, 64], blocksPerStage: [2] } })).toThrow(
      /one entry per stage \(2 vs 1\)/,
    );
    expect(() => resolveModelConfig({ gene: { dropout: 1 } })).toThrow(/gene.dropout must be .* < 1/);
    expect(() => resolveModelConfig({ embedDim: 0 })).toThrow(ConfigError);
    expect(() => resolveModelConfig({ image: { stageWidth: [1] } as never })).toThrow(
      /unknown setting image.stageWidth/,
    );
  });
});

describe('models on the cpu reference backend (forward only)', () => {
  beforeAll(async () => {
    await useCpuReferenceBackend();
  });

  it('gives every output its shape, in training and inference', () => {
    const model = new DelstModel(TINY, 3);
    const { patches, expression } = inputs(3, TINY);
    for (const training of [true, false]) {
      const e = model.embed(patches, expression, training, { dropoutSeed: 5 });
      expect(e.imageFeatures.shape).toEqual([3, 16]);
      expect(e.geneFeatures.shape).toEqual([3, 16]);
      for (const t of [e.imageTangent, e.geneTangent, e.image, e.gene]) expect(t.shape).toEqual([3, 8]);
      expect(e.curvature!.dataSync()[0]).toBeCloseTo(1, 6);
      expect(e.logitScale.dataSync()[0]).toBeCloseTo(1 / 0.07, 4);
      tf.dispose(Object.values(e));
    }
    tf.dispose([patches, expression]);
    model.dispose();
  });

  it('counts about 2.8 M image-encoder params in the benchmark configuration', () => {
    const model = new DelstModel(DEFAULT_MODEL_CONFIG, 0);
    const image = model.store.count((e) => e.name.startsWith('image.') && e.trainable);
    const gene = model.store.count((e) => e.name.startsWith('gene.'));
    const head = model.store.count((e) => e.name.startsWith('head.'));
    const runningStats = model.store.count((e) => !e.trainable);
    console.log(
      `benchmark config params: image ${image}, gene ${gene}, head ${head}, BN running stats ${runningStats}`,
    );
    expect(image).toBe(2_798_880);
    expect(gene).toBe(1000 * 512 + 512 + 512 * 512 + 512 + 2 * 512);
    expect(head).toBe(256 * 256 + 512 * 256 + 4);
    expect(model.imageEncoder.outputWidth).toBe(256);
    model.dispose();
  });

  it('initialises the same from the same seed and differently from another', async () => {
    const [a, b, c] = [new DelstModel(TINY, 7), new DelstModel(TINY, 7), new DelstModel(TINY, 8)];
    expect(await a.store.flatten()).toEqual(await b.store.flatten());
    expect(await a.store.flatten()).not.toEqual(await c.store.flatten());
    expect(scalar(a, HEAD.imageAlpha)).toBeCloseTo(Math.log(8 ** -0.5), 6);
    for (const m of [a, b, c]) m.dispose();
  });

  it('keeps BatchNorm running statistics: updated with momentum 0.1 in training, used in inference', () => {
    const store = new ParamStore();
    addBatchNorm(store, 'bn', 2);
    const rng = new Rng(4);
    const values = Float32Array.from({ length: 2 * 3 * 3 * 2 }, () => rng.normal() * 2 + 1);
    const x = tf.tensor4d(values, [2, 3, 3, 2]);
    const options = { bnMomentum: 0.1, bnEpsilon: 1e-5 };
    tf.tidy(() => applyBatchNorm(store, 'bn', x, true, options));
    const channel = (c: number) => Array.from(values).filter((_, i) => i % 2 === c);
    for (const c of [0, 1]) {
      const v = channel(c);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const unbiased = v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1);
      expect(store.get('bn.runningMean').dataSync()[c]).toBeCloseTo(0.1 * mean, 5);
      expect(store.get('bn.runningVariance').dataSync()[c]).toBeCloseTo(0.9 + 0.1 * unbiased, 5);
    }
    const inferred = tf.tidy(() => applyBatchNorm(store, 'bn', x, false, options)).dataSync();
    const rm = store.get('bn.runningMean').dataSync();
    const rv = store.get('bn.runningVariance').dataSync();
    inferred.forEach((y, i) => expect(y).toBeCloseTo((values[i] - rm[i % 2]) / Math.sqrt(rv[i % 2] + 1e-5), 5));
    tf.dispose(x);
    store.dispose();
  });

  it('embeds a spot the same alone or in a batch in inference, not in training', () => {
    const model = new DelstModel(TINY, 2);
    const { patches, expression } = inputs(4, TINY);
    const before = model.store.get('image.stem.bn.runningMean').dataSync().slice();
    const imageOf = (p: tf.Tensor4D, g: tf.Tensor2D, training: boolean) =>
      tf.tidy(() => model.embed(p, g, training).image.slice(0, 1).dataSync());
    const first = [tf.slice(patches, 0, 1), tf.slice(expression, 0, 1)] as const;
    expect(imageOf(patches, expression, false)).toEqual(imageOf(...first, false));
    expect(model.store.get('image.stem.bn.runningMean').dataSync()).toEqual(before);
    const trainBatch = imageOf(patches, expression, true);
    expect(model.store.get('image.stem.bn.runningMean').dataSync()).not.toEqual(before);
    expect(trainBatch).not.toEqual(imageOf(tf.slice(patches, 0, 2), tf.slice(expression, 0, 2), true));
    tf.dispose([patches, expression, ...first]);
    model.dispose();
  });

  it('clamps alpha <= 0, c to [c0/10, 10 c0] and s <= 100', async () => {
    const model = new DelstModel(resolveModelConfig({ ...TINY, initCurvature: 2 }), 1);
    const set = (name: string, v: number) => model.store.get(name).assign(tf.scalar(v));
    set(HEAD.imageAlpha, 0.5);
    set(HEAD.geneAlpha, -0.25);
    set(HEAD.logCurvature, 9);
    set(HEAD.logLogitScale, 7);
    model.clampParameters();
    expect(scalar(model, HEAD.imageAlpha)).toBe(0);
    expect(scalar(model, HEAD.geneAlpha)).toBe(-0.25);
    expect(scalar(model, HEAD.logCurvature)).toBeCloseTo(Math.log(20), 6);
    expect(scalar(model, HEAD.logLogitScale)).toBeCloseTo(Math.log(100), 6);
    set(HEAD.logCurvature, -9);
    model.clampParameters();
    const scalars = await model.scalars();
    expect(scalars.curvature).toBeCloseTo(0.2, 6);
    expect(scalars.logitScale).toBeCloseTo(100, 4);
    expect(scalars.imageAlpha).toBe(0);
    expect(scalars.geneAlpha).toBe(-0.25);
    model.dispose();
  });

  it('has no alpha or curvature in clip mode and returns the raw projections', () => {
    const model = new DelstModel(resolveModelConfig({ ...TINY, mode: 'clip' }), 1);
    expect(model.store.has(HEAD.imageAlpha) || model.store.has(HEAD.logCurvature)).toBe(false);
    const { patches, expression } = inputs(2, TINY);
    tf.tidy(() => {
      const e = model.embed(patches, expression, false);
      expect(e.curvature).toBeNull();
      const projected = tf.matMul(e.imageFeatures, model.store.get(HEAD.imageProjection));
      expect(e.image.dataSync()).toEqual(projected.dataSync());
    });
    model.clampParameters();
    tf.dispose([patches, expression]);
    model.dispose();
  });

  it('freezes the backbone by name, never unfreezing running statistics', () => {
    const model = new DelstModel(TINY, 1);
    const trainable = model.store.trainable().length;
    const frozen = model.store.setTrainable((n) => n.startsWith('image.'), false);
    expect(frozen).toBeGreaterThan(0);
    expect(model.store.trainableEntries().every((e) => !e.name.startsWith('image.'))).toBe(true);
    model.store.setTrainable(() => true, true);
    expect(model.store.trainable().length).toBe(trainable);
    expect(model.store.get('image.stem.bn.runningMean').trainable).toBe(false);
    model.dispose();
  });
});

describe('training step on wasm', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(async () => {
    await useCpuReferenceBackend();
  });

  for (const mode of ['delst', 'clip'] as const) {
    it(`gives a finite, non-zero gradient to every trainable param (${mode})`, async () => {
      const config = resolveModelConfig({ ...TINY, mode });
      const model = new DelstModel(config, 11);
      const { patches, expression } = inputs(4, config, 2);
      const { value, grads } = tf.variableGrads(() => {
        const e = model.embed(patches, expression, true, { dropoutSeed: 3 });
        const distance = e.curvature
          ? pairwiseDistance(e.image, e.gene, e.curvature)
          : tf.matMul(e.image, e.gene, false, true);
        return tf.mul(tf.mean(distance), e.logitScale) as tf.Scalar;
      }, model.store.trainable());
      expect(Number.isFinite(value.dataSync()[0])).toBe(true);
      for (const entry of model.store.trainableEntries()) {
        const g = grads[entry.variable.name];
        expect(g, entry.name).toBeDefined();
        const values = g.dataSync();
        expect(values.every(Number.isFinite), entry.name).toBe(true);
        expect(
          values.some((v) => v !== 0),
          entry.name,
        ).toBe(true);
      }
      const flat = await model.store.flattenGrads(grads);
      expect(flat.length).toBe(model.store.count((e) => e.trainable));
      tf.dispose([value, patches, expression, ...Object.values(grads)]);
      model.dispose();
    });
  }
});
