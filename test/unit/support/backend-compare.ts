// Our kernels (wasm, webgpu) against the 'cpu' backend's reference implementations: seeded random tensors, outputs
// read back asynchronously (webgpu in Node has no sync read-back), compared relative to the reference's scale.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { backendFault, initBackend, useCpuReferenceBackend } from '../../../core/engine/backend.js';

/** Deterministic pseudo-random floats in [-1, 1) (xorshift), so failures reproduce. */
export function randTensor(shape: number[], seed: number): tf.Tensor {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return tf.tensor(out, shape);
}

/** Runs `f` on the backend and returns its outputs; it must leak no tensor (nor, on webgpu, fault the device). */
export async function runOn(backend: 'cpu' | 'wasm' | 'webgpu', f: () => tf.Tensor[]): Promise<Float32Array[]> {
  if (backend === 'cpu') await useCpuReferenceBackend();
  else await initBackend(backend);
  const before = tf.memory().numTensors;
  const outs = tf.tidy(f);
  const arrays = await Promise.all(outs.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(outs);
  expect(tf.memory().numTensors, `${backend} leaked tensors`).toBe(before);
  if (backend === 'webgpu') expect(backendFault()).toBeNull(); // e.g. a shader that did not compile
  return arrays;
}

/** Max abs difference relative to the largest reference magnitude, per output, at most `tol`. */
export function expectClose(got: Float32Array[], ref: Float32Array[], tol = 1e-4): void {
  expect(got.length).toBe(ref.length);
  got.forEach((a, k) => {
    const e = ref[k];
    expect(a.length, `output ${k} length`).toBe(e.length);
    let scale = 1e-6;
    let worst = 0;
    for (let i = 0; i < e.length; i++) {
      scale = Math.max(scale, Math.abs(e[i]));
      worst = Math.max(worst, Math.abs(a[i] - e[i]));
    }
    expect(worst / scale, `output ${k}: max abs error ${worst} at scale ${scale}`).toBeLessThanOrEqual(tol);
  });
}

/** `f` on `backend` against `f` on cpu. */
export async function compareWithCpu(backend: 'wasm' | 'webgpu', f: () => tf.Tensor[], tol = 1e-4): Promise<void> {
  const ref = await runOn('cpu', f);
  const got = await runOn(backend, f);
  expectClose(got, ref, tol);
}
