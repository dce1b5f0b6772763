import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, useCpuReferenceBackend } from '../../core/engine/backend.js';
import { batchNormInfer, batchNormTrain } from '../../core/engine/ops/batch-norm.js';

/** Deterministic pseudo-random floats (xorshift), so failures reproduce. */
function rand(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale + offset;
  }
  return out;
}

interface Case {
  shape: [number, number, number, number];
  seed: number;
}

const CASES: Case[] = [
  { shape: [2, 5, 7, 3], seed: 1 },
  { shape: [4, 8, 8, 16], seed: 2 },
  { shape: [1, 3, 1, 5], seed: 3 },
  { shape: [3, 6, 5, 8], seed: 4 },
];

interface Result {
  y: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
}

/** Forward and gradients of sum(y * w) for a fixed random w, through `bn`. */
function run(c: Case, which: 'ours' | 'reference'): Result {
  const [, , , ch] = c.shape;
  const size = c.shape.reduce((a, b) => a * b, 1);
  return tf.tidy(() => {
    const x = tf.tensor4d(rand(size, c.seed, 2, 0.5), c.shape);
    const gamma = tf.tensor1d(rand(ch, c.seed + 10, 0.5, 1));
    const beta = tf.tensor1d(rand(ch, c.seed + 20, 0.5));
    const w = tf.tensor4d(rand(size, c.seed + 30), c.shape);
    const eps = 1e-5;
    const forward = (xi: tf.Tensor4D, g: tf.Tensor1D, b: tf.Tensor1D) => {
      if (which === 'ours') return batchNormTrain(xi, g, b, eps);
      const { mean, variance } = tf.moments(xi, [0, 1, 2]);
      const y = tf.add(tf.mul(tf.div(tf.sub(xi, mean), tf.sqrt(tf.add(variance, eps))), g), b) as tf.Tensor4D;
      return { y, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
    };
    const f = forward(x, gamma, beta);
    const [dx, dgamma, dbeta] = tf.grads((xi, g, b) =>
      tf.sum(tf.mul(forward(xi as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D).y, w)),
    )([x, gamma, beta]);
    const read = (t: tf.Tensor) => t.dataSync() as Float32Array;
    const r = {
      y: read(f.y),
      mean: read(f.mean),
      variance: read(f.variance),
      dx: read(dx),
      dgamma: read(dgamma),
      dbeta: read(dbeta),
    };
    // Return nothing from tidy but plain arrays.
    return r as unknown as tf.Tensor;
  }) as unknown as Result;
}

function expectClose(actual: Float32Array, expected: Float32Array, tol: number, what: string) {
  expect(actual.length, what).toBe(expected.length);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst / Math.max(scale, 1e-6), what).toBeLessThan(tol);
}

function expectResultsClose(a: Result, b: Result, tol: number, label: string) {
  for (const k of ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'] as const)
    expectClose(a[k], b[k], tol, `${label} ${k}`);
}

describe('batchNormTrain', () => {
  const cpu = new Map<number, Result>();

  beforeAll(async () => {
    await useCpuReferenceBackend();
    for (const c of CASES) cpu.set(c.seed, run(c, 'ours'));
  });

  it.each(CASES)('matches a tf.moments reference on cpu, shape $shape', async (c) => {
    await useCpuReferenceBackend();
    expectResultsClose(run(c, 'ours'), run(c, 'reference'), 1e-4, `cpu ${c.shape}`);
  });

  it.each(CASES)('on wasm equals cpu, shape $shape', async (c) => {
    await initBackend('wasm');
    expectResultsClose(run(c, 'ours'), cpu.get(c.seed)!, 1e-4, `wasm ${c.shape}`);
  });

  it('keeps no tensors and returns tracked statistics', async () => {
    await initBackend('wasm');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomNormal([2, 4, 4, 3]) as tf.Tensor4D;
      const { y, mean, variance } = batchNormTrain(x, tf.ones([3]), tf.zeros([3]));
      expect(y.shape).toEqual([2, 4, 4, 3]);
      expect(mean.shape).toEqual([3]);
      expect(variance.shape).toEqual([3]);
      const g = tf.grads((xi) => tf.sum(tf.square(batchNormTrain(xi as tf.Tensor4D, tf.ones([3]), tf.zeros([3])).y)))([
        x,
      ]);
      expect(g[0].shape).toEqual([2, 4, 4, 3]);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('batchNormInfer', () => {
  it('normalises with the running statistics', async () => {
    await initBackend('wasm');
    const y = tf.tidy(() => {
      const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
      return batchNormInfer(x, tf.tensor1d([2, 1]), tf.tensor1d([0, 1]), tf.tensor1d([1, 2]), tf.tensor1d([4, 1]), 0);
    });
    // channel 0: (x - 1) / 2 * 2 + 0; channel 1: (x - 2) / 1 * 1 + 1
    expect(Array.from(y.dataSync())).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    y.dispose();
  });
});
