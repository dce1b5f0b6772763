// Checkpoints: an exact round trip of every param, BatchNorm statistic and optimizer slot, and a previous
// checkpoint that stays loadable whenever a writer is killed with SIGKILL mid-save (at each step of the save,
// and at random moments of a busy writer).

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useCpuReferenceBackend } from '../../core/engine/backend.js';
import {
  codeVersion,
  loadCheckpoint,
  loadModel,
  restoreParams,
  saveCheckpoint,
  type SaveStage,
} from '../../core/engine/checkpoint.js';
import { resolveModelConfig } from '../../core/engine/config.js';
import type { GenePanel } from '../../core/engine/gene-panel.js';
import { DelstModel, HEAD } from '../../core/engine/models/delst-model.js';
import { ParamStore } from '../../core/engine/params.js';
import { Rng } from '../../core/engine/random.js';

const root = resolve(import.meta.dirname, '../..');
const CONFIG = resolveModelConfig({
  image: { inputSize: 16, stemWidth: 4, stageWidths: [4, 8], blocksPerStage: [1, 1] },
  gene: { panelSize: 3, hidden: 8 },
  embedDim: 4,
});
const PANEL: GenePanel = {
  version: 1,
  genes: ['ERBB2', 'GRB7', 'KRT19'],
  targetSum: 1e4,
  standardize: false,
  mean: [0.5, 1.25, 2],
  std: [1, 0.5, 0.25],
  selection: { method: 'fixed-list', sections: ['A1'], candidates: 15045 },
};

let tmp: string;
beforeAll(async () => {
  await useCpuReferenceBackend();
  tmp = await mkdtemp(join(tmpdir(), 'delst-checkpoint-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Every param of a store changed to seeded noise (so that a round trip cannot pass by re-initialisation). */
function scramble(store: ParamStore, seed: number): void {
  const rng = new Rng(seed);
  const flat = Float32Array.from({ length: store.count() }, () => rng.normal());
  store.assignFlat(flat);
}

describe('checkpoint round trip', () => {
  it('restores every value bit for bit, with the manifest, panel and optimizer state', async () => {
    const model = new DelstModel(CONFIG, 1);
    scramble(model.store, 2);
    const slots = new Map(
      model.store.trainableEntries().map((e) => [`m/${e.name}`, tf.randomNormal([...e.shape], 0, 1, 'float32', 3)]),
    );
    const dir = join(tmp, 'round-trip');
    const contents = {
      config: CONFIG,
      store: model.store,
      genePanel: PANEL,
      data: { sections: [{ name: 'A1', source: '/data/her2st/A1', spots: 346 }] },
      training: { mode: 'delst', seed: 7 },
      metrics: [{ epoch: 1, loss: 2.5 }],
      epoch: 1,
      step: 12,
      optimizer: { kind: 'adamw', step: 12, settings: { lr: 1e-4 }, slots },
    };
    const folder = await saveCheckpoint(dir, contents);
    expect(folder).toBe(join(dir, 'ckpt-000001'));

    const { model: loaded, checkpoint } = await loadModel(dir);
    expect(loaded.store.names()).toEqual(model.store.names());
    expect(await loaded.store.flatten()).toEqual(await model.store.flatten());
    const { manifest } = checkpoint;
    expect(manifest).toMatchObject({
      config: CONFIG,
      genePanel: PANEL,
      epoch: 1,
      step: 12,
      training: contents.training,
    });
    expect(manifest.codeVersion).toBe(codeVersion());
    expect(manifest.codeVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(manifest.params.find((p) => p.name === 'image.stem.bn.runningMean')).toMatchObject({ trainable: false });
    expect(manifest.params.find((p) => p.name === HEAD.logCurvature)).toMatchObject({ trainable: true, decay: false });
    expect(checkpoint.optimizer!.step).toBe(12);
    for (const [name, tensor] of slots) expect(checkpoint.optimizer!.slots.get(name)!.data).toEqual(tensor.dataSync());

    // The same model, hence the same embeddings.
    const patches = tf.randomUniform([2, 16, 16, 3], 0, 255, 'float32', 4) as tf.Tensor4D;
    const expression = tf.randomUniform([2, 3], 0, 3, 'float32', 5) as tf.Tensor2D;
    const image = (m: DelstModel) => tf.tidy(() => m.embed(patches, expression, false).image.dataSync());
    expect(image(loaded)).toEqual(image(model));
    tf.dispose([patches, expression, ...slots.values()]);
    loaded.dispose();
    model.dispose();
  });

  it('keeps the newest checkpoints only, and refuses damaged or mismatched ones', async () => {
    const model = new DelstModel(CONFIG, 1);
    const dir = join(tmp, 'keep');
    for (let epoch = 1; epoch <= 4; epoch++)
      await saveCheckpoint(dir, { config: CONFIG, store: model.store, epoch, step: epoch });
    expect((await readdir(dir)).sort()).toEqual(['ckpt-000003', 'ckpt-000004', 'latest.json']);
    expect((await loadCheckpoint(dir)).manifest.epoch).toBe(4);

    await writeFile(join(dir, 'ckpt-000004', 'weights.bin'), new Uint8Array(8));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/weights.bin: damaged/);

    const other = new DelstModel(resolveModelConfig({ ...CONFIG, embedDim: 5 }), 1);
    const good = await loadCheckpoint(join(dir, 'ckpt-000003'));
    expect(() => restoreParams(other.store, good)).toThrow(/does not fit this model/);
    const { skipped } = restoreParams(other.store, good, false);
    expect(skipped).toEqual([HEAD.imageProjection, HEAD.geneProjection]);
    await expect(loadCheckpoint(join(tmp, 'nothing-here'))).rejects.toThrow(/no checkpoint here/);
    other.dispose();
    model.dispose();
  });
});

// ---- kill -9 while saving -----------------------------------------------------------------------------------------

/** ESM loader hooks that let a plain `node` child import this repo's .ts files (via the TypeScript compiler). */
const HOOKS = `
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from ${JSON.stringify(pathToFileURL(join(root, 'node_modules/typescript/lib/typescript.js')).href)};
export async function resolve(specifier, context, next) {
  if (context.parentURL?.endsWith('.ts') && specifier.startsWith('.') && specifier.endsWith('.js')) {
    const url = new URL(specifier.replace(/\\.js$/, '.ts'), context.parentURL);
    if (existsSync(fileURLToPath(url))) return { url: url.href, shortCircuit: true };
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const source = readFileSync(fileURLToPath(url), 'utf8');
  const options = { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 };
  return { format: 'module', shortCircuit: true, source: ts.transpileModule(source, { compilerOptions: options }).outputText };
}`;

/**
 * The writer: a store whose values all equal the checkpoint's number (a 4M-float param makes each save take a
 * while). `stage S`: save once and SIGKILL itself as step S begins. `loop`: save 1, 2, 3, ... and print each.
 */
const WRITER = `
const [dir, mode, arg] = process.argv.slice(2);
const { saveCheckpoint } = await import(${JSON.stringify(pathToFileURL(join(root, 'core/engine/checkpoint.ts')).href)});
const { ParamStore } = await import(${JSON.stringify(pathToFileURL(join(root, 'core/engine/params.ts')).href)});
const config = ${JSON.stringify(CONFIG)};
const store = new ParamStore();
store.add('w', [4000000], 0);
const save = (version, onStage) => {
  store.assignFlat(new Float32Array(4000000).fill(version));
  return saveCheckpoint(dir, { config, store, epoch: version, step: version }, { onStage });
};
if (mode === 'stage') {
  await save(Number(process.argv[5]), (stage) => { if (stage === arg) process.kill(process.pid, 'SIGKILL'); });
} else {
  for (let version = Number(arg); ; version++) { await save(version); console.log('saved ' + version); }
}`;

async function writerFiles(): Promise<{ hooks: string; register: string; writer: string }> {
  const files = { hooks: join(tmp, 'hooks.mjs'), register: join(tmp, 'register.mjs'), writer: join(tmp, 'writer.mjs') };
  await writeFile(files.hooks, HOOKS);
  await writeFile(
    files.register,
    `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(files.hooks).href)});`,
  );
  await writeFile(files.writer, WRITER);
  return files;
}

interface Writer {
  /** Versions the child reported saved. */
  saved: number[];
  exited: Promise<NodeJS.Signals | null>;
  kill(): void;
}

async function startWriter(dir: string, args: string[]): Promise<Writer> {
  const files = await writerFiles();
  const child = spawn(process.execPath, ['--import', files.register, files.writer, dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const saved: number[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    for (const m of chunk.toString().matchAll(/saved (\d+)/g)) saved.push(Number(m[1]));
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((done, fail) =>
    child.on('exit', (code, signal) => (code ? fail(new Error(`writer failed (${code}): ${stderr}`)) : done(signal))),
  );
  return { saved, exited, kill: () => child.kill('SIGKILL') };
}

/** The current checkpoint's version; it must load completely (checksums included) and be uniform. */
async function currentVersion(dir: string): Promise<number> {
  const { weights, manifest } = await loadCheckpoint(dir);
  expect(weights.length).toBe(4_000_000);
  expect(weights.every((v) => v === manifest.epoch)).toBe(true);
  return manifest.epoch;
}

describe('a writer killed with SIGKILL mid-save', () => {
  it('leaves the previous checkpoint current until the pointer moves, at each step of the save', async () => {
    const dir = join(tmp, 'stages');
    expect(await (await startWriter(dir, ['stage', 'none', '1'])).exited).toBeNull();
    const stages: SaveStage[] = ['weights', 'optimizer', 'manifest', 'publish', 'pointer', 'prune'];
    let current = 1;
    for (const [i, stage] of stages.entries()) {
      const version = i + 2;
      const writer = await startWriter(dir, ['stage', stage, String(version)]);
      expect(await writer.exited).toBe('SIGKILL');
      if (stage === 'prune') current = version; // the pointer moved just before
      expect(await currentVersion(dir), `killed at ${stage}`).toBe(current);
    }
    // The next complete save clears what the killed ones left.
    expect(await (await startWriter(dir, ['stage', 'none', '99'])).exited).toBeNull();
    expect(await currentVersion(dir)).toBe(99);
    const left = await readdir(dir);
    expect(left.filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect(left.filter((n) => n.startsWith('ckpt-'))).toHaveLength(2);
  }, 90_000);

  it('at random moments of a busy writer', async () => {
    const dir = join(tmp, 'random');
    const rng = new Rng(12);
    let first = 1;
    for (let round = 0; round < 4; round++) {
      const writer = await startWriter(dir, ['loop', String(first)]);
      await until(() => writer.saved.length > 0);
      await sleep(rng.uniform(0, 250));
      writer.kill();
      expect(await writer.exited).toBe('SIGKILL');
      const lastSaved = writer.saved[writer.saved.length - 1];
      // The save in progress may have moved the pointer before it could print.
      expect([lastSaved, lastSaved + 1]).toContain(await currentVersion(dir));
      first = lastSaved + 2;
    }
  }, 90_000);
});

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

async function until(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out');
    await sleep(10);
  }
}
