// Shared helpers for our wasm kernels.

import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** What the engine passes a kernel; on wasm the inputs are the op's actual tf.Tensor objects. */
export interface WasmKernelArgs {
  inputs: Record<string, tf.Tensor>;
  backend: BackendWasm;
  attrs: Record<string, unknown>;
}

export type WasmKernelFunc = (args: WasmKernelArgs) => tf.TensorInfo | tf.TensorInfo[];

const stock = new Map<string, tf.KernelFunc>();
const ours = new WeakSet<object>();

/**
 * Replaces (or adds) the 'wasm' kernel `kernelName`, remembering the stock implementation for `stockKernel`.
 * Must run after the wasm backend is initialised (so stock kernels have run their setup).
 */
export function replaceWasmKernel(kernelName: string, kernelFunc: WasmKernelFunc): void {
  const existing = tf.getKernel(kernelName, 'wasm');
  if (existing) {
    if (!stock.has(kernelName) && !ours.has(existing.kernelFunc)) stock.set(kernelName, existing.kernelFunc);
    tf.unregisterKernel(kernelName, 'wasm');
  }
  ours.add(kernelFunc);
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

/** The stock wasm implementation of a kernel we replaced (undefined where wasm had none). */
export function stockKernel(kernelName: string): tf.KernelFunc | undefined {
  return stock.get(kernelName);
}

/** Restores the stock wasm kernels (benchmarks compare stock and ours in one process). */
export function restoreStockKernels(names: string[]): void {
  for (const name of names) {
    const func = stock.get(name);
    if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
    if (func) tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: func });
  }
}

export function assertNHWC(kernel: string, dataFormat: unknown): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new Error(`${kernel}: only NHWC is supported on wasm, got ${String(dataFormat)}`);
  }
}

export type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

/** The arguments of a dW computation: x, dy, filterShape, strides, pad, dimRoundingMode. */
export type FilterGradientArgs = [
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: Pad,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
];

/** A Conv2DBackpropFilter kernel call's inputs and attributes, typed (wasm and webgpu take the same). */
export function filterGradientArgs(
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown>,
): FilterGradientArgs {
  assertNHWC('Conv2DBackpropFilter', attrs.dataFormat);
  return [
    inputs.x as tf.Tensor4D,
    inputs.dy as tf.Tensor4D,
    attrs.filterShape as [number, number, number, number],
    attrs.strides as [number, number],
    attrs.pad as Pad,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
  ];
}

/** [N,H,W,C] -> [C,H,W,N]: a 2D transpose then a batched block swap, much faster on wasm than one 4D transpose. */
export function nhwcToChwn(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    const cFirst = tf.transpose(tf.reshape(x, [n * h * w, c])); // [C, N*H*W]
    const swapped = tf.transpose(tf.reshape(cFirst, [c, n, h * w]), [0, 2, 1]); // [C, H*W, N]
    return tf.reshape(swapped, [c, h, w, n]) as tf.Tensor4D;
  });
}

/** Crops `x` (NHWC) on H and W by the given non-negative amounts. */
export function cropHW(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return x;
  const [n, h, w, c] = x.shape;
  return tf.slice(x, [0, top, left, 0], [n, h - top - bottom, w - left - right, c]);
}
