// Training-mode batch normalisation on webgpu in eight shaders per layer (four forward, four backward) instead of
// about 26 generic ops: a step is bound by the host's cost per dispatch, not by arithmetic.
//
// x is seen as [M, C] (M = N*H*W, channels innermost). A per-channel sum over M runs in two rounds so that the
// whole GPU takes part and reads stay coalesced: first one thread per (chunk of CHUNK rows, channel) writes
// partial sums [G, 2, C]; then one workgroup per channel adds its G partials with a shared-memory tree. The
// forward partials are each chunk's sum and its sum of squares about the chunk's own mean, combined exactly
// (Chan et al.) into the biased variance: as accurate as the two-pass mean-then-centred-squares (no
// E[x^2] - E[x]^2 cancellation), and x is read from memory once (a thread's second pass over its 32 rows hits cache).

import * as tf from '@tensorflow/tfjs';
import { float, int, runProgram, type Program, type Uniform } from './program.js';

/** Rows of x each first-round thread adds up. */
const CHUNK = 32;
/** Threads of the elementwise and first-round shaders. */
const WORKGROUP = 128;

interface Geometry {
  rows: number;
  channels: number;
  groups: number;
}

function geometry(x: tf.Tensor4D): Geometry {
  const [n, h, w, c] = x.shape;
  const rows = n * h * w;
  return { rows, channels: c, groups: Math.ceil(rows / CHUNK) };
}

/**
 * First round: one thread per (group g, channel c) over rows [g*chunk, min(rows, (g+1)*chunk)), writing
 * `sumA` to out[g, 0, c] and `sumB` to out[g, 1, c]. `body` is WGSL that sees `start`, `end`, `c` and `ch` (C)
 * and declares `sumA` and `sumB`.
 */
function partialsProgram(key: string, names: string[], g: Geometry, body: string): Program {
  const threads = g.groups * g.channels;
  return {
    variableNames: names,
    uniforms: 'rows : i32, chunk : i32, eps : f32,',
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    outputShape: [g.groups, 2, g.channels],
    dispatchLayout: { x: [0, 1, 2] },
    dispatch: [Math.ceil(threads / WORKGROUP), 1, 1],
    shaderKey: key,
    getUserCode: () => `
    fn main(index : i32) {
      let ch = uniforms.outShape[2];
      if (index < uniforms.outShape[0] * ch) {
        let grp = index / ch;
        let c = index - grp * ch;
        let start = grp * uniforms.chunk;
        let end = min(start + uniforms.chunk, uniforms.rows);
        ${body}
        setOutputAtIndex((2 * grp) * ch + c, sumA);
        setOutputAtIndex((2 * grp + 1) * ch + c, sumB);
      }
    }`,
  };
}

/** Threads per workgroup of the second round: enough for the partials, a power of two. */
function finishWorkgroup(groups: number): number {
  return groups >= 1024 ? 256 : 64;
}

/**
 * Second round: out[c] = finish(sum over g of term), one workgroup per channel adding with a shared-memory tree.
 * `term` is a WGSL expression over `grp`, `c`, `ch`, `n` (the group's rows, as f32) and what `prelude` reads
 * once per channel; `finish` one over `total`.
 */
function finishProgram(
  key: string,
  names: string[],
  g: Geometry,
  prelude: string,
  term: string,
  finish: string,
): Program {
  const size = finishWorkgroup(g.groups);
  return {
    variableNames: names,
    uniforms: 'rows : i32, chunk : i32, eps : f32,',
    workgroupSize: [size, 1, 1],
    size: true,
    outputShape: [g.channels],
    dispatchLayout: { x: [0] },
    dispatch: [g.channels, 1, 1],
    shaderKey: key,
    getUserCode: () => `
    var<workgroup> part : array<f32, ${size}>;
    fn main(index : i32) {
      let c = index / ${size};
      let t = i32(localId.x);
      let ch = uniforms.size;
      let groups = uniforms.pShape[0];
      var acc = 0.0;
      if (c < ch) {
        ${prelude}
        for (var grp = t; grp < groups; grp = grp + ${size}) {
          let n = f32(min(uniforms.chunk, uniforms.rows - grp * uniforms.chunk));
          acc = acc + (${term});
        }
      }
      part[t] = acc;
      workgroupBarrier();
      for (var stride = ${size / 2}; stride > 0; stride = stride / 2) {
        if (t < stride) {
          part[t] = part[t] + part[t + stride];
        }
        workgroupBarrier();
      }
      if (t == 0 && c < ch) {
        let total = part[0];
        setOutputAtIndex(c, ${finish});
      }
    }`,
  };
}

/** An elementwise program over x's shape; `expression` sees `index`, `c` (the channel) and the inputs. */
function elementwiseProgram(key: string, names: string[], shape: number[], body: string): Program {
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    variableNames: names,
    uniforms: 'rows : i32, chunk : i32, eps : f32,',
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    outputShape: shape,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    shaderKey: key,
    getUserCode: () => `
    fn main(index : i32) {
      if (index < uniforms.size) {
        let ch = uniforms.outShape[3];
        let c = index - (index / ch) * ch;
        let invStd = inverseSqrt(Variance[c] + uniforms.eps);
        ${body}
      }
    }`,
  };
}

/** The uniforms every program here declares. */
function commonUniforms(g: Geometry, epsilon: number): Uniform[] {
  return [int(g.rows), int(CHUNK), float(epsilon)];
}

/** Per-channel mean and biased variance of x over N, H, W. */
export function batchNormStatsWebgpu(x: tf.Tensor4D): { mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const g = geometry(x);
  const uniforms = commonUniforms(g, 0);
  const partials = runProgram(
    partialsProgram(
      'delstBnMoments',
      ['X'],
      g,
      `var sumA = 0.0;
        for (var m = start; m < end; m = m + 1) { sumA = sumA + X[m * ch + c]; }
        let mu = sumA / f32(end - start);
        var sumB = 0.0;
        for (var m = start; m < end; m = m + 1) {
          let d = X[m * ch + c] - mu;
          sumB = sumB + d * d;
        }`,
    ),
    [x],
    uniforms,
  );
  const mean = runProgram(
    finishProgram('delstBnMean', ['P'], g, '', 'P[2 * grp * ch + c]', 'total / f32(uniforms.rows)'),
    [partials],
    uniforms,
  ) as tf.Tensor1D;
  // Each chunk's squares about its own mean, plus its size times the squared distance of that mean to the mean.
  const variance = runProgram(
    finishProgram(
      'delstBnVariance',
      ['P', 'Mean'],
      g,
      'let mu = Mean[c];',
      'P[(2 * grp + 1) * ch + c] + n * ((P[2 * grp * ch + c] / n - mu) * (P[2 * grp * ch + c] / n - mu))',
      'total / f32(uniforms.rows)',
    ),
    [partials, mean],
    uniforms,
  ) as tf.Tensor1D;
  partials.dispose();
  return { mean, variance };
}

/** y = (x - mean) * (gamma * invStd) + beta, invStd = 1 / sqrt(variance + epsilon), in one dispatch. */
export function batchNormNormaliseWebgpu(
  x: tf.Tensor4D,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
): tf.Tensor4D {
  const program = elementwiseProgram(
    'delstBnNormalise',
    ['X', 'Mean', 'Variance', 'Gamma', 'Beta'],
    [...x.shape],
    'setOutputAtIndex(index, (X[index] - Mean[c]) * (Gamma[c] * invStd) + Beta[c]);',
  );
  return runProgram(program, [x, mean, variance, gamma, beta], commonUniforms(geometry(x), epsilon)) as tf.Tensor4D;
}

/**
 * The closed-form backward of batchNormTrain: with xc = x - mean, xhat = xc * invStd, M = N*H*W,
 * dbeta = sum(dy), dgamma = invStd * sum(dy * xc), dx = dy * s + xc * k1 + k0 where s = gamma * invStd,
 * k0 = -s * dbeta / M and k1 = -s * invStd * dgamma / M.
 */
export function batchNormBackwardWebgpu(
  dy: tf.Tensor4D,
  x: tf.Tensor4D,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  gamma: tf.Tensor1D,
  epsilon: number,
): [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D] {
  const g = geometry(x);
  const uniforms = commonUniforms(g, epsilon);
  const partials = runProgram(
    partialsProgram(
      'delstBnGradSums',
      ['Dy', 'X', 'Mean'],
      g,
      `let mu = Mean[c];
        var sumA = 0.0;
        var sumB = 0.0;
        for (var m = start; m < end; m = m + 1) {
          let i = m * ch + c;
          sumA = sumA + Dy[i];
          sumB = sumB + Dy[i] * (X[i] - mu);
        }`,
    ),
    [dy, x, mean],
    uniforms,
  );
  const dBeta = runProgram(
    finishProgram('delstBnDBeta', ['P'], g, '', 'P[2 * grp * ch + c]', 'total'),
    [partials],
    uniforms,
  ) as tf.Tensor1D;
  const dGamma = runProgram(
    finishProgram(
      'delstBnDGamma',
      ['P', 'Variance'],
      g,
      '',
      'P[(2 * grp + 1) * ch + c]',
      'total * inverseSqrt(Variance[c] + uniforms.eps)',
    ),
    [partials, variance],
    uniforms,
  ) as tf.Tensor1D;
  partials.dispose();
  const dx = runProgram(
    elementwiseProgram(
      'delstBnDx',
      ['Dy', 'X', 'Mean', 'Variance', 'Gamma', 'DBeta', 'DGamma'],
      [...x.shape],
      `let s = Gamma[c] * invStd;
        let count = f32(uniforms.rows);
        let k0 = -(s * (DBeta[c] / count));
        let k1 = -(s * (invStd * (DGamma[c] / count)));
        setOutputAtIndex(index, Dy[index] * s + (X[index] - Mean[c]) * k1 + k0);`,
    ),
    [dy, x, mean, variance, gamma, dBeta, dGamma],
    uniforms,
  ) as tf.Tensor4D;
  return [dx, dGamma, dBeta];
}

/** What batchNormTrain's customGrad forward needs on webgpu: its value and backward, and the statistics. */
export interface BatchNormForwardWebgpu {
  y: tf.Tensor4D;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
}

/**
 * batchNormTrain's customGrad forward on webgpu: statistics, y, and the saved tensors (x itself rather than
 * x - mean, which the backward recomputes inside its shaders).
 */
export function batchNormForwardWebgpu(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  save: tf.GradSaveFunc,
): BatchNormForwardWebgpu {
  const { mean, variance } = batchNormStatsWebgpu(x);
  const y = batchNormNormaliseWebgpu(x, mean, variance, gamma, beta, epsilon);
  save([x, mean, variance, gamma]);
  const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
    const [sx, sMean, sVariance, sGamma] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
    return batchNormBackwardWebgpu(dy as tf.Tensor4D, sx, sMean, sVariance, sGamma, epsilon);
  };
  return { y, mean, variance, gradFunc };
}
