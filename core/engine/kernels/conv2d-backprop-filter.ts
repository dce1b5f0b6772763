// Conv2DBackpropFilter for wasm, which has none (so stock tf.conv2d / tf.layers.conv2d cannot train there).
//
// dW is computed as one forward convolution, which XNNPACK runs fast: the input seen as [Ci, H, W, N]
// ("batch" Ci, "channels" N), convolved with dy seen as a filter [OH, OW, N, Co], dilated by the stride, gives
// [Ci, KH, KW, Co]. Where the geometry leaves input rows or columns that no output reads, they are cropped.
// A 1x1 filter without padding is a plain matrix product of the (subsampled) input and dy.

import * as tf from '@tensorflow/tfjs';
import { cropHW, filterGradientArgs, nhwcToChwn, type FilterGradientArgs, type WasmKernelArgs } from './util.js';

/** x[:, ::sh, ::sw, :] cropped to [N, oh, ow, C]: a 1x1 max-pool is a fast XNNPACK copy; wasm's strided slice is not. */
function subsample(x: tf.Tensor4D, sh: number, sw: number, oh: number, ow: number): tf.Tensor4D {
  const pooled = tf.maxPool(x, 1, [sh, sw], 'valid');
  if (pooled.shape[1] === oh && pooled.shape[2] === ow) return pooled;
  const [n, , , c] = x.shape;
  return tf.stridedSlice(x, [0, 0, 0, 0], [n, (oh - 1) * sh + 1, (ow - 1) * sw + 1, c], [1, sh, sw, 1]) as tf.Tensor4D;
}

export function conv2dBackpropFilter(
  ...[x, dy, filterShape, strides, pad, dimRoundingMode]: FilterGradientArgs
): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = info;
  const { top, left } = info.padInfo;
  const [, h, w] = x.shape;
  return tf.tidy(() => {
    if (kh === 1 && kw === 1 && top === 0 && left === 0) {
      const [n, , , ci] = x.shape;
      const co = dy.shape[3];
      const xs = sh === 1 && sw === 1 && oh === h && ow === w ? x : subsample(x, sh, sw, oh, ow);
      const m = n * oh * ow;
      const dw = tf.matMul(tf.reshape(xs, [m, ci]), tf.reshape(dy, [m, co]), true, false);
      return tf.reshape(dw, [1, 1, ci, co]);
    }
    // Padding after the input so that the dilated "filter" (dy) slides exactly KH x KW times; negative = crop.
    const bottom = kh + (oh - 1) * sh - h - top;
    const right = kw + (ow - 1) * sw - w - left;
    const xc = cropHW(x, 0, Math.max(0, -bottom), 0, Math.max(0, -right));
    const xt = nhwcToChwn(xc); // [Ci, H, W, N]
    const dyt = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [OH, OW, N, Co]
    const padding: tf.backend_util.ExplicitPadding = [
      [0, 0],
      [top, Math.max(0, bottom)],
      [left, Math.max(0, right)],
      [0, 0],
    ];
    const out = tf.conv2d(xt, dyt, 1, padding, 'NHWC', [sh, sw]); // [Ci, KH, KW, Co]
    return tf.transpose(out, [1, 2, 0, 3]);
  });
}

export function conv2dBackpropFilterKernel({ inputs, attrs }: WasmKernelArgs): tf.Tensor {
  return conv2dBackpropFilter(...filterGradientArgs(inputs, attrs));
}
