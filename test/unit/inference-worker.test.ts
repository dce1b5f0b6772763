// Model inference off the main thread (issue 5): a Section survives the trip to a worker (core/section/transferable.ts);
// with the bundled base model, the main thread's event loop stays responsive while the demo (HER2ST B4) is predicted
// from A1, and a worker killed mid-job fails that job saying so while the next job starts a new one. Needs
// ../shared/data/her2st/A1 and the built worker (npm run build:node).

import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PredictionManager } from '../../core/api/predictions.js';
import { Studio } from '../../core/api/studio.js';
import { openSections } from '../../core/readers/open.js';
import { demoPath, packageRoot } from '../../core/resources.js';
import { SparseCounts } from '../../core/section/sparse-counts.js';
import { fromTransferable, toTransferable } from '../../core/section/transferable.js';
import { demoAndA1Host } from './support/prediction-host.js';

describe('toTransferable / fromTransferable', () => {
  it('gives back a section whose counts work as before, after a structured clone', async () => {
    const [section] = (await openSections(demoPath())).sections;
    const back = fromTransferable(structuredClone(toTransferable(section)));
    expect(back.counts).toBeInstanceOf(SparseCounts);
    expect(back.counts.nnz).toBe(section.counts.nnz);
    expect(back.counts.spotTotals()).toEqual(section.counts.spotTotals());
    for (const gene of [0, 7, section.genes.symbols.length - 1]) {
      expect(back.counts.geneDense(gene)).toEqual(section.counts.geneDense(gene));
    }
    const { counts: _a, ...rest } = back;
    const { counts: _b, ...original } = section;
    expect(rest).toEqual(original);
    expect(back.labels.get('pathologist')).toEqual(section.labels.get('pathologist'));
  });

  it('keeps a tiny matrix entry for entry, and names a broken one', () => {
    const counts = SparseCounts.fromDense(2, 3, [0, 5, 0, 1, 0, 2]);
    const back = SparseCounts.fromTransferable(structuredClone(counts.toTransferable()));
    expect([back.get(0, 1), back.get(1, 0), back.get(1, 2), back.get(0, 0)]).toEqual([5, 1, 2, 0]);
    expect(back.gene(2)).toEqual({ indices: Int32Array.of(1), values: Float32Array.of(2) });
    const broken = { ...counts.toTransferable(), data: new Float32Array(1) };
    expect(() => SparseCounts.fromTransferable(broken)).toThrow(/counts of 2 spots: .* index\/data 3\/1 for 3/);
  });
});

const A1 = resolve(packageRoot(), '..', 'shared', 'data', 'her2st', 'A1');
const built = existsSync(join(packageRoot(), 'dist', 'core', 'api', 'inference-worker.js'));
const skip = !existsSync(A1) || !built;
if (skip) console.log('inference worker test skipped: needs ../shared/data/her2st/A1 and npm run build:node');

describe.skipIf(skip)('the inference worker with the base model', () => {
  let studio: Studio;
  let manager: PredictionManager;

  beforeAll(async () => {
    studio = new Studio({ cacheDir: join(tmpdir(), 'delst-inference-test-unused') });
    manager = new PredictionManager(await demoAndA1Host(studio, A1));
  });

  afterAll(async () => {
    await manager?.terminate();
    await studio?.shutdown();
  });

  it('fails the job of a worker killed mid-job, saying so, and the next job starts a new worker', async () => {
    const job = manager.hyperbolicMap(['demo'], { modelId: 'base' });
    while (!manager.inference.busy) await new Promise((done) => setTimeout(done, 10));
    await manager.terminate();
    await expect(job).rejects.toThrow(
      /^getHyperbolicMap: the inference worker stopped \(exit code \d+\); the next call starts a new one$/,
    );
    const map = await manager.hyperbolicMap(['demo'], { modelId: 'base' });
    expect(map.sections[0].sectionId).toBe('demo');
    expect(map.sections[0].image.radius.length).toBeGreaterThan(100);
  }, 180_000);

  it('keeps the main thread responsive while it predicts the demo from A1', async () => {
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const result = await manager.predict('demo', {
      modelId: 'base',
      labelColumn: 'pathologist',
      referenceSectionIds: ['a1'],
      genes: ['ERBB2'],
    });
    delay.disable();
    expect(result.classes!.length).toBeGreaterThan(1);
    expect(result.genes[0].symbol).toBe('ERBB2');
    // With the model on the main thread the longest stall was 2.6-5.3 s; in the worker 50-100 ms, and up to 330 ms
    // when the test files around it load both cores (CI). 1 s keeps the margin on both sides.
    expect(delay.max / 1e6).toBeLessThan(1000);
  }, 180_000);
});
