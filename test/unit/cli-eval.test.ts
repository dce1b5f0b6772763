// `delst eval` and `delst predict` as users run them (the built bin, the bundled base model, HER2ST A1 and A2):
// metrics in range, a confusion matrix over the labelled test spots, per-gene r in [-1, 1] or null, one-line
// errors, an offline HTML report and a CSV per in-tissue spot.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const A1 = resolve(root, '../shared/data/her2st/A1');
const A2 = resolve(root, '../shared/data/her2st/A2');
const bin = join(root, 'bin/delst.js');

let tmp: string;
beforeAll(async () => {
  if (!existsSync(join(root, 'dist/cli/eval.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  tmp = await mkdtemp(join(tmpdir(), 'delst-cli-eval-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function delst(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `delst eval base`, trained and tested on A1 with the given label column, and more options. */
function evalA1(labelColumn: string, ...options: string[]) {
  return delst('eval', 'base', '--train', A1, '--test', A1, '--label-column', labelColumn, ...options);
}

/** Labelled, non-undetermined in-tissue spots with counts of A1's pathologist column, read from the files. */
async function labelledA1Spots(): Promise<number> {
  const table = (text: string) =>
    text
      .trim()
      .split(/\r?\n/)
      .slice(1)
      .map((l) => l.split('\t'));
  const inTissue = new Set(
    table(await readFile(join(A1, 'spots.tsv'), 'utf8'))
      .filter((f) => f[6] === '1')
      .map((f) => `${f[0]}x${f[1]}`),
  );
  const withCounts = new Set(
    table(gunzipSync(await readFile(join(A1, 'counts.tsv.gz'))).toString('utf8')).map((f) => f[0]),
  );
  return table(await readFile(join(A1, 'annotations.tsv'), 'utf8')).filter(
    ([id, label]) => inTissue.has(id) && withCounts.has(id) && label && label.trim() !== 'undetermined',
  ).length;
}

describe('delst eval', () => {
  it('scores the probe and the gene predictors as one JSON object, and writes the report', async () => {
    const report = join(tmp, 'report.html');
    const run = evalA1('pathologist', '--json', '--top-genes', '20', '--genes', 'ERBB2,NOTAGENE', '--report', report);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.model.mode).toBe('delst');
    expect(out.model.path).toBe(resolve(root, 'resources/models/delst-base'));
    expect(out.sections.train[0]).toMatchObject({ name: 'A1', labelled: true });
    const m = out.probe.metrics;
    for (const key of ['accuracy', 'balancedAccuracy', 'macroF1', 'macroAuc']) {
      expect(m[key], key).toBeGreaterThanOrEqual(0);
      expect(m[key], key).toBeLessThanOrEqual(1);
    }
    const total = out.probe.confusion.counts.flat().reduce((a: number, b: number) => a + b, 0);
    expect(total).toBe(await labelledA1Spots());
    expect(total).toBe(out.probe.nTest);
    expect(out.probe.leftOut.test.dropped).toBe(5);
    expect(out.probe.classesAbsentFromTraining).toEqual([]);
    const genes = out.genes.perGene;
    expect(genes.length).toBe(21);
    expect(genes.filter((g: { named: boolean }) => g.named).map((g: { gene: string }) => g.gene)).toEqual(['ERBB2']);
    for (const g of genes) {
      for (const r of [g.knn, g.ridge]) {
        if (r !== null) {
          expect(r).toBeGreaterThanOrEqual(-1);
          expect(r).toBeLessThanOrEqual(1);
        }
      }
    }
    expect(out.genes.unknownGenes).toEqual(['NOTAGENE']);
    expect(out.genes.knn.distance).toMatch(/^lorentz/);
    expect(out.genes.targetSum).toBeGreaterThan(0);
    expect(out.settings).toMatchObject({ labelColumn: 'pathologist', k: 50, topGenes: 20 });

    const html = await readFile(report, 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<script|https?:\/\//i);
    expect(html).toContain('Balanced accuracy');
    expect(html).toContain(m.balancedAccuracy.toFixed(3));
    expect(html).toContain('ERBB2');
  });

  it('leaves one section out on genes, and refuses probe cross-validation with one labelled section', () => {
    const run = delst('eval', 'base', '--cv', 'sections', '--train', A1, A2, '--label-column', 'pathologist');
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(
      "delst eval: --cv sections needs at least 2 sections with label column 'pathologist'; only A1 has it (A2 lacks it)",
    );
  });

  it('evaluates against the annotations drawn in a project (--project)', async () => {
    // A pathologist labelled 40 spots in the app: they become the label column 'annotations'.
    const { Studio } = await import('../../core/api/studio.js');
    const projectDir = join(tmp, 'project');
    const studio = new Studio({ cacheDir: join(tmp, 'cache'), projectDir });
    const [section] = (await studio.openPath(A1)).opened;
    const classes = await studio.listClasses();
    const indices = Array.from({ length: 40 }, (_, i) => i);
    await studio.labelSpots(section.id, indices.slice(0, 20), classes[0].id);
    await studio.labelSpots(section.id, indices.slice(20), classes[1].id);
    studio.close();

    const run = evalA1('annotations');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/label column 'annotations' missing in section A1/);

    const withProject = evalA1('annotations', '--project', projectDir, '--top-genes', '0', '--json');
    expect(withProject.stderr).toBe('');
    expect(withProject.code).toBe(0);
    const out = JSON.parse(withProject.stdout);
    const total = out.probe.confusion.counts.flat().reduce((a: number, b: number) => a + b, 0);
    expect(total).toBe(40);
    expect(out.probe.confusion.classes.slice().sort()).toEqual([classes[0].name, classes[1].name].sort());
  });

  it('names the sections that lack the label column, and other bad input, in one line', () => {
    const cases: [string[], string][] = [
      [
        ['base', '--train', A1, '--test', A2, '--label-column', 'pathologist'],
        "label column 'pathologist' missing in section A2",
      ],
      [['base', '--train', A1, '--test', A1, '--label-column', 'nope'], "label column 'nope' missing in section A1"],
      [['base', '--train', A1], '--test SECTION... is required (or use --cv sections)'],
      [['base', '--test', A1], '--train SECTION... is required'],
      [[join(tmp, 'none'), '--train', A1, '--test', A1], `${join(tmp, 'none')}: no such model folder`],
      [['base', '--train', A1, '--test', A1, '--k', '0'], '--k must be a whole number >= 1, not "0"'],
      [['base', '--cv', 'spots', '--train', A1, A2], '--cv must be one of sections, not "spots"'],
    ];
    for (const [args, message] of cases) {
      const run = delst('eval', ...args);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr.trim()).toBe(`delst eval: ${message}`);
    }
  });
});

describe('delst predict', () => {
  it('writes one CSV row per in-tissue spot with class, probability and expression', async () => {
    const file = join(tmp, 'pred.csv');
    const run = delst(
      'predict',
      'base',
      A1,
      '--out',
      file,
      '--train',
      A1,
      '--label-column',
      'pathologist',
      '--top-genes',
      '5',
      '--json',
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary).toMatchObject({ input: 'A1', spots: 346 });
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(347);
    const header = lines[0].split(',');
    expect(header.slice(0, 5)).toEqual(['spot_id', 'x', 'y', 'predicted_class', 'probability']);
    expect(header.slice(5)).toEqual(summary.genes);
    expect(header).toHaveLength(10);
    const first = lines[1].split(',');
    expect(first[0]).toMatch(/^\d+x\d+$/);
    expect(summary.classes).toContain(first[3]);
    expect(Number(first[4])).toBeGreaterThan(0);
    expect(Number(first[4])).toBeLessThanOrEqual(1);
    for (const v of first.slice(5)) expect(Number.isFinite(Number(v))).toBe(true);

    const bad = delst('predict', 'base', A1, '--train', A1);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe('delst predict: --out FILE.csv is required');
  });
});
