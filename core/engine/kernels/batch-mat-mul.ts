// BatchMatMul for wasm, wrapping the stock kernel, which uses XNNPACK only without transposes and with a batch of
// one, and falls to a naive loop 15-60x slower otherwise: every matMul gradient asks for a transpose
// (64x1000^T . 64x512: 59 ms against 2.8 ms), and a batch of 8 256x256 products took 134 ms against 9 ms.
// Transposes are done explicitly first; a batch against a single matrix becomes one tall product; a batch against
// a batch runs the stock kernel once per matrix (copies in and out are plain memcpy on the wasm heap).

import * as tf from '@tensorflow/tfjs';
import type { WasmKernelArgs, WasmKernelFunc } from './util.js';

function swapLastTwo(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  const r = perm.length;
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return tf.transpose(t, perm);
}

const prod = (dims: number[]) => dims.reduce((p, d) => p * d, 1);

export function makeBatchMatMulKernel(stock: tf.KernelFunc): WasmKernelFunc {
  const callStock = (args: WasmKernelArgs) => stock(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;

  return (args: WasmKernelArgs) => {
    const { inputs, backend, attrs } = args;
    const { a, b } = inputs;
    const transposeA = Boolean(attrs.transposeA);
    const transposeB = Boolean(attrs.transposeB);
    if (transposeA || transposeB) {
      // Re-enters this kernel without transposes.
      return tf.tidy(() => tf.matMul(transposeA ? swapLastTwo(a) : a, transposeB ? swapLastTwo(b) : b));
    }
    const batchA = prod(a.shape.slice(0, -2));
    const batchB = prod(b.shape.slice(0, -2));
    if ((batchA <= 1 && batchB <= 1) || a.dtype !== 'float32' || b.dtype !== 'float32') return callStock(args);
    const [m, k] = a.shape.slice(-2);
    const n = b.shape[b.rank - 1];
    const outShape = [
      ...tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)),
      m,
      n,
    ];
    if (b.shape[b.rank - 2] !== k) return callStock(args); // let stock report the mismatch
    if (batchB === 1) {
      return tf.tidy(() => tf.reshape(tf.matMul(tf.reshape(a, [batchA * m, k]), tf.reshape(b, [k, n])), outShape));
    }
    // Per-matrix products only where batches pair one to one (or a is a single matrix), not for cross broadcasting.
    if ((batchA !== batchB && batchA !== 1) || prod(outShape.slice(0, -2)) !== batchB) return callStock(args);

    const out = backend.makeOutput(outShape, 'float32');
    const copyOf = (t: tf.Tensor, index: number, rows: number, cols: number): tf.TensorInfo => {
      const info = backend.makeOutput([1, rows, cols], 'float32');
      const size = rows * cols;
      backend.typedArrayFromHeap(info).set(backend.typedArrayFromHeap(t).subarray(index * size, (index + 1) * size));
      return info;
    };
    const aOnce = batchA === 1 ? copyOf(a, 0, m, k) : null;
    for (let i = 0; i < batchB; i++) {
      const ai = aOnce ?? copyOf(a, i, m, k);
      const bi = copyOf(b, i, k, n);
      const yi = callStock({ inputs: { a: ai, b: bi } as unknown as WasmKernelArgs['inputs'], backend, attrs: {} });
      backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(yi), i * m * n);
      if (!aOnce) backend.disposeData(ai.dataId);
      backend.disposeData(bi.dataId);
      backend.disposeData(yi.dataId);
    }
    if (aOnce) backend.disposeData(aOnce.dataId);
    return out;
  };
}
