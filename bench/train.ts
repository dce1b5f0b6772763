// `npm run bench -- train [--batch B] [--steps N] [--warmup W] [--backend B] [--threads T]`: the training step of
// issue 3's fixed configuration on random data, through the trainer's own step (trainStepAsync): half-width ResNet-18
// (stage widths 32, 64, 128, 256, two basic blocks per stage, 7x7/2 stem + 3x3/2 max-pool, BatchNorm) on
// 112x112x3, gene MLP 1000 -> 512 (GELU) -> 512 with residual and LayerNorm, projections to D = 256 without bias,
// DELST loss (lambda = beta = 0.2, gene entails image, all-pairs intra entailment on both modalities), AdamW.
// Prints one JSON object: the median step time of N steps after W warm-up steps, throughput, the FLOPs of a step
// counted from the layer shapes, and the ratio to the PyTorch CPU reference measured on the build machine.

import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_CHOICES, initBackend, type BackendChoice } from '../core/engine/backend.js';
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from '../core/engine/config.js';
import { makeLossConfig } from '../core/engine/losses.js';
import { DelstModel } from '../core/engine/models/delst-model.js';
import { AdamW } from '../core/engine/optimizer.js';
import { Rng } from '../core/engine/random.js';
import { trainStepAsync } from '../core/engine/trainer.js';

/** PyTorch 1.13 CPU, same configuration, 2 threads, on the project's build machine class (issue 3). */
const PYTORCH = { spotsPerSecond: '77-89', medianStepSeconds: 0.73 } as const;

interface Options {
  batch: number;
  steps: number;
  warmup: number;
  backend: BackendChoice;
  threads?: number;
}

function parse(args: string[]): Options {
  const opts: Options = { batch: 64, steps: 7, warmup: 2, backend: 'auto' };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 0) throw new Error(`${a} needs a whole number`);
      return v;
    };
    if (a === '--batch') opts.batch = next();
    else if (a === '--steps') opts.steps = next();
    else if (a === '--warmup') opts.warmup = next();
    else if (a === '--threads') opts.threads = next();
    else if (a === '--backend') {
      const b = args[++i] as BackendChoice;
      if (!BACKEND_CHOICES.includes(b)) throw new Error(`--backend: ${BACKEND_CHOICES.join(', ')}`);
      opts.backend = b;
    } else if (a !== '--json') throw new Error(`unknown option ${a}`);
  }
  if (opts.steps < 5) throw new Error('--steps must be at least 5');
  if (opts.batch < 2) throw new Error('--batch must be at least 2');
  return opts;
}

/**
 * GFLOP of one training step counted from the layer shapes (2 per multiply-add): every convolution forward, its
 * filter gradient and its input gradient (not for the stem, whose input needs none), and the dense layers likewise
 * (fc1's input gradient is not needed). Elementwise work, BatchNorm, pooling and the B x B loss matrices (about
 * 0.01 GFLOP) are left out.
 */
export function trainingGflops(config: ModelConfig, batch: number): { forward: number; total: number } {
  let forward = 0;
  let total = 0;
  const conv = (size: number, k: number, ci: number, co: number, needDx = true) => {
    const f = 2 * batch * size * size * k * k * ci * co;
    forward += f;
    total += f * (needDx ? 3 : 2);
  };
  const dense = (inputs: number, outputs: number, needDx = true) => {
    const f = 2 * batch * inputs * outputs;
    forward += f;
    total += f * (needDx ? 3 : 2);
  };
  const { image, gene, embedDim } = config;
  let size = Math.ceil(image.inputSize / 2);
  conv(size, 7, 3, image.stemWidth, false);
  size = Math.ceil(size / 2); // max-pool 3x3/2 'same'
  let width = image.stemWidth;
  image.stageWidths.forEach((stageWidth, s) => {
    for (let b = 0; b < image.blocksPerStage[s]; b++) {
      const stride = s > 0 && b === 0 ? 2 : 1;
      const out = Math.ceil(size / stride);
      conv(out, 3, width, stageWidth);
      conv(out, 3, stageWidth, stageWidth);
      if (stride !== 1 || width !== stageWidth) conv(out, 1, width, stageWidth);
      size = out;
      width = stageWidth;
    }
  });
  dense(gene.panelSize, gene.hidden, false);
  dense(gene.hidden, gene.hidden);
  dense(width, embedDim);
  dense(gene.hidden, embedDim);
  return { forward: forward / 1e9, total: total / 1e9 };
}

/** GFLOP/s of a 1024 x 1024 x 1024 matMul on the current backend (median of 5 after one warm-up). */
async function matMulRate(): Promise<number> {
  const n = 1024;
  const rng = new Rng(1);
  const a = tf.tensor2d(
    Float32Array.from({ length: n * n }, () => rng.normal()),
    [n, n],
  );
  const b = tf.tensor2d(
    Float32Array.from({ length: n * n }, () => rng.normal()),
    [n, n],
  );
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    await c.data(); // webgpu in Node reads asynchronously only
    const t = performance.now() - t0;
    c.dispose();
    if (i > 0) times.push(t);
  }
  tf.dispose([a, b]);
  times.sort((x, y) => x - y);
  return (2 * n ** 3) / (times[Math.floor(times.length / 2)] / 1000) / 1e9;
}

const round = (v: number, digits = 3) => Number(v.toFixed(digits));

export async function benchTrain(args: string[]): Promise<object> {
  const opts = parse(args);
  const backend = await initBackend(opts.backend, opts.threads ? { wasmThreads: opts.threads } : {});
  const config = DEFAULT_MODEL_CONFIG;
  const model = new DelstModel(config, 0);
  const optimizer = new AdamW(model.store.trainableEntries(), { weightDecay: 0.2 });
  const loss = makeLossConfig({
    mode: 'delst',
    lambda: 0.2,
    beta: 0.2,
    crossDirection: 'geneEntailsImage',
    intraPairing: 'allPairs',
    intraModalities: ['gene', 'image'],
  });

  const rng = new Rng(7);
  const n = config.image.inputSize;
  const B = opts.batch;
  const patches = tf.tensor4d(
    Float32Array.from({ length: B * n * n * 3 }, () => rng.int(256)),
    [B, n, n, 3],
  );
  const expression = tf.tensor2d(
    Float32Array.from({ length: B * config.gene.panelSize }, () => (rng.chance(0.3) ? rng.uniform(0, 4) : 0)),
    [B, config.gene.panelSize],
  );
  const nnz = Float32Array.from({ length: B }, () => 500 + rng.int(3000));
  const batch = {
    patches,
    expression,
    nnz,
    nnzRank: Float32Array.from(nnz, (v) => v / 3500),
    sectionIndex: new Int32Array(B),
  };

  const times: number[] = [];
  const losses: number[] = [];
  const tensorsAfter: number[] = [];
  for (let i = 0; i < opts.warmup + opts.steps; i++) {
    const t0 = performance.now();
    const v = await trainStepAsync({ model, optimizer, loss }, batch, { lr: 1e-4, dropoutSeed: i, pairSeed: i });
    const seconds = (performance.now() - t0) / 1000;
    if (i >= opts.warmup) times.push(seconds);
    losses.push(v.loss);
    tensorsAfter.push(tf.memory().numTensors);
  }
  tf.dispose([patches, expression]);
  optimizer.dispose();
  model.dispose();
  const matMul = await matMulRate();

  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const flops = trainingGflops(config, B);
  const gflopsPerSecond = flops.total / median;
  return {
    backend: backend.name,
    device: backend.device,
    adapter: backend.adapter ?? null,
    threads: backend.threads,
    batch: B,
    warmupSteps: opts.warmup,
    measuredSteps: opts.steps,
    medianStepSeconds: round(median),
    minStepSeconds: round(sorted[0]),
    maxStepSeconds: round(sorted[sorted.length - 1]),
    spotsPerSecond: round(B / median, 1),
    gflopsPerStep: round(flops.total, 2),
    gflopsForward: round(flops.forward, 2),
    gflopsPerSecond: round(gflopsPerSecond, 1),
    matMulGflopsPerSecond: round(matMul, 1),
    shareOfMatMulRate: round(gflopsPerSecond / matMul, 2),
    pytorchReference: PYTORCH,
    /** Throughput relative to PyTorch (0.73 s / our median step): above 1 is faster. */
    ratioToPytorch: round(PYTORCH.medianStepSeconds / median, 3),
    lossFirst: round(losses[0], 4),
    lossLast: round(losses[losses.length - 1], 4),
    tensorCountConstant: tensorsAfter.every((t) => t === tensorsAfter[0]),
    cpus: os.cpus().length,
    loadAverage: os.loadavg().map((l) => round(l, 2)),
  };
}
