// Conv2DBackpropInput for wasm, replacing the stock kernel (5-14x slower than a forward conv of the same size).
//
// dX is computed with forward convolutions of dy and the flipped, transposed filter [KH, KW, Co, Ci]. With stride
// 1 that is one convolution with explicit padding. With stride s > 1 it is polyphase: the s*s output phases
// (h mod s, w mod s) are each a stride-1 convolution of dy with the sub-kernel of the taps that reach that phase,
// interleaved afterwards. No zero-inserted dy, so no multiplications by zero (a 3x3 stride-2 layer: four convs
// with 2x2, 2x1, 1x2 and 1x1 sub-kernels). A 1x1 filter without padding is a matrix product, then zero-insertion.

import * as tf from '@tensorflow/tfjs';
import { assertNHWC, cropHW, type Pad, type WasmKernelArgs } from './util.js';

/** One phase of one spatial dimension: which flipped taps reach it and how dy must be padded. */
interface Phase {
  /** Number of taps (0: nothing reaches this phase). */
  taps: number;
  /** First tap in the flipped filter; taps are `stride` apart. */
  first: number;
  /** Padding of dy before and after (negative: crop). */
  before: number;
  after: number;
  /** Number of dx rows in this phase. */
  size: number;
}

function phases(inSize: number, outSize: number, k: number, s: number, padBefore: number): Phase[] {
  const result: Phase[] = [];
  for (let r = 0; r < s; r++) {
    const k0 = (r + padBefore) % s;
    const taps = k0 < k ? Math.ceil((k - k0) / s) : 0;
    const c = Math.floor((r + padBefore) / s);
    const size = Math.max(0, Math.ceil((inSize - r) / s));
    const before = taps - 1 - c;
    const after = size + taps - 1 - outSize - before;
    result.push({ taps, first: k - 1 - k0 - s * (taps - 1), before, after, size });
  }
  return result;
}

export function conv2dBackpropInput(
  inputShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  strides: number | [number, number],
  pad: Pad,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, strides, 1, pad, dimRoundingMode);
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = info;
  const [n, h, w, ci] = inputShape;
  const co = filter.shape[3];
  const rows = phases(h, oh, kh, sh, info.padInfo.top);
  const cols = phases(w, ow, kw, sw, info.padInfo.left);
  return tf.tidy(() => {
    if (kh === 1 && kw === 1 && info.padInfo.top === 0 && info.padInfo.left === 0 && oh * sh >= h && ow * sw >= w) {
      const dx = tf.matMul(tf.reshape(dy, [n * oh * ow, co]), tf.reshape(filter, [ci, co]), false, true);
      if (sh === 1 && sw === 1) return tf.reshape(dx, [n, h, w, ci]);
      const spread = tf.pad(tf.reshape(dx, [n, oh, 1, ow, 1, ci]), [
        [0, 0],
        [0, 0],
        [0, sh - 1],
        [0, 0],
        [0, sw - 1],
        [0, 0],
      ]);
      return cropHW(tf.reshape(spread, [n, oh * sh, ow * sw, ci]) as tf.Tensor4D, 0, oh * sh - h, 0, ow * sw - w);
    }
    // Flipped in H and W, in/out channels swapped: [KH, KW, Co, Ci].
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
    const phase = (r: Phase, c: Phase): tf.Tensor4D => {
      if (r.taps === 0 || c.taps === 0 || r.size === 0 || c.size === 0) return tf.zeros([n, r.size, c.size, ci]);
      const kernel =
        r.taps === kh && c.taps === kw
          ? flipped
          : (tf.stridedSlice(
              flipped,
              [r.first, c.first, 0, 0],
              [r.first + sh * (r.taps - 1) + 1, c.first + sw * (c.taps - 1) + 1, co, ci],
              [sh, sw, 1, 1],
            ) as tf.Tensor4D);
      const src = cropHW(
        dy,
        Math.max(0, -r.before),
        Math.max(0, -r.after),
        Math.max(0, -c.before),
        Math.max(0, -c.after),
      );
      const padding: tf.backend_util.ExplicitPadding = [
        [0, 0],
        [Math.max(0, r.before), Math.max(0, r.after)],
        [Math.max(0, c.before), Math.max(0, c.after)],
        [0, 0],
      ];
      return tf.conv2d(src, kernel, 1, padding);
    };
    if (sh === 1 && sw === 1) return phase(rows[0], cols[0]);

    // Interleave: phase (a, b) holds dx[:, s*i + a, s*j + b, :]. Pad every phase to the largest size, stack, crop.
    const qh = rows[0].size;
    const qw = cols[0].size;
    const bands = rows.map((r) => {
      const parts = cols.map((c) => {
        const p = phase(r, c);
        return r.size === qh && c.size === qw
          ? p
          : tf.pad(p, [
              [0, 0],
              [0, qh - r.size],
              [0, qw - c.size],
              [0, 0],
            ]);
      });
      return tf.reshape(tf.stack(parts, 3), [n, qh, qw * sw, ci]); // [N, qh, W', Ci]
    });
    const full = tf.reshape(tf.stack(bands, 2), [n, qh * sh, qw * sw, ci]);
    return cropHW(full as tf.Tensor4D, 0, qh * sh - h, 0, qw * sw - w);
  });
}

export function conv2dBackpropInputKernel({ inputs, attrs }: WasmKernelArgs): tf.Tensor {
  assertNHWC('Conv2DBackpropInput', attrs.dataFormat);
  return conv2dBackpropInput(
    attrs.inputShape as [number, number, number, number],
    inputs.dy as tf.Tensor4D,
    inputs.filter as tf.Tensor4D,
    attrs.strides as [number, number],
    attrs.pad as Pad,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
  );
}
