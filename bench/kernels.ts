// `npm run bench -- kernels [--backend wasm|webgpu] [--threads N] [--batch B] [--reps R] [--quick]`: our wasm
// kernels against the stock ones (ms per call, median of R), and GFLOP/s of convolution forward, dX and dW on the
// layers of the half-width ResNet-18 at 112 px (the engine's benchmark model). `--backend webgpu`: the convolution
// layers only, our webgpu dX and dW kernels against tfjs-webgpu's stock ones, each call timed to its read-back.

import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendInfo } from '../core/engine/backend.js';
import { conv2dBackpropInput } from '../core/engine/kernels/conv2d-backprop-input.js';
import { registerWasmKernels, selectWasmKernels, type OurWasmKernel } from '../core/engine/kernels/register.js';
import { nhwcToChwn } from '../core/engine/kernels/util.js';
import { batchNormTrain } from '../core/engine/ops/batch-norm.js';
import { selectWebgpuKernels, type OurWebgpuKernel } from '../core/engine/webgpu/kernels.js';

interface Options {
  backend: 'wasm' | 'webgpu';
  threads?: number;
  batch: number;
  reps: number;
  quick: boolean;
}

function parse(args: string[]): Options {
  const opts: Options = { backend: 'wasm', batch: 64, reps: 5, quick: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => {
      const v = Number(args[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--backend') {
      const b = args[++i];
      if (b !== 'wasm' && b !== 'webgpu') throw new Error('--backend: wasm or webgpu');
      opts.backend = b;
    } else if (a === '--threads') opts.threads = next();
    else if (a === '--batch') opts.batch = next();
    else if (a === '--reps') opts.reps = next();
    else if (a === '--quick') opts.quick = true;
    else if (a !== '--json') throw new Error(`unknown option ${a}`);
  }
  return opts;
}

const round = (v: number, digits = 1) => Number(v.toFixed(digits));

/** Median wall time in ms of `f` (wasm kernels are synchronous), after one warm-up call. */
function timeMs(reps: number, f: () => tf.TensorContainer): number {
  tf.dispose(f());
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const out = f();
    times.push(performance.now() - t0);
    tf.dispose(out);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Times `f` with the stock and with our kernels for `names`. */
function stockVsOurs(
  reps: number,
  names: OurWasmKernel[],
  f: () => tf.TensorContainer,
): { stockMs: number | null; oursMs: number } {
  let stockMs: number | null = null; // stays null where stock wasm has no such kernel
  selectWasmKernels('stock', names);
  try {
    stockMs = round(timeMs(reps, f));
  } catch {
    // not registered on stock wasm
  } finally {
    selectWasmKernels('ours', names);
  }
  return { stockMs, oursMs: round(timeMs(reps, f)) };
}

interface ConvLayer {
  name: string;
  input: [number, number, number, number];
  k: number;
  co: number;
  stride: number;
}

const runKernel = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>) =>
  tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;

/** dX by zero-inserting dy (the alternative to our polyphase formulation), for comparison. */
function dxZeroInsertion(
  inputShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  s: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, s, 1, 'same');
    const [n, oh, ow, co] = dy.shape;
    const k = filter.shape[0];
    const dilated = tf.slice(
      tf.reshape(
        tf.pad(tf.reshape(dy, [n, oh, 1, ow, 1, co]), [
          [0, 0],
          [0, 0],
          [0, s - 1],
          [0, 0],
          [0, s - 1],
          [0, 0],
        ]),
        [n, oh * s, ow * s, co],
      ),
      [0, 0, 0, 0],
      [n, (oh - 1) * s + 1, (ow - 1) * s + 1, co],
    );
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
    const { top, left } = info.padInfo;
    const bottom = inputShape[1] - (oh - 1) * s - 1 + top;
    const right = inputShape[2] - (ow - 1) * s - 1 + left;
    return tf.conv2d(dilated as tf.Tensor4D, flipped, 1, [
      [0, 0],
      [k - 1 - top, bottom],
      [k - 1 - left, right],
      [0, 0],
    ]);
  });
}

/** The convolution layers of the benchmark model at batch n (two with --quick). */
function convLayers({ batch: n, quick }: Options): ConvLayer[] {
  const layers: ConvLayer[] = [
    { name: 'stem 7x7/2, 112x112x3 -> 56x56x32', input: [n, 112, 112, 3], k: 7, co: 32, stride: 2 },
    { name: '3x3/1, 56x56x32 -> 56x56x32', input: [n, 56, 56, 32], k: 3, co: 32, stride: 1 },
    { name: 'stage 1 3x3/1, 28x28x32 -> 28x28x32', input: [n, 28, 28, 32], k: 3, co: 32, stride: 1 },
    { name: 'stage 2 3x3/2, 28x28x32 -> 14x14x64', input: [n, 28, 28, 32], k: 3, co: 64, stride: 2 },
    { name: 'stage 2 shortcut 1x1/2, 28x28x32 -> 14x14x64', input: [n, 28, 28, 32], k: 1, co: 64, stride: 2 },
  ];
  return quick ? layers.slice(2, 4) : layers;
}

/** GFLOP/s of `gflop` done in `ms`. */
const gflops = (gflop: number, ms: number) => round(gflop / (ms / 1e3));

/** One layer's convolution on random values: its forward, dX and dW calls, and the GFLOP of one pass. */
function convCase(layer: ConvLayer) {
  const x = tf.randomNormal(layer.input) as tf.Tensor4D;
  const w = tf.randomNormal([layer.k, layer.k, layer.input[3], layer.co], 0, 0.1) as tf.Tensor4D;
  const y = tf.conv2d(x, w, layer.stride, 'same');
  const dy = tf.randomNormal(y.shape) as tf.Tensor4D;
  const attrs = { strides: [layer.stride, layer.stride], pad: 'same', dataFormat: 'NHWC' };
  return {
    w,
    dy,
    gflop: (2 * y.size * layer.k * layer.k * layer.input[3]) / 1e9,
    forward: () => tf.conv2d(x, w, layer.stride, 'same'),
    dX: () => runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: layer.input }),
    dW: () => runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape }),
    dispose: () => tf.dispose([x, w, y, dy]),
  };
}

/**
 * Median wall time in ms of `f` on the GPU, after one warm-up call (shader compilation): each call ends when a
 * scalar reduced from its outputs is read back, so the time covers the queued GPU work.
 */
async function timeGpuMs(reps: number, f: () => tf.Tensor): Promise<number> {
  const once = async () => {
    const t0 = performance.now();
    const out = f();
    const done = tf.sum(out);
    await done.data();
    tf.dispose([out, done]);
    return performance.now() - t0;
  };
  await once();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) times.push(await once());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Times `f` on webgpu with tfjs-webgpu's stock kernels and with ours for `names`. */
async function stockVsOursGpu(
  reps: number,
  names: OurWebgpuKernel[],
  f: () => tf.Tensor,
): Promise<{ stockMs: number; oursMs: number }> {
  selectWebgpuKernels('stock', names);
  try {
    const stockMs = round(await timeGpuMs(reps, f));
    selectWebgpuKernels('ours', names);
    return { stockMs, oursMs: round(await timeGpuMs(reps, f)) };
  } finally {
    selectWebgpuKernels('ours', names);
  }
}

/** `--backend webgpu`: forward, dX and dW of the convolution layers, stock and ours. */
async function benchWebgpuConv(opts: Options, backend: BackendInfo): Promise<object> {
  const conv = [];
  for (const layer of convLayers(opts)) {
    const c = convCase(layer);
    const rate = (ms: number) => ({ ms, gflops: gflops(c.gflop, ms) });
    const fwdMs = round(await timeGpuMs(opts.reps, c.forward));
    const dx = await stockVsOursGpu(opts.reps, ['Conv2DBackpropInput'], c.dX);
    const dw = await stockVsOursGpu(opts.reps, ['Conv2DBackpropFilter'], c.dW);
    conv.push({
      layer: layer.name,
      gflopPerPass: round(c.gflop, 3),
      forward: rate(fwdMs),
      dX: { ...rate(dx.oursMs), stockMs: dx.stockMs, stockGflops: gflops(c.gflop, dx.stockMs) },
      dW: { ...rate(dw.oursMs), stockMs: dw.stockMs, stockGflops: gflops(c.gflop, dw.stockMs) },
    });
    c.dispose();
  }
  return { backend: backend.name, device: backend.device, batch: opts.batch, reps: opts.reps, conv };
}

export async function benchKernels(args: string[]): Promise<object> {
  const opts = parse(args);
  if (opts.backend === 'webgpu') return benchWebgpuConv(opts, await initBackend('webgpu'));
  const backend = await initBackend('wasm', opts.threads ? { wasmThreads: opts.threads } : {});
  if (backend.name !== 'wasm') throw new Error('benchKernels needs the wasm backend');
  registerWasmKernels();
  const n = opts.batch;
  const reps = opts.reps;

  const conv = [];
  for (const layer of convLayers(opts)) {
    const c = convCase(layer);
    const fwdMs = timeMs(reps, c.forward);
    const dx = stockVsOurs(reps, ['Conv2DBackpropInput', 'Reverse'], c.dX);
    const dwMs = timeMs(reps, c.dW);
    const entry: Record<string, unknown> = {
      layer: layer.name,
      gflopPerPass: round(c.gflop, 3),
      forward: { ms: round(fwdMs), gflops: gflops(c.gflop, fwdMs) },
      dX: {
        ms: dx.oursMs,
        gflops: gflops(c.gflop, dx.oursMs),
        stockMs: dx.stockMs,
        stockGflops: dx.stockMs === null ? null : gflops(c.gflop, dx.stockMs),
      },
      dW: { ms: round(dwMs), gflops: gflops(c.gflop, dwMs), stockMs: null },
    };
    if (layer.stride === 2 && layer.k === 3) {
      const zi = timeMs(reps, () => dxZeroInsertion(layer.input, c.dy, c.w, 2));
      const poly = timeMs(reps, () => conv2dBackpropInput(layer.input, c.dy, c.w, 2, 'same'));
      entry.dXStride2 = { polyphaseMs: round(poly), zeroInsertionMs: round(zi) };
    }
    conv.push(entry);
    c.dispose();
  }

  const kernels: Record<string, unknown> = {};
  {
    const shape: [number, number, number, number] = [n, 56, 56, 32];
    const x = tf.randomNormal(shape) as tf.Tensor4D;
    const y = tf.maxPool(x, 3, 2, 'same');
    const dy = tf.randomNormal(y.shape);
    const dy2 = tf.randomNormal(shape);
    kernels['MaxPoolGrad 3x3/2 same, 64x56x56x32'] = stockVsOurs(reps, ['MaxPoolGrad'], () =>
      runKernel('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: [3, 3], strides: [2, 2], pad: 'same' }),
    );
    kernels['transpose NHWC->CHWN 64x56x56x32 (dW layout)'] = {
      stockMs: round(timeMs(reps, () => tf.transpose(x, [3, 1, 2, 0]))),
      oursMs: round(timeMs(reps, () => nhwcToChwn(x))),
    };
    const gamma = tf.ones([32]) as tf.Tensor1D;
    const beta = tf.zeros([32]) as tf.Tensor1D;
    const stockBn = (xi: tf.Tensor4D, g: tf.Tensor1D, b: tf.Tensor1D) => {
      const { mean, variance } = tf.moments(xi, [0, 1, 2]);
      return tf.batchNorm(xi, mean, variance, b, g, 1e-5);
    };
    const fwdBwd = (bn: (xi: tf.Tensor4D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor) => () =>
      tf.grads((xi, g, b) => bn(xi as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D))([x, gamma, beta], dy2);
    kernels['BatchNorm forward+backward 64x56x56x32 (tf.moments+tf.batchNorm vs ours)'] = {
      stockMs: round(timeMs(reps, fwdBwd(stockBn))),
      oursMs: round(
        timeMs(
          reps,
          fwdBwd((xi, g, b) => batchNormTrain(xi, g, b).y),
        ),
      ),
    };
    tf.dispose([x, y, dy, dy2, gamma, beta]);
  }
  {
    const a = tf.randomNormal([n, 1000]);
    const b = tf.randomNormal([n, 512]);
    const w = tf.randomNormal([1000, 512]);
    kernels['BatchMatMul 64x1000^T . 64x512 (dW of dense)'] = stockVsOurs(reps, ['BatchMatMul'], () =>
      tf.matMul(a, b, true, false),
    );
    kernels['BatchMatMul 64x512 . (1000x512)^T (dX of dense)'] = stockVsOurs(reps, ['BatchMatMul'], () =>
      tf.matMul(b, w, false, true),
    );
    const a8 = tf.randomNormal([8, 256, 256]);
    kernels['BatchMatMul batched 8 x 256x256 . 256x256'] = stockVsOurs(reps, ['BatchMatMul'], () => tf.matMul(a8, a8));
    tf.dispose([a, b, w, a8]);
  }
  {
    const w = tf.randomNormal([3, 3, 128, 256]);
    kernels['Reverse [0,1] of 3x3x128x256'] = stockVsOurs(reps, ['Reverse'], () => tf.reverse(w, [0, 1]));
    tf.dispose(w);
  }
  {
    const table = tf.randomNormal([1000, 256]);
    const ids = tf.randomUniform([4096], 0, 1000, 'int32');
    kernels['GatherV2 4096 rows of 1000x256'] = stockVsOurs(reps, ['GatherV2'], () => tf.gather(table, ids));
    kernels['gather forward+gradient (UnsortedSegmentSum) 4096 rows of 1000x256'] = stockVsOurs(
      reps,
      ['UnsortedSegmentSum'],
      () => tf.grads((t) => tf.sum(tf.gather(t, ids)))([table]),
    );
    tf.dispose([table, ids]);
  }

  return { backend: backend.name, device: backend.device, threads: backend.threads, batch: n, reps, conv, kernels };
}
