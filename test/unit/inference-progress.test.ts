// Progress and cancel of model jobs (issue 5): the tracker's fraction and ETA on a fake clock; then with the bundled
// base model, every progress report of a prediction of the demo (HER2ST B4) from A1, and through the StudioApi a
// prediction cancelled while it embeds the demo: it fails as cancelled, a job waiting behind it too, A1 stays cached
// and the next prediction equals the uncancelled one. Needs ../shared/data/her2st/A1 and the built worker
// (npm run build:node).

import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InferenceStatus, PredictionRequest, SectionPrediction } from '../../core/api/api.js';
import { InferenceClient } from '../../core/api/inference-client.js';
import { finalPhase, InferenceTracker, type WorkerProgress } from '../../core/api/inference-status.js';
import { PredictionManager } from '../../core/api/predictions.js';
import { Studio } from '../../core/api/studio.js';
import { openSections } from '../../core/readers/open.js';
import { demoPath, packageRoot } from '../../core/resources.js';
import { demoAndA1Host } from './support/prediction-host.js';

const embedding = (done: number, workDone: number): WorkerProgress => ({
  phase: 'embedding',
  sectionName: 'A1',
  done,
  total: 100,
  section: 1,
  sections: 2,
  workDone,
  work: 400,
});

describe('InferenceTracker', () => {
  it('fills 95% of the bar with the embedding, never goes back, and times the rest by the embedding rate', () => {
    let now = 1_000;
    const tracker = new InferenceTracker(() => now);
    expect(tracker.status()).toMatchObject({ running: false, job: null, fraction: 0, etaSeconds: null });
    tracker.begin('predict');
    tracker.report({ ...embedding(0, 0), phase: 'loading', sectionName: null });
    tracker.report(embedding(0, 0));
    expect(tracker.status()).toMatchObject({ running: true, job: 'predict', phase: 'embedding', etaSeconds: null });
    now += 2_000;
    tracker.report(embedding(100, 100)); // 50 work units a second: 300 left, 6 s
    expect(tracker.status()).toMatchObject({ done: 100, total: 100, section: 1, sections: 2 });
    expect(tracker.status().fraction).toBeCloseTo((0.95 * 100) / 400, 10);
    expect(tracker.status().etaSeconds).toBeCloseTo(6, 10);
    now += 1_000;
    expect(tracker.status().etaSeconds).toBeCloseTo(5, 10);
    tracker.report(embedding(50, 50)); // a stale report does not move the bar back
    expect(tracker.status().fraction).toBeCloseTo((0.95 * 100) / 400, 10);
    tracker.report(finalPhase('fitting'));
    expect(tracker.status()).toMatchObject({ phase: 'fitting', sectionName: null, fraction: 0.95, etaSeconds: null });
    tracker.end();
    expect(tracker.status().running).toBe(false);
  });
});

const A1 = resolve(packageRoot(), '..', 'shared', 'data', 'her2st', 'A1');
const built = existsSync(join(packageRoot(), 'dist', 'core', 'api', 'inference-worker.js'));
const skip = !existsSync(A1) || !built;
if (skip) console.log('inference progress test skipped: needs ../shared/data/her2st/A1 and npm run build:node');

const REQUEST = { modelId: 'base', labelColumn: 'pathologist', genes: ['ERBB2'] } as const;

/** The parts of a prediction that come from the model (ids differ between hosts). */
function modelPart(p: SectionPrediction) {
  return {
    classes: p.classes,
    predictedClass: p.predictedClass,
    probability: p.probability,
    targetSum: p.targetSum,
    genes: p.genes,
  };
}

/** Polls `studio`'s status every 10 ms until `job` settles. */
async function watch(studio: Studio, job: Promise<unknown>): Promise<InferenceStatus[]> {
  const seen: InferenceStatus[] = [];
  let settled = false;
  void job.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled) {
    seen.push(await studio.getInferenceStatus());
    await new Promise((done) => setTimeout(done, 10));
  }
  return seen;
}

describe.skipIf(skip)('inference progress and cancel with the base model', () => {
  let names: { demo: string; a1: string };
  let spotCounts: Map<string, number>;
  let uncancelled: SectionPrediction;

  beforeAll(async () => {
    const [demo] = (await openSections(demoPath())).sections;
    const [a1] = (await openSections(A1)).sections;
    names = { demo: demo.name, a1: a1.name };
    spotCounts = new Map([demo, a1].map((s) => [s.name, s.spots.inTissue.filter(Boolean).length]));
  });

  it('reports every batch: per section the spots embedded rise to its total, the job fraction never drops', async () => {
    const studio = new Studio({ cacheDir: join(tmpdir(), 'delst-inference-progress-unused') });
    let reports: InferenceStatus[] = [];
    const manager = new PredictionManager(
      await demoAndA1Host(studio, A1),
      new InferenceClient((status) => reports.push(status)),
    );
    let mapReports: InferenceStatus[];
    try {
      uncancelled = await manager.predict('demo', { ...REQUEST, referenceSectionIds: ['a1'] });
      const predictReports = reports;
      // The demo's image embeddings are cached now: the map makes only the gene pass.
      reports = [];
      await manager.hyperbolicMap(['demo'], { modelId: 'base', genes: true });
      [mapReports, reports] = [reports, predictReports];
    } finally {
      await manager.terminate();
      await studio.shutdown();
    }
    expect(reports.every((r) => r.running && r.job === 'predict')).toBe(true);
    // Phases in order: loading, then per section (references first) reading and embedding, then the probe and kNN.
    const phases = reports.map((r) => `${r.phase}${r.sectionName ? ` ${r.sectionName}` : ''}`);
    expect([...new Set(phases)]).toEqual([
      'loading',
      `reading ${names.a1}`,
      `embedding ${names.a1}`,
      `reading ${names.demo}`,
      `embedding ${names.demo}`,
      'fitting',
      'predicting',
    ]);
    for (const name of [names.a1, names.demo]) {
      const done = reports.filter((r) => r.phase === 'embedding' && r.sectionName === name);
      expect(done.every((r) => r.total === spotCounts.get(name) && r.sections === 2)).toBe(true);
      expect(done.map((r) => r.done)).toEqual([...done.map((r) => r.done)].sort((a, b) => a - b));
      expect(done[0].done).toBe(0);
      expect(done.at(-1)!.done).toBe(spotCounts.get(name));
    }
    const fractions = reports.map((r) => r.fraction);
    fractions.forEach((f, i) => expect(f).toBeGreaterThanOrEqual(i > 0 ? fractions[i - 1] : 0));
    expect(fractions.at(-1)).toBe(0.95);
    // An ETA once a batch has been timed, and none after the embedding.
    const eta = reports.filter((r) => r.phase === 'embedding' && r.done > 0).map((r) => r.etaSeconds);
    expect(eta.every((s) => s !== null && Number.isFinite(s) && s >= 0)).toBe(true);
    expect(reports.filter((r) => r.phase === 'fitting' || r.phase === 'predicting').map((r) => r.etaSeconds)).toEqual([
      null,
      null,
    ]);
    expect(uncancelled.classes!.length).toBeGreaterThan(1);

    expect([...new Set(mapReports.map((r) => `${r.job} ${r.phase}`))]).toEqual([
      'map loading',
      'map genes',
      'map mapping',
    ]);
    const genes = mapReports.filter((r) => r.phase === 'genes');
    expect(genes.every((r) => r.sectionName === names.demo && r.section === 1 && r.sections === 1)).toBe(true);
    expect(genes.at(-1)!.done).toBe(spotCounts.get(names.demo));
    expect(genes.at(-1)!.fraction).toBeCloseTo(0.95, 10);
  }, 180_000);

  describe('through the StudioApi', () => {
    let studio: Studio;
    let demo: string;
    let a1: string;
    let request: PredictionRequest;

    beforeAll(async () => {
      studio = new Studio({ cacheDir: join(tmpdir(), 'delst-inference-progress-unused') });
      demo = (await studio.openPath(demoPath())).opened[0].id;
      a1 = (await studio.openPath(A1)).opened[0].id;
      request = { ...REQUEST, referenceSectionIds: [a1] };
    });

    afterAll(async () => {
      await studio?.shutdown();
    });

    it('cancels mid-embedding: the call and a waiting one fail as cancelled, then the next prediction is the same', async () => {
      if (!uncancelled) throw new Error('needs the uncancelled prediction of the test before');
      const job = studio.predictSection(demo, request);
      const waiting = studio.getHyperbolicMap([a1], { modelId: 'base' });
      const failures = Promise.allSettled([job, waiting]);
      // Wait for the demo (the second section) to be half-way embedded: A1 is then cached whole.
      let status = await studio.getInferenceStatus();
      while (!(status.phase === 'embedding' && status.sectionName === names.demo && status.done > 0)) {
        if (!status.running && status.queued === 0)
          throw new Error('the prediction ended before it could be cancelled');
        await new Promise((done) => setTimeout(done, 10));
        status = await studio.getInferenceStatus();
      }
      expect(status).toMatchObject({ job: 'predict', queued: 1, section: 2, sections: 2 });
      const cancelledAt = status.done;
      const after = watch(studio, failures);
      expect((await studio.cancelInference()).running).toBe(true);
      const [predicted, mapped] = await failures;
      expect(predicted).toMatchObject({ status: 'rejected', reason: { message: 'predictSection: cancelled' } });
      expect(mapped).toMatchObject({ status: 'rejected', reason: { message: 'getHyperbolicMap: cancelled' } });
      // It stopped at a batch after the cancel, short of the demo's end, and nothing ran after it.
      const seen = await after;
      const demoDone = seen.filter((s) => s.sectionName === names.demo).map((s) => s.done);
      expect(Math.max(cancelledAt, ...demoDone)).toBeLessThan(spotCounts.get(names.demo)!);
      expect(seen.some((s) => s.job === 'map')).toBe(false);
      expect(await studio.getInferenceStatus()).toMatchObject({ running: false, job: null, queued: 0 });

      // Again: only the demo is embedded (A1 stayed cached), and the answer is the uncancelled one.
      const again = studio.predictSection(demo, request);
      const progress = await watch(studio, again);
      const embedded = progress.filter((s) => s.phase === 'embedding');
      expect(embedded.length).toBeGreaterThan(0);
      expect(embedded.every((s) => s.sectionName === names.demo && s.sections === 1)).toBe(true);
      expect(modelPart(await again)).toEqual(modelPart(uncancelled));
    }, 180_000);
  });
});
