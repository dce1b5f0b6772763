// `npm run bench -- train [--batch B] [--steps N] [--warmup W] [--backend B] [--threads T]
//                        [--reference pytorch [--reference-device cpu|cuda] [--python PATH]]`:
// the training step of issue 3's fixed configuration on random data, through the trainer's own step
// (trainStepAsync): half-width ResNet-18 (stage widths 32, 64, 128, 256, two basic blocks per stage, 7x7/2 stem +
// 3x3/2 max-pool, BatchNorm) on 112x112x3, gene MLP 1000 -> 512 (GELU) -> 512 with residual and LayerNorm,
// projections to D = 256 without bias, DELST loss (lambda = beta = 0.2, gene entails image, all-pairs intra
// entailment on both modalities), AdamW. Prints one JSON object: the median step time of N steps after W warm-up
// steps, throughput, the FLOPs of a step counted from the layer shapes, and on webgpu the GPU dispatches of a step
// (on a GPU the host's cost per dispatch, not arithmetic, bounds our step).
// `--reference pytorch` then runs bench/reference/delst_train_step.py (the same model, loss, optimizer, init and
// data in PyTorch) in a child process, after our run and never beside it, with the same batch, steps, warm-up and
// threads (ours when --threads is not given) on `--reference-device` (default cpu), and adds its JSON as
// `reference` and `ratioToReference` (its median step / ours: above 1, we are faster). Python: --python, else
// $DELST_PYTHON, else the first of python3 and /usr/bin/python3 that can import torch.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_CHOICES, initBackend, type BackendChoice } from '../core/engine/backend.js';
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from '../core/engine/config.js';
import { makeLossConfig, type LossConfig } from '../core/engine/losses.js';
import { DelstModel } from '../core/engine/models/delst-model.js';
import { AdamW } from '../core/engine/optimizer.js';
import { Rng } from '../core/engine/random.js';
import { trainStepAsync, type StepBatch } from '../core/engine/trainer.js';
import { packageRoot } from '../core/resources.js';

/** Counts the webgpu backend's program runs (one compute dispatch each) until stop() returns the count. */
function countDispatches(): { reset(): void; stop(): number } {
  const backend = tf.backend() as unknown as { runWebGPUProgram(...args: unknown[]): unknown };
  const run = backend.runWebGPUProgram;
  let count = 0;
  backend.runWebGPUProgram = (...args: unknown[]) => (count++, run.apply(backend, args));
  return {
    reset: () => (count = 0),
    stop: () => {
      backend.runWebGPUProgram = run;
      return count;
    },
  };
}

/** The benchmark's loss: DELST with lambda = beta = 0.2, gene entails image, all pairs on both modalities. */
export function benchLoss(): LossConfig {
  return makeLossConfig({
    mode: 'delst',
    lambda: 0.2,
    beta: 0.2,
    crossDirection: 'geneEntailsImage',
    intraPairing: 'allPairs',
    intraModalities: ['gene', 'image'],
  });
}

export const REFERENCE_DEVICES = ['cpu', 'cuda'] as const;
export type ReferenceDevice = (typeof REFERENCE_DEVICES)[number];

interface Options {
  batch: number;
  steps: number;
  warmup: number;
  backend: BackendChoice;
  threads?: number;
  /** Run the PyTorch reference after ours. */
  reference: boolean;
  referenceDevice: ReferenceDevice;
  python?: string;
}

function parse(args: string[]): Options {
  const opts: Options = { batch: 64, steps: 7, warmup: 2, backend: 'auto', reference: false, referenceDevice: 'cpu' };
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
    } else if (a === '--reference') {
      if (args[++i] !== 'pytorch') throw new Error('--reference: pytorch (the only reference there is)');
      opts.reference = true;
    } else if (a === '--reference-device') {
      const d = args[++i] as ReferenceDevice;
      if (!REFERENCE_DEVICES.includes(d)) throw new Error(`--reference-device: ${REFERENCE_DEVICES.join(', ')}`);
      opts.referenceDevice = d;
    } else if (a === '--python') {
      const p = args[++i];
      if (!p) throw new Error('--python needs the path of a Python interpreter');
      opts.python = p;
    } else if (a !== '--json') throw new Error(`unknown option ${a}`);
  }
  if (!opts.reference && (args.includes('--reference-device') || opts.python)) {
    throw new Error('--reference-device and --python go with --reference pytorch');
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

/**
 * The benchmark's random batch from Rng(7): patches of uint8-range values, expression nonzero with probability 0.3
 * (uniform in [0, 4)), nnz in [500, 3500). bench/reference/delst_train_step.py draws the same numbers.
 */
export function benchBatch(
  config: ModelConfig,
  size: number,
): StepBatch & { patches: tf.Tensor4D; expression: tf.Tensor2D } {
  const rng = new Rng(7);
  const n = config.image.inputSize;
  const patches = tf.tensor4d(
    Float32Array.from({ length: size * n * n * 3 }, () => rng.int(256)),
    [size, n, n, 3],
  );
  const expression = tf.tensor2d(
    Float32Array.from({ length: size * config.gene.panelSize }, () => (rng.chance(0.3) ? rng.uniform(0, 4) : 0)),
    [size, config.gene.panelSize],
  );
  const nnz = Float32Array.from({ length: size }, () => 500 + rng.int(3000));
  return {
    patches,
    expression,
    nnz,
    nnzRank: Float32Array.from(nnz, (v) => v / 3500),
    sectionIndex: new Int32Array(size),
  };
}

// ---- the PyTorch reference --------------------------------------------------------------------------------------

/** The interpreters tried, in order: --python, else $DELST_PYTHON, else python3 and Debian's /usr/bin/python3. */
function pythonCandidates(explicit?: string): string[] {
  if (explicit) return [explicit];
  if (process.env.DELST_PYTHON) return [process.env.DELST_PYTHON];
  return ['python3', '/usr/bin/python3'];
}

/** Why `python` cannot import torch, or null when it can. */
function torchImportProblem(python: string): string | null {
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8', timeout: 120_000 });
  if (probe.error) return (probe.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : probe.error.message;
  if (probe.status === 0) return null;
  const lines = probe.stderr.trim().split('\n');
  return lines[lines.length - 1] || `exit ${probe.status}`;
}

/** The first candidate Python that can import torch, or what was tried and why each failed. */
export function probeTorchPython(explicit?: string): { python: string } | { python: null; tried: string[] } {
  const tried: string[] = [];
  for (const python of pythonCandidates(explicit)) {
    const problem = torchImportProblem(python);
    if (problem === null) return { python };
    tried.push(`${python} (${problem})`);
  }
  return { python: null, tried };
}

/** A Python that can import torch; throws one line naming every interpreter tried. */
export function torchPython(explicit?: string): string {
  const probe = probeTorchPython(explicit);
  if (probe.python !== null) return probe.python;
  throw new Error(
    `--reference pytorch: no Python with torch: tried ${probe.tried.join(', ')}; pass --python PATH or set DELST_PYTHON`,
  );
}

/** bench/reference/delst_train_step.py of this checkout. */
export function referenceScript(): string {
  const file = path.join(packageRoot(), 'bench', 'reference', 'delst_train_step.py');
  if (!existsSync(file)) throw new Error(`--reference pytorch: the reference script is missing: ${file}`);
  return file;
}

export interface ReferenceRun {
  python: string;
  device: ReferenceDevice;
  batch: number;
  steps: number;
  warmup: number;
  threads?: number;
  /** Smaller patches for quick checks (the model is the same; the benchmark never passes it). */
  inputSize?: number;
}

/**
 * Runs the PyTorch reference in a child process and returns its JSON. Its progress lines pass through to our stderr;
 * a non-zero exit throws with the end of its error output.
 */
export async function runReference(run: ReferenceRun): Promise<Record<string, unknown>> {
  const args = [referenceScript(), '--json', '--device', run.device];
  args.push('--batch', String(run.batch), '--steps', String(run.steps), '--warmup', String(run.warmup));
  if (run.threads) args.push('--threads', String(run.threads));
  if (run.inputSize) args.push('--input-size', String(run.inputSize));
  const child = spawn(run.python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    process.stderr.write(chunk);
  });
  const exit = await new Promise<number | string | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? signal));
  });
  if (exit !== 0) {
    const last = stderr.trim().split('\n').slice(-1)[0] ?? '';
    throw new Error(`--reference pytorch: ${run.python} ${path.basename(args[0])} exited with ${exit}: ${last}`);
  }
  try {
    return JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`--reference pytorch: the reference printed no JSON object: ${stdout.slice(0, 200)}`);
  }
}

export async function benchTrain(args: string[]): Promise<object> {
  const opts = parse(args);
  // Found first, so that a missing torch fails before the timed run.
  const python = opts.reference ? torchPython(opts.python) : null;
  const backend = await initBackend(opts.backend, opts.threads ? { wasmThreads: opts.threads } : {});
  const config = DEFAULT_MODEL_CONFIG;
  const model = new DelstModel(config, 0);
  const optimizer = new AdamW(model.store.trainableEntries(), { weightDecay: 0.2 });
  const loss = benchLoss();
  const B = opts.batch;
  const batch = benchBatch(config, B);

  const times: number[] = [];
  const losses: number[] = [];
  const tensorsAfter: number[] = [];
  const counter = backend.name === 'webgpu' ? countDispatches() : null;
  for (let i = 0; i < opts.warmup + opts.steps; i++) {
    if (i === opts.warmup && counter) counter.reset();
    const t0 = performance.now();
    const v = await trainStepAsync({ model, optimizer, loss }, batch, { lr: 1e-4, dropoutSeed: i, pairSeed: i });
    const seconds = (performance.now() - t0) / 1000;
    if (i >= opts.warmup) times.push(seconds);
    losses.push(v.loss);
    tensorsAfter.push(tf.memory().numTensors);
  }
  const dispatches = counter?.stop() ?? null;
  tf.dispose([batch.patches, batch.expression]);
  optimizer.dispose();
  model.dispose();
  const matMul = await matMulRate();

  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const flops = trainingGflops(config, B);
  const gflopsPerSecond = flops.total / median;
  const reference = python
    ? await runReference({
        python,
        device: opts.referenceDevice,
        batch: B,
        steps: opts.steps,
        warmup: opts.warmup,
        threads: opts.threads ?? (opts.referenceDevice === 'cpu' ? backend.threads : undefined),
      })
    : null;
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
    ...(dispatches !== null && { dispatchesPerStep: dispatches / opts.steps }),
    ...(reference && {
      reference,
      /** The reference's median step / ours, measured in this command: above 1, we are faster. */
      ratioToReference: round(Number(reference.medianStepSeconds) / median, 3),
    }),
    lossFirst: round(losses[0], 4),
    lossLast: round(losses[losses.length - 1], 4),
    tensorCountConstant: tensorsAfter.every((t) => t === tensorsAfter[0]),
    cpus: os.cpus().length,
    loadAverage: os.loadavg().map((l) => round(l, 2)),
  };
}
