// The webgpu test suite, run once per software Vulkan driver (one driver per test file: the Vulkan loader reads
// VK_ICD_FILENAMES once per process). Our kernels, a two-step training and inference (embeddings, backbone features)
// against 'cpu', the adapter's description, a frozen-backbone run, `delst embed --backend webgpu`, and a device loss
// mid-run ending in a clear error and a checkpoint that --resume continues on wasm. Software drivers are slow: small
// shapes and a few spots of A1 only.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendFault, initBackend, useCpuReferenceBackend, type BackendInfo } from '../../../core/engine/backend.js';
import { hasCheckpoint, loadCheckpoint, saveCheckpoint } from '../../../core/engine/checkpoint.js';
import { resolveModelConfig, withPanelSize, type ModelConfig } from '../../../core/engine/config.js';
import { buildDataset, type SpotDataset } from '../../../core/engine/dataset.js';
import { backboneFeatures, embedDataset } from '../../../core/engine/embed.js';
import { selectGenePanel, type GenePanel } from '../../../core/engine/gene-panel.js';
import { makeLossConfig } from '../../../core/engine/losses.js';
import { decodeNpy } from '../../../core/engine/npy.js';
import { DelstModel } from '../../../core/engine/models/delst-model.js';
import { batchNormTrain } from '../../../core/engine/ops/batch-norm.js';
import { AdamW } from '../../../core/engine/optimizer.js';
import { Rng } from '../../../core/engine/random.js';
import { DeviceFailureError, train, trainStepAsync } from '../../../core/engine/trainer.js';
import { probeAdapter } from '../../../core/engine/webgpu/adapter.js';
import { OUR_WEBGPU_KERNELS } from '../../../core/engine/webgpu/kernels.js';
import { maxBatchForAdapter } from '../../../core/engine/webgpu/memory.js';
import { webgpuDevice } from '../../../core/engine/webgpu/start.js';
import { openSections } from '../../../core/readers/open.js';
import type { Section } from '../../../core/section/section.js';
import { compareWithCpu, expectClose, randTensor } from './backend-compare.js';

/** A software Vulkan driver the suite runs on, and what the adapter it gives must say of itself. */
export interface VulkanDriver {
  name: string;
  /** Its Vulkan ICD manifest, handed to the loader as VK_ICD_FILENAMES. */
  icd: string;
  /** Where the manifest comes from, for the skip reason. */
  howToGet: string;
  adapter: { vendor: string; architecture: string };
  deviceLine: RegExp;
}

/** A model small enough for a software driver. */
export const TINY = {
  image: { inputSize: 16, stemWidth: 8, stageWidths: [8, 8, 8, 8], blocksPerStage: [1, 1, 1, 1] },
  gene: { panelSize: 50, hidden: 16 },
  embedDim: 16,
};
const root = resolve(import.meta.dirname, '../../..');
export const A1 = resolve(root, '../shared/data/her2st/A1');
/** Mesa's lavapipe as scripts/get-lavapipe.sh unpacks it. */
export const LAVAPIPE_ICD = resolve(root, '.cache/lavapipe/lvp_icd.json');
const noA1 = !existsSync(A1);
const noDist = !existsSync(join(root, 'dist/cli/train.js'));
/** In-tissue spots of the small copy of A1 the runs below use: two batches of 4 where batched. */
export const SPOTS = 6;

const compare = (f: () => tf.Tensor[], tol?: number) => compareWithCpu('webgpu', f, tol);

/**
 * A copy of A1 in `dir` with only its first `spots` in-tissue spots under tissue (spots.tsv's `selected`), the
 * other files copied: the engine reads in-tissue spots only, so everything run on it is small.
 */
export async function tinySection(dir: string, spots: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const file of ['counts.tsv.gz', 'image.png', 'scalefactors_json.json']) {
    await copyFile(join(A1, file), join(dir, file)); // the readers take no symlinks
  }
  const [header, ...rows] = (await readFile(join(A1, 'spots.tsv'), 'utf8')).trim().split(/\r?\n/);
  const selected = header.split('\t').indexOf('selected');
  let kept = 0;
  const table = rows.map((row) => {
    const cells = row.split('\t');
    if (cells[selected] === '1' && kept < spots) kept++;
    else cells[selected] = '0';
    return cells.join('\t');
  });
  await writeFile(join(dir, 'spots.tsv'), [header, ...table].join('\n') + '\n');
  return dir;
}

/** Trains TINY on webgpu for two epochs of one step each, running `fault` before epoch 2; what train() threw. */
export function trainFailingInEpoch2(section: string, out: string, fault: () => void): Promise<unknown> {
  return train({
    sections: [section],
    out,
    epochs: 2,
    batchSize: SPOTS, // one step per epoch
    backend: 'webgpu',
    modelConfig: TINY,
    augment: null,
    faults: { beforeStep: (epoch) => (epoch === 2 ? fault() : undefined) },
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
}

/**
 * A two-epoch run of one step each in `out` that a GPU failure (`error`, its message matching `reason`) ended in
 * epoch 2: the message names the step and epoch 1's checkpoint, which stays current, and `delst train --resume
 * --backend BACKEND` in a new process finishes the run. Returns that run's summary.
 */
export async function expectResumableAfterGpuFailure(
  error: unknown,
  reason: RegExp,
  section: string,
  out: string,
  backend: 'wasm' | 'webgpu',
): Promise<Record<string, unknown>> {
  expect(error).toBeInstanceOf(DeviceFailureError);
  const where =
    / at epoch 2, step 1 of 1; training stopped without saving this state and the last good checkpoint \(epoch 1, step 1\) stays current in .*--resume/s;
  expect((error as Error).message).toMatch(new RegExp(reason.source + where.source, 's'));
  expect(hasCheckpoint(out)).toBe(true);
  expect((await loadCheckpoint(out)).manifest.epoch).toBe(1);
  const resumed = spawnSync(
    process.execPath,
    [join(root, 'bin/delst.js'), 'train', section, '--out', out, '--resume', '--backend', backend, '--json'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  expect(resumed.status, resumed.stderr).toBe(0);
  const summary = JSON.parse(resumed.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  expect(summary).toMatchObject({ status: 'completed', epochs: 2, backend, resumedFrom: { epoch: 1 } });
  return summary;
}

/** The tiny section, its gene panel and the TINY config over that panel. */
async function tinyData(dir: string): Promise<{ section: Section; panel: GenePanel; config: ModelConfig }> {
  const { sections } = await openSections(dir);
  const panel = selectGenePanel(sections, { size: TINY.gene.panelSize });
  return { section: sections[0], panel, config: withPanelSize(resolveModelConfig(TINY), panel.genes.length) };
}

/** What inference computes: image and gene embeddings (space, tangent, features) and backbone features. */
async function inferAll(model: DelstModel, dataset: SpotDataset): Promise<Float32Array[]> {
  const options = { batchSize: 4 };
  const image = await embedDataset(model, dataset, 'image', options);
  const gene = await embedDataset(model, dataset, 'gene', options);
  const features = await backboneFeatures(model, dataset, options);
  return [
    image.space,
    image.tangent,
    image.features,
    gene.space,
    gene.tangent,
    gene.features,
    features.image,
    features.gene,
  ];
}

export function webgpuSuite(driver: VulkanDriver): void {
  const reason = !existsSync(driver.icd) ? `: skipped, ${driver.icd} is missing (${driver.howToGet})` : '';
  // The Vulkan loader reads this when Dawn creates its instance (in beforeAll), so setting it here works.
  process.env.VK_ICD_FILENAMES = driver.icd;
  process.env.XDG_RUNTIME_DIR ??= tmpdir();
  describe.skipIf(!!reason)(`webgpu on ${driver.name}${reason}`, () => {
    let info: BackendInfo;
    let tmp: string;
    let tiny: string;
    beforeAll(async () => {
      info = await initBackend('webgpu');
      tmp = await mkdtemp(join(tmpdir(), 'delst-webgpu-'));
      if (!noA1) tiny = await tinySection(join(tmp, 'A1-tiny'), SPOTS);
    });
    afterAll(async () => {
      await rm(tmp, { recursive: true, force: true });
    });

    it('probes the adapter in a child process and sees a software one, which auto must not take', async () => {
      const probe = await probeAdapter();
      expect(probe.adapter?.vendor).toBe(driver.adapter.vendor);
      expect(probe.adapter?.software).toBe(true);
    });

    it('names the adapter it runs on, as software', () => {
      expect(info.name).toBe('webgpu');
      expect(info.adapter).toMatchObject({ ...driver.adapter, software: true });
      expect(info.device).toMatch(driver.deviceLine);
      for (const name of OUR_WEBGPU_KERNELS) expect(tf.getKernel(name, 'webgpu'), name).toBeDefined();
    });

    // Random geometry: kernel 1, 3 or 7, stride 1 or 2, 'same', 'valid' or explicit padding, odd and even sizes.
    const convCases = Array.from({ length: 12 }, (_, i) => {
      const rng = new Rng(100 + i);
      const k = [1, 3, 7][i % 3];
      const s = 1 + (Math.floor(i / 3) % 2);
      const pads: ('same' | 'valid' | 'explicit')[] = ['same', 'valid', 'explicit'];
      const h = k + 2 + rng.int(6);
      return {
        n: 1 + rng.int(3),
        h,
        w: h + rng.int(3) - 1,
        ci: 1 + rng.int(5),
        co: 1 + rng.int(6),
        k,
        s,
        pad: pads[(i + Math.floor(i / 6)) % 3],
      };
    });
    it.each(convCases)('conv2d gradients k$k s$s $pad, [$n,$h,$w,$ci] -> $co, as on cpu', async (c) => {
      const pad: 'same' | 'valid' | tf.backend_util.ExplicitPadding =
        c.pad === 'explicit'
          ? [
              [0, 0],
              [1, Math.min(2, c.k - 1)],
              [Math.min(2, c.k - 1), 0],
              [0, 0],
            ]
          : c.pad;
      const seed = c.k * 100 + c.h * 10 + c.s;
      await compare(() => {
        const x = randTensor([c.n, c.h, c.w, c.ci], seed) as tf.Tensor4D;
        const filter = randTensor([c.k, c.k, c.ci, c.co], seed + 1) as tf.Tensor4D;
        const y = tf.conv2d(x, filter, c.s, pad);
        const dy = randTensor(y.shape, seed + 2);
        const [dx, dw] = tf.grads((a, b) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, pad), dy)),
        )([x, filter]);
        return [y, dx, dw];
      });
    });

    it('splits the filter gradient into chunks and batch groups, as on cpu', async () => {
      // 2 x 16 x 16 output positions: 512 rows, split in two chunks of 256 by the batched matMul.
      await compare(() => {
        const x = randTensor([2, 32, 32, 2], 7) as tf.Tensor4D;
        const filter = randTensor([3, 3, 2, 3], 8) as tf.Tensor4D;
        const dy = randTensor([2, 16, 16, 3], 9);
        return tf.grads((b) => tf.sum(tf.mul(tf.conv2d(x, b as tf.Tensor4D, 2, 'same'), dy)))([filter]);
      });
    });

    it("updates params with AdamW's fused shaders as the generic ops do on cpu", async () => {
      const generic: Record<string, number> = {};
      let variables = 0;
      await compare(() => {
        const shapes = [[3, 5], [7], [2, 3, 4, 2]];
        const entries = shapes.map((shape, i) => ({
          name: `p${i}`,
          variable: tf.variable(randTensor(shape, 40 + i), true, `adamw-check-${variables++}`),
          shape,
          size: shape.reduce((a, b) => a * b, 1),
          trainable: true,
          decay: i !== 1,
        }));
        const optimizer = new AdamW(entries, { weightDecay: 0.2 });
        const engine = tf.engine();
        const runKernel = engine.runKernel.bind(engine);
        let kernels = 0;
        engine.runKernel = (...args: Parameters<typeof runKernel>) => (kernels++, runKernel(...args));
        for (let step = 0; step < 3; step++) {
          const grads = Object.fromEntries(
            entries.map((e, i) => [e.variable.name, randTensor(shapes[i], 50 + 10 * step + i)]),
          );
          const before = kernels;
          optimizer.apply(grads, 0.01);
          generic[tf.getBackend()] = kernels - before;
          tf.dispose(Object.values(grads));
        }
        engine.runKernel = runKernel;
        const state = [...optimizer.exportState().slots.values()] as tf.Tensor[]; // AdamW's slots are tensors
        const out = [...entries.map((e) => e.variable), ...state].map((t) => tf.clone(t));
        optimizer.dispose();
        tf.dispose(entries.map((e) => e.variable));
        return out;
      }, 1e-5);
      expect(generic.cpu).toBeGreaterThan(30); // about fourteen elementwise ops per param ...
      expect(generic.webgpu).toBe(0); // ... and none but our three shaders on webgpu
    });

    // Odd sizes, one row, one channel; [8,56,56,4]: 784 chunks of 32 rows, a dozen per thread of the second round;
    // [20,64,64,1]: M = 81 920, the second round's larger workgroup.
    const bnShapes: [number, number, number, number][] = [
      [2, 7, 5, 3],
      [4, 16, 16, 32],
      [1, 1, 1, 8],
      [3, 5, 7, 1],
      [8, 56, 56, 4],
      [20, 64, 64, 1],
    ];
    it.each(bnShapes)(
      'batchNormTrain and its gradients on [%i,%i,%i,%i] in fused shaders, as on cpu',
      async (...shape) => {
        const ops: Record<string, number> = {};
        let fused = 0;
        await compare(() => {
          const c = shape[3];
          const x = tf.add(tf.mul(randTensor(shape, 60), 3), 5) as tf.Tensor4D; // off-centre, as activations are
          const gamma = tf.add(randTensor([c], 61), 1) as tf.Tensor1D;
          const beta = randTensor([c], 62) as tf.Tensor1D;
          const dy = randTensor(shape, 63);
          const engine = tf.engine();
          const runKernel = engine.runKernel.bind(engine);
          let kernels = 0;
          engine.runKernel = (...args: Parameters<typeof runKernel>) => (kernels++, runKernel(...args));
          const backend = tf.backend() as unknown as { runWebGPUProgram?: (p: { shaderKey: string }) => unknown };
          const runProgram = backend.runWebGPUProgram;
          if (runProgram) {
            backend.runWebGPUProgram = (...args) => {
              if (args[0].shaderKey.startsWith('delstBn')) fused++;
              return runProgram.apply(backend, args);
            };
          }
          try {
            const { y, mean, variance } = batchNormTrain(x, gamma, beta);
            const grads = tf.grads((a, g, b) =>
              tf.sum(tf.mul(batchNormTrain(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D).y, dy)),
            )([x, gamma, beta]);
            ops[tf.getBackend()] = kernels;
            return [y, mean, variance, ...grads];
          } finally {
            engine.runKernel = runKernel;
            if (runProgram) backend.runWebGPUProgram = runProgram;
          }
        });
        expect(fused).toBe(12); // 4 shaders for each of the two forwards, 4 for the backward ...
        expect(ops.webgpu).toBeLessThan(ops.cpu - 40); // ... in place of about 26 generic ops per pass on cpu
      },
    );

    it('gives max-pool, gather and matMul gradients as on cpu (stock webgpu kernels)', async () => {
      await compare(() => {
        const x = randTensor([2, 9, 9, 3], 21) as tf.Tensor4D;
        const pooled = tf.maxPool(x, 3, 2, 'same');
        const dy = randTensor(pooled.shape, 22);
        const table = randTensor([5, 4], 23);
        const rows = tf.tensor1d([4, 0, 0, 2], 'int32');
        const a = randTensor([3, 7, 5], 24);
        const b = randTensor([3, 7, 6], 25);
        return [
          tf.grads((t) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, 3, 2, 'same'), dy)))([x])[0],
          tf.grads((t) => tf.sum(tf.square(tf.gather(t, rows))))([table])[0],
          ...tf.grads((p, q) => tf.sum(tf.square(tf.matMul(p, q, true, false))))([a, b]),
        ];
      });
    });

    it('takes two training steps as the cpu backend does', async () => {
      const config = resolveModelConfig(TINY);
      const twoSteps = async (backend: 'cpu' | 'webgpu') => {
        if (backend === 'webgpu') await initBackend('webgpu');
        else await useCpuReferenceBackend();
        const model = new DelstModel(config, 3);
        const optimizer = new AdamW(model.store.trainableEntries(), { weightDecay: 0.2 });
        const loss = makeLossConfig({ mode: 'delst' });
        const rng = new Rng(5);
        const b = 6;
        const n = TINY.image.inputSize;
        const patches = tf.tensor4d(
          Float32Array.from({ length: b * n * n * 3 }, () => rng.int(256)),
          [b, n, n, 3],
        );
        const expression = tf.tensor2d(
          Float32Array.from({ length: b * 50 }, () => (rng.chance(0.3) ? rng.uniform(0, 4) : 0)),
          [b, 50],
        );
        const nnz = Float32Array.from({ length: b }, (_, i) => 100 + 37 * i);
        const batch = { patches, expression, nnz, nnzRank: nnz.map((v) => v / 400), sectionIndex: new Int32Array(b) };
        const before = Float32Array.from(
          await tf.concat(model.store.trainable().map((v) => tf.reshape(v, [-1]))).data(),
        );
        const losses: number[] = [];
        for (let i = 0; i < 2; i++) {
          const v = await trainStepAsync({ model, optimizer, loss }, batch, { lr: 1e-3, dropoutSeed: i, pairSeed: i });
          expect(v.applied).toBe(true);
          losses.push(v.loss);
        }
        const after = Float32Array.from(
          await tf.concat(model.store.trainable().map((v) => tf.reshape(v, [-1]))).data(),
        );
        const running = model.store.entries((e) => e.name.includes('.running'));
        const statistics = Float32Array.from(await tf.concat(running.map((e) => tf.reshape(e.variable, [-1]))).data());
        tf.dispose([patches, expression]);
        optimizer.dispose();
        model.dispose();
        return { losses, before, after, statistics };
      };
      const ref = await twoSteps('cpu');
      const got = await twoSteps('webgpu');
      expect(got.losses.every(Number.isFinite)).toBe(true);
      expect(got.losses[0]).toBeCloseTo(ref.losses[0], 4);
      expect(got.losses[1]).toBeCloseTo(ref.losses[1], 3);
      let moved = 0;
      let worst = 0;
      for (let i = 0; i < got.after.length; i++) {
        moved = Math.max(moved, Math.abs(got.after[i] - got.before[i]));
        worst = Math.max(worst, Math.abs(got.after[i] - ref.after[i]));
      }
      expect(moved).toBeGreaterThan(1e-4); // the parameters changed ...
      expect(worst).toBeLessThan(1e-3 * moved + 1e-5); // ... as on cpu
      expectClose([got.statistics], [ref.statistics], 1e-4); // BatchNorm's running statistics too
      expect(backendFault()).toBeNull();
    });

    it.skipIf(noA1)(
      'embeds spots and computes backbone features as on cpu (both modalities, two batches)',
      async () => {
        const { section, panel, config } = await tinyData(tiny);
        const dataset = await buildDataset([section], panel, { inputSize: config.image.inputSize });
        expect(dataset.size).toBe(SPOTS);
        const infer = async (backend: 'cpu' | 'webgpu') => {
          if (backend === 'webgpu') await initBackend('webgpu');
          else await useCpuReferenceBackend();
          const before = tf.memory().numTensors;
          const model = new DelstModel(config, 4);
          const outputs = await inferAll(model, dataset);
          model.dispose();
          expect(tf.memory().numTensors, `${backend} leaked tensors`).toBe(before);
          return outputs;
        };
        const ref = await infer('cpu');
        const got = await infer('webgpu');
        expect(ref.every((values) => values.some((v) => v !== 0))).toBe(true);
        expectClose(got, ref, 1e-4);
        expect(backendFault()).toBeNull();
      },
    );

    it.skipIf(noA1)('fine-tunes the head on cached backbone features with nearestLowerNnz pairs', async () => {
      const out = join(tmp, 'frozen');
      const result = await train({
        sections: [tiny],
        out,
        epochs: 1,
        batchSize: SPOTS,
        backend: 'webgpu',
        modelConfig: TINY,
        freeze: 'backbone',
        loss: { intraPairing: 'nearestLowerNnz' },
        augment: null,
      });
      expect(result).toMatchObject({ status: 'completed', backend: 'webgpu', epochs: 1, steps: 1 });
      const [epoch] = result.metrics;
      expect(Number.isFinite(epoch.loss) && epoch.intraEntailment > 0).toBe(true);
      expect(epoch.curvature).toBeGreaterThan(0);
      const saved = await loadCheckpoint(out);
      expect(saved.manifest.step).toBe(1);
      expect(backendFault()).toBeNull();
    });

    it.skipIf(noA1 || noDist)(
      'delst embed: --backend webgpu writes what auto writes; auto leaves a software adapter alone and takes a GPU',
      async () => {
        // The model is built and saved on cpu, then embedded by two children.
        await useCpuReferenceBackend();
        const { panel, config } = await tinyData(tiny);
        const model = new DelstModel(config, 9);
        const dir = join(tmp, 'embed-model');
        await saveCheckpoint(dir, { config, store: model.store, genePanel: panel, epoch: 0, step: 0 });
        model.dispose();
        const embed = (backend: string, env: Record<string, string> = {}) => {
          const out = join(tmp, `${backend}-${Object.keys(env).length}.npy`);
          const run = spawnSync(
            process.execPath,
            [
              join(root, 'bin/delst.js'),
              'embed',
              dir,
              tiny,
              '--out',
              out,
              '--backend',
              backend,
              '--batch',
              '4',
              '--json',
            ],
            { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } },
          );
          expect(run.status, run.stderr).toBe(0);
          return { report: JSON.parse(run.stdout.trim().split('\n').pop()!), out: out.slice(0, -'.npy'.length) };
        };
        const gpu = embed('webgpu');
        expect(gpu.report).toMatchObject({ spots: SPOTS, backend: 'webgpu' });
        expect(gpu.report.device).toMatch(/^software adapter via WebGPU/);
        const cpu = embed('auto');
        expect(cpu.report.spots).toBe(SPOTS);
        expect(cpu.report.backend).not.toBe('webgpu');
        // Where the adapter is a GPU (here: this one taken for one), auto takes it and says so.
        const asGpu = embed('auto', { DELST_TEST_ADAPTER_AS_GPU: '1' });
        expect(asGpu.report).toMatchObject({ spots: SPOTS, backend: 'webgpu' });
        expect(asGpu.report.device).toMatch(new RegExp(`^GPU via WebGPU: ${driver.adapter.vendor} .*, hardware$`));
        const read = async (base: string) =>
          Promise.all(
            ['.npy', '.tangent.npy', '.features.npy'].map(async (ext) => decodeNpy(await readFile(base + ext))),
          );
        const ref = await read(cpu.out);
        for (const run of [gpu, asGpu]) {
          const got = await read(run.out);
          got.forEach((g, i) => expect(g.shape).toEqual(ref[i].shape));
          expectClose(
            got.map((g) => g.data),
            ref.map((r) => r.data),
            1e-4,
          );
        }
      },
      120_000,
    );

    // Last: it destroys the device this process trains on.
    it.skipIf(noA1 || noDist)(
      'ends a run whose device is lost with a clear error and a checkpoint that --resume continues on wasm',
      async () => {
        const out = join(tmp, 'lost');
        const error = await trainFailingInEpoch2(tiny, out, () => webgpuDevice()?.destroy());
        await expectResumableAfterGpuFailure(error, /GPU .*/, tiny, out, 'wasm');
      },
      120_000, // a wasm epoch in a child
    );

    it('fits the batch to the adapter buffers', () => {
      const config = resolveModelConfig({});
      const adapter = info.adapter!;
      const MiB = 2 ** 20;
      // The stem's 56 x 56 x 32 floats per spot (401 KiB) bound it: 64 MiB / (401 KiB * 1.25), whichever limit is lower.
      const at64 = Math.floor((64 * MiB) / (4 * 56 * 56 * 32 * 1.25));
      expect(maxBatchForAdapter(config, { ...adapter, maxStorageBufferBindingSize: 64 * MiB })).toBe(at64);
      expect(maxBatchForAdapter(config, { ...adapter, maxBufferSize: 64 * MiB })).toBe(at64);
      // Both software drivers bind at least 128 MiB, so their own limits allow more.
      expect(adapter.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * MiB);
      expect(maxBatchForAdapter(config, adapter)).toBeGreaterThan(at64);
    });
  });
}
