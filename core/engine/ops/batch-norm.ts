// Batch normalisation over N, H, W of an NHWC tensor, for training and inference.
//
// Why not tf.moments + tf.batchNorm (what tf.layers uses): on the wasm backend, reductions over non-innermost axes
// transpose the whole tensor first (tf.moments on 64x56x56x32: 80-100 ms) and the stock gradient of tf.batchNorm is
// built from Tile/Sum/Mean (about 3 s per step of the benchmark model). Here the per-channel mean is one
// global average pool over the tensor seen as [1, N*H, W, C] (a single XNNPACK pass, about 2 ms), and the backward
// pass is the closed form, written as a tf.customGrad op. On webgpu the same op runs fused shaders
// (webgpu/batch-norm.ts).

import * as tf from '@tensorflow/tfjs';
import { batchNormForwardWebgpu } from '../webgpu/batch-norm.js';

export interface BatchNormTrainResult {
  /** Normalised, scaled and shifted output, same shape as x. */
  y: tf.Tensor4D;
  /** Per-channel batch mean [C]; not connected to the gradient tape. */
  mean: tf.Tensor1D;
  /** Per-channel biased batch variance [C]; not connected to the gradient tape. */
  variance: tf.Tensor1D;
}

/**
 * Mean over N, H, W of an NHWC tensor, shape [C].
 *
 * On wasm and cpu this is a global average pool over [1, N*H, W, C]; on libtensorflow (tfjs-node) a plain mean,
 * which is a fast native reduction there.
 */
export function channelMean(x: tf.Tensor4D): tf.Tensor1D {
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    if (tf.getBackend() === 'tensorflow') return tf.mean(x, [0, 1, 2]) as tf.Tensor1D;
    const pooled = tf.avgPool(tf.reshape(x, [1, n * h, w, c]) as tf.Tensor4D, [n * h, w], [n * h, w], 'valid');
    return tf.reshape(pooled, [c]) as tf.Tensor1D;
  });
}

type BnInputs = [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];

/**
 * Batch normalisation in training mode: per-channel statistics over N, H, W, biased variance.
 *
 * `y` is differentiable with respect to x, gamma and beta (closed-form backward). `mean` and `variance` are
 * returned for the caller to update running statistics; they carry no gradient and belong to the current
 * tf.tidy scope like any other tensor the caller creates.
 */
export function batchNormTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon = 1e-5,
): BatchNormTrainResult {
  if (x.rank !== 4) throw new Error(`batchNormTrain: x must be rank 4 (NHWC), got shape [${x.shape}]`);
  const c = x.shape[3];
  if (gamma.size !== c || beta.size !== c) {
    throw new Error(`batchNormTrain: gamma and beta must have ${c} elements, got ${gamma.size} and ${beta.size}`);
  }
  const count = x.shape[0] * x.shape[1] * x.shape[2];
  if (count === 0) throw new Error('batchNormTrain: empty batch');

  // The statistics are produced inside the customGrad forward, where the tape is off; they are kept so that the
  // forward's internal tidy does not free them, and handed back as ordinary (tracked) tensors below.
  let stats: [tf.Tensor1D, tf.Tensor1D] | null = null;

  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b] = args as unknown as BnInputs;
    const save = args[3] as tf.GradSaveFunc;
    if (tf.getBackend() === 'webgpu') {
      // Eight fused shaders per layer instead of about 26 ops: a webgpu step is bound by dispatches.
      const fused = batchNormForwardWebgpu(xi, g, b, epsilon, save);
      stats = [tf.keep(fused.mean), tf.keep(fused.variance)];
      return { value: fused.y, gradFunc: fused.gradFunc };
    }
    const mean = channelMean(xi);
    const xc = tf.sub(xi, mean) as tf.Tensor4D;
    const variance = channelMean(tf.square(xc) as tf.Tensor4D);
    const invStd = tf.rsqrt(tf.add(variance, epsilon)) as tf.Tensor1D;
    const scale = tf.mul(g, invStd) as tf.Tensor1D;
    const y = tf.add(tf.mul(xc, scale), b) as tf.Tensor4D;
    stats = [tf.keep(mean), tf.keep(variance)];
    save([xc, invStd, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sxc, sInvStd, sGamma] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
        const dy4 = dy as tf.Tensor4D;
        // With xhat = xc * invStd and M = N*H*W:
        //   dbeta  = sum(dy),  dgamma = sum(dy * xhat) = invStd * sum(dy * xc)
        //   dx     = gamma * invStd * (dy - mean(dy) - xhat * mean(dy * xhat))
        //          = dy * s + xc * k1 + k0,  s = gamma * invStd,  k0 = -s * mean(dy),
        //                                     k1 = -s * invStd^2 * mean(dy * xc)
        const meanDy = channelMean(dy4);
        const meanDyXc = channelMean(tf.mul(dy4, sxc) as tf.Tensor4D);
        const s = tf.mul(sGamma, sInvStd);
        const k0 = tf.neg(tf.mul(s, meanDy));
        const k1 = tf.neg(tf.mul(s, tf.mul(tf.square(sInvStd), meanDyXc)));
        const dx = tf.add(tf.add(tf.mul(dy4, s), tf.mul(sxc, k1)), k0);
        const dBeta = tf.mul(meanDy, count);
        const dGamma = tf.mul(tf.mul(meanDyXc, sInvStd), count);
        return [dx, dGamma, dBeta];
      },
    };
  });

  const y = op(x, gamma, beta) as tf.Tensor4D;
  const [keptMean, keptVar] = stats as unknown as [tf.Tensor1D, tf.Tensor1D];
  // Copies tracked by the caller's scope (the kept originals would escape every tf.tidy).
  const mean = tf.clone(keptMean);
  const variance = tf.clone(keptVar);
  keptMean.dispose();
  keptVar.dispose();
  return { y, mean, variance };
}

/** Batch normalisation in inference mode with running statistics: y = (x - mean) * gamma / sqrt(var + eps) + beta. */
export function batchNormInfer(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  runningMean: tf.Tensor1D,
  runningVariance: tf.Tensor1D,
  epsilon = 1e-5,
): tf.Tensor4D {
  return tf.tidy(() => {
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(runningVariance, epsilon)));
    const shift = tf.sub(beta, tf.mul(runningMean, scale));
    return tf.add(tf.mul(x, scale), shift) as tf.Tensor4D;
  });
}
