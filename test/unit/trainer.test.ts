// The trainer on real data (the first 128 in-tissue spots of HER2ST A1) with a tiny model on the wasm backend: the loss falls, runs
// repeat exactly, a NaN stops the run and keeps the last good checkpoint, an aborted run resumes with exactly the
// losses of an uninterrupted one, a frozen backbone stays untouched, and no tensor leaks.

import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../core/engine/backend.js';
import { exportModel, loadCheckpoint, loadModel } from '../../core/engine/checkpoint.js';
import type { ModelConfigInput } from '../../core/engine/config.js';
import {
  NonFiniteLossError,
  train,
  TrainingError,
  type EpochMetrics,
  type StepProgress,
  type TrainOptions,
} from '../../core/engine/trainer.js';
import { openSections } from '../../core/readers/open.js';
import type { Section } from '../../core/section/section.js';

const A1 = join(resolve(import.meta.dirname, '../../../shared/data'), 'her2st/A1');
const TINY: ModelConfigInput = {
  image: { inputSize: 32, stemWidth: 8, stageWidths: [8, 8, 8, 8], blocksPerStage: [1, 1, 1, 1] },
  gene: { panelSize: 50, hidden: 16 },
  embedDim: 16,
};
const SPOTS = 128;
const BATCH = 32;
const STEPS_PER_EPOCH = SPOTS / BATCH;

let tmp: string;
let section: Section;
let runs = 0;

beforeAll(async () => {
  await initBackend('wasm');
  tmp = await mkdtemp(join(tmpdir(), 'delst-trainer-'));
  // A1 cut down to its first SPOTS in-tissue spots: the trainer reads in-tissue spots only.
  const full = (await openSections(A1)).sections[0];
  const inTissue = Uint8Array.from(full.spots.inTissue);
  let kept = 0;
  inTissue.forEach((v, i) => (inTissue[i] = v && kept < SPOTS ? (kept++, 1) : 0));
  section = { ...full, spots: { ...full.spots, inTissue } };
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface Recorded {
  steps: StepProgress[];
  epochs: EpochMetrics[];
  tensors: number[];
}

/** A training run of the tiny model on A1, recording every step and epoch. */
async function run(options: Partial<TrainOptions> & { out?: string }, onStep?: (p: StepProgress) => void) {
  const recorded: Recorded = { steps: [], epochs: [], tensors: [] };
  const out = options.out ?? join(tmp, `run-${++runs}`);
  const result = await train(
    {
      sections: [section],
      mode: 'delst',
      epochs: 2,
      batchSize: BATCH,
      lr: 2e-3,
      seed: 3,
      backend: 'wasm',
      modelConfig: TINY,
      ...options,
      out,
    },
    {
      onStep: (p) => {
        recorded.steps.push(p);
        recorded.tensors.push(tf.memory().numTensors);
        onStep?.(p);
      },
      onEpoch: (m) => recorded.epochs.push(m),
    },
  );
  return { result, out, ...recorded };
}

const stepLosses = (r: Recorded) => r.steps.map((s) => [s.epoch, s.step, s.loss, s.contrastive, s.intraEntailment]);

let reference: Awaited<ReturnType<typeof run>>;

describe('train', () => {
  it('lowers a finite loss over the epochs, saving a checkpoint per epoch, with no tensor left behind', async () => {
    const before = tf.memory().numTensors;
    const r = await run({ epochs: 4 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.result).toMatchObject({ status: 'completed', epochs: 4, steps: 4 * STEPS_PER_EPOCH, backend: 'wasm' });
    // The tensor count is the same after every step.
    expect(new Set(r.tensors).size).toBe(1);

    const losses = r.epochs.map((m) => m.loss);
    console.log(`tiny model on A1, loss per epoch: ${losses.map((l) => l.toFixed(4)).join(' ')}`);
    expect(r.steps.every((s) => Number.isFinite(s.loss) && Number.isFinite(s.gradNorm))).toBe(true);
    expect(losses[3]).toBeLessThan(losses[0] - 0.2);
    for (const m of r.epochs) {
      expect(m.loss).toBeCloseTo(m.contrastive + 0.2 * m.crossEntailment + 0.2 * m.intraEntailment, 4);
      expect(m.curvature).toBeGreaterThanOrEqual(0.1);
      expect(m.meanNormImage).toBeGreaterThan(0);
      expect(m.meanNormGene).toBeGreaterThan(0);
      expect(m.spotsPerSecond).toBeGreaterThan(0);
    }
    // Progress: 1-based epochs and steps, a warm-up then a decaying learning rate, an ETA that reaches 0.
    expect(r.steps[0]).toMatchObject({
      epoch: 1,
      step: 1,
      stepsPerEpoch: STEPS_PER_EPOCH,
      globalStep: 1,
      totalSteps: 4 * STEPS_PER_EPOCH,
    });
    expect(r.steps.at(-1)).toMatchObject({
      epoch: 4,
      step: STEPS_PER_EPOCH,
      globalStep: 4 * STEPS_PER_EPOCH,
      etaSeconds: 0,
    });
    expect(r.steps.at(-1)!.lr).toBeLessThan(r.steps[1].lr);

    const checkpoint = await loadCheckpoint(r.out);
    const manifest = checkpoint.manifest;
    expect(manifest).toMatchObject({ epoch: 4, step: 4 * STEPS_PER_EPOCH });
    expect(manifest.metrics).toHaveLength(4);
    expect(manifest.genePanel!.genes).toHaveLength(50);
    expect(manifest.config.gene.panelSize).toBe(50);
    expect(manifest.data!.sections).toEqual([{ name: 'A1', source: section.source, spots: SPOTS }]);
    expect(manifest.training).toMatchObject({
      trainer: 'delst-trainer',
      mode: 'delst',
      lr: 2e-3,
      seed: 3,
      batchSize: BATCH,
      progress: { epochsCompleted: 4, stepInEpoch: 0, partial: null },
    });
    expect(checkpoint.optimizer!.step).toBe(4 * STEPS_PER_EPOCH);
    expect(manifest.codeVersion).not.toBe('unknown');
  });

  it('repeats exactly with the same seed, backend and data', async () => {
    reference = await run({});
    const again = await run({});
    expect(stepLosses(again)).toEqual(stepLosses(reference));
    expect(again.epochs.map((m) => m.loss)).toEqual(reference.epochs.map((m) => m.loss));
    const other = await run({ seed: 4, epochs: 1 });
    expect(other.steps[0].loss).not.toBe(reference.steps[0].loss);
  });

  it('saves on abort and resumes with the losses of the uninterrupted run', async () => {
    const controller = new AbortController();
    const out = join(tmp, 'aborted');
    const aborted = await run({ out, signal: controller.signal }, (p) => {
      if (p.epoch === 2 && p.step === 2) controller.abort();
    });
    expect(aborted.result).toMatchObject({ status: 'aborted', epochs: 1, steps: STEPS_PER_EPOCH + 2 });
    expect(aborted.steps).toHaveLength(STEPS_PER_EPOCH + 2);
    const saved = await loadCheckpoint(out);
    expect(saved.manifest).toMatchObject({ epoch: 1, step: STEPS_PER_EPOCH + 2 });
    expect(saved.manifest.training).toMatchObject({ progress: { epochsCompleted: 1, stepInEpoch: 2 } });

    const resumed = await run({ out, resume: true, modelConfig: undefined, lr: undefined, seed: undefined });
    expect(resumed.result).toMatchObject({
      status: 'completed',
      epochs: 2,
      steps: 2 * STEPS_PER_EPOCH,
      resumedFrom: { epoch: 1, step: STEPS_PER_EPOCH + 2 },
    });
    expect(stepLosses(resumed)).toEqual(stepLosses(reference).slice(STEPS_PER_EPOCH + 2));
    // The resumed epoch's metrics include the steps before the abort.
    expect(resumed.epochs).toHaveLength(1);
    expect(resumed.epochs[0].loss).toBe(reference.epochs[1].loss);
    expect((await loadCheckpoint(out)).manifest.metrics).toHaveLength(2);
  });

  it('stops on a NaN loss with a clear message and keeps the last good checkpoint', async () => {
    const out = join(tmp, 'nan');
    const failing = run({ out, epochs: 3, faults: { nonFiniteLossAt: (epoch, step) => epoch === 2 && step === 3 } });
    await expect(failing).rejects.toThrow(NonFiniteLossError);
    await expect(failing).rejects.toThrow(
      /loss became NaN at epoch 2, step 3 of 4 \(optimizer step 7\).*last good checkpoint \(epoch 1, step 4\)/,
    );
    const kept = await loadCheckpoint(out);
    expect(kept.manifest).toMatchObject({ epoch: 1, step: STEPS_PER_EPOCH });
    expect(kept.weights.every(Number.isFinite)).toBe(true);
    // Nothing is left over: the failed step's tensors and the model were disposed.
    const count = tf.memory().numTensors;
    await expect(
      run({ out: join(tmp, 'nan-first'), epochs: 1, faults: { nonFiniteLossAt: () => true } }),
    ).rejects.toThrow(/epoch 1, step 1 of 4.*no checkpoint had been saved yet/);
    expect(tf.memory().numTensors).toBe(count);
  });

  it('fine-tunes the head only on a frozen backbone, from an exported model', async () => {
    const exported = join(tmp, 'exported');
    await exportModel(reference.out, exported);
    expect(existsSync(join(exported, 'manifest.json'))).toBe(true);
    expect(existsSync(join(exported, 'optimizer.bin'))).toBe(false);
    const initial = await loadModel(exported);
    expect(initial.checkpoint.optimizer).toBeNull();
    const before = new Map(initial.model.store.entries().map((e) => [e.name, Array.from(e.variable.dataSync())]));
    initial.model.dispose();

    const started = performance.now();
    const tuned = await run({ init: exported, freeze: 'backbone', modelConfig: undefined, epochs: 3, lr: 1e-2 });
    const seconds = (performance.now() - started) / 1000;
    console.log(`frozen-backbone fine-tune: 3 epochs in ${seconds.toFixed(1)} s (features cached once)`);
    expect(tuned.result.status).toBe('completed');

    const after = await loadModel(tuned.out);
    let changedHead = 0;
    for (const entry of after.model.store.entries()) {
      const same = Array.from(entry.variable.dataSync()).every((v, i) => v === before.get(entry.name)![i]);
      if (entry.name.startsWith('head.')) changedHead += same ? 0 : 1;
      else expect(same, `${entry.name} changed`).toBe(true);
    }
    after.model.dispose();
    expect(changedHead).toBeGreaterThanOrEqual(4);
    const manifest = (await loadCheckpoint(tuned.out)).manifest;
    expect(manifest.training).toMatchObject({ freeze: 'backbone', init: exported });
    // Only the head's params have optimizer slots.
    const slots = (await loadCheckpoint(tuned.out)).optimizer!.slots;
    expect([...slots.keys()].every((k) => k.includes('head.'))).toBe(true);
  });

  it('refuses bad input with one clear message', async () => {
    await expect(run({ out: reference.out })).rejects.toThrow(/already holds a model: pass --resume/);
    await expect(run({ out: reference.out, resume: true, lr: 1, modelConfig: undefined })).rejects.toThrow(
      /--resume: the run was trained with lr 0.002, not 1/,
    );
    await expect(run({ out: join(tmp, 'none'), resume: true })).rejects.toThrow(/holds no checkpoint to continue/);
    await expect(run({ epochs: 0 })).rejects.toThrow(TrainingError);
    await expect(run({ modelConfig: { embedDim: 0 } })).rejects.toThrow(/model config: embedDim/);
    const text = await readFile(join(reference.out, 'latest.json'), 'utf8');
    expect(JSON.parse(text)).toMatchObject({ epoch: 2, step: 2 * STEPS_PER_EPOCH });
  });
});
