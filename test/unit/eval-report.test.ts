// The HTML evaluation report: self-contained (no scripts, no URLs), shows the metrics and SVG plots, escapes names.

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../core/engine/random.js';
import { denseGeneSource, evaluateGenePrediction } from '../../core/eval/gene-prediction.js';
import { linearProbe } from '../../core/eval/logistic.js';
import { fromRows, type Matrix } from '../../core/eval/matrix.js';
import { escapeHtml, renderReport, writeReport } from '../../core/eval/report.js';

const EVIL = '<script>alert("x")</script>';
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function data(n: number, seed: number) {
  const rng = new Rng(seed);
  const rows: number[][] = [];
  const labels: string[] = [];
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const k = i % 3;
    rows.push([k === 0 ? 4 : 0, k === 1 ? 4 : 0, k === 2 ? 4 : 0].map((v) => v + 0.5 * rng.normal()));
    labels.push(['tumour', 'stroma', EVIL][k]);
    x.push((i % 6) * 100);
    y.push(Math.floor(i / 6) * 100);
  }
  return { X: fromRows(rows), labels, x, y };
}

function expression(X: Matrix): Matrix {
  // gene i = feature i (+ a product), so both predictors have something to find.
  return fromRows(Array.from({ length: X.rows }, (_, i) => [0, 1, 2].map((j) => X.data[i * 3 + j] + 0.1 * j)));
}

describe('renderReport', () => {
  const train = data(36, 1);
  const test = data(18, 2);
  const probe = linearProbe({ trainX: train.X, trainY: train.labels, testX: test.X, testY: test.labels, seed: 0 });
  const genes = evaluateGenePrediction({
    trainX: train.X,
    testX: test.X,
    source: denseGeneSource(['ERBB2', 'CD3E', '<b>bold</b>'], expression(train.X), expression(test.X)),
    top: 3,
    knn: { k: 3 },
  });
  const html = renderReport({
    title: 'DELST evaluation <A1 & B1>',
    generated: '2025-01-01',
    data: [
      ['Train sections', 'A1, B1'],
      ['Label column', 'label'],
    ],
    model: [['Model', 'delst-quick']],
    probe,
    genes,
    spots: { x: test.x, y: test.y },
  });

  it('holds the metrics, a confusion matrix, the correlation bars and the maps as inline SVG', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain(probe.metrics.accuracy.toFixed(3));
    expect(html).toContain(probe.metrics.balancedAccuracy.toFixed(3));
    expect(html).toContain(probe.metrics.macroF1.toFixed(3));
    expect(html).toContain('Macro one-vs-rest AUC');
    expect(html).toContain('class="confusion"');
    expect(html).toContain('class="bars"');
    // 3 genes x (measured, kNN, ridge)
    expect(html.match(/class="map"/g)).toHaveLength(9);
    expect(html.match(/<svg/g)!.length).toBeGreaterThanOrEqual(11);
    expect(html).toContain(genes.summary.ridge.mean!.toFixed(3));
    expect(html).toContain('delst-quick');
  });

  it('is self-contained: no scripts, no URLs, no remote resources', () => {
    expect(html.toLowerCase()).not.toContain('http');
    expect(html.toLowerCase()).not.toContain('<script');
    expect(html).not.toMatch(/\b(src|href)=/);
    expect(html).not.toContain('@import');
    expect(html).not.toContain('url(');
  });

  it('escapes class names, gene names and the title', () => {
    expect(html).toContain(escapeHtml(EVIL));
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('&lt;b&gt;bold&lt;/b&gt;');
    expect(html).not.toContain('<b>bold');
    expect(html).toContain('<title>DELST evaluation &lt;A1 &amp; B1&gt;</title>');
  });

  it('reports classes absent from training', () => {
    const r = linearProbe({
      trainX: train.X,
      trainY: train.labels.map((l) => (l === EVIL ? 'stroma' : l)),
      testX: test.X,
      testY: test.labels,
    });
    const out = renderReport({ title: 't', probe: r });
    expect(out).toContain('Classes absent from training');
    expect(out).toContain(`${escapeHtml(EVIL)} (6)`);
  });

  it('writes the file atomically (no temp files left) and replaces an older report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'delst-report-'));
    dirs.push(dir);
    const file = join(dir, 'nested', 'report.html');
    await writeReport(file, 'old');
    await writeReport(file, html);
    expect(await readFile(file, 'utf8')).toBe(html);
    expect(await readdir(join(dir, 'nested'))).toEqual(['report.html']);
  });
});

describe('JSON output', () => {
  it('drops typed arrays and the model, keeps the numbers', async () => {
    const { probeToJson } = await import('../../core/eval/logistic.js');
    const { genePredictionToJson } = await import('../../core/eval/gene-prediction.js');
    const train = data(24, 5);
    const test = data(12, 6);
    const probe = linearProbe({ trainX: train.X, trainY: train.labels, testX: test.X, testY: test.labels });
    const genes = evaluateGenePrediction({
      trainX: train.X,
      testX: test.X,
      source: denseGeneSource(['a', 'b', 'c'], expression(train.X), expression(test.X)),
      knn: { k: 2 },
    });
    const text = JSON.stringify({ probe: probeToJson(probe), genes: genePredictionToJson(genes) });
    const back = JSON.parse(text);
    expect(back.probe.metrics.accuracy).toBe(probe.metrics.accuracy);
    expect(back.probe.model).toBeUndefined();
    expect(back.genes.genes).toHaveLength(3);
    expect(back.genes.measured).toBeUndefined();
  });
});
