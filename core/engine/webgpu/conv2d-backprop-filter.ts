// Conv2DBackpropFilter for webgpu. The stock shader runs one thread per weight, each summing serially over the
// N*OH*OW output positions: a 7x7 stem at batch 64 gives 4704 threads of 200 000 steps each, and no data reuse.
//
// Here dW is a matrix product with a long inner dimension, split so the GPU has enough workgroups: one shader
// writes the im2col of x transposed and cut into S chunks of the M = N*OH*OW output positions, [S, K, M/S] with
// K = KH*KW*Ci; a batched matMul with dy seen as [S, M/S, Co] (a free reshape) runs on tfjs's tiled matMul; the S
// partial products are summed. Where the im2col of the whole batch would be too large a buffer, the batch is taken
// in groups and their dW added.

import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { filterGradientArgs, type FilterGradientArgs } from '../kernels/util.js';
import { int, runProgram, type Program, type Uniform } from './program.js';

/** What the engine passes a webgpu kernel. */
export interface WebgpuKernelArgs {
  inputs: Record<string, tf.Tensor>;
  backend: WebGPUBackend;
  attrs: Record<string, unknown>;
}

const WORKGROUP = 64;

/** out[s, k, j] = x at output position m = s*chunk + j (m = (n, oh, ow)) and tap k = (kh, kw, ci), 0 in padding. */
function im2colProgram(outputShape: [number, number, number]): Program {
  const size = outputShape[0] * outputShape[1] * outputShape[2];
  return {
    variableNames: ['x'],
    uniforms: 'pads : vec2<i32>, strides : vec2<i32>, kw : i32, ci : i32, outW : i32, outHW : i32, chunk : i32,',
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    outputShape,
    dispatchLayout: { x: [0, 1, 2] },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    shaderKey: 'delstIm2colT',
    getUserCode: () => `
    fn main(index : i32) {
      if (index < uniforms.size) {
        let c = getCoordsFromIndex(index);
        let m = c[0] * uniforms.chunk + c[2];
        let n = m / uniforms.outHW;
        let pos = m - n * uniforms.outHW;
        let oh = pos / uniforms.outW;
        let ow = pos - oh * uniforms.outW;
        let tap = c[1] / uniforms.ci;
        let ci = c[1] - tap * uniforms.ci;
        let kh = tap / uniforms.kw;
        let kw = tap - kh * uniforms.kw;
        let xr = oh * uniforms.strides.x + kh - uniforms.pads.x;
        let xc = ow * uniforms.strides.y + kw - uniforms.pads.y;
        var v = 0.0;
        if (xr >= 0 && xr < uniforms.xShape[1] && xc >= 0 && xc < uniforms.xShape[2]) {
          v = getX(n, xr, xc, ci);
        }
        setOutputAtIndex(index, v);
      }
    }`,
  };
}

/** Workgroups the batched matMul should have at least (tfjs tiles its output 32 x 32). */
const TARGET_WORKGROUPS = 256;
/** Shortest inner dimension per chunk worth a matMul of its own. */
const MIN_CHUNK = 256;

/** The largest divisor S of m with S <= target and m / S >= MIN_CHUNK (1 when none). */
export function splitCount(m: number, target: number): number {
  let best = 1;
  for (let s = 2; s <= target && m / s >= MIN_CHUNK; s++) if (m % s === 0) best = s;
  return best;
}

type Info = tf.backend_util.Conv2DInfo;

/** dW of one group of samples: im2col chunks times dy chunks, summed. */
function groupFilterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, info: Info): tf.Tensor {
  const { filterHeight: kh, filterWidth: kw, inChannels: ci, outChannels: co, outHeight: oh, outWidth: ow } = info;
  const m = x.shape[0] * oh * ow;
  const k = kh * kw * ci;
  const tiles = Math.ceil(k / 32) * Math.ceil(co / 32);
  const s = splitCount(m, Math.ceil(TARGET_WORKGROUPS / tiles));
  const chunk = m / s;
  const program = im2colProgram([s, k, chunk]);
  const uniforms: Uniform[] = [
    { type: 'int32', data: [info.padInfo.top, info.padInfo.left] },
    { type: 'int32', data: [info.strideHeight, info.strideWidth] },
    int(kw),
    int(ci),
    int(ow),
    int(oh * ow),
    int(chunk),
  ];
  const cols = runProgram(program, [x], uniforms);
  const parts = tf.matMul(cols as tf.Tensor3D, tf.reshape(dy, [s, chunk, co]) as tf.Tensor3D); // [S, K, Co]
  return s === 1 ? tf.reshape(parts, [k, co]) : tf.sum(parts, 0);
}

/** Bytes one im2col buffer may take: the device's binding limit, at most 256 MiB. */
function im2colBudget(backend: WebGPUBackend): number {
  const limits = backend.device.limits;
  return Math.min(256 * 2 ** 20, limits.maxStorageBufferBindingSize, limits.maxBufferSize);
}

export function conv2dBackpropFilterWebgpu(
  backend: WebGPUBackend,
  ...[x, dy, filterShape, strides, pad, dimRoundingMode]: FilterGradientArgs
): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
  const n = x.shape[0];
  const perSample = 4 * filterShape[0] * filterShape[1] * filterShape[2] * info.outHeight * info.outWidth;
  const group = Math.max(1, Math.min(n, Math.floor(im2colBudget(backend) / perSample)));
  return tf.tidy(() => {
    let total: tf.Tensor | null = null;
    for (let start = 0; start < n; start += group) {
      const size = Math.min(group, n - start);
      const xs = size === n ? x : tf.slice(x, [start, 0, 0, 0], [size, -1, -1, -1]);
      const dys = size === n ? dy : tf.slice(dy, [start, 0, 0, 0], [size, -1, -1, -1]);
      const part = groupFilterGradient(xs, dys, info);
      total = total ? tf.add(total, part) : part;
    }
    return tf.reshape(total!, filterShape);
  });
}

export function conv2dBackpropFilterWebgpuKernel({ inputs, backend, attrs }: WebgpuKernelArgs): tf.Tensor {
  return conv2dBackpropFilterWebgpu(backend, ...filterGradientArgs(inputs, attrs));
}
