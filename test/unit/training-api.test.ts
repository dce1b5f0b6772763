// Training through the StudioApi on HER2ST A1, with a temporary project: a Quick run in the worker thread from
// running to done, one run at a time, cancel and resume, the model library (rename, delete, export, import), and the
// evaluation of a finished run on a label column (a block split of A1's pathologist labels; leave one section out
// on annotations of A1 and A2). Needs the built worker (npm run build:node) and ../shared/data/her2st/A1 (and A2).

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainingStatus } from '../../core/api/api.js';
import { Studio } from '../../core/api/studio.js';
import { packageRoot } from '../../core/resources.js';

const root = packageRoot();
const A1 = resolve(root, '..', 'shared', 'data', 'her2st', 'A1');
const A2 = resolve(root, '..', 'shared', 'data', 'her2st', 'A2');
const CACHE = join(tmpdir(), 'delst-studio-test-unused');
const skip = !existsSync(A1) || !existsSync(join(root, 'dist', 'core', 'api', 'training-worker.js'));
if (skip) console.log('training API test skipped: needs ../shared/data/her2st/A1 and npm run build:node');

async function until(
  studio: Studio,
  done: (s: TrainingStatus) => boolean,
  timeoutMs = 50_000,
): Promise<TrainingStatus> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const status = await studio.getTrainingStatus();
    if (done(status)) return status;
    if (Date.now() > end) throw new Error(`timed out; status ${JSON.stringify({ ...status, steps: undefined })}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ended = (s: TrainingStatus) => s.state !== 'running';

describe.skipIf(skip)('training API on HER2ST A1', () => {
  let scratch: string;
  let studio: Studio;
  let id: string;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'delst-training-'));
    studio = new Studio({ cacheDir: CACHE, projectDir: join(scratch, 'project') });
    const { opened } = await studio.openPath(A1);
    id = opened[0].id;
  });

  afterAll(async () => {
    await studio?.shutdown();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('refuses to train without a project folder', async () => {
    const bare = new Studio({ cacheDir: CACHE });
    const { opened } = await bare.openPath(A1);
    await expect(bare.startTraining({ sectionIds: [opened[0].id], preset: 'quick' })).rejects.toThrow(/project/);
    await expect(bare.startTraining({ sectionIds: ['nope'], preset: 'quick' })).rejects.toThrow();
    const models = await bare.listModels();
    expect(models.map((m) => m.id)).toEqual(['base']);
    expect(models[0].readOnly).toBe(true);
  });

  it('runs a Quick run in the worker: running, then done, and the model lands in the library', async () => {
    const started = await studio.startTraining({ sectionIds: [id], preset: 'quick', epochs: 2, name: 'A1 quick' });
    expect(started.state).toBe('running');
    expect(started.preset).toBe('quick');
    // One run at a time.
    await expect(studio.startTraining({ sectionIds: [id], preset: 'quick', epochs: 2 })).rejects.toThrow(
      /training run is going on/,
    );
    // The API answers while the worker trains.
    const during = await until(studio, (s) => s.globalStep > 0 || ended(s));
    expect(during.state).toBe('running');
    expect((await studio.listSections()).length).toBe(1);

    const done = await until(studio, ended);
    expect(done.error).toBeNull();
    expect(done.state).toBe('done');
    expect(done.backend).toMatch(/CPU|GPU/);
    expect(done.history.map((e) => e.epoch)).toEqual([1, 2]);
    for (const e of done.history) {
      for (const v of [e.loss, e.contrastive, e.crossEntailment, e.intraEntailment])
        expect(Number.isFinite(v)).toBe(true);
      expect(e.curvature).toBeGreaterThan(0);
    }
    expect(done.steps.length).toBe(done.globalStep);
    expect(done.epoch).toBe(2);
    expect(done.spotsPerSecond).toBeGreaterThan(0);

    const models = await studio.listModels();
    expect(models[0].id).toBe('base');
    const model = models.find((m) => m.id === done.modelId);
    expect(model).toBeDefined();
    expect(model!.name).toBe('A1 quick');
    expect(model!.data).toEqual(['A1']);
    expect(model!.epochs).toBe(2);
    expect(model!.mode).toBe('delst');
    expect(model!.finalLoss).toBeCloseTo(done.history[1].loss, 6);
    expect(model!.path.startsWith(join(scratch, 'project', 'models'))).toBe(true);
    expect(model!.training).toBe(false);
  });

  it('cancels a longer run (a checkpoint is saved) and resumes it to the end', async () => {
    const started = await studio.startTraining({ sectionIds: [id], preset: 'quick', epochs: 6, name: 'long' });
    await until(studio, (s) => s.globalStep >= 2 || ended(s));
    await studio.cancelTraining();
    const cancelled = await until(studio, ended);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.epoch).toBeLessThan(6);
    const stopped = (await studio.listModels()).find((m) => m.id === started.modelId)!;
    expect(stopped.plannedEpochs).toBe(6);
    expect(stopped.epochs).toBeLessThan(6);
    await expect(studio.cancelTraining()).rejects.toThrow(/no training run/);

    const resumed = await studio.resumeTraining(started.modelId!);
    expect(resumed.state).toBe('running');
    expect(resumed.modelName).toBe('long');
    const done = await until(studio, ended);
    expect(done.error).toBeNull();
    expect(done.state).toBe('done');
    expect(done.history.map((e) => e.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
    const model = (await studio.listModels()).find((m) => m.id === started.modelId)!;
    expect(model.epochs).toBe(6);
  });

  it('saves a resumable checkpoint when the app shuts down mid-run', async () => {
    const other = new Studio({ cacheDir: CACHE, projectDir: join(scratch, 'project-shutdown') });
    const [section] = (await other.openPath(A1)).opened;
    const started = await other.startTraining({ sectionIds: [section.id], preset: 'quick', epochs: 8, name: 'quit' });
    await until(other, (s) => s.globalStep >= 2 || ended(s));
    await other.shutdown();

    const reopened = new Studio({ cacheDir: CACHE, projectDir: join(scratch, 'project-shutdown') });
    try {
      const model = (await reopened.listModels()).find((m) => m.id === started.modelId)!;
      expect(model.plannedEpochs).toBe(8);
      expect(model.epochs).toBeLessThan(8);
      expect((await reopened.resumeTraining(model.id)).state).toBe('running');
      expect((await until(reopened, ended)).state).toBe('done');
    } finally {
      await reopened.shutdown();
    }
  });

  it('renames, exports, imports and deletes models; the base model is read-only', async () => {
    const [model] = (await studio.listModels()).filter((m) => m.name === 'A1 quick');
    const renamed = await studio.renameModel(model.id, 'A1 heads');
    expect(renamed.find((m) => m.id === model.id)!.name).toBe('A1 heads');
    await expect(studio.renameModel('base', 'x')).rejects.toThrow(/read-only/);
    await expect(studio.deleteModel('base')).rejects.toThrow(/read-only/);
    await expect(studio.deleteModel('../x')).rejects.toThrow(/no model/);

    const exported = join(scratch, 'exported-model');
    expect((await studio.exportModel(model.id, exported)).path).toBe(exported);
    await expect(studio.exportModel(model.id, exported)).rejects.toThrow(/exists already/);
    await expect(studio.exportModel(model.id, 'relative/path')).rejects.toThrow(/absolute/);
    const before = (await studio.listModels()).length;
    const imported = await studio.importModel(exported);
    expect(imported.id).not.toBe(model.id);
    expect(imported.name).toBe('A1 heads');
    expect(imported.data).toEqual(['A1']);
    expect(imported.finalLoss).toBeCloseTo(model.finalLoss!, 6);
    expect((await studio.listModels()).length).toBe(before + 1);
    await expect(studio.importModel(scratch)).rejects.toThrow(/not a DELST model/);

    const after = await studio.deleteModel(imported.id);
    expect(after.length).toBe(before);
    expect(after.some((m) => m.id === imported.id)).toBe(false);
  });

  it('evaluates a Quick run on a label column: a spatial block split of the one labelled section', async () => {
    await expect(
      studio.startTraining({ sectionIds: [id], preset: 'quick', epochs: 1, labelColumn: 'nothing' }),
    ).rejects.toThrow(/label column 'nothing' has no labels in A1/);
    await studio.startTraining({ sectionIds: [id], preset: 'quick', epochs: 1, labelColumn: 'pathologist' });
    const done = await until(studio, ended, 120_000);
    expect(done.error).toBeNull();
    expect(done.state).toBe('done');
    const model = (await studio.listModels()).find((m) => m.id === done.modelId)!;
    const e = model.evaluation!;
    expect(e.error).toBeNull();
    expect(e).toMatchObject({ labelColumn: 'pathologist', protocol: 'spatial-blocks', folds: 1 });
    // About 30 % of A1's labelled spots (undetermined left out) are tested.
    const counts = (await studio.listSections())[0].labels.pathologist;
    const labelled = Object.entries(counts).reduce((n, [c, k]) => n + (c === 'undetermined' ? 0 : k), 0);
    expect(e.testSpots).toBeGreaterThan(0.2 * labelled);
    expect(e.testSpots).toBeLessThan(0.5 * labelled);
    for (const v of [e.accuracy, e.balancedAccuracy, e.macroF1]) {
      expect(v).toBeGreaterThan(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    expect(e.knnMeanR).toBeGreaterThan(-1);
    expect(e.knnMeanR).toBeLessThan(1);
    expect(e.genes).toBe(50);
    // Models without a run evaluated have no evaluation.
    expect((await studio.listModels()).find((m) => m.id === 'base')!.evaluation).toBeNull();
  }, 150_000);

  it.skipIf(!existsSync(A2))(
    'evaluates on annotations of two sections by leaving one section out',
    async () => {
      const a2 = (await studio.openPath(A2)).opened[0].id;
      const [tumour, stroma] = [await studio.createClass('tumour'), await studio.createClass('stroma')];
      for (const section of [id, a2]) {
        // Left and right halves of each section as two classes: a column that lives only in the project.
        const spots = await studio.getSpots(section);
        const middle = [...spots.x].sort((p, q) => p - q)[spots.x.length >> 1];
        const left = spots.x.flatMap((x, i) => (x < middle ? [i] : []));
        const right = spots.x.flatMap((x, i) => (x >= middle ? [i] : []));
        await studio.labelSpots(section, left, tumour.id);
        await studio.labelSpots(section, right, stroma.id);
      }
      await studio.startTraining({ sectionIds: [id, a2], preset: 'quick', epochs: 1, labelColumn: 'annotations' });
      const done = await until(studio, ended, 180_000);
      expect(done.state).toBe('done');
      const e = (await studio.listModels()).find((m) => m.id === done.modelId)!.evaluation!;
      expect(e.error).toBeNull();
      expect(e).toMatchObject({ labelColumn: 'annotations', protocol: 'leave-one-section-out', folds: 2 });
      const summaries = await studio.listSections();
      const inTissue = summaries.filter((s) => s.id === id || s.id === a2).reduce((n, s) => n + s.spots, 0);
      expect(e.testSpots).toBe(inTissue);
      expect(e.balancedAccuracy).toBeGreaterThan(0);
      expect(e.balancedAccuracy).toBeLessThanOrEqual(1);
      await studio.closeSection(a2);
    },
    240_000,
  );
});
