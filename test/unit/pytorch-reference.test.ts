// The PyTorch reference of the train benchmark (bench/reference/delst_train_step.py) against the engine: the same
// trainable params (names, shapes, decay flags, counts per part), the same loss terms on the golden batch of
// docs/delst-method.md §2.2 and on a batch with more pairs than rows (the masked B x B path), the same loss on the
// seeded model and the benchmark's data, and a tiny timed run through the bench's own child-process runner.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchBatch, benchLoss, probeTorchPython, referenceScript, runReference } from '../../bench/train.js';
import { DEFAULT_MODEL_CONFIG, resolveModelConfig } from '../../core/engine/config.js';
import { computeLoss, type LossTerms } from '../../core/engine/losses.js';
import { expMap0 } from '../../core/engine/lorentz.js';
import { DelstModel, HEAD } from '../../core/engine/models/delst-model.js';
import { Rng } from '../../core/engine/random.js';
import { SCALE, V_GENE, V_IMG } from './support/golden-batch.js';

const torchPython = probeTorchPython().python;
const skipReason = torchPython
  ? null
  : "no python3 with torch here: install Debian's python3-torch to run the PyTorch reference checks";
if (skipReason) console.log(`pytorch reference skipped: ${skipReason}`);

/** Small enough for the engine's plain-JS backend; params do not depend on the input size. */
const CHECK_BATCH = 6;
const CHECK_INPUT = 48;
const TERMS = ['total', 'contrastive', 'crossEntailment', 'intraEntailment'] as const;

interface GoldenCase {
  name: string;
  image: number[][];
  gene: number[][];
  curvature: number;
  logitScale: number;
  nnz: number[];
}

interface CheckReport {
  parameters: number;
  parametersByPart: Record<string, number>;
  params: { name: string; shape: number[]; decay: boolean; sum: number }[];
  seededForward: Record<string, number | number[]>;
  goldenLosses: (Record<(typeof TERMS)[number], number> & { name: string })[];
}

/** Tangent rows of a seeded normal batch. */
function normalRows(rng: Rng, rows: number, width: number, std: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: width }, () => rng.normal() * std));
}

/** §2.2 at both curvatures (3 pairs: the row-paired path), and 6 spots with ties in nnz (13 pairs: the B x B path). */
function goldenCases(): GoldenCase[] {
  const golden = { image: V_IMG, gene: V_GENE, logitScale: SCALE, nnz: [100, 300, 200] };
  const rng = new Rng(11);
  return [
    { name: 'golden c=1', ...golden, curvature: 1 },
    { name: 'golden c=0.5', ...golden, curvature: 0.5 },
    {
      name: 'dense pairs',
      image: normalRows(rng, 6, 4, 0.6),
      gene: normalRows(rng, 6, 4, 0.6),
      curvature: 0.8,
      logitScale: 10,
      nnz: [300, 100, 300, 200, 500, 100],
    },
  ];
}

/** The engine's loss terms as numbers. */
function termValues(terms: LossTerms): Record<(typeof TERMS)[number], number> {
  const out = Object.fromEntries(TERMS.map((k) => [k, terms[k].dataSync()[0]]));
  tf.dispose(Object.values(terms));
  return out as Record<(typeof TERMS)[number], number>;
}

/** The engine's terms for one golden case: tangent rows through expMap0, then computeLoss with the bench's config. */
function engineGolden(c: GoldenCase): Record<(typeof TERMS)[number], number> {
  return tf.tidy(() => {
    const curvature = tf.scalar(c.curvature);
    const terms = computeLoss(
      {
        image: expMap0(tf.tensor2d(c.image), curvature),
        gene: expMap0(tf.tensor2d(c.gene), curvature),
        curvature,
        logitScale: tf.scalar(c.logitScale),
        nnz: Float32Array.from(c.nnz),
      },
      benchLoss(),
    );
    return termValues(terms);
  });
}

/** Agreement within 1e-4, relative for values above 1. */
function expectClose(actual: number, expected: number, what: string, tolerance = 1e-4): void {
  expect(Number.isFinite(actual), what).toBe(true);
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(
    tolerance * Math.max(1, Math.abs(expected)),
  );
}

/** Part of a param, by the engine's names (what the reference groups by too). */
function partOf(name: string): string {
  if (name.startsWith('image.')) return 'imageEncoder';
  if (name.startsWith('gene.')) return 'geneEncoder';
  if (name === HEAD.imageProjection || name === HEAD.geneProjection) return 'projections';
  return 'scalars';
}

describe.skipIf(skipReason !== null)('PyTorch reference of the train benchmark', () => {
  let dir: string;
  let report: CheckReport;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    dir = mkdtempSync(path.join(os.tmpdir(), 'delst-pytorch-'));
    const golden = path.join(dir, 'golden.json');
    writeFileSync(golden, JSON.stringify({ cases: goldenCases() }));
    const args = ['--check', '--json', '--golden', golden, '--batch', String(CHECK_BATCH)];
    args.push('--input-size', String(CHECK_INPUT));
    const { stdout } = await promisify(execFile)(torchPython!, [referenceScript(), ...args], { timeout: 60_000 });
    report = JSON.parse(stdout) as CheckReport;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('has the engine model’s trainable params: names, shapes, decay flags, initial values, counts in all and per part', () => {
    const model = new DelstModel(DEFAULT_MODEL_CONFIG, 0);
    try {
      const entries = model.store.trainableEntries();
      const described = report.params.map(({ name, shape, decay }) => ({ name, shape, decay }));
      expect(described).toEqual(entries.map((e) => ({ name: e.name, shape: [...e.shape], decay: e.decay })));
      // The same initial values: the reference ports the engine's seeded generator.
      entries.forEach((e, i) => {
        const sum = (e.variable.dataSync() as Float32Array).reduce((a, v) => a + v, 0);
        expectClose(report.params[i].sum, sum, `initial sum of ${e.name}`, 1e-6);
      });
      const byPart: Record<string, number> = { imageEncoder: 0, geneEncoder: 0, projections: 0, scalars: 0 };
      for (const e of entries) byPart[partOf(e.name)] += e.size;
      expect(report.parametersByPart).toEqual(byPart);
      expect(report.parameters).toBe(entries.reduce((sum, e) => sum + e.size, 0));
    } finally {
      model.dispose();
    }
  });

  it('computes the engine’s loss terms on the golden batches', () => {
    const cases = goldenCases();
    expect(report.goldenLosses.map((g) => g.name)).toEqual(cases.map((c) => c.name));
    cases.forEach((c, i) => {
      const engine = engineGolden(c);
      for (const term of TERMS) expectClose(report.goldenLosses[i][term], engine[term], `${c.name} ${term}`);
    });
  });

  it('gives the seeded model the engine’s features and loss on the benchmark’s data (no dropout)', () => {
    const config = resolveModelConfig({ image: { inputSize: CHECK_INPUT } });
    const model = new DelstModel(config, 0);
    const batch = benchBatch(config, CHECK_BATCH);
    try {
      const { terms, imageFirst, geneFirst, imageSum } = tf.tidy(() => {
        const imageFeatures = model.imageEncoder.forward(batch.patches, true);
        const geneFeatures = model.geneEncoder.forward(batch.expression, false);
        const e = model.embedFeatures(imageFeatures, geneFeatures);
        const inputs = { image: e.image, gene: e.gene, curvature: e.curvature!, logitScale: e.logitScale };
        return {
          terms: termValues(computeLoss({ ...inputs, nnz: batch.nnz }, benchLoss())),
          imageFirst: Array.from(imageFeatures.slice([0, 0], [1, 8]).dataSync()),
          geneFirst: Array.from(geneFeatures.slice([0, 0], [1, 8]).dataSync()),
          imageSum: tf.sum(imageFeatures).dataSync()[0],
        };
      });
      const py = report.seededForward;
      expect(py.batch).toBe(CHECK_BATCH);
      expectClose(py.imageFeatureSum as number, imageSum, 'image feature sum');
      imageFirst.forEach((v, i) => expectClose((py.imageFeatureFirst as number[])[i], v, `image feature ${i}`));
      geneFirst.forEach((v, i) => expectClose((py.geneFeatureFirst as number[])[i], v, `gene feature ${i}`));
      for (const term of TERMS) expectClose(py[term] as number, terms[term], `seeded ${term}`);
    } finally {
      tf.dispose([batch.patches, batch.expression]);
      model.dispose();
    }
  });

  it('times a tiny run through the bench’s runner: finite losses that fall, a positive median', async () => {
    const run = await runReference({
      python: torchPython!,
      device: 'cpu',
      batch: 4,
      steps: 5,
      warmup: 1,
      inputSize: 32,
    });
    expect(run.batch).toBe(4);
    expect(run.measuredSteps).toBe(5);
    expect(run.device).toBe('cpu');
    const losses = run.losses as number[];
    expect(losses).toHaveLength(6);
    expect(losses.every(Number.isFinite)).toBe(true);
    // Six AdamW steps on one fixed batch must lower its loss.
    expect(run.lossLast as number).toBeLessThan(run.lossFirst as number);
    expect(run.medianStepSeconds as number).toBeGreaterThan(0);
    expect(run.minStepSeconds as number).toBeLessThanOrEqual(run.medianStepSeconds as number);
  });
});

describe('PyTorch reference: finding Python', () => {
  it('names the interpreter it tried and why it failed', () => {
    const probe = probeTorchPython('/nonexistent/python3');
    expect(probe).toEqual({ python: null, tried: ['/nonexistent/python3 (not found)'] });
  });
});
