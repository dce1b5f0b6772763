// AdamW against a hand computation (PyTorch's update: decoupled decay first, bias-corrected moments, eps outside
// the root), no decay where a param says so, an exact state round trip, and the warm-up + cosine schedule.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../core/engine/backend.js';
import { AdamW, DEFAULT_ADAMW, learningRate, warmupSteps } from '../../core/engine/optimizer.js';
import { ParamStore } from '../../core/engine/params.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** Reference AdamW in float64 for one param vector, over a list of (grad, lr) steps. */
function referenceAdamW(
  p0: number[],
  steps: { g: number[]; lr: number }[],
  decay: boolean,
  s = { beta1: 0.9, beta2: 0.98, epsilon: 1e-8, weightDecay: 0.2 },
): number[] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  steps.forEach(({ g, lr }, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      if (decay) p[i] *= 1 - lr * s.weightDecay;
      m[i] = s.beta1 * m[i] + (1 - s.beta1) * g[i];
      v[i] = s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i];
      const mHat = m[i] / (1 - s.beta1 ** t);
      const vHat = v[i] / (1 - s.beta2 ** t);
      p[i] -= (lr * mHat) / (Math.sqrt(vHat) + s.epsilon);
    }
  });
  return p;
}

function storeWith(values: Record<string, { x: number[]; decay: boolean }>): ParamStore {
  const store = new ParamStore();
  for (const [name, { x, decay }] of Object.entries(values)) {
    store.add(name, [x.length], Float32Array.from(x), { decay });
  }
  return store;
}

function step(store: ParamStore, opt: AdamW, grads: Record<string, number[]>, lr: number): void {
  const named: tf.NamedTensorMap = {};
  for (const [name, g] of Object.entries(grads)) named[store.get(name).name] = tf.tensor1d(g);
  opt.apply(named, lr);
  tf.dispose(Object.values(named));
}

const values = (store: ParamStore, name: string) => Array.from(store.get(name).dataSync());

describe('AdamW', () => {
  it('uses the defaults of the method notes', () => {
    expect(DEFAULT_ADAMW).toEqual({ beta1: 0.9, beta2: 0.98, epsilon: 1e-8, weightDecay: 0.2 });
  });

  it('takes the first step by hand: p (1 - lr wd) - lr sign(g)', () => {
    const store = storeWith({ w: { x: [1, -2, 0.5], decay: true } });
    const opt = new AdamW(store.trainableEntries());
    step(store, opt, { w: [0.5, 0.1, -3] }, 0.1);
    // After one step m_hat = g and v_hat = g^2, so the Adam part is lr g / (|g| + eps).
    const expected = [1 * 0.98 - 0.1, -2 * 0.98 - 0.1, 0.5 * 0.98 + 0.1];
    values(store, 'w').forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    expect(opt.step).toBe(1);
    opt.dispose();
    store.dispose();
  });

  it('matches a float64 reference over several steps, with and without decay', () => {
    const p0 = [0.3, -1.2, 2.5, 0];
    const steps = [
      { g: [0.5, -0.25, 1e-3, 0], lr: 1e-2 },
      { g: [-0.1, -0.5, 2, 0], lr: 2e-2 },
      { g: [0.7, 0.05, -1, 0], lr: 5e-3 },
      { g: [0.2, 0.3, 0.4, 0], lr: 1e-2 },
    ];
    const store = storeWith({ w: { x: p0, decay: true }, b: { x: p0, decay: false } });
    const opt = new AdamW(store.trainableEntries());
    for (const { g, lr } of steps) step(store, opt, { w: g, b: g }, lr);
    const w = referenceAdamW(p0, steps, true);
    const b = referenceAdamW(p0, steps, false);
    values(store, 'w').forEach((v, i) => expect(v).toBeCloseTo(w[i], 5));
    values(store, 'b').forEach((v, i) => expect(v).toBeCloseTo(b[i], 5));
    // A zero gradient moves a decayed param by the decay alone, and leaves an undecayed one where it is.
    expect(values(store, 'b')[3]).toBe(0);
    opt.dispose();
    store.dispose();
  });

  it('decays only params flagged for decay (none on biases, norms and scalars)', () => {
    const store = storeWith({
      'layer.weight': { x: [2, -4], decay: true },
      'layer.bias': { x: [2, -4], decay: false },
      'norm.gamma': { x: [2, -4], decay: false },
    });
    const opt = new AdamW(store.trainableEntries(), { weightDecay: 0.5 });
    const zero = [0, 0];
    step(store, opt, { 'layer.weight': zero, 'layer.bias': zero, 'norm.gamma': zero }, 0.1);
    const weight = values(store, 'layer.weight');
    expect(weight[0]).toBeCloseTo(2 * 0.95, 6);
    expect(weight[1]).toBeCloseTo(-4 * 0.95, 6);
    expect(values(store, 'layer.bias')).toEqual([2, -4]);
    expect(values(store, 'norm.gamma')).toEqual([2, -4]);
    opt.dispose();
    store.dispose();
  });

  it('leaves a param without a gradient alone, decay included', () => {
    const store = storeWith({ a: { x: [1], decay: true }, b: { x: [1], decay: true } });
    const opt = new AdamW(store.trainableEntries());
    step(store, opt, { a: [1] }, 0.1);
    expect(values(store, 'b')).toEqual([1]);
    expect(values(store, 'a')[0]).toBeCloseTo(0.98 - 0.1, 6);
    opt.dispose();
    store.dispose();
  });

  it('continues exactly from an exported state', () => {
    const p0 = [0.5, -0.5, 1.5];
    const grads = [
      [0.1, 0.2, -0.3],
      [0.4, -0.1, 0.2],
      [-0.2, 0.3, 0.1],
    ];
    const a = storeWith({ w: { x: p0, decay: true } });
    const optA = new AdamW(a.trainableEntries());
    step(a, optA, { w: grads[0] }, 0.01);
    step(a, optA, { w: grads[1] }, 0.01);
    const state = optA.exportState();
    const slots = new Map(
      [...state.slots].map(([k, t]) => [
        k,
        { shape: (t as tf.Tensor).shape, data: (t as tf.Tensor).dataSync() as Float32Array },
      ]),
    );
    expect([...slots.keys()]).toEqual(['m/w', 'v/w']);

    const b = storeWith({ w: { x: values(a, 'w'), decay: true } });
    const optB = new AdamW(b.trainableEntries());
    optB.importState({ kind: state.kind, step: state.step, slots });
    expect(optB.step).toBe(2);
    step(a, optA, { w: grads[2] }, 0.01);
    step(b, optB, { w: grads[2] }, 0.01);
    expect(values(b, 'w')).toEqual(values(a, 'w'));
    expect(() => optB.importState({ kind: 'sgd', step: 0, slots })).toThrow(/not 'adamw'/);
    expect(() => optB.importState({ kind: 'adamw', step: 1, slots: new Map() })).toThrow(/no slot m\/w/);
    for (const x of [optA, optB, a, b]) x.dispose();
  });

  it('keeps the tensor count constant across steps', () => {
    const store = storeWith({ w: { x: [1, 2], decay: true } });
    const opt = new AdamW(store.trainableEntries());
    step(store, opt, { w: [1, 1] }, 0.1);
    const count = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step(store, opt, { w: [1, -1] }, 0.1);
    expect(tf.memory().numTensors).toBe(count);
    opt.dispose();
    store.dispose();
  });
});

describe('learning-rate schedule', () => {
  const schedule = { baseLr: 1e-3, totalSteps: 25, warmupFraction: 0.2 };

  it('warms up linearly over the warm-up steps, from lr / W', () => {
    expect(warmupSteps(25, 0.2)).toBe(5);
    expect(warmupSteps(100, 0.05)).toBe(5);
    expect(warmupSteps(10, 0.05)).toBe(1); // at least one step when asked for
    expect(warmupSteps(10, 0)).toBe(0);
    expect([0, 1, 2, 3, 4].map((s) => learningRate(s, schedule))).toEqual([1, 2, 3, 4, 5].map((k) => (1e-3 * k) / 5));
  });

  it('then follows a cosine from lr to 0', () => {
    expect(learningRate(5, schedule)).toBeCloseTo(1e-3, 12);
    expect(learningRate(15, schedule)).toBeCloseTo(0.5e-3, 12); // halfway through the 20 decay steps
    expect(learningRate(10, schedule)).toBeCloseTo(1e-3 * 0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(learningRate(24, schedule)).toBeCloseTo(1e-3 * 0.5 * (1 + Math.cos((Math.PI * 19) / 20)), 12);
    expect(learningRate(25, schedule)).toBe(0);
    const lrs = Array.from({ length: 20 }, (_, k) => learningRate(5 + k, schedule));
    expect(lrs.every((lr, k) => k === 0 || lr < lrs[k - 1])).toBe(true);
  });

  it('is a pure cosine without warm-up', () => {
    const noWarmup = { baseLr: 2, totalSteps: 4, warmupFraction: 0 };
    expect([0, 1, 2, 3].map((s) => learningRate(s, noWarmup))).toEqual(
      [0, 1, 2, 3].map((k) => 2 * 0.5 * (1 + Math.cos((Math.PI * k) / 4))),
    );
  });
});
