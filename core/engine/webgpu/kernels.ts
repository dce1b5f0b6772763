// Our webgpu kernels, registered when the webgpu backend starts. tfjs-backend-webgpu 4.22 computes every gradient
// the models need correctly (checked against 'cpu' in test/unit/webgpu.test.ts); these replace the slow ones.

import * as tf from '@tensorflow/tfjs';
import { conv2dBackpropInput } from '../kernels/conv2d-backprop-input.js';
import { assertNHWC, type Pad } from '../kernels/util.js';
import { conv2dBackpropFilterWebgpuKernel, type WebgpuKernelArgs } from './conv2d-backprop-filter.js';

/**
 * dX of a strided 1x1 convolution without padding (the ResNet's downsampling shortcut): dy W^T spread out with
 * zeros. The shared kernel pads a rank-6 view for this, and tfjs-webgpu's pad shader does not compile at rank 6.
 */
function pointwiseStridedDx(
  inputShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  sh: number,
  sw: number,
): tf.Tensor4D {
  const [n, h, w, ci] = inputShape;
  const [, oh, ow, co] = dy.shape;
  return tf.tidy(() => {
    const dx = tf.matMul(tf.reshape(dy, [n * oh * ow, co]), tf.reshape(filter, [ci, co]), false, true);
    const cols = tf.pad(tf.reshape(dx, [n * oh, ow, 1, ci]), [
      [0, 0],
      [0, 0],
      [0, sw - 1],
      [0, 0],
    ]);
    const rows = tf.pad(tf.reshape(cols, [n * oh, 1, ow * sw * ci]), [
      [0, 0],
      [0, sh - 1],
      [0, 0],
    ]);
    return tf.slice(tf.reshape(rows, [n, oh * sh, ow * sw, ci]) as tf.Tensor4D, [0, 0, 0, 0], [n, h, w, ci]);
  });
}

/**
 * dX as forward convolutions (polyphase for strides > 1, see kernels/conv2d-backprop-input.ts): tfjs's tiled
 * conv2d shader, where the stock kernel runs a naive loop per input element.
 */
function conv2dBackpropInputWebgpuKernel({ inputs, attrs }: WebgpuKernelArgs): tf.Tensor {
  assertNHWC('Conv2DBackpropInput', attrs.dataFormat);
  const inputShape = attrs.inputShape as [number, number, number, number];
  const dy = inputs.dy as tf.Tensor4D;
  const filter = inputs.filter as tf.Tensor4D;
  const pad = attrs.pad as Pad;
  const rounding = attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape,
    attrs.strides as [number, number],
    1,
    pad,
    rounding,
  );
  const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const pointwise =
    info.filterHeight === 1 && info.filterWidth === 1 && info.padInfo.top === 0 && info.padInfo.left === 0;
  if (pointwise && (sh > 1 || sw > 1) && oh * sh >= inputShape[1] && ow * sw >= inputShape[2]) {
    return pointwiseStridedDx(inputShape, dy, filter, sh, sw);
  }
  return conv2dBackpropInput(inputShape, dy, filter, [sh, sw], pad, rounding);
}

/**
 * AddN in groups: the stock kernel binds every input in one shader, and a device allows only so many storage
 * buffers per shader (8 by default; the trainer sums the squares of ~50 gradients).
 */
function addNWebgpuKernel(args: WebgpuKernelArgs): tf.TensorInfo {
  const tensors = args.inputs as unknown as tf.Tensor[];
  const most = Math.max(2, args.backend.device.limits.maxStorageBuffersPerShaderStage - 1);
  const original = stock.get('AddN');
  if (!original) throw new Error('AddN: the webgpu backend has no stock AddN kernel');
  if (tensors.length <= most) return original(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  return tf.tidy(() => {
    const sums: tf.Tensor[] = [];
    for (let i = 0; i < tensors.length; i += most) {
      const group = tensors.slice(i, i + most);
      sums.push(group.length === 1 ? tf.clone(group[0]) : tf.addN(group));
    }
    return tf.addN(sums); // re-enters this kernel with fewer inputs
  });
}

const OURS = {
  Conv2DBackpropFilter: conv2dBackpropFilterWebgpuKernel,
  Conv2DBackpropInput: conv2dBackpropInputWebgpuKernel,
  AddN: addNWebgpuKernel,
} as const;

export type OurWebgpuKernel = keyof typeof OURS;
export const OUR_WEBGPU_KERNELS = Object.keys(OURS) as OurWebgpuKernel[];

const stock = new Map<string, tf.KernelFunc>();

function install(name: string, func: tf.KernelFunc): void {
  if (tf.getKernel(name, 'webgpu')) tf.unregisterKernel(name, 'webgpu');
  tf.registerKernel({ kernelName: name, backendName: 'webgpu', kernelFunc: func });
}

/** Registers our kernels for 'webgpu' (the backend must be registered), remembering the stock ones. Idempotent. */
export function registerWebgpuKernels(): void {
  for (const [name, func] of Object.entries(OURS)) {
    const existing = tf.getKernel(name, 'webgpu');
    if (existing && !stock.has(name) && existing.kernelFunc !== (func as unknown)) stock.set(name, existing.kernelFunc);
    install(name, func as unknown as tf.KernelFunc);
  }
}

/** Benchmarks and tests: the stock webgpu kernels for `names`, or ours again. */
export function selectWebgpuKernels(
  which: 'ours' | 'stock',
  names: readonly OurWebgpuKernel[] = OUR_WEBGPU_KERNELS,
): void {
  registerWebgpuKernels();
  for (const name of names) {
    const func = which === 'ours' ? (OURS[name] as unknown as tf.KernelFunc) : stock.get(name);
    if (func) install(name, func);
  }
}
