// GatherV2 for wasm, replacing the stock kernel (about 40 ns per element: gathering 4096 rows of 256 floats took
// ~40 ms). Copies whole slices in JS on the wasm heap.

import * as tf from '@tensorflow/tfjs';
import type { WasmKernelArgs, WasmKernelFunc } from './util.js';

export function makeGatherV2Kernel(stock: tf.KernelFunc | undefined): WasmKernelFunc {
  return (args: WasmKernelArgs) => {
    const { inputs, backend, attrs } = args;
    const { x, indices } = inputs;
    if (x.dtype === 'string' || x.dtype === 'complex64') {
      if (!stock) throw new Error(`GatherV2: ${x.dtype} not supported`);
      return stock(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    }
    const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
    const batchDims = (attrs.batchDims as number | undefined) ?? 0;
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(x, indices, axis, batchDims);
    const { batchSize, outerSize, dimSize, sliceSize } = info;
    const perBatch = batchSize === 0 ? 0 : indices.size / batchSize;
    const out = backend.makeOutput(info.outputShape, x.dtype);
    const idx = backend.typedArrayFromHeap(indices);
    for (let i = 0; i < idx.length; i++) {
      if (!(idx[i] >= 0 && idx[i] < dimSize)) {
        backend.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${idx[i]} is not in [0, ${dimSize - 1}]`);
      }
    }
    if (out.shape.reduce((a, b) => a * b, 1) === 0) return out;
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    let to = 0;
    for (let b = 0; b < batchSize; b++) {
      for (let o = 0; o < outerSize; o++) {
        const base = (b * outerSize + o) * dimSize * sliceSize;
        for (let i = 0; i < perBatch; i++, to += sliceSize) {
          const from = base + idx[b * perBatch + i] * sliceSize;
          if (sliceSize < 16) for (let k = 0; k < sliceSize; k++) dst[to + k] = src[from + k];
          else dst.set(src.subarray(from, from + sliceSize), to);
        }
      }
    }
    return out;
  };
}
