// Our wasm kernels, registered once after the wasm backend is initialised (stock kernels they replace are kept
// for benchmarks; see util.ts).

import * as tf from '@tensorflow/tfjs';
import { makeBatchMatMulKernel } from './batch-mat-mul.js';
import { conv2dBackpropFilterKernel } from './conv2d-backprop-filter.js';
import { conv2dBackpropInputKernel } from './conv2d-backprop-input.js';
import { makeGatherV2Kernel } from './gather-v2.js';
import { maxPoolGradKernel } from './max-pool-grad.js';
import { makeReverseKernel } from './reverse.js';
import { unsortedSegmentSumKernel } from './unsorted-segment-sum.js';
import { replaceWasmKernel, restoreStockKernels, stockKernel, type WasmKernelFunc } from './util.js';

/** Names of the kernels `registerWasmKernels` installs for 'wasm'. */
export const OUR_WASM_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'MaxPoolGrad',
  'BatchMatMul',
  'Reverse',
  'UnsortedSegmentSum',
  'GatherV2',
] as const;

export type OurWasmKernel = (typeof OUR_WASM_KERNELS)[number];

let registered = false;

function ours(): Record<OurWasmKernel, WasmKernelFunc> {
  const stockMatMul = stockKernel('BatchMatMul') ?? tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc;
  if (!stockMatMul) throw new Error('the wasm backend has no BatchMatMul kernel');
  return {
    Conv2DBackpropFilter: conv2dBackpropFilterKernel,
    Conv2DBackpropInput: conv2dBackpropInputKernel,
    MaxPoolGrad: maxPoolGradKernel,
    BatchMatMul: makeBatchMatMulKernel(stockMatMul),
    Reverse: makeReverseKernel(stockKernel('Reverse') ?? tf.getKernel('Reverse', 'wasm')?.kernelFunc),
    UnsortedSegmentSum: unsortedSegmentSumKernel,
    GatherV2: makeGatherV2Kernel(stockKernel('GatherV2') ?? tf.getKernel('GatherV2', 'wasm')?.kernelFunc),
  };
}

/** Registers our gradient kernels for the 'wasm' backend, replacing stock ones. Idempotent. */
export function registerWasmKernels(): void {
  if (registered) return;
  if (!tf.findBackend('wasm')) throw new Error('registerWasmKernels: initialise the wasm backend first');
  for (const [name, func] of Object.entries(ours())) replaceWasmKernel(name, func);
  registered = true;
}

/**
 * Benchmarks only: put the stock wasm kernels back for `names` (those wasm lacks become unregistered), or
 * re-register ours for them.
 */
export function selectWasmKernels(which: 'ours' | 'stock', names: readonly OurWasmKernel[] = OUR_WASM_KERNELS): void {
  registerWasmKernels();
  if (which === 'stock') {
    restoreStockKernels([...names]);
  } else {
    const all = ours();
    for (const name of names) replaceWasmKernel(name, all[name]);
  }
}
