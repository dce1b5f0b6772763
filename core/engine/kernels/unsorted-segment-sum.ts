// UnsortedSegmentSum for wasm, which has none: it is the gradient of tf.gather (embedding lookups, row selection).
// Adds each row of x into its segment's row of the output, in JS on the wasm heap.

import type * as tf from '@tensorflow/tfjs';
import type { WasmKernelArgs } from './util.js';

export function unsortedSegmentSumKernel({ inputs, backend, attrs }: WasmKernelArgs): tf.TensorInfo {
  const { x, segmentIds } = inputs;
  const numSegments = attrs.numSegments as number;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum: unsupported ${x.dtype}`);
  const rows = segmentIds.size;
  const inner = rows === 0 ? 0 : x.size / rows;
  if (!Number.isInteger(inner)) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] does not prefix x [${x.shape}]`);
  }
  const outShape = [numSegments, ...x.shape.slice(segmentIds.rank)];
  const out = backend.makeOutput(outShape, x.dtype);
  const ids = backend.typedArrayFromHeap(segmentIds);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  dst.fill(0);
  for (let r = 0; r < rows; r++) {
    const id = ids[r];
    if (id < 0 || id >= numSegments) continue; // as TensorFlow: out-of-range ids are dropped
    const from = r * inner;
    const to = id * inner;
    for (let i = 0; i < inner; i++) dst[to + i] += src[from + i];
  }
  return out;
}
