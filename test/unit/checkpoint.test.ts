// Checkpoints: an exact round trip of every param, BatchNorm statistic and optimizer slot, and a previous
// checkpoint that stays loadable whenever a writer is killed with SIGKILL mid-save (at each step of the save,
// and at random moments of a busy writer).

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { moduleUrl, sleep, startChild, writeLoaderHooks } from './support/child-process.js';

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

/**
 * The writer: a store whose values all equal the checkpoint's number (a 4M-float param makes each save take a
 * while). `stage S`: save once and SIGKILL itself as step S begins. `loop`: save 1, 2, 3, ... and print each.
 */
const WRITER = `
const [dir, mode, arg] = process.argv.slice(2);
const { saveCheckpoint } = await import(${moduleUrl('core/engine/checkpoint.ts')});
const { ParamStore } = await import(${moduleUrl('core/engine/params.ts')});
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

/** The writer's script, and the module that registers the loader hooks it imports the checkpoint code through. */
async function writerFiles(): Promise<{ register: string; writer: string }> {
  const writer = join(tmp, 'writer.mjs');
  await writeFile(writer, WRITER);
  return { register: await writeLoaderHooks(tmp), writer };
}

interface Writer {
  /** Versions the child reported saved. */
  readonly saved: number[];
  exited: Promise<NodeJS.Signals | null>;
  kill(): void;
}

async function startWriter(dir: string, args: string[]): Promise<Writer> {
  const { register, writer } = await writerFiles();
  const child = startChild(writer, [dir, ...args], { hooks: register });
  return {
    get saved() {
      return child.lines.flatMap((line) => /^saved (\d+)$/.exec(line)?.[1] ?? []).map(Number);
    },
    exited: child.exited,
    kill: child.kill,
  };
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

async function until(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out');
    await sleep(10);
  }
}
