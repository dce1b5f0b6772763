// MaxPoolGrad for wasm, replacing the stock kernel, which gives wrong gradients for 'same' padding in tfjs 4.22
// (max abs error 541 on [1,56,56,1]) and is slow (230 ms for 64x56x56x32). This one recomputes the argmax of each
// window (first maximum in scan order, as the cpu backend) and scatters dy there, in JS on the wasm heap.

import * as tf from '@tensorflow/tfjs';
import type { WasmKernelArgs } from './util.js';

export function maxPoolGradKernel({ inputs, backend, attrs }: WasmKernelArgs): tf.TensorInfo {
  const { dy, input: x } = inputs;
  if (x.dtype !== 'float32') throw new Error(`MaxPoolGrad: float32 only, got ${x.dtype}`);
  const info = tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize as [number, number] | number,
    attrs.strides as [number, number] | number,
    1,
    attrs.pad as 'valid' | 'same' | number,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
  );
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const { top, left } = info.padInfo;

  const out = backend.makeOutput(x.shape, 'float32');
  // Views only after the allocation: it may grow (and so detach) the heap.
  const xv = backend.typedArrayFromHeap(x) as Float32Array;
  const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
  const dxv = backend.typedArrayFromHeap(out) as Float32Array;
  dxv.fill(0);

  // Offsets of the window's in-bounds pixels, in scan order; per channel, the first maximum wins.
  const offsets = new Int32Array(kh * kw);
  let dyPos = 0;
  for (let b = 0; b < n; b++) {
    const batchBase = b * h * w * c;
    for (let oy = 0; oy < oh; oy++) {
      const y0 = oy * sh - top;
      const yStart = Math.max(0, y0);
      const yEnd = Math.min(h, y0 + kh);
      for (let ox = 0; ox < ow; ox++, dyPos += c) {
        const x0 = ox * sw - left;
        const xStart = Math.max(0, x0);
        const xEnd = Math.min(w, x0 + kw);
        let m = 0;
        for (let iy = yStart; iy < yEnd; iy++) {
          for (let ix = xStart; ix < xEnd; ix++) offsets[m++] = batchBase + (iy * w + ix) * c;
        }
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity;
          let at = -1;
          for (let j = 0; j < m; j++) {
            const v = xv[offsets[j] + ch];
            if (v > best) {
              best = v;
              at = offsets[j] + ch;
            }
          }
          if (at >= 0) dxv[at] += dyv[dyPos + ch];
        }
      }
    }
  }
  return out;
}
