// AdamW's update on webgpu in three shaders per parameter (the two moments, then the parameter) instead of about
// fourteen elementwise ops, each with its scalar uploaded as a tensor. On a GPU a training step of our models is
// bound by the host's cost per dispatch rather than by arithmetic, and the optimizer was a quarter of the dispatches.
// Same arithmetic in the same order as adamwUpdateOps (optimizer.ts), so the results agree to rounding.

import type * as tf from '@tensorflow/tfjs';
import { fusedElementwise } from './elementwise.js';

/** The per-step constants of one AdamW update (optimizer.ts computes them). */
export interface AdamWStepConstants {
  beta1: number;
  beta2: number;
  epsilon: number;
  /** 1 - lr wd for a decayed parameter, 1 otherwise. */
  decayFactor: number;
  /** lr / (1 - beta1^t). */
  stepSize: number;
  /** sqrt(1 - beta2^t). */
  sqrtCorrection2: number;
}

/** New (param, m, v) for param `p` with gradient `g`; the caller assigns them. */
export function adamwUpdateWebgpu(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  c: AdamWStepConstants,
): { param: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  const m1 = fusedElementwise(
    'delstAdamWM',
    { M: m, G: g },
    { b: c.beta1, rest: 1 - c.beta1 },
    'm * uniforms.b + g * uniforms.rest',
  );
  const v1 = fusedElementwise(
    'delstAdamWV',
    { V: v, G: g },
    { b: c.beta2, rest: 1 - c.beta2 },
    'v * uniforms.b + (g * g) * uniforms.rest',
  );
  const param = fusedElementwise(
    'delstAdamWP',
    { P: p, M: m1, V: v1 },
    { decay: c.decayFactor, stepSize: c.stepSize, correction: c.sqrtCorrection2, eps: c.epsilon },
    'p * uniforms.decay - (m / (sqrt(v) / uniforms.correction + uniforms.eps)) * uniforms.stepSize',
  );
  return { param, m: m1, v: v1 };
}
